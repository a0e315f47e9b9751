/* host/attack_permute.c — the function-preserving permutation attack: shuffle the output channels of
 * one conv or linear layer and follow the graph to every consumer (batch norm, pass-through nodes,
 * the next conv's input channels or linear's input columns) so the net computes the same function.
 * Works on a net's node list and a host copy of its parameters; no devices, no files. */
#include "attack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/math/rng.h"

static void add_step(dg_permute_plan *plan, int param, size_t outer, size_t inner) {
    plan->steps[plan->n_steps++] = (dg_permute_step){.param = param, .outer = outer, .inner = inner};
}

static void fail(char *err, size_t err_len, const char *layer, const char *why) {
    snprintf(err, err_len, "cannot permute '%s': %s", layer, why);
}

/* Push every node that reads node x and has not been seen onto stack. */
static void push_consumers(const dg_net *net, int x, int *stack, int *top, char *seen) {
    for (int j = x + 1; j < net->n_nodes; j++) {
        const dg_node *n = &net->nodes[j];
        if ((n->in0 == x || n->in1 == x) && !seen[j]) {
            seen[j] = 1;
            stack[(*top)++] = j;
        }
    }
}

/* Walk from the layer's node to every consumer of its channels; add the steps. 0 or -1 + err. */
static int follow(const dg_net *net, const char *layer, dg_permute_plan *plan, int *stack, char *seen, char *err,
                  size_t err_len) {
    const size_t C = (size_t)plan->channels;
    int top = 0;
    push_consumers(net, plan->node, stack, &top, seen);
    while (top > 0) {
        int x = stack[--top];
        const dg_node *n = &net->nodes[x];
        const dg_node *in = &net->nodes[n->in0];
        size_t features = (size_t)in->c * in->h * in->w; /* what node x reads per sample */
        char why[192];
        switch (n->kind) {
        case DG_NODE_BN: /* after a flatten its c features are C blocks of h·w */
            if ((size_t)n->c % C != 0) {
                snprintf(why, sizeof why, "batch norm %s has %d channels, not a multiple of %zu", n->name, n->c, C);
                fail(err, err_len, layer, why);
                return -1;
            }
            add_step(plan, n->pw, 1, (size_t)n->c / C);
            add_step(plan, n->pb, 1, (size_t)n->c / C);
            add_step(plan, n->pm, 1, (size_t)n->c / C);
            add_step(plan, n->pv, 1, (size_t)n->c / C);
            break;
        case DG_NODE_RELU:
        case DG_NODE_MAXPOOL:
        case DG_NODE_AVGPOOL:
        case DG_NODE_DROPOUT:
        case DG_NODE_FLATTEN:
            break;
        case DG_NODE_CONV:
            if ((size_t)in->c != C) {
                snprintf(why, sizeof why, "conv %s reads %d channels, not the layer's %zu", n->name, in->c, C);
                fail(err, err_len, layer, why);
                return -1;
            }
            add_step(plan, n->pw, (size_t)n->out, (size_t)n->k * n->k);
            continue; /* the next layer absorbs the permutation */
        case DG_NODE_LINEAR: /* column c·hw + j moves with channel c */
            if (features % C != 0) {
                snprintf(why, sizeof why, "linear %s reads %zu features, not a multiple of %zu", n->name, features, C);
                fail(err, err_len, layer, why);
                return -1;
            }
            add_step(plan, n->pw, (size_t)n->out, features / C);
            continue;
        case DG_NODE_ADD:
            fail(err, err_len, layer,
                 "its channels reach a residual add, whose other branch would have to be permuted the same way");
            return -1;
        default:
            fail(err, err_len, layer, "its channels reach a node this attack does not know");
            return -1;
        }
        if (x == dg_net_output(net)) {
            fail(err, err_len, layer, "its channels reach the logits (the class order would change)");
            return -1;
        }
        push_consumers(net, x, stack, &top, seen);
    }
    return 0;
}

int dg_permute_plan_build(const dg_net *net, const char *layer, dg_permute_plan *plan, char *err,
                          size_t err_len) {
    memset(plan, 0, sizeof *plan);
    int p = dg_net_find_param(net, layer);
    if (p < 0) {
        snprintf(err, err_len, "net %s has no tensor '%s' (dnnguard info --net %s lists them)", net->name, layer,
                 net->name);
        return -1;
    }
    const dg_param *param = &net->params[p];
    const dg_node *node = &net->nodes[param->node];
    if ((node->kind != DG_NODE_CONV && node->kind != DG_NODE_LINEAR) || node->pw != p) {
        fail(err, err_len, layer, "not a conv or linear weight (name one, such as conv1.weight)");
        return -1;
    }
    if (param->node == dg_net_output(net)) {
        fail(err, err_len, layer, "its outputs are the logits (the class order would change)");
        return -1;
    }
    plan->node = param->node;
    plan->channels = node->out;
    plan->steps = malloc(sizeof *plan->steps * (size_t)net->n_params);
    int *stack = malloc(sizeof(int) * (size_t)net->n_nodes);
    char *seen = calloc((size_t)net->n_nodes, 1);
    int rc = -1;
    if (!plan->steps || !stack || !seen) {
        snprintf(err, err_len, "out of memory");
    } else {
        add_step(plan, node->pw, 1, param->numel / (size_t)node->out);
        if (node->pb >= 0) add_step(plan, node->pb, 1, 1);
        rc = follow(net, layer, plan, stack, seen, err, err_len);
    }
    free(stack);
    free(seen);
    if (rc != 0) dg_permute_plan_free(plan);
    return rc;
}

void dg_permute_plan_free(dg_permute_plan *plan) {
    free(plan->steps);
    memset(plan, 0, sizeof *plan);
}

static int is_identity(const int *perm, int n) {
    for (int i = 0; i < n; i++)
        if (perm[i] != i) return 0;
    return 1;
}

void dg_permute_draw(int n, uint64_t seed, int *perm) {
    for (uint64_t round = 0;; round++) {
        uint64_t stream = dg_rng_stream(seed, round);
        for (int i = 0; i < n; i++) perm[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(dg_rng_u64(stream, (uint64_t)i) % (uint64_t)(i + 1));
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        if (n < 2 || !is_identity(perm, n)) return;
    }
}

int dg_permute_apply(const dg_net *net, const dg_permute_plan *plan, const int *perm, float *host_params) {
    const size_t C = (size_t)plan->channels;
    size_t largest = 1;
    for (int s = 0; s < plan->n_steps; s++)
        if (C * plan->steps[s].inner > largest) largest = C * plan->steps[s].inner;
    float *row = malloc(sizeof(float) * largest);
    if (!row) return -1;
    for (int s = 0; s < plan->n_steps; s++) {
        const dg_permute_step *st = &plan->steps[s];
        float *t = host_params + net->params[st->param].offset;
        for (size_t o = 0; o < st->outer; o++) {
            float *base = t + o * C * st->inner;
            memcpy(row, base, sizeof(float) * C * st->inner);
            for (size_t c = 0; c < C; c++)
                memcpy(base + c * st->inner, row + (size_t)perm[c] * st->inner, sizeof(float) * st->inner);
        }
    }
    free(row);
    return 0;
}
