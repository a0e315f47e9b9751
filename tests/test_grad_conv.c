/* tests/test_grad_conv.c — CPU conv, bias, linear and pooling: forward against plain double
 * loops written here, backward against finite differences (L = Σ r·y, so backward runs with
 * dy = r) and against plain adjoint loops, the += contract, thread-count sweeps, repeatability,
 * and sentinels after every output and workspace to catch stray writes. Uses only the CPU
 * kernels through kernels/cpu/cpu.h. */
#include <string.h>
#include <omp.h>
#include "kernels/cpu/cpu.h"
#include "tests/check.h"

#define GUARD 16
#define SENTINEL 12345.678f
#define TOL_FWD 2e-5   /* float kernels vs double loops, normalised by the largest |ref| */
#define TOL_GRAD 2e-3  /* finite differences vs analytic */

/* n floats followed by GUARD sentinels. */
static float *galloc(size_t n) {
    float *p = malloc((n + GUARD) * sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    memset(p, 0, n * sizeof(float));
    for (int i = 0; i < GUARD; i++) p[n + i] = SENTINEL;
    return p;
}
static int guard_ok(const float *p, size_t n) {
    for (int i = 0; i < GUARD; i++)
        if (p[n + i] != SENTINEL) return 0;
    return 1;
}
static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

/* max |a − b| / max(max |b|, 1): the normalised error of a float result against a double one. */
static double nerr(const float *a, const double *b, size_t n) {
    double worst = 0.0, scale = 1.0;
    for (size_t i = 0; i < n; i++) if (fabs(b[i]) > scale) scale = fabs(b[i]);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= worst)) worst = e; /* NaN counts as worst */
    }
    return worst / scale;
}
static double dot(const float *r, const float *y, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * y[i];
    return s;
}

/* ---- convolution ---------------------------------------------------------------------------- */

static size_t xsz(const dg_conv_desc *d) { return (size_t)d->n * d->c * d->h * d->w; }
static size_t wsz(const dg_conv_desc *d) { return (size_t)d->k * d->c * d->r * d->s; }
static size_t ysz(const dg_conv_desc *d) { return (size_t)d->n * d->k * d->oh * d->ow; }

/* The definition, seven loops deep, in double. */
static void ref_conv_fwd(const dg_conv_desc *d, const float *x, const float *w, double *y) {
    for (int n = 0; n < d->n; n++)
        for (int k = 0; k < d->k; k++)
            for (int oy = 0; oy < d->oh; oy++)
                for (int ox = 0; ox < d->ow; ox++) {
                    double acc = 0.0;
                    for (int c = 0; c < d->c; c++)
                        for (int r = 0; r < d->r; r++)
                            for (int s = 0; s < d->s; s++) {
                                int iy = oy * d->stride - d->pad + r;
                                int ix = ox * d->stride - d->pad + s;
                                if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                                acc += (double)x[((size_t)(n * d->c + c) * d->h + iy) * d->w + ix] *
                                       w[((size_t)(k * d->c + c) * d->r + r) * d->s + s];
                            }
                    y[((size_t)(n * d->k + k) * d->oh + oy) * d->ow + ox] = acc;
                }
}

/* The adjoints of the same loops: dx = ∂(Σ dy·y)/∂x, dw = ∂(Σ dy·y)/∂w. */
static void ref_conv_bwd(const dg_conv_desc *d, const float *x, const float *w, const float *dy,
                         double *dx, double *dw) {
    for (int n = 0; n < d->n; n++)
        for (int k = 0; k < d->k; k++)
            for (int oy = 0; oy < d->oh; oy++)
                for (int ox = 0; ox < d->ow; ox++) {
                    double g = dy[((size_t)(n * d->k + k) * d->oh + oy) * d->ow + ox];
                    for (int c = 0; c < d->c; c++)
                        for (int r = 0; r < d->r; r++)
                            for (int s = 0; s < d->s; s++) {
                                int iy = oy * d->stride - d->pad + r;
                                int ix = ox * d->stride - d->pad + s;
                                if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                                size_t xi = ((size_t)(n * d->c + c) * d->h + iy) * d->w + ix;
                                size_t wi = ((size_t)(k * d->c + c) * d->r + r) * d->s + s;
                                dx[xi] += g * w[wi];
                                dw[wi] += g * x[xi];
                            }
                }
}

