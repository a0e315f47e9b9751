/* kernels/cuda/backend_cuda.cu — the CUDA backend's op table, device detection (no device, no
 * driver or an unsupported GPU: NULL, and the caller says so) and the state every op shares: one
 * stream, the cuDNN and cuBLAS handles, the modes. Knows nothing of nets or files. */
#include "cuda_backend.h"

#ifdef DG_CUDA_HAVE_NCCL
#include <nccl.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace {

struct cuda_state {
    int ready;                 /* 1 found and initialised, -1 unusable, 0 not tried yet */
    int device;
    int sm_count;
    size_t total_mem;
    size_t used_at_start; /* device memory in use once our context existed, before any handle */
    size_t ws_cap;
    int sync_each_launch;
    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    char name[400]; /* prop.name is up to 256 bytes */
};

cuda_state g_state;
int g_deterministic = 0;
int g_tf32 = 0;
dg_backend g_table;

/* Minimum compute capability: the build carries SASS for sm_80/86/89/90 and PTX for compute_90
 * (which newer GPUs JIT-compile); older GPUs have no image for our kernels. */
const int DG_CUDA_MIN_MAJOR = 8;

void fill_table(dg_backend *t) {
    memset(t, 0, sizeof *t);
    t->name = "cuda";
    t->alloc = dg_cuda_alloc;
    t->free = dg_cuda_free;
    t->upload = dg_cuda_upload;
    t->download = dg_cuda_download;
    t->copy = dg_cuda_copy;
    t->zero = dg_cuda_zero;
    t->sync = dg_cuda_sync;
    t->conv_workspace_bytes = dg_cuda_conv_workspace_bytes;
    t->conv_fwd = dg_cuda_conv_fwd;
    t->conv_bwd_data = dg_cuda_conv_bwd_data;
    t->conv_bwd_filter = dg_cuda_conv_bwd_filter;
    t->bias_fwd = dg_cuda_bias_fwd;
    t->bias_bwd = dg_cuda_bias_bwd;
    t->linear_fwd = dg_cuda_linear_fwd;
    t->linear_bwd = dg_cuda_linear_bwd;
    t->relu_fwd = dg_cuda_relu_fwd;
    t->relu_bwd = dg_cuda_relu_bwd;
    t->maxpool_fwd = dg_cuda_maxpool_fwd;
    t->maxpool_bwd = dg_cuda_maxpool_bwd;
    t->avgpool_fwd = dg_cuda_avgpool_fwd;
    t->avgpool_bwd = dg_cuda_avgpool_bwd;
    t->bn_fwd_train = dg_cuda_bn_fwd_train;
    t->bn_fwd_eval = dg_cuda_bn_fwd_eval;
    t->bn_bwd = dg_cuda_bn_bwd;
    t->bn_bwd_eval = dg_cuda_bn_bwd_eval;
    t->dropout_fwd = dg_cuda_dropout_fwd;
    t->dropout_bwd = dg_cuda_dropout_bwd;
    t->add = dg_cuda_add;
    t->axpy = dg_cuda_axpy;
    t->scale = dg_cuda_scale;
    t->sum_squares = dg_cuda_sum_squares;
    t->softmax_xent = dg_cuda_softmax_xent;
    t->sgd_step = dg_cuda_sgd_step;
    t->adam_step = dg_cuda_adam_step;
    t->wm_reg = dg_cuda_wm_reg;
    t->cw_box_fwd = dg_cuda_cw_box_fwd;
    t->cw_box_bwd = dg_cuda_cw_box_bwd;
    t->cw_logits = dg_cuda_cw_logits;
    t->lrp_ratio = dg_cuda_lrp_ratio;
    t->lrp_share = dg_cuda_lrp_share;
    t->lrp_maxpool = dg_cuda_lrp_maxpool;
}

void shutdown_backend(void) {
    if (g_state.ready != 1) return;
    cudaStreamSynchronize(g_state.stream); /* at exit: no checks, nothing left to report to */
    dg_cuda_conv_release();
    dg_cuda_memory_release();
    cublasDestroy(g_state.cublas);
    cudnnDestroy(g_state.cudnn);
    cudaStreamDestroy(g_state.stream);
    g_state.ready = 0;
}

