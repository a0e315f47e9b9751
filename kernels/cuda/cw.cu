/* kernels/cuda/cw.cu — the GPU ops of fingerprint generation (Carlini–Wagner L2 with confidence
 * control) with the formulas of kernels/math/cw.h: the tanh box with normalisation and the
 * per-image distance (one block per image, the sum in double), its backward (elementwise), and the
 * logit terms (one block per row). Knows nothing of users, keys or files. */
#include "cuda_backend.h"
#include "reduce.cuh"
#include "../math/cw.h"
#include "../math/pixel.h"
#include "../math/softmax.h"

namespace {

__global__ void cw_box_fwd_kernel(int c, int hw, const float *__restrict__ delta, const float *__restrict__ x0,
                                  const float *__restrict__ mean, const float *__restrict__ std, int quantize,
                                  float *__restrict__ u, float *__restrict__ dist) {
    const size_t per = (size_t)c * hw, base = (size_t)blockIdx.x * per;
    double sum = 0.0;
    for (size_t j = threadIdx.x; j < per; j += blockDim.x) {
        const int ch = (int)(j / (size_t)hw);
        float xp = dg_cw_box(delta[base + j]);
        if (quantize) {
            const float b = dg_pixel_quantize(xp);
            u[base + j] = dg_pixel_normalize(b, dg_pixel_scale(std[ch]), dg_pixel_shift(mean[ch], std[ch]));
            xp = b / 255.0f;
        } else {
            u[base + j] = dg_cw_normalize(xp, mean[ch], std[ch]);
        }
        const float d = xp - x0[base + j];
        sum += (double)d * d;
    }
    sum = dg_block_sum(sum);
    if (threadIdx.x == 0) dist[blockIdx.x] = (float)sum;
}

__global__ void cw_box_bwd_kernel(size_t total, size_t per, int hw, const float *__restrict__ delta,
                                  const float *__restrict__ x0, const float *__restrict__ std,
                                  const float *__restrict__ du, float *__restrict__ ddelta) {
    for (size_t at = blockIdx.x * (size_t)blockDim.x + threadIdx.x; at < total; at += (size_t)gridDim.x * blockDim.x) {
        const int ch = (int)((at % per) / (size_t)hw);
        ddelta[at] = dg_cw_delta_grad(du[at], std[ch], dg_cw_box(delta[at]), x0[at]);
    }
}

__global__ void cw_logits_kernel(int k, const float *__restrict__ logits, const int32_t *__restrict__ targets,
                                 const float *__restrict__ conf, const float *__restrict__ alpha, float conf_weight,
                                 int untargeted, float *__restrict__ probs, float *__restrict__ loss, float *__restrict__ dlogits) {
    __shared__ int other_shared;
    const int row = blockIdx.x, t = targets[row];
    const float *z = logits + (size_t)row * k;
    float *p = probs + (size_t)row * k, *d = dlogits + (size_t)row * k;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < k; j += blockDim.x)
        if (z[j] > mx) mx = z[j];
    mx = dg_block_max(mx);
    if (threadIdx.x == 0) { /* the strongest class other than t, the lowest index on ties, as on the CPU */
        int other = t == 0 ? 1 : 0;
        for (int j = 0; j < k; j++)
            if (j != t && z[j] > z[other]) other = j;
        other_shared = other;
    }
    double sum = 0.0;
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        const float e = dg_softmax_exp(z[j], mx);
        p[j] = e;
        sum += e;
    }
    const float sum_f = (float)dg_block_sum(sum); /* synchronises: other_shared is visible after it */
    for (int j = threadIdx.x; j < k; j += blockDim.x) p[j] = dg_softmax_prob(p[j], sum_f);
    __syncthreads();
    const int other = other_shared;
    if (untargeted) { /* leave class t: the hinge mirrored, no confidence term */
        const float f = dg_cw_target_term(z[t], z[other]), a = alpha[row];
        for (int j = threadIdx.x; j < k; j += blockDim.x) d[j] = -a * dg_cw_target_grad(j == t, j == other, f);
        if (threadIdx.x == 0) loss[row] = a * f;
        return;
    }
    const float f = dg_cw_target_term(z[other], z[t]), a = alpha[row], log_sum = logf(sum_f);
    double g = 0.0;
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        const float q = dg_cw_conf_q(j == t, conf[row], k);
        g += dg_cw_conf_term(q, z[j] - mx - log_sum);
        d[j] = a * (dg_cw_target_grad(j == t, j == other, f) + conf_weight * dg_cw_conf_grad(p[j], q));
    }
    g = dg_block_sum(g);
    if (threadIdx.x == 0) loss[row] = a * (f + conf_weight * (float)g);
}

} // namespace

void dg_cuda_cw_box_fwd(int n, int c, int hw, const float *delta, const float *x0, const float *mean, const float *std,
                        int quantize, float *u, float *dist) {
    if (n == 0) return;
    const char *why = NULL;
    int shape = dg_cuda_nchw_check(n, c, hw, &why);
    if (shape < 0) dg_cuda_bad_shape("cw_box_fwd", why);
    if (shape > 0) { /* images of no pixels: each distance is 0, as on the CPU */
        DG_CUDA_CHECK(cudaMemsetAsync(dist, 0, sizeof(float) * (size_t)n, dg_cuda_stream()));
        return;
    }
    dg_launch l = dg_launch_rows((size_t)n, (size_t)c * hw, DG_CUDA_THREADS);
    cw_box_fwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(c, hw, delta, x0, mean, std, quantize, u,
                                                                      dist);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_cw_box_bwd(int n, int c, int hw, const float *delta, const float *x0, const float *std, const float *du,
                        float *ddelta) {
    const size_t per = (size_t)c * hw, total = (size_t)n * per;
    dg_launch l = dg_launch_1d(total, dg_cuda_sm_count());
    if (!l.blocks) return;
    cw_box_bwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(total, per, hw, delta, x0, std, du, ddelta);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_cw_logits(int n, int k, const float *logits, const int32_t *targets, const float *conf, const float *alpha,
                       float conf_weight, int untargeted, float *probs, float *loss, float *dlogits) {
    if (n == 0) return;
    const char *why = NULL;
    if (k < 2 || dg_cuda_nchw_check(n, k, 1, &why) != 0) dg_cuda_bad_shape("cw_logits", why ? why : "k < 2");
    dg_launch l = dg_launch_rows((size_t)n, (size_t)k, DG_CUDA_THREADS);
    cw_logits_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(k, logits, targets, conf, alpha, conf_weight,
                                                                   untargeted, probs,
                                                                   loss, dlogits);
    DG_CUDA_CHECK_LAUNCH();
}
