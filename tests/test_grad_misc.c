/* tests/test_grad_misc.c — CPU relu, batch norm, dropout, add/axpy, softmax cross-entropy and
 * optimizers: finite-difference gradients, the += contract of every backward, double-precision
 * references, repeatability across thread counts. Needs only these kernels: no conv/linear/pool, no host/. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "host/net.h"
#include "kernels/cpu/cpu.h"
#include "kernels/math/optim.h"
#include "kernels/math/relevance.h"
#include "kernels/math/rng.h"

/* ---------------------------------------------------------------- helpers */

static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}
static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}
static float *fdup(const float *src, size_t n) {
    float *p = falloc(n);
    memcpy(p, src, n * sizeof(float));
    return p;
}

/* Round to a multiple of 2^-10 so that v ± h (h a power of two ≥ 2^-10, |v| < 2^13) is exact in
 * float: the finite difference then divides by exactly the step it took. */
static void snap(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = roundf(x[i] * 1024.0f) / 1024.0f;
}

/* normalised error max|a − ref| / max|ref| (the ref's scale, never below tiny) */
static double nerr(const float *a, const double *ref, size_t n) {
    double num = 0.0, den = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (d > num || d != d) num = d != d ? INFINITY : d;
        if (fabs(ref[i]) > den) den = fabs(ref[i]);
    }
    return num / den;
}

/* The += contract: a backward run on zeroed outputs gives `fresh`; run on outputs pre-filled with
 * `base` it must give base + fresh (up to the one rounding of that sum). */
static int accumulates(const float *out, const float *base, const float *fresh, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float want = base[i] + fresh[i];
        if (fabsf(out[i] - want) > 1e-6f * (fabsf(base[i]) + fabsf(fresh[i])) + 1e-30f) return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- relu */

typedef struct relu_ctx {
    size_t n;
    float *x, *y, *r;
} relu_ctx;

static double relu_loss(void *p) {
    relu_ctx *c = p;
    dg_cpu_relu_fwd(c->n, c->x, c->y);
    double l = 0.0;
    for (size_t i = 0; i < c->n; i++) l += (double)c->r[i] * c->y[i];
    return l;
}

static void test_relu(void) {
    const size_t n = 300;
    float *x = falloc(n), *y = falloc(n), *r = falloc(n);
    dg_test_fill(x, n, 1, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i++) x[i] += x[i] < 0.0f ? -0.1f : 0.1f; /* stay away from the kink */
    dg_test_fill(r, n, 2, -1.0f, 1.0f);

    dg_cpu_relu_fwd(n, x, y);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= y[i] == (x[i] > 0.0f ? x[i] : 0.0f);
    CHECK(ok, "relu forward differs from max(x, 0)");

    float *g = falloc(n), *base = falloc(n), *acc;
    dg_test_fill(base, n, 3, -2.0f, 2.0f);
    acc = fdup(base, n);
    dg_test_fill_nan(g, n); /* written (accumulate 0): what dx held is not read */
    dg_cpu_relu_bwd(n, y, r, g, 0);
    dg_cpu_relu_bwd(n, y, r, acc, 1);
    CHECK(accumulates(acc, base, g, n), "relu backward does not accumulate");
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= g[i] == (y[i] > 0.0f ? r[i] : 0.0f);
    CHECK(ok, "relu backward differs from dy·[y > 0]");

    relu_ctx c = {n, x, y, r};
    double e = dg_gradcheck(x, g, n, relu_loss, &c, 1e-3f, n, 1e-6);
    CHECK(e < 1e-3, "relu gradcheck: worst relative error %g", e);

    /* NaN passes through (a diverging run must show), −0 and 0 give 0 */
    float sx[3] = {NAN, -0.0f, 0.0f}, sy[3];
    dg_cpu_relu_fwd(3, sx, sy);
    CHECK(isnan(sy[0]), "relu(NaN) = %g, want NaN", sy[0]);
    CHECK(sy[1] == 0.0f && !signbit(sy[1]) && sy[2] == 0.0f, "relu(±0) = %g, %g", sy[1], sy[2]);
    /* backward as torch's threshold_backward: dy where y is NaN (torch: relu([nan]).backward → 1) */
    float sdy[3] = {1.5f, 2.0f, 3.0f}, sdx[3] = {0, 0, 0};
    dg_cpu_relu_bwd(3, sy, sdy, sdx, 1);
    CHECK(sdx[0] == 1.5f && sdx[1] == 0.0f && sdx[2] == 0.0f, "relu backward at y = NaN, -0, 0: %g %g %g, want 1.5 0 0",
          sdx[0], sdx[1], sdx[2]);

    free(x); free(y); free(r); free(g); free(base); free(acc);
}

/* ---------------------------------------------------------------- batch norm */

/* Direct double-precision batch norm (training mode) of the float inputs. */
static void bn_ref(int n, int c, int hw, const float *x, const float *gamma, const float *beta,
                   double eps, double *y, double *mean, double *var) {
    const double cnt = (double)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double s = 0.0, ss = 0.0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < hw; j++) s += x[((size_t)i * c + ch) * hw + j];
        double m = s / cnt;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < hw; j++) {
                double d = x[((size_t)i * c + ch) * hw + j] - m;
                ss += d * d;
            }
        double v = ss / cnt;
        if (mean) mean[ch] = m;
        if (var) var[ch] = v;
        if (y)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < hw; j++) {
                    size_t k = ((size_t)i * c + ch) * hw + j;
                    y[k] = (x[k] - m) / sqrt(v + eps) * gamma[ch] + beta[ch];
                }
    }
}

typedef struct bn_ctx {
    int n, c, hw, use_ref; /* use_ref: loss from the double reference instead of the kernel */
    float *x, *gamma, *beta, *r, *y, *rm, *rv, *sm, *si;
    double *yd;
    float eps, momentum;
} bn_ctx;

