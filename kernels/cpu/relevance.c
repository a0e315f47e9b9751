/* kernels/cpu/relevance.c — CPU steps of the Deep Taylor relevance rules: per-element loops over
 * kernels/math/relevance.h. The convolutions and GEMMs of the rules are the ordinary conv and
 * linear ops with positive or negative weight parts; nothing here knows about nets. */
#include "cpu.h"
#include "../math/relevance.h"

void dg_cpu_lrp_ratio(size_t n, const float *r, const float *z, float eps, float *s) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) s[i] = dg_lrp_ratio(r[i], z[i], eps);
}

void dg_cpu_lrp_share(size_t n, float alpha, const float *x, const float *c, float *rin) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) rin[i] += dg_lrp_share(alpha, x[i], c[i]);
}