typedef struct conv_ctx {
    const dg_conv_desc *d;
    float *x, *w, *y, *r;
    void *ws;
} conv_ctx;

static double conv_loss(void *p) {
    conv_ctx *c = p;
    dg_cpu_conv_fwd(c->d, c->x, c->w, c->y, c->ws);
    return dot(c->r, c->y, ysz(c->d));
}

/* Workspace with GUARD sentinel floats after it. */
static void *ws_alloc(const dg_conv_desc *d, size_t *bytes) {
    *bytes = dg_cpu_conv_workspace_bytes(d);
    return galloc((*bytes + sizeof(float) - 1) / sizeof(float));
}
static int ws_ok(void *ws, size_t bytes) {
    return guard_ok(ws, (bytes + sizeof(float) - 1) / sizeof(float));
}

/* Everything about one geometry at the current thread count; gradcheck only when asked. */
static void conv_case(dg_conv_desc d, int gradcheck) {
    char tag[160];
    CHECK(dg_conv_desc_init(&d) == 0, "bad test geometry");
    snprintf(tag, sizeof tag, "n%d c%d %dx%d k%d %dx%d st%d pad%d threads%d", d.n, d.c, d.h, d.w,
             d.k, d.r, d.s, d.stride, d.pad, omp_get_max_threads());
    size_t nx = xsz(&d), nw = wsz(&d), ny = ysz(&d), wsb;
    float *x = galloc(nx), *w = galloc(nw), *y = galloc(ny), *r = galloc(ny);
    float *dx = galloc(nx), *dw = galloc(nw), *dx2 = galloc(nx), *dw2 = galloc(nw);
    void *ws = ws_alloc(&d, &wsb);
    double *yref = dalloc(ny), *dxref = dalloc(nx), *dwref = dalloc(nw);
    dg_test_fill(x, nx, 1 + (uint64_t)nx, -1.0f, 1.0f);
    dg_test_fill(w, nw, 2 + (uint64_t)nw, -1.0f, 1.0f);
    dg_test_fill(r, ny, 3 + (uint64_t)ny, -1.0f, 1.0f);

    /* forward and both backward passes against the loops */
    ref_conv_fwd(&d, x, w, yref);
    ref_conv_bwd(&d, x, w, r, dxref, dwref);
    dg_cpu_conv_fwd(&d, x, w, y, ws);
    double e = nerr(y, yref, ny);
    CHECK(e < TOL_FWD, "%s: conv_fwd error %.3g", tag, e);
    dg_test_fill_nan(dx, nx); /* written (accumulate 0): what dx held is not read */
    dg_cpu_conv_bwd_data(&d, r, w, dx, 0, ws);
    e = nerr(dx, dxref, nx);
    CHECK(e < TOL_FWD, "%s: conv_bwd_data error %.3g", tag, e);
    dg_cpu_conv_bwd_filter(&d, x, r, dw, ws);
    e = nerr(dw, dwref, nw);
    CHECK(e < TOL_FWD, "%s: conv_bwd_filter error %.3g", tag, e);

    /* += contract: twice onto pre-filled buffers gives base + 2·gradient */
    dg_test_fill(dx2, nx, 4, -2.0f, 2.0f);
    dg_test_fill(dw2, nw, 5, -2.0f, 2.0f);
    double *ex = dalloc(nx), *ew = dalloc(nw);
    for (size_t i = 0; i < nx; i++) ex[i] = dx2[i] + 2.0 * dxref[i];
    for (size_t i = 0; i < nw; i++) ew[i] = dw2[i] + 2.0 * dwref[i];
    dg_cpu_conv_bwd_data(&d, r, w, dx2, 1, ws);
    dg_cpu_conv_bwd_data(&d, r, w, dx2, 1, ws);
    dg_cpu_conv_bwd_filter(&d, x, r, dw2, ws);
    dg_cpu_conv_bwd_filter(&d, x, r, dw2, ws);
    e = nerr(dx2, ex, nx);
    CHECK(e < TOL_FWD, "%s: conv_bwd_data does not accumulate (error %.3g)", tag, e);
    e = nerr(dw2, ew, nw);
    CHECK(e < TOL_FWD, "%s: conv_bwd_filter does not accumulate (error %.3g)", tag, e);
    free(ex);
    free(ew);

    /* bit-for-bit repeatable */
    memset(dw2, 0, nw * sizeof(float));
    dg_cpu_conv_bwd_filter(&d, x, r, dw2, ws);
    CHECK(memcmp(dw, dw2, nw * sizeof(float)) == 0, "%s: conv_bwd_filter not repeatable", tag);
    dg_test_fill(dx2, nx, 6, -2.0f, 2.0f);
    dg_cpu_conv_bwd_data(&d, r, w, dx2, 0, ws);
    CHECK(memcmp(dx, dx2, nx * sizeof(float)) == 0, "%s: conv_bwd_data not repeatable", tag);

    if (gradcheck) { /* conv is linear in each argument, so a large step is exact up to rounding;
                      * 0.5 (not smaller) keeps the float32 rounding of the loss, which depends on
                      * the CPU's sgemm kernel, well under the tolerance */
        conv_ctx c = {&d, x, w, y, r, ws};
        e = dg_gradcheck(x, dx, nx, conv_loss, &c, 0.5f, 64, 1e-2);
        CHECK(e < TOL_GRAD, "%s: gradcheck dx %.3g", tag, e);
        e = dg_gradcheck(w, dw, nw, conv_loss, &c, 0.5f, 64, 1e-2);
        CHECK(e < TOL_GRAD, "%s: gradcheck dw %.3g", tag, e);
    }

    CHECK(guard_ok(y, ny) && guard_ok(dx, nx) && guard_ok(dw, nw) && guard_ok(dx2, nx) &&
          guard_ok(dw2, nw), "%s: write past an output", tag);
    CHECK(ws_ok(ws, wsb), "%s: write past the workspace (%zu bytes)", tag, wsb);
    free(x); free(w); free(y); free(r); free(dx); free(dw); free(dx2); free(dw2); free(ws);
    free(yref); free(dxref); free(dwref);
}

