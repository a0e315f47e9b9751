/* host/loader.h — batches from an in-memory data set: per-epoch shuffle and augmentation drawn from
 * counter-based random numbers (so a batch depends only on seed, epoch and step, which is what
 * makes runs repeatable and resumable), and a prefetch thread that builds batch k+1 while the
 * caller computes on batch k. Host memory only. */
#ifndef DG_LOADER_H
#define DG_LOADER_H

#include <stdint.h>
#include "data.h"

typedef struct dg_loader dg_loader;

/* shuffle: new order every epoch; augment: 4-pixel zero pad + random crop + horizontal flip
 * (CIFAR training). The last batch of an epoch may be smaller (PyTorch's drop_last=False). */
dg_loader *dg_loader_new(const dg_dataset *ds, int batch, uint64_t seed, int shuffle, int augment);
void dg_loader_free(dg_loader *l);
int dg_loader_steps(const dg_loader *l);
/* Start epoch `epoch` at step `first_step` (non-zero when resuming mid-epoch). */
void dg_loader_begin(dg_loader *l, int epoch, int first_step);
/* Next batch of the epoch: returns its size (0 at the end); x [n, c, h, w] normalised floats and
 * labels stay valid until the next call. A sharded loader returns this rank's share, which may be
 * 0 before the end: its caller counts steps (dg_loader_steps) instead. */
int dg_loader_next(dg_loader *l, const float **x, const int32_t **labels);
/* Data parallelism: yield only rank `rank`'s share (dg_dist_share: contiguous, sizes within one)
 * of every batch, which stays the global batch of `batch` images: which images, their order and
 * their augmentation are exactly those of the whole batch, so they depend only on the seed and the
 * global batch size, never on the number of ranks. A share may be empty (a last batch of fewer
 * images than ranks). Call before the first dg_loader_begin. */
void dg_loader_shard(dg_loader *l, int rank, int ranks);
/* Images of global batch `step` of an epoch, all ranks together (0 past the end). */
int dg_loader_batch_images(const dg_loader *l, int step);
/* The data-set index of position `pos` of epoch `epoch`'s order (for tests and reports). It
 * rebuilds the order for `epoch`: call it between epochs, or for the epoch being read only. */
int dg_loader_index(dg_loader *l, int epoch, int pos);

#endif
