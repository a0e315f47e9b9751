/* kernels/math/common.h — the qualifier that lets one inline function serve the CPU loops and the
 * CUDA kernels alike. Files in kernels/math/ hold per-element formulas only: no loops, no memory. */
#ifndef DG_MATH_COMMON_H
#define DG_MATH_COMMON_H

#ifdef __CUDACC__
#define DG_HD __host__ __device__ __forceinline__
#else
#define DG_HD static inline
#endif

/* One element of a backward op's input gradient g: added to what dx held (accumulate), or written
 * over it, which is then never read (backend.h). */
DG_HD float dg_grad_out(int accumulate, float held, float g) { return accumulate ? held + g : g; }

#endif