static void test_conv(void) {
    /* n, c, h, w, k, r, s, stride, pad */
    static const int cases[][9] = {
        {1, 3, 7, 9, 4, 3, 3, 1, 1},     /* batch 1, non-square */
        {3, 5, 11, 8, 6, 3, 3, 2, 1},    /* stride 2, odd sizes */
        {2, 3, 15, 13, 5, 7, 7, 2, 3},   /* the ResNet stem's 7×7/2 pad 3 */
        {4, 4, 9, 9, 3, 5, 5, 1, 2},     /* 5×5 pad 2 */
        {3, 1, 12, 12, 6, 5, 5, 1, 0},   /* LeNet-like, pad 0 */
        {5, 6, 8, 6, 7, 1, 1, 1, 0},     /* 1×1 direct, several samples per GEMM */
        {2, 16, 16, 17, 16, 1, 1, 1, 0}, /* 1×1 direct, one sample per GEMM */
        {3, 4, 9, 7, 5, 1, 1, 2, 0},     /* 1×1 stride 2 (a residual shortcut) */
        {7, 3, 10, 10, 4, 3, 3, 1, 1},   /* 100 columns: groups of 3 with a remainder */
        {2, 2, 5, 6, 3, 3, 3, 2, 2},     /* pad 2 with a 3×3 */
        {2, 3, 20, 20, 4, 3, 3, 1, 1},   /* 400 columns: one sample per GEMM */
        {2, 2, 7, 9, 3, 3, 5, 1, 1},     /* r ≠ s */
        {3, 2, 3, 3, 2, 7, 7, 2, 3},     /* kernel wider than the input */
        {6, 16, 4, 4, 8, 3, 3, 1, 1},    /* tiny planes: many samples per GEMM */
        {9, 4, 8, 8, 5, 3, 3, 1, 1},     /* batch-parallel or batch-serial by team size */
    };
    int saved = omp_get_max_threads();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *q = cases[i];
        dg_conv_desc d = {q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], 0, 0};
        conv_case(d, 1);
        /* other team sizes: batch-parallel and batch-serial paths, different splits */
        for (int t = 1; t <= 3; t++) {
            if (t == saved) continue;
            omp_set_num_threads(t);
            conv_case(d, 0);
        }
        omp_set_num_threads(saved);
    }
}

/* ---- bias ----------------------------------------------------------------------------------- */

typedef struct bias_ctx {
    int n, c, hw;
    const float *y0, *r;
    float *b, *y;
} bias_ctx;

