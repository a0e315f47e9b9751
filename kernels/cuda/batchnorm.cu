/* kernels/cuda/batchnorm.cu — CUDA batch norm over [n, c, hw]: training forward (batch statistics
 * by the CPU's two-pass scheme in double — mean, then Σ(x − mean)² — and the running-statistics
 * update with the unbiased variance), eval forward, backward and eval backward (+=). One block per
 * channel for every reduction (a fixed tree, no atomics); formulas from kernels/math/batchnorm.h.
 * Touches only the buffers it is handed. */
#include "cuda_backend.h"
#include "reduce.cuh"
#include "../math/batchnorm.h"

namespace {

/* element e ∈ [0, n·hw) of channel ch in the NCHW layout flattened to [n, c, hw] */
__device__ __forceinline__ size_t at(unsigned e, unsigned hw, int c, int ch) {
    unsigned i = e / hw, j = e - i * hw;
    return ((size_t)i * (size_t)c + (size_t)ch) * hw + j;
}

__global__ void bn_fwd_train_kernel(int n, int c, int hw, const float *__restrict__ x,
                                    const float *__restrict__ gamma, const float *__restrict__ beta,
                                    float *__restrict__ running_mean, float *__restrict__ running_var,
                                    float momentum, float eps, float *__restrict__ y, float *__restrict__ save_mean,
                                    float *__restrict__ save_invstd) {
    const int ch = blockIdx.x;
    const unsigned count = (unsigned)n * (unsigned)hw, uhw = (unsigned)hw;
    const double dcount = (double)count;
    double sum = 0.0;
    for (unsigned e = threadIdx.x; e < count; e += blockDim.x) sum += x[at(e, uhw, c, ch)];
    const double mean = dg_block_sum(sum) / dcount;
    double ssd = 0.0;
    for (unsigned e = threadIdx.x; e < count; e += blockDim.x) {
        double d = (double)x[at(e, uhw, c, ch)] - mean;
        ssd += d * d;
    }
    const double var = dg_block_sum(ssd) / dcount; /* biased: what normalises */
    const float mean_f = (float)mean;
    const float invstd_f = (float)dg_bn_invstd(var, (double)eps);
    if (threadIdx.x == 0) {
        save_mean[ch] = mean_f;
        save_invstd[ch] = invstd_f;
        running_mean[ch] = (float)dg_bn_running(running_mean[ch], mean, (double)momentum);
        running_var[ch] = (float)dg_bn_running(running_var[ch], dg_bn_unbiased(var, dcount), (double)momentum);
    }
    const float g = gamma[ch], b = beta[ch];
    for (unsigned e = threadIdx.x; e < count; e += blockDim.x) {
        size_t k = at(e, uhw, c, ch);
        y[k] = dg_bn_apply(x[k], mean_f, invstd_f, g, b);
    }
}

/* Grid-stride over the n·c planes, one plane per block at a time. */
__global__ void bn_fwd_eval_kernel(int n, int c, int hw, const float *__restrict__ x,
                                   const float *__restrict__ gamma, const float *__restrict__ beta,
                                   const float *__restrict__ running_mean, const float *__restrict__ running_var,
                                   float eps, float *__restrict__ y) {
    const size_t planes = (size_t)n * c;
    for (size_t pl = blockIdx.x; pl < planes; pl += gridDim.x) {
        const int ch = (int)(pl % (size_t)c);
        const float mean = running_mean[ch];
        const float invstd = (float)dg_bn_invstd((double)running_var[ch], (double)eps);
        const float g = gamma[ch], b = beta[ch];
        const float *xp = x + pl * hw;
        float *yp = y + pl * hw;
        for (int j = threadIdx.x; j < hw; j += blockDim.x) yp[j] = dg_bn_apply(xp[j], mean, invstd, g, b);
    }
}

__global__ void bn_bwd_kernel(int n, int c, int hw, const float *__restrict__ x, const float *__restrict__ gamma,
                              const float *__restrict__ save_mean, const float *__restrict__ save_invstd,
                              const float *__restrict__ dy, float *__restrict__ dx, int accumulate,
                              float *__restrict__ dgamma, float *__restrict__ dbeta) {
    const int ch = blockIdx.x;
    const unsigned count = (unsigned)n * (unsigned)hw, uhw = (unsigned)hw;
    const double dcount = (double)count;
    const float mean = save_mean[ch], invstd = save_invstd[ch];
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (unsigned e = threadIdx.x; e < count; e += blockDim.x) {
        size_t k = at(e, uhw, c, ch);
        sum_dy += dy[k];
        sum_dy_xhat += (double)dy[k] * (double)dg_bn_xhat(x[k], mean, invstd);
    }
    dg_block_sum2(sum_dy, sum_dy_xhat);
    if (threadIdx.x == 0) {
        if (dbeta) dbeta[ch] += (float)sum_dy;
        if (dgamma) dgamma[ch] += (float)sum_dy_xhat;
    }
    if (!dx) return;
    const float gi = gamma[ch] * invstd;
    const float mdy = (float)(sum_dy / dcount), mdyx = (float)(sum_dy_xhat / dcount);
    for (unsigned e = threadIdx.x; e < count; e += blockDim.x) {
        size_t k = at(e, uhw, c, ch);
        dx[k] = dg_grad_out(accumulate, dx[k],
                            dg_bn_bwd_dx(dy[k], dg_bn_xhat(x[k], mean, invstd), gi, mdy, mdyx));
    }
}

/* Eval backward: running statistics are constants. The sums are taken only when asked for. */
__global__ void bn_bwd_eval_kernel(int n, int c, int hw, const float *__restrict__ x,
                                   const float *__restrict__ gamma, const float *__restrict__ running_mean,
                                   const float *__restrict__ running_var, float eps, const float *__restrict__ dy,
                                   float *__restrict__ dx, int accumulate, float *__restrict__ dgamma,
                                   float *__restrict__ dbeta) {
    const int ch = blockIdx.x;
    const unsigned count = (unsigned)n * (unsigned)hw, uhw = (unsigned)hw;
    const float mean = running_mean[ch];
    const float invstd = (float)dg_bn_invstd((double)running_var[ch], (double)eps);
    const float gi = gamma[ch] * invstd;
    const bool sums = dgamma || dbeta;
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (unsigned e = threadIdx.x; e < count; e += blockDim.x) {
        size_t k = at(e, uhw, c, ch);
        if (dx) dx[k] = dg_grad_out(accumulate, dx[k], gi * dy[k]);
        if (sums) {
            sum_dy += dy[k];
            sum_dy_xhat += (double)dy[k] * (double)dg_bn_xhat(x[k], mean, invstd);
        }
    }
    if (!sums) return; /* uniform across the block: no thread skips a barrier the others reach */
    dg_block_sum2(sum_dy, sum_dy_xhat);
    if (threadIdx.x == 0) {
        if (dbeta) dbeta[ch] += (float)sum_dy;
        if (dgamma) dgamma[ch] += (float)sum_dy_xhat;
    }
}

int nonempty(const char *op, int n, int c, int hw) {
    const char *why = NULL;
    int r = dg_cuda_nchw_check(n, c, hw, &why);
    if (r < 0) dg_cuda_bad_shape(op, why);
    return r == 0;
}

dg_launch per_channel(int n, int c, int hw) {
    return dg_launch_rows((size_t)c, (size_t)n * hw, DG_CUDA_ROW_THREADS);
}

} // namespace

