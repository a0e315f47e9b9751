/* tests/check.h — the few macros and helpers every C test shares: CHECK with file:line, a closing
 * line, and a finite-difference gradient checker (central differences, float64 accumulation). */
#ifndef DG_TEST_CHECK_H
#define DG_TEST_CHECK_H

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int dg_test_failures = 0;
static int dg_test_checks = 0;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        dg_test_checks++;                                                         \
        if (!(cond)) {                                                            \
            dg_test_failures++;                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
        }                                                                         \
    } while (0)

/* Print the summary and return the process exit code. */
static inline int dg_test_done(const char *name) {
    printf("%s: %d checks, %d failed\n", name, dg_test_checks, dg_test_failures);
    return dg_test_failures ? 1 : 0;
}

/* Remove every file (and empty sub-folder) inside dir, leaving dir itself. */
static inline void dg_test_empty_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            struct stat st;
            if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) rmdir(p);
            else unlink(p);
        }
    closedir(d);
}

/* Deterministic test data in [lo, hi). */
static inline void dg_test_fill(float *x, size_t n, uint64_t seed, float lo, float hi) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
}

/* NaN everywhere: what a backward op that writes its input gradient (accumulate 0) must not read. */
static inline void dg_test_fill_nan(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = __builtin_nanf("");
}

/* Finite-difference check of an analytic gradient.
 * loss(ctx) must return a scalar computed from the current contents of var (accumulate it in
 * double, e.g. L = Σ r_i·y_i with fixed random r). For up to max_points coordinates of var
 * (all of them when n ≤ max_points, otherwise an even spread), compares
 * (L(v+h) − L(v−h)) / 2h with analytic[i]. Returns the worst relative error
 * |num − ana| / max(|num| + |ana|, floor), where floor keeps near-zero gradients from dominating. */
static inline double dg_gradcheck(float *var, const float *analytic, size_t n,
                                  double (*loss)(void *ctx), void *ctx, float h, size_t max_points,
                                  double floor) {
    double worst = 0.0;
    size_t stride = n <= max_points ? 1 : n / max_points;
    for (size_t i = 0; i < n; i += stride) {
        float saved = var[i];
        var[i] = saved + h;
        double lp = loss(ctx);
        var[i] = saved - h;
        double lm = loss(ctx);
        var[i] = saved;
        double num = (lp - lm) / (2.0 * (double)h);
        double ana = analytic[i];
        double denom = fabs(num) + fabs(ana);
        if (denom < floor) denom = floor;
        double err = fabs(num - ana) / denom;
        if (err > worst) worst = err;
    }
    return worst;
}

#endif
