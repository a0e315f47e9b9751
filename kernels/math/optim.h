/* kernels/math/optim.h — per-element SGD, Adam and AdamW updates in torch.optim's (1.13) order of float32
 * operations; the per-step scalars are computed once in double, as Python does.
 * Formulas only: no loops over memory (the pointers are one element's own state). */
#ifndef DG_MATH_OPTIM_H
#define DG_MATH_OPTIM_H

#include <math.h>
#include "common.h"

/* a·b + c. PyTorch's AVX2 kernels compute `x.add(y, alpha=a)` as fmadd(y, a, x) (and GCC fuses
 * addcmul's vector expression), so with a hardware FMA — CUDA, or a CPU build with -mfma, where
 * <math.h> defines FP_FAST_FMAF — these updates are bit-identical to torch.optim on CPU. Without
 * one, fmaf would be a slow library call: two roundings instead, ≤ 1 ulp apart per operation. */
DG_HD float dg_optim_fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__) || defined(FP_FAST_FMAF)
    return fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

/* torch.optim.SGD (dampening 0): g' = g + wd·w; buf = first ? g' : momentum·buf + g';
 * d = nesterov ? g' + momentum·buf : buf; w −= lr·d. momentum == 0: d = g', buf unused (may be
 * NULL). Returns the new weight. */
DG_HD float dg_sgd_update(float w, float g, float *buf, float lr, float momentum, float wd,
                          int nesterov, int first) {
    float d = g;
    if (wd != 0.0f) d = dg_optim_fma(w, wd, g);            /* d_p = grad.add(param, alpha=wd) */
    if (momentum != 0.0f) {
        float b = first ? d : *buf * momentum + d;         /* buf.mul_(momentum).add_(d_p) */
        *buf = b;
        d = nesterov ? dg_optim_fma(b, momentum, d) : b;   /* d_p.add(buf, alpha=momentum) */
    }
    return dg_optim_fma(d, -lr, w);                        /* param.add_(d_p, alpha=-lr) */
}

/* Adam's per-step scalars: Python doubles in torch (here the float arguments, widened), rounded
 * to float where torch hands them to a float32 kernel. */
typedef struct dg_adam_scalars {
    float one_minus_beta1, one_minus_beta2; /* 1 − β */
    float neg_step_size;                    /* −lr/(1 − β1ᵗ) */
    float bias_correction2_sqrt;            /* sqrt(1 − β2ᵗ) */
    float decay;                            /* AdamW: 1 − lr·wd (the weight's decoupled decay); Adam: 1 */
    float l2;                               /* Adam: wd (L2, added to the gradient); AdamW: 0 */
} dg_adam_scalars;

/* decoupled: 0 torch.optim.Adam (weight decay as L2 on the gradient), 1 torch.optim.AdamW */
DG_HD dg_adam_scalars dg_adam_prepare(double lr, double beta1, double beta2, double weight_decay, int decoupled,
                                      int t) {
    dg_adam_scalars s;
    double b1 = beta1, b2 = beta2;
    s.decay = decoupled ? (float)(1.0 - lr * weight_decay) : 1.0f; /* a Python double to mul_ */
    s.l2 = decoupled ? 0.0f : (float)weight_decay;
    s.one_minus_beta1 = (float)(1.0 - b1);
    s.one_minus_beta2 = (float)(1.0 - b2);
    s.neg_step_size = (float)(-((double)lr / (1.0 - pow(b1, (double)t))));
    s.bias_correction2_sqrt = (float)sqrt(1.0 - pow(b2, (double)t));
    return s;
}

/* torch.optim.Adam and AdamW, amsgrad off (step t ≥ 1): AdamW first decays w ·= 1 − lr·wd, Adam
 * adds L2 to the gradient, g' = g + wd·w; then m = β1·m + (1−β1)·g'; v = β2·v + (1−β2)·g'²;
 * denom = sqrt(v)/sqrt(1−β2ᵗ) + eps (eps after the square root); w += (−lr/(1−β1ᵗ))·m/denom.
 * Updates *m and *v; returns the new weight. */
DG_HD float dg_adam_update(float w, float g, float *m, float *v, float beta1, float beta2, float eps,
                           dg_adam_scalars s) {
    w *= s.decay;                                                     /* AdamW: param.mul_(1 − lr·wd); Adam: ·1 */
    if (s.l2 != 0.0f) g = dg_optim_fma(w, s.l2, g);                   /* Adam: grad.add(param, alpha=wd) */
    float mt = dg_optim_fma(g, s.one_minus_beta1, *m * beta1);        /* m.mul_(β1).add_(g, alpha=1−β1) */
    float vt = dg_optim_fma(s.one_minus_beta2 * g, g, *v * beta2);    /* v.mul_(β2).addcmul_(g, g, value=1−β2) */
    *m = mt;
    *v = vt;
    float denom = sqrtf(vt) / s.bias_correction2_sqrt + eps;          /* (v.sqrt() / bc2_sqrt).add_(eps) */
    return w + s.neg_step_size * mt / denom;                          /* param.addcdiv_(m, denom, value=−step) */
}

/* torch.nn.utils.clip_grad_norm_ (norm 2): total = ‖all gradients‖ (here sqrt of their Σ g² in
 * double, rounded to float), coef = max_norm / (total + 1e-6) in float, at most 1; every gradient
 * is then multiplied by coef. A NaN total gives a NaN coef, as torch.clamp(max=1) does: the
 * gradients turn NaN instead of passing unclipped. */
DG_HD float dg_clip_coef(double sum_squares, float max_norm) {
    float total = (float)sqrt(sum_squares);
    float coef = max_norm / (total + 1e-6f);
    return coef > 1.0f ? 1.0f : coef;
}

#endif
