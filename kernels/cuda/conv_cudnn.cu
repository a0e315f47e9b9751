/* kernels/cuda/conv_cudnn.cu — convolution forward, backward-data and backward-filter through
 * cuDNN's v7-style API (deprecated in cuDNN 9 but supported: its warnings are off in this file
 * only). Per shape and mode: descriptors and one algorithm per pass, chosen once from cuDNN's
 * heuristics under the workspace cap and cached (shapes.c's LRU table; an evicted slot's
 * descriptors are rebuilt); a forward algorithm cuDNN refuses when run falls back, once, to the
 * deterministic fallback. Backward passes accumulate (beta = 1). Touches only the buffers it is
 * handed, plus the private scratch when the caller's workspace is smaller than the plan needs. */

/* cuDNN 9 marks the whole v7 convolution API deprecated; keep it quiet here, and only here. */
#undef CUDNN_WARN_DEPRECATED
#include "cuda_backend.h"

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
#ifdef __NVCC__
#pragma nv_diag_suppress 1215
#pragma nv_diag_suppress 1444
#endif

#include <string.h>

static_assert(DG_MATH_DEFAULT == (int)CUDNN_DEFAULT_MATH, "math enum");
static_assert(DG_MATH_TENSOR_OP == (int)CUDNN_TENSOR_OP_MATH, "math enum");
static_assert(DG_MATH_ALLOW_CONVERSION == (int)CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, "math enum");
static_assert(DG_MATH_FMA == (int)CUDNN_FMA_MATH, "math enum");
static_assert((int)CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM == 0, "fallback algo");
static_assert((int)CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 == 1, "fallback algo");
static_assert((int)CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 == 1, "fallback algo");

namespace {

/* cuDNN state kept per cache slot, rebuilt when the slot is evicted */
struct conv_descs {
    int live;
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv[DG_CONV_PASSES]; /* one per pass: each has its own math type */
};

dg_conv_cache g_cache;
conv_descs g_descs[DG_CONV_CACHE_CAP];
int g_cache_ready = 0;

const int DG_MAX_CANDIDATES = 16;

void destroy_descs(conv_descs *e) {
    if (!e->live) return;
    DG_CUDNN_CHECK(cudnnDestroyTensorDescriptor(e->x));
    DG_CUDNN_CHECK(cudnnDestroyTensorDescriptor(e->y));
    DG_CUDNN_CHECK(cudnnDestroyFilterDescriptor(e->w));
    for (int p = 0; p < DG_CONV_PASSES; p++) DG_CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(e->conv[p]));
    e->live = 0;
}

void create_descs(conv_descs *e, const dg_conv_desc *d, int query_math) {
    DG_CUDNN_CHECK(cudnnCreateTensorDescriptor(&e->x));
    DG_CUDNN_CHECK(cudnnCreateTensorDescriptor(&e->y));
    DG_CUDNN_CHECK(cudnnCreateFilterDescriptor(&e->w));
    DG_CUDNN_CHECK(cudnnSetTensor4dDescriptor(e->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->n, d->c, d->h, d->w));
    DG_CUDNN_CHECK(cudnnSetFilter4dDescriptor(e->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, d->k, d->c, d->r, d->s));
    for (int p = 0; p < DG_CONV_PASSES; p++) {
        DG_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&e->conv[p]));
        DG_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(e->conv[p], d->pad, d->pad, d->stride, d->stride, 1, 1,
                                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
        DG_CUDNN_CHECK(cudnnSetConvolutionMathType(e->conv[p], (cudnnMathType_t)query_math));
    }
    int on, oc, oh, ow;
    DG_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(e->conv[0], e->x, e->w, &on, &oc, &oh, &ow));
    if (on != d->n || oc != d->k || oh != d->oh || ow != d->ow) {
        fprintf(stderr, "dnnguard: cuDNN computes a %dx%dx%dx%d output where dnnguard expects %dx%dx%dx%d\n", on, oc,
                oh, ow, d->n, d->k, d->oh, d->ow);
        exit(DG_CUDA_EXIT_DEVICE_FAILURE);
    }
    DG_CUDNN_CHECK(cudnnSetTensor4dDescriptor(e->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d->n, d->k, d->oh, d->ow));
    e->live = 1;
}

