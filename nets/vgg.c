/* nets/vgg.c — VGG-16 twice: vgg16-cifar (batch norm, one linear classifier, as kuangliu/pytorch-cifar)
 * and vgg16 (torchvision's ImageNet VGG-16 without batch norm, its names exactly).
 * Only the dg_net_* builder API; no device memory. */
#include "registry.h"

#include <stdio.h>

#define POOL 0
static const int vgg16_cfg[] = {64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL,
                                512, 512, 512, POOL, 512, 512, 512, POOL};
enum { VGG16_CFG_LEN = sizeof vgg16_cfg / sizeof vgg16_cfg[0] };

/* The features stack: conv 3×3 pad 1 (bias) [+ bn] + relu per number, max pool 2 per POOL. Module
 * names are features.N with N the nn.Sequential index, counting every module (conv, bn, relu, pool).
 * Returns the last node or -1. */
static int features(dg_net *net, int batch_norm) {
    int x = 0, index = 0;
    char name[DG_NAME_MAX];
    for (int i = 0; i < VGG16_CFG_LEN; i++) {
        if (vgg16_cfg[i] == POOL) {
            if ((x = dg_net_maxpool(net, x, 2, 2, 0)) < 0) return -1;
            index++;
            continue;
        }
        snprintf(name, sizeof name, "features.%d", index++);
        if ((x = dg_net_conv(net, name, x, vgg16_cfg[i], 3, 1, 1, 1)) < 0) return -1;
        if (batch_norm) {
            snprintf(name, sizeof name, "features.%d", index++);
            if ((x = dg_net_bn(net, name, x)) < 0) return -1;
        }
        if ((x = dg_net_relu(net, x)) < 0) return -1;
        index++;
    }
    return x;
}

dg_net *dg_build_vgg16_cifar(const char *spec, int classes, int c, int h, int w, char *err, size_t err_len) {
    dg_net *net = dg_net_new(spec, c, h, w, classes);
    if (!net) return dg_nets_fail(NULL, err, err_len, "%s: out of memory", spec);
    /* kuangliu's trailing AvgPool2d(1, 1) is the identity and holds no parameters: no node. The
     * classifier reads the flattened features (512 at 32×32, the size it was written for). */
    int x = features(net, 1);
    if (x < 0 || (x = dg_net_flatten(net, x)) < 0 || (x = dg_net_linear(net, "classifier", x, classes, 1)) < 0)
        return dg_nets_fail(net, err, err_len, "%s: a %dx%dx%d input is too small (needs at least 32x32)", spec, c,
                            h, w);
    return net;
}

dg_net *dg_build_vgg16(const char *spec, int classes, int c, int h, int w, char *err, size_t err_len) {
    dg_net *net = dg_net_new(spec, c, h, w, classes);
    if (!net) return dg_nets_fail(NULL, err, err_len, "%s: out of memory", spec);
    int x = features(net, 0);
    if (x < 0)
        return dg_nets_fail(net, err, err_len, "%s: a %dx%dx%d input is too small (needs at least 32x32)", spec, c,
                            h, w);
    /* AdaptiveAvgPool2d(7): the identity on a 7×7 map, an exact k×k average on a 7k×7k map; other
     * sizes would need overlapping or uneven windows, which this engine does not have. */
    int fh = net->nodes[x].h, fw = net->nodes[x].w;
    if (fh != fw || fh % 7 != 0)
        return dg_nets_fail(net, err, err_len,
                            "%s: a %dx%dx%d input gives a %dx%d feature map; the adaptive 7x7 pool needs a square "
                            "multiple of 7 (input 224x224, 448x448, ...)",
                            spec, c, h, w, fh, fw);
    if (fh > 7 && (x = dg_net_avgpool(net, x, fh / 7, fh / 7)) < 0)
        return dg_nets_fail(net, err, err_len, "%s: cannot pool the %dx%d feature map to 7x7", spec, fh, fw);
    if ((x = dg_net_flatten(net, x)) < 0 || (x = dg_net_linear(net, "classifier.0", x, 4096, 1)) < 0 ||
        (x = dg_net_relu(net, x)) < 0 || (x = dg_net_dropout(net, x, 0.5f)) < 0 ||
        (x = dg_net_linear(net, "classifier.3", x, 4096, 1)) < 0 || (x = dg_net_relu(net, x)) < 0 ||
        (x = dg_net_dropout(net, x, 0.5f)) < 0 || (x = dg_net_linear(net, "classifier.6", x, classes, 1)) < 0)
        return dg_nets_fail(net, err, err_len, "%s: cannot build the classifier", spec);
    return net;
}
