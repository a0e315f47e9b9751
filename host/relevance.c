/* host/relevance.c — the Deep Taylor relevance walk (see relevance.h, docs/infip.md). The plan
 * gives every node one rule; conv and linear layers run as "units" (a conv alone, or a conv and
 * the batch norm folded into it) whose weight parts W⁺ (and W⁻ at the first layer) sit in one
 * device allocation. Relevance lives in the net's activation-gradient buffers (dy), so fan-out
 * sums come free from the ops' += contract. Host code: device memory only through the backend. */
#include "relevance.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/math/pixel.h"
#include "model_io.h"

typedef enum rule_kind {
    RULE_NONE,    /* the input; a conv folded into the batch norm after it; a flatten (an alias) */
    RULE_PASS,    /* ReLU, dropout, a batch norm that follows no conv: relevance unchanged */
    RULE_CONV,    /* z⁺ (or z^B at the first layer) through a conv unit */
    RULE_LINEAR,  /* the same through a linear layer */
    RULE_MAXPOOL, /* winner-take-all, ties shared */
    RULE_AVGPOOL, /* proportional */
    RULE_ADD,     /* split by contribution */
} rule_kind;

typedef struct node_rule {
    rule_kind kind;
    int layer;               /* conv/linear units: the node with the weights and the geometry */
    int first;               /* z^B: the unit reads the net's input */
    float *wpos, *wneg;      /* device: W⁺ (all units); W⁻ (first-layer units) */
} node_rule;

struct dg_relevance {
    dg_net *net;
    dg_relevance_opts o;
    node_rule *rules;        /* [n_nodes] */
    float *parts;            /* device: every unit's weight parts */
    float *z, *tmp, *c;      /* device scratch: an output's z (then s), a second output-sized term, a back-projection */
    float *x_lo, *x_hi;      /* device, per run: the input's distances to its bounds, x − l and x − h
                                [batch, c, h, w] */
    float *h_dist;           /* host: one of them on its way [batch, c, h, w] */
    size_t device_bytes;
    float *h_onehot;         /* host [batch · classes] */
};

/* the bounds are the inputs of pixels 0 and 255, computed as the data loader computes an input:
 * a black or white pixel is then at its bound exactly, and x − l or h − x exactly 0 there */
void dg_relevance_bounds(dg_relevance_opts *o, int c, const float *mean, const float *std) {
    for (int ch = 0; ch < 3; ch++) {
        int k = ch < c ? ch : 0;
        float scale = dg_pixel_scale(std[k]), shift = dg_pixel_shift(mean[k], std[k]);
        o->lo[ch] = dg_pixel_normalize(0.0f, scale, shift);
        o->hi[ch] = dg_pixel_normalize(255.0f, scale, shift);
    }
}

