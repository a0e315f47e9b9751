/* kernels/cuda/watermark.cu — the watermark regularizer op on the GPU: one thread per key
 * position, with the formulas of kernels/math/watermark.h. The indices are distinct, so the
 * gradient accumulation needs no atomics. Knows nothing of keys or files. */
#include "cuda_backend.h"
#include "../math/watermark.h"

namespace {

__global__ void wm_reg_kernel(int n, const float *__restrict__ w, const int32_t *__restrict__ idx,
                              const float *__restrict__ digits, float a, float b, float scale,
                              float *__restrict__ mapped, float *__restrict__ dw) {
    size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (size_t)n) return;
    float m = dg_wm_map(w[idx[k]], a, b);
    mapped[k] = m;
    if (dw) dw[idx[k]] += dg_wm_grad(m, digits[k], a, scale);
}

} // namespace

void dg_cuda_wm_reg(int n, const float *w, const int32_t *idx, const float *digits, float a, float b, float lambda,
                    float *mapped, float *dw) {
    if (n <= 0) return;
    const float scale = 2.0f * lambda / (float)n; /* the same float expression as the CPU op */
    const int threads = 128;
    const unsigned blocks = (unsigned)(((size_t)n + threads - 1) / threads); /* no int overflow near INT_MAX */
    wm_reg_kernel<<<blocks, threads, 0, dg_cuda_stream()>>>(n, w, idx, digits, a, b, scale, mapped, dw);
    DG_CUDA_CHECK_LAUNCH();
}
