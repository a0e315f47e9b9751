/* kernels/cuda/linear_cublas.cu — the fully connected layer in PyTorch's row-major layout through
 * cuBLAS's column-major sgemm: y = x·wᵀ + b; backward dx += dy·w, dw += dyᵀ·x, db += column sums
 * (a deterministic kernel, summed in sample order in double as the CPU does). TF32 per mode.
 * Touches only the buffers it is handed. */
#include "cuda_backend.h"

/* A row-major [r, c] matrix is, to column-major cuBLAS, its transpose: [c, r] with leading
 * dimension c. So each row-major product below is written for the transposes:
 *   y[n,out]  = x[n,in]·w[out,in]ᵀ   ⇔  yᵀ[out,n]  = w̃ᵀ·x̃      (w̃ = wᵀ as stored, op T; x̃ = xᵀ, op N)
 *   dx[n,in] += dy[n,out]·w[out,in]  ⇔  dxᵀ[in,n] += w̃·dỹ       (both op N)
 *   dw[out,in] += dyᵀ[out,n]·x[n,in] ⇔ dwᵀ[in,out] += x̃·dỹᵀ      (x̃ op N, dỹ op T)
 * where x̃, w̃, dỹ denote the stored arrays read column-major. */

namespace {

__global__ void fill_rows_kernel(size_t n, int out, const float *__restrict__ b, float *__restrict__ y) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = b[i % (size_t)out];
}

/* One thread per output column, samples in order, in double: the CPU's sum exactly. Consecutive
 * threads read consecutive columns of a row, so every load is coalesced. */
__global__ void column_sums_kernel(int n, int out, const float *__restrict__ dy, float *__restrict__ db) {
    for (size_t o = blockIdx.x * (size_t)blockDim.x + threadIdx.x; o < (size_t)out;
         o += (size_t)gridDim.x * blockDim.x) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) acc += dy[(size_t)i * out + o];
        db[o] += (float)acc;
    }
}

void set_math(cublasHandle_t h) {
    DG_CUBLAS_CHECK(cublasSetMathMode(h, dg_cuda_is_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

/* 1 when there is work; 0 for a batch of 0 (nothing to do, as on the CPU); stops on a bad shape */
int nonempty(const char *op, int n, int in, int out) {
    const char *why = "in and out features must be at least 1";
    if (n == 0 && in > 0 && out > 0) return 0;
    if (in < 1 || out < 1 || dg_cuda_nchw_check(n, in, 1, &why) != 0 || dg_cuda_nchw_check(n, out, 1, &why) != 0 ||
        dg_cuda_nchw_check(out, in, 1, &why) != 0)
        dg_cuda_bad_shape(op, why);
    return 1;
}

} // namespace

void dg_cuda_linear_fwd(int n, int in, int out, const float *x, const float *w, const float *b, float *y) {
    if (!nonempty("linear_fwd", n, in, out)) return;
    cublasHandle_t h = dg_cuda_cublas();
    set_math(h);
    float beta = 0.0f;
    if (b) { /* y starts as the bias rows and the GEMM adds x·wᵀ onto them, as the CPU does */
        size_t total = (size_t)n * out;
        dg_launch l = dg_launch_1d(total, dg_cuda_sm_count());
        fill_rows_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(total, out, b, y);
        DG_CUDA_CHECK_LAUNCH();
        beta = 1.0f;
    }
    const float alpha = 1.0f;
    DG_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w, in, x, in, &beta, y, out));
    if (dg_cuda_sync_each_launch()) DG_CUDA_CHECK(cudaStreamSynchronize(dg_cuda_stream()));
}

void dg_cuda_linear_bwd(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx,
                        int accumulate, float *dw, float *db) {
    if (!nonempty("linear_bwd", n, in, out)) return;
    cublasHandle_t h = dg_cuda_cublas();
    set_math(h);
    const float one = 1.0f, dx_beta = accumulate ? 1.0f : 0.0f; /* cuBLAS reads no C under beta 0 */
    if (dx)
        DG_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w, in, dy, out, &dx_beta, dx, in));
    if (dw) DG_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x, in, dy, out, &one, dw, in));
    if (db) {
        dg_launch l = dg_launch_1d((size_t)out, dg_cuda_sm_count());
        column_sums_kernel<<<l.blocks, l.threads, 0, dg_cuda_stream()>>>(n, out, dy, db);
        DG_CUDA_CHECK_LAUNCH();
    }
    if (dg_cuda_sync_each_launch()) DG_CUDA_CHECK(cudaStreamSynchronize(dg_cuda_stream()));
}
