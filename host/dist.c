/* host/dist.c — ranks and collectives behind dist.h: MPI when the build found one
 * (DNNGUARD_HAVE_MPI), NCCL through kernels/dist_backend.h's table when the CUDA backend was built
 * with it (DNNGUARD_HAVE_NCCL). Without MPI only "none" exists and --dist mpi|nccl is refused with
 * one line. The one place that hands backend memory to MPI: the CPU backend's, which is host memory
 * (kernels/cpu/memory.c); any other backend's is staged through download/upload. */
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#ifdef DNNGUARD_HAVE_MPI
#include <mpi.h>
#endif

/* How many tasks a launcher (mpirun, srun) started this one among; 1 when none did. */
static int launcher_tasks(const char **source) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        int n = v ? atoi(v) : 0;
        if (n > 1) {
            *source = vars[i];
            return n;
        }
    }
    return 1;
}

/* This task's rank as the launcher numbers them, before MPI starts; 0 when no launcher says. */
static int launcher_rank(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

void dg_dist_single(dg_dist *d) {
    memset(d, 0, sizeof *d);
    d->kind = DG_DIST_NONE;
    d->size = d->local_size = 1;
}

#ifdef DNNGUARD_HAVE_MPI
/* Rank, size and the rank among the processes of this node (MPI-3's shared-memory split, which
 * works the same under mpirun and srun). */
static int start_mpi(dg_dist *d, const char *command) {
    int started = 0;
    MPI_Initialized(&started);
    if (!started) {
        int provided = 0; /* only the main thread calls MPI; the loader and OpenMP threads never do */
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            dg_cli_error("%s: --dist: MPI_Init failed", command);
            return -1;
        }
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &d->local_rank);
    MPI_Comm_size(node, &d->local_size);
    MPI_Comm_free(&node);
    return 0;
}
#endif

static int start_ranks(dg_dist *d, const char *name, const char *command, int takes_nccl);

int dg_dist_start(dg_dist *d, const char *name, const char *command, int takes_nccl) {
    /* what is refused before the ranks know each other (an unknown --dist, a build without MPI) is
     * refused alike by every task the launcher started: the first task says it, the others are silent */
    int other_task = launcher_rank() > 0;
    if (other_task) dg_cli_error_hold();
    int rc = start_ranks(d, name, command, takes_nccl);
    dg_cli_warnings_from_this_rank(d->size < 2 || d->rank == 0);
    if (d->size < 2) dg_cli_error_release(rc == 0 || !other_task, NULL);
    return rc; /* on several ranks, held until the command's set-up is settled */
}

