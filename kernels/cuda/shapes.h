/* kernels/cuda/shapes.h — the CUDA backend's device-free logic, in plain C: shape checks, the
 * convolution algorithm cache (key, LRU table, plan), algorithm choice under a workspace cap, the
 * launch geometry of every custom kernel, and the registry of live device allocations. No CUDA
 * header and no device memory here, so tests/test_cuda_shapes.c runs it without a GPU. */
#ifndef DG_CUDA_SHAPES_H
#define DG_CUDA_SHAPES_H

#include <stddef.h>
#include <stdint.h>

#include "../backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the backend's public switches (defined in backend_cuda.cu; DNNGUARD_CUDA builds only) ---- */

/* The CUDA op table, or NULL when no usable device is present (host/cli.c says so and exits 2). */
const dg_backend *dg_backend_cuda(void);
/* Deterministic mode: only deterministic cuDNN algorithms (the custom kernels use no atomics and
 * are deterministic anyway). TF32: tensor-core math for convolutions (cuDNN) and GEMMs (cuBLAS).
 * Either may be changed at any time; convolution plans are cached per mode. */
void dg_cuda_set_deterministic(int on);
void dg_cuda_set_tf32(int on);
/* "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)" once dg_backend_cuda() found a device, else "". */
const char *dg_cuda_device_name(void);
/* The CUDA build and device in one line, for dnnguard --version: runtime, driver, cuDNN, cuBLAS and
 * NCCL versions, the architectures compiled for, and the device (starting it) or "none usable here". */
void dg_cuda_describe(char *buf, size_t n);
/* Bytes allocated through the backend now and at most so far (arenas and the private scratch). */
void dg_cuda_memory_stats(size_t *in_use_bytes, size_t *peak_bytes);
/* Device memory in use now beyond what was in use once the backend's context existed (cudaMemGetInfo:
 * also the cuDNN and cuBLAS handles, their internal workspaces, loaded kernels, the driver's page
 * rounding, and any other process's allocations on the same device meanwhile). */
size_t dg_cuda_device_footprint_bytes(void);

/* ---- shape checks ---- */

/* 0 when the backend can run d: every size ≥ 1, oh/ow as dg_conv_desc_init computes them, and every
 * tensor (x, w, y) under 2^31 elements (cuDNN's 4-d descriptors and the kernels index with int).
 * 1 when there is nothing to do (a batch of 0; pooling: also 0 channels), as the CPU loops do
 * nothing then. Otherwise -1, with *why naming the problem (a static string). */
int dg_cuda_conv_check(const dg_conv_desc *d, const char **why);
int dg_cuda_pool_check(const dg_pool_desc *d, const char **why);
/* [n, c, hw] tensors (bias, batch norm, linear as [n, features, 1]): 0 when every size ≥ 1 and
 * n·c·hw < 2^31; 1 when a size is 0 (nothing to do); -1 when negative or too large. */
int dg_cuda_nchw_check(int n, int c, int hw, const char **why);

/* ---- convolution algorithm cache ---- */

enum { DG_CONV_FWD = 0, DG_CONV_BWD_DATA = 1, DG_CONV_BWD_FILTER = 2, DG_CONV_PASSES = 3 };

/* cuDNN's cudnnMathType_t values (conv_cudnn.cu asserts that they match). */
enum { DG_MATH_DEFAULT = 0, DG_MATH_TENSOR_OP = 1, DG_MATH_ALLOW_CONVERSION = 2, DG_MATH_FMA = 3 };

/* What a plan is cached under: the geometry and the two modes that change the choice. */
typedef struct dg_conv_key {
    int n, c, h, w, k, r, s, stride, pad;
    int deterministic, tf32;
} dg_conv_key;

dg_conv_key dg_conv_key_make(const dg_conv_desc *d, int deterministic, int tf32);
int dg_conv_key_equal(const dg_conv_key *a, const dg_conv_key *b);
uint64_t dg_conv_key_hash(const dg_conv_key *k);

/* The algorithms chosen for one key: one per pass, each with its math type and workspace. */
typedef struct dg_conv_plan {
    int algo[DG_CONV_PASSES];
    int math[DG_CONV_PASSES];
    size_t ws_bytes[DG_CONV_PASSES];
    size_t ws_need; /* the largest of ws_bytes: what conv_workspace_bytes reports */
} dg_conv_plan;

#define DG_CONV_CACHE_CAP 256
#define DG_CONV_CACHE_BUCKETS 512 /* power of two */

/* A fixed-size hash table (chained through slot indices) with least-recently-used eviction.
 * The slot index is stable while the entry lives, so the caller keeps per-slot state (cuDNN
 * descriptors) in a parallel array and rebuilds it when insert reports an eviction. */
typedef struct dg_conv_cache {
    dg_conv_key key[DG_CONV_CACHE_CAP];
    dg_conv_plan plan[DG_CONV_CACHE_CAP];
    uint64_t last_use[DG_CONV_CACHE_CAP];
    int next[DG_CONV_CACHE_CAP];  /* chain within a bucket, -1 ends */
    int used[DG_CONV_CACHE_CAP];
    int head[DG_CONV_CACHE_BUCKETS];
    uint64_t clock;
    int count;
    uint64_t hits, misses, evictions;
} dg_conv_cache;

