/* kernels/cuda/check.h — one check macro per library (CUDA runtime, cuDNN, cuBLAS): a failed call
 * prints "dnnguard: <library> error at file:line: <the library's message> (<call>)" on stderr and
 * exits with status 4 (a device failure, distinct from the CLI's 0–3). For the .cu files only. */
#ifndef DG_CUDA_CHECK_H
#define DG_CUDA_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#define DG_CUDA_EXIT_DEVICE_FAILURE 4

[[noreturn]] static inline void dg_cuda_fail(const char *lib, const char *msg, const char *call, const char *file,
                                             int line) {
    fprintf(stderr, "dnnguard: %s error at %s:%d: %s (%s)\n", lib, file, line, msg ? msg : "unknown error", call);
    fflush(stderr);
    exit(DG_CUDA_EXIT_DEVICE_FAILURE);
}

#define DG_CUDA_CHECK(call)                                                              \
    do {                                                                                 \
        cudaError_t dg_e_ = (call);                                                      \
        if (dg_e_ != cudaSuccess)                                                        \
            dg_cuda_fail("CUDA", cudaGetErrorString(dg_e_), #call, __FILE__, __LINE__);  \
    } while (0)

#define DG_CUDNN_CHECK(call)                                                             \
    do {                                                                                 \
        cudnnStatus_t dg_s_ = (call);                                                    \
        if (dg_s_ != CUDNN_STATUS_SUCCESS)                                               \
            dg_cuda_fail("cuDNN", cudnnGetErrorString(dg_s_), #call, __FILE__, __LINE__); \
    } while (0)

#define DG_CUBLAS_CHECK(call)                                                              \
    do {                                                                                   \
        cublasStatus_t dg_b_ = (call);                                                     \
        if (dg_b_ != CUBLAS_STATUS_SUCCESS)                                                \
            dg_cuda_fail("cuBLAS", cublasGetStatusString(dg_b_), #call, __FILE__, __LINE__); \
    } while (0)

/* After a <<<...>>> launch: a bad configuration is reported at once, with this file:line; with
 * DNNGUARD_CUDA_SYNC=1 in the environment the stream is also synchronised, so that a fault inside
 * the kernel is reported here rather than at the next synchronising call. */
#define DG_CUDA_CHECK_LAUNCH()                                                           \
    do {                                                                                 \
        DG_CUDA_CHECK(cudaGetLastError());                                               \
        if (dg_cuda_sync_each_launch()) DG_CUDA_CHECK(cudaStreamSynchronize(dg_cuda_stream())); \
    } while (0)

#endif
