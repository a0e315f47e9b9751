/* tests/test_nets.c — the net registry and builders, structure only (no backend, no memory on a
 * device): every name builds, trainable and state counts equal PyTorch's, output shapes, a few
 * names and shapes, and bad names and shapes fail with a message. The Python oracle
 * (test_nets_torch.py) compares every name, shape and gradient with PyTorch. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "nets/registry.h"

/* Counts printed by PyTorch 1.13 / torchvision 0.14 with `python3 tests/torch_nets.py` (and the same
 * module's build() for the non-default class counts): trainable = sum(p.numel() for p in
 * m.parameters()); state = the state dict's numel less num_batches_tracked; tensors = the state dict's
 * entries less num_batches_tracked. */
typedef struct expect {
    const char *name;
    int classes, c, h, w;
    size_t trainable, state;
    int tensors; /* 0: not checked */
} expect;

static const expect expected[] = {
    {"lenet5", 10, 1, 28, 28, 61706, 61706, 10},
    {"lenet5", 3, 1, 28, 28, 61111, 61111, 0},
    {"wrn-10-4", 10, 3, 32, 32, 1198810, 1200634, 40},
    {"wrn-16-4", 10, 3, 32, 32, 2748890, 2752506, 70},
    {"wrn-16-8", 10, 3, 32, 32, 10961370, 10968570, 0},
    {"wrn-22-1", 100, 3, 32, 32, 278132, 279508, 0},
    {"wrn-28-10", 10, 3, 32, 32, 36479194, 36497146, 130},
    {"vgg16-cifar", 10, 3, 32, 32, 14728266, 14736714, 80},
    {"resnet18-cifar", 10, 3, 32, 32, 11173962, 11183562, 102},
    {"vgg16", 1000, 3, 224, 224, 138357544, 138357544, 32},
    {"vgg16", 2, 3, 224, 224, 134268738, 134268738, 0},
    {"vgg16", 1000, 3, 448, 448, 138357544, 138357544, 32}, /* adaptive pool as a 2×2 average */
    {"resnet18", 1000, 3, 224, 224, 11689512, 11699112, 102},
    {"resnet18", 10, 3, 224, 224, 11181642, 11191242, 0},
};

static size_t state_count(const dg_net *net) {
    size_t total = 0;
    for (int i = 0; i < net->n_params; i++) total += net->params[i].numel;
    return total;
}

/* The parameter `name` exists with this shape (ndim entries). */
static int has_param(const dg_net *net, const char *name, int ndim, const int *shape) {
    int i = dg_net_find_param(net, name);
    if (i < 0 || net->params[i].ndim != ndim) return 0;
    for (int d = 0; d < ndim; d++)
        if (net->params[i].shape[d] != shape[d]) return 0;
    return 1;
}

static void check_counts(void) {
    char err[256];
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const expect *e = &expected[i];
        dg_net *net = dg_net_create(e->name, e->classes, e->c, e->h, e->w, err, sizeof err);
        CHECK(net != NULL, "%s: %s", e->name, err);
        if (!net) continue;
        CHECK(dg_net_trainable_count(net) == e->trainable, "%s/%d: trainable %zu, PyTorch %zu", e->name, e->classes,
              dg_net_trainable_count(net), e->trainable);
        CHECK(state_count(net) == e->state, "%s/%d: state %zu, PyTorch %zu", e->name, e->classes, state_count(net),
              e->state);
        if (e->tensors)
            CHECK(net->n_params == e->tensors, "%s: %d tensors, PyTorch %d", e->name, net->n_params, e->tensors);
        const dg_node *out = &net->nodes[dg_net_output(net)];
        CHECK(out->kind == DG_NODE_LINEAR && out->c == e->classes && out->h == 1 && out->w == 1,
              "%s: output node kind %d shape %dx%dx%d", e->name, (int)out->kind, out->c, out->h, out->w);
        CHECK(net->in_c == e->c && net->in_h == e->h && net->in_w == e->w && net->classes == e->classes,
              "%s: net shape fields", e->name);
        /* every node reads earlier nodes only */
        int topo = 1;
        for (int n = 1; n < net->n_nodes; n++)
            if (net->nodes[n].in0 < 0 || net->nodes[n].in0 >= n || net->nodes[n].in1 >= n) topo = 0;
        CHECK(topo, "%s: node list is not in topological order", e->name);
        /* names are unique */
        int unique = 1;
        for (int a = 0; a < net->n_params && unique; a++)
            for (int b = a + 1; b < net->n_params; b++)
                if (strcmp(net->params[a].name, net->params[b].name) == 0) {
                    unique = 0;
                    break;
                }
        CHECK(unique, "%s: duplicate parameter names", e->name);
        dg_net_free(net);
    }
}

