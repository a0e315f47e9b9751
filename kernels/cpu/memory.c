/* kernels/cpu/memory.c — "device" memory of the CPU backend: aligned host memory. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include "cpu.h"

void *dg_cpu_alloc(size_t bytes) {
    if (bytes > SIZE_MAX - 63) return NULL; /* rounding up would wrap to a tiny size */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p) memset(p, 0, rounded ? rounded : 64);
    return p;
}
void dg_cpu_free(void *p) { free(p); }
void dg_cpu_upload(void *dst, const void *src_host, size_t bytes) { memcpy(dst, src_host, bytes); }
void dg_cpu_download(void *dst_host, const void *src, size_t bytes) { memcpy(dst_host, src, bytes); }
void dg_cpu_copy(void *dst, const void *src, size_t bytes) {
    const uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;
    if (bytes < (size_t)DG_CPU_PAR_MIN * sizeof(float) || (d < s + bytes && s < d + bytes)) {
        memmove(dst, src, bytes); /* small, or overlapping */
        return;
    }
    /* a large copy (a residual block's gradient) in one share per thread: one core alone does not
     * reach the memory bandwidth */
#pragma omp parallel
    {
        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t lo = bytes / nt * t, hi = t + 1 == nt ? bytes : bytes / nt * (t + 1);
        memcpy((char *)dst + lo, (const char *)src + lo, hi - lo);
    }
}
void dg_cpu_zero(void *dst, size_t bytes) { memset(dst, 0, bytes); }
void dg_cpu_sync(void) {}
