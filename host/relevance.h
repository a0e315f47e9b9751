/* host/relevance.h — Deep Taylor Decomposition relevance (Montavon et al. 2017; the rules are in
 * docs/infip.md) as the third walk over a net's node list, after an eval-mode forward: z⁺ in
 * hidden conv and linear layers, z^B at the layer that reads the input, batch norm folded into
 * the conv before it, max pool winner-take-all, average pool proportional, residual sums split
 * by contribution. Every tensor operation goes through the net's backend; the plan (which rule
 * each node runs, the folded and split weights) is built once per model on the host. */
#ifndef DG_RELEVANCE_H
#define DG_RELEVANCE_H

#include <stddef.h>

#include "net.h"

#define DG_RELEVANCE_EPS 1e-9f
#define DG_RELEVANCE_TIE 1e-5f /* max-pool inputs within this fraction of the maximum tie (docs/infip.md) */

typedef struct dg_relevance_opts {
    float eps;          /* the stabilizer (DG_RELEVANCE_EPS) */
    int inject_logit;   /* 0: relevance 1 at the class's logit; 1: the logit's own value */
    float lo[3], hi[3]; /* the input's bounds after normalisation per channel, (0 − mean)/std and
                           (1 − mean)/std as the loader computes pixels 0 and 255, for the z^B
                           rule; channels ≥ 3 use channel 0's */
} dg_relevance_opts;

/* Bounds of [0, 1] pixels normalised with mean/std, into o->lo/hi (c channels, c ≤ 3). */
void dg_relevance_bounds(dg_relevance_opts *o, int c, const float *mean, const float *std);

typedef struct dg_relevance dg_relevance;

/* Plan the pass for net, which is set up on its backend with its weights loaded (they are read
 * once: load new weights, make a new plan). The net must be a ReLU net whose input feeds only
 * conv or linear layers. NULL with err "relevance: <why>". */
dg_relevance *dg_relevance_new(dg_net *net, const dg_relevance_opts *o, char *err, size_t err_len);
void dg_relevance_free(dg_relevance *r);

/* How many bytes of device memory the plan holds beside the net (weight parts, scratch, bounds). */
size_t dg_relevance_device_bytes(const dg_relevance *r);

/* The relevance of n ≤ net->batch host inputs x [n, c, h, w] (normalised) to their input:
 * classes[i] ≥ 0 injects at that class, −1 (or classes NULL) at the prediction. Writes
 * predicted[n] (the argmax, lowest index on a tie, −1 when the outputs are not all finite; may
 * be NULL), logits [n, K] (may be NULL) and
 * rel [n, c, h, w] (host). 0, or −1 when host memory runs out. */
int dg_relevance_run(dg_relevance *r, const float *x, int n, const int *classes, int *predicted, float *logits,
                     float *rel);

#endif
