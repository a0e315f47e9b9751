/* kernels/cuda/relevance.cu — CUDA steps of the Deep Taylor relevance rules: the stabilised ratio
 * and the accumulated share, per element, from kernels/math/relevance.h (the same formulas the
 * CPU loops use). Touches only the buffers it is handed; knows nothing about nets. */
#include "cuda_backend.h"
#include "../math/relevance.h"

namespace {

/* s may be z itself (the walk divides in place), so no __restrict__ on those two */
__global__ void lrp_ratio_kernel(size_t n, const float *__restrict__ r, const float *z, float eps, float *s) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        s[i] = dg_lrp_ratio(r[i], z[i], eps);
}

/* rin is never x or c (the host walk guarantees it), hence __restrict__ */
__global__ void lrp_share_kernel(size_t n, float alpha, const float *__restrict__ x, const float *__restrict__ c,
                                 float *__restrict__ rin) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        rin[i] += dg_lrp_share(alpha, x[i], c[i]);
}

} // namespace

void dg_cuda_lrp_ratio(size_t n, const float *r, const float *z, float eps, float *s) {
    dg_launch l = dg_launch_1d(n, dg_cuda_sm_count());
    if (!l.blocks) return;
    lrp_ratio_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, r, z, eps, s);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_lrp_share(size_t n, float alpha, const float *x, const float *c, float *rin) {
    dg_launch l = dg_launch_1d(n, dg_cuda_sm_count());
    if (!l.blocks) return;
    lrp_share_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, alpha, x, c, rin);
    DG_CUDA_CHECK_LAUNCH();
}
