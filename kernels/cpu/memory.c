/* kernels/cpu/memory.c — "device" memory of the CPU backend: aligned host memory. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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
void dg_cpu_copy(void *dst, const void *src, size_t bytes) { memmove(dst, src, bytes); }
void dg_cpu_zero(void *dst, size_t bytes) { memset(dst, 0, bytes); }
void dg_cpu_sync(void) {}
