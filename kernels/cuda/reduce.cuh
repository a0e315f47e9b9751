/* kernels/cuda/reduce.cuh — block-wide reductions for the custom kernels (per-channel and per-row
 * sums in double, a row maximum), internal to kernels/cuda. Every thread of the block must call
 * them (they synchronise), blockDim.x must be a multiple of 32 and at most 1024. No atomics: a
 * fixed tree, so results are the same on every run. */
#ifndef DG_CUDA_REDUCE_CUH
#define DG_CUDA_REDUCE_CUH

/* Σ over the block of each thread's a and b; every thread gets both totals. */
__device__ __forceinline__ void dg_block_sum2(double &a, double &b) {
    __shared__ double sa[32], sb[32];
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const unsigned warps = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        a += __shfl_down_sync(0xffffffffu, a, o);
        b += __shfl_down_sync(0xffffffffu, b, o);
    }
    if (lane == 0) {
        sa[warp] = a;
        sb[warp] = b;
    }
    __syncthreads();
    if (warp == 0) {
        a = lane < warps ? sa[lane] : 0.0;
        b = lane < warps ? sb[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) {
            a += __shfl_down_sync(0xffffffffu, a, o);
            b += __shfl_down_sync(0xffffffffu, b, o);
        }
        if (lane == 0) {
            sa[0] = a;
            sb[0] = b;
        }
    }
    __syncthreads();
    a = sa[0];
    b = sb[0];
    __syncthreads(); /* the shared slots may be reused by the next call */
}

__device__ __forceinline__ double dg_block_sum(double a) {
    double b = 0.0;
    dg_block_sum2(a, b);
    return a;
}

/* max over the block with `v > m` comparisons (NaN never wins here; callers that must propagate
 * a NaN do so themselves); every thread gets the result. */
__device__ __forceinline__ float dg_block_max(float m) {
    __shared__ float sm[32];
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const unsigned warps = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        float v = __shfl_down_sync(0xffffffffu, m, o);
        if (v > m) m = v;
    }
    if (lane == 0) sm[warp] = m;
    __syncthreads();
    if (warp == 0) {
        m = lane < warps ? sm[lane] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1) {
            float v = __shfl_down_sync(0xffffffffu, m, o);
            if (v > m) m = v;
        }
        if (lane == 0) sm[0] = m;
    }
    __syncthreads();
    m = sm[0];
    __syncthreads();
    return m;
}

#endif