static void check_names(void) {
    char err[256];
    dg_net *net = dg_net_create("wrn-10-4", 10, 3, 32, 32, err, sizeof err);
    CHECK(net != NULL, "wrn-10-4: %s", err);
    if (net) {
        /* the paper's conv 1..4 (see nets/wrn.c) */
        CHECK(has_param(net, "conv1.weight", 4, (int[]){16, 3, 3, 3}), "wrn-10-4 conv1");
        CHECK(has_param(net, "block1.layer.0.conv2.weight", 4, (int[]){64, 64, 3, 3}), "wrn-10-4 conv 2");
        CHECK(has_param(net, "block2.layer.0.conv2.weight", 4, (int[]){128, 128, 3, 3}), "wrn-10-4 conv 3");
        CHECK(has_param(net, "block3.layer.0.conv2.weight", 4, (int[]){256, 256, 3, 3}), "wrn-10-4 conv 4");
        CHECK(has_param(net, "block1.layer.0.convShortcut.weight", 4, (int[]){64, 16, 1, 1}), "wrn-10-4 shortcut");
        CHECK(has_param(net, "block1.layer.0.bn1.running_var", 1, (int[]){16}), "wrn-10-4 bn1");
        CHECK(has_param(net, "bn1.weight", 1, (int[]){256}), "wrn-10-4 final bn");
        CHECK(has_param(net, "fc.weight", 2, (int[]){10, 256}) && has_param(net, "fc.bias", 1, (int[]){10}), "wrn fc");
        CHECK(dg_net_find_param(net, "conv1.bias") < 0, "wrn convolutions are bias-free");
        CHECK(strcmp(net->params[0].name, "conv1.weight") == 0 &&
                  strcmp(net->params[1].name, "block1.layer.0.bn1.weight") == 0,
              "wrn order: %s, %s", net->params[0].name, net->params[1].name);
        dg_net_free(net);
    }
    net = dg_net_create("wrn-16-1", 10, 3, 32, 32, err, sizeof err);
    CHECK(net != NULL, "wrn-16-1: %s", err);
    if (net) {
        CHECK(dg_net_find_param(net, "block1.layer.0.convShortcut.weight") < 0, "wrn-16-1: 16 → 16, no shortcut");
        CHECK(has_param(net, "block2.layer.0.convShortcut.weight", 4, (int[]){32, 16, 1, 1}), "wrn-16-1 shortcut");
        CHECK(dg_net_find_param(net, "block2.layer.1.convShortcut.weight") < 0, "wrn-16-1 block2.layer.1");
        dg_net_free(net);
    }
    net = dg_net_create("vgg16", 1000, 3, 224, 224, err, sizeof err);
    CHECK(net != NULL, "vgg16: %s", err);
    if (net) {
        CHECK(has_param(net, "features.0.weight", 4, (int[]){64, 3, 3, 3}), "vgg16 features.0");
        CHECK(has_param(net, "features.28.bias", 1, (int[]){512}), "vgg16 features.28");
        CHECK(has_param(net, "classifier.0.weight", 2, (int[]){4096, 25088}), "vgg16 classifier.0");
        CHECK(has_param(net, "classifier.6.weight", 2, (int[]){1000, 4096}), "vgg16 classifier.6");
        int dropouts = 0;
        for (int i = 0; i < net->n_nodes; i++) dropouts += net->nodes[i].kind == DG_NODE_DROPOUT;
        CHECK(dropouts == 2, "vgg16: %d dropout nodes", dropouts);
        dg_net_free(net);
    }
    net = dg_net_create("vgg16-cifar", 10, 3, 32, 32, err, sizeof err);
    CHECK(net != NULL, "vgg16-cifar: %s", err);
    if (net) {
        CHECK(has_param(net, "features.1.running_mean", 1, (int[]){64}), "vgg16-cifar features.1 (bn)");
        CHECK(has_param(net, "features.40.weight", 4, (int[]){512, 512, 3, 3}), "vgg16-cifar features.40");
        CHECK(has_param(net, "features.41.running_var", 1, (int[]){512}), "vgg16-cifar features.41");
        CHECK(has_param(net, "classifier.weight", 2, (int[]){10, 512}), "vgg16-cifar classifier");
        dg_net_free(net);
    }
    net = dg_net_create("resnet18", 1000, 3, 224, 224, err, sizeof err);
    CHECK(net != NULL, "resnet18: %s", err);
    if (net) {
        CHECK(has_param(net, "conv1.weight", 4, (int[]){64, 3, 7, 7}), "resnet18 conv1");
        CHECK(dg_net_find_param(net, "layer1.0.downsample.0.weight") < 0, "resnet18 layer1 has no downsample");
        CHECK(has_param(net, "layer2.0.downsample.0.weight", 4, (int[]){128, 64, 1, 1}), "resnet18 downsample.0");
        CHECK(has_param(net, "layer4.1.bn2.running_mean", 1, (int[]){512}), "resnet18 layer4.1.bn2");
        CHECK(has_param(net, "fc.weight", 2, (int[]){1000, 512}), "resnet18 fc");
        int pools = 0;
        for (int i = 0; i < net->n_nodes; i++) pools += net->nodes[i].kind == DG_NODE_MAXPOOL;
        CHECK(pools == 1, "resnet18: %d max pools", pools);
        dg_net_free(net);
    }
    net = dg_net_create("resnet18-cifar", 10, 3, 32, 32, err, sizeof err);
    CHECK(net != NULL, "resnet18-cifar: %s", err);
    if (net) {
        CHECK(has_param(net, "conv1.weight", 4, (int[]){64, 3, 3, 3}), "resnet18-cifar conv1");
        int pools = 0;
        for (int i = 0; i < net->n_nodes; i++) pools += net->nodes[i].kind == DG_NODE_MAXPOOL;
        CHECK(pools == 0, "resnet18-cifar: %d max pools", pools);
        /* layer4 runs on 4×4 maps */
        int avg = -1;
        for (int i = 0; i < net->n_nodes; i++)
            if (net->nodes[i].kind == DG_NODE_AVGPOOL) avg = i;
        CHECK(avg > 0 && net->nodes[avg].k == 4 && net->nodes[avg].c == 512, "resnet18-cifar global pool");
        dg_net_free(net);
    }
}

