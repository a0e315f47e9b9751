/* kernels/cuda/nccl.cu — NCCL behind kernels/dist_backend.h's table: binding a rank to its GPU,
 * the unique id, the communicator, and gradient all-reduces on a stream of their own that is
 * ordered after the backend's stream by events, so buckets reduce while the backward pass goes on.
 * Knows nothing of nets, files or MPI (the host moves the id between ranks).
 * NOT YET RUN ON A GPU: compiled and linked in CI only (docs/distributed.md). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nccl.h>

extern "C" {
#include "../dist_backend.h"
}
#include "cuda_backend.h"

/* The fourth library's check macro, as check.h's for the other three: file:line, NCCL's message,
 * exit status 4. Kept here, the only file that includes nccl.h, so the other .cu files build
 * without it. */
#define DG_NCCL_CHECK(call)                                                              \
    do {                                                                                 \
        ncclResult_t dg_n_ = (call);                                                     \
        if (dg_n_ != ncclSuccess)                                                        \
            dg_cuda_fail("NCCL", ncclGetErrorString(dg_n_), #call, __FILE__, __LINE__);  \
    } while (0)

struct dg_dist_comm {
    ncclComm_t comm;
    cudaStream_t stream;   /* the reductions' stream, high priority so they start promptly */
    cudaEvent_t ready;     /* recorded on the backend's stream: the gradients so far are written */
    cudaEvent_t start, end; /* the first reduction of a window starts / its last ends (timed) */
    int window_open;       /* sums issued since the last wait */
    int window_pending;    /* a closed window whose time is not yet added to ms */
    double ms;
    /* What the watchdog's poller (watch_poll) sees, under lock: reduction number `launches` was
     * followed by `last` on the stream, not yet seen complete while last_in_flight. */
    pthread_mutex_t lock;
    cudaEvent_t last;
    int last_in_flight;
    unsigned long long launches, reported;
    int device;            /* the rank's GPU, made current on the watchdog's thread */
    int watcher_bound;
};

namespace {

int bind_device(int local_rank, int local_size, char *err, size_t err_len) {
    int visible = 0;
    cudaError_t e = cudaGetDeviceCount(&visible);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(err, err_len, "no usable CUDA device (%s)", cudaGetErrorString(e));
        return -1;
    }
    int device = dg_dist_pick_device(local_rank, local_size, visible);
    if (device < 0) {
        snprintf(err, err_len, "%d ranks on this node but %d CUDA device%s visible; NCCL needs one GPU per rank",
                 local_size, visible, visible == 1 ? "" : "s");
        return -1;
    }
    /* the backend, created later, takes the current device (cudaGetDevice in backend_cuda.cu) */
    e = cudaSetDevice(device);
    if (e != cudaSuccess) {
        snprintf(err, err_len, "cudaSetDevice(%d): %s", device, cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

int make_id(void *id, char *err, size_t err_len) {
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) {
        snprintf(err, err_len, "ncclGetUniqueId: %s", ncclGetErrorString(r));
        return -1;
    }
    memcpy(id, &u, sizeof u);
    return 0;
}

dg_dist_comm *join(const void *id, int rank, int size, char *err, size_t err_len) {
    dg_dist_comm *c = static_cast<dg_dist_comm *>(calloc(1, sizeof *c));
    if (!c) {
        snprintf(err, err_len, "out of memory");
        return nullptr;
    }
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    ncclResult_t r = ncclCommInitRank(&c->comm, size, u, rank);
    if (r != ncclSuccess) {
        snprintf(err, err_len, "ncclCommInitRank(rank %d of %d): %s", rank, size, ncclGetErrorString(r));
        free(c);
        return nullptr;
    }
    int least = 0, greatest = 0;
    DG_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    DG_CUDA_CHECK(cudaStreamCreateWithPriority(&c->stream, cudaStreamNonBlocking, greatest));
    DG_CUDA_CHECK(cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming));
    DG_CUDA_CHECK(cudaEventCreate(&c->start));
    DG_CUDA_CHECK(cudaEventCreate(&c->end));
    DG_CUDA_CHECK(cudaEventCreateWithFlags(&c->last, cudaEventDisableTiming));
    DG_CUDA_CHECK(cudaGetDevice(&c->device));
    pthread_mutex_init(&c->lock, nullptr);
    return c;
}

/* Add a closed window's device time (its events completed long ago when the host has since
 * waited on the backend's stream, which waited on `end`). */
void settle_window(dg_dist_comm *c) {
    if (!c->window_pending) return;
    DG_CUDA_CHECK(cudaEventSynchronize(c->end));
    float ms = 0.0f;
    DG_CUDA_CHECK(cudaEventElapsedTime(&ms, c->start, c->end));
    c->ms += ms;
    c->window_pending = 0;
}

void sum_async(dg_dist_comm *c, float *buf, size_t count) {
    /* the reduction waits for everything queued so far on the backend's stream (the backward
     * kernels that wrote this bucket); the backend's stream does not wait for it (until wait) */
    DG_CUDA_CHECK(cudaEventRecord(c->ready, dg_cuda_stream()));
    DG_CUDA_CHECK(cudaStreamWaitEvent(c->stream, c->ready, 0));
    if (!c->window_open) {
        settle_window(c); /* before `start` is recorded again */
        DG_CUDA_CHECK(cudaEventRecord(c->start, c->stream));
        c->window_open = 1;
    }
    DG_NCCL_CHECK(ncclAllReduce(buf, buf, count, ncclFloat, ncclSum, c->comm, c->stream));
    pthread_mutex_lock(&c->lock); /* watch_poll() may be querying `last` (it only tries the lock) */
    DG_CUDA_CHECK(cudaEventRecord(c->last, c->stream));
    c->last_in_flight = 1;
    c->launches++;
    pthread_mutex_unlock(&c->lock);
    if (dg_cuda_sync_each_launch()) DG_CUDA_CHECK(cudaStreamSynchronize(c->stream));
}

void wait_for_sums(dg_dist_comm *c) {
    if (!c->window_open) return;
    DG_CUDA_CHECK(cudaEventRecord(c->end, c->stream));
    DG_CUDA_CHECK(cudaStreamWaitEvent(dg_cuda_stream(), c->end, 0));
    c->window_open = 0;
    c->window_pending = 1;
}

double take_ms(dg_dist_comm *c) {
    settle_window(c);
    double ms = c->ms;
    c->ms = 0.0;
    return ms;
}

/* The watchdog's probe, on its poller thread: an asynchronous NCCL error (a peer's connection
 * closed, a network failure) is an error; a reduction whose following `last` event has not
 * completed is pending work, named by its launch number, which the watchdog times (a peer that
 * stopped never delivers, and NCCL's kernels then spin without any error). Never waits for the
 * main thread: when it holds the lock (recording `last`), the previous answer stands. A CUDA error
 * from the query is not this probe's to report (the main thread's next call reports it, and at
 * exit the runtime may be unloading): it reads as nothing pending. Never exits or aborts. */
int watch_poll(dg_dist_comm *c, unsigned long long *pending, char *why, size_t why_len) {
    ncclResult_t async = ncclSuccess;
    ncclResult_t got = ncclCommGetAsyncError(c->comm, &async);
    if (got != ncclSuccess || (async != ncclSuccess && async != ncclInProgress)) {
        ncclResult_t r = got != ncclSuccess ? got : async;
#if NCCL_VERSION_CODE >= 21300
        snprintf(why, why_len, "NCCL failed while reducing: %s (%s)", ncclGetErrorString(r), ncclGetLastError(c->comm));
#else
        snprintf(why, why_len, "NCCL failed while reducing: %s", ncclGetErrorString(r));
#endif
        return 1;
    }
    if (pthread_mutex_trylock(&c->lock) != 0) {
        *pending = c->reported;
        return 0;
    }
    if (c->last_in_flight) {
        if (!c->watcher_bound) { /* the runtime's current device is per thread */
            (void)cudaSetDevice(c->device);
            c->watcher_bound = 1;
        }
        cudaError_t q = cudaEventQuery(c->last);
        if (q == cudaErrorNotReady) {
            c->reported = c->launches;
        } else {
            c->last_in_flight = 0;
            c->reported = 0;
        }
    }
    *pending = c->reported;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void leave(dg_dist_comm *c) {
    if (!c) return;
    DG_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    DG_NCCL_CHECK(ncclCommDestroy(c->comm));
    DG_CUDA_CHECK(cudaEventDestroy(c->ready));
    DG_CUDA_CHECK(cudaEventDestroy(c->start));
    DG_CUDA_CHECK(cudaEventDestroy(c->end));
    DG_CUDA_CHECK(cudaEventDestroy(c->last));
    DG_CUDA_CHECK(cudaStreamDestroy(c->stream));
    pthread_mutex_destroy(&c->lock);
    free(c);
}

const dg_dist_device g_nccl = {
    "nccl", sizeof(ncclUniqueId), bind_device, make_id, join, sum_async, wait_for_sums, take_ms, watch_poll, leave,
};

} // namespace

extern "C" const dg_dist_device *dg_dist_device_nccl(void) { return &g_nccl; }
