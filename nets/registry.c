/* nets/registry.c — the table of net names: parsing a spec ("wrn-16-4"), checking the input shape
 * and class count, dispatching to the family's builder, natural shapes, the --help list. Only the
 * dg_net_* builder API is used; no device memory, no files. */
#include "registry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sanity limits: far above any real use, low enough that shapes and counts cannot overflow int. */
enum { MAX_CLASSES = 1 << 20, MAX_SIDE = 1 << 14, MAX_CHANNELS = 4096, MAX_WRN_DEPTH = 1000, MAX_WRN_WIDTH = 64 };

dg_net *dg_nets_fail(dg_net *net, char *err, size_t err_len, const char *fmt, ...) {
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        int used = vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
        /* the builder call that failed said why */
        if (net && net->error[0] && used >= 0 && (size_t)used < err_len)
            snprintf(err + used, err_len - (size_t)used, " (%s)", net->error);
    }
    dg_net_free(net);
    return NULL;
}

dg_net *dg_nets_pool_fc_head(dg_net *net, int x, int classes, const char *spec, int c, int h, int w, char *err,
                             size_t err_len) {
    if (net->nodes[x].h != net->nodes[x].w)
        return dg_nets_fail(net, err, err_len, "%s: a %dx%dx%d input gives a non-square %dx%d final map", spec, c,
                            h, w, net->nodes[x].h, net->nodes[x].w);
    if ((x = dg_net_avgpool(net, x, 0, 0)) < 0 || (x = dg_net_flatten(net, x)) < 0 ||
        dg_net_linear(net, "fc", x, classes, 1) < 0)
        return dg_nets_fail(net, err, err_len, "%s: does not fit a %dx%dx%d input", spec, c, h, w);
    return net;
}

/* A non-empty run of decimal digits (no sign, no spaces) at *s; advances *s. -1 when none or too big. */
static int parse_uint(const char **s) {
    const char *p = *s;
    long v = 0;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        if (v > 1000000) return -1;
        p++;
    }
    *s = p;
    return (int)v;
}

/* "wrn-D-K" → depth, width; 0 when spec has that form (values unchecked), -1 otherwise. */
static int parse_wrn(const char *spec, int *depth, int *width) {
    if (strncmp(spec, "wrn-", 4) != 0) return -1;
    const char *p = spec + 4;
    int d = parse_uint(&p);
    if (d < 0 || *p != '-') return -1;
    p++;
    int k = parse_uint(&p);
    if (k < 0 || *p != '\0') return -1;
    *depth = d;
    *width = k;
    return 0;
}

typedef struct family {
    const char *name; /* "wrn-D-K" stands for every depth and width */
    int c, h, w, classes; /* natural input and class count */
    const char *about;
} family;

static const family families[] = {
    {"lenet5", 1, 28, 28, 10, "LeNet-5 (conv 6@5x5 pad 2, conv 16@5x5, fc 120-84-K); MNIST"},
    {"wrn-D-K", 3, 32, 32, 10,
     "Wide ResNet depth D, width K ((D-4)%6 == 0, D >= 10), pre-activation, as xternalz/WideResNet-pytorch "
     "(wrn-10-4: ActiveGuard/Uchida host)"},
    {"vgg16-cifar", 3, 32, 32, 10, "VGG-16 with batch norm and one linear classifier (kuangliu/pytorch-cifar)"},
    {"resnet18-cifar", 3, 32, 32, 10, "torchvision ResNet-18 with a 3x3 stride-1 stem and no max pool"},
    {"vgg16", 3, 224, 224, 1000, "torchvision VGG-16 (no batch norm, ImageNet names)"},
    {"resnet18", 3, 224, 224, 1000, "torchvision ResNet-18 (ImageNet names)"},
};
enum { N_FAMILIES = sizeof families / sizeof families[0], WRN_FAMILY = 1 };

const char *dg_net_known(int i, const char **about, int *c, int *h, int *w, int *classes) {
    if (i < 0 || i >= N_FAMILIES) return NULL;
    const family *f = &families[i];
    if (about) *about = f->about;
    if (c) *c = f->c;
    if (h) *h = f->h;
    if (w) *w = f->w;
    if (classes) *classes = f->classes;
    return f->name;
}

int dg_net_default_shape(const char *spec, int *in_c, int *in_h, int *in_w, int *classes) {
    if (!spec) return -1;
    int depth, width, i = 0;
    if (parse_wrn(spec, &depth, &width) == 0) {
        i = WRN_FAMILY;
    } else {
        while (i < N_FAMILIES && (i == WRN_FAMILY || strcmp(spec, families[i].name) != 0)) i++;
        if (i == N_FAMILIES) return -1;
    }
    dg_net_known(i, NULL, in_c, in_h, in_w, classes);
    return 0;
}

dg_net *dg_net_create(const char *spec, int classes, int in_c, int in_h, int in_w, char *err, size_t err_len) {
    if (err && err_len) err[0] = '\0';
    if (!spec || !*spec) return dg_nets_fail(NULL, err, err_len, "no net name given");
    int depth = 0, width = 0;
    int is_wrn = parse_wrn(spec, &depth, &width) == 0;
    if (!is_wrn && strncmp(spec, "wrn-", 4) == 0)
        return dg_nets_fail(NULL, err, err_len, "bad wide-resnet name '%.64s' (wrn-DEPTH-WIDTH, e.g. wrn-16-4)", spec);
    if (!is_wrn && dg_net_default_shape(spec, NULL, NULL, NULL, NULL) != 0)
        return dg_nets_fail(NULL, err, err_len, "unknown net '%.64s' (known: lenet5, wrn-D-K, vgg16-cifar, "
                            "resnet18-cifar, vgg16, resnet18)", spec);
    if (classes < 2 || classes > MAX_CLASSES)
        return dg_nets_fail(NULL, err, err_len, "%s: %d classes (need 2 to %d)", spec, classes, MAX_CLASSES);
    if (in_c < 1 || in_c > MAX_CHANNELS || in_h < 1 || in_h > MAX_SIDE || in_w < 1 || in_w > MAX_SIDE)
        return dg_nets_fail(NULL, err, err_len, "%s: bad input shape %dx%dx%d", spec, in_c, in_h, in_w);
    if (is_wrn) {
        if (depth < 10 || (depth - 4) % 6 != 0 || depth > MAX_WRN_DEPTH)
            return dg_nets_fail(NULL, err, err_len,
                                "%s: depth %d must be 10, 16, 22, ... ((depth-4) %% 6 == 0, 10 <= depth <= %d)",
                                spec, depth, MAX_WRN_DEPTH);
        if (width < 1 || width > MAX_WRN_WIDTH)
            return dg_nets_fail(NULL, err, err_len, "%s: width %d must be 1 to %d", spec, width, MAX_WRN_WIDTH);
        return dg_build_wrn(spec, depth, width, classes, in_c, in_h, in_w, err, err_len);
    }
    if (strcmp(spec, "lenet5") == 0) return dg_build_lenet5(spec, classes, in_c, in_h, in_w, err, err_len);
    if (strcmp(spec, "vgg16-cifar") == 0) return dg_build_vgg16_cifar(spec, classes, in_c, in_h, in_w, err, err_len);
    if (strcmp(spec, "vgg16") == 0) return dg_build_vgg16(spec, classes, in_c, in_h, in_w, err, err_len);
    if (strcmp(spec, "resnet18-cifar") == 0)
        return dg_build_resnet18(spec, 1, classes, in_c, in_h, in_w, err, err_len);
    return dg_build_resnet18(spec, 0, classes, in_c, in_h, in_w, err, err_len);
}
