/* kernels/cpu/optim.c — CPU SGD and Adam/AdamW steps over one parameter tensor, element by element with
 * the formulas of kernels/math/optim.h (PyTorch's). Touches only w, its gradient and its state. */
#include "cpu.h"
#include "../math/optim.h"

void dg_cpu_sgd_step(size_t n, float *w, const float *g, float *buf, float lr, float momentum,
                     float weight_decay, int nesterov, int first) {
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        w[i] = dg_sgd_update(w[i], g[i], momentum != 0.0f ? &buf[i] : NULL, lr, momentum,
                             weight_decay, nesterov, first);
}

void dg_cpu_adam_step(size_t n, float *w, const float *g, float *m, float *v, double lr, double beta1,
                      double beta2, float eps, double weight_decay, int decoupled, int t) {
    const dg_adam_scalars s = dg_adam_prepare(lr, beta1, beta2, weight_decay, decoupled, t);
#pragma omp parallel for schedule(static) if (n >= DG_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        w[i] = dg_adam_update(w[i], g[i], &m[i], &v[i], (float)beta1, (float)beta2, eps, s);
}
