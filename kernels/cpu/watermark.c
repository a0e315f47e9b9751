/* kernels/cpu/watermark.c — the watermark regularizer op on the CPU: the key's weights mapped to
 * the digit scale, and the regularizer's gradient added to exactly those weights
 * (kernels/math/watermark.h). Knows nothing of keys or files. */
#include "cpu.h"
#include "../math/watermark.h"

void dg_cpu_wm_reg(int n, const float *w, const int32_t *idx, const float *digits, float a, float b, float lambda,
                   float *mapped, float *dw) {
    const float scale = 2.0f * lambda / (float)n;
    for (int k = 0; k < n; k++) {
        float m = dg_wm_map(w[idx[k]], a, b);
        mapped[k] = m;
        if (dw) dw[idx[k]] += dg_wm_grad(m, digits[k], a, scale);
    }
}
