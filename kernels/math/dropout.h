/* kernels/math/dropout.h — per-element inverted dropout: element i of a mask is a pure function of
 * (seed, i, p), so every backend and thread count draws the same mask. No loops, no memory. */
#ifndef DG_MATH_DROPOUT_H
#define DG_MATH_DROPOUT_H

#include <stdint.h>
#include "common.h"
#include "rng.h"

/* The kept elements' scale 1/(1−p); p ≥ 1 drops everything, so the scale is never used (0, not inf). */
DG_HD float dg_dropout_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

/* mask[i]: keep with probability 1−p (uniform draw < 1−p), scaled so that E[mask] = 1. */
DG_HD float dg_dropout_mask(uint64_t seed, uint64_t i, float p, float scale) {
    return dg_rng_uniform(seed, i) < 1.0f - p ? scale : 0.0f;
}

#endif
