/* nets/wrn.c — Wide ResNet wrn-D-K (Zagoruyko & Komodakis) for CIFAR, built as the most used PyTorch
 * version (xternalz/WideResNet-pytorch, dropout 0) so that its state dicts load by name.
 * Only the dg_net_* builder API; no device memory.
 *
 * Layout (N = (D-4)/6 blocks per group, widths 16, 16K, 32K, 64K, group strides 1, 2, 2):
 *   conv1 (3×3, 16, no bias)
 *   blockG.layer.i  G = 1..3, i = 0..N-1, a pre-activation basic block:
 *       o = relu(bn1(x)); y = conv2(relu(bn2(conv1(o))));   conv1 3×3 stride s, conv2 3×3 stride 1
 *       in == out channels: return x + y
 *       in != out channels: return convShortcut(o) + y      (1×1, stride s; reads relu(bn1(x)) too)
 *   bn1, relu, global average pool, fc (bias). All convolutions are bias-free.
 * Parameters appear in the module registration order of xternalz's BasicBlock: bn1, conv1, bn2,
 * conv2, convShortcut.
 *
 * The paper's "conv 1..4" (WRN's Table 1 group names, used by Uchida et al. "Embedding Watermarks
 * into Deep Neural Networks" with WRN N=1, k=4, i.e. wrn-10-4, and by ActiveGuard, which follows
 * Uchida's host network): conv 1 is the stem, conv 2..4 are the three groups. Uchida et al. embed
 * into the conv 2 group, into its second 3×3 convolution (their reference code, yu4u/dnn-watermark,
 * puts the regularizer on the second Convolution2D of the group's first block; the slides give
 * M = 3×3×64×64 = 36864 weights). We therefore map, for wrn-10-4:
 *   conv 1 → conv1.weight                    [16, 3, 3, 3]
 *   conv 2 → block1.layer.0.conv2.weight     [64, 64, 3, 3]    (the default watermark target)
 *   conv 3 → block2.layer.0.conv2.weight     [128, 128, 3, 3]
 *   conv 4 → block3.layer.0.conv2.weight     [256, 256, 3, 3]
 * (group G's tensor is block(G-1).layer.0.conv2.weight for any depth and width). */
#include "registry.h"

#include <stdio.h>

/* One pre-activation basic block; returns the add node or -1. */
static int basic_block(dg_net *net, const char *prefix, int x, int in_planes, int out_planes, int stride) {
    char name[DG_NAME_MAX];
    int equal = in_planes == out_planes;
#define NAME(suffix) (snprintf(name, sizeof name, "%s.%s", prefix, suffix), name)
    int o = dg_net_bn(net, NAME("bn1"), x);
    if (o < 0 || (o = dg_net_relu(net, o)) < 0) return -1;
    int y = dg_net_conv(net, NAME("conv1"), o, out_planes, 3, stride, 1, 0);
    if (y < 0 || (y = dg_net_bn(net, NAME("bn2"), y)) < 0 || (y = dg_net_relu(net, y)) < 0 ||
        (y = dg_net_conv(net, NAME("conv2"), y, out_planes, 3, 1, 1, 0)) < 0)
        return -1;
    int shortcut = x;
    if (!equal && (shortcut = dg_net_conv(net, NAME("convShortcut"), o, out_planes, 1, stride, 0, 0)) < 0) return -1;
#undef NAME
    /* torch.add(shortcut, y): the order of the operands does not change the sum */
    return dg_net_add(net, shortcut, y);
}

dg_net *dg_build_wrn(const char *spec, int depth, int width, int classes, int c, int h, int w, char *err,
                     size_t err_len) {
    int n = (depth - 4) / 6;
    int channels[4] = {16, 16 * width, 32 * width, 64 * width};
    int strides[3] = {1, 2, 2};
    dg_net *net = dg_net_new(spec, c, h, w, classes);
    if (!net) return dg_nets_fail(NULL, err, err_len, "%s: out of memory", spec);
    int x = dg_net_conv(net, "conv1", 0, channels[0], 3, 1, 1, 0);
    if (x < 0) goto too_small;
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < n; i++) {
            char prefix[40]; /* short, so that prefix + "." + a suffix always fits DG_NAME_MAX */
            snprintf(prefix, sizeof prefix, "block%d.layer.%d", g + 1, i);
            int in_planes = i == 0 ? channels[g] : channels[g + 1];
            x = basic_block(net, prefix, x, in_planes, channels[g + 1], i == 0 ? strides[g] : 1);
            if (x < 0) goto too_small;
        }
    if ((x = dg_net_bn(net, "bn1", x)) < 0 || (x = dg_net_relu(net, x)) < 0) goto too_small;
    return dg_nets_pool_fc_head(net, x, classes, spec, c, h, w, err, err_len);
too_small:
    return dg_nets_fail(net, err, err_len, "%s: does not fit a %dx%dx%d input", spec, c, h, w);
}
