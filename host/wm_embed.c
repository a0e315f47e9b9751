/* host/wm_embed.c — embedding a watermark key while training: binds the key to the layer's
 * weight and gradient inside the net's arenas and adds the regularizer's gradient after each
 * backward walk, through the backend's wm_reg op (kernels/math/watermark.h). */
#include "watermark.h"

#include "../kernels/math/watermark.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dg_wm_embed_init(dg_wm_embed *e, const dg_wm_key *key, float lambda, dg_net *net, char *err, size_t err_len) {
    memset(e, 0, sizeof *e);
    int p = dg_net_find_param(net, key->layer);
    if (p < 0 || net->nodes[net->params[p].node].kind != DG_NODE_CONV || net->params[p].role != DG_PARAM_WEIGHT) {
        snprintf(err, err_len, "the key's layer '%s' is not a conv weight of %s", key->layer, net->name);
        return -1;
    }
    const dg_param *w = &net->params[p];
    for (int d = 0; d < 4; d++)
        if (w->shape[d] != key->shape[d]) {
            snprintf(err, err_len, "the key's layer %s is %dx%dx%dx%d but %s's is %dx%dx%dx%d", key->layer,
                     key->shape[0], key->shape[1], key->shape[2], key->shape[3], net->name, w->shape[0], w->shape[1],
                     w->shape[2], w->shape[3]);
            return -1;
        }
    const dg_backend *be = net->be;
    int n = key->n;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)n);
    float *digits = malloc(sizeof(float) * (size_t)n);
    e->mapped_host = malloc(sizeof(float) * (size_t)n);
    e->idx = be->alloc(sizeof(int32_t) * (size_t)n);
    e->digits = be->alloc(sizeof(float) * (size_t)n);
    e->mapped = be->alloc(sizeof(float) * (size_t)n);
    if (!idx || !digits || !e->mapped_host || !e->idx || !e->digits || !e->mapped) {
        free(idx);
        free(digits);
        dg_wm_embed_free(e, be);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    int32_t per_filter = key->shape[1] * key->shape[2] * key->shape[3];
    for (int k = 0; k < n; k++) {
        idx[k] = key->filter * per_filter + key->positions[k];
        digits[k] = (float)key->digits[k];
    }
    be->upload(e->idx, idx, sizeof(int32_t) * (size_t)n);
    be->upload(e->digits, digits, sizeof(float) * (size_t)n);
    free(idx);
    free(digits);
    e->key = key;
    e->lambda = lambda;
    e->w = net->param_arena + w->offset;
    e->dw = net->grad_arena + w->offset;
    return 0;
}

void dg_wm_embed_free(dg_wm_embed *e, const dg_backend *be) {
    if (be) {
        be->free(e->idx);
        be->free(e->digits);
        be->free(e->mapped);
    }
    free(e->mapped_host);
    memset(e, 0, sizeof *e);
}

/* The regularizer over positions [first, first + count) of the key: its gradient into dw (unless
 * NULL) with the weight that the whole key's 1/n gives each position, and its share of the value. */
static double reg_range(dg_wm_embed *e, const dg_backend *be, int first, int count, float *dw, int *matches) {
    const dg_wm_key *key = e->key;
    *matches = 0;
    if (count <= 0) return 0.0;
    /* wm_reg divides by the count it is given: scaling λ by count/n keeps each position's weight
     * λ/n (and is exactly λ for the whole key) */
    float lambda = e->lambda * ((float)count / (float)key->n);
    be->wm_reg(count, e->w, e->idx + first, e->digits + first, key->a, key->b, lambda, e->mapped + first, dw);
    be->download(e->mapped_host + first, e->mapped + first, sizeof(float) * (size_t)count);
    double sum = 0.0;
    int ok = 0;
    for (int k = first; k < first + count; k++) {
        double r = (double)key->digits[k] - e->mapped_host[k];
        sum += r * r;
        ok += dg_wm_digit(e->mapped_host[k]) == key->digits[k];
    }
    *matches = ok;
    return e->lambda * sum / key->n;
}

double dg_wm_embed_step(dg_wm_embed *e, const dg_backend *be, int apply_grad, int *matches) {
    return reg_range(e, be, 0, e->key->n, apply_grad ? e->dw : NULL, matches);
}

double dg_wm_embed_step_part(dg_wm_embed *e, const dg_backend *be, int first, int count) {
    int matches;
    return reg_range(e, be, first, count, e->dw, &matches);
}
