/* tests/tool_net_walk.c — a driver for test_net_walk_torch.py: builds a small net holding every
 * node kind (conv with and without bias, batch norm, relu, max and average pool, a residual add
 * whose input also feeds a conv, flatten, dropout, linear), runs one forward/loss/backward in the
 * given mode, and writes the parameters, input, dropout mask, loss, every gradient and the input
 * gradient to a safetensors file for PyTorch to redo.   usage: tool_net_walk MODE OUT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "host/net.h"
#include "host/safetensors.h"

enum { N = 3, C = 2, H = 9, W = 9, CLASSES = 5 };

static dg_net *build(int *dropout_node) {
    dg_net *net = dg_net_new("walk", C, H, W, CLASSES);
    int c1 = dg_net_conv(net, "conv1", 0, 4, 3, 1, 1, 1);
    int b1 = dg_net_bn(net, "bn1", c1);
    int r1 = dg_net_relu(net, b1);
    int p1 = dg_net_maxpool(net, r1, 3, 2, 1);                  /* 4×5×5 */
    int c2 = dg_net_conv(net, "block.conv", p1, 4, 3, 1, 1, 0); /* p1 feeds this conv and the add */
    int b2 = dg_net_bn(net, "block.bn", c2);
    int add = dg_net_add(net, b2, p1);
    int r2 = dg_net_relu(net, add);
    int ap = dg_net_avgpool(net, r2, 2, 1); /* 4×4×4 */
    int fl = dg_net_flatten(net, ap);
    *dropout_node = dg_net_dropout(net, fl, 0.25f);
    int l1 = dg_net_linear(net, "fc1", *dropout_node, 7, 1);
    int r3 = dg_net_relu(net, l1);
    dg_net_linear(net, "fc2", r3, CLASSES, 1);
    return net;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: tool_net_walk MODE OUT\n");
        return 2;
    }
    int mode = atoi(argv[1]), drop = -1;
    static float input[N * C * H * W], dx[N * C * H * W];
    int32_t labels[N] = {1, 4, 2};
    dg_test_fill(input, N * C * H * W, 7, -1.0f, 1.0f);
    dg_net *net = build(&drop);
    if (!net || dg_net_setup(net, dg_backend_cpu(), N) != 0) return 1;
    float *params = malloc(sizeof(float) * net->n_param_floats);
    dg_net_init_host(net, 11, params);
    for (int i = 0; i < net->n_params; i++) /* non-trivial γ, β and running statistics */
        if (strstr(net->params[i].name, "bn"))
            dg_test_fill(params + net->params[i].offset, net->params[i].numel, 100 + (uint64_t)i, 0.5f, 1.5f);
    memcpy(net->param_arena, params, sizeof(float) * net->n_param_floats);
    memcpy(net->labels, labels, sizeof labels);
    net->dropout_seed = 1234;
    dg_net_zero_grad(net);
    dg_net_forward(net, input, N, mode);
    float loss = (float)dg_net_loss(net, N);
    dg_net_backward(net, N, dx);

    const dg_node *dn = &net->nodes[drop];
    float *mask = malloc(sizeof(float) * N * dn->c);
    for (int i = 0; i < N * dn->c; i++) mask[i] = (mode & DG_MODE_DROPOUT) ? dn->mask[i] : 1.0f;
    int64_t labels64[N] = {1, 4, 2};
    dg_st_entry e[2 * 32 + 5];
    char (*grad_names)[DG_NAME_MAX + 8] = malloc(sizeof *grad_names * (size_t)net->n_params);
    int k = 0;
    for (int i = 0; i < net->n_params; i++) {
        const dg_param *p = &net->params[i];
        snprintf(grad_names[i], sizeof grad_names[i], "grad.%s", p->name);
        e[k] = (dg_st_entry){.name = p->name, .dtype = DG_ST_F32, .ndim = p->ndim, .data = params + p->offset};
        e[k + 1] = (dg_st_entry){.name = grad_names[i], .dtype = DG_ST_F32, .ndim = p->ndim,
                                 .data = net->grad_arena + p->offset};
        for (int d = 0; d < p->ndim; d++) e[k].shape[d] = e[k + 1].shape[d] = p->shape[d];
        k += 2;
    }
    e[k++] = (dg_st_entry){.name = "input", .dtype = DG_ST_F32, .ndim = 4, .shape = {N, C, H, W}, .data = input};
    e[k++] = (dg_st_entry){.name = "input.grad", .dtype = DG_ST_F32, .ndim = 4, .shape = {N, C, H, W}, .data = dx};
    e[k++] = (dg_st_entry){.name = "mask", .dtype = DG_ST_F32, .ndim = 2, .shape = {N, dn->c}, .data = mask};
    e[k++] = (dg_st_entry){.name = "labels", .dtype = DG_ST_I64, .ndim = 1, .shape = {N}, .data = labels64};
    e[k++] = (dg_st_entry){.name = "loss", .dtype = DG_ST_F32, .ndim = 0, .data = &loss};
    char err[512];
    int rc = dg_st_write(argv[2], e, k, NULL, NULL, 0, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    free(params);
    free(mask);
    free(grad_names);
    dg_net_free(net);
    return rc ? 1 : 0;
}
