/* kernels/cpu/conv.c — CPU convolution (im2col + OpenBLAS sgemm; OpenMP over the batch, or
 * threaded GEMMs for small batches and planes) and the per-channel bias. The shapes that oneDNN
 * runs faster go to conv_dnnl.c instead; this path touches only the buffers it is handed (no
 * allocation, no global state). Results are bit-for-bit repeatable for a fixed thread count
 * (static splits, fixed-order sums). */
#include <string.h>
#include <omp.h>
#include <cblas.h>
#include "cpu.h"

/* Samples are batched into one GEMM until it has about this many columns: a conv with a small
 * output plane (8×8, 4×4, 2×2) would otherwise run skinny, bandwidth-bound GEMMs. */
#define DG_CONV_TARGET_COLS 256

/* Below this many multiply-adds in a whole conv pass, the batch is not split across threads
 * (elements copied or summed use DG_CPU_PAR_MIN from cpu.h). */
#define DG_CONV_PAR_MIN_MACS 65536

/* Workspace regions are rounded up to 16 floats so that each starts 64-byte aligned. */
static size_t round16(size_t floats) { return (floats + 15) & ~(size_t)15; }

/* The team size the workspace is sized for and the ops run with: both sides must agree, so a
 * caller that changes the OpenMP thread count must size (and allocate) the workspace again.
 * Read outside any parallel region only (geom_of): inside one it is the next nesting level's
 * count (1 under OMP_NUM_THREADS=2,1), and slices laid out with it would overlap. */
static int conv_threads(void) { return omp_get_max_threads(); }

typedef struct conv_geom {
    int crs;           /* C·R·S: rows of the column matrix */
    int p;             /* OH·OW: columns per sample */
    int direct;        /* 1×1, stride 1, pad 0: the input already is the column matrix */
    int gmax;          /* samples per GEMM for one thread */
    int threads;       /* the team the workspace is sliced for (conv_threads() at set-up) */
    size_t col, tmp, dw; /* floats per thread in each region of the workspace */
} conv_geom;

static conv_geom geom_of(const dg_conv_desc *d) {
    conv_geom g;
    g.threads = conv_threads();
    g.crs = d->c * d->r * d->s;
    g.p = d->oh * d->ow;
    g.direct = d->r == 1 && d->s == 1 && d->stride == 1 && d->pad == 0;
    g.gmax = (DG_CONV_TARGET_COLS + g.p - 1) / g.p;
    if (g.gmax > d->n) g.gmax = d->n;
    if (g.gmax < 1) g.gmax = 1;
    size_t cols = (size_t)g.gmax * (size_t)g.p;
    g.col = (g.direct && g.gmax == 1) ? 0 : round16((size_t)g.crs * cols);
    g.tmp = g.gmax > 1 ? round16((size_t)d->k * cols) : 0;
    g.dw = round16((size_t)d->k * (size_t)g.crs);
    return g;
}

/* The workspace is three regions, each with one slice per thread: columns [T][CRS, gmax·P],
 * gathered/scattered planes [T][K, gmax·P], partial filter gradients [T or 1][CRS, K]. A
 * batch-serial pass uses the first two regions whole, as one slice T times larger. */
typedef struct conv_bufs { float *col, *tmp, *dwt; } conv_bufs;

static conv_bufs bufs_of(const conv_geom *g, void *ws, int t) {
    float *b = ws;
    size_t T = (size_t)g->threads;
    conv_bufs s = {b + t * g->col, b + T * g->col + t * g->tmp,
                   b + T * (g->col + g->tmp) + t * g->dw};
    return s;
}

/* How a pass is split. Batch-parallel (return 1): each thread takes a contiguous range of
 * samples and runs single-threaded GEMMs of up to gmax samples; chosen when every thread gets at
 * least one full group and the pass is not tiny. Otherwise batch-serial (return 0, *g samples
 * per GEMM): OpenBLAS threads each GEMM and the GEMMs are made nthreads times wider, which suits
 * small batches and small planes (VGG's 2×2 convs, where per-thread filter partials would also
 * be large). */
