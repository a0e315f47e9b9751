/* host/build_info.h — what `dnnguard --version` prints. */
#ifndef DG_BUILD_INFO_H
#define DG_BUILD_INFO_H

#include <stdio.h>

#define DG_VERSION "0.1"

/* The version line, then one line each for the CPU libraries, the CUDA backend and MPI. */
void dg_build_info(FILE *out);

#endif
