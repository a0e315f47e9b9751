/* kernels/cuda/pool.cu — CUDA max and average pooling with the CPU's exact semantics (square
 * windows clipped to the input, floor mode; max: first maximum in row-major window order wins, a
 * NaN takes over, padding never wins, argmax = flat index within the (n, c) plane; average:
 * divisor k·k, counting padding). Forward: one thread per output. Backward: one thread per input
 * element GATHERING from the windows that cover it, in output order — no atomics, and the same
 * additions in the same order as the CPU's scatter. Touches only the buffers it is handed. */
#include "cuda_backend.h"
#include "../math/relevance.h"

namespace {

struct pool_geom {
    int c, h, w, k, stride, pad, oh, ow;
};

pool_geom geom_of(const dg_pool_desc *d) {
    pool_geom g = {d->c, d->h, d->w, d->k, d->stride, d->pad, d->oh, d->ow};
    return g;
}

/* the window of output (oy, ox) clipped to the input, as kernels/cpu/pool.c's window() */
__device__ __forceinline__ void window(const pool_geom &g, int oy, int ox, int &y0, int &y1, int &x0, int &x1) {
    int ys = oy * g.stride - g.pad, xs = ox * g.stride - g.pad;
    int ye = ys + g.k, xe = xs + g.k;
    y0 = ys < 0 ? 0 : ys;
    x0 = xs < 0 ? 0 : xs;
    y1 = ye > g.h ? g.h : ye;
    x1 = xe > g.w ? g.w : xe;
}

/* outputs whose window covers input row i: shapes.c's dg_pool_covering, on the device */
__device__ __forceinline__ void covering(int i, int k, int stride, int pad, int out, int &lo, int &hi) {
    int t = i + pad - k + 1;
    int a = t <= 0 ? 0 : (t + stride - 1) / stride;
    int b = (i + pad) / stride; /* i + pad ≥ 0 */
    if (b > out - 1) b = out - 1;
    lo = a;
    hi = b + 1 > a ? b + 1 : a;
}

__global__ void maxpool_fwd_kernel(size_t total, pool_geom g, const float *__restrict__ x, float *__restrict__ y,
                                   int32_t *__restrict__ argmax) {
    const size_t out = (size_t)g.oh * g.ow, in = (size_t)g.h * g.w;
    for (size_t o = blockIdx.x * (size_t)blockDim.x + threadIdx.x; o < total; o += (size_t)gridDim.x * blockDim.x) {
        size_t pl = o / out;
        int r = (int)(o - pl * out), oy = r / g.ow, ox = r - oy * g.ow;
        const float *xp = x + pl * in;
        int y0, y1, x0, x1;
        window(g, oy, ox, y0, y1, x0, x1);
        int best = y0 * g.w + x0;
        float m = -INFINITY;
        for (int iy = y0; iy < y1; iy++) {
            for (int ix = x0; ix < x1; ix++) {
                float v = xp[iy * g.w + ix];
                if (v > m || isnan(v)) {
                    m = v;
                    best = iy * g.w + ix;
                }
            }
        }
        y[o] = m;
        argmax[o] = best;
    }
}

__global__ void maxpool_bwd_kernel(size_t total, pool_geom g, const int32_t *__restrict__ argmax,
                                   const float *__restrict__ dy, float *__restrict__ dx, int accumulate) {
    const size_t out = (size_t)g.oh * g.ow, in = (size_t)g.h * g.w;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        size_t pl = e / in;
        int idx = (int)(e - pl * in), iy = idx / g.w, ix = idx - iy * g.w;
        int oy0, oy1, ox0, ox1;
        covering(iy, g.k, g.stride, g.pad, g.oh, oy0, oy1);
        covering(ix, g.k, g.stride, g.pad, g.ow, ox0, ox1);
        const int32_t *ap = argmax + pl * out;
        const float *dyp = dy + pl * out;
        float acc = accumulate ? dx[e] : 0.0f;
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = ox0; ox < ox1; ox++)
                if (ap[oy * g.ow + ox] == idx) acc += dyp[oy * g.ow + ox];
        dx[e] = acc;
    }
}

/* relevance with ties shared: gathered per input from the windows covering it, in output order
 * (the CPU's scatter order); each window's tie count is recomputed where it is needed */