static double bn_loss(void *p) {
    bn_ctx *b = p;
    size_t total = (size_t)b->n * b->c * b->hw;
    double l = 0.0;
    if (b->use_ref) {
        bn_ref(b->n, b->c, b->hw, b->x, b->gamma, b->beta, b->eps, b->yd, NULL, NULL);
        for (size_t i = 0; i < total; i++) l += (double)b->r[i] * b->yd[i];
    } else {
        dg_cpu_bn_fwd_train(b->n, b->c, b->hw, b->x, b->gamma, b->beta, b->rm, b->rv, b->momentum,
                            b->eps, b->y, b->sm, b->si);
        for (size_t i = 0; i < total; i++) l += (double)b->r[i] * b->y[i];
    }
    return l;
}

static void test_bn_train_case(int n, int c, int hw, uint64_t seed) {
    const size_t total = (size_t)n * c * hw;
    const float eps = 1e-5f, momentum = 0.1f;
    float *x = falloc(total), *r = falloc(total), *y = falloc(total);
    float *gamma = falloc(c), *beta = falloc(c), *rm = falloc(c), *rv = falloc(c);
    float *rm0 = falloc(c), *rv0 = falloc(c), *sm = falloc(c), *si = falloc(c);
    dg_test_fill(x, total, seed, -2.0f, 2.0f);
    for (size_t k = 0; k < total; k++) x[k] += (float)((k / hw) % c) * 1.5f; /* distinct means */
    snap(x, total);
    dg_test_fill(gamma, c, seed + 1, 0.5f, 1.5f);
    dg_test_fill(beta, c, seed + 2, -0.5f, 0.5f);
    snap(gamma, c);
    snap(beta, c);
    dg_test_fill(r, total, seed + 3, -1.0f, 1.0f);
    dg_test_fill(rm0, c, seed + 4, -0.2f, 0.2f);
    dg_test_fill(rv0, c, seed + 5, 0.5f, 1.5f);
    memcpy(rm, rm0, c * sizeof(float));
    memcpy(rv, rv0, c * sizeof(float));

    /* forward, saved statistics and running update against double */
    double *yd = dalloc(total), *md = dalloc(c), *vd = dalloc(c);
    dg_cpu_bn_fwd_train(n, c, hw, x, gamma, beta, rm, rv, momentum, eps, y, sm, si);
    bn_ref(n, c, hw, x, gamma, beta, eps, yd, md, vd);
    double e = nerr(y, yd, total);
    CHECK(e < 1e-6, "bn train fwd (n=%d c=%d hw=%d): normalised error %g", n, c, hw, e);
    double *want = dalloc(c);
    const double cnt = (double)n * hw, mo = momentum;
    for (int ch = 0; ch < c; ch++) want[ch] = md[ch];
    CHECK(nerr(sm, want, c) < 1e-6, "bn save_mean off");
    for (int ch = 0; ch < c; ch++) want[ch] = 1.0 / sqrt(vd[ch] + eps);
    CHECK(nerr(si, want, c) < 1e-6, "bn save_invstd off");
    for (int ch = 0; ch < c; ch++) want[ch] = (1.0 - mo) * rm0[ch] + mo * md[ch];
    e = nerr(rm, want, c);
    CHECK(e < 1e-6, "bn running_mean (n=%d hw=%d): error %g", n, hw, e);
    for (int ch = 0; ch < c; ch++) want[ch] = (1.0 - mo) * rv0[ch] + mo * vd[ch] * cnt / (cnt - 1.0);
    e = nerr(rv, want, c);
    CHECK(e < 1e-6, "bn running_var must use the unbiased variance (n=%d hw=%d): error %g", n, hw, e);

    /* backward: += contract */
    float *dx = falloc(total), *dg = falloc(c), *db = falloc(c);
    dg_test_fill_nan(dx, total); /* written (accumulate 0): what dx held is not read */
    dg_cpu_bn_bwd(n, c, hw, x, gamma, sm, si, r, dx, 0, dg, db);
    float *bx = falloc(total), *bg = falloc(c), *bb = falloc(c);
    dg_test_fill(bx, total, seed + 6, -1.0f, 1.0f);
    dg_test_fill(bg, c, seed + 7, -1.0f, 1.0f);
    dg_test_fill(bb, c, seed + 8, -1.0f, 1.0f);
    float *ax = fdup(bx, total), *ag = fdup(bg, c), *ab = fdup(bb, c);
    dg_cpu_bn_bwd(n, c, hw, x, gamma, sm, si, r, ax, 1, ag, ab);
    CHECK(accumulates(ax, bx, dx, total) && accumulates(ag, bg, dg, c) && accumulates(ab, bb, db, c),
          "bn backward does not accumulate");

    /* finite differences: against the double reference (tight), and through the kernel's own
     * forward (forward and backward consistent) */
    bn_ctx b = {n, c, hw, 1, x, gamma, beta, r, y, falloc(c), falloc(c), falloc(c), falloc(c), yd,
                eps, momentum};
    const float h = 1.0f / 128.0f;
    for (int pass = 0; pass < 2; pass++) {
        b.use_ref = pass == 0;
        /* L is linear in γ and β, so their differences are exact up to rounding; dx's carry the
         * O(h²) truncation error */
        double tol = pass == 0 ? 1e-3 : 1e-2, tol_gb = pass == 0 ? 1e-5 : 1e-4;
        double fl = pass == 0 ? 1e-4 : 1e-2;
        double ex = dg_gradcheck(x, dx, total, bn_loss, &b, h, 200, fl);
        double eg = dg_gradcheck(gamma, dg, c, bn_loss, &b, h, 200, fl);
        double eb = dg_gradcheck(beta, db, c, bn_loss, &b, h, 200, fl);
        CHECK(ex < tol && eg < tol_gb && eb < tol_gb,
              "bn gradcheck (%s, n=%d c=%d hw=%d): dx %g dgamma %g dbeta %g",
              pass == 0 ? "double reference" : "kernel forward", n, c, hw, ex, eg, eb);
    }

    free(b.rm); free(b.rv); free(b.sm); free(b.si);
    free(x); free(r); free(y); free(gamma); free(beta); free(rm); free(rv); free(rm0); free(rv0);
    free(sm); free(si); free(yd); free(md); free(vd); free(want);
    free(dx); free(dg); free(db); free(bx); free(bg); free(bb); free(ax); free(ag); free(ab);
}

