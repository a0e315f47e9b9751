/* kernels/cpu/cw.c — the CPU ops of fingerprint generation (Carlini–Wagner L2 with confidence
 * control, kernels/math/cw.h): the tanh box with the data set's normalisation and the distance to
 * the source image, its backward, and the two logit terms with their gradient. Knows nothing of
 * users, keys or files. */
#include "cpu.h"
#include "../math/cw.h"
#include "../math/pixel.h"
#include "../math/softmax.h"

void dg_cpu_cw_box_fwd(int n, int c, int hw, const float *delta, const float *x0, const float *mean, const float *std,
                       int quantize, float *u, float *dist) {
    const size_t per = (size_t)c * (size_t)hw;
#pragma omp parallel for schedule(static) if ((size_t)n * per >= DG_CPU_PAR_MIN)
    for (int i = 0; i < n; i++) {
        double sum = 0.0;
        for (int ch = 0; ch < c; ch++)
            for (int j = 0; j < hw; j++) {
                size_t at = (size_t)i * per + (size_t)ch * hw + j;
                float xp = dg_cw_box(delta[at]);
                if (quantize) {
                    float b = dg_pixel_quantize(xp);
                    u[at] = dg_pixel_normalize(b, dg_pixel_scale(std[ch]), dg_pixel_shift(mean[ch], std[ch]));
                    xp = b / 255.0f;
                } else {
                    u[at] = dg_cw_normalize(xp, mean[ch], std[ch]);
                }
                float d = xp - x0[at];
                sum += (double)d * d;
            }
        dist[i] = (float)sum;
    }
}

void dg_cpu_cw_box_bwd(int n, int c, int hw, const float *delta, const float *x0, const float *std, const float *du,
                       float *ddelta) {
    const size_t per = (size_t)c * (size_t)hw, total = (size_t)n * per;
#pragma omp parallel for schedule(static) if (total >= DG_CPU_PAR_MIN)
    for (size_t at = 0; at < total; at++) {
        int ch = (int)((at % per) / (size_t)hw);
        ddelta[at] = dg_cw_delta_grad(du[at], std[ch], dg_cw_box(delta[at]), x0[at]);
    }
}

void dg_cpu_cw_logits(int n, int k, const float *logits, const int32_t *targets, const float *conf, const float *alpha,
                      float conf_weight, int untargeted, float *probs, float *loss, float *dlogits) {
#pragma omp parallel for schedule(static) if ((size_t)n * (size_t)k >= DG_CPU_PAR_MIN)
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        float *p = probs + (size_t)i * k, *d = dlogits + (size_t)i * k;
        const int t = targets[i];
        float mx = z[0];
        int other = t == 0 ? 1 : 0; /* the strongest class other than t (k ≥ 2), lowest index on ties */
        for (int j = 0; j < k; j++) {
            if (z[j] > mx) mx = z[j];
            if (j != t && z[j] > z[other]) other = j;
        }
        double sum = 0.0;
        for (int j = 0; j < k; j++) {
            p[j] = dg_softmax_exp(z[j], mx);
            sum += p[j];
        }
        const float sum_f = (float)sum;
        for (int j = 0; j < k; j++) p[j] = dg_softmax_prob(p[j], sum_f);
        if (untargeted) { /* leave class t: f = max(z_t − max_{j≠t} z_j, 0), the same hinge mirrored */
            const float f = dg_cw_target_term(z[t], z[other]);
            for (int j = 0; j < k; j++) d[j] = -alpha[i] * dg_cw_target_grad(j == t, j == other, f);
            loss[i] = alpha[i] * f;
            continue;
        }
        const float f = dg_cw_target_term(z[other], z[t]), log_sum = logf(sum_f);
        double g = 0.0;
        for (int j = 0; j < k; j++) {
            float q = dg_cw_conf_q(j == t, conf[i], k);
            g += dg_cw_conf_term(q, z[j] - mx - log_sum);
            d[j] = alpha[i] * (dg_cw_target_grad(j == t, j == other, f) + conf_weight * dg_cw_conf_grad(p[j], q));
        }
        loss[i] = alpha[i] * (f + conf_weight * (float)g);
    }
}
