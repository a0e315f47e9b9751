/* kernels/backend.h — the op table that every backend fills: the only seam between host/ and a
 * device. Every pointer handed to an op is a device pointer from alloc(); host code never
 * dereferences one and moves bytes only through upload/download.
 * Conventions: float32, NCHW activations, OIHW conv weights, [out,in] linear weights (PyTorch's).
 * Every backward op ACCUMULATES (+=) into its parameter-gradient outputs (dw, db, dgamma, dbeta),
 * which the caller zeroes before a backward walk. Its input gradient dx is added to when
 * `accumulate` is 1 (a tensor read by several nodes gets the sum of their gradients) and written
 * when it is 0, whatever dx held (NaN included): the first contribution to a tensor's gradient
 * needs no zeroed buffer, as cuDNN's beta = 0. "(+)=" below marks such an output. */
#ifndef DG_BACKEND_H
#define DG_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct dg_conv_desc {
    int n, c, h, w;   /* input */
    int k, r, s;      /* k filters of c×r×s */
    int stride, pad;  /* the same in both spatial dimensions */
    int oh, ow;       /* output size, set by dg_conv_desc_init */
} dg_conv_desc;

typedef struct dg_pool_desc {
    int n, c, h, w;
    int k, stride, pad; /* square window */
    int oh, ow;         /* set by dg_pool_desc_init (floor mode, as PyTorch's default) */
} dg_pool_desc;

/* Fill oh/ow; return 0, or -1 when the geometry is impossible (output smaller than 1). */
static inline int dg_conv_desc_init(dg_conv_desc *d) {
    if (d->stride < 1 || d->pad < 0 || d->r < 1 || d->s < 1) return -1;
    d->oh = (d->h + 2 * d->pad - d->r) / d->stride + 1;
    d->ow = (d->w + 2 * d->pad - d->s) / d->stride + 1;
    return (d->h + 2 * d->pad < d->r || d->w + 2 * d->pad < d->s) ? -1 : 0;
}
static inline int dg_pool_desc_init(dg_pool_desc *d) {
    if (d->stride < 1 || d->pad < 0 || d->k < 1 || 2 * d->pad > d->k) return -1;
    d->oh = (d->h + 2 * d->pad - d->k) / d->stride + 1;
    d->ow = (d->w + 2 * d->pad - d->k) / d->stride + 1;
    return (d->h + 2 * d->pad < d->k || d->w + 2 * d->pad < d->k) ? -1 : 0;
}