/* The workspace cuDNN needs for algo on pass p, or -1 when it refuses the algorithm here. */
long long workspace_of(const conv_descs *e, int p, int algo) {
    cudnnHandle_t h = dg_cuda_cudnn();
    size_t bytes = 0;
    cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
    if (p == DG_CONV_FWD)
        s = cudnnGetConvolutionForwardWorkspaceSize(h, e->x, e->w, e->conv[p], e->y, (cudnnConvolutionFwdAlgo_t)algo,
                                                    &bytes);
    else if (p == DG_CONV_BWD_DATA)
        s = cudnnGetConvolutionBackwardDataWorkspaceSize(h, e->w, e->y, e->conv[p], e->x,
                                                         (cudnnConvolutionBwdDataAlgo_t)algo, &bytes);
    else
        s = cudnnGetConvolutionBackwardFilterWorkspaceSize(h, e->x, e->y, e->conv[p], e->w,
                                                           (cudnnConvolutionBwdFilterAlgo_t)algo, &bytes);
    return s == CUDNN_STATUS_SUCCESS ? (long long)bytes : -1;
}

template <typename Perf> void to_candidates(const Perf *perf, int n, dg_algo_candidate *c) {
    for (int i = 0; i < n; i++) {
        c[i].algo = (int)perf[i].algo;
        c[i].ok = perf[i].status == CUDNN_STATUS_SUCCESS;
        c[i].ws_bytes = perf[i].memory;
        c[i].deterministic = perf[i].determinism == CUDNN_DETERMINISTIC;
        c[i].math = (int)perf[i].mathType;
    }
}

/* cuDNN's ranked heuristics for pass p (best first), as candidates; returns how many. A shape the
 * heuristics refuse outright gets none, and choose() falls back. */
int heuristics(const conv_descs *e, int p, dg_algo_candidate *cand) {
    cudnnHandle_t h = dg_cuda_cudnn();
    int max = 0, got = 0;
    cudnnStatus_t s;
    if (p == DG_CONV_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[DG_MAX_CANDIDATES];
        DG_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max));
        if (max > DG_MAX_CANDIDATES) max = DG_MAX_CANDIDATES;
        s = cudnnGetConvolutionForwardAlgorithm_v7(h, e->x, e->w, e->conv[p], e->y, max, &got, perf);
        if (s == CUDNN_STATUS_SUCCESS) to_candidates(perf, got, cand);
    } else if (p == DG_CONV_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[DG_MAX_CANDIDATES];
        DG_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max));
        if (max > DG_MAX_CANDIDATES) max = DG_MAX_CANDIDATES;
        s = cudnnGetConvolutionBackwardDataAlgorithm_v7(h, e->w, e->y, e->conv[p], e->x, max, &got, perf);
        if (s == CUDNN_STATUS_SUCCESS) to_candidates(perf, got, cand);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[DG_MAX_CANDIDATES];
        DG_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max));
        if (max > DG_MAX_CANDIDATES) max = DG_MAX_CANDIDATES;
        s = cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, e->x, e->y, e->conv[p], e->w, max, &got, perf);
        if (s == CUDNN_STATUS_SUCCESS) to_candidates(perf, got, cand);
    }
    if (s != CUDNN_STATUS_SUCCESS) {
        /* NOT_SUPPORTED is the heuristics' way of saying "none here"; anything else points at the
         * descriptors, so say it (once) rather than hide it behind the fallback */
        static int said;
        if (s != CUDNN_STATUS_NOT_SUPPORTED && !said++)
            fprintf(stderr, "dnnguard: cuDNN's heuristics for convolution pass %d answered %s; using the fallback "
                    "algorithm\n", p, cudnnGetErrorString(s));
        return 0;
    }
    return got < 0 ? 0 : (got > max ? max : got);
}

/* Plan pass p with its deterministic fallback algorithm (and the math type of the mode), setting
 * the descriptor to match; -1 when cuDNN refuses even that here. */
int use_fallback(conv_descs *e, int p, const dg_conv_key *key, dg_conv_plan *plan) {
    int algo = dg_conv_fallback_algo(p);
    int math = key->tf32 ? DG_MATH_DEFAULT : DG_MATH_FMA;
    DG_CUDNN_CHECK(cudnnSetConvolutionMathType(e->conv[p], (cudnnMathType_t)math));
    long long need = workspace_of(e, p, algo);
    if (need < 0) return -1;
    plan->algo[p] = algo;
    plan->math[p] = math;
    plan->ws_bytes[p] = (size_t)need;
    return 0;
}

/* Choose pass p's algorithm: the best-ranked candidate that qualifies (shapes.c's policy) and
 * whose real workspace, asked of cuDNN with the math type it will run with, fits the cap; else
 * the deterministic fallback. Leaves the pass's descriptor set to the chosen math type. */