void dg_cuda_bn_fwd_train(int n, int c, int hw, const float *x, const float *gamma, const float *beta,
                          float *running_mean, float *running_var, float momentum, float eps, float *y,
                          float *save_mean, float *save_invstd) {
    if (!nonempty("bn_fwd_train", n, c, hw)) return;
    dg_launch l = per_channel(n, c, hw);
    bn_fwd_train_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, c, hw, x, gamma, beta, running_mean,
                                                                      running_var, momentum, eps, y, save_mean,
                                                                      save_invstd);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_bn_fwd_eval(int n, int c, int hw, const float *x, const float *gamma, const float *beta,
                         const float *running_mean, const float *running_var, float eps, float *y) {
    if (!nonempty("bn_fwd_eval", n, c, hw)) return;
    dg_launch l = dg_launch_rows_strided((size_t)n * c, (size_t)hw, DG_CUDA_THREADS, dg_cuda_sm_count());
    bn_fwd_eval_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, c, hw, x, gamma, beta, running_mean,
                                                                     running_var, eps, y);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_bn_bwd(int n, int c, int hw, const float *x, const float *gamma, const float *save_mean,
                    const float *save_invstd, const float *dy, float *dx, int accumulate, float *dgamma,
                    float *dbeta) {
    if (!nonempty("bn_bwd", n, c, hw)) return;
    dg_launch l = per_channel(n, c, hw);
    bn_bwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, c, hw, x, gamma, save_mean, save_invstd, dy, dx,
                                                                accumulate, dgamma, dbeta);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_bn_bwd_eval(int n, int c, int hw, const float *x, const float *gamma, const float *running_mean,
                         const float *running_var, float eps, const float *dy, float *dx, int accumulate,
                         float *dgamma, float *dbeta) {
    if (!nonempty("bn_bwd_eval", n, c, hw)) return;
    dg_launch l = per_channel(n, c, hw);
    bn_bwd_eval_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, c, hw, x, gamma, running_mean, running_var,
                                                                     eps, dy, dx, accumulate, dgamma, dbeta);
    DG_CUDA_CHECK_LAUNCH();
}
