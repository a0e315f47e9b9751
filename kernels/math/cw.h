/* kernels/math/cw.h — per-element pieces of ActiveGuard's fingerprint generation (Carlini–Wagner
 * L2 with a confidence-control term): the tanh box that keeps pixels in (0, 1), its slope, the
 * gradient with respect to the free variable δ, and the two logit terms' gradients. The row max
 * and the softmax are the caller's reductions; nothing here loops or touches memory. */
#ifndef DG_MATH_CW_H
#define DG_MATH_CW_H

#include <math.h>
#include "common.h"

/* x' = (tanh δ + 1)/2, a pixel in (0, 1) */
DG_HD float dg_cw_box(float delta) { return 0.5f * (tanhf(delta) + 1.0f); }

/* dx'/dδ = (1 − tanh² δ)/2 = 2·x'·(1 − x') */
DG_HD float dg_cw_box_slope(float xprime) { return 2.0f * xprime * (1.0f - xprime); }

/* δ whose box is (nearly) the pixel x ∈ [0, 1]: atanh of 2x − 1 pulled inside (−1, 1), as the
 * reference implementation does, so that 0 and 1 stay finite */
DG_HD float dg_cw_unbox(float x) { return atanhf((2.0f * x - 1.0f) * 0.999999f); }

/* the input the net sees: the data set's normalisation of x' */
DG_HD float dg_cw_normalize(float xprime, float mean, float std) { return (xprime - mean) / std; }

/* d loss/dδ from the net's gradient du at the normalised input and the distance term
 * ||x' − x0||² (its gradient 2(x' − x0)): (du/std + 2(x' − x0))·dx'/dδ */
DG_HD float dg_cw_delta_grad(float du, float std, float xprime, float x0) {
    return (du / std + 2.0f * (xprime - x0)) * dg_cw_box_slope(xprime);
}

/* Carlini–Wagner's target term f = max(max_{j≠t} z_j − z_t, 0): its value from the two logits */
DG_HD float dg_cw_target_term(float z_other_max, float z_target) {
    float f = z_other_max - z_target;
    return f > 0.0f ? f : 0.0f;
}

/* df/dz_j: +1 at the strongest other class, −1 at the target, while f > 0 */
DG_HD float dg_cw_target_grad(int is_target, int is_other_max, float f) {
    if (!(f > 0.0f)) return 0.0f;
    return is_target ? -1.0f : (is_other_max ? 1.0f : 0.0f);
}

/* The confidence term drives softmax(z) to the distribution q with q_t = c and the rest spread
 * evenly, q_j = (1 − c)/(k − 1): g = KL(q ‖ p) = Σ_j q_j·log(q_j/p_j) ≥ 0, zero exactly at p = q.
 * Its gradient is p − q, so it pulls p_t to c without piling the rest on the runner-up (which
 * would then overtake t); for c > 1/k, p = q has argmax t, where the target term is zero too. */
DG_HD float dg_cw_conf_q(int is_target, float conf, int k) {
    return is_target ? conf : (1.0f - conf) / (float)(k - 1);
}

/* one class's share of g: q·(log q − log p), from log p = z − max − log Σ (finite for any z) */
DG_HD float dg_cw_conf_term(float q, float log_p) { return q > 0.0f ? q * (logf(q) - log_p) : 0.0f; }

/* dg/dz_j = p_j − q_j */
DG_HD float dg_cw_conf_grad(float p_j, float q_j) { return p_j - q_j; }

#endif