static int start_ranks(dg_dist *d, const char *name, const char *command, int takes_nccl) {
    dg_dist_single(d);
    if (!name || strcmp(name, "none") == 0) {
        const char *source = NULL;
        int tasks = launcher_tasks(&source);
        if (tasks > 1) {
            dg_cli_error("%s: started as one of %d tasks (%s) without --dist: each would %s alone and write "
                         "the same files; add --dist mpi%s", command, tasks, source, takes_nccl ? "train" : "run",
                         takes_nccl ? " (or --dist nccl with --backend cuda)" : "");
            return -1;
        }
        return 0;
    }
    int nccl = strcmp(name, "nccl") == 0;
    if (!nccl && strcmp(name, "mpi") != 0) {
        dg_cli_error("%s: --dist must be none, mpi or nccl, not '%s'", command, name);
        return -1;
    }
    if (nccl && !takes_nccl) {
        dg_cli_error("%s: --dist nccl has nothing to reduce on the device; use --dist mpi (with any backend)", command);
        return -1;
    }
    double limit_s = dg_watchdog_limit_from_env(command);
    if (limit_s < 0.0) return -1;
#ifndef DNNGUARD_HAVE_MPI
    dg_cli_error("%s: --dist %s: this binary was built without MPI (install libopenmpi-dev and rebuild)", command,
                 name);
    return -1;
#else
#ifndef DNNGUARD_HAVE_NCCL
    if (nccl) {
        dg_cli_error("%s: --dist nccl: this binary was built without the CUDA backend and NCCL "
                     "(cmake -DDNNGUARD_CUDA=ON with NCCL installed)", command);
        return -1;
    }
#endif
    /* MPI_Init waits for every rank the launcher started (its closing exchange): one that never
     * comes (a node that hangs before it starts, a wrong --mpi plugin) holds this one there */
    snprintf(d->who, sizeof d->who, "%s: starting MPI", command);
    dg_watchdog *starting = dg_watchdog_start(limit_s, d->who);
    dg_watchdog_arm(starting, "MPI_Init (the other ranks' start)");
    int started = start_mpi(d, command);
    dg_watchdog_disarm(starting);
    dg_watchdog_stop(starting);
    if (started != 0) return -1;
    d->kind = nccl ? DG_DIST_NCCL : DG_DIST_MPI;
    const char *source = NULL;
    int tasks = launcher_tasks(&source);
    if (d->size == 1 && tasks > 1) { /* e.g. srun --mpi=none: every task would be a world of its own */
        dg_cli_error("%s: the launcher started %d tasks (%s) but MPI sees one: start them with "
                     "srun --mpi=pmix (or mpirun)", command, tasks, source);
        return -1;
    }
    if (d->size > 1) dg_cli_error_hold(); /* until the command's set-up is settled (dg_dist_agree) */
    if (d->size > 1 || nccl) { /* one NCCL rank still reduces (dg_dist_reduces) */
        snprintf(d->who, sizeof d->who, "%s: rank %d of %d", command, d->rank, d->size);
        d->watch = dg_watchdog_start(limit_s, d->who);
    }
#ifdef DNNGUARD_HAVE_NCCL
    if (nccl) {
        char err[256];
        d->device = dg_dist_device_nccl();
        if (d->device->bind_device(d->local_rank, d->local_size, err, sizeof err) != 0) {
            dg_cli_error("%s: --dist nccl: rank %d: %s", command, d->rank, err);
            return -1;
        }
    }
#endif
    return 0;
#endif
}

/* The watchdog's view of NCCL (on the watchdog's thread). */
static int nccl_poll(void *ctx, unsigned long long *pending, char *why, size_t why_len) {
    dg_dist *d = ctx;
    return d->device->poll(d->comm, pending, why, why_len);
}

int dg_dist_connect_device(dg_dist *d, const dg_backend *be) {
    if (d->kind != DG_DIST_NCCL) return 0;
    if (be == dg_backend_cpu()) {
        dg_cli_error("--dist nccl needs the CUDA backend (--backend cuda); use --dist mpi for CPU ranks");
        return -1;
    }
    char err[256];
    unsigned char *id = calloc(1, d->device->id_bytes);
    int ok = id != NULL;
    if (ok && dg_dist_is_root(d) && d->device->make_id(id, err, sizeof err) != 0) {
        dg_cli_error("--dist nccl: %s", err);
        ok = 0;
    }
    /* every rank learns whether rank 0 has an id before anyone waits for it */
    double have_id = ok ? 0.0 : 1.0;
    dg_dist_sum_f64(d, &have_id, 1);
    if (have_id == 0.0) {
        dg_dist_broadcast(d, id, d->device->id_bytes);
        dg_dist_barrier(d); /* all ranks hold the id before any of them starts joining */
        dg_watchdog_arm(d->watch, "joining the NCCL communicator");
        d->comm = d->device->join(id, d->rank, d->size, err, sizeof err);
        dg_watchdog_disarm(d->watch);
        if (!d->comm) dg_cli_error("--dist nccl: rank %d: %s", d->rank, err);
        else dg_watchdog_set_probe(d->watch, nccl_poll, d, "the NCCL gradient all-reduce");
    }
    free(id);
    return d->comm ? 0 : -1;
}

