/* host/dist.h — data-parallel runs over several processes (ranks): who this rank is, and the few
 * collectives the commands need, over MPI (host memory) or, for gradients on the CUDA backend,
 * over NCCL through the device table of kernels/dist_backend.h. A run without --dist is a
 * one-rank "none" context on which every collective is a no-op, so callers need no special case.
 * Touches no device memory itself except through the backend's op table and that device table. */
#ifndef DG_DIST_H
#define DG_DIST_H

#include <stddef.h>

#include "../kernels/backend.h"
#include "../kernels/dist_backend.h"
#include "watchdog.h"

typedef enum { DG_DIST_NONE, DG_DIST_MPI, DG_DIST_NCCL } dg_dist_kind;

typedef struct dg_dist {
    dg_dist_kind kind;
    int rank, size;              /* this process's rank among size (0 of 1 without --dist) */
    int local_rank, local_size;  /* among the ranks on this node: picks the GPU */
    const dg_dist_device *device;  /* NCCL's table (kind NCCL), else NULL */
    dg_dist_comm *comm;            /* its communicator, once dg_dist_connect_device ran */
    double reduce_s;             /* seconds in MPI gradient reductions since the last take */
    float *staging;              /* host copy of a non-CPU backend's buffer for MPI */
    size_t staging_floats;
    dg_watchdog *watch;          /* times every wait on the other ranks (more than one rank) */
    char who[64];                /* "train: rank 1 of 2", for the watchdog's line */
    int failed_together;         /* every rank ends with exit 2 after a dg_dist_agree that failed */
} dg_dist;

/* --dist NAME ("none", "mpi", "nccl") → a context. Starts MPI (mpi, nccl) and, for nccl, binds this
 * rank's GPU (local rank modulo the visible devices) before any backend is created. "none" in a
 * process that a launcher started as one of several tasks is refused: each task would train the
 * same model and write the same files. With more than one rank a watchdog (host/watchdog.h) ends
 * this rank with exit 4 when a collective, or NCCL's work behind one, has waited longer than
 * DNNGUARD_DIST_TIMEOUT seconds (default 1800; 0 waits forever) or NCCL reports an error.
 * takes_nccl: whether the command reduces on the device (training); the others refuse "nccl" before
 * MPI starts. 0, or -1 after one line on stderr (the caller exits 2). */
int dg_dist_start(dg_dist *d, const char *name, const char *command, int takes_nccl);

/* Set-up that fails on some ranks and not on others (a data set that one node cannot read, a
 * GPU out of memory) must still end every rank the same way, with one line and exit 2, through
 * MPI_Finalize rather than MPI_Abort's banner. So on more than one rank dg_dist_start holds the
 * lines of dg_cli_error (cli.h), and a command settles its set-up at agreement points:
 * dg_dist_agree(d, failed), which every rank reaches (no other collective since the last one),
 * returns 0 when no rank failed, else -1 on every rank after the lowest failing rank has said its
 * held lines ("rank 1 of 2: " before them when it is not rank 0); the others' are dropped. A rank
 * that fails between two agreement points returns dg_dist_fail(d): its part in the next one,
 * then DG_EXIT_BAD_INPUT (once the ranks have agreed to fail, both return at once: done
 * already). dg_dist_end_setup(d, failed) is the last agreement point of the set-up: on success it
 * ends holding, saying what is held; dg_dist_finish ends it too, so no line is ever lost.
 * After the set-up the commands still meet at dg_dist_agree wherever a rank can fail apart from
 * the others (a file rank 0 writes, a model each rank loads again, memory a rank allocates), and
 * a check that every rank makes alike on the same figures (a loss summed over the ranks) is said
 * by rank 0 and ended through dg_dist_fail on every rank: either way every rank exits 2 through
 * MPI_Finalize. The failing rank has said its line at once (nothing is held by then). Only a
 * failure inside a collective, or in the NCCL communicator's set-up, ends the job through
 * MPI_Abort (dg_dist_finish). */
