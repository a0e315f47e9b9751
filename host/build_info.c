/* host/build_info.c — `dnnguard --version`: the version and, one line each, what this binary was
 * built with and finds here (CPU libraries and threads, the CUDA backend and its device, MPI), so
 * that a log or a results file can say exactly which engine produced it. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "build_info.h"
#include "../kernels/cpu/cpu.h"
#ifdef DNNGUARD_HAVE_CUDA
#include "../kernels/cuda/shapes.h"
#endif
#ifdef DNNGUARD_HAVE_MPI
#include <mpi.h>
#endif

void dg_build_info(FILE *out) {
    char line[1024];
    fprintf(out, "dnnguard %s\n", DG_VERSION);
    dg_cpu_dnnl_describe(line, sizeof line);
    fprintf(out, "cpu: %d OpenMP threads; %s (kernels: %s); %s\n", omp_get_max_threads(), openblas_get_config(),
            openblas_get_corename(), line);
#ifdef DNNGUARD_HAVE_CUDA
    dg_cuda_describe(line, sizeof line);
    fprintf(out, "cuda: %s\n", line);
#else
    fprintf(out, "cuda: not built (cmake -DDNNGUARD_CUDA=ON)\n");
#endif
#ifdef DNNGUARD_HAVE_MPI
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len); /* callable before MPI_Init */
    lib[strcspn(lib, "\n,")] = '\0';     /* its first clause: name and version */
    fprintf(out, "mpi: %s\n", lib);
#else
    fprintf(out, "mpi: not built (apt-get install libopenmpi-dev): --dist mpi|nccl unavailable\n");
#endif
}