static void test_bn(void) {
    test_bn_train_case(1, 3, 7, 10);  /* batch 1: statistics over the spatial positions only */
    test_bn_train_case(4, 3, 5, 20);
    test_bn_train_case(6, 2, 1, 30);  /* hw 1: BatchNorm1d-like */
    test_bn_train_case(3, 4, 16, 40);

    /* a single value per channel (PyTorch refuses it): no NaN/inf in the output or running stats */
    {
        float x[2] = {0.5f, -3.0f}, g[2] = {1, 2}, b[2] = {0.25f, -0.5f}, rm[2] = {0}, rv[2] = {1, 1};
        float y[2], sm[2], si[2];
        dg_cpu_bn_fwd_train(1, 2, 1, x, g, b, rm, rv, 0.1f, 1e-5f, y, sm, si);
        CHECK(y[0] == b[0] && y[1] == b[1] && isfinite(rv[0]) && isfinite(rv[1]),
              "bn with one value per channel: y = %g %g, running_var = %g %g", y[0], y[1], rv[0], rv[1]);
    }

    /* an empty batch (a rank with no share of it): running statistics untouched, as torch and CUDA */
    {
        float rm[2] = {-0.125f, 0.5f}, rv[2] = {0.75f, 2.0f}, g[2] = {1, 1}, b[2] = {0, 0}, sm[2], si[2];
        dg_cpu_bn_fwd_train(0, 2, 4, NULL, g, b, rm, rv, 0.1f, 1e-5f, NULL, sm, si);
        CHECK(rm[0] == -0.125f && rm[1] == 0.5f && rv[0] == 0.75f && rv[1] == 2.0f,
              "bn on an empty batch changed the running statistics: %g %g / %g %g", rm[0], rm[1], rv[0], rv[1]);
    }

    /* eval mode against the direct formula */
    {
        const int n = 2, c = 3, hw = 4;
        const size_t total = (size_t)n * c * hw;
        float x[24], y[24], g[3], b[3], rm[3], rv[3];
        double yd[24];
        dg_test_fill(x, total, 50, -3.0f, 3.0f);
        dg_test_fill(g, c, 51, 0.5f, 1.5f);
        dg_test_fill(b, c, 52, -1.0f, 1.0f);
        dg_test_fill(rm, c, 53, -1.0f, 1.0f);
        dg_test_fill(rv, c, 54, 0.1f, 2.0f);
        dg_cpu_bn_fwd_eval(n, c, hw, x, g, b, rm, rv, 1e-5f, y);
        for (size_t k = 0; k < total; k++) {
            int ch = (int)((k / hw) % c);
            yd[k] = ((double)x[k] - rm[ch]) / sqrt((double)rv[ch] + (double)1e-5f) * g[ch] + b[ch];
        }
        double e = nerr(y, yd, total);
        CHECK(e < 1e-6, "bn eval fwd: normalised error %g", e);
    }

    /* bit-identical results on 1 and 2 threads */
    {
        const int n = 8, c = 5, hw = 64;
        const size_t total = (size_t)n * c * hw;
        float *x = falloc(total), *dy = falloc(total), g[5] = {1, 2, 3, 4, 5}, b[5] = {0};
        float *y[2], *dx[2], rm[2][5], rv[2][5], sm[2][5], si[2][5], dg[2][5], db[2][5];
        dg_test_fill(x, total, 60, -1.0f, 3.0f);
        dg_test_fill(dy, total, 61, -1.0f, 1.0f);
        int saved = omp_get_max_threads();
        for (int t = 0; t < 2; t++) {
            omp_set_num_threads(t + 1);
            y[t] = falloc(total);
            dx[t] = falloc(total);
            for (int ch = 0; ch < c; ch++) rm[t][ch] = 0, rv[t][ch] = 1, dg[t][ch] = 0, db[t][ch] = 0;
            dg_cpu_bn_fwd_train(n, c, hw, x, g, b, rm[t], rv[t], 0.1f, 1e-5f, y[t], sm[t], si[t]);
            dg_cpu_bn_bwd(n, c, hw, x, g, sm[t], si[t], dy, dx[t], 0, dg[t], db[t]);
        }
        omp_set_num_threads(saved);
        CHECK(!memcmp(y[0], y[1], total * 4) && !memcmp(dx[0], dx[1], total * 4) &&
                  !memcmp(rv[0], rv[1], sizeof rv[0]) && !memcmp(dg[0], dg[1], sizeof dg[0]) &&
                  !memcmp(db[0], db[1], sizeof db[0]),
              "bn differs between 1 and 2 threads");
        free(x); free(dy); free(y[0]); free(y[1]); free(dx[0]); free(dx[1]);
    }
}

/* eval-mode batch norm: finite differences of L = Σ r·y in x, γ, β with the running statistics held */
typedef struct bn_eval_ctx {
    int n, c, hw;
    float *x, *g, *b, *rm, *rv, *y, *r;
} bn_eval_ctx;

static double bn_eval_loss(void *p) {
    bn_eval_ctx *k = p;
    size_t total = (size_t)k->n * k->c * k->hw;
    dg_cpu_bn_fwd_eval(k->n, k->c, k->hw, k->x, k->g, k->b, k->rm, k->rv, 1e-5f, k->y);
    double l = 0.0;
    for (size_t i = 0; i < total; i++) l += (double)k->r[i] * k->y[i];
    return l;
}

