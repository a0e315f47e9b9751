/* kernels/cpu/elementwise.c — CPU ReLU, dropout, add and axpy: per-element loops over the formulas
 * in kernels/math/. Backward ops accumulate (+=). Nothing here allocates or knows about nets. */
#include "cpu.h"
#include "../math/activation.h"
#include "../math/dropout.h"

/* Below this many elements a parallel region costs more than the loop itself. Element-wise ops
 * give the same bits on any thread count, so the threshold does not affect results. */

void dg_cpu_relu_fwd(size_t n, const float *x, float *y) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = dg_relu(x[i]);
}

void dg_cpu_relu_bwd(size_t n, const float *y, const float *dy, float *dx) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += dg_relu_grad(y[i], dy[i]);
}

/* The mask is stored (not re-drawn in backward) so that backward needs no seed bookkeeping. */
void dg_cpu_dropout_fwd(size_t n, float p, uint64_t seed, const float *x, float *y, float *mask) {
    const float scale = dg_dropout_scale(p);
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float m = dg_dropout_mask(seed, (uint64_t)i, p, scale);
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

void dg_cpu_dropout_bwd(size_t n, const float *mask, const float *dy, float *dx) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * mask[i];
}

void dg_cpu_add(size_t n, const float *a, const float *b, float *y) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void dg_cpu_axpy(size_t n, float alpha, const float *x, float *y) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
