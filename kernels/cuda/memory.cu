/* kernels/cuda/memory.cu — device memory of the CUDA backend: zero-filled 256-byte-aligned
 * allocations (arenas are carved by the host), uploads through double-buffered pinned staging so
 * that a batch's upload need not wait for queued compute, downloads, copies, zeroing, and a
 * private scratch for workspaces a caller did not size. Every transfer is on the backend's one
 * stream. */
#include "cuda_backend.h"

#include <string.h>

namespace {

dg_alloc_registry g_registry;

/* Pinned staging: two buffers, each reused only after the copy that last read it has finished. */
const size_t DG_STAGING_BYTES = (size_t)8 << 20;
char *g_staging[2];
cudaEvent_t g_staged[2];
int g_staging_state = 0; /* 0 not tried, 1 ready, -1 unavailable (plain copies are used) */
int g_next_staging = 0;

void *g_scratch = NULL;
size_t g_scratch_bytes = 0;

const size_t DG_ALIGN = 256;

int staging_ready(void) {
    if (g_staging_state != 0) return g_staging_state > 0;
    g_staging_state = -1;
    for (int i = 0; i < 2; i++) {
        if (cudaHostAlloc((void **)&g_staging[i], DG_STAGING_BYTES, cudaHostAllocDefault) != cudaSuccess) {
            (void)cudaGetLastError(); /* pinned memory is an optimisation: fall back to plain copies */
            if (i == 1) DG_CUDA_CHECK(cudaFreeHost(g_staging[0]));
            g_staging[0] = g_staging[1] = NULL;
            return 0;
        }
    }
    for (int i = 0; i < 2; i++) DG_CUDA_CHECK(cudaEventCreateWithFlags(&g_staged[i], cudaEventDisableTiming));
    g_staging_state = 1;
    return 1;
}

} // namespace

void *dg_cuda_alloc(size_t bytes) {
    if (bytes > SIZE_MAX - (DG_ALIGN - 1)) return NULL; /* rounding up would wrap to a tiny size */
    size_t rounded = (bytes + DG_ALIGN - 1) & ~(DG_ALIGN - 1);
    if (rounded == 0) rounded = DG_ALIGN;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, rounded);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError(); /* out of memory is the caller's to report: NULL */
        return NULL;
    }
    DG_CUDA_CHECK(e);
    if (dg_alloc_add(&g_registry, (uintptr_t)p, rounded) != 0) {
        DG_CUDA_CHECK(cudaFree(p));
        return NULL;
    }
    /* cudaMalloc is 256-byte aligned; the zero fill is ordered before any later use on the stream */
    DG_CUDA_CHECK(cudaMemsetAsync(p, 0, rounded, dg_cuda_stream()));
    return p;
}

void dg_cuda_free(void *p) {
    if (!p) return;
    /* work still queued may use p: wait for it (cudaFree alone does not order against our
     * non-blocking stream) */
    DG_CUDA_CHECK(cudaStreamSynchronize(dg_cuda_stream()));
    if (dg_alloc_remove(&g_registry, (uintptr_t)p) != 0) {
        fprintf(stderr, "dnnguard: cuda free: %p was not allocated by this backend\n", p);
        exit(DG_CUDA_EXIT_DEVICE_FAILURE);
    }
    DG_CUDA_CHECK(cudaFree(p));
}

