/* kernels/math/rng.h — counter-based random numbers: value = hash(seed, counter), so any element
 * of any stream can be drawn independently, on any backend, in any order, with the same result.
 * This is what makes dropout masks, shuffles and augmentation repeatable and resumable. */
#ifndef DG_MATH_RNG_H
#define DG_MATH_RNG_H

#include <stdint.h>
#include "common.h"

/* SplitMix64's finaliser: a bijective 64-bit mix with good avalanche. */
DG_HD uint64_t dg_mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Derive a sub-stream seed from a parent seed and a tag (epoch, step, node index, ...). */
DG_HD uint64_t dg_rng_stream(uint64_t seed, uint64_t tag) { return dg_mix64(seed ^ dg_mix64(tag)); }

DG_HD uint64_t dg_rng_u64(uint64_t seed, uint64_t counter) { return dg_mix64(seed + dg_mix64(counter)); }

/* Uniform in [0, 1) with 24 random bits (exactly representable as float). */
DG_HD float dg_rng_uniform(uint64_t seed, uint64_t counter) {
    return (float)(dg_rng_u64(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

#endif
