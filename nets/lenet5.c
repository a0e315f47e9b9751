/* nets/lenet5.c — LeNet-5 for 28×28 digits: conv1 6@5×5 pad 2, relu, max pool 2, conv2 16@5×5, relu,
 * max pool 2, flatten, fc1 120, relu, fc2 84, relu, fc3 classes (PyTorch names conv1 … fc3).
 * Only the dg_net_* builder API; no device memory. */
#include "registry.h"

dg_net *dg_build_lenet5(const char *spec, int classes, int c, int h, int w, char *err, size_t err_len) {
    dg_net *net = dg_net_new(spec, c, h, w, classes);
    if (!net) return dg_nets_fail(NULL, err, err_len, "%s: out of memory", spec);
    int x = 0;
    if ((x = dg_net_conv(net, "conv1", x, 6, 5, 1, 2, 1)) < 0 || (x = dg_net_relu(net, x)) < 0 ||
        (x = dg_net_maxpool(net, x, 2, 2, 0)) < 0 || (x = dg_net_conv(net, "conv2", x, 16, 5, 1, 0, 1)) < 0 ||
        (x = dg_net_relu(net, x)) < 0 || (x = dg_net_maxpool(net, x, 2, 2, 0)) < 0 ||
        (x = dg_net_flatten(net, x)) < 0 || (x = dg_net_linear(net, "fc1", x, 120, 1)) < 0 ||
        (x = dg_net_relu(net, x)) < 0 || (x = dg_net_linear(net, "fc2", x, 84, 1)) < 0 ||
        (x = dg_net_relu(net, x)) < 0 || (x = dg_net_linear(net, "fc3", x, classes, 1)) < 0)
        return dg_nets_fail(net, err, err_len, "%s: a %dx%dx%d input is too small (needs at least 12x12)", spec,
                            c, h, w);
    return net;
}
