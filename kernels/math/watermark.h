/* kernels/math/watermark.h — the ActiveGuard watermark regularizer per key position: the linear
 * map from a weight to the digit scale, d = a·v + b, and the gradient of λ·(1/n)·(d_k − map(v))²
 * with respect to v. Formulas only: no loops, no memory. */
#ifndef DG_MATH_WATERMARK_H
#define DG_MATH_WATERMARK_H

#include <math.h>
#include "common.h"

/* a weight on the digit scale: [w_min, w_max] of the clean filter maps onto [0, 9] */
DG_HD float dg_wm_map(float v, float a, float b) { return a * v + b; }

/* The digit a mapped weight reads as, its nearest integer (round half up): values far outside
 * 0–9 clamped to ±1000 and NaN read as -1, so that no weight a suspect holds makes the conversion
 * undefined; none of these matches a digit. The fraction is compared with 1/2 rather than 1/2
 * added: 0.49999997f + 0.5f rounds to 1.0f, and would read 1 (mapped − floor(mapped) is exact). */
DG_HD int dg_wm_digit(float mapped) {
    if (!(mapped == mapped)) return -1;
    if (mapped > 1000.0f) return 1000;
    if (mapped < -1000.0f) return -1000;
    float whole = floorf(mapped);
    return (int)whole + (mapped - whole >= 0.5f);
}

/* ∂/∂v of scale·(digit − map(v))² / 2 with scale = 2λ/n, i.e. of λ/n·(digit − a·v − b)²:
 * (2λ/n)·a·(map(v) − digit) */
DG_HD float dg_wm_grad(float mapped, float digit, float a, float scale) { return scale * a * (mapped - digit); }

#endif