static void test_bn_eval_backward(void) {
    const int n = 3, c = 4, hw = 5;
    const size_t total = (size_t)n * c * hw;
    float *x = falloc(total), *y = falloc(total), *r = falloc(total), *dx = falloc(total), *dx2 = falloc(total);
    float g[4], b[4], rm[4], rv[4], dg[4] = {0}, db[4] = {0}, dg2[4], db2[4];
    dg_test_fill(x, total, 70, -2.0f, 2.0f);
    dg_test_fill(r, total, 71, -1.0f, 1.0f);
    dg_test_fill(g, c, 72, 0.5f, 1.5f);
    dg_test_fill(b, c, 73, -1.0f, 1.0f);
    dg_test_fill(rm, c, 74, -0.5f, 0.5f);
    dg_test_fill(rv, c, 75, 0.2f, 2.0f);
    snap(x, total);
    snap(g, c);
    snap(b, c);
    dg_test_fill_nan(dx, total); /* written (accumulate 0): what dx held is not read */
    dg_cpu_bn_bwd_eval(n, c, hw, x, g, rm, rv, 1e-5f, r, dx, 0, dg, db);
    bn_eval_ctx k = {n, c, hw, x, g, b, rm, rv, y, r};
    double ex = dg_gradcheck(x, dx, total, bn_eval_loss, &k, 1.0f / 64, 64, 1e-3);
    double eg = dg_gradcheck(g, dg, (size_t)c, bn_eval_loss, &k, 1.0f / 64, 64, 1e-3);
    double eb = dg_gradcheck(b, db, (size_t)c, bn_eval_loss, &k, 1.0f / 64, 64, 1e-3);
    CHECK(ex < 1e-3 && eg < 1e-3 && eb < 1e-3, "bn eval backward: dx %g dgamma %g dbeta %g", ex, eg, eb);
    /* += contract, and NULL dgamma/dbeta leave dx unchanged */
    for (size_t i = 0; i < total; i++) dx2[i] = 1.0f;
    for (int i = 0; i < c; i++) dg2[i] = db2[i] = 1.0f;
    dg_cpu_bn_bwd_eval(n, c, hw, x, g, rm, rv, 1e-5f, r, dx2, 1, dg2, db2);
    float ones[64];
    for (int i = 0; i < 64; i++) ones[i] = 1.0f;
    int acc = 1;
    for (size_t i = 0; i < total; i += 64) acc &= accumulates(dx2 + i, ones, dx + i, total - i < 64 ? total - i : 64);
    CHECK(acc && accumulates(dg2, ones, dg, (size_t)c) && accumulates(db2, ones, db, (size_t)c),
          "bn eval backward does not accumulate");
    dg_test_fill_nan(dx2, total);
    dg_cpu_bn_bwd_eval(n, c, hw, x, g, rm, rv, 1e-5f, r, dx2, 0, NULL, NULL);
    CHECK(!memcmp(dx, dx2, total * sizeof(float)), "bn eval backward dx depends on dgamma/dbeta being asked");
    free(x); free(y); free(r); free(dx); free(dx2);
}

/* ---------------------------------------------------------------- dropout */

/* A net's dropout on a rank's share of the batch (net->dropout_first: its first image's place) draws
 * the masks the whole batch's images get: 2 ranks × 2 images have the masks of 1 × 4 images. */
static void test_dropout_shares(void) {
    dg_net *net[2];
    int drop = -1;
    for (int k = 0; k < 2; k++) {
        net[k] = dg_net_new("drop", 1, 4, 4, 3);
        drop = dg_net_dropout(net[k], dg_net_relu(net[k], dg_net_linear(net[k], "fc1", dg_net_flatten(net[k], 0), 32, 1)),
                              0.5f);
        dg_net_linear(net[k], "fc2", drop, 3, 1);
        CHECK(dg_net_setup(net[k], dg_backend_cpu(), k ? 2 : 4) == 0, "dropout shares: setup");
    }
    float *params = malloc(sizeof(float) * net[0]->n_param_floats), x[4 * 16], whole[4 * 32], share[4 * 32];
    dg_net_init_host(net[0], 7, params);
    for (int k = 0; k < 2; k++) net[k]->be->upload(net[k]->param_arena, params, sizeof(float) * net[k]->n_param_floats);
    for (int i = 0; i < 4 * 16; i++) x[i] = (float)((i * 37) % 11) / 5.0f;
    net[0]->dropout_seed = 99, net[0]->dropout_first = 0;
    dg_net_forward(net[0], x, 4, DG_MODE_TRAIN);
    memcpy(whole, net[0]->nodes[drop].mask, sizeof whole);
    for (int r = 0; r < 2; r++) {
        net[1]->dropout_seed = 99, net[1]->dropout_first = 2 * r;
        dg_net_forward(net[1], x + 2 * r * 16, 2, DG_MODE_TRAIN);
        memcpy(share + 2 * r * 32, net[1]->nodes[drop].mask, sizeof(float) * 2 * 32);
    }
    CHECK(!memcmp(whole, share, sizeof whole), "dropout: two shares of a batch draw other masks than the whole batch");
    net[1]->dropout_first = 0; /* the second share keyed as a first draws the first's masks */
    dg_net_forward(net[1], x + 2 * 16, 2, DG_MODE_TRAIN);
    CHECK(memcmp(whole + 2 * 32, net[1]->nodes[drop].mask, sizeof(float) * 2 * 32) != 0,
          "dropout: the masks do not depend on the share's place (the check above cannot fail)");
    free(params);
    for (int k = 0; k < 2; k++) dg_net_free(net[k]);
}