static double bias_loss(void *p) {
    bias_ctx *c = p;
    size_t ny = (size_t)c->n * c->c * c->hw;
    memcpy(c->y, c->y0, ny * sizeof(float));
    dg_cpu_bias_fwd(c->n, c->c, c->hw, c->b, c->y);
    return dot(c->r, c->y, ny);
}

static void test_bias(void) {
    static const int cases[][3] = {{1, 4, 1}, {3, 5, 7}, {2, 3, 51}, {4, 2, 100}, {8, 16, 256}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = cases[i][0], c = cases[i][1], hw = cases[i][2];
        size_t ny = (size_t)n * c * hw;
        float *y0 = galloc(ny), *y = galloc(ny), *r = galloc(ny), *b = galloc(c), *db = galloc(c);
        double *yref = dalloc(ny), *dbref = dalloc(c), *ex = dalloc(c);
        dg_test_fill(y0, ny, 10 + i, -1.0f, 1.0f);
        dg_test_fill(r, ny, 20 + i, -1.0f, 1.0f);
        dg_test_fill(b, c, 30 + i, -1.0f, 1.0f);
        for (size_t j = 0; j < ny; j++) {
            int ch = (int)(j / hw) % c;
            yref[j] = (double)y0[j] + b[ch];
            dbref[ch] += r[j];
        }
        bias_ctx ctx = {n, c, hw, y0, r, b, y};
        bias_loss(&ctx);
        double e = nerr(y, yref, ny);
        CHECK(e < TOL_FWD, "bias %d×%d×%d: fwd error %.3g", n, c, hw, e);
        dg_cpu_bias_bwd(n, c, hw, r, db);
        e = nerr(db, dbref, c);
        CHECK(e < TOL_FWD, "bias %d×%d×%d: bwd error %.3g", n, c, hw, e);
        e = dg_gradcheck(b, db, c, bias_loss, &ctx, 0.05f, 64, 1e-2);
        CHECK(e < TOL_GRAD, "bias %d×%d×%d: gradcheck %.3g", n, c, hw, e);
        dg_test_fill(db, c, 40 + i, -1.0f, 1.0f);
        for (int j = 0; j < c; j++) ex[j] = db[j] + 2.0 * dbref[j];
        dg_cpu_bias_bwd(n, c, hw, r, db);
        dg_cpu_bias_bwd(n, c, hw, r, db);
        e = nerr(db, ex, c);
        CHECK(e < TOL_FWD, "bias %d×%d×%d: bwd does not accumulate (%.3g)", n, c, hw, e);
        CHECK(guard_ok(y, ny) && guard_ok(db, c), "bias %d×%d×%d: write past an output", n, c,
              hw);
        free(y0); free(y); free(r); free(b); free(db); free(yref); free(dbref); free(ex);
    }
}

/* ---- linear --------------------------------------------------------------------------------- */

typedef struct lin_ctx {
    int n, in, out;
    float *x, *w, *b, *y;
    const float *r;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    dg_cpu_linear_fwd(c->n, c->in, c->out, c->x, c->w, c->b, c->y);
    return dot(c->r, c->y, (size_t)c->n * c->out);
}

