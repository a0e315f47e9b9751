/* host/dist_buckets.c — the bucket plan of dist_buckets.h. */
#include "dist_buckets.h"

#include <stdlib.h>

/* The float range of node i's parameters in the arena (each padded to 16 floats); 0 if it has none. */
static int node_range(const dg_net *net, int node, size_t *begin, size_t *end) {
    int found = 0;
    for (int p = 0; p < net->n_params; p++) {
        const dg_param *q = &net->params[p];
        if (q->node != node) continue;
        size_t b = q->offset, e = q->offset + ((q->numel + 15) & ~(size_t)15);
        if (!found || b < *begin) *begin = b;
        if (!found || e > *end) *end = e;
        found = 1;
    }
    return found;
}

/* 1 when walking the nodes down from the last meets parameter ranges that tile the arena from its
 * end down to 0 without gaps or overlaps (what dg_net's builders produce). */
static int laid_out_in_node_order(const dg_net *net) {
    size_t expect_end = net->n_param_floats;
    for (int i = net->n_nodes - 1; i >= 0; i--) {
        size_t b, e;
        if (!node_range(net, i, &b, &e)) continue;
        if (e != expect_end) return 0;
        expect_end = b;
    }
    return expect_end == 0;
}

int dg_grad_buckets_plan(const dg_net *net, size_t cap_floats, int held_param, dg_grad_bucket **out) {
    *out = NULL;
    if (net->n_param_floats == 0) return 0;
    dg_grad_bucket *b = malloc(sizeof *b * (size_t)(net->n_nodes + 1));
    if (!b) return -1;
    int n = 0;
    if (!laid_out_in_node_order(net)) {
        b[n++] = (dg_grad_bucket){0, net->n_param_floats, -1};
    } else {
        size_t end = net->n_param_floats, begin = end;
        int lowest = -1;
        for (int i = net->n_nodes - 1; i >= 0; i--) {
            size_t nb, ne;
            if (!node_range(net, i, &nb, &ne)) continue;
            begin = nb;
            lowest = i;
            if (end - begin >= cap_floats) {
                b[n++] = (dg_grad_bucket){begin, end, i};
                end = begin;
            }
        }
        if (end > 0) b[n++] = (dg_grad_bucket){0, end, lowest};
    }
    if (held_param >= 0 && held_param < net->n_params) {
        size_t at = net->params[held_param].offset;
        for (int k = 0; k < n; k++)
            if (at >= b[k].begin && at < b[k].end) b[k].ready_node = -1;
    }
    *out = b;
    return n;
}