static void test_dropout(void) {
    const size_t n = 1000000;
    float *x = falloc(n), *y = falloc(n), *mask = falloc(n), *mask2 = falloc(n);
    dg_test_fill(x, n, 70, -1.0f, 1.0f);

    const float ps[3] = {0.3f, 0.5f, 0.9f};
    for (int t = 0; t < 3; t++) {
        const float p = ps[t], scale = 1.0f / (1.0f - p);
        dg_cpu_dropout_fwd(n, p, 1234, 0, x, y, mask);
        size_t kept = 0;
        int values_ok = 1, y_ok = 1;
        for (size_t i = 0; i < n; i++) {
            kept += mask[i] != 0.0f;
            values_ok &= mask[i] == 0.0f || mask[i] == scale;
            y_ok &= y[i] == x[i] * mask[i];
        }
        /* the mask is the documented function of (seed, i), so every backend draws the same one */
        int rng_ok = 1;
        for (size_t i = 0; i < n; i++) rng_ok &= mask[i] == (dg_rng_uniform(1234, i) < 1.0f - p ? scale : 0.0f);
        CHECK(rng_ok, "dropout p=%g: mask[i] != [dg_rng_uniform(seed, i) < 1-p]/(1-p)", p);
        double rate = (double)kept / n, sigma = sqrt((1.0 - p) * p / n);
        CHECK(fabs(rate - (1.0 - p)) < 5 * sigma, "dropout p=%g: keep rate %g, want %g", p, rate, 1.0 - p);
        CHECK(values_ok, "dropout p=%g: mask values other than 0 and 1/(1-p)", p);
        CHECK(y_ok, "dropout p=%g: y != x·mask", p);
    }

    /* same seed → same mask, on any thread count and for any prefix; another seed → another mask */
    dg_cpu_dropout_fwd(n, 0.3f, 1234, 0, x, y, mask);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    dg_cpu_dropout_fwd(n, 0.3f, 1234, 0, x, y, mask2);
    omp_set_num_threads(saved);
    CHECK(!memcmp(mask, mask2, n * sizeof(float)), "dropout mask depends on the thread count");
    dg_cpu_dropout_fwd(1000, 0.3f, 1234, 0, x, y, mask2);
    CHECK(!memcmp(mask, mask2, 1000 * sizeof(float)), "dropout mask depends on n");
    /* a rank's share from element k of the whole batch draws the whole batch's masks there */
    dg_cpu_dropout_fwd(n - 777, 0.3f, 1234, 777, x + 777, y, mask2);
    CHECK(!memcmp(mask + 777, mask2, (n - 777) * sizeof(float)), "dropout from element 777 is not the whole's tail");
    dg_cpu_dropout_fwd(n, 0.3f, 1235, 0, x, y, mask2);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += mask[i] != mask2[i];
    double fd = (double)differ / n; /* independent masks differ with probability 2·0.3·0.7 */
    CHECK(fabs(fd - 0.42) < 0.005, "dropout: seeds 1234 and 1235 differ in %g of elements, want 0.42", fd);

    /* backward: dx += mask·dy */
    const size_t m = 5000;
    float *dy = falloc(m), *dx = falloc(m), *base = falloc(m), *acc;
    dg_test_fill(dy, m, 71, -1.0f, 1.0f);
    dg_test_fill(base, m, 72, -1.0f, 1.0f);
    acc = fdup(base, m);
    dg_test_fill_nan(dx, m); /* written (accumulate 0): what dx held is not read */
    dg_cpu_dropout_bwd(m, mask, dy, dx, 0);
    dg_cpu_dropout_bwd(m, mask, dy, acc, 1);
    int ok = 1;
    for (size_t i = 0; i < m; i++) ok &= dx[i] == dy[i] * mask[i];
    CHECK(ok, "dropout backward != mask·dy");
    CHECK(accumulates(acc, base, dx, m), "dropout backward does not accumulate");

    /* p = 0 keeps everything unscaled; p = 1 drops everything without inf/NaN */
    dg_cpu_dropout_fwd(m, 0.0f, 9, 0, x, y, mask);
    ok = 1;
    for (size_t i = 0; i < m; i++) ok &= mask[i] == 1.0f && y[i] == x[i];
    CHECK(ok, "dropout p=0 is not the identity");
    dg_cpu_dropout_fwd(m, 1.0f, 9, 0, x, y, mask);
    ok = 1;
    for (size_t i = 0; i < m; i++) ok &= mask[i] == 0.0f && y[i] == 0.0f;
    CHECK(ok, "dropout p=1 does not zero everything");

    free(x); free(y); free(mask); free(mask2); free(dy); free(dx); free(base); free(acc);
}

/* ---------------------------------------------------------------- add, axpy */

static void test_add_axpy(void) {
    const size_t sizes[2] = {7, 100003}; /* below and above the parallel threshold */
    for (int s = 0; s < 2; s++) {
        const size_t n = sizes[s];
        float *a = falloc(n), *b = falloc(n), *y = falloc(n), *y0;
        dg_test_fill(a, n, 80, -5.0f, 5.0f);
        dg_test_fill(b, n, 81, -5.0f, 5.0f);
        dg_cpu_add(n, a, b, y);
        int ok = 1;
        for (size_t i = 0; i < n; i++) ok &= y[i] == a[i] + b[i];
        CHECK(ok, "add (n=%zu) differs from a + b", n);
        y0 = fdup(y, n);
        dg_cpu_axpy(n, -0.375f, a, y);
        ok = 1;
        for (size_t i = 0; i < n; i++)
            ok &= fabs((double)y[i] - ((double)y0[i] - 0.375 * a[i])) <= 1e-6 * (fabs(y0[i]) + fabs(a[i]));
        CHECK(ok, "axpy (n=%zu) differs from y + alpha·x", n);
        memcpy(y, y0, n * sizeof(float));
        dg_cpu_scale(n, 0.61f, y);
        ok = 1;
        for (size_t i = 0; i < n; i++) ok &= y[i] == y0[i] * 0.61f;
        CHECK(ok, "scale (n=%zu) differs from x·alpha", n);
        free(a); free(b); free(y); free(y0);
    }
    /* the sum of squares across its 2^16-element chunks, against long double */
    const size_t counts[4] = {0, 5, 65536, 3 * 65536 + 7};
    for (int s = 0; s < 4; s++) {
        const size_t n = counts[s];
        float *x = falloc(n ? n : 1);
        dg_test_fill(x, n, 82, -3.0f, 3.0f);
        long double ref = 0.0L;
        for (size_t i = 0; i < n; i++) ref += (long double)x[i] * x[i];
        double got = dg_cpu_sum_squares(n, x), again = dg_cpu_sum_squares(n, x);
        CHECK(fabsl((long double)got - ref) <= 1e-12L * (ref + 1.0L) && got == again,
              "sum_squares (n=%zu): %.17g vs %.17Lg", n, got, ref);
        free(x);
    }
}

