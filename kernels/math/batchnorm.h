/* kernels/math/batchnorm.h — per-element batch-norm formulas (normalise + affine, the backward
 * formula given per-channel sums, the running-statistics update). The per-channel reductions
 * live in the backends; nothing here loops or touches memory. */
#ifndef DG_MATH_BATCHNORM_H
#define DG_MATH_BATCHNORM_H

#include <math.h>
#include "common.h"

/* x̂ = (x − mean)·invstd, with invstd = 1/sqrt(var + eps). */
DG_HD float dg_bn_xhat(float x, float mean, float invstd) { return (x - mean) * invstd; }

/* y = γ·x̂ + β. Subtracting the mean first (rather than x·a + b with b = β − mean·a) keeps
 * precision when |mean| ≫ std. */
DG_HD float dg_bn_apply(float x, float mean, float invstd, float gamma, float beta) {
    return dg_bn_xhat(x, mean, invstd) * gamma + beta;
}

/* 1/sqrt(var + eps) for one channel, in double (PyTorch's CPU kernel does the same). */
DG_HD double dg_bn_invstd(double var, double eps) { return 1.0 / sqrt(var + eps); }

/* Bessel's correction for running_var: count values give var·count/(count−1). A channel with a
 * single value (PyTorch refuses that input) keeps the biased variance instead of dividing by 0. */
DG_HD double dg_bn_unbiased(double biased_var, double count) {
    return count > 1.0 ? biased_var * count / (count - 1.0) : biased_var;
}

/* running ← (1 − momentum)·running + momentum·batch (PyTorch's order, in double). */
DG_HD double dg_bn_running(double running, double batch, double momentum) {
    return momentum * batch + (1.0 - momentum) * running;
}

/* dx for one element, given per-channel gi = γ·invstd, mdy = mean(dy), mdyx = mean(dy·x̂):
 * dx = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂)). dγ = Σ dy·x̂ and dβ = Σ dy are plain sums. */
DG_HD float dg_bn_bwd_dx(float dy, float xhat, float gi, float mdy, float mdyx) {
    return gi * (dy - mdy - xhat * mdyx);
}

#endif
