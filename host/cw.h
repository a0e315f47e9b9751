/* host/cw.h — Carlini–Wagner L2 adversarial examples with confidence control, the generator of
 * ActiveGuard's users' fingerprints (§III-C): for a batch of (source image, target class t,
 * confidence c) items at once, find a small change of the source that the frozen net classifies as
 * t with softmax(z)_t within a margin of c — judged on the 8-bit image that will be handed out.
 * Every tensor computation goes through the backend's op table (cw_box_fwd/bwd, cw_logits,
 * adam_step and the net's walks). */
#ifndef DG_CW_H
#define DG_CW_H

#include "net.h"

typedef struct dg_cw_opts {
    float lr;                     /* Adam's step on δ (paper: MNIST 0.005, CIFAR 0.001) */
    float alpha_init;             /* the constant α of the first search step (MNIST 20, CIFAR 0.5) */
    float alpha_lo, alpha_hi;     /* the open interval the binary search keeps α in (MNIST (0, 40), CIFAR (0, 1)) */
    int search_steps;             /* binary-search steps of α */
    int max_iter;                 /* Adam steps per search step */
    float conf_weight;            /* weight of the confidence term (p_t − c)² against the target term */
    float margin;                 /* success: argmax = t and |p_t − c| < margin on the 8-bit image */
    int untargeted;               /* plain untargeted C&W instead: leave class `target`, no confidence
                                     control; success: argmax ≠ target (forgery attempts) */
} dg_cw_opts;

/* The paper's defaults for an MNIST-like (grey) or a CIFAR-like (colour) data set. */
void dg_cw_defaults(dg_cw_opts *o, int colour);

typedef struct dg_cw_item {
    /* in */
    int target;
    float conf;
    const float *x0;  /* host [c·h·w]: the source image's pixels in [0, 1] */
    /* out */
    int success;      /* an 8-bit image met the target */
    float l2;         /* ||x' − x0||₂ of the best one (the smallest distortion that met it) */
    float p_target;   /* softmax(z)_t of it, on this backend */
    uint8_t *pixels;  /* host [c·h·w], caller-allocated: the best 8-bit image (when success) */
} dg_cw_item;

/* What a run cost: Adam iterations (each one forward and one backward of the whole batch) and the
 * extra forwards that judged 8-bit candidates. */
typedef struct dg_cw_stats {
    long iterations, judge_forwards;
} dg_cw_stats;

/* Run on net (set up for batches of at least n; its weights are left as they are) with the data
 * set's per-channel mean and std. Sets net->frozen for the run. stats (may be NULL) accumulates.
 * 0, or -1 when out of memory.
 * DG_CW_DEBUG=1 in the environment prints each item's state after every search step (stderr). */
int dg_cw_run(dg_net *net, const float *mean, const float *std, dg_cw_item *items, int n, const dg_cw_opts *o,
              dg_cw_stats *stats);

#endif
