/* host/dist_buckets.h — gradient buckets for all-reduces that overlap the backward pass: the
 * gradient arena cut into contiguous ranges, each summed across ranks as soon as the backward walk
 * has passed every node that writes into it. Plain host logic over a net's parameter table (no
 * device memory, no MPI), so it is tested without a GPU. */
#ifndef DG_DIST_BUCKETS_H
#define DG_DIST_BUCKETS_H

#include <stddef.h>
#include "net.h"

/* PyTorch DDP's default bucket size: large enough for a collective to run at full bandwidth, small
 * enough that the first ones start while most of the backward pass is still to come. */
#define DG_BUCKET_DEFAULT_FLOATS ((size_t)25 * 1024 * 1024 / sizeof(float))

typedef struct dg_grad_bucket {
    size_t begin, end; /* float range [begin, end) of the gradient arena */
    int ready_node;    /* final once the backward walk has run this node (it walks the nodes in
                          decreasing index order); -1: held until the caller flushes the buckets */
} dg_grad_bucket;

/* Plan buckets over net's whole arena (padding and running-statistic slots included, which the
 * trainer also reduces), in launch order: the first holds the highest offsets, the last begins
 * at 0. A bucket closes once it holds at least cap_floats (a single node larger than that gets
 * one of its own). The bucket holding parameter held_param (≥ 0; -1 none) is held: it waits for
 * gradients added after the walk (the watermark regularizer's). When the parameters are not laid
 * out in node order, one held bucket covers everything. Returns the count (≥ 1, 0 for a net
 * without parameters) and *out (malloc'd), or -1 when out of memory. */
int dg_grad_buckets_plan(const dg_net *net, size_t cap_floats, int held_param, dg_grad_bucket **out);

#endif