static int split(const dg_conv_desc *d, const conv_geom *cg, int *g) {
    int T = cg->threads;
    double macs = (double)d->n * d->k * cg->crs * cg->p;
    if (T > 1 && d->n >= T && d->n / T >= cg->gmax && macs >= DG_CONV_PAR_MIN_MACS) {
        *g = cg->gmax;
        return 1;
    }
    long wide = (long)cg->gmax * T;
    *g = cg->gmax == 1 ? 1 : (int)(wide < d->n ? wide : d->n);
    return 0;
}

/* Filter partials are needed per thread only when the pass is batch-parallel. */
size_t dg_cpu_conv_workspace_bytes(const dg_conv_desc *d) {
    conv_geom cg = geom_of(d);
    int g;
    size_t T = (size_t)cg.threads, parts = split(d, &cg, &g) ? T : 1;
    return (T * (cg.col + cg.tmp) + parts * cg.dw) * sizeof(float);
}

/* Valid output columns [lo, hi) for kernel column s: those whose input column lies inside. */
static void valid_range(int s, int stride, int pad, int in, int out, int *lo, int *hi) {
    int a = pad - s > 0 ? (pad - s + stride - 1) / stride : 0;
    int t = in - 1 + pad - s;
    int b = t < 0 ? 0 : t / stride + 1;
    if (b > out) b = out;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* One sample x[C,H,W] → col rows (c,r,s), columns [0, OH·OW) of a matrix with leading dim ldc.
 * par: split over channels with OpenMP (used when the caller is not already parallel). */
static void im2col(const dg_conv_desc *d, const float *x, float *col, size_t ldc, int par) {
    const int H = d->h, W = d->w, R = d->r, S = d->s, OH = d->oh, OW = d->ow;
    const int st = d->stride, pad = d->pad;
    const int team = par && (size_t)d->c * R * S * OH * OW >= DG_CPU_PAR_MIN;
#pragma omp parallel for schedule(static) if (team)
    for (int c = 0; c < d->c; c++) {
        for (int r = 0; r < R; r++) {
            for (int s = 0; s < S; s++) {
                float *row = col + ((size_t)(c * R + r) * S + s) * ldc;
                int lo, hi;
                valid_range(s, st, pad, W, OW, &lo, &hi);
                for (int oh = 0; oh < OH; oh++) {
                    float *dst = row + (size_t)oh * OW;
                    int ih = oh * st - pad + r;
                    if (ih < 0 || ih >= H) {
                        memset(dst, 0, (size_t)OW * sizeof(float));
                        continue;
                    }
                    const float *src = x + ((size_t)c * H + ih) * W + (lo * st - pad + s);
                    if (lo > 0) memset(dst, 0, (size_t)lo * sizeof(float));
                    if (st == 1) {
                        memcpy(dst + lo, src, (size_t)(hi - lo) * sizeof(float));
                    } else {
                        for (int ow = lo; ow < hi; ow++) dst[ow] = src[(size_t)(ow - lo) * st];
                    }
                    if (hi < OW) memset(dst + hi, 0, (size_t)(OW - hi) * sizeof(float));
                }
            }
        }
    }
}

/* The adjoint of im2col: dx[C,H,W] += the column entries that came from each input element.
 * Channels are independent, so splitting over them needs no synchronisation. */
static void col2im_add(const dg_conv_desc *d, const float *col, size_t ldc, float *dx, int par) {
    const int H = d->h, W = d->w, R = d->r, S = d->s, OH = d->oh, OW = d->ow;
    const int st = d->stride, pad = d->pad;
    const int team = par && (size_t)d->c * R * S * OH * OW >= DG_CPU_PAR_MIN;
#pragma omp parallel for schedule(static) if (team)
    for (int c = 0; c < d->c; c++) {
        for (int r = 0; r < R; r++) {
            for (int s = 0; s < S; s++) {
                const float *row = col + ((size_t)(c * R + r) * S + s) * ldc;
                int lo, hi;
                valid_range(s, st, pad, W, OW, &lo, &hi);
                for (int oh = 0; oh < OH; oh++) {
                    int ih = oh * st - pad + r;
                    if (ih < 0 || ih >= H) continue;
                    const float *src = row + (size_t)oh * OW;
                    float *dst = dx + ((size_t)c * H + ih) * W + (lo * st - pad + s);
                    if (st == 1) {
                        for (int ow = lo; ow < hi; ow++) dst[ow - lo] += src[ow];
                    } else {
                        for (int ow = lo; ow < hi; ow++) dst[(size_t)(ow - lo) * st] += src[ow];
                    }
                }
            }
        }
    }
}

/* Copy g samples' [K, P] planes from NCHW into one [K, g·P] matrix, and back. */
static void gather_planes(const float *src, int g, int k, int p, float *dst, int par) {
    const int team = par && (size_t)g * k * p >= DG_CPU_PAR_MIN;
#pragma omp parallel for schedule(static) if (team)
    for (int jk = 0; jk < g * k; jk++) {
        int j = jk / k, kk = jk % k;
        memcpy(dst + ((size_t)kk * g + j) * p, src + (size_t)jk * p, (size_t)p * sizeof(float));
    }
}
static void scatter_planes(const float *src, int g, int k, int p, float *dst, int par) {
    const int team = par && (size_t)g * k * p >= DG_CPU_PAR_MIN;
#pragma omp parallel for schedule(static) if (team)
    for (int jk = 0; jk < g * k; jk++) {
        int j = jk / k, kk = jk % k;
        memcpy(dst + (size_t)jk * p, src + ((size_t)kk * g + j) * p, (size_t)p * sizeof(float));
    }
}

/* Column matrix [CRS, g·P] for samples x0.. (g of them); returns it (x0 itself when direct). */
static const float *columns(const dg_conv_desc *d, const conv_geom *cg, const float *x0, int g,
                            float *col, int par) {
    if (cg->direct && g == 1) return x0;
    size_t ldc = (size_t)g * cg->p, xs = (size_t)d->c * d->h * d->w;
    for (int j = 0; j < g; j++) im2col(d, x0 + j * xs, col + (size_t)j * cg->p, ldc, par);
    return col;
}

/* The three passes over samples [n0, n1) in GEMMs of up to gmax samples, with buffers b.
 * par: the caller is not inside a parallel region, so OpenBLAS and the copy loops thread. */
static void fwd_range(const dg_conv_desc *d, const conv_geom *cg, const float *x, const float *w,
                      float *y, conv_bufs b, int n0, int n1, int gmax, int par) {
    size_t xs = (size_t)d->c * d->h * d->w, ys = (size_t)d->k * cg->p;
    for (int i = n0; i < n1; i += gmax) {
        int g = n1 - i < gmax ? n1 - i : gmax;
        const float *cm = columns(d, cg, x + i * xs, g, b.col, par);
        int cols = g * cg->p;
        float *out = g == 1 ? y + i * ys : b.tmp;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->k, cols, cg->crs, 1.0f, w,
                    cg->crs, cm, cols, 0.0f, out, cols);
        if (g > 1) scatter_planes(b.tmp, g, d->k, cg->p, y + i * ys, par);
    }
}