/* ---------------------------------------------------------------- softmax cross-entropy */

/* cross-entropy against (1 − eps)·onehot + eps/k, as −Σ_j t_j log softmax_j, and softmax, in
 * double, for one row */
static double xent_ref(int k, const float *z, int label, double *p, double eps) {
    double mx = z[0], s = 0.0, l = 0.0;
    for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < k; j++) s += exp((double)z[j] - mx);
    if (p)
        for (int j = 0; j < k; j++) p[j] = exp((double)z[j] - mx) / s;
    for (int j = 0; j < k; j++) l -= ((j == label) * (1.0 - eps) + eps / k) * ((double)z[j] - mx - log(s));
    return l;
}

typedef struct xent_ctx {
    int n, k, use_ref;
    float *z, *probs, *loss;
    int32_t *labels;
    float smoothing;
} xent_ctx;

static double xent_mean_loss(void *p) {
    xent_ctx *c = p;
    double l = 0.0;
    if (c->use_ref) {
        for (int i = 0; i < c->n; i++) l += xent_ref(c->k, c->z + (size_t)i * c->k, c->labels[i], NULL, c->smoothing);
    } else {
        dg_cpu_softmax_xent(c->n, c->k, c->z, c->labels, c->probs, c->loss, NULL, 0.0f, c->smoothing);
        for (int i = 0; i < c->n; i++) l += c->loss[i];
    }
    return l / c->n;
}

static void test_softmax_xent(void) {
    const int n = 6, k = 10;
    const size_t nk = (size_t)n * k;
    float *z = falloc(nk), *probs = falloc(nk), *loss = falloc(n), *dz = falloc(nk);
    int32_t labels[6] = {0, 9, 3, 3, 7, 1};
    dg_test_fill(z, nk, 90, -4.0f, 4.0f);
    snap(z, nk);
    double pr[10];
    const float smoothings[3] = {0.0f, 0.1f, 0.35f}; /* label smoothing: torch's label_smoothing */
    for (int e = 0; e < 3; e++) {
        const float eps = smoothings[e];
        for (size_t i = 0; i < nk; i++) dz[i] = 123.0f; /* must be overwritten, not added to */
        dg_cpu_softmax_xent(n, k, z, labels, probs, loss, dz, 1.0f / n, eps);
        int ok_loss = 1, ok_p = 1, ok_g = 1;
        for (int i = 0; i < n; i++) {
            double l = xent_ref(k, z + (size_t)i * k, labels[i], pr, eps);
            ok_loss &= fabs(loss[i] - l) <= 1e-6 * fmax(1.0, fabs(l));
            for (int j = 0; j < k; j++) {
                size_t q = (size_t)i * k + j;
                ok_p &= fabs(probs[q] - pr[j]) <= 1e-6 * pr[j] + 1e-12;
                double g = (pr[j] - ((j == labels[i]) * (1.0 - eps) + eps / k)) / n;
                ok_g &= fabs(dz[q] - g) <= 1e-6 / n;
            }
        }
        CHECK(ok_loss, "softmax_xent (smoothing %g) loss != -Σ t log softmax (double)", eps);
        CHECK(ok_p, "softmax_xent (smoothing %g) probs != softmax (double)", eps);
        CHECK(ok_g, "softmax_xent (smoothing %g) dlogits != grad_scale·(p - t) (written, not accumulated)", eps);

        xent_ctx c = {n, k, 1, z, falloc(nk), falloc(n), labels, eps};
        const float h = 1.0f / 64.0f; /* the float kernel's step; the double reference takes a finer one,
                                         * since smoothing puts gradients near 0 (p_j ≈ ε/k) */
        double e_ref = dg_gradcheck(z, dz, nk, xent_mean_loss, &c, h / 16.0f, nk, 1e-5);
        c.use_ref = 0;
        double e_ker = dg_gradcheck(z, dz, nk, xent_mean_loss, &c, h, nk, 1e-2);
        CHECK(e_ref < 1e-3, "softmax_xent (smoothing %g) gradcheck (double loss): worst relative error %g", eps, e_ref);
        CHECK(e_ker < 1e-2, "softmax_xent (smoothing %g) gradcheck (kernel loss): worst relative error %g", eps, e_ker);
        free(c.probs); free(c.loss);
    }

    /* stability: logits of ±1e4 */
    float big[3 * 10] = {1e4f, -1e4f, 0.0f, 9999.0f, -9999.0f, 5000.0f, 1e4f, -1.0f, 1.0f, 2.0f,
                         -1e4f, -1e4f, -1e4f, -1e4f, -1e4f, -1e4f, -1e4f, -1e4f, -1e4f, -9990.0f,
                         1e4f, 1e4f, 1e4f, 1e4f, 1e4f, 1e4f, 1e4f, 1e4f, 1e4f, 1e4f};
    int32_t bl[3] = {1, 9, 4};
    float bp[30], bloss[3], bd[30];
    dg_cpu_softmax_xent(3, 10, big, bl, bp, bloss, bd, 1.0f / 3, 0.0f);
    int finite = 1, match = 1;
    for (int i = 0; i < 3; i++) {
        double l = xent_ref(10, big + i * 10, bl[i], pr, 0.0), s = 0.0;
        match &= fabs(bloss[i] - l) <= 1e-6 * fmax(1.0, fabs(l));
        for (int j = 0; j < 10; j++) {
            finite &= isfinite(bp[i * 10 + j]) && isfinite(bd[i * 10 + j]);
            s += bp[i * 10 + j];
            match &= fabs(bp[i * 10 + j] - pr[j]) <= 1e-6 * pr[j] + 1e-12;
        }
        match &= fabs(s - 1.0) < 1e-6;
        finite &= isfinite(bloss[i]);
    }
    CHECK(finite, "softmax_xent with logits ±1e4: non-finite output");
    CHECK(match, "softmax_xent with logits ±1e4: loss %g %g %g differs from double", bloss[0], bloss[1],
          bloss[2]);

    free(z); free(probs); free(loss); free(dz);
}