int init_backend(void) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1) {
        (void)cudaGetLastError(); /* no driver, no device: not an error for the caller, just NULL */
        return -1;
    }
    DG_CUDA_CHECK(cudaGetDevice(&g_state.device)); /* 0, or the first of CUDA_VISIBLE_DEVICES */
    cudaDeviceProp prop;
    DG_CUDA_CHECK(cudaGetDeviceProperties(&prop, g_state.device));
    if (prop.major < DG_CUDA_MIN_MAJOR) {
        fprintf(stderr, "dnnguard: CUDA device %s has compute capability %d.%d; this build needs 8.0 or newer\n",
                prop.name, prop.major, prop.minor);
        return -1;
    }
    DG_CUDA_CHECK(cudaSetDevice(g_state.device));
    DG_CUDA_CHECK(cudaFree(0)); /* creates the context now, so that the baseline below includes it */
    size_t free_bytes = 0, total_bytes = 0;
    DG_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    g_state.used_at_start = total_bytes - free_bytes;
    g_state.sm_count = prop.multiProcessorCount;
    g_state.total_mem = prop.totalGlobalMem;
    g_state.ws_cap = dg_cuda_ws_cap(g_state.total_mem, getenv("DNNGUARD_CUDA_WS_MB"));
    const char *sync = getenv("DNNGUARD_CUDA_SYNC");
    g_state.sync_each_launch = sync && strcmp(sync, "1") == 0;
    snprintf(g_state.name, sizeof g_state.name, "%s (sm_%d%d, %d SMs, %.1f GiB)", prop.name, prop.major, prop.minor,
             prop.multiProcessorCount, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    /* A non-blocking stream: nothing synchronises with it implicitly, so every copy and memset
     * of memory.cu is issued on it explicitly, and download/sync wait on it. */
    DG_CUDA_CHECK(cudaStreamCreateWithFlags(&g_state.stream, cudaStreamNonBlocking));
    DG_CUDNN_CHECK(cudnnCreate(&g_state.cudnn));
    DG_CUDNN_CHECK(cudnnSetStream(g_state.cudnn, g_state.stream));
    DG_CUBLAS_CHECK(cublasCreate(&g_state.cublas));
    DG_CUBLAS_CHECK(cublasSetStream(g_state.cublas, g_state.stream));
    DG_CUBLAS_CHECK(cublasSetPointerMode(g_state.cublas, CUBLAS_POINTER_MODE_HOST));
    fill_table(&g_table);
    atexit(shutdown_backend);
    return 1;
}

} // namespace

extern "C" const dg_backend *dg_backend_cuda(void) {
    if (g_state.ready == 0) g_state.ready = init_backend();
    return g_state.ready == 1 ? &g_table : NULL;
}

extern "C" void dg_cuda_set_deterministic(int on) { g_deterministic = on ? 1 : 0; }
extern "C" void dg_cuda_set_tf32(int on) { g_tf32 = on ? 1 : 0; }
extern "C" const char *dg_cuda_device_name(void) { return g_state.ready == 1 ? g_state.name : ""; }
extern "C" void dg_cuda_describe(char *buf, size_t n) {
    int runtime = 0, driver = 0, major = 0, minor = 0, patch = 0;
    cudaRuntimeGetVersion(&runtime);
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0; /* no driver: 0 */
    cublasGetProperty(MAJOR_VERSION, &major);
    cublasGetProperty(MINOR_VERSION, &minor);
    cublasGetProperty(PATCH_LEVEL, &patch);
    size_t cudnn = cudnnGetVersion(); /* e.g. 91400 for 9.14.0 */
    char nccl[32] = "no NCCL";
#ifdef DG_CUDA_HAVE_NCCL
    int v = 0;
    if (ncclGetVersion(&v) == ncclSuccess) snprintf(nccl, sizeof nccl, "NCCL %d.%d.%d", v / 10000, v / 100 % 100, v % 100);
#endif
    const dg_backend *be = dg_backend_cuda(); /* starts the device when there is one */
    (void)cudaGetLastError();
    char drv[32] = "no driver";
    if (driver) snprintf(drv, sizeof drv, "driver %d.%d", driver / 1000, driver % 1000 / 10);
    snprintf(buf, n, "CUDA runtime %d.%d (%s), cuDNN %zu.%zu.%zu, cuBLAS %d.%d.%d, %s, built for sm_%s; device: %s",
             runtime / 1000, runtime % 1000 / 10, drv, cudnn / 10000, cudnn / 100 % 100, cudnn % 100, major, minor,
             patch, nccl, DG_CUDA_ARCHS, be ? g_state.name : "none usable here");
}

extern "C" size_t dg_cuda_device_footprint_bytes(void) {
    if (g_state.ready != 1) return 0;
    size_t free_bytes = 0, total_bytes = 0;
    DG_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    size_t used = total_bytes - free_bytes;
    return used > g_state.used_at_start ? used - g_state.used_at_start : 0;
}

cudaStream_t dg_cuda_stream(void) { return g_state.stream; }
cudnnHandle_t dg_cuda_cudnn(void) { return g_state.cudnn; }
cublasHandle_t dg_cuda_cublas(void) { return g_state.cublas; }
int dg_cuda_sm_count(void) { return g_state.sm_count; }
size_t dg_cuda_ws_cap_bytes(void) { return g_state.ws_cap; }
int dg_cuda_is_deterministic(void) { return g_deterministic; }
int dg_cuda_is_tf32(void) { return g_tf32; }
int dg_cuda_sync_each_launch(void) { return g_state.sync_each_launch; }

void dg_cuda_bad_shape(const char *op, const char *why) {
    fprintf(stderr, "dnnguard: cuda %s: unsupported shape: %s\n", op, why);
    fflush(stderr);
    exit(DG_CUDA_EXIT_DEVICE_FAILURE);
}