void choose(conv_descs *e, int p, const dg_conv_key *key, dg_conv_plan *plan) {
    dg_algo_candidate cand[DG_MAX_CANDIDATES];
    int n = heuristics(e, p, cand);
    size_t cap = dg_cuda_ws_cap_bytes();
    for (;;) {
        int i = dg_conv_pick(cand, n, cap, key->deterministic, key->tf32);
        if (i < 0) break;
        int math = dg_conv_math_for(cand[i].math, key->tf32);
        DG_CUDNN_CHECK(cudnnSetConvolutionMathType(e->conv[p], (cudnnMathType_t)math));
        long long need = workspace_of(e, p, cand[i].algo);
        if (need >= 0 && (size_t)need <= cap) {
            plan->algo[p] = cand[i].algo;
            plan->math[p] = math;
            plan->ws_bytes[p] = (size_t)need;
            return;
        }
        cand[i].ok = 0; /* refused or too big with this math type: try the next one */
    }
    if (use_fallback(e, p, key, plan) != 0) {
        fprintf(stderr,
                "dnnguard: cuDNN offers no usable algorithm for convolution pass %d of n%d c%d %dx%d -> k%d %dx%d "
                "stride %d pad %d\n",
                p, key->n, key->c, key->h, key->w, key->k, key->r, key->s, key->stride, key->pad);
        exit(DG_CUDA_EXIT_DEVICE_FAILURE);
    }
}

/* The cache slot for d in the current modes, planned on first sight; -1 for an empty batch. */
int slot_for(const dg_conv_desc *d, const char *op) {
    const char *why = NULL;
    int r = dg_cuda_conv_check(d, &why);
    if (r < 0) dg_cuda_bad_shape(op, why);
    if (r > 0) return -1;
    if (!g_cache_ready) {
        dg_conv_cache_init(&g_cache);
        memset(g_descs, 0, sizeof g_descs);
        g_cache_ready = 1;
    }
    dg_conv_key key = dg_conv_key_make(d, dg_cuda_is_deterministic(), dg_cuda_is_tf32());
    int slot = dg_conv_cache_find(&g_cache, &key);
    if (slot >= 0) return slot;
    int evicted = 0;
    slot = dg_conv_cache_insert(&g_cache, &key, &evicted);
    destroy_descs(&g_descs[slot]); /* a no-op unless the slot was evicted */
    create_descs(&g_descs[slot], d, key.tf32 ? DG_MATH_DEFAULT : DG_MATH_FMA);
    dg_conv_plan *plan = &g_cache.plan[slot];
    for (int p = 0; p < DG_CONV_PASSES; p++) choose(&g_descs[slot], p, &key, plan);
    plan->ws_need = 0;
    for (int p = 0; p < DG_CONV_PASSES; p++)
        if (plan->ws_bytes[p] > plan->ws_need) plan->ws_need = plan->ws_bytes[p];
    return slot;
}

/* A planned forward algorithm that cuDNN refuses when it is run (CUDNN_STATUS_NOT_SUPPORTED), as
 * heuristics ranked for another math type sometimes are: the slot's forward pass falls back, once,
 * to the deterministic fallback algorithm, said on stderr. Whether to run again. Only the forward
 * pass (beta = 0) may: it overwrites its output, while the backward passes add to theirs, and
 * cuDNN does not promise that a multi-kernel algorithm refuses before its first launch. */
bool fell_back(int slot, int p, cudnnStatus_t s) {
    dg_conv_plan *plan = &g_cache.plan[slot];
    if (p != DG_CONV_FWD || s != CUDNN_STATUS_NOT_SUPPORTED || plan->algo[p] == dg_conv_fallback_algo(p)) return false;
    const int refused = plan->algo[p];
    if (use_fallback(&g_descs[slot], p, &g_cache.key[slot], plan) != 0) return false;
    if (plan->ws_bytes[p] > plan->ws_need) plan->ws_need = plan->ws_bytes[p];
    const dg_conv_key *k = &g_cache.key[slot];
    fprintf(stderr, "dnnguard: cuDNN refused algorithm %d for convolution pass %d of n%d c%d %dx%d -> k%d %dx%d "
            "stride %d pad %d when run; using algorithm %d\n",
            refused, p, k->n, k->c, k->h, k->w, k->k, k->r, k->s, k->stride, k->pad, plan->algo[p]);
    return true;
}

/* The caller's workspace when it holds need bytes (by the allocation registry), else the scratch:
 * a smaller batch than the one the caller sized for may have been given a different plan. */
void *workspace(void *ws, size_t need) {
    if (need == 0) return ws;
    if (ws && dg_cuda_room(ws) >= need) return ws;
    return dg_cuda_scratch(need);
}

/* Run pass p of slot's plan: the library's status, and on a refusal of the planned algorithm the
 * status of a second try with the fallback (fell_back). */