void dg_cuda_upload(void *dst, const void *src_host, size_t bytes) {
    if (bytes == 0) return;
    cudaStream_t s = dg_cuda_stream();
    if (!staging_ready()) {
        DG_CUDA_CHECK(cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice, s));
        DG_CUDA_CHECK(cudaStreamSynchronize(s)); /* src_host may be reused as soon as we return */
        return;
    }
    /* Each chunk is copied into a pinned buffer and handed to the DMA engine asynchronously;
     * the host returns as soon as the last chunk is staged, and src_host is free again. With two
     * buffers, a third chunk (or upload) in a row waits until the copy out of its buffer ran, and
     * that copy is queued behind the compute before it: one upload per step of up to 16 MiB
     * (a batch) overlaps the step; more stall the host, which is what keeps the buffers safe. */
    const char *src = (const char *)src_host;
    char *d = (char *)dst;
    for (size_t off = 0; off < bytes; off += DG_STAGING_BYTES) {
        size_t len = bytes - off < DG_STAGING_BYTES ? bytes - off : DG_STAGING_BYTES;
        int b = g_next_staging;
        g_next_staging ^= 1;
        DG_CUDA_CHECK(cudaEventSynchronize(g_staged[b])); /* the last copy out of buffer b is done */
        memcpy(g_staging[b], src + off, len);
        DG_CUDA_CHECK(cudaMemcpyAsync(d + off, g_staging[b], len, cudaMemcpyHostToDevice, s));
        DG_CUDA_CHECK(cudaEventRecord(g_staged[b], s));
    }
}

void dg_cuda_download(void *dst_host, const void *src, size_t bytes) {
    if (bytes == 0) return;
    cudaStream_t s = dg_cuda_stream();
    DG_CUDA_CHECK(cudaMemcpyAsync(dst_host, src, bytes, cudaMemcpyDeviceToHost, s));
    DG_CUDA_CHECK(cudaStreamSynchronize(s));
}

void dg_cuda_copy(void *dst, const void *src, size_t bytes) {
    if (bytes == 0 || dst == src) return;
    cudaStream_t s = dg_cuda_stream();
    uintptr_t a = (uintptr_t)dst, b = (uintptr_t)src;
    if (a < b + bytes && b < a + bytes) { /* overlapping (memmove semantics): through the scratch */
        void *tmp = dg_cuda_scratch(bytes);
        DG_CUDA_CHECK(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, s));
        DG_CUDA_CHECK(cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, s));
        return;
    }
    DG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s));
}

void dg_cuda_zero(void *dst, size_t bytes) {
    if (bytes == 0) return;
    DG_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, dg_cuda_stream()));
}

void dg_cuda_sync(void) { DG_CUDA_CHECK(cudaStreamSynchronize(dg_cuda_stream())); }

size_t dg_cuda_room(const void *p) { return dg_alloc_room(&g_registry, (uintptr_t)p); }

void *dg_cuda_scratch(size_t bytes) {
    if (bytes <= g_scratch_bytes && g_scratch) return g_scratch;
    if (g_scratch) dg_cuda_free(g_scratch);
    g_scratch = NULL;
    g_scratch_bytes = 0;
    /* grow by half again, so that a run of slightly larger requests does not reallocate each time */
    size_t want = bytes + bytes / 2;
    g_scratch = dg_cuda_alloc(want);
    if (!g_scratch) {
        fprintf(stderr, "dnnguard: cuda: out of device memory for a %.1f MiB scratch buffer\n",
                (double)want / (1 << 20));
        exit(DG_CUDA_EXIT_DEVICE_FAILURE);
    }
    g_scratch_bytes = want;
    return g_scratch;
}

void dg_cuda_memory_release(void) {
    if (g_scratch) {
        cudaFree(g_scratch); /* at exit: unchecked */
        dg_alloc_remove(&g_registry, (uintptr_t)g_scratch);
        g_scratch = NULL;
        g_scratch_bytes = 0;
    }
    if (g_staging_state == 1) {
        for (int i = 0; i < 2; i++) {
            cudaEventDestroy(g_staged[i]);
            cudaFreeHost(g_staging[i]);
        }
    }
    g_staging_state = 0;
}

extern "C" void dg_cuda_memory_stats(size_t *in_use_bytes, size_t *peak_bytes) {
    if (in_use_bytes) *in_use_bytes = g_registry.in_use;
    if (peak_bytes) *peak_bytes = g_registry.peak;
}