void dg_conv_cache_init(dg_conv_cache *c);
/* The slot holding k (its use refreshed), or -1. */
int dg_conv_cache_find(dg_conv_cache *c, const dg_conv_key *k);
/* A slot for k, which must not be present: a free one, or the least recently used one, in which
 * case *evicted is set to 1 (the caller must release what it kept for that slot first), else 0.
 * The slot's plan is zeroed. */
int dg_conv_cache_insert(dg_conv_cache *c, const dg_conv_key *k, int *evicted);

/* ---- algorithm choice ---- */

/* One ranked answer of cuDNN's heuristics (cudnnGet*Algorithm_v7), best first. */
typedef struct dg_algo_candidate {
    int algo;
    int ok;            /* cuDNN's status was success */
    size_t ws_bytes;   /* workspace it needs */
    int deterministic; /* cudnnDeterminism_t == CUDNN_DETERMINISTIC */
    int math;          /* DG_MATH_* */
} dg_algo_candidate;

/* The index of the first candidate that is ok, needs at most cap bytes, is deterministic when
 * deterministic is set, and whose math is allowed: FP32 (tf32 = 0) allows DEFAULT and FMA only
 * (the descriptor is then set to FMA, so no TF32 can creep in); TF32 also allows TENSOR_OP;
 * ALLOW_CONVERSION (down-conversion to FP16) is never allowed. -1 when none qualifies. */
int dg_conv_pick(const dg_algo_candidate *cand, int n, size_t cap, int deterministic, int tf32);
/* The algorithm used when no candidate qualifies: deterministic, small-workspace, always
 * supported for 2-d float NCHW (IMPLICIT_GEMM, BWD_DATA_ALGO_1, BWD_FILTER_ALGO_1). */
int dg_conv_fallback_algo(int pass);
/* The math type to set on the pass's descriptor once a candidate is chosen. */
int dg_conv_math_for(int candidate_math, int tf32);

/* ---- workspace cap ---- */

#define DG_CUDA_WS_CAP_MIN ((size_t)64 << 20)
#define DG_CUDA_WS_CAP_MAX ((size_t)1 << 30)
/* The most workspace one convolution pass may ask for: DNNGUARD_CUDA_WS_MB (env_mb, may be NULL
 * or empty; a positive integer of MiB, else ignored) when set, else total_bytes/16 clamped to
 * [64 MiB, 1 GiB]. Bounds the shared workspace that dg_net_setup allocates. */
size_t dg_cuda_ws_cap(size_t total_bytes, const char *env_mb);

/* ---- launch geometry ---- */

typedef struct dg_launch {
    unsigned blocks, threads; /* blocks == 0: nothing to do, do not launch */
} dg_launch;

#define DG_CUDA_THREADS 256     /* element-wise and per-element-of-output kernels */
#define DG_CUDA_ROW_THREADS 512 /* per-row reductions (batch norm channels, bias channels) */
#define DG_CUDA_WAVES 32        /* grid-stride kernels launch at most this many blocks per SM */

/* Grid-stride kernel over n items: 256 threads, ceil(n/256) blocks capped at sm_count·32 (at
 * least 1 SM assumed). n == 0 gives blocks == 0. */
dg_launch dg_launch_1d(size_t n, int sm_count);
/* One block per row (rows blocks; rows must fit an unsigned), threads a power of two in [32, max_threads]
 * and no larger than needed for row_len items. rows == 0 gives blocks == 0. */
dg_launch dg_launch_rows(size_t rows, size_t row_len, unsigned max_threads);
/* Grid-stride over rows, one row per block at a time: like launch_rows, blocks capped at sm_count·32. */
dg_launch dg_launch_rows_strided(size_t rows, size_t row_len, unsigned max_threads, int sm_count);

/* The output rows (or columns) whose pooling window covers input row i: [*lo, *hi), clipped to
 * [0, out). Used by the backward kernels, which gather per input element instead of scattering. */
void dg_pool_covering(int i, int k, int stride, int pad, int out, int *lo, int *hi);

/* ---- registry of live device allocations ---- */

/* Sorted by address; lets a convolution know how many bytes the caller's workspace really has:
 * from the ws pointer (anywhere inside one of the backend's allocations) to the end of that
 * allocation, which backend.h's contract reserves for the workspace. */
typedef struct dg_alloc_entry {
    uintptr_t base;
    size_t bytes;
} dg_alloc_entry;

typedef struct dg_alloc_registry {
    dg_alloc_entry *e;
    size_t n, cap;
    size_t in_use, peak;
} dg_alloc_registry;

/* 0, or -1 when out of host memory or base overlaps a live entry. */
int dg_alloc_add(dg_alloc_registry *r, uintptr_t base, size_t bytes);
/* 0, or -1 when base is not the start of a live entry. */
int dg_alloc_remove(dg_alloc_registry *r, uintptr_t base);
/* Bytes from p to the end of the live allocation holding p; 0 when none holds it (NULL, foreign). */
size_t dg_alloc_room(const dg_alloc_registry *r, uintptr_t p);
void dg_alloc_clear(dg_alloc_registry *r);

#ifdef __cplusplus
}
#endif

#endif
