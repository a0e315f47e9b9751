/* kernels/dist_backend.h — the seam between host/dist.c and a device collective library: a small
 * table of functions on device buffers, filled by kernels/cuda/nccl.cu (NCCL), so host/ never sees
 * NCCL's or CUDA's types. Host code gets the table only from dg_dist_device_nccl() and calls it
 * only through these pointers. Knows nothing of nets, files or MPI: the unique id it makes is
 * opaque bytes that the host moves between ranks. */
#ifndef DG_DIST_BACKEND_H
#define DG_DIST_BACKEND_H

#include <stddef.h>

typedef struct dg_dist_comm dg_dist_comm; /* a communicator of the library, opaque */

typedef struct dg_dist_device {
    const char *name;   /* "nccl" */
    size_t id_bytes;    /* size of the unique id that rank 0 makes and every rank joins with */
    /* Bind this process to GPU dg_dist_pick_device(local_rank, local_size, visible devices); must
     * run before the backend creates its stream. 0, or -1 with err (no device, too few devices). */
    int (*bind_device)(int local_rank, int local_size, char *err, size_t err_len);
    /* Rank 0: fill id[id_bytes]. 0, or -1 with err. */
    int (*make_id)(void *id, char *err, size_t err_len);
    /* Every rank, after all of them hold rank 0's id: join the communicator (collective: blocks
     * until all size ranks joined). NULL with err on failure. */
    dg_dist_comm *(*join)(const void *id, int rank, int size, char *err, size_t err_len);
    /* Sum count floats at device buffer buf across the ranks, in place, asynchronously: on the
     * library's own stream, after all work queued so far on the backend's stream, so it may
     * overlap the backend's later work (which must not touch buf until wait). */
    void (*sum_async)(dg_dist_comm *c, float *buf, size_t count);
    /* Make the backend's stream wait for every sum issued so far (nothing blocks the host). */
    void (*wait)(dg_dist_comm *c);
    /* Milliseconds the finished reductions took on the device (from the first sum after a wait
     * to that wait's end, per window), summed since the last call; blocks on the last window. */
    double (*take_ms)(dg_dist_comm *c);
    /* Called from the host's watchdog poller (host/watchdog.h's probe) while the main thread
     * trains: 1 with why filled when the library reported an asynchronous error; else 0, with
     * *pending the launch number of the newest sum while it is still in flight (0 once it
     * completed). Never waits for the main thread or for the device. */
    int (*poll)(dg_dist_comm *c, unsigned long long *pending, char *why, size_t why_len);
    /* Not while the watchdog may still poll c. */
    void (*leave)(dg_dist_comm *c);
} dg_dist_device;

/* The NCCL table (kernels/cuda/nccl.cu); exists only in binaries built with the CUDA backend and
 * NCCL (DNNGUARD_HAVE_NCCL). */
const dg_dist_device *dg_dist_device_nccl(void);

/* Which of the `visible` devices the rank with this local rank (of local_size ranks on the node)
 * uses. One device visible: that one (Slurm's --gpus-per-task or --gpu-bind gave each task its
 * own). Otherwise one GPU per rank in local-rank order. -1 when that cannot be: no device, or
 * more ranks on the node than devices (NCCL refuses two ranks on one GPU). Shared by nccl.cu and
 * the device-free tests. */
static inline int dg_dist_pick_device(int local_rank, int local_size, int visible) {
    if (visible < 1 || local_rank < 0 || local_rank >= local_size) return -1;
    if (visible == 1) return 0;
    return local_size <= visible ? local_rank : -1;
}

#endif
