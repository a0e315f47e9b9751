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
 * labels stay valid until the next call. */
int dg_loader_next(dg_loader *l, const float **x, const int32_t **labels);
/* The data-set index of position `pos` of epoch `epoch`'s order (for tests and reports). */
int dg_loader_index(dg_loader *l, int epoch, int pos);

#endif
