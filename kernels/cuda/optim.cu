/* kernels/cuda/optim.cu — CUDA SGD and Adam/AdamW steps over one parameter tensor, element by element with
 * kernels/math/optim.h (torch.optim's formulas). Adam's per-step scalars (pow in double) are
 * computed once on the host by dg_adam_prepare and passed by value. Touches only w, its gradient
 * and its state. */
#include "cuda_backend.h"
#include "../math/optim.h"

namespace {

__global__ void sgd_kernel(size_t n, float *__restrict__ w, const float *__restrict__ g, float *__restrict__ buf,
                           float lr, float momentum, float weight_decay, int nesterov, int first) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        w[i] = dg_sgd_update(w[i], g[i], momentum != 0.0f ? &buf[i] : NULL, lr, momentum, weight_decay, nesterov,
                             first);
}

__global__ void adam_kernel(size_t n, float *__restrict__ w, const float *__restrict__ g, float *__restrict__ m,
                            float *__restrict__ v, float beta1, float beta2, float eps, dg_adam_scalars s) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        w[i] = dg_adam_update(w[i], g[i], &m[i], &v[i], beta1, beta2, eps, s);
}

} // namespace

void dg_cuda_sgd_step(size_t n, float *w, const float *g, float *buf, float lr, float momentum, float weight_decay,
                      int nesterov, int first) {
    dg_launch l = dg_launch_1d(n, dg_cuda_sm_count());
    if (!l.blocks) return;
    sgd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, w, g, buf, lr, momentum, weight_decay, nesterov,
                                                             first);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_adam_step(size_t n, float *w, const float *g, float *m, float *v, double lr, double beta1, double beta2,
                       float eps, double weight_decay, int decoupled, int t) {
    dg_launch l = dg_launch_1d(n, dg_cuda_sm_count());
    if (!l.blocks) return;
    /* on the host, in double */
    const dg_adam_scalars s = dg_adam_prepare(lr, beta1, beta2, weight_decay, decoupled, t);
    adam_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, w, g, m, v, (float)beta1, (float)beta2, eps, s);
    DG_CUDA_CHECK_LAUNCH();
}