static void bwd_data_range(const dg_conv_desc *d, const conv_geom *cg, const float *dy,
                           const float *w, float *dx, int accumulate, conv_bufs b, int n0, int n1,
                           int gmax, int par) {
    size_t xs = (size_t)d->c * d->h * d->w, ys = (size_t)d->k * cg->p;
    for (int i = n0; i < n1; i += gmax) {
        int g = n1 - i < gmax ? n1 - i : gmax;
        int cols = g * cg->p;
        if (cg->direct && g == 1) { /* dx_n (+)= Wᵀ·dy_n straight into the input gradient */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cg->crs, cols, d->k, 1.0f, w,
                        cg->crs, dy + i * ys, cols, accumulate ? 1.0f : 0.0f, dx + i * xs, cols);
            continue;
        }
        const float *dym = dy + i * ys;
        if (g > 1) {
            gather_planes(dy + i * ys, g, d->k, cg->p, b.tmp, par);
            dym = b.tmp;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cg->crs, cols, d->k, 1.0f, w, cg->crs,
                    dym, cols, 0.0f, b.col, cols);
        for (int j = 0; j < g; j++) { /* overlapping windows add up in col2im: from zero when writing */
            if (!accumulate) memset(dx + (i + j) * xs, 0, xs * sizeof(float));
            col2im_add(d, b.col + (size_t)j * cg->p, (size_t)cols, dx + (i + j) * xs, par);
        }
    }
}

