/* kernels/cpu/linear.c — CPU fully connected layer: one OpenBLAS sgemm per product for the whole
 * batch, called outside any parallel region so that OpenBLAS threads itself. Touches only the
 * buffers it is handed. */
#include <string.h>
#include <cblas.h>
#include "cpu.h"

void dg_cpu_linear_fwd(int n, int in, int out, const float *x, const float *w, const float *b,
                       float *y) {
    float beta = 0.0f;
    if (b) { /* y starts as the bias rows, and the GEMM adds x·wᵀ onto them */
        for (int i = 0; i < n; i++) memcpy(y + (size_t)i * out, b, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, beta, y,
                out);
}

void dg_cpu_linear_bwd(int n, int in, int out, const float *x, const float *w, const float *dy,
                       float *dx, int accumulate, float *dw, float *db) {
    if (dx) /* dx[n,in] (+)= dy[n,out]·w[out,in]; BLAS reads no C under beta 0, NaN or not */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, w, in,
                    accumulate ? 1.0f : 0.0f, dx, in);
    if (dw) /* dw[out,in] += dyᵀ·x */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, 1.0f,
                    dw, in);
    if (db) { /* each output summed over the batch in sample order: deterministic */
        const int team = (size_t)n * out >= DG_CPU_PAR_MIN;
#pragma omp parallel for schedule(static) if (team)
        for (int o = 0; o < out; o++) {
            double acc = 0.0;
            for (int i = 0; i < n; i++) acc += dy[(size_t)i * out + o];
            db[o] += (float)acc;
        }
    }
}