/* the node a layer really reads: through flatten aliases */
static int source_of(const dg_net *net, int node) {
    while (node > 0 && net->nodes[node].kind == DG_NODE_FLATTEN) node = net->nodes[node].in0;
    return node;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Number of nodes reading each node's output (flatten counts as a reader). */
static int *count_readers(const dg_net *net) {
    int *readers = calloc((size_t)net->n_nodes, sizeof(int));
    if (!readers) return NULL;
    for (int i = 1; i < net->n_nodes; i++) {
        if (net->nodes[i].in0 >= 0) readers[net->nodes[i].in0]++;
        if (net->nodes[i].in1 >= 0) readers[net->nodes[i].in1]++;
    }
    return readers;
}

/* Which rule each node runs; 0, or −1 with err. */
static int plan_rules(dg_relevance *r, char *err, size_t err_len) {
    const dg_net *net = r->net;
    int *readers = count_readers(net);
    if (!readers) {
        snprintf(err, err_len, "relevance: out of memory");
        return -1;
    }
    int rc = 0;
    for (int i = 1; i < net->n_nodes && rc == 0; i++) {
        const dg_node *nd = &net->nodes[i];
        node_rule *ru = &r->rules[i];
        ru->layer = i;
        switch (nd->kind) {
        case DG_NODE_CONV: {
            /* folded into the batch norm that alone reads it: that node runs the unit */
            int folded = 0;
            if (readers[i] == 1)
                for (int j = i + 1; j < net->n_nodes; j++)
                    if (net->nodes[j].kind == DG_NODE_BN && net->nodes[j].in0 == i) folded = 1;
            ru->kind = folded ? RULE_NONE : RULE_CONV;
            break;
        }
        case DG_NODE_BN: {
            const dg_node *in = &net->nodes[nd->in0];
            if (in->kind == DG_NODE_CONV && readers[nd->in0] == 1) {
                ru->kind = RULE_CONV;
                ru->layer = nd->in0;
            } else {
                ru->kind = RULE_PASS;
            }
            break;
        }
        case DG_NODE_LINEAR: ru->kind = RULE_LINEAR; break;
        case DG_NODE_RELU:
        case DG_NODE_DROPOUT: ru->kind = RULE_PASS; break;
        case DG_NODE_MAXPOOL: ru->kind = RULE_MAXPOOL; break;
        case DG_NODE_AVGPOOL: ru->kind = RULE_AVGPOOL; break;
        case DG_NODE_ADD: ru->kind = RULE_ADD; break;
        case DG_NODE_FLATTEN:
        case DG_NODE_INPUT: ru->kind = RULE_NONE; break;
        }
        if (ru->kind == RULE_CONV || ru->kind == RULE_LINEAR)
            ru->first = source_of(net, net->nodes[ru->layer].in0) == 0;
        /* the input's relevance must come from a z^B layer: anything else would apply a rule for
         * non-negative inputs to normalised pixels */
        int reads_input = (nd->in0 >= 0 && source_of(net, nd->in0) == 0) ||
                          (nd->in1 >= 0 && source_of(net, nd->in1) == 0);
        if (nd->kind != DG_NODE_FLATTEN && reads_input && nd->kind != DG_NODE_CONV && nd->kind != DG_NODE_LINEAR) {
            snprintf(err, err_len, "relevance: the net's input feeds a node that is not a conv or linear layer "
                                   "(node %d); the z^B rule needs the input to meet the weights first", i);
            rc = -1;
        }
    }
    free(readers);
    return rc;
}

/* Floats of weight parts a unit needs: W⁺, plus W⁻ at the first layer. */
static size_t unit_floats(const dg_net *net, const node_rule *ru) {
    size_t w = net->params[net->nodes[ru->layer].pw].numel;
    return ru->first ? 2 * w : w;
}

/* The unit's weights on the host (folded with the batch norm at `bn_node` when it is not −1)
 * split into its parts, uploaded to ru's pointers. scratch holds unit_floats(ru) floats. */
static void upload_parts(dg_relevance *r, node_rule *ru, int bn_node, const float *host_params, float *scratch) {
    const dg_net *net = r->net;
    const dg_node *layer = &net->nodes[ru->layer];
    const dg_param *wp = &net->params[layer->pw];
    const float *w = host_params + wp->offset;
    size_t numel = wp->numel, per_out = numel / (size_t)layer->out;
    float *wpos = scratch, *wneg = ru->first ? scratch + numel : NULL;
    for (int o = 0; o < layer->out; o++) {
        double scale = 1.0;
        if (bn_node >= 0) {
            const dg_node *bn = &net->nodes[bn_node];
            double gamma = host_params[net->params[bn->pw].offset + (size_t)o];
            double var = host_params[net->params[bn->pv].offset + (size_t)o];
            scale = gamma / sqrt(var + (double)bn->eps);
        }
        for (size_t j = 0; j < per_out; j++) {
            size_t k = (size_t)o * per_out + j;
            float v = (float)((double)w[k] * scale);
            wpos[k] = v > 0.0f ? v : 0.0f;
            if (wneg) wneg[k] = v < 0.0f ? v : 0.0f;
        }
    }
    const dg_backend *be = net->be;
    be->upload(ru->wpos, wpos, sizeof(float) * numel);
    if (ru->first) be->upload(ru->wneg, wneg, sizeof(float) * numel);
}

dg_relevance *dg_relevance_new(dg_net *net, const dg_relevance_opts *o, char *err, size_t err_len) {
    const dg_backend *be = net->be;
    dg_relevance *r = calloc(1, sizeof *r);
    float *host_params = NULL, *scratch = NULL;
    if (!r || !(r->rules = calloc((size_t)net->n_nodes, sizeof *r->rules))) {
        snprintf(err, err_len, "relevance: out of memory");
        goto fail;
    }
    r->net = net;
    r->o = *o;
    if (net->in_c > 3) {
        snprintf(err, err_len, "relevance: inputs of %d channels (at most 3)", net->in_c);
        goto fail;
    }
    if (plan_rules(r, err, err_len) != 0) goto fail;

    /* sizes: weight parts, and scratch for the largest output and input any rule touches */
    size_t parts = 0, out_max = 0, in_max = 0, first_out_max = 0;
    const int batch = net->batch;
    for (int i = 1; i < net->n_nodes; i++) {
        node_rule *ru = &r->rules[i];
        const dg_node *nd = &net->nodes[i];
        if (ru->kind == RULE_CONV || ru->kind == RULE_LINEAR) {
            parts += unit_floats(net, ru);
            if (ru->first) first_out_max = max_sz(first_out_max, dg_node_numel(nd, batch));
        }
        if (ru->kind == RULE_CONV || ru->kind == RULE_LINEAR || ru->kind == RULE_AVGPOOL || ru->kind == RULE_ADD) {
            out_max = max_sz(out_max, dg_node_numel(nd, batch));
            in_max = max_sz(in_max, dg_node_numel(&net->nodes[net->nodes[ru->layer].in0], batch));
        }
    }
    size_t in_floats = dg_node_numel(&net->nodes[0], batch);
    r->parts = parts ? be->alloc(sizeof(float) * parts) : NULL;
    r->z = out_max ? be->alloc(sizeof(float) * out_max) : NULL;
    r->tmp = first_out_max ? be->alloc(sizeof(float) * first_out_max) : NULL;
    r->c = in_max ? be->alloc(sizeof(float) * in_max) : NULL;
    r->x_lo = be->alloc(sizeof(float) * in_floats);
    r->x_hi = be->alloc(sizeof(float) * in_floats);
    r->h_dist = malloc(sizeof(float) * in_floats);
    r->h_onehot = malloc(sizeof(float) * (size_t)batch * (size_t)net->classes);
    r->device_bytes = sizeof(float) * (parts + out_max + first_out_max + in_max + 2 * in_floats);
    if ((parts && !r->parts) || (out_max && !r->z) || (first_out_max && !r->tmp) || (in_max && !r->c) || !r->x_lo ||
        !r->x_hi || !r->h_dist || !r->h_onehot) {
        snprintf(err, err_len, "relevance: out of memory (%.1f MiB of weight parts and scratch)",
                 (double)r->device_bytes / (1 << 20));
        goto fail;
    }

    /* the weight parts, folded on the host in double */
    size_t largest = 1;
    for (int i = 1; i < net->n_nodes; i++)
        if (r->rules[i].kind == RULE_CONV || r->rules[i].kind == RULE_LINEAR)
            largest = max_sz(largest, unit_floats(net, &r->rules[i]));
    host_params = dg_model_download(net);
    scratch = malloc(sizeof(float) * largest);
    if (!host_params || !scratch) {
        snprintf(err, err_len, "relevance: out of host memory");
        goto fail;
    }
    float *next = r->parts;
    for (int i = 1; i < net->n_nodes; i++) {
        node_rule *ru = &r->rules[i];
        if (ru->kind != RULE_CONV && ru->kind != RULE_LINEAR) continue;
        size_t numel = net->params[net->nodes[ru->layer].pw].numel;
        ru->wpos = next, next += numel;
        if (ru->first) ru->wneg = next, next += numel;
        upload_parts(r, ru, ru->layer != i ? i : -1, host_params, scratch);
    }
    free(host_params);
    free(scratch);
    return r;
fail:
    free(host_params);
    free(scratch);
    dg_relevance_free(r);
    return NULL;
}

void dg_relevance_free(dg_relevance *r) {
    if (!r) return;
    const dg_backend *be = r->net ? r->net->be : NULL;
    if (be) {
        float *dev[] = {r->parts, r->z, r->tmp, r->c, r->x_lo, r->x_hi};
        for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
            if (dev[i]) be->free(dev[i]);
    }
    free(r->rules);
    free(r->h_dist);
    free(r->h_onehot);
    free(r);
}

size_t dg_relevance_device_bytes(const dg_relevance *r) { return r->device_bytes; }

/* z = x·W (conv or linear) with weight part w, for n images */
static void unit_fwd(const dg_relevance *r, const node_rule *ru, int n, const float *x, const float *w, float *z) {
    const dg_net *net = r->net;
    const dg_node *layer = &net->nodes[ru->layer], *in = &net->nodes[layer->in0];
    if (ru->kind == RULE_CONV) {
        dg_conv_desc d = dg_net_conv_desc(net, layer, n);
        net->be->conv_fwd(&d, x, w, z, net->ws);
    } else {
        net->be->linear_fwd(n, in->c * in->h * in->w, layer->out, x, w, NULL, z);
    }
}

/* c = (the transpose of the unit with weight part w) applied to s, written */
static void unit_back(const dg_relevance *r, const node_rule *ru, int n, const float *s, const float *w, float *c) {
    const dg_net *net = r->net;
    const dg_node *layer = &net->nodes[ru->layer], *in = &net->nodes[layer->in0];
    if (ru->kind == RULE_CONV) {
        dg_conv_desc d = dg_net_conv_desc(net, layer, n);
        net->be->conv_bwd_data(&d, s, w, c, 0, net->ws);
    } else {
        net->be->linear_bwd(n, in->c * in->h * in->w, layer->out, NULL, w, s, c, 0, NULL, NULL);
    }
}

/* The z⁺ or z^B rule of a unit: relevance R at node `out` (the conv, or the batch norm folded
 * into it) to the unit's input. */
static void unit_rule(dg_relevance *r, const node_rule *ru, int n, const dg_node *out) {
    const dg_net *net = r->net;
    const dg_backend *be = net->be;
    const dg_node *in = &net->nodes[net->nodes[ru->layer].in0];
    size_t n_out = dg_node_numel(out, n), n_in = dg_node_numel(in, n);
    if (!ru->first) { /* z⁺: z = x·W⁺; R_in += x · W⁺ᵀ(R / z) */
        unit_fwd(r, ru, n, in->y, ru->wpos, r->z);
        be->lrp_ratio(n_out, out->dy, r->z, r->o.eps, r->z);
        unit_back(r, ru, n, r->z, ru->wpos, r->c);
        be->lrp_share(n_in, 1.0f, in->y, r->c, in->dy);
        return;
    }
    /* z^B as z = (x − l)·W⁺ + (x − h)·W⁻, R_in += (x − l)·W⁺ᵀs + (x − h)·W⁻ᵀs with s = R / z: the
     * docs' x·W − l·W⁺ − h·W⁻ in exact arithmetic, but every term is ≥ 0 in float too, so a window
     * whose terms are all 0 has z exactly 0 (the three-term form left a rounding residue there, and
     * R over it swamped the other outputs' shares of those pixels) */
    unit_fwd(r, ru, n, r->x_lo, ru->wpos, r->z);
    unit_fwd(r, ru, n, r->x_hi, ru->wneg, r->tmp);
    be->axpy(n_out, 1.0f, r->tmp, r->z);
    be->lrp_ratio(n_out, out->dy, r->z, r->o.eps, r->z);
    unit_back(r, ru, n, r->z, ru->wpos, r->c);
    be->lrp_share(n_in, 1.0f, r->x_lo, r->c, in->dy);
    unit_back(r, ru, n, r->z, ru->wneg, r->c);
    be->lrp_share(n_in, 1.0f, r->x_hi, r->c, in->dy);
}

/* x_lo = x − l and x_hi = x − h for n host inputs, per channel, on the device */
static void upload_distances(dg_relevance *r, const float *x, int n) {
    const dg_net *net = r->net;
    size_t plane = (size_t)net->in_h * net->in_w, count = dg_node_numel(&net->nodes[0], n);
    for (int k = 0; k < 2; k++) {
        const float *bound = k ? r->o.hi : r->o.lo;
        for (size_t e = 0; e < count; e++) r->h_dist[e] = x[e] - bound[(e / plane) % (size_t)net->in_c];
        net->be->upload(k ? r->x_hi : r->x_lo, r->h_dist, sizeof(float) * count);
    }
}

int dg_relevance_run(dg_relevance *r, const float *x, int n, const int *classes, int *predicted, float *logits,
                     float *rel) {
    dg_net *net = r->net;
    const dg_backend *be = net->be;
    dg_node *nodes = net->nodes;
    const int k = net->classes, out = dg_net_output(net);
    if (n < 1 || n > net->batch) return -1;
    float *h_logits = logits ? logits : malloc(sizeof(float) * (size_t)n * (size_t)k);
    if (!h_logits) return -1;

    be->upload(nodes[0].y, x, sizeof(float) * dg_node_numel(&nodes[0], n));
    upload_distances(r, x, n);
    dg_net_forward(net, nodes[0].y, n, DG_MODE_EVAL);
    be->download(h_logits, nodes[out].y, sizeof(float) * (size_t)n * (size_t)k);

    /* the injection: one-hot at the class, 1 or the logit */
    memset(r->h_onehot, 0, sizeof(float) * (size_t)n * (size_t)k);
    for (int i = 0; i < n; i++) {
        const float *row = h_logits + (size_t)i * k;
        int best = 0, finite = isfinite(row[0]);
        for (int j = 1; j < k; j++) {
            if (row[j] > row[best]) best = j;
            finite &= isfinite(row[j]) != 0;
        }
        /* outputs that are not all finite predict no class (as eval and fp auth say): NaN weights
         * can leave a finite map (max(W, 0) of NaN is 0), so the output is where it shows */
        if (predicted) predicted[i] = finite ? best : -1;
        int t = classes && classes[i] >= 0 && classes[i] < k ? classes[i] : best;
        r->h_onehot[(size_t)i * k + t] = r->o.inject_logit ? row[t] : 1.0f;
    }
    for (int i = 0; i < net->n_nodes; i++)
        if (nodes[i].kind != DG_NODE_FLATTEN) be->zero(nodes[i].dy, sizeof(float) * dg_node_numel(&nodes[i], n));
    be->upload(nodes[out].dy, r->h_onehot, sizeof(float) * (size_t)n * (size_t)k);

    for (int i = net->n_nodes - 1; i >= 1; i--) {
        const node_rule *ru = &r->rules[i];
        dg_node *nd = &nodes[i], *in = &nodes[nd->in0];
        size_t count = dg_node_numel(nd, n);
        switch (ru->kind) {
        case RULE_NONE: break;
        case RULE_PASS: be->axpy(count, 1.0f, nd->dy, in->dy); break;
        case RULE_CONV:
        case RULE_LINEAR: unit_rule(r, ru, n, nd); break;
        case RULE_MAXPOOL: { /* winner-take-all, ties shared */
            dg_pool_desc d = dg_net_pool_desc(net, nd, n);
            be->lrp_maxpool(&d, in->y, nd->y, nd->dy, DG_RELEVANCE_TIE, in->dy);
            break;
        }
        case RULE_AVGPOOL: { /* z = y (the pool's own output); R_in += x · poolᵀ(R / y) */
            dg_pool_desc d = dg_net_pool_desc(net, nd, n);
            size_t n_in = dg_node_numel(in, n);
            be->lrp_ratio(count, nd->dy, nd->y, r->o.eps, r->z);
            be->avgpool_bwd(&d, r->z, r->c, 0);
            be->lrp_share(n_in, 1.0f, in->y, r->c, in->dy);
            break;
        }
        case RULE_ADD: { /* s = R / y; R_a += a·s, R_b += b·s */
            dg_node *b = &nodes[nd->in1];
            be->lrp_ratio(count, nd->dy, nd->y, r->o.eps, r->z);
            be->lrp_share(count, 1.0f, in->y, r->z, in->dy);
            be->lrp_share(count, 1.0f, b->y, r->z, b->dy);
            break;
        }
        }
    }
    be->download(rel, nodes[0].dy, sizeof(float) * dg_node_numel(&nodes[0], n));
    if (!logits) free(h_logits);
    return 0;
}