typedef struct dg_backend {
    const char *name;

    /* memory: alloc returns zero-filled, 64-byte aligned device memory, NULL on failure */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    void (*upload)(void *dst, const void *src_host, size_t bytes);
    void (*download)(void *dst_host, const void *src, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);
    void (*zero)(void *dst, size_t bytes);
    void (*sync)(void);

    /* convolution without bias (bias_fwd adds it). ws: conv_workspace_bytes(d) bytes, and nothing
     * live after them in the same allocation: a backend whose plan for d needs more than the caller
     * sized (the CUDA backend, for a smaller last batch or after a mode change) may use the
     * allocation up to its end, and takes a private scratch only beyond that. */
    size_t (*conv_workspace_bytes)(const dg_conv_desc *d);
    void (*conv_fwd)(const dg_conv_desc *d, const float *x, const float *w, float *y, void *ws);
    void (*conv_bwd_data)(const dg_conv_desc *d, const float *dy, const float *w, float *dx, int accumulate,
                          void *ws);
    void (*conv_bwd_filter)(const dg_conv_desc *d, const float *x, const float *dy, float *dw, void *ws);

    /* per-channel bias on [n, c, hw]: y += b;  db += Σ_{n,hw} dy */
    void (*bias_fwd)(int n, int c, int hw, const float *b, float *y);
    void (*bias_bwd)(int n, int c, int hw, const float *dy, float *db);

    /* linear: y[n,out] = x[n,in]·w[out,in]ᵀ + b (b may be NULL);
     * backward: dx (+)= dy·w, dw += dyᵀ·x, db += Σ_n dy (dx, dw, db may be NULL) */
    void (*linear_fwd)(int n, int in, int out, const float *x, const float *w, const float *b, float *y);
    void (*linear_bwd)(int n, int in, int out, const float *x, const float *w, const float *dy,
                       float *dx, int accumulate, float *dw, float *db);

    /* relu: y = max(x, 0); dx (+)= dy·[y > 0] */
    void (*relu_fwd)(size_t n, const float *x, float *y);
    void (*relu_bwd)(size_t n, const float *y, const float *dy, float *dx, int accumulate);

    /* max pool keeps the winner's flat input index (within its n,c plane) for backward;
     * padding never wins. avg pool counts padding (PyTorch's count_include_pad=True). */
    void (*maxpool_fwd)(const dg_pool_desc *d, const float *x, float *y, int32_t *argmax);
    void (*maxpool_bwd)(const dg_pool_desc *d, const int32_t *argmax, const float *dy, float *dx, int accumulate);
    void (*avgpool_fwd)(const dg_pool_desc *d, const float *x, float *y);
    void (*avgpool_bwd)(const dg_pool_desc *d, const float *dy, float *dx, int accumulate);

    /* batch norm over [n, c, hw]. Training: batch statistics (biased variance normalises,
     * unbiased variance updates running_var, as PyTorch), running += momentum·(batch − running);
     * saves mean and 1/sqrt(var+eps) for backward. Eval: running statistics. */
    void (*bn_fwd_train)(int n, int c, int hw, const float *x, const float *gamma, const float *beta,
                         float *running_mean, float *running_var, float momentum, float eps,
                         float *y, float *save_mean, float *save_invstd);
    void (*bn_fwd_eval)(int n, int c, int hw, const float *x, const float *gamma, const float *beta,
                        const float *running_mean, const float *running_var, float eps, float *y);
    void (*bn_bwd)(int n, int c, int hw, const float *x, const float *gamma, const float *save_mean,
                   const float *save_invstd, const float *dy, float *dx, int accumulate, float *dgamma,
                   float *dbeta);
    /* eval-mode backward, running statistics held constant: dx (+)= γ·dy/sqrt(running_var + eps);
     * dgamma += Σ dy·x̂ and dbeta += Σ dy unless NULL */
    void (*bn_bwd_eval)(int n, int c, int hw, const float *x, const float *gamma, const float *running_mean,
                        const float *running_var, float eps, const float *dy, float *dx, int accumulate,
                        float *dgamma, float *dbeta);

    /* inverted dropout: mask[i] = keep ? 1/(1−p) : 0 from dg_rng (seed, first + i); y = x·mask. first
     * is the element's place in the whole batch, so a rank's share draws the one-process masks */
    void (*dropout_fwd)(size_t n, float p, uint64_t seed, uint64_t first, const float *x, float *y, float *mask);
    void (*dropout_bwd)(size_t n, const float *mask, const float *dy, float *dx, int accumulate);

    /* elementwise */
    void (*add)(size_t n, const float *a, const float *b, float *y); /* y = a + b */
    void (*axpy)(size_t n, float alpha, const float *x, float *y);   /* y += alpha·x */
    void (*scale)(size_t n, float alpha, float *x);                  /* x ·= alpha */
    /* Σ x² in double, added in an order that does not depend on the thread count (the same bits
     * on every run of one backend); waits for the device */
    double (*sum_squares)(size_t n, const float *x);

    /* fused softmax cross-entropy over [n, k] logits and int32 labels, against the target
     * t = (1 − smoothing)·onehot + smoothing/k (torch's label_smoothing; 0: the plain one-hot):
     * probs = softmax(logits); loss[i] = −Σ_j t_ij log probs[i, j];
     * dlogits = grad_scale·(probs − t) (written, not accumulated; may be NULL) */
    void (*softmax_xent)(int n, int k, const float *logits, const int32_t *labels, float *probs,
                         float *loss, float *dlogits, float grad_scale, float smoothing);

    /* optimizer updates, PyTorch's formulas (torch.optim.SGD / Adam with L2 weight_decay / AdamW):
     * SGD: g' = g + wd·w; buf = momentum·buf + g' (buf = g' when first); step = nesterov ? g' + momentum·buf : buf; w −= lr·step
     * Adam (step t ≥ 1): g' = g + wd·w; m = β1 m + (1−β1) g'; v = β2 v + (1−β2) g'²;
     *                    w −= lr · (m / (1−β1ᵗ)) / (sqrt(v / (1−β2ᵗ)) + eps)
     * AdamW (decoupled = 1): w ·= 1 − lr·wd first, then Adam's update with g' = g. lr, the betas and
     * wd come as the user typed them (doubles): torch computes 1 − β, lr/(1 − β1ᵗ) and 1 − lr·wd from
     * its Python floats, and rounds them to float only then */
    void (*sgd_step)(size_t n, float *w, const float *g, float *buf, float lr, float momentum,
                     float weight_decay, int nesterov, int first);
    void (*adam_step)(size_t n, float *w, const float *g, float *m, float *v, double lr, double beta1,
                      double beta2, float eps, double weight_decay, int decoupled, int t);

    /* ActiveGuard watermark regularizer L = λ·(1/n)·Σ_k (digits[k] − (a·w[idx[k]] + b))²:
     * mapped[k] = a·w[idx[k]] + b (written); dw[idx[k]] += ∂L/∂w (dw may be NULL: extraction only).
     * The n indices are distinct flat positions in w; the host sums L from mapped. */
    void (*wm_reg)(int n, const float *w, const int32_t *idx, const float *digits, float a, float b,
                   float lambda, float *mapped, float *dw);

    /* ActiveGuard fingerprints (Carlini–Wagner L2 with confidence control, kernels/math/cw.h), for n
     * images of c channels × hw pixels, all written (not accumulated):
     * box forward: x' = (tanh δ + 1)/2; u = (x' − mean[ch])/std[ch] (the net's input);
     *              dist[i] = Σ (x' − x0)² over image i; quantize: x' taken at its 8-bit value
     *              b/255 and u computed as the data loader does (kernels/math/pixel.h)
     * box backward: ddelta = (du/std[ch] + 2(x' − x0))·2x'(1 − x'), the gradient of
     *              Σ_i dist[i] + (the loss whose input gradient is du)
     * logits, k ≥ 2: p = softmax(z); f = max(max_{j≠t} z_j − z_t, 0); g = KL(q ‖ p) with q_t = conf,
     *              q_j = (1 − conf)/(k − 1) elsewhere; loss[i] = alpha[i]·(f + conf_weight·g);
     *              dlogits = ∂loss[i]/∂z; probs = p. untargeted: t is the class to leave,
     *              f = max(z_t − max_{j≠t} z_j, 0) and no confidence term (conf unused) */
    void (*cw_box_fwd)(int n, int c, int hw, const float *delta, const float *x0, const float *mean,
                       const float *std, int quantize, float *u, float *dist);
    void (*cw_box_bwd)(int n, int c, int hw, const float *delta, const float *x0, const float *std,
                       const float *du, float *ddelta);
    void (*cw_logits)(int n, int k, const float *logits, const int32_t *targets, const float *conf,
                      const float *alpha, float conf_weight, int untargeted, float *probs, float *loss,
                      float *dlogits);

    /* Deep Taylor relevance steps (kernels/math/relevance.h; the rules in docs/infip.md), over n
     * values: lrp_ratio writes s = r / stab(z), stab(z) = z ± eps with the sign of z, and 0 where z = 0 (s may be z);
     * lrp_share accumulates rin += alpha·x·c (rin distinct from x and c). A rule is conv_fwd/linear_fwd with a weight part,
     * lrp_ratio, conv_bwd_data/linear_bwd with the same part, then lrp_share. */
    void (*lrp_ratio)(size_t n, const float *r, const float *z, float eps, float *s);
    void (*lrp_share)(size_t n, float alpha, const float *x, const float *c, float *rin);
    /* max-pool relevance: each output's r is shared equally by the inputs of its window that tie
     * its maximum y (x ≥ y − rel_tol·|y|), accumulated into rin; padding never ties */
    void (*lrp_maxpool)(const dg_pool_desc *d, const float *x, const float *y, const float *r, float rel_tol,
                        float *rin);
} dg_backend;

/* Backends compiled into this binary. dg_backend_cpu() always exists. */
const dg_backend *dg_backend_cpu(void);

#endif
