/* kernels/cpu/pool.c — CPU max and average pooling (square windows, padding, floor mode), OpenMP
 * over the n·c planes; each plane is owned by one thread, so backward's overlapping windows need
 * no atomics. Touches only the buffers it is handed. */
#include <math.h>
#include <string.h>
#include "cpu.h"
#include "../math/relevance.h"

/* Below this many window taps a parallel region costs more than it saves. */
static int pool_team(const dg_pool_desc *d) {
    return (size_t)d->n * d->c * d->oh * d->ow * d->k * d->k >= DG_CPU_PAR_MIN;
}

/* The window of output (oy, ox) clipped to the input: rows [*y0, *y1), columns [*x0, *x1).
 * pad ≤ k/2 (dg_pool_desc_init) keeps every clipped window non-empty. */
static void window(const dg_pool_desc *d, int oy, int ox, int *y0, int *y1, int *x0, int *x1) {
    int ys = oy * d->stride - d->pad, xs = ox * d->stride - d->pad;
    int ye = ys + d->k, xe = xs + d->k;
    *y0 = ys < 0 ? 0 : ys;
    *x0 = xs < 0 ? 0 : xs;
    *y1 = ye > d->h ? d->h : ye;
    *x1 = xe > d->w ? d->w : xe;
}

/* The 2×2, stride-2, unpadded pool of LeNet and VGG: the generic loop's rule on four fixed taps,
 * without the window clipping, about three times faster. */
static void maxpool_2x2(const dg_pool_desc *d, const float *x, float *y, int32_t *argmax) {
    const size_t in = (size_t)d->h * d->w, out = (size_t)d->oh * d->ow;
    const int w = d->w;
#pragma omp parallel for schedule(static) if (pool_team(d))
    for (long pl = 0; pl < (long)d->n * d->c; pl++) {
        const float *xp = x + (size_t)pl * in;
        float *yp = y + (size_t)pl * out;
        int32_t *ap = argmax + (size_t)pl * out;
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                const int i0 = 2 * oy * w + 2 * ox;
                const int taps[4] = {i0, i0 + 1, i0 + w, i0 + w + 1}; /* row-major window order */
                float m = -INFINITY;
                int best = i0;
                for (int t = 0; t < 4; t++) {
                    float v = xp[taps[t]];
                    if (v > m || isnan(v)) {
                        m = v;
                        best = taps[t];
                    }
                }
                yp[oy * d->ow + ox] = m;
                ap[oy * d->ow + ox] = best;
            }
    }
}

/* As PyTorch: the first maximum in row-major window order wins, a NaN always takes over, and a
 * window of −inf keeps its first input element (never a padding position). */
void dg_cpu_maxpool_fwd(const dg_pool_desc *d, const float *x, float *y, int32_t *argmax) {
    if (d->k == 2 && d->stride == 2 && d->pad == 0) {
        maxpool_2x2(d, x, y, argmax);
        return;
    }
    const size_t in = (size_t)d->h * d->w, out = (size_t)d->oh * d->ow;
#pragma omp parallel for schedule(static) if (pool_team(d))
    for (long pl = 0; pl < (long)d->n * d->c; pl++) {
        const float *xp = x + (size_t)pl * in;
        float *yp = y + (size_t)pl * out;
        int32_t *ap = argmax + (size_t)pl * out;
        for (int oy = 0; oy < d->oh; oy++) {
            for (int ox = 0; ox < d->ow; ox++) {
                int y0, y1, x0, x1;
                window(d, oy, ox, &y0, &y1, &x0, &x1);
                int best = y0 * d->w + x0;
                float m = -INFINITY;
                for (int iy = y0; iy < y1; iy++) {
                    for (int ix = x0; ix < x1; ix++) {
                        float v = xp[iy * d->w + ix];
                        if (v > m || isnan(v)) {
                            m = v;
                            best = iy * d->w + ix;
                        }
                    }
                }
                yp[oy * d->ow + ox] = m;
                ap[oy * d->ow + ox] = best;
            }
        }
    }
}