/* ---------------------------------------------------------------- optimizers */

/* torch.optim.SGD, written out in double */
static void sgd_ref(size_t n, double *w, const float *g, double *buf, double lr, double mom, double wd,
                    int nesterov, int first) {
    for (size_t i = 0; i < n; i++) {
        double d = g[i] + wd * w[i];
        if (mom != 0.0) {
            buf[i] = first ? d : mom * buf[i] + d;
            d = nesterov ? d + mom * buf[i] : buf[i];
        }
        w[i] -= lr * d;
    }
}

/* torch.optim.Adam (amsgrad off), written out in double */
/* Adam (L2: g + wd·w) or, decoupled, AdamW (w ·= 1 − lr·wd first), in double */
static void adam_ref(size_t n, double *w, const float *g, double *m, double *v, double lr, double b1,
                     double b2, double eps, double wd, int decoupled, int t) {
    for (size_t i = 0; i < n; i++) {
        if (decoupled) w[i] *= 1.0 - lr * wd;
        double gg = g[i] + (decoupled ? 0.0 : wd) * w[i];
        m[i] = b1 * m[i] + (1.0 - b1) * gg;
        v[i] = b2 * v[i] + (1.0 - b2) * gg * gg;
        double denom = sqrt(v[i]) / sqrt(1.0 - pow(b2, t)) + eps;
        w[i] -= lr / (1.0 - pow(b1, t)) * m[i] / denom;
    }
}

static void test_sgd(void) {
    const size_t n = 20000; /* above the parallel threshold */
    struct { float mom, wd; int nesterov; } cfg[6] = {
        {0.0f, 0.0f, 0}, {0.0f, 5e-4f, 0}, {0.9f, 0.0f, 0}, {0.9f, 5e-4f, 0}, {0.9f, 0.0f, 1}, {0.9f, 5e-4f, 1}};
    const float lr = 0.1f;
    float *w = falloc(n), *g = falloc(n), *buf = falloc(n), *w0 = falloc(n);
    double *wd = dalloc(n), *bd = dalloc(n), *d0 = dalloc(n);
    dg_test_fill(w0, n, 100, -1.0f, 1.0f);
    for (int k = 0; k < 6; k++) {
        memcpy(w, w0, n * sizeof(float));
        /* garbage in the buffer: the first step must set buf = g', not read it */
        for (size_t i = 0; i < n; i++) wd[i] = w0[i], bd[i] = 0.0, buf[i] = 7.0f;
        for (int t = 1; t <= 5; t++) {
            dg_test_fill(g, n, 200 + t, -1.0f, 1.0f);
            /* plain SGD never touches the buffer: pass NULL */
            dg_cpu_sgd_step(n, w, g, cfg[k].mom != 0.0f ? buf : NULL, lr, cfg[k].mom, cfg[k].wd,
                            cfg[k].nesterov, t == 1);
            sgd_ref(n, wd, g, bd, lr, cfg[k].mom, cfg[k].wd, cfg[k].nesterov, t == 1);
        }
        /* compare the total displacement, which float rounding of w would otherwise hide */
        float *dw = falloc(n);
        for (size_t i = 0; i < n; i++) dw[i] = w[i] - w0[i], d0[i] = wd[i] - w0[i];
        double ew = nerr(w, wd, n), edw = nerr(dw, d0, n), eb = cfg[k].mom != 0.0f ? nerr(buf, bd, n) : 0.0;
        CHECK(ew < 1e-6 && edw < 1e-5 && eb < 1e-6,
              "sgd momentum=%g wd=%g nesterov=%d: w %g, Δw %g, buf %g", cfg[k].mom, cfg[k].wd,
              cfg[k].nesterov, ew, edw, eb);
        free(dw);
    }
    free(w); free(g); free(buf); free(w0); free(wd); free(bd); free(d0);
}