static void test_linear(void) {
    static const int cases[][4] = {{1, 7, 5, 1}, {5, 13, 11, 1}, {4, 9, 3, 0}, {33, 20, 10, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = cases[i][0], in = cases[i][1], out = cases[i][2], hasb = cases[i][3];
        size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
        float *x = galloc(nx), *w = galloc(nw), *b = galloc(out), *y = galloc(ny), *r = galloc(ny);
        float *dx = galloc(nx), *dw = galloc(nw), *db = galloc(out);
        double *yref = dalloc(ny), *dxref = dalloc(nx), *dwref = dalloc(nw), *dbref = dalloc(out);
        dg_test_fill(x, nx, 50 + i, -1.0f, 1.0f);
        dg_test_fill(w, nw, 60 + i, -1.0f, 1.0f);
        dg_test_fill(b, out, 70 + i, -1.0f, 1.0f);
        dg_test_fill(r, ny, 80 + i, -1.0f, 1.0f);
        for (int s = 0; s < n; s++)
            for (int o = 0; o < out; o++) {
                double acc = hasb ? b[o] : 0.0;
                double g = r[(size_t)s * out + o];
                for (int j = 0; j < in; j++) {
                    acc += (double)x[(size_t)s * in + j] * w[(size_t)o * in + j];
                    dxref[(size_t)s * in + j] += g * w[(size_t)o * in + j];
                    dwref[(size_t)o * in + j] += g * x[(size_t)s * in + j];
                }
                yref[(size_t)s * out + o] = acc;
                dbref[o] += g;
            }
        lin_ctx ctx = {n, in, out, x, w, hasb ? b : NULL, y, r};
        lin_loss(&ctx);
        double e = nerr(y, yref, ny);
        CHECK(e < TOL_FWD, "linear %d×%d→%d: fwd error %.3g", n, in, out, e);
        dg_test_fill_nan(dx, nx); /* written (accumulate 0): what dx held is not read */
        dg_cpu_linear_bwd(n, in, out, x, w, r, dx, 0, dw, hasb ? db : NULL);
        e = nerr(dx, dxref, nx);
        CHECK(e < TOL_FWD, "linear %d×%d→%d: dx error %.3g", n, in, out, e);
        e = nerr(dw, dwref, nw);
        CHECK(e < TOL_FWD, "linear %d×%d→%d: dw error %.3g", n, in, out, e);
        if (hasb) {
            e = nerr(db, dbref, out);
            CHECK(e < TOL_FWD, "linear %d×%d→%d: db error %.3g", n, in, out, e);
        }
        e = dg_gradcheck(x, dx, nx, lin_loss, &ctx, 0.5f, 64, 1e-2);
        CHECK(e < TOL_GRAD, "linear %d×%d→%d: gradcheck dx %.3g", n, in, out, e);
        e = dg_gradcheck(w, dw, nw, lin_loss, &ctx, 0.5f, 64, 1e-2);
        CHECK(e < TOL_GRAD, "linear %d×%d→%d: gradcheck dw %.3g", n, in, out, e);
        if (hasb) {
            e = dg_gradcheck(b, db, out, lin_loss, &ctx, 0.5f, 64, 1e-2);
            CHECK(e < TOL_GRAD, "linear %d×%d→%d: gradcheck db %.3g", n, in, out, e);
        }
        /* += contract from pre-filled buffers; dx and db may be NULL */
        double *ex = dalloc(nx), *ew = dalloc(nw), *eb = dalloc(out);
        dg_test_fill(dx, nx, 90, -1.0f, 1.0f);
        dg_test_fill(dw, nw, 91, -1.0f, 1.0f);
        dg_test_fill(db, out, 92, -1.0f, 1.0f);
        for (size_t j = 0; j < nx; j++) ex[j] = dx[j] + 2.0 * dxref[j];
        for (size_t j = 0; j < nw; j++) ew[j] = dw[j] + 3.0 * dwref[j];
        for (int j = 0; j < out; j++) eb[j] = db[j] + 2.0 * dbref[j];
        dg_cpu_linear_bwd(n, in, out, x, w, r, dx, 1, dw, db);
        dg_cpu_linear_bwd(n, in, out, x, w, r, dx, 1, dw, db);
        dg_cpu_linear_bwd(n, in, out, x, w, r, NULL, 1, dw, NULL);
        e = nerr(dx, ex, nx);
        CHECK(e < TOL_FWD, "linear %d×%d→%d: dx does not accumulate (%.3g)", n, in, out, e);
        e = nerr(dw, ew, nw);
        CHECK(e < TOL_FWD, "linear %d×%d→%d: dw does not accumulate (%.3g)", n, in, out, e);
        e = nerr(db, eb, out);
        CHECK(e < TOL_FWD, "linear %d×%d→%d: db does not accumulate (%.3g)", n, in, out, e);
        CHECK(guard_ok(y, ny) && guard_ok(dx, nx) && guard_ok(dw, nw) && guard_ok(db, out),
              "linear %d×%d→%d: write past an output", n, in, out);
        free(x); free(w); free(b); free(y); free(r); free(dx); free(dw); free(db);
        free(yref); free(dxref); free(dwref); free(dbref); free(ex); free(ew); free(eb);
    }
}

/* ---- pooling -------------------------------------------------------------------------------- */

/* Plain loops: max over the in-bounds window positions in row-major order (first max wins),
 * average over k·k (padding counts as zeros). */
static void ref_pool(const dg_pool_desc *d, const float *x, double *ymax, int32_t *amax,
                     double *yavg) {
    for (int pl = 0; pl < d->n * d->c; pl++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                double m = -INFINITY, s = 0.0;
                int32_t a = -1;
                for (int i = 0; i < d->k; i++)
                    for (int j = 0; j < d->k; j++) {
                        int iy = oy * d->stride - d->pad + i, ix = ox * d->stride - d->pad + j;
                        if (iy < 0 || iy >= d->h || ix < 0 || ix >= d->w) continue;
                        float v = x[((size_t)pl * d->h + iy) * d->w + ix];
                        s += v;
                        if (a < 0 || v > m) { m = v; a = iy * d->w + ix; }
                    }
                size_t o = ((size_t)pl * d->oh + oy) * d->ow + ox;
                ymax[o] = m;
                amax[o] = a;
                yavg[o] = s / (d->k * d->k);
            }
}

typedef struct pool_ctx {
    const dg_pool_desc *d;
    float *x, *y;
    int32_t *am;
    const float *r;
    int avg;
} pool_ctx;

static double pool_loss(void *p) {
    pool_ctx *c = p;
    if (c->avg) dg_cpu_avgpool_fwd(c->d, c->x, c->y);
    else dg_cpu_maxpool_fwd(c->d, c->x, c->y, c->am);
    return dot(c->r, c->y, (size_t)c->d->n * c->d->c * c->d->oh * c->d->ow);
}

/* Each plane holds distinct values 0.004 apart in a scrambled order (within ±2.1 for planes up
 * to 1024 elements), so that a finite-difference step of 1e-3 never changes which element wins
 * a max window, and float rounding of x ± 1e-3 stays small. */
static void fill_distinct(float *x, size_t planes, size_t hw, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
    for (size_t pl = 0; pl < planes; pl++) {
        float *p = x + pl * hw;
        for (size_t i = 0; i < hw; i++) p[i] = 0.004f * (float)((double)i - (double)hw / 2);
        for (size_t i = hw; i > 1; i--) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            size_t j = (size_t)(s % i);
            float t = p[i - 1]; p[i - 1] = p[j]; p[j] = t;
        }
    }
}