/* The partial filter gradient over samples [n0, n1), written (not accumulated) into b.dwt in
 * the transposed layout [CRS, K] = Σ col_n·dy_nᵀ: OpenBLAS runs this form up to a third faster
 * than [K, CRS] = Σ dy_n·col_nᵀ when K is small (64 filters on a 32×32 plane). */
static void bwd_filter_range(const dg_conv_desc *d, const conv_geom *cg, const float *x,
                             const float *dy, conv_bufs b, int n0, int n1, int gmax, int par) {
    size_t xs = (size_t)d->c * d->h * d->w, ys = (size_t)d->k * cg->p;
    if (n0 >= n1) memset(b.dwt, 0, (size_t)d->k * cg->crs * sizeof(float));
    for (int i = n0; i < n1; i += gmax) {
        int g = n1 - i < gmax ? n1 - i : gmax;
        int cols = g * cg->p;
        const float *cm = columns(d, cg, x + i * xs, g, b.col, par);
        const float *dym = dy + i * ys;
        if (g > 1) {
            gather_planes(dy + i * ys, g, d->k, cg->p, b.tmp, par);
            dym = b.tmp;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cg->crs, d->k, cols, 1.0f, cm, cols,
                    dym, cols, i == n0 ? 0.0f : 1.0f, b.dwt, d->k);
    }
}

/* dw[K, CRS] += Σ_t partial_t[CRS, K]ᵀ, each element summed in thread order (the result does not
 * depend on which thread finished first), in blocks of 16 filters so that both the partials'
 * rows and dw's 16 rows stay in cache while the block is transposed. */
static void sum_partials(const dg_conv_desc *d, const conv_geom *cg, const float *dwt, int parts,
                         float *dw) {
    const int K = d->k, crs = cg->crs;
    const int team = (size_t)K * crs * parts >= DG_CPU_PAR_MIN;
#pragma omp parallel for schedule(static) if (team)
    for (int kb = 0; kb < K; kb += 16) {
        int ke = kb + 16 < K ? kb + 16 : K;
        for (int i = 0; i < crs; i++) {
            for (int k = kb; k < ke; k++) {
                float s = dwt[(size_t)i * K + k];
                for (int u = 1; u < parts; u++) s += dwt[u * cg->dw + (size_t)i * K + k];
                dw[(size_t)k * crs + i] += s;
            }
        }
    }
}

/* Thread t's contiguous share of n samples. */
static void share(int n, int t, int nt, int *n0, int *n1) {
    *n0 = (int)((long)n * t / nt);
    *n1 = (int)((long)n * (t + 1) / nt);
}

void dg_cpu_im2col_conv_fwd(const dg_conv_desc *d, const float *x, const float *w, float *y, void *ws) {
    conv_geom cg = geom_of(d);
    int g;
    if (!split(d, &cg, &g)) {
        fwd_range(d, &cg, x, w, y, bufs_of(&cg, ws, 0), 0, d->n, g, 1);
        return;
    }
#pragma omp parallel num_threads(cg.threads)
    {
        int t = omp_get_thread_num(), n0, n1;
        share(d->n, t, omp_get_num_threads(), &n0, &n1);
        fwd_range(d, &cg, x, w, y, bufs_of(&cg, ws, t), n0, n1, g, 0);
    }
}

