/* host/dist_train.h — what data-parallel training adds to a step (host/train.c): summing the
 * ranks' gradients (one MPI all-reduce of the whole gradient arena, or NCCL all-reduces of buckets
 * started from the backward walk), averaging batch norm's running statistics in the same
 * reduction, rank 0's state broadcast at the start, and evaluation split across the ranks. On a
 * one-rank context every call is a no-op, which keeps a run without --dist bit for bit as it was. */
#ifndef DG_DIST_TRAIN_H
#define DG_DIST_TRAIN_H

#include "dist.h"
#include "dist_buckets.h"
#include "net.h"
#include "session.h"

typedef struct dg_dist_grads {
    dg_dist *dist;
    dg_net *net;
    dg_grad_bucket *buckets; /* NCCL: launch plan; NULL for MPI (one reduction of everything) */
    int n_buckets;
    int next;                /* buckets[0..next) are launched or held */
    unsigned char *launched;
} dg_dist_grads;

/* Bind to net (set up on its backend). held_param: a parameter whose gradient the caller still
 * changes after the backward walk (the watermark layer), or -1. 0, or -1 when out of memory. */
int dg_dist_grads_init(dg_dist_grads *g, dg_dist *d, dg_net *net, int held_param);
void dg_dist_grads_free(dg_dist_grads *g);
/* After the forward pass, before the backward walk: each rank puts running statistic / size into
 * the statistic's (otherwise unused) gradient slot, so the gradient reduction also averages them. */
void dg_dist_grads_begin(dg_dist_grads *g);
/* After the backward walk and any gradient added after it: sum whatever is not summed yet, make
 * the backend wait for it, and copy the averaged running statistics back into the parameters. */
void dg_dist_grads_finish(dg_dist_grads *g);

/* Every rank takes rank 0's copy of count floats of backend memory. */
void dg_dist_broadcast_device(dg_dist *d, const dg_backend *be, float *buf, size_t count);

/* dg_evaluate over all of ds with the images split across the ranks (each evaluates its share);
 * every rank gets the whole result. 0 or -1 (on any rank: all return -1). */
int dg_dist_evaluate(dg_dist *d, dg_net *net, const dg_dataset *ds, dg_eval_result *r);

#endif
