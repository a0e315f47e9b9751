/* host/net.c — building a net (nodes with shapes, named parameters), carving its memory from one
 * arena per lifetime, and the forward and backward walks over the node list. Every tensor
 * computation goes through the backend's op table; this file never dereferences device memory. */
#include "net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/math/rng.h"

dg_net *dg_net_new(const char *name, int in_c, int in_h, int in_w, int classes) {
    dg_net *net = calloc(1, sizeof *net);
    if (!net) return NULL;
    snprintf(net->name, sizeof net->name, "%s", name);
    net->in_c = in_c;
    net->in_h = in_h;
    net->in_w = in_w;
    net->classes = classes;
    dg_node input = {.kind = DG_NODE_INPUT, .in0 = -1, .in1 = -1, .c = in_c, .h = in_h, .w = in_w,
                     .pw = -1, .pb = -1, .pm = -1, .pv = -1};
    net->nodes = malloc(sizeof(dg_node) * 16);
    if (!net->nodes) {
        free(net);
        return NULL;
    }
    net->cap_nodes = 16;
    net->nodes[0] = input;
    net->n_nodes = 1;
    return net;
}

static void release_buffers(dg_net *net) {
    if (!net->be) return;
    net->be->free(net->param_arena);
    net->be->free(net->grad_arena);
    net->be->free(net->act_arena);
    net->be->free(net->ws);
    net->param_arena = net->grad_arena = NULL;
    net->act_arena = net->ws = NULL;
    net->be = NULL;
}

void dg_net_free(dg_net *net) {
    if (!net) return;
    release_buffers(net);
    free(net->nodes);
    free(net->params);
    free(net);
}

/* ---- building ---- */

static int bad_input(const dg_net *net, int in) { return in < 0 || in >= net->n_nodes; }

static int push_node(dg_net *net, dg_node node) {
    if (net->n_nodes == net->cap_nodes) {
        dg_node *grown = realloc(net->nodes, sizeof(dg_node) * (size_t)net->cap_nodes * 2);
        if (!grown) return -1;
        net->nodes = grown;
        net->cap_nodes *= 2;
    }
    net->nodes[net->n_nodes] = node;
    return net->n_nodes++;
}

static dg_node node_from(const dg_net *net, dg_node_kind kind, const char *name, int in) {
    dg_node n = {.kind = kind, .in0 = in, .in1 = -1, .pw = -1, .pb = -1, .pm = -1, .pv = -1};
    if (name) snprintf(n.name, sizeof n.name, "%s", name);
    n.c = net->nodes[in].c;
    n.h = net->nodes[in].h;
    n.w = net->nodes[in].w;
    return n;
}