__global__ void lrp_maxpool_kernel(size_t total, pool_geom g, const float *__restrict__ x, const float *__restrict__ y,
                                   const float *__restrict__ r, float rel_tol, float *__restrict__ rin) {
    const size_t out = (size_t)g.oh * g.ow, in = (size_t)g.h * g.w;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        size_t pl = e / in;
        int idx = (int)(e - pl * in), iy = idx / g.w, ix = idx - iy * g.w;
        int oy0, oy1, ox0, ox1;
        covering(iy, g.k, g.stride, g.pad, g.oh, oy0, oy1);
        covering(ix, g.k, g.stride, g.pad, g.ow, ox0, ox1);
        const float *xp = x + pl * in, *yp = y + pl * out, *rp = r + pl * out;
        const float mine = xp[idx];
        float acc = rin[e];
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = ox0; ox < ox1; ox++) {
                const float m = yp[oy * g.ow + ox];
                if (!dg_lrp_ties(mine, m, rel_tol)) continue;
                int y0, y1, x0, x1, tied = 0;
                window(g, oy, ox, y0, y1, x0, x1);
                for (int jy = y0; jy < y1; jy++)
                    for (int jx = x0; jx < x1; jx++) tied += dg_lrp_ties(xp[jy * g.w + jx], m, rel_tol);
                acc += rp[oy * g.ow + ox] / (float)tied;
            }
        rin[e] = acc;
    }
}

__global__ void avgpool_fwd_kernel(size_t total, pool_geom g, const float *__restrict__ x, float *__restrict__ y) {
    const size_t out = (size_t)g.oh * g.ow, in = (size_t)g.h * g.w;
    const float div = (float)(g.k * g.k); /* divided, not multiplied: as the CPU (and PyTorch) */
    for (size_t o = blockIdx.x * (size_t)blockDim.x + threadIdx.x; o < total; o += (size_t)gridDim.x * blockDim.x) {
        size_t pl = o / out;
        int r = (int)(o - pl * out), oy = r / g.ow, ox = r - oy * g.ow;
        const float *xp = x + pl * in;
        int y0, y1, x0, x1;
        window(g, oy, ox, y0, y1, x0, x1);
        float s = 0.0f;
        for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) s += xp[iy * g.w + ix];
        y[o] = s / div;
    }
}

__global__ void avgpool_bwd_kernel(size_t total, pool_geom g, const float *__restrict__ dy, float *__restrict__ dx,
                                   int accumulate) {
    const size_t out = (size_t)g.oh * g.ow, in = (size_t)g.h * g.w;
    const float div = (float)(g.k * g.k);
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        size_t pl = e / in;
        int idx = (int)(e - pl * in), iy = idx / g.w, ix = idx - iy * g.w;
        int oy0, oy1, ox0, ox1;
        covering(iy, g.k, g.stride, g.pad, g.oh, oy0, oy1);
        covering(ix, g.k, g.stride, g.pad, g.ow, ox0, ox1);
        const float *dyp = dy + pl * out;
        float acc = accumulate ? dx[e] : 0.0f;
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = ox0; ox < ox1; ox++) acc += dyp[oy * g.ow + ox] / div;
        dx[e] = acc;
    }
}

/* 1 when there is work; 0 when empty; stops on an impossible geometry */
int nonempty(const char *op, const dg_pool_desc *d) {
    const char *why = NULL;
    int r = dg_cuda_pool_check(d, &why);
    if (r < 0) dg_cuda_bad_shape(op, why);
    return r == 0;
}

size_t outputs(const dg_pool_desc *d) { return (size_t)d->n * d->c * d->oh * d->ow; }
size_t inputs(const dg_pool_desc *d) { return (size_t)d->n * d->c * d->h * d->w; }

} // namespace

void dg_cuda_maxpool_fwd(const dg_pool_desc *d, const float *x, float *y, int32_t *argmax) {
    if (!nonempty("maxpool_fwd", d)) return;
    dg_launch l = dg_launch_1d(outputs(d), dg_cuda_sm_count());
    maxpool_fwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(outputs(d), geom_of(d), x, y, argmax);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_maxpool_bwd(const dg_pool_desc *d, const int32_t *argmax, const float *dy, float *dx, int accumulate) {
    if (!nonempty("maxpool_bwd", d)) return;
    dg_launch l = dg_launch_1d(inputs(d), dg_cuda_sm_count());
    maxpool_bwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(inputs(d), geom_of(d), argmax, dy, dx,
                                                                     accumulate);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_lrp_maxpool(const dg_pool_desc *d, const float *x, const float *y, const float *r, float rel_tol,
                         float *rin) {
    if (!nonempty("lrp_maxpool", d)) return;
    dg_launch l = dg_launch_1d(inputs(d), dg_cuda_sm_count());
    lrp_maxpool_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(inputs(d), geom_of(d), x, y, r, rel_tol, rin);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_avgpool_fwd(const dg_pool_desc *d, const float *x, float *y) {
    if (!nonempty("avgpool_fwd", d)) return;
    dg_launch l = dg_launch_1d(outputs(d), dg_cuda_sm_count());
    avgpool_fwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(outputs(d), geom_of(d), x, y);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_avgpool_bwd(const dg_pool_desc *d, const float *dy, float *dx, int accumulate) {
    if (!nonempty("avgpool_bwd", d)) return;
    dg_launch l = dg_launch_1d(inputs(d), dg_cuda_sm_count());
    avgpool_bwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(inputs(d), geom_of(d), dy, dx, accumulate);
    DG_CUDA_CHECK_LAUNCH();
}