int dg_dist_finish(dg_dist *d, int rc) {
    free(d->staging);
    d->staging = NULL;
    d->staging_floats = 0;
    if (d->kind == DG_DIST_NONE) return rc;
    int collective = rc == DG_EXIT_OK || rc == DG_EXIT_NO || rc == DG_EXIT_STOPPED;
    dg_watchdog_set_probe(d->watch, NULL, NULL, NULL); /* before the communicator goes */
    if (d->comm && collective) {
        dg_watchdog_arm(d->watch, "closing the NCCL communicator");
        d->device->leave(d->comm);
        dg_watchdog_disarm(d->watch);
    }
    d->comm = NULL;
    dg_cli_error_release(1, NULL); /* whatever is still held */
    collective = collective || (rc == DG_EXIT_BAD_INPUT && d->failed_together);
#ifdef DNNGUARD_HAVE_MPI
    if (collective || d->size == 1) {
        dg_watchdog_arm(d->watch, "MPI_Finalize");
        MPI_Finalize();
        dg_watchdog_stop(d->watch);
        d->watch = NULL;
    } else {
        fflush(stdout);
        fflush(stderr);
        dg_watchdog_arm(d->watch, "MPI_Abort"); /* it can hang too */
        MPI_Abort(MPI_COMM_WORLD, rc); /* does not return */
    }
#endif
    return rc;
}

#ifdef DNNGUARD_HAVE_MPI
/* MPI counts are ints: long buffers go in pieces. */
enum { PIECE = 1 << 30 };
#endif

void dg_dist_sum_f64(dg_dist *d, double *values, int n) {
    (void)values, (void)n;
#ifdef DNNGUARD_HAVE_MPI
    if (d->size < 2) return;
    dg_watchdog_arm(d->watch, "a sum across the ranks");
    MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    dg_watchdog_disarm(d->watch);
#else
    (void)d;
#endif
}

