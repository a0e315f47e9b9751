/* host/build_info.c — `dnnguard --version`: the version and, one line each, what this binary was
 * built with and finds here (CPU libraries and threads, the CUDA backend and its device, MPI), so
 * that a log or a results file can say exactly which engine produced it. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "build_info.h"
#include "cli.h"
#include "../kernels/cpu/cpu.h"
#ifdef DNNGUARD_HAVE_CUDA
#include "../kernels/cuda/shapes.h"
#endif
#ifdef DNNGUARD_HAVE_MPI
#include <mpi.h>
#endif

/* one line: plain "key: value", or a JSON member "key": "value" */
static void item(FILE *out, int json, int first, const char *key, const char *value) {
    if (!json) {
        fprintf(out, "%s: %s\n", key, value);
        return;
    }
    fprintf(out, "%s\"%s\": ", first ? "{" : ", ", key);
    dg_json_string(out, value);
}

void dg_build_info(FILE *out, int json) {
    char line[1024], cpu[1400];
    if (json) item(out, 1, 1, "version", DG_VERSION);
    else fprintf(out, "dnnguard %s\n", DG_VERSION);
    dg_cpu_dnnl_describe(line, sizeof line);
    snprintf(cpu, sizeof cpu, "%d OpenMP threads; %s (kernels: %s); %s", omp_get_max_threads(), openblas_get_config(),
             openblas_get_corename(), line);
    item(out, json, 0, "cpu", cpu);
#ifdef DNNGUARD_HAVE_CUDA
    dg_cuda_describe(line, sizeof line);
    item(out, json, 0, "cuda", line);
#else
    item(out, json, 0, "cuda", "not built (cmake -DDNNGUARD_CUDA=ON)");
#endif
#ifdef DNNGUARD_HAVE_MPI
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len); /* callable before MPI_Init */
    lib[strcspn(lib, "\n,")] = '\0';     /* its first clause: name and version */
    item(out, json, 0, "mpi", lib);
#else
    item(out, json, 0, "mpi", "not built (apt-get install libopenmpi-dev): --dist mpi|nccl unavailable");
#endif
    if (json) fprintf(out, "}\n");
}