static void test_adam(void) {
    const size_t n = 20000;
    struct { float lr, wd, gscale; int decoupled; } cfg[6] = {
        {1e-3f, 0.0f, 1.0f, 0}, {1e-2f, 1e-2f, 1.0f, 0},
        {1e-2f, 0.0f, 1e-8f, 0},  /* sqrt(v̂) ~ eps: the place of eps matters */
        {1e-1f, 5e-4f, 10.0f, 0},
        {1e-2f, 1e-1f, 1.0f, 1}, {1e-1f, 0.5f, 10.0f, 1}}; /* AdamW: the decay is a large share of the step */
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float *w = falloc(n), *g = falloc(n), *m = falloc(n), *v = falloc(n), *w0 = falloc(n), *dw = falloc(n);
    double *wd = dalloc(n), *md = dalloc(n), *vd = dalloc(n), *d0 = dalloc(n);
    dg_test_fill(w0, n, 300, -1.0f, 1.0f);
    for (int k = 0; k < 6; k++) {
        memcpy(w, w0, n * sizeof(float));
        for (size_t i = 0; i < n; i++) wd[i] = w0[i], md[i] = vd[i] = 0.0, m[i] = v[i] = 0.0f;
        for (int t = 1; t <= 5; t++) {
            dg_test_fill(g, n, 400 + t, -1.0f, 1.0f);
            for (size_t i = 0; i < n; i++) g[i] *= cfg[k].gscale;
            dg_cpu_adam_step(n, w, g, m, v, cfg[k].lr, b1, b2, eps, cfg[k].wd, cfg[k].decoupled, t);
            adam_ref(n, wd, g, md, vd, cfg[k].lr, b1, b2, eps, cfg[k].wd, cfg[k].decoupled, t);
        }
        for (size_t i = 0; i < n; i++) dw[i] = w[i] - w0[i], d0[i] = wd[i] - w0[i];
        double ew = nerr(w, wd, n), edw = nerr(dw, d0, n), em = nerr(m, md, n), ev = nerr(v, vd, n);
        CHECK(ew < 1e-6 && edw < 1e-4 && em < 1e-5 && ev < 1e-5,
              "%s lr=%g wd=%g gscale=%g: w %g, Δw %g, m %g, v %g", cfg[k].decoupled ? "adamw" : "adam", cfg[k].lr,
              cfg[k].wd, cfg[k].gscale, ew, edw, em, ev);
    }
    free(w); free(g); free(m); free(v); free(w0); free(dw); free(wd); free(md); free(vd); free(d0);
}

/* ---------------------------------------------------------------- non-finite edges of the math */

static void test_nonfinite_math(void) {
    /* clip_grad_norm_: a NaN norm gives a NaN coefficient (torch.clamp(max=1) keeps NaN), an infinite
     * one 0, a small one 1 (no change), a large one max_norm / (total + 1e-6) */
    CHECK(isnan(dg_clip_coef(NAN, 1.0f)), "clip coef at a NaN norm: %g, want NaN", dg_clip_coef(NAN, 1.0f));
    CHECK(dg_clip_coef(INFINITY, 1.0f) == 0.0f, "clip coef at an infinite norm: %g", dg_clip_coef(INFINITY, 1.0f));
    CHECK(dg_clip_coef(0.25, 1.0f) == 1.0f, "clip coef at norm 0.5, max 1: %g", dg_clip_coef(0.25, 1.0f));
    CHECK(dg_clip_coef(16.0, 1.0f) == 1.0f / (4.0f + 1e-6f), "clip coef at norm 4: %g", dg_clip_coef(16.0, 1.0f));
    /* max-pool ties: a +inf maximum ties itself (m − tol·|m| is NaN there), with and without a tolerance */
    CHECK(dg_lrp_ties(INFINITY, INFINITY, 1e-6f) && dg_lrp_ties(INFINITY, INFINITY, 0.0f),
          "an input of +inf does not tie its window's maximum +inf: its relevance would be dropped");
    CHECK(!dg_lrp_ties(1.0f, INFINITY, 1e-6f) && dg_lrp_ties(-INFINITY, -INFINITY, 1e-6f) &&
              !dg_lrp_ties(NAN, 1.0f, 1e-6f),
          "max-pool ties at ±inf / NaN");
}

/* ---------------------------------------------------------------- the backward walk */

/* The input read through two flattens, each into its own linear layer, summed: the input gradient
 * is Waᵀ·dy + Wbᵀ·dy, once (both flattens share the input's gradient buffer, which is added into
 * dx_input once), and the same again from a second walk over gradients left from the first. */
static void test_walk_two_flattens(void) {
    dg_net *net = dg_net_new("two-flattens", 1, 2, 2, 3);
    int fa = dg_net_flatten(net, 0), a = dg_net_linear(net, "a", fa, 3, 0);
    int fb = dg_net_flatten(net, 0), b = dg_net_linear(net, "b", fb, 3, 0);
    CHECK(dg_net_add(net, a, b) > 0 && dg_net_setup(net, dg_backend_cpu(), 2) == 0, "two flattens: setup");
    const dg_backend *be = net->be;
    float w[24], x[8], dy[6], dx[8];
    dg_test_fill(w, 24, 81, -1.0f, 1.0f);
    dg_test_fill(x, 8, 82, -1.0f, 1.0f);
    dg_test_fill(dy, 6, 83, -1.0f, 1.0f);
    be->upload(net->param_arena + net->params[0].offset, w, sizeof(float) * 12); /* a.weight [3, 4] */
    be->upload(net->param_arena + net->params[1].offset, w + 12, sizeof(float) * 12); /* b.weight */
    for (int rep = 0; rep < 2; rep++) {
        be->upload(net->nodes[0].y, x, sizeof x);
        dg_net_zero_grad(net);
        dg_net_forward(net, net->nodes[0].y, 2, DG_MODE_TRAIN);
        be->upload(net->nodes[dg_net_output(net)].dy, dy, sizeof dy);
        float *dx_dev = be->alloc(sizeof dx);
        dg_net_backward(net, 2, dx_dev);
        be->download(dx, dx_dev, sizeof dx);
        be->free(dx_dev);
        double worst = 0.0;
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 4; j++) {
                double g = 0.0;
                for (int o = 0; o < 3; o++) g += (double)dy[i * 3 + o] * (w[o * 4 + j] + w[12 + o * 4 + j]);
                worst = fmax(worst, fabs(dx[i * 4 + j] - g));
            }
        CHECK(worst < 1e-5, "two flattens of the input, walk %d: input gradient off by %g (counted twice?)", rep, worst);
    }
    dg_net_free(net);
}

int main(void) {
    test_walk_two_flattens();
    test_nonfinite_math();
    test_relu();
    test_bn();
    test_bn_eval_backward();
    test_dropout();
    test_dropout_shares();
    test_add_axpy();
    test_softmax_xent();
    test_sgd();
    test_adam();
    return dg_test_done("test_grad_misc");
}
