/* host/net.h — a net is a list of nodes in topological order plus a table of named parameters.
 * Forward, backward (and later relevance) are walks over the one list. Builders in nets/ add
 * nodes with the dg_net_* calls below; host code never touches device memory except through the
 * backend's op table. */
#ifndef DG_NET_H
#define DG_NET_H

#include <stddef.h>
#include <stdint.h>
#include "../kernels/backend.h"

#define DG_NAME_MAX 96

typedef enum dg_node_kind {
    DG_NODE_INPUT,
    DG_NODE_CONV,
    DG_NODE_BN,
    DG_NODE_RELU,
    DG_NODE_MAXPOOL,
    DG_NODE_AVGPOOL,
    DG_NODE_LINEAR,
    DG_NODE_ADD,
    DG_NODE_FLATTEN,
    DG_NODE_DROPOUT,
} dg_node_kind;

typedef enum dg_param_role {
    DG_PARAM_WEIGHT, /* conv/linear weight, bn gamma */
    DG_PARAM_BIAS,   /* conv/linear bias, bn beta */
    DG_PARAM_RUNNING /* bn running_mean / running_var: state, not trained */
} dg_param_role;

typedef struct dg_param {
    char name[DG_NAME_MAX]; /* PyTorch state-dict name, e.g. "layer1.0.conv1.weight" */
    int ndim;
    int shape[4];
    size_t numel;
    size_t offset; /* in floats, inside the net's parameter arena (and grad arena) */
    dg_param_role role;
    int node;      /* owning node */
} dg_param;

typedef struct dg_node {
    dg_node_kind kind;
    char name[DG_NAME_MAX]; /* module name ("conv1", "features.0"); "" for stateless nodes */
    int in0, in1;           /* input nodes, -1 when absent */
    int c, h, w;            /* output shape per sample (h = w = 1 after flatten/linear) */
    /* attributes */
    int out;      /* conv filters / linear out features */
    int k, stride, pad;
    int has_bias;
    float p;               /* dropout probability */
    float eps, momentum;   /* batch norm */
    int pw, pb, pm, pv;    /* parameter indices: weight|gamma, bias|beta, running_mean, running_var */
    /* device buffers, set by dg_net_setup; y and dy are [batch, c, h, w] */
    float *y, *dy;
    int32_t *argmax;            /* max pool */
    float *mask;                /* dropout */
    float *save_mean, *save_invstd; /* batch norm */
    int grad_held;              /* during dg_net_backward: whether dy holds a contribution yet */
} dg_node;

typedef struct dg_net {
    char name[64];
    int in_c, in_h, in_w, classes;
    dg_node *nodes;
    int n_nodes, cap_nodes;
    dg_param *params;
    int n_params, cap_params;
    size_t n_param_floats;
    char error[192];        /* why the last dg_net_* builder call returned -1 ("" when none did) */
    /* NULL, or NULL-terminated pairs {word, word of this net's names}: another PyTorch code of the
     * same function whose state dicts name a module so (kuangliu's CIFAR ResNet: "shortcut" for
     * "downsample", "linear" for "fc"); dg_model_load reads such a file under these names */
    const char *const *file_aliases;

    /* runtime, set by dg_net_setup */
    const dg_backend *be;
    int batch;              /* the largest batch the activation buffers hold */
    float *param_arena;     /* all parameters and running statistics, one allocation */
    float *grad_arena;      /* same layout; running statistics' slots stay zero */
    void *act_arena;        /* every node's y, dy and saved state, one allocation */
    size_t grad_begin, grad_end; /* byte range of all activation gradients inside act_arena */
    void *ws;               /* one convolution workspace shared by all layers */
    size_t ws_bytes;
    int32_t *labels;        /* [batch] device labels for the loss */
    float *probs, *loss;    /* [batch, classes], [batch] */
    uint64_t dropout_seed;  /* stream for dropout masks; set per step by the trainer */
    long dropout_first;     /* the batch's first image's place in the global batch (its rank's share's start):
                               masks are keyed by global position, so N ranks draw the one-process masks */
    int last_mode;          /* the mode of the last forward, which backward follows */
    int frozen;             /* backward computes activation and input gradients only, no parameter
                               gradients (C&W fingerprints, attacks on a fixed model); eval mode only */
    /* called after each node's backward with its index, or NULL: data-parallel training starts the
     * all-reduce of gradient buckets that are final from here (host/dist_buckets.h) */
    void (*after_backward_node)(void *ctx, int node);
    void *after_backward_ctx;
} dg_net;

