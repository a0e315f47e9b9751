/* kernels/cpu/elementwise.c — CPU ReLU, dropout, add, axpy, scale and the sum of squares (gradient
 * clipping's norm): per-element loops over the formulas
 * in kernels/math/. Backward ops add to dx or write it (accumulate, backend.h). Nothing here
 * allocates or knows about nets. */
#include <stdlib.h>

#include "cpu.h"
#include "../math/activation.h"
#include "../math/dropout.h"

/* Below this many elements a parallel region costs more than the loop itself. Element-wise ops
 * give the same bits on any thread count, so the threshold does not affect results. */

void dg_cpu_relu_fwd(size_t n, const float *x, float *y) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = dg_relu(x[i]);
}

void dg_cpu_relu_bwd(size_t n, const float *y, const float *dy, float *dx, int accumulate) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] = dg_grad_out(accumulate, dx[i], dg_relu_grad(y[i], dy[i]));
}

/* The mask is stored (not re-drawn in backward) so that backward needs no seed bookkeeping. */
void dg_cpu_dropout_fwd(size_t n, float p, uint64_t seed, uint64_t first, const float *x, float *y, float *mask) {
    const float scale = dg_dropout_scale(p);
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float m = dg_dropout_mask(seed, first + (uint64_t)i, p, scale);
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

void dg_cpu_dropout_bwd(size_t n, const float *mask, const float *dy, float *dx, int accumulate) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) dx[i] = dg_grad_out(accumulate, dx[i], dy[i] * mask[i]);
}

void dg_cpu_add(size_t n, const float *a, const float *b, float *y) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void dg_cpu_axpy(size_t n, float alpha, const float *x, float *y) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

void dg_cpu_scale(size_t n, float alpha, float *x) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= alpha;
}

#define SUMSQ_CHUNK ((size_t)1 << 16)

static double chunk_sum_squares(const float *x, size_t lo, size_t hi) {
    double s = 0.0;
    for (size_t i = lo; i < hi; i++) s += (double)x[i] * (double)x[i];
    return s;
}

/* Chunks of 2^16 elements summed in double, their sums then added in order: the same bits on any
 * thread count (and without memory for the partial sums, the same order serially). */
double dg_cpu_sum_squares(size_t n, const float *x) {
    const size_t chunks = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double total = 0.0, *part = chunks > 1 ? malloc(chunks * sizeof *part) : NULL;
    if (part) {
#pragma omp parallel for schedule(static)
        for (size_t c = 0; c < chunks; c++)
            part[c] = chunk_sum_squares(x, c * SUMSQ_CHUNK, c + 1 == chunks ? n : (c + 1) * SUMSQ_CHUNK);
        for (size_t c = 0; c < chunks; c++) total += part[c];
        free(part);
        return total;
    }
    for (size_t c = 0; c < chunks; c++)
        total += chunk_sum_squares(x, c * SUMSQ_CHUNK, c + 1 == chunks ? n : (c + 1) * SUMSQ_CHUNK);
    return total;
}
