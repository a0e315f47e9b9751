/* kernels/cuda/elementwise.cu — CUDA ReLU, dropout, add, axpy, scale, the sum of squares (one
 * partial per block in double, added on the host in order) and the per-channel conv bias
 * (forward add, backward per-channel sums in double, one block per channel: no atomics). Per-element
 * formulas from kernels/math/; backward ops accumulate (+=). Touches only the buffers it is handed. */
#include <stdio.h>
#include <stdlib.h>

#include "cuda_backend.h"
#include "reduce.cuh"
#include "../math/activation.h"
#include "../math/dropout.h"

#define DG_GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

namespace {

__global__ void relu_fwd_kernel(size_t n, const float *__restrict__ x, float *__restrict__ y) {
    DG_GRID_STRIDE(i, n) y[i] = dg_relu(x[i]);
}

__global__ void relu_bwd_kernel(size_t n, const float *__restrict__ y, const float *__restrict__ dy,
                                float *__restrict__ dx, int accumulate) {
    DG_GRID_STRIDE(i, n) dx[i] = dg_grad_out(accumulate, dx[i], dg_relu_grad(y[i], dy[i]));
}

__global__ void dropout_fwd_kernel(size_t n, float p, float scale, uint64_t seed, uint64_t first,
                                   const float *__restrict__ x, float *__restrict__ y, float *__restrict__ mask) {
    DG_GRID_STRIDE(i, n) {
        float m = dg_dropout_mask(seed, first + (uint64_t)i, p, scale);
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

__global__ void dropout_bwd_kernel(size_t n, const float *__restrict__ mask, const float *__restrict__ dy,
                                   float *__restrict__ dx, int accumulate) {
    DG_GRID_STRIDE(i, n) dx[i] = dg_grad_out(accumulate, dx[i], dy[i] * mask[i]);
}

/* y may alias a or b (y = a + b in place is legal), so no __restrict__ here */
__global__ void add_kernel(size_t n, const float *a, const float *b, float *y) {
    DG_GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

__global__ void axpy_kernel(size_t n, float alpha, const float *__restrict__ x, float *__restrict__ y) {
    DG_GRID_STRIDE(i, n) y[i] += alpha * x[i];
}

__global__ void scale_kernel(size_t n, float alpha, float *__restrict__ x) {
    DG_GRID_STRIDE(i, n) x[i] *= alpha;
}

/* Each block's Σ x² in double (a fixed tree) into partial[blockIdx.x]. */
__global__ void sum_squares_kernel(size_t n, const float *__restrict__ x, double *__restrict__ partial) {
    double acc = 0.0;
    DG_GRID_STRIDE(i, n) acc += (double)x[i] * (double)x[i];
    acc = dg_block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void bias_fwd_kernel(size_t total, int c, int hw, const float *__restrict__ b, float *__restrict__ y) {
    DG_GRID_STRIDE(i, total) y[i] += b[(i / (size_t)hw) % (size_t)c];
}

/* One block per channel: Σ over the n planes of that channel, in double. */
__global__ void bias_bwd_kernel(int n, int c, int hw, const float *__restrict__ dy, float *__restrict__ db) {
    const int ch = blockIdx.x;
    const unsigned count = (unsigned)n * (unsigned)hw;
    double acc = 0.0;
    for (unsigned e = threadIdx.x; e < count; e += blockDim.x) {
        unsigned i = e / (unsigned)hw, j = e - i * (unsigned)hw;
        acc += dy[((size_t)i * c + ch) * hw + j];
    }
    acc = dg_block_sum(acc);
    if (threadIdx.x == 0) db[ch] += (float)acc;
}

dg_launch ew(size_t n) { return dg_launch_1d(n, dg_cuda_sm_count()); }

/* 1 when the op has something to do; 0 for an empty tensor; stops on an impossible one */
int nonempty(const char *op, int n, int c, int hw) {
    const char *why = NULL;
    int r = dg_cuda_nchw_check(n, c, hw, &why);
    if (r < 0) dg_cuda_bad_shape(op, why);
    return r == 0;
}

} // namespace

void dg_cuda_relu_fwd(size_t n, const float *x, float *y) {
    dg_launch l = ew(n);
    if (!l.blocks) return;
    relu_fwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, x, y);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_relu_bwd(size_t n, const float *y, const float *dy, float *dx, int accumulate) {
    dg_launch l = ew(n);
    if (!l.blocks) return;
    relu_bwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, y, dy, dx, accumulate);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_dropout_fwd(size_t n, float p, uint64_t seed, uint64_t first, const float *x, float *y, float *mask) {
    dg_launch l = ew(n);
    if (!l.blocks) return;
    dropout_fwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, p, dg_dropout_scale(p), seed, first, x, y,
                                                                     mask);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_dropout_bwd(size_t n, const float *mask, const float *dy, float *dx, int accumulate) {
    dg_launch l = ew(n);
    if (!l.blocks) return;
    dropout_bwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, mask, dy, dx, accumulate);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_add(size_t n, const float *a, const float *b, float *y) {
    dg_launch l = ew(n);
    if (!l.blocks) return;
    add_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, a, b, y);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_axpy(size_t n, float alpha, const float *x, float *y) {
    dg_launch l = ew(n);
    if (!l.blocks) return;
    axpy_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, alpha, x, y);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_scale(size_t n, float alpha, float *x) {
    dg_launch l = ew(n);
    if (!l.blocks) return;
    scale_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, alpha, x);
    DG_CUDA_CHECK_LAUNCH();
}

double dg_cuda_sum_squares(size_t n, const float *x) {
    dg_launch l = ew(n);
    if (!l.blocks) return 0.0;
    size_t bytes = sizeof(double) * (size_t)l.blocks;
    double *partial = (double *)dg_cuda_scratch(bytes), *host = (double *)malloc(bytes);
    if (!host) {
        fprintf(stderr, "dnnguard: cuda: out of host memory for %u partial sums\n", l.blocks);
        exit(DG_CUDA_EXIT_DEVICE_FAILURE);
    }
    sum_squares_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, x, partial);
    DG_CUDA_CHECK_LAUNCH();
    dg_cuda_download(host, partial, bytes); /* waits for the kernel */
    double total = 0.0;
    for (unsigned b = 0; b < l.blocks; b++) total += host[b];
    free(host);
    return total;
}

void dg_cuda_bias_fwd(int n, int c, int hw, const float *b, float *y) {
    if (!nonempty("bias_fwd", n, c, hw)) return;
    size_t total = (size_t)n * c * hw;
    dg_launch l = ew(total);
    bias_fwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(total, c, hw, b, y);
    DG_CUDA_CHECK_LAUNCH();
}

void dg_cuda_bias_bwd(int n, int c, int hw, const float *dy, float *db) {
    if (!nonempty("bias_bwd", n, c, hw)) return;
    dg_launch l = dg_launch_rows((size_t)c, (size_t)n * hw, DG_CUDA_ROW_THREADS);
    bias_bwd_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, c, hw, dy, db);
    DG_CUDA_CHECK_LAUNCH();
}