int dg_dist_agree(dg_dist *d, int failed);
int dg_dist_fail(dg_dist *d);
/* An agreement point that also checks that every rank passed the same value (that all ranks run
 * one configuration, read one file): 0 when so, 1 when the values differ (the caller's rank 0
 * says how; every rank ends with exit 2), -1 when a rank failed (said, as above). */
int dg_dist_agree_same(dg_dist *d, unsigned long long value);
int dg_dist_end_setup(dg_dist *d, int failed);

/* A one-rank context without any check (callers that never run distributed). */
void dg_dist_single(dg_dist *d);

/* For nccl: create the NCCL communicator on backend be (which must be the CUDA backend): rank 0
 * makes the unique id, MPI broadcasts it, a barrier, then every rank joins. 0 or -1 (message). */
int dg_dist_connect_device(dg_dist *d, const dg_backend *be);

/* End the run with process exit code rc: a clean MPI shutdown when every rank got here the same
 * way (rc 0, 1 or 3, which the commands reach collectively, or 2 after a failed dg_dist_agree),
 * MPI_Abort(rc) otherwise, since a rank
 * that failed alone would leave the others waiting in a collective forever. Frees what d holds.
 * Returns rc. */
int dg_dist_finish(dg_dist *d, int rc);

static inline int dg_dist_is_root(const dg_dist *d) { return d->rank == 0; }

/* Whether gradients are reduced across ranks: with several ranks, and with NCCL on any number. One
 * NCCL rank runs the same reductions as many (as PyTorch's DDP does at world size 1; a sum over
 * one rank changes no bit), so a single GPU exercises the whole NCCL path. */
static inline int dg_dist_reduces(const dg_dist *d) { return d->size > 1 || d->kind == DG_DIST_NCCL; }

/* The contiguous share [*lo, *hi) of n items that rank `rank` of `size` takes: sizes differ by at
 * most one, later ranks take the larger ones (37 over 2 is 18|19), and the shares tile [0, n) in rank order. */
static inline void dg_dist_share(int n, int rank, int size, int *lo, int *hi) {
    *lo = (int)((long long)n * rank / size);
    *hi = (int)((long long)n * (rank + 1) / size);
}

/* Host collectives (MPI; no-ops on one rank). */
void dg_dist_sum_f64(dg_dist *d, double *values, int n);           /* in place, every rank gets the sums */
void dg_dist_broadcast(dg_dist *d, void *bytes, size_t n);         /* rank 0's bytes to every rank */
void dg_dist_barrier(dg_dist *d);
/* records[n] of record_bytes each, where rank r filled its share (dg_dist_share) of them: after
 * the call every rank holds all n records. */
void dg_dist_gather_shares(dg_dist *d, void *records, size_t record_bytes, int n);
/* Ranks started with different arguments would silently compute different things: 0 when every
 * rank's argv hashes alike, else -1 on every rank after one line from rank 0 (the caller exits 2,
 * through dg_dist_finish, on every rank alike). */
int dg_dist_same_args(dg_dist *d, const char *command, int argc, char **argv);

/* Sum count floats of backend memory across ranks, in place: MPI (directly on the CPU backend's
 * memory, staged through host memory for any other backend), or an asynchronous NCCL all-reduce
 * ordered on the backend's stream (dg_dist_wait then makes the stream wait for it). */
void dg_dist_sum_device(dg_dist *d, const dg_backend *be, float *buf, size_t count);
/* Queue the backend's later work behind every reduction issued so far (NCCL); a no-op for MPI,
 * whose reductions are complete on return. */
void dg_dist_wait(dg_dist *d);
/* Milliseconds spent in dg_dist_sum_device since the last call (MPI: wall time, which includes
 * waiting for the slowest rank; NCCL: device time of the reductions). */
double dg_dist_take_reduce_ms(dg_dist *d);

#endif