static void check_failures(void) {
    struct {
        const char *name;
        int classes, c, h, w;
    } bad[] = {
        {"wrn-15-4", 10, 3, 32, 32}, {"wrn-16-0", 10, 3, 32, 32}, {"wrn-4-4", 10, 3, 32, 32},
        {"wrn-16-4x", 10, 3, 32, 32}, {"wrn--16-4", 10, 3, 32, 32}, {"wrn-16", 10, 3, 32, 32},
        {"wrn-99999999999-1", 10, 3, 32, 32}, {"vgg16", 1000, 3, 100, 100}, {"vgg16", 1000, 3, 32, 32},
        {"vgg16", 1000, 3, 224, 448}, {"nosuch", 10, 3, 32, 32}, {"", 10, 3, 32, 32},
        {"lenet5", 1, 1, 28, 28}, {"lenet5", 10, 1, 8, 8}, {"lenet5", 10, 0, 28, 28},
        {"vgg16-cifar", 10, 3, 16, 16}, {"resnet18", 10, 3, -1, 224}, {"resnet18", 10, 3, 224, 160},
        {"LENET5", 10, 1, 28, 28},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "untouched";
        dg_net *net = dg_net_create(bad[i].name, bad[i].classes, bad[i].c, bad[i].h, bad[i].w, err, sizeof err);
        CHECK(net == NULL, "'%s' %d %dx%dx%d should fail", bad[i].name, bad[i].classes, bad[i].c, bad[i].h, bad[i].w);
        CHECK(strcmp(err, "untouched") != 0 && err[0] != '\0', "'%s': no message", bad[i].name);
        if (!net) printf("  expected failure: %s\n", err);
        dg_net_free(net);
    }
    CHECK(dg_net_create(NULL, 10, 1, 28, 28, NULL, 0) == NULL, "NULL spec");
}

