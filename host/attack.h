/* host/attack.h — removal attacks on a model's weights, on host copies: magnitude pruning
 * (attack_prune.c), a function-preserving channel permutation (attack_permute.c), and writing an
 * attacked weight file beside its input (attack_io.c). No devices, no command-line parsing. */
#ifndef DG_ATTACK_H
#define DG_ATTACK_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "safetensors.h"

/* ---- pruning ---- */

/* One weight tensor to prune, in host memory. */
typedef struct dg_prune_layer {
    const char *name;
    float *w;        /* [numel], pruned in place */
    size_t numel;
    size_t zeroed;   /* out: entries set to zero (floor(rate·numel) per layer; the global share) */
    float threshold; /* out: the largest |w| zeroed in the ranking (layer or global); 0 when none */
} dg_prune_layer;

/* Whether a file tensor is a pruning target: a conv (4-D) or linear (2-D) ".weight", not
 * optimizer state. Biases, batch-norm tensors and everything else are not. */
int dg_prune_is_target(const char *name, int ndim);

/* Magnitude pruning. Per layer (global = 0): in each layer zero the floor(rate·numel) entries of
 * smallest |w|; global: rank all layers' entries together and zero floor(rate·Σnumel). Ties in |w|
 * go to the lower flat index (layers in the given order, then row-major), so the result is
 * reproducible; NaN ranks as +inf. Memory: one float copy of the largest layer (or of all layers
 * when global). rate in [0, 1]. 0, or -1 with err (bad rate, out of memory). */
int dg_prune_layers(dg_prune_layer *layers, int n, double rate, int global, char *err, size_t err_len);

/* ---- permutation ---- */

/* One tensor that a channel permutation changes, viewed as [outer][channels][inner]:
 * new[o][c][i] = old[o][perm[c]][i]. */
typedef struct dg_permute_step {
    int param;    /* index into net->params */
    size_t outer, inner;
} dg_permute_step;

typedef struct dg_permute_plan {
    int node;              /* the permuted layer's node */
    int channels;          /* its output channels (conv filters, linear out features) */
    dg_permute_step *steps; /* the layer's weight (and bias) rows, then every consumer's tensors */
    int n_steps;
} dg_permute_plan;

/* Plan the permutation of the output channels of conv or linear weight `layer` (e.g.
 * "conv2.weight") so that the net computes the same function: follow the graph from the layer to
 * every consumer, through batch norm (its four tensors permuted), relu, pooling, dropout and
 * flatten, to the next conv (input channels, dim 1) or linear (input columns, in blocks of the
 * spatial size per channel). Refused (-1, err says why): an unknown name, a tensor that is not a
 * conv or linear weight, a residual add on the path (the other branch would have to be permuted
 * too), or a path that reaches the logits (that would reorder the classes). */
int dg_permute_plan_build(const dg_net *net, const char *layer, dg_permute_plan *plan, char *err,
                          size_t err_len);
void dg_permute_plan_free(dg_permute_plan *plan);

/* A uniform random permutation of 0..n-1 from seed (Fisher–Yates on the counter-based RNG of
 * kernels/math/rng.h); redrawn until it moves some channel when n ≥ 2, so that the attack always
 * changes the weights. perm[c] is the old channel that lands at position c. */
void dg_permute_draw(int n, uint64_t seed, int *perm);

/* Apply the plan with perm to host parameters laid out as the net's arena [n_param_floats].
 * 0, or -1 when out of memory. */
int dg_permute_apply(const dg_net *net, const dg_permute_plan *plan, const int *perm, float *host_params);

/* ---- writing the attacked file ---- */

/* Write every tensor of `in` to path (atomically), in the input's order: tensor i from
 * replace[i] as F32 when replace[i] is not NULL (shape as in the input), else as it is in the
 * input (F32 and non-float tensors such as num_batches_tracked byte for byte; F16, BF16 and F64
 * converted to F32). Optimizer state ("optim.*") is dropped: an attacked model is a new model, not
 * a resumable checkpoint, and stale optimizer moments would not match its weights. Metadata: the
 * input's, with the n_meta pairs given added (or replacing a key of the same name).
 * 0, or -1 with err "<path>: <problem>". */
int dg_attack_write(const char *path, const dg_st_file *in, float *const *replace, const char *const *meta_keys,
                    const char *const *meta_values, int n_meta, char *err, size_t err_len);

#endif
