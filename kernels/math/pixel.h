/* kernels/math/pixel.h — 8-bit pixels and the net's input: the one normalisation (data loader,
 * fingerprint generation and authentication must agree to the last bit) and the rounding of a
 * pixel in [0, 1] to its 8-bit value. Formulas only: no loops, no memory. */
#ifndef DG_MATH_PIXEL_H
#define DG_MATH_PIXEL_H

#include <math.h>
#include "common.h"

/* u = byte·scale + shift = (byte/255 − mean)/std, with scale and shift computed once per channel */
DG_HD float dg_pixel_scale(float std) { return 1.0f / (255.0f * std); }
DG_HD float dg_pixel_shift(float mean, float std) { return -mean / std; }
DG_HD float dg_pixel_normalize(float byte, float scale, float shift) { return byte * scale + shift; }

/* the 8-bit value (as a float, 0..255) that a pixel x ∈ [0, 1] is written as: round half up */
DG_HD float dg_pixel_quantize(float x) {
    float b = floorf(x * 255.0f + 0.5f);
    return b < 0.0f ? 0.0f : (b > 255.0f ? 255.0f : b);
}

#endif