void dg_dist_broadcast(dg_dist *d, void *bytes, size_t n) {
    (void)bytes, (void)n;
#ifdef DNNGUARD_HAVE_MPI
    if (d->size < 2) return;
    dg_watchdog_arm(d->watch, "a broadcast from rank 0");
    for (size_t at = 0; at < n; at += PIECE) {
        size_t part = n - at < PIECE ? n - at : PIECE;
        MPI_Bcast((char *)bytes + at, (int)part, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
    dg_watchdog_disarm(d->watch);
#else
    (void)d;
#endif
}

void dg_dist_barrier(dg_dist *d) {
#ifdef DNNGUARD_HAVE_MPI
    if (d->size < 2) return;
    dg_watchdog_arm(d->watch, "a barrier");
    MPI_Barrier(MPI_COMM_WORLD);
    dg_watchdog_disarm(d->watch);
#else
    (void)d;
#endif
}

void dg_dist_gather_shares(dg_dist *d, void *records, size_t record_bytes, int n) {
    (void)records, (void)record_bytes, (void)n;
#ifdef DNNGUARD_HAVE_MPI
    if (d->size < 2) return;
    int *counts = malloc(sizeof(int) * 2 * (size_t)d->size);
    if (!counts || (size_t)n * record_bytes > (size_t)INT_MAX) {
        dg_cli_error("rank %d: cannot gather %d records of %zu bytes", d->rank, n, record_bytes);
        dg_watchdog_arm(d->watch, "MPI_Abort");
        MPI_Abort(MPI_COMM_WORLD, DG_EXIT_BAD_INPUT);
    }
    int *displs = counts + d->size;
    for (int r = 0; r < d->size; r++) {
        int lo, hi;
        dg_dist_share(n, r, d->size, &lo, &hi);
        counts[r] = (int)((size_t)(hi - lo) * record_bytes);
        displs[r] = (int)((size_t)lo * record_bytes);
    }
    dg_watchdog_arm(d->watch, "a gather of the ranks' shares");
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, records, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
    dg_watchdog_disarm(d->watch);
    free(counts);
#else
    (void)d;
#endif
}

/* The one collective of the set-up: the lowest rank that failed (as size − rank, so that MAX finds
 * it; 0 when none did) and whether every rank passed the same value (max of v and max of ~v, that
 * is ~min of v: equal everywhere iff max == min), in one reduction. Every agreement point and
 * every check of values is this call, so a rank that fails anywhere in the set-up meets the others
 * at whichever of them they reach next. */
static int settle(dg_dist *d, int failed, unsigned long long value) {
    if (d->failed_together) return -1; /* settled already: every rank knows */
    if (d->size < 2) return failed ? -1 : 0;
    unsigned long long all[3] = {failed ? (unsigned long long)(d->size - d->rank) : 0ull, value, ~value};
#ifdef DNNGUARD_HAVE_MPI
    dg_watchdog_arm(d->watch, "a check that every rank's set-up went well");
    MPI_Allreduce(MPI_IN_PLACE, all, 3, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    dg_watchdog_disarm(d->watch);
#endif
    if (all[0] == 0 && all[1] == ~all[2]) return 0;
    d->failed_together = 1;
    if (all[0] == 0) { /* values differ: the caller's rank 0 says so */
        dg_cli_error_release(dg_dist_is_root(d), NULL);
        return 1;
    }
    int first = d->size - (int)all[0];
    char prefix[48] = "";
    if (first > 0) snprintf(prefix, sizeof prefix, "rank %d of %d: ", first, d->size);
    dg_cli_error_release(d->rank == first, prefix);
    return -1;
}

int dg_dist_agree(dg_dist *d, int failed) { return settle(d, failed, 0) == 0 ? 0 : -1; }

int dg_dist_fail(dg_dist *d) {
    settle(d, 1, 0);
    return DG_EXIT_BAD_INPUT;
}

int dg_dist_agree_same(dg_dist *d, unsigned long long value) { return settle(d, 0, value); }

int dg_dist_end_setup(dg_dist *d, int failed) {
    if (dg_dist_agree(d, failed) != 0) return -1;
    dg_cli_error_release(1, NULL); /* what the set-up held without failing; later errors are said at once */
    return 0;
}

int dg_dist_same_args(dg_dist *d, const char *command, int argc, char **argv) {
    unsigned long long h = 1469598103934665603ull; /* FNV-1a over the arguments and their ends */
    for (int i = 0; i < argc; i++)
        for (const unsigned char *c = (const unsigned char *)argv[i];; c++) {
            h = (h ^ *c) * 1099511628211ull;
            if (!*c) break;
        }
    int differ = dg_dist_agree_same(d, h);
    if (differ == 1 && dg_dist_is_root(d)) dg_cli_error("%s: the ranks were started with different options", command);
    return differ ? -1 : 0;
}

#ifdef DNNGUARD_HAVE_MPI
static void sum_host_floats(dg_dist *d, float *buf, size_t count) {
    dg_watchdog_arm(d->watch, "the gradient all-reduce");
    for (size_t at = 0; at < count; at += PIECE) {
        size_t part = count - at < PIECE ? count - at : PIECE;
        MPI_Allreduce(MPI_IN_PLACE, buf + at, (int)part, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    dg_watchdog_disarm(d->watch);
}
#endif

void dg_dist_sum_device(dg_dist *d, const dg_backend *be, float *buf, size_t count) {
    (void)be, (void)buf, (void)count;
    if (!dg_dist_reduces(d) || count == 0) return;
    double t0 = dg_now_s();
    if (d->kind == DG_DIST_NCCL) {
        dg_watchdog_arm(d->watch, "queueing an NCCL all-reduce"); /* its first call connects to the peers */
        d->device->sum_async(d->comm, buf, count);
        dg_watchdog_disarm(d->watch);
        return; /* timed on the device: dg_dist_take_reduce_ms */
    }
#ifdef DNNGUARD_HAVE_MPI
    if (be == dg_backend_cpu()) {
        sum_host_floats(d, buf, count);
    } else {
        if (count > d->staging_floats) {
            float *grown = realloc(d->staging, sizeof(float) * count);
            if (!grown) {
                dg_cli_error("rank %d: out of memory staging %zu floats for MPI", d->rank, count);
                dg_watchdog_arm(d->watch, "MPI_Abort");
                MPI_Abort(MPI_COMM_WORLD, DG_EXIT_BAD_INPUT);
            }
            d->staging = grown;
            d->staging_floats = count;
        }
        be->download(d->staging, buf, sizeof(float) * count);
        sum_host_floats(d, d->staging, count);
        be->upload(buf, d->staging, sizeof(float) * count);
    }
#endif
    d->reduce_s += dg_now_s() - t0;
}

void dg_dist_wait(dg_dist *d) {
    if (d->kind == DG_DIST_NCCL) d->device->wait(d->comm);
}

double dg_dist_take_reduce_ms(dg_dist *d) {
    double ms = d->reduce_s * 1e3;
    if (d->kind == DG_DIST_NCCL && d->comm) ms = d->device->take_ms(d->comm);
    d->reduce_s = 0.0;
    return ms;
}