static void pool_case(dg_pool_desc d) {
    char tag[128];
    CHECK(dg_pool_desc_init(&d) == 0, "bad test geometry");
    snprintf(tag, sizeof tag, "pool n%d c%d %dx%d k%d st%d pad%d", d.n, d.c, d.h, d.w, d.k,
             d.stride, d.pad);
    size_t nx = (size_t)d.n * d.c * d.h * d.w, ny = (size_t)d.n * d.c * d.oh * d.ow;
    float *x = galloc(nx), *y = galloc(ny), *r = galloc(ny), *dx = galloc(nx);
    int32_t *am = malloc(ny * sizeof(int32_t)), *amref = malloc(ny * sizeof(int32_t));
    double *ymax = dalloc(ny), *yavg = dalloc(ny), *dxref = dalloc(nx), *ex = dalloc(nx);
    fill_distinct(x, (size_t)d.n * d.c, (size_t)d.h * d.w, nx);
    dg_test_fill(r, ny, 100 + nx, -1.0f, 1.0f);
    ref_pool(&d, x, ymax, amref, yavg);

    for (int avg = 0; avg <= 1; avg++) {
        const char *op = avg ? "avgpool" : "maxpool";
        pool_ctx c = {&d, x, y, am, r, avg};
        pool_loss(&c);
        double e = nerr(y, avg ? yavg : ymax, ny);
        CHECK(e < TOL_FWD, "%s %s: fwd error %.3g", tag, op, e);
        if (!avg) CHECK(memcmp(am, amref, ny * sizeof(int32_t)) == 0, "%s: argmax differs", tag);
        /* adjoint by loops */
        memset(dxref, 0, nx * sizeof(double));
        for (int pl = 0; pl < d.n * d.c; pl++)
            for (int oy = 0; oy < d.oh; oy++)
                for (int ox = 0; ox < d.ow; ox++) {
                    size_t o = ((size_t)pl * d.oh + oy) * d.ow + ox;
                    if (!avg) { dxref[(size_t)pl * d.h * d.w + amref[o]] += r[o]; continue; }
                    for (int i = 0; i < d.k; i++)
                        for (int j = 0; j < d.k; j++) {
                            int iy = oy * d.stride - d.pad + i, ix = ox * d.stride - d.pad + j;
                            if (iy < 0 || iy >= d.h || ix < 0 || ix >= d.w) continue;
                            dxref[((size_t)pl * d.h + iy) * d.w + ix] += r[o] / (double)(d.k * d.k);
                        }
                }
        dg_test_fill_nan(dx, nx); /* written (accumulate 0): what dx held is not read */
        if (avg) dg_cpu_avgpool_bwd(&d, r, dx, 0);
        else dg_cpu_maxpool_bwd(&d, am, r, dx, 0);
        e = nerr(dx, dxref, nx);
        CHECK(e < TOL_FWD, "%s %s: bwd error %.3g", tag, op, e);
        /* average pooling is linear: a large step; max pooling: below half the value spacing */
        e = dg_gradcheck(x, dx, nx, pool_loss, &c, avg ? 0.05f : 1e-3f, 128, 1e-2);
        CHECK(e < TOL_GRAD, "%s %s: gradcheck %.3g", tag, op, e);
        dg_test_fill(dx, nx, 110, -1.0f, 1.0f);
        for (size_t j = 0; j < nx; j++) ex[j] = dx[j] + 2.0 * dxref[j];
        for (int rep = 0; rep < 2; rep++) {
            if (avg) dg_cpu_avgpool_bwd(&d, r, dx, 1);
            else dg_cpu_maxpool_bwd(&d, am, r, dx, 1);
        }
        e = nerr(dx, ex, nx);
        CHECK(e < TOL_FWD, "%s %s: bwd does not accumulate (%.3g)", tag, op, e);
        CHECK(guard_ok(y, ny) && guard_ok(dx, nx), "%s %s: write past an output", tag, op);
    }

    /* ties: a constant plane picks each window's first in-bounds element */
    for (size_t i = 0; i < nx; i++) x[i] = 1.0f;
    ref_pool(&d, x, ymax, amref, yavg);
    dg_cpu_maxpool_fwd(&d, x, y, am);
    CHECK(memcmp(am, amref, ny * sizeof(int32_t)) == 0, "%s: ties not first-wins", tag);
    /* padding never wins: all-negative input keeps negative maxima, argmax in bounds */
    for (size_t i = 0; i < nx; i++) x[i] = -1.0f - (float)(i % 5);
    ref_pool(&d, x, ymax, amref, yavg);
    dg_cpu_maxpool_fwd(&d, x, y, am);
    double e = nerr(y, ymax, ny);
    CHECK(e == 0.0 && memcmp(am, amref, ny * sizeof(int32_t)) == 0,
          "%s: padding won a window (error %.3g)", tag, e);
    for (size_t i = 0; i < nx; i++) x[i] = -INFINITY;
    dg_cpu_maxpool_fwd(&d, x, y, am);
    int inb = 1;
    for (size_t i = 0; i < ny; i++) inb &= am[i] >= 0 && am[i] < d.h * d.w && y[i] == -INFINITY;
    CHECK(inb, "%s: a window of -inf has no in-bounds winner", tag);

    free(x); free(y); free(r); free(dx); free(am); free(amref);
    free(ymax); free(yavg); free(dxref); free(ex);
}

