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

/* Cross-entropy against the target (1 − ε)·onehot(label) + ε/k (torch's cross_entropy with
 * label_smoothing = ε; ε = 0 is plain −log softmax(z)_label):
 * log Σ exp(z − max) − (1 − ε)·(z_label − max) − (ε/k)·Σ_j (z_j − max), where shifted_sum is that
 * last sum (the caller's reduction; unused at ε = 0). Finite for any finite logits. */
DG_HD float dg_xent_loss(float z_label, float row_max, float row_sum, float smoothing, float shifted_sum, int k) {
    if (smoothing == 0.0f) return logf(row_sum) - (z_label - row_max);
    return logf(row_sum) - (1.0f - smoothing) * (z_label - row_max) - smoothing / (float)k * shifted_sum;
}

/* d loss / d z_j, scaled: grad_scale·(p_j − target_j), target_j = (1 − ε)·[j = label] + ε/k. */
DG_HD float dg_xent_grad(float p, int is_label, float smoothing, int k, float grad_scale) {
    if (smoothing == 0.0f) return grad_scale * (p - (is_label ? 1.0f : 0.0f));
    return grad_scale * (p - ((is_label ? 1.0f - smoothing : 0.0f) + smoothing / (float)k));
}

#endif
