/* nets/registry.h — building a net by name ("lenet5", "wrn-16-4", "vgg16-cifar", "resnet18", ...)
 * and the per-family builders the registry dispatches to. Builders only call the dg_net_* API of
 * host/net.h; nothing here allocates device memory or touches files. */
#ifndef DG_NETS_REGISTRY_H
#define DG_NETS_REGISTRY_H

#include <stddef.h>

#include "../host/net.h"

/* Build a net by name. in_c/in_h/in_w: input shape; classes ≥ 2. NULL + err on an unknown name or
 * impossible shape. */
dg_net *dg_net_create(const char *spec, int classes, int in_c, int in_h, int in_w, char *err, size_t err_len);
/* The natural input and class count of a name (lenet5: 1×28×28, 10; *-cifar and wrn-*: 3×32×32, 10;
 * vgg16/resnet18: 3×224×224, 1000). -1 for an unknown name, 0 otherwise. */
int dg_net_default_shape(const char *spec, int *in_c, int *in_h, int *in_w, int *classes);
/* The known nets, i = 0, 1, ... in the order `info --nets` lists them; NULL past the last. The name
 * ("wrn-D-K" stands for the wide-resnet family), and optionally a one-line description and the
 * natural input and class count. */
const char *dg_net_known(int i, const char **about, int *c, int *h, int *w, int *classes);

/* ---- for the builders in nets/ only ---- */
/* Each builder gets a valid shape (all ≥ 1) and classes ≥ 2 from dg_net_create and returns the net,
 * or NULL with a message in err when the input shape does not fit the architecture. */
dg_net *dg_build_lenet5(const char *spec, int classes, int c, int h, int w, char *err, size_t err_len);
dg_net *dg_build_wrn(const char *spec, int depth, int width, int classes, int c, int h, int w, char *err,
                     size_t err_len);
dg_net *dg_build_vgg16_cifar(const char *spec, int classes, int c, int h, int w, char *err, size_t err_len);
dg_net *dg_build_vgg16(const char *spec, int classes, int c, int h, int w, char *err, size_t err_len);
/* cifar_stem: 3×3 stride-1 conv1 and no max pool (resnet18-cifar); else torchvision's ImageNet stem. */
dg_net *dg_build_resnet18(const char *spec, int cifar_stem, int classes, int c, int h, int w, char *err,
                          size_t err_len);
/* Free net (may be NULL), write "spec: <message>" into err, return NULL. */
/* The ResNet/WRN classifier head after node x: global average pool (the map must be square), flatten,
 * linear "fc". Returns the logits node, or NULL after dg_nets_fail with the reason. */
dg_net *dg_nets_pool_fc_head(dg_net *net, int x, int classes, const char *spec, int c, int h, int w, char *err,
                             size_t err_len);
dg_net *dg_nets_fail(dg_net *net, char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