static void check_defaults(void) {
    int c, h, w, k;
    CHECK(dg_net_default_shape("lenet5", &c, &h, &w, &k) == 0 && c == 1 && h == 28 && w == 28 && k == 10, "lenet5");
    CHECK(dg_net_default_shape("wrn-28-10", &c, &h, &w, &k) == 0 && c == 3 && h == 32 && w == 32 && k == 10, "wrn");
    CHECK(dg_net_default_shape("vgg16-cifar", &c, &h, &w, &k) == 0 && c == 3 && h == 32 && k == 10, "vgg16-cifar");
    CHECK(dg_net_default_shape("resnet18-cifar", &c, &h, &w, &k) == 0 && h == 32 && k == 10, "resnet18-cifar");
    CHECK(dg_net_default_shape("vgg16", &c, &h, &w, &k) == 0 && c == 3 && h == 224 && w == 224 && k == 1000, "vgg16");
    CHECK(dg_net_default_shape("resnet18", &c, &h, &w, &k) == 0 && h == 224 && k == 1000, "resnet18");
    CHECK(dg_net_default_shape("nosuch", &c, &h, &w, &k) == -1, "unknown");
    CHECK(dg_net_default_shape("wrn-x-1", &c, &h, &w, &k) == -1, "bad wrn");
    /* the listed names are the ones that build, each with its natural shape */
    int n_known = 0;
    for (const char *name; (name = dg_net_known(n_known, NULL, &c, &h, &w, &k)); n_known++) {
        int c2, h2, w2, k2;
        const char *spec = strcmp(name, "wrn-D-K") == 0 ? "wrn-16-4" : name;
        CHECK(dg_net_default_shape(spec, &c2, &h2, &w2, &k2) == 0 && c2 == c && h2 == h && w2 == w && k2 == k,
              "dg_net_known shape of %s", name);
    }
    CHECK(n_known == 6 && dg_net_known(-1, NULL, NULL, NULL, NULL, NULL) == NULL, "dg_net_known count %d", n_known);
    CHECK(dg_net_default_shape("wrn-D-K", &c, &h, &w, &k) == -1, "the family's pattern is not a name");
    /* every natural shape builds */
    const char *names[] = {"lenet5", "wrn-16-4", "vgg16-cifar", "resnet18-cifar", "vgg16", "resnet18"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char err[256];
        dg_net_default_shape(names[i], &c, &h, &w, &k);
        dg_net *net = dg_net_create(names[i], k, c, h, w, err, sizeof err);
        CHECK(net != NULL, "%s at its default shape: %s", names[i], err);
        dg_net_free(net);
    }
}

int main(void) {
    check_counts();
    check_names();
    check_failures();
    check_defaults();
    return dg_test_done("test_nets");
}
