/* kernels/math/relevance.h — per-element steps of the Deep Taylor relevance rules (docs/infip.md),
 * shared by the CPU loops and the CUDA kernels: the stabilised ratio s = R / stab(z) and the
 * product that hands a share back to an input. Formulas only: no loops, no memory. */
#ifndef DG_MATH_RELEVANCE_H
#define DG_MATH_RELEVANCE_H

#include "common.h"

/* z moved away from 0 by eps, keeping its sign (0 counts as positive) */
DG_HD float dg_lrp_stab(float z, float eps) { return z >= 0.0f ? z + eps : z - eps; }

/* s = r / stab(z): the relevance per unit of contribution at an output; 0 where z is exactly 0.
 * There every term of z is 0 (the z⁺ and z^B terms are ≥ 0; at an add a = −b), so r reaches no
 * input whatever s is, and an s of r/eps would only carry its rounding into the back-projection
 * of the neighbouring outputs' shares (and ±a·r/eps down the two branches of an add). */
DG_HD float dg_lrp_ratio(float r, float z, float eps) { return z == 0.0f ? 0.0f : r / dg_lrp_stab(z, eps); }

/* an input's share: alpha · x · c, with c = Σ_j w_ij s_j the back-projected ratio */
DG_HD float dg_lrp_share(float alpha, float x, float c) { return alpha * x * c; }

/* Whether max-pool input x ties its window's maximum m: within rel_tol·|m| below it. Winner-take-
 * all shares an output's relevance equally among the tied inputs: flat image regions make exact
 * ties common, and which of two equal values rounding makes the larger differs between backends. */
DG_HD int dg_lrp_ties(float x, float m, float rel_tol) {
    return x == m || x >= m - rel_tol * (m < 0.0f ? -m : m); /* == first: at m = +inf the bound is NaN */
}

#endif
