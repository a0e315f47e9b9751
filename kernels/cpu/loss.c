/* kernels/cpu/loss.c — CPU fused softmax cross-entropy over [n, k] logits (with label smoothing):
 * probabilities, per-row loss, and the scaled gradient (written, not accumulated). Labels are validated by the host;
 * this file assumes 0 ≤ label < k. One row per OpenMP iteration, each row in a fixed order. */
#include "cpu.h"
#include "../math/softmax.h"

void dg_cpu_softmax_xent(int n, int k, const float *logits, const int32_t *labels, float *probs,
                         float *loss, float *dlogits, float grad_scale, float smoothing) {
#pragma omp parallel for schedule(static) if ((size_t)n * (size_t)k >= DG_CPU_PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)k;
        float *p = probs + (size_t)i * (size_t)k;
        float mx = z[0];
        for (int j = 1; j < k; j++)
            if (z[j] > mx) mx = z[j];
        /* the shifted exponentials go to probs first, then are normalised in place */
        double sum = 0.0;
        for (int j = 0; j < k; j++) {
            float e = dg_softmax_exp(z[j], mx);
            p[j] = e;
            sum += e;
        }
        const float sum_f = (float)sum;
        for (int j = 0; j < k; j++) p[j] = dg_softmax_prob(p[j], sum_f);
        double shifted = 0.0; /* Σ (z − max), for label smoothing only */
        for (int j = 0; smoothing != 0.0f && j < k; j++) shifted += z[j] - mx;
        const int label = labels[i];
        loss[i] = dg_xent_loss(z[label], mx, sum_f, smoothing, (float)shifted, k);
        if (dlogits) {
            float *d = dlogits + (size_t)i * (size_t)k;
            for (int j = 0; j < k; j++) d[j] = dg_xent_grad(p[j], j == label, smoothing, k, grad_scale);
        }
    }
}