void dg_cpu_maxpool_bwd(const dg_pool_desc *d, const int32_t *argmax, const float *dy, float *dx, int accumulate) {
    const size_t in = (size_t)d->h * d->w, out = (size_t)d->oh * d->ow;
#pragma omp parallel for schedule(static) if (pool_team(d))
    for (long pl = 0; pl < (long)d->n * d->c; pl++) {
        const int32_t *ap = argmax + (size_t)pl * out;
        const float *dyp = dy + (size_t)pl * out;
        float *dxp = dx + (size_t)pl * in;
        if (!accumulate) memset(dxp, 0, in * sizeof(float)); /* the winners' gradients add up from zero */
        for (size_t o = 0; o < out; o++) dxp[ap[o]] += dyp[o];
    }
}

/* Winner-take-all relevance with ties shared (kernels/math/relevance.h): each output's r goes, in
 * equal parts, to the inputs of its window that tie its maximum y; scattered in output order. */
void dg_cpu_lrp_maxpool(const dg_pool_desc *d, const float *x, const float *y, const float *r, float rel_tol,
                        float *rin) {
    const size_t in = (size_t)d->h * d->w, out = (size_t)d->oh * d->ow;
#pragma omp parallel for schedule(static) if (pool_team(d))
    for (long pl = 0; pl < (long)d->n * d->c; pl++) {
        const float *xp = x + (size_t)pl * in, *yp = y + (size_t)pl * out, *rp = r + (size_t)pl * out;
        float *rinp = rin + (size_t)pl * in;
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                const float m = yp[oy * d->ow + ox], rel = rp[oy * d->ow + ox];
                int y0, y1, x0, x1, tied = 0;
                window(d, oy, ox, &y0, &y1, &x0, &x1);
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) tied += dg_lrp_ties(xp[iy * d->w + ix], m, rel_tol);
                if (tied == 0) continue; /* a NaN maximum */
                const float share = rel / (float)tied;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++)
                        if (dg_lrp_ties(xp[iy * d->w + ix], m, rel_tol)) rinp[iy * d->w + ix] += share;
            }
    }
}

/* count_include_pad=True: the divisor is always k·k (in floor mode no window reaches past the
 * padding, so PyTorch's clipped-to-padded-input window size is k·k too). */
void dg_cpu_avgpool_fwd(const dg_pool_desc *d, const float *x, float *y) {
    const size_t in = (size_t)d->h * d->w, out = (size_t)d->oh * d->ow;
    const float div = (float)(d->k * d->k); /* divided, not multiplied: as PyTorch rounds */
#pragma omp parallel for schedule(static) if (pool_team(d))
    for (long pl = 0; pl < (long)d->n * d->c; pl++) {
        const float *xp = x + (size_t)pl * in;
        float *yp = y + (size_t)pl * out;
        for (int oy = 0; oy < d->oh; oy++) {
            for (int ox = 0; ox < d->ow; ox++) {
                int y0, y1, x0, x1;
                window(d, oy, ox, &y0, &y1, &x0, &x1);
                float s = 0.0f;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) s += xp[iy * d->w + ix];
                yp[oy * d->ow + ox] = s / div;
            }
        }
    }
}

void dg_cpu_avgpool_bwd(const dg_pool_desc *d, const float *dy, float *dx, int accumulate) {
    const size_t in = (size_t)d->h * d->w, out = (size_t)d->oh * d->ow;
    const float div = (float)(d->k * d->k);
#pragma omp parallel for schedule(static) if (pool_team(d))
    for (long pl = 0; pl < (long)d->n * d->c; pl++) {
        const float *dyp = dy + (size_t)pl * out;
        float *dxp = dx + (size_t)pl * in;
        if (!accumulate) memset(dxp, 0, in * sizeof(float)); /* overlapping windows add up from zero */
        for (int oy = 0; oy < d->oh; oy++) {
            for (int ox = 0; ox < d->ow; ox++) {
                int y0, y1, x0, x1;
                window(d, oy, ox, &y0, &y1, &x0, &x1);
                float g = dyp[oy * d->ow + ox] / div;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) dxp[iy * d->w + ix] += g;
            }
        }
    }
}
