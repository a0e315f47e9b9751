/* nets/resnet.c — ResNet-18 exactly as torchvision builds it (names conv1, bn1, layerL.B.conv1,
 * layerL.B.downsample.0/1, fc), with either the ImageNet stem (7×7 stride 2 + max pool) or the CIFAR
 * stem (3×3 stride 1, no max pool; same names). Only the dg_net_* builder API; no device memory. */
#include "registry.h"

#include <stdio.h>

/* torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + identity | downsample(x)).
 * Parameters in its registration order: conv1, bn1, conv2, bn2, downsample.0, downsample.1. */
static int basic_block(dg_net *net, const char *prefix, int x, int in_planes, int planes, int stride) {
    char name[DG_NAME_MAX];
#define NAME(suffix) (snprintf(name, sizeof name, "%s.%s", prefix, suffix), name)
    int y = dg_net_conv(net, NAME("conv1"), x, planes, 3, stride, 1, 0);
    if (y < 0 || (y = dg_net_bn(net, NAME("bn1"), y)) < 0 || (y = dg_net_relu(net, y)) < 0 ||
        (y = dg_net_conv(net, NAME("conv2"), y, planes, 3, 1, 1, 0)) < 0 || (y = dg_net_bn(net, NAME("bn2"), y)) < 0)
        return -1;
    int identity = x;
    if (stride != 1 || in_planes != planes) {
        if ((identity = dg_net_conv(net, NAME("downsample.0"), x, planes, 1, stride, 0, 0)) < 0 ||
            (identity = dg_net_bn(net, NAME("downsample.1"), identity)) < 0)
            return -1;
    }
#undef NAME
    /* out += identity */
    if ((y = dg_net_add(net, y, identity)) < 0) return -1;
    return dg_net_relu(net, y);
}

/* kuangliu/pytorch-cifar's ResNet18, the common CIFAR one: the same function as the CIFAR stem's
 * (3x3 stride-1 stem, bias-free convs, F.avg_pool2d(out, 4) over the 4x4 map, a biased linear),
 * its modules named shortcut.0/1 and linear where torchvision says downsample.0/1 and fc */
static const char *const kuangliu_names[] = {"shortcut", "downsample", "linear", "fc", NULL};

dg_net *dg_build_resnet18(const char *spec, int cifar_stem, int classes, int c, int h, int w, char *err,
                          size_t err_len) {
    dg_net *net = dg_net_new(spec, c, h, w, classes);
    if (!net) return dg_nets_fail(NULL, err, err_len, "%s: out of memory", spec);
    if (cifar_stem) net->file_aliases = kuangliu_names;
    int x = cifar_stem ? dg_net_conv(net, "conv1", 0, 64, 3, 1, 1, 0) : dg_net_conv(net, "conv1", 0, 64, 7, 2, 3, 0);
    if (x < 0 || (x = dg_net_bn(net, "bn1", x)) < 0 || (x = dg_net_relu(net, x)) < 0) goto too_small;
    if (!cifar_stem && (x = dg_net_maxpool(net, x, 3, 2, 1)) < 0) goto too_small;
    int in_planes = 64;
    for (int l = 0; l < 4; l++) {
        int planes = 64 << l;
        for (int b = 0; b < 2; b++) {
            char prefix[40]; /* short, so that prefix + "." + a suffix always fits DG_NAME_MAX */
            snprintf(prefix, sizeof prefix, "layer%d.%d", l + 1, b);
            x = basic_block(net, prefix, x, in_planes, planes, b == 0 && l > 0 ? 2 : 1);
            if (x < 0) goto too_small;
            in_planes = planes;
        }
    }
    /* AdaptiveAvgPool2d((1, 1)): a global average over a square map */
    return dg_nets_pool_fc_head(net, x, classes, spec, c, h, w, err, err_len);
too_small:
    return dg_nets_fail(net, err, err_len, "%s: does not fit a %dx%dx%d input", spec, c, h, w);
}
