/* bench/bench_allreduce.c — the gradient all-reduce alone: `mpirun -np N dg_bench_allreduce
 * [FLOATS] [REPS]` sums FLOATS floats of CPU-backend memory across the ranks (dg_dist_sum_device,
 * what `train --dist mpi` calls once per step) REPS times, each after a barrier, so the figure is
 * the reduction itself without the waiting for a slower rank that a training step's figure holds.
 * Prints one JSON line (rank 0). Not a test. */
#include <stdio.h>
#include <stdlib.h>

#include "host/cli.h"
#include "host/dist.h"

int main(int argc, char **argv) {
    size_t floats = argc > 1 ? strtoull(argv[1], NULL, 10) : 61706; /* LeNet-5's parameters */
    int reps = argc > 2 ? atoi(argv[2]) : 200;
    dg_dist d;
    if (floats < 1 || reps < 1 || dg_dist_start(&d, "mpi", "dg_bench_allreduce", 1) != 0) return 2;
    const dg_backend *be = dg_backend_cpu();
    float *buf = be->alloc(sizeof(float) * floats);
    if (!buf) return dg_dist_finish(&d, 2);
    double total = 0.0, best = 1e30;
    for (int r = 0; r <= reps; r++) {
        dg_dist_barrier(&d);
        double t0 = dg_now_s();
        dg_dist_sum_device(&d, be, buf, floats);
        double t = dg_now_s() - t0;
        if (r == 0) continue; /* the first one sets up MPI's buffers */
        total += t;
        if (t < best) best = t;
    }
    double mean_ms[1] = {total / reps * 1e3};
    dg_dist_sum_f64(&d, mean_ms, 1);
    if (dg_dist_is_root(&d))
        printf("{\"ranks\": %d, \"floats\": %zu, \"reps\": %d, \"mean_ms\": %.4f, \"best_ms_rank0\": %.4f}\n", d.size,
               floats, reps, mean_ms[0] / d.size, best * 1e3);
    be->free(buf);
    return dg_dist_finish(&d, 0);
}
