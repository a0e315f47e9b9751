/* kernels/math/softmax.h — per-element pieces of the fused softmax cross-entropy: shifted
 * exponentials, the log-sum-exp loss, the gradient. The row max and row sum are the caller's
 * reductions; nothing here loops or touches memory. */
#ifndef DG_MATH_SOFTMAX_H
#define DG_MATH_SOFTMAX_H

#include <math.h>
#include "common.h"

/* exp(z − max): never overflows, since z − max ≤ 0. */
DG_HD float dg_softmax_exp(float z, float row_max) { return expf(z - row_max); }

/* probability from a shifted exponential and the row's sum of them */
DG_HD float dg_softmax_prob(float e, float row_sum) { return e / row_sum; }

/* −log softmax(z)_label = log Σ exp(z − max) − (z_label − max): finite for any finite logits. */
DG_HD float dg_xent_loss(float z_label, float row_max, float row_sum) {
    return logf(row_sum) - (z_label - row_max);
}

/* d loss / d z_j, scaled: grad_scale·(p_j − [j = label]). */
DG_HD float dg_xent_grad(float p, int is_label, float grad_scale) {
    return grad_scale * (p - (is_label ? 1.0f : 0.0f));
}

#endif