/* ---- building (nets/ uses these) ---- */
dg_net *dg_net_new(const char *name, int in_c, int in_h, int in_w, int classes);
void dg_net_free(dg_net *net);
/* Each returns the new node's index, or -1 on a bad shape, with the reason in net->error. */
int dg_net_conv(dg_net *net, const char *name, int in, int out, int k, int stride, int pad, int bias);
int dg_net_bn(dg_net *net, const char *name, int in);
int dg_net_relu(dg_net *net, int in);
int dg_net_maxpool(dg_net *net, int in, int k, int stride, int pad);
int dg_net_avgpool(dg_net *net, int in, int k, int stride); /* k = 0: global average */
int dg_net_linear(dg_net *net, const char *name, int in, int out, int bias);
int dg_net_add(dg_net *net, int a, int b);
int dg_net_flatten(dg_net *net, int in);
int dg_net_dropout(dg_net *net, int in, float p);
/* The logits are the last node's output. */
static inline int dg_net_output(const dg_net *net) { return net->n_nodes - 1; }

/* ---- parameters ---- */
int dg_net_find_param(const dg_net *net, const char *name); /* index or -1 */
size_t dg_net_trainable_count(const dg_net *net);            /* PyTorch's sum(p.numel() for p in parameters()) */
/* PyTorch's default initialisation (kaiming-uniform a=√5 for conv/linear weights, uniform ±1/√fan_in
 * biases, bn γ=1 β=0, running mean 0 var 1), drawn from seed, written to host memory [n_param_floats]. */
void dg_net_init_host(const dg_net *net, uint64_t seed, float *host_params);

/* ---- geometry ---- */
/* The conv or pool descriptor of a node for a batch of n (its input is the node's in0). */
dg_conv_desc dg_net_conv_desc(const dg_net *net, const dg_node *node, int n);
dg_pool_desc dg_net_pool_desc(const dg_net *net, const dg_node *node, int n);
/* Floats in a node's output (or gradient) for a batch. */
size_t dg_node_numel(const dg_node *node, int batch);
/* Bytes of activation buffers (outputs, gradients, saved state) dg_net_setup would allocate for
 * a batch (to choose a batch under a memory budget). */
size_t dg_net_activation_bytes(dg_net *net, int batch);

/* ---- running ---- */
/* Allocate arenas on backend be for batches of up to `batch`. Returns 0 or -1. */
int dg_net_setup(dg_net *net, const dg_backend *be, int batch);
/* What a forward pass does with the layers whose behaviour depends on the phase. */
enum {
    DG_MODE_EVAL = 0,          /* batch norm uses running statistics, dropout is the identity */
    DG_MODE_BN_BATCH = 1,      /* batch norm uses (and updates the running) batch statistics */
    DG_MODE_DROPOUT = 2,       /* dropout masks on */
    DG_MODE_TRAIN = DG_MODE_BN_BATCH | DG_MODE_DROPOUT,
};
/* Forward n ≤ batch samples from device input x [n, in_c, in_h, in_w] (x may be the input node's
 * own buffer, net->nodes[0].y, to save a copy). */
void dg_net_forward(dg_net *net, const float *x, int n, int mode);
/* Loss of the last forward: uploads nothing; labels must already be in net->labels.
 * Writes dlogits into the output node's dy scaled by 1/n (mean loss), returns the mean loss
 * (computed on the host in double from the per-sample losses). */
double dg_net_loss(dg_net *net, int n);
/* The same with dlogits scaled by grad_scale instead of 1/n (data parallelism: 1/global batch, so
 * that summing the ranks' gradients gives the global batch's mean) and the targets smoothed
 * (label smoothing ε: (1 − ε)·onehot + ε/k; 0 for plain cross-entropy); returns the SUM of the n
 * per-sample losses (double, on the host). */
double dg_net_loss_sum(dg_net *net, int n, float grad_scale, float smoothing);
/* Zero every parameter gradient (not those of a frozen net), which backward adds to. */
void dg_net_zero_grad(dg_net *net);
/* Backward walk from the output node's dy (written by the loss or the caller). The activation
 * gradients need no zeroing: each is written by its first contribution. dx_input: where the
 * input gradient goes (device, added to), or NULL to skip it. */
void dg_net_backward(dg_net *net, int n, float *dx_input);

#endif