static int add_param(dg_net *net, int node, const char *module, const char *suffix, dg_param_role role,
                     int ndim, const int *shape) {
    if (net->n_params == net->cap_params) {
        int cap = net->cap_params ? net->cap_params * 2 : 32;
        dg_param *grown = realloc(net->params, sizeof(dg_param) * (size_t)cap);
        if (!grown) return -1;
        net->params = grown;
        net->cap_params = cap;
    }
    dg_param *p = &net->params[net->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s.%s", module, suffix);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    /* keep every tensor 16-float (64-byte) aligned inside the arena */
    p->offset = net->n_param_floats;
    net->n_param_floats += (p->numel + 15) & ~(size_t)15;
    p->role = role;
    p->node = node;
    return net->n_params++;
}

int dg_net_conv(dg_net *net, const char *name, int in, int out, int k, int stride, int pad, int bias) {
    if (bad_input(net, in) || out < 1 || k < 1 || stride < 1 || pad < 0) {
        snprintf(net->error, sizeof net->error, "bad convolution %s", name);
        return -1;
    }
    dg_node n = node_from(net, DG_NODE_CONV, name, in);
    dg_conv_desc d = {.n = 1, .c = n.c, .h = n.h, .w = n.w, .k = out, .r = k, .s = k, .stride = stride, .pad = pad};
    if (dg_conv_desc_init(&d) != 0) {
        snprintf(net->error, sizeof net->error, "convolution %s (%d×%d kernel) does not fit its %d×%d input",
                name, k, k, n.h, n.w);
        return -1;
    }
    n.out = out;
    n.k = k;
    n.stride = stride;
    n.pad = pad;
    n.has_bias = bias;
    int in_c = n.c;
    n.c = out;
    n.h = d.oh;
    n.w = d.ow;
    int id = push_node(net, n);
    if (id < 0) return -1;
    int wshape[4] = {out, in_c, k, k};
    net->nodes[id].pw = add_param(net, id, name, "weight", DG_PARAM_WEIGHT, 4, wshape);
    if (bias) net->nodes[id].pb = add_param(net, id, name, "bias", DG_PARAM_BIAS, 1, &out);
    return id;
}

int dg_net_bn(dg_net *net, const char *name, int in) {
    if (bad_input(net, in)) return -1;
    dg_node n = node_from(net, DG_NODE_BN, name, in);
    n.eps = 1e-5f;
    n.momentum = 0.1f;
    int id = push_node(net, n);
    if (id < 0) return -1;
    int c = n.c;
    net->nodes[id].pw = add_param(net, id, name, "weight", DG_PARAM_WEIGHT, 1, &c);
    net->nodes[id].pb = add_param(net, id, name, "bias", DG_PARAM_BIAS, 1, &c);
    net->nodes[id].pm = add_param(net, id, name, "running_mean", DG_PARAM_RUNNING, 1, &c);
    net->nodes[id].pv = add_param(net, id, name, "running_var", DG_PARAM_RUNNING, 1, &c);
    return id;
}

int dg_net_relu(dg_net *net, int in) {
    if (bad_input(net, in)) return -1;
    return push_node(net, node_from(net, DG_NODE_RELU, NULL, in));
}

static int add_pool(dg_net *net, dg_node_kind kind, int in, int k, int stride, int pad) {
    if (bad_input(net, in)) return -1;
    dg_node n = node_from(net, kind, NULL, in);
    dg_pool_desc d = {.n = 1, .c = n.c, .h = n.h, .w = n.w, .k = k, .stride = stride, .pad = pad};
    if (dg_pool_desc_init(&d) != 0) {
        snprintf(net->error, sizeof net->error, "%d×%d pooling does not fit its %d×%d input", k, k, n.h,
                n.w);
        return -1;
    }
    n.k = k;
    n.stride = stride;
    n.pad = pad;
    n.h = d.oh;
    n.w = d.ow;
    return push_node(net, n);
}

int dg_net_maxpool(dg_net *net, int in, int k, int stride, int pad) {
    return add_pool(net, DG_NODE_MAXPOOL, in, k, stride, pad);
}

int dg_net_avgpool(dg_net *net, int in, int k, int stride) {
    if (bad_input(net, in)) return -1;
    if (k == 0) { /* global average */
        if (net->nodes[in].h != net->nodes[in].w) {
            snprintf(net->error, sizeof net->error, "global average pool needs a square input");
            return -1;
        }
        k = stride = net->nodes[in].h;
    }
    return add_pool(net, DG_NODE_AVGPOOL, in, k, stride, 0);
}

int dg_net_linear(dg_net *net, const char *name, int in, int out, int bias) {
    if (bad_input(net, in) || out < 1) return -1;
    dg_node n = node_from(net, DG_NODE_LINEAR, name, in);
    int in_features = n.c * n.h * n.w;
    n.out = out;
    n.has_bias = bias;
    n.c = out;
    n.h = n.w = 1;
    int id = push_node(net, n);
    if (id < 0) return -1;
    int wshape[2] = {out, in_features};
    net->nodes[id].pw = add_param(net, id, name, "weight", DG_PARAM_WEIGHT, 2, wshape);
    if (bias) net->nodes[id].pb = add_param(net, id, name, "bias", DG_PARAM_BIAS, 1, &out);
    return id;
}

int dg_net_add(dg_net *net, int a, int b) {
    if (bad_input(net, a) || bad_input(net, b)) return -1;
    const dg_node *na = &net->nodes[a], *nb = &net->nodes[b];
    if (na->c != nb->c || na->h != nb->h || na->w != nb->w) {
        snprintf(net->error, sizeof net->error, "residual add of %d×%d×%d and %d×%d×%d", na->c, na->h,
                na->w, nb->c, nb->h, nb->w);
        return -1;
    }
    dg_node n = node_from(net, DG_NODE_ADD, NULL, a);
    n.in1 = b;
    return push_node(net, n);
}

int dg_net_flatten(dg_net *net, int in) {
    if (bad_input(net, in)) return -1;
    dg_node n = node_from(net, DG_NODE_FLATTEN, NULL, in);
    n.c = n.c * n.h * n.w;
    n.h = n.w = 1;
    return push_node(net, n);
}

int dg_net_dropout(dg_net *net, int in, float p) {
    if (bad_input(net, in) || !(p >= 0.0f && p < 1.0f)) return -1;
    dg_node n = node_from(net, DG_NODE_DROPOUT, NULL, in);
    n.p = p;
    return push_node(net, n);
}

/* ---- parameters ---- */

int dg_net_find_param(const dg_net *net, const char *name) {
    for (int i = 0; i < net->n_params; i++)
        if (strcmp(net->params[i].name, name) == 0) return i;
    return -1;
}

size_t dg_net_trainable_count(const dg_net *net) {
    size_t total = 0;
    for (int i = 0; i < net->n_params; i++)
        if (net->params[i].role != DG_PARAM_RUNNING) total += net->params[i].numel;
    return total;
}

void dg_net_init_host(const dg_net *net, uint64_t seed, float *host) {
    memset(host, 0, net->n_param_floats * sizeof(float));
    for (int i = 0; i < net->n_params; i++) {
        const dg_param *p = &net->params[i];
        const dg_node *node = &net->nodes[p->node];
        float *v = host + p->offset;
        uint64_t stream = dg_rng_stream(seed, (uint64_t)i);
        if (node->kind == DG_NODE_BN) {
            float fill = (strstr(p->name, ".running_var") || p->role == DG_PARAM_WEIGHT) ? 1.0f : 0.0f;
            for (size_t j = 0; j < p->numel; j++) v[j] = fill;
            continue;
        }
        /* conv/linear: kaiming_uniform(a=√5) gives bound 1/√fan_in for weights; biases the same */
        const dg_param *w = &net->params[node->pw];
        size_t fan_in = w->numel / (size_t)w->shape[0];
        float bound = 1.0f / sqrtf((float)fan_in);
        for (size_t j = 0; j < p->numel; j++) v[j] = (2.0f * dg_rng_uniform(stream, j) - 1.0f) * bound;
    }
}

/* ---- memory ---- */

static size_t round64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

dg_conv_desc dg_net_conv_desc(const dg_net *net, const dg_node *node, int n) {
    const dg_node *in = &net->nodes[node->in0];
    dg_conv_desc d = {.n = n, .c = in->c, .h = in->h, .w = in->w, .k = node->out, .r = node->k, .s = node->k,
                      .stride = node->stride, .pad = node->pad};
    dg_conv_desc_init(&d);
    return d;
}

dg_pool_desc dg_net_pool_desc(const dg_net *net, const dg_node *node, int n) {
    const dg_node *in = &net->nodes[node->in0];
    dg_pool_desc d = {.n = n, .c = in->c, .h = in->h, .w = in->w, .k = node->k, .stride = node->stride,
                      .pad = node->pad};
    dg_pool_desc_init(&d);
    return d;
}

size_t dg_node_numel(const dg_node *node, int batch) { return (size_t)batch * node->c * node->h * node->w; }

/* Lay out (place = 0: only measure) every node's buffers in the activation arena: all outputs,
 * then all gradients contiguously (one zero call clears them), then saved state. Flatten nodes
 * alias their input: same bytes, same layout. */
static size_t layout_activations(dg_net *net, int batch, char *base) {
    size_t off = 0;
#define CARVE(field, type, count)                                  \
    do {                                                           \
        if (base) node->field = (type *)(base + off);              \
        off += round64(sizeof(type) * (size_t)(count));            \
    } while (0)
    for (int i = 0; i < net->n_nodes; i++) {
        dg_node *node = &net->nodes[i];
        if (node->kind == DG_NODE_FLATTEN) continue;
        CARVE(y, float, dg_node_numel(node, batch));
    }
    net->grad_begin = off;
    for (int i = 0; i < net->n_nodes; i++) {
        dg_node *node = &net->nodes[i];
        if (node->kind == DG_NODE_FLATTEN) continue;
        CARVE(dy, float, dg_node_numel(node, batch));
    }
    net->grad_end = off;
    for (int i = 0; i < net->n_nodes; i++) {
        dg_node *node = &net->nodes[i];
        if (node->kind == DG_NODE_MAXPOOL) CARVE(argmax, int32_t, dg_node_numel(node, batch));
        if (node->kind == DG_NODE_DROPOUT) CARVE(mask, float, dg_node_numel(node, batch));
        if (node->kind == DG_NODE_BN) {
            CARVE(save_mean, float, node->c);
            CARVE(save_invstd, float, node->c);
        }
    }
#undef CARVE
    if (base)
        for (int i = 0; i < net->n_nodes; i++) {
            dg_node *node = &net->nodes[i];
            if (node->kind != DG_NODE_FLATTEN) continue;
            node->y = net->nodes[node->in0].y;
            node->dy = net->nodes[node->in0].dy;
        }
    return off;
}

size_t dg_net_activation_bytes(dg_net *net, int batch) {
    size_t begin = net->grad_begin, end = net->grad_end; /* measuring moves them: keep the set-up ones */
    size_t bytes = layout_activations(net, batch, NULL);
    net->grad_begin = begin, net->grad_end = end;
    return bytes;
}

int dg_net_setup(dg_net *net, const dg_backend *be, int batch) {
    release_buffers(net);
    net->be = be;
    net->batch = batch;
    size_t act_bytes = layout_activations(net, batch, NULL);
    size_t extra = round64(sizeof(int32_t) * (size_t)batch) +
                   round64(sizeof(float) * (size_t)batch * (size_t)net->classes) + round64(sizeof(float) * (size_t)batch);
    net->ws_bytes = 0;
    for (int i = 0; i < net->n_nodes; i++)
        if (net->nodes[i].kind == DG_NODE_CONV) {
            dg_conv_desc d = dg_net_conv_desc(net, &net->nodes[i], batch);
            size_t b = be->conv_workspace_bytes(&d);
            if (b > net->ws_bytes) net->ws_bytes = b;
        }
    net->param_arena = be->alloc(sizeof(float) * net->n_param_floats);
    net->grad_arena = be->alloc(sizeof(float) * net->n_param_floats);
    net->act_arena = be->alloc(act_bytes + extra);
    net->ws = net->ws_bytes ? be->alloc(net->ws_bytes) : NULL;
    if (!net->param_arena || !net->grad_arena || !net->act_arena || (net->ws_bytes && !net->ws)) {
        fprintf(stderr, "dnnguard: out of memory for net %s at batch %d (%.1f MiB of activations)\n", net->name,
                batch, (double)act_bytes / (1 << 20));
        release_buffers(net);
        return -1;
    }
    layout_activations(net, batch, net->act_arena);
    char *tail = (char *)net->act_arena + act_bytes;
    net->labels = (int32_t *)tail;
    tail += round64(sizeof(int32_t) * (size_t)batch);
    net->probs = (float *)tail;
    tail += round64(sizeof(float) * (size_t)batch * (size_t)net->classes);
    net->loss = (float *)tail;
    return 0;
}

/* ---- forward and backward ---- */

static float *param(const dg_net *net, int index) {
    return index < 0 ? NULL : net->param_arena + net->params[index].offset;
}
static float *grad(const dg_net *net, int index) {
    return index < 0 ? NULL : net->grad_arena + net->params[index].offset;
}

void dg_net_forward(dg_net *net, const float *x, int n, int mode) {
    const dg_backend *be = net->be;
    dg_node *nodes = net->nodes;
    if (x != nodes[0].y) be->copy(nodes[0].y, x, sizeof(float) * dg_node_numel(&nodes[0], n));
    net->last_mode = mode;
    for (int i = 1; i < net->n_nodes; i++) {
        dg_node *node = &nodes[i];
        const dg_node *in = &nodes[node->in0];
        size_t count = dg_node_numel(node, n);
        switch (node->kind) {
        case DG_NODE_CONV: {
            dg_conv_desc d = dg_net_conv_desc(net, node, n);
            be->conv_fwd(&d, in->y, param(net, node->pw), node->y, net->ws);
            if (node->has_bias) be->bias_fwd(n, node->c, node->h * node->w, param(net, node->pb), node->y);
            break;
        }
        case DG_NODE_BN:
            if (mode & DG_MODE_BN_BATCH)
                be->bn_fwd_train(n, node->c, node->h * node->w, in->y, param(net, node->pw), param(net, node->pb),
                                 param(net, node->pm), param(net, node->pv), node->momentum, node->eps, node->y,
                                 node->save_mean, node->save_invstd);
            else
                be->bn_fwd_eval(n, node->c, node->h * node->w, in->y, param(net, node->pw), param(net, node->pb),
                                param(net, node->pm), param(net, node->pv), node->eps, node->y);
            break;
        case DG_NODE_RELU: be->relu_fwd(count, in->y, node->y); break;
        case DG_NODE_MAXPOOL: {
            dg_pool_desc d = dg_net_pool_desc(net, node, n);
            be->maxpool_fwd(&d, in->y, node->y, node->argmax);
            break;
        }
        case DG_NODE_AVGPOOL: {
            dg_pool_desc d = dg_net_pool_desc(net, node, n);
            be->avgpool_fwd(&d, in->y, node->y);
            break;
        }
        case DG_NODE_LINEAR:
            be->linear_fwd(n, in->c * in->h * in->w, node->out, in->y, param(net, node->pw), param(net, node->pb),
                           node->y);
            break;
        case DG_NODE_ADD: be->add(count, in->y, nodes[node->in1].y, node->y); break;
        case DG_NODE_FLATTEN: break; /* aliases its input */
        case DG_NODE_DROPOUT:
            if ((mode & DG_MODE_DROPOUT) && node->p > 0.0f)
                be->dropout_fwd(count, node->p, dg_rng_stream(net->dropout_seed, (uint64_t)i),
                                (uint64_t)net->dropout_first * (count / (size_t)(n > 0 ? n : 1)), in->y, node->y,
                                node->mask);
            else
                be->copy(node->y, in->y, sizeof(float) * count);
            break;
        case DG_NODE_INPUT: break;
        }
    }
}

double dg_net_loss_sum(dg_net *net, int n, float grad_scale, float smoothing) {
    dg_node *out = &net->nodes[dg_net_output(net)];
    net->be->softmax_xent(n, net->classes, out->y, net->labels, net->probs, net->loss, out->dy, grad_scale,
                          smoothing);
    float *host = malloc(sizeof(float) * (size_t)n);
    double total = 0.0;
    if (host) {
        net->be->download(host, net->loss, sizeof(float) * (size_t)n);
        for (int i = 0; i < n; i++) total += host[i];
        free(host);
    }
    return total;
}

double dg_net_loss(dg_net *net, int n) { return dg_net_loss_sum(net, n, 1.0f / (float)n, 0.0f) / n; }

void dg_net_zero_grad(dg_net *net) {
    if (!net->frozen) net->be->zero(net->grad_arena, sizeof(float) * net->n_param_floats);
}

/* The node whose buffer holds node i's gradient: a flatten shares its input's. */
static dg_node *grad_owner(dg_net *net, int i) {
    while (i != 0 && net->nodes[i].kind == DG_NODE_FLATTEN) i = net->nodes[i].in0;
    return &net->nodes[i];
}

/* Where a node's backward puts the gradient of its input `in`, NULL when nobody wants it (the
 * net's input without dx_input), and in *accumulate whether to add to it: the caller's dx_input is
 * added to; a node's dy is written by the first contribution of the walk and added to by the rest
 * (so no pass over the activation gradients zeroes them first). Call it only to write there. */
static float *grad_target(dg_net *net, int in, float *dx_input, int *accumulate) {
    if (in == 0) {
        *accumulate = 1;
        return dx_input;
    }
    dg_node *owner = grad_owner(net, in);
    *accumulate = owner->grad_held;
    owner->grad_held = 1;
    return net->nodes[in].dy;
}

/* dx (+)= dy: a gradient that passes through unchanged (an add, dropout at p = 0 or in eval) */
static void pass_through(const dg_backend *be, size_t count, const float *dy, float *dx, int accumulate) {
    if (accumulate) be->axpy(count, 1.0f, dy, dx);
    else be->copy(dx, dy, sizeof(float) * count);
}

void dg_net_backward(dg_net *net, int n, float *dx_input) {
    const dg_backend *be = net->be;
    dg_node *nodes = net->nodes;
    for (int i = 0; i < net->n_nodes; i++) nodes[i].grad_held = 0;
    grad_owner(net, dg_net_output(net))->grad_held = 1; /* the loss (or the caller) wrote it */
    for (int i = net->n_nodes - 1; i >= 1; i--) {
        dg_node *node = &nodes[i];
        dg_node *in = &nodes[node->in0];
        size_t count = dg_node_numel(node, n);
        dg_node *own = grad_owner(net, i);
        if (!own->grad_held) { /* no node read this one's output: its gradient is zero */
            be->zero(node->dy, sizeof(float) * count);
            own->grad_held = 1;
        }
        /* the input node's gradient is wanted only when the caller asks for it */
        const int wanted = node->in0 != 0 || dx_input;
        int acc = 1;
        switch (node->kind) {
        case DG_NODE_CONV: {
            dg_conv_desc d = dg_net_conv_desc(net, node, n);
            if (!net->frozen) {
                if (node->has_bias) be->bias_bwd(n, node->c, node->h * node->w, node->dy, grad(net, node->pb));
                be->conv_bwd_filter(&d, in->y, node->dy, grad(net, node->pw), net->ws);
            }
            if (wanted) {
                float *dx = grad_target(net, node->in0, dx_input, &acc);
                be->conv_bwd_data(&d, node->dy, param(net, node->pw), dx, acc, net->ws);
            }
            break;
        }
        case DG_NODE_BN: {
            /* γ and β need the full backward even when nobody wants dx: it then goes to the input
             * node's own buffer, which nothing reads */
            float *dx = in->dy;
            acc = 0;
            if (wanted) dx = grad_target(net, node->in0, dx_input, &acc);
            if (net->frozen) {
                if (wanted)
                    be->bn_bwd_eval(n, node->c, node->h * node->w, in->y, param(net, node->pw), param(net, node->pm),
                                    param(net, node->pv), node->eps, node->dy, dx, acc, NULL, NULL);
            } else if (net->last_mode & DG_MODE_BN_BATCH)
                be->bn_bwd(n, node->c, node->h * node->w, in->y, param(net, node->pw), node->save_mean,
                           node->save_invstd, node->dy, dx, acc, grad(net, node->pw), grad(net, node->pb));
            else
                be->bn_bwd_eval(n, node->c, node->h * node->w, in->y, param(net, node->pw), param(net, node->pm),
                                param(net, node->pv), node->eps, node->dy, dx, acc, grad(net, node->pw),
                                grad(net, node->pb));
            break;
        }
        case DG_NODE_RELU:
            if (wanted) {
                float *dx = grad_target(net, node->in0, dx_input, &acc);
                be->relu_bwd(count, node->y, node->dy, dx, acc);
            }
            break;
        case DG_NODE_MAXPOOL:
            if (wanted) {
                dg_pool_desc d = dg_net_pool_desc(net, node, n);
                float *dx = grad_target(net, node->in0, dx_input, &acc);
                be->maxpool_bwd(&d, node->argmax, node->dy, dx, acc);
            }
            break;
        case DG_NODE_AVGPOOL:
            if (wanted) {
                dg_pool_desc d = dg_net_pool_desc(net, node, n);
                float *dx = grad_target(net, node->in0, dx_input, &acc);
                be->avgpool_bwd(&d, node->dy, dx, acc);
            }
            break;
        case DG_NODE_LINEAR: {
            float *dx = wanted ? grad_target(net, node->in0, dx_input, &acc) : NULL;
            if (net->frozen) {
                if (dx) be->linear_bwd(n, in->c * in->h * in->w, node->out, in->y, param(net, node->pw), node->dy, dx,
                                       acc, NULL, NULL);
            } else {
                be->linear_bwd(n, in->c * in->h * in->w, node->out, in->y, param(net, node->pw), node->dy, dx, acc,
                               grad(net, node->pw), grad(net, node->pb));
            }
            break;
        }
        case DG_NODE_ADD: /* the gradient passes to both inputs (to one twice for x + x) */
            for (int k = 0; k < 2; k++) {
                int from = k ? node->in1 : node->in0;
                if (from == 0 && !dx_input) continue;
                float *dx = grad_target(net, from, dx_input, &acc);
                pass_through(be, count, node->dy, dx, acc);
            }
            break;
        case DG_NODE_FLATTEN: break; /* aliases its input's gradient */
        case DG_NODE_DROPOUT: {
            if (!wanted) break;
            float *dx = grad_target(net, node->in0, dx_input, &acc);
            if ((net->last_mode & DG_MODE_DROPOUT) && node->p > 0.0f)
                be->dropout_bwd(count, node->mask, node->dy, dx, acc);
            else
                pass_through(be, count, node->dy, dx, acc);
            break;
        }
        case DG_NODE_INPUT: break;
        }
        if (net->after_backward_node) net->after_backward_node(net->after_backward_ctx, i);
    }
    /* flattens of the input gathered their consumers' gradients in the input node's own buffer:
     * once, however many flattens read it */
    if (dx_input && nodes[0].grad_held)
        be->axpy(dg_node_numel(&nodes[0], n), 1.0f, nodes[0].dy, dx_input);
}