template <typename Run> cudnnStatus_t run_pass(int slot, int p, void *ws, Run run) {
    for (int attempt = 0;; attempt++) {
        const dg_conv_plan *plan = &g_cache.plan[slot];
        size_t need = plan->ws_bytes[p];
        cudnnStatus_t status = run(&g_descs[slot], plan->algo[p], workspace(ws, need), need);
        if (status == CUDNN_STATUS_SUCCESS || attempt > 0 || !fell_back(slot, p, status)) return status;
    }
}

} // namespace

size_t dg_cuda_conv_workspace_bytes(const dg_conv_desc *d) {
    int slot = slot_for(d, "conv_workspace_bytes");
    if (slot < 0) return 0;
    return g_cache.plan[slot].ws_need;
}

void dg_cuda_conv_fwd(const dg_conv_desc *d, const float *x, const float *w, float *y, void *ws) {
    int slot = slot_for(d, "conv_fwd");
    if (slot < 0) return;
    const float alpha = 1.0f, beta = 0.0f;
    auto forward = [&](const conv_descs *e, int algo, void *work, size_t need) {
        return cudnnConvolutionForward(dg_cuda_cudnn(), &alpha, e->x, x, e->w, w, e->conv[DG_CONV_FWD],
                                       (cudnnConvolutionFwdAlgo_t)algo, work, need, &beta, e->y, y);
    };
    const cudnnStatus_t status_of_cudnnConvolutionForward = run_pass(slot, DG_CONV_FWD, ws, forward);
    DG_CUDNN_CHECK(status_of_cudnnConvolutionForward);
    if (dg_cuda_sync_each_launch()) DG_CUDA_CHECK(cudaStreamSynchronize(dg_cuda_stream()));
}

void dg_cuda_conv_bwd_data(const dg_conv_desc *d, const float *dy, const float *w, float *dx, int accumulate,
                           void *ws) {
    int slot = slot_for(d, "conv_bwd_data");
    if (slot < 0) return;
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f; /* dx += or dx = (cuDNN reads no dx under 0) */
    auto backward_data = [&](const conv_descs *e, int algo, void *work, size_t need) {
        return cudnnConvolutionBackwardData(dg_cuda_cudnn(), &alpha, e->w, w, e->y, dy, e->conv[DG_CONV_BWD_DATA],
                                            (cudnnConvolutionBwdDataAlgo_t)algo, work, need, &beta, e->x, dx);
    };
    const cudnnStatus_t status_of_cudnnConvolutionBackwardData = run_pass(slot, DG_CONV_BWD_DATA, ws, backward_data);
    DG_CUDNN_CHECK(status_of_cudnnConvolutionBackwardData);
    if (dg_cuda_sync_each_launch()) DG_CUDA_CHECK(cudaStreamSynchronize(dg_cuda_stream()));
}

void dg_cuda_conv_bwd_filter(const dg_conv_desc *d, const float *x, const float *dy, float *dw, void *ws) {
    int slot = slot_for(d, "conv_bwd_filter");
    if (slot < 0) return;
    const float alpha = 1.0f, beta = 1.0f; /* dw += */
    auto backward_filter = [&](const conv_descs *e, int algo, void *work, size_t need) {
        return cudnnConvolutionBackwardFilter(dg_cuda_cudnn(), &alpha, e->x, x, e->y, dy, e->conv[DG_CONV_BWD_FILTER],
                                              (cudnnConvolutionBwdFilterAlgo_t)algo, work, need, &beta, e->w, dw);
    };
    const cudnnStatus_t status_of_cudnnConvolutionBackwardFilter =
        run_pass(slot, DG_CONV_BWD_FILTER, ws, backward_filter);
    DG_CUDNN_CHECK(status_of_cudnnConvolutionBackwardFilter);
    if (dg_cuda_sync_each_launch()) DG_CUDA_CHECK(cudaStreamSynchronize(dg_cuda_stream()));
}

void dg_cuda_conv_release(void) {
    if (!g_cache_ready) return;
    for (int i = 0; i < DG_CONV_CACHE_CAP; i++) {
        conv_descs *e = &g_descs[i];
        if (!e->live) continue;
        /* at exit: unchecked */
        cudnnDestroyTensorDescriptor(e->x);
        cudnnDestroyTensorDescriptor(e->y);
        cudnnDestroyFilterDescriptor(e->w);
        for (int p = 0; p < DG_CONV_PASSES; p++) cudnnDestroyConvolutionDescriptor(e->conv[p]);
        e->live = 0;
    }
    g_cache_ready = 0;
}
