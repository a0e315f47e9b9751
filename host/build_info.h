/* host/build_info.h — what `dnnguard --version` prints. */
#ifndef DG_BUILD_INFO_H
#define DG_BUILD_INFO_H

#include <stdio.h>

#define DG_VERSION "0.1"

/* The version line, then one line each for the CPU libraries, the CUDA backend and MPI; with json,
 * one JSON object {"version", "cpu", "cuda", "mpi"} on one line instead. */
void dg_build_info(FILE *out, int json);

#endif
