/* kernels/cuda/loss.cu — CUDA fused softmax cross-entropy over [n, k] logits (with label
 * smoothing), one block per row:
 * row maximum, shifted exponentials, their sum in double, probabilities, the row's loss and the
 * scaled gradient (written, not accumulated), with the formulas of kernels/math/softmax.h.
 * Labels are validated by the host; an out-of-range one gives a NaN loss here instead of a stray
 * read. Touches only the buffers it is handed. */
#include "cuda_backend.h"
#include "reduce.cuh"
#include "../math/softmax.h"

namespace {

__global__ void softmax_xent_kernel(int k, const float *__restrict__ logits, const int32_t *__restrict__ labels,
                                    float *__restrict__ probs, float *__restrict__ loss, float *__restrict__ dlogits,
                                    float grad_scale, float smoothing) {
    const int row = blockIdx.x;
    const float *z = logits + (size_t)row * k;
    float *p = probs + (size_t)row * k;
    /* the CPU scans from z[0] with `z[j] > mx`: a NaN in z[0] stays the maximum, later NaNs never win */
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < k; j += blockDim.x)
        if (z[j] > mx) mx = z[j];
    mx = dg_block_max(mx);
    if (isnan(z[0])) mx = z[0];
    double sum = 0.0;
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        float e = dg_softmax_exp(z[j], mx);
        p[j] = e;
        sum += e;
    }
    const float sum_f = (float)dg_block_sum(sum);
    double shifted = 0.0; /* Σ (z − max), for label smoothing only (every thread takes the branch alike) */
    if (smoothing != 0.0f) {
        for (int j = threadIdx.x; j < k; j += blockDim.x) shifted += z[j] - mx;
        shifted = dg_block_sum(shifted);
    }
    const int label = labels[row];
    const bool valid = label >= 0 && label < k;
    for (int j = threadIdx.x; j < k; j += blockDim.x) { /* each thread rereads only what it wrote */
        float pj = dg_softmax_prob(p[j], sum_f);
        p[j] = pj;
        if (dlogits) dlogits[(size_t)row * k + j] = dg_xent_grad(pj, j == label, smoothing, k, grad_scale);
    }
    if (threadIdx.x == 0) loss[row] = valid ? dg_xent_loss(z[label], mx, sum_f, smoothing, (float)shifted, k) : NAN;
}

} // namespace

void dg_cuda_softmax_xent(int n, int k, const float *logits, const int32_t *labels, float *probs, float *loss,
                          float *dlogits, float grad_scale, float smoothing) {
    if (n == 0) return;
    const char *why = NULL;
    if (k < 1 || dg_cuda_nchw_check(n, k, 1, &why) != 0) dg_cuda_bad_shape("softmax_xent", why ? why : "k < 1");
    dg_launch l = dg_launch_rows((size_t)n, (size_t)k, DG_CUDA_THREADS);
    softmax_xent_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(k, logits, labels, probs, loss, dlogits,
                                                                      grad_scale, smoothing);
    DG_CUDA_CHECK_LAUNCH();
}