void dg_cpu_im2col_conv_bwd_data(const dg_conv_desc *d, const float *dy, const float *w, float *dx, int accumulate,
                                 void *ws) {
    conv_geom cg = geom_of(d);
    int g;
    if (!split(d, &cg, &g)) {
        bwd_data_range(d, &cg, dy, w, dx, accumulate, bufs_of(&cg, ws, 0), 0, d->n, g, 1);
        return;
    }
#pragma omp parallel num_threads(cg.threads)
    {
        int t = omp_get_thread_num(), n0, n1;
        share(d->n, t, omp_get_num_threads(), &n0, &n1);
        bwd_data_range(d, &cg, dy, w, dx, accumulate, bufs_of(&cg, ws, t), n0, n1, g, 0);
    }
}

void dg_cpu_im2col_conv_bwd_filter(const dg_conv_desc *d, const float *x, const float *dy, float *dw, void *ws) {
    conv_geom cg = geom_of(d);
    int g, parts = 1;
    if (!split(d, &cg, &g)) {
        bwd_filter_range(d, &cg, x, dy, bufs_of(&cg, ws, 0), 0, d->n, g, 1);
    } else {
#pragma omp parallel num_threads(cg.threads)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads(), n0, n1;
            share(d->n, t, nt, &n0, &n1);
            bwd_filter_range(d, &cg, x, dy, bufs_of(&cg, ws, t), n0, n1, g, 0);
            if (t == 0) parts = nt;
        }
    }
    sum_partials(d, &cg, bufs_of(&cg, ws, 0).dwt, parts, dw);
}

/* The op table's entries: oneDNN where conv_dnnl.c takes the shape and pass, else im2col. */
void dg_cpu_conv_fwd(const dg_conv_desc *d, const float *x, const float *w, float *y, void *ws) {
    if (dg_cpu_dnnl_conv_fwd(d, x, w, y) != 0) dg_cpu_im2col_conv_fwd(d, x, w, y, ws);
}
void dg_cpu_conv_bwd_data(const dg_conv_desc *d, const float *dy, const float *w, float *dx, int accumulate,
                          void *ws) {
    if (dg_cpu_dnnl_conv_bwd_data(d, dy, w, dx, accumulate) != 0)
        dg_cpu_im2col_conv_bwd_data(d, dy, w, dx, accumulate, ws);
}
void dg_cpu_conv_bwd_filter(const dg_conv_desc *d, const float *x, const float *dy, float *dw, void *ws) {
    if (dg_cpu_dnnl_conv_bwd_filter(d, x, dy, dw) != 0) dg_cpu_im2col_conv_bwd_filter(d, x, dy, dw, ws);
}

void dg_cpu_bias_fwd(int n, int c, int hw, const float *b, float *y) {
    const int team = (size_t)n * c * hw >= DG_CPU_PAR_MIN;
#pragma omp parallel for schedule(static) if (team)
    for (long pl = 0; pl < (long)n * c; pl++) {
        float v = b[pl % c], *p = y + (size_t)pl * hw;
        for (int i = 0; i < hw; i++) p[i] += v;
    }
}

/* Σ of one plane: 16 float lanes (independent chains the compiler can vectorise), combined in
 * double in a fixed order. */
static double plane_sum(const float *p, int hw) {
    float lane[16] = {0};
    int j = 0;
    for (; j + 16 <= hw; j += 16)
        for (int l = 0; l < 16; l++) lane[l] += p[j + l];
    double s = 0.0;
    for (int l = 0; l < 16; l++) s += lane[l];
    for (; j < hw; j++) s += p[j];
    return s;
}

/* One thread per channel, samples in order: deterministic whatever the team size. */
void dg_cpu_bias_bwd(int n, int c, int hw, const float *dy, float *db) {
    const int team = (size_t)n * c * hw >= DG_CPU_PAR_MIN;
#pragma omp parallel for schedule(static) if (team)
    for (int ch = 0; ch < c; ch++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) acc += plane_sum(dy + ((size_t)i * c + ch) * hw, hw);
        db[ch] += (float)acc;
    }
}