static void test_pool(void) {
    /* n, c, h, w, k, stride, pad */
    static const int cases[][7] = {
        {2, 3, 8, 8, 2, 2, 0},    /* VGG / LeNet 2×2 (the fast path) */
        {1, 3, 7, 9, 2, 2, 0},    /* 2×2 fast path, odd sizes: floor mode drops the last row/column */
        {1, 2, 7, 9, 3, 2, 1},    /* ResNet stem 3×3/2 pad 1, non-square */
        {3, 2, 5, 6, 3, 1, 1},    /* stride 1 */
        {2, 2, 9, 7, 3, 3, 0},
        {1, 1, 11, 11, 5, 2, 2},  /* pad 2 */
        {2, 3, 7, 7, 7, 7, 0},    /* global average */
        {2, 4, 8, 8, 8, 8, 0},    /* global average, even */
        {1, 2, 6, 5, 2, 1, 1},
        {4, 8, 32, 30, 2, 2, 0},  /* large enough to run on a team */
        {2, 8, 31, 33, 3, 2, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *q = cases[i];
        pool_case((dg_pool_desc){q[0], q[1], q[2], q[3], q[4], q[5], q[6], 0, 0});
    }
}

int main(void) {
    test_conv();
    test_bias();
    test_linear();
    test_pool();
    return dg_test_done("test_grad_conv");
}
