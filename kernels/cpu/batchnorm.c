/* kernels/cpu/batchnorm.c — CPU batch norm over [n, c, hw]: training forward (batch statistics,
 * running-statistics update), eval forward, backward (dx added to or written, backend.h). One
 * channel per OpenMP iteration, each channel's sums taken in double in a fixed order (lanes_add),
 * so results do not depend on the thread count. */
#include <math.h>
#include "cpu.h"
#include "../math/batchnorm.h"

/* x[i, ch, j] for the NCHW layout flattened to [n, c, hw] */
#define DG_BN_PLANE(p, i, ch) ((p) + ((size_t)(i) * (size_t)c + (size_t)(ch)) * (size_t)hw)

/* A channel's sums are kept in LANES partial double sums, element j of each plane going to lane
 * j mod LANES: independent adds vectorise (one running double sum is a chain of dependent adds, 4
 * cycles each), and the lanes and their final order are fixed, so the result does not depend on the
 * thread count or the machine. */
enum { LANES = 16 };

/* acc[j mod LANES] += x[j] */
static void lanes_add(double acc[LANES], const float *x, int hw) {
    int j = 0;
    for (; j + LANES <= hw; j += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += x[j + k];
    for (int k = 0; j < hw; j++, k++) acc[k] += x[j];
}

/* acc[j mod LANES] += (x[j] − mean)² */
static void lanes_add_sq_dev(double acc[LANES], const float *x, int hw, double mean) {
    int j = 0;
    for (; j + LANES <= hw; j += LANES)
        for (int k = 0; k < LANES; k++) {
            const double d = (double)x[j + k] - mean;
            acc[k] += d * d;
        }
    for (int k = 0; j < hw; j++, k++) {
        const double d = (double)x[j] - mean;
        acc[k] += d * d;
    }
}

/* dy_acc[j mod LANES] += dy[j]; dyx_acc[j mod LANES] += dy[j]·x̂[j] (x̂ in float, as the forward has it) */
static void lanes_add_dy(double dy_acc[LANES], double dyx_acc[LANES], const float *dy, const float *x, int hw,
                         float mean, float invstd) {
    int j = 0;
    for (; j + LANES <= hw; j += LANES)
        for (int k = 0; k < LANES; k++) {
            dy_acc[k] += dy[j + k];
            dyx_acc[k] += (double)dy[j + k] * (double)dg_bn_xhat(x[j + k], mean, invstd);
        }
    for (int k = 0; j < hw; j++, k++) {
        dy_acc[k] += dy[j];
        dyx_acc[k] += (double)dy[j] * (double)dg_bn_xhat(x[j], mean, invstd);
    }
}

/* The lanes' total, pairwise in a fixed order. */
static double lanes_total(const double acc[LANES]) {
    double half[LANES / 2];
    for (int k = 0; k < LANES / 2; k++) half[k] = acc[k] + acc[k + LANES / 2];
    for (int w = LANES / 4; w >= 1; w /= 2)
        for (int k = 0; k < w; k++) half[k] += half[k + w];
    return half[0];
}

void dg_cpu_bn_fwd_train(int n, int c, int hw, const float *x, const float *gamma, const float *beta,
                         float *running_mean, float *running_var, float momentum, float eps,
                         float *y, float *save_mean, float *save_invstd) {
    const double count = (double)n * (double)hw;
    if (n == 0 || hw == 0) return; /* no statistics: the running ones stay as they are (as CUDA, torch) */
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        /* two passes (mean, then Σ(x − mean)²) in double: no cancellation for large means */
        double acc[LANES] = {0};
        for (int i = 0; i < n; i++) lanes_add(acc, DG_BN_PLANE(x, i, ch), hw);
        const double mean = lanes_total(acc) / count;
        double sq[LANES] = {0};
        for (int i = 0; i < n; i++) lanes_add_sq_dev(sq, DG_BN_PLANE(x, i, ch), hw, mean);
        const double var = lanes_total(sq) / count; /* biased: what normalises */
        const float mean_f = (float)mean;
        const float invstd_f = (float)dg_bn_invstd(var, (double)eps);
        save_mean[ch] = mean_f;
        save_invstd[ch] = invstd_f;
        running_mean[ch] = (float)dg_bn_running(running_mean[ch], mean, (double)momentum);
        running_var[ch] = (float)dg_bn_running(running_var[ch], dg_bn_unbiased(var, count),
                                               (double)momentum);

        const float g = gamma[ch], b = beta[ch];
        for (int i = 0; i < n; i++) {
            const float *xp = DG_BN_PLANE(x, i, ch);
            float *yp = DG_BN_PLANE(y, i, ch);
            for (int j = 0; j < hw; j++) yp[j] = dg_bn_apply(xp[j], mean_f, invstd_f, g, b);
        }
    }
}

void dg_cpu_bn_fwd_eval(int n, int c, int hw, const float *x, const float *gamma, const float *beta,
                        const float *running_mean, const float *running_var, float eps, float *y) {
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float mean = running_mean[ch];
        const float invstd = (float)dg_bn_invstd((double)running_var[ch], (double)eps);
        const float g = gamma[ch], b = beta[ch];
        for (int i = 0; i < n; i++) {
            const float *xp = DG_BN_PLANE(x, i, ch);
            float *yp = DG_BN_PLANE(y, i, ch);
            for (int j = 0; j < hw; j++) yp[j] = dg_bn_apply(xp[j], mean, invstd, g, b);
        }
    }
}

/* Uses the statistics saved by the training forward; x̂ is recomputed rather than stored. */
void dg_cpu_bn_bwd(int n, int c, int hw, const float *x, const float *gamma, const float *save_mean,
                   const float *save_invstd, const float *dy, float *dx, int accumulate, float *dgamma,
                   float *dbeta) {
    const double count = (double)n * (double)hw;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float mean = save_mean[ch], invstd = save_invstd[ch];
        double dy_acc[LANES] = {0}, dyx_acc[LANES] = {0};
        for (int i = 0; i < n; i++)
            lanes_add_dy(dy_acc, dyx_acc, DG_BN_PLANE(dy, i, ch), DG_BN_PLANE(x, i, ch), hw, mean, invstd);
        const double sum_dy = lanes_total(dy_acc), sum_dy_xhat = lanes_total(dyx_acc);
        dbeta[ch] += (float)sum_dy;
        dgamma[ch] += (float)sum_dy_xhat;

        const float gi = gamma[ch] * invstd;
        const float mdy = (float)(sum_dy / count), mdyx = (float)(sum_dy_xhat / count);
        for (int i = 0; i < n; i++) {
            const float *xp = DG_BN_PLANE(x, i, ch);
            const float *dyp = DG_BN_PLANE(dy, i, ch);
            float *dxp = DG_BN_PLANE(dx, i, ch);
            for (int j = 0; j < hw; j++)
                dxp[j] = dg_grad_out(accumulate, dxp[j],
                                     dg_bn_bwd_dx(dyp[j], dg_bn_xhat(xp[j], mean, invstd), gi, mdy, mdyx));
        }
    }
}

/* Eval-mode backward (running statistics are constants): dx += γ·invstd·dy; dγ += Σ dy·x̂ and
 * dβ += Σ dy when asked (NULL skips them). Gradients to the input of a frozen net — C&W
 * fingerprints, relevance checks — flow through here. */
void dg_cpu_bn_bwd_eval(int n, int c, int hw, const float *x, const float *gamma, const float *running_mean,
                        const float *running_var, float eps, const float *dy, float *dx, int accumulate,
                        float *dgamma, float *dbeta) {
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float mean = running_mean[ch];
        const float invstd = (float)dg_bn_invstd((double)running_var[ch], (double)eps);
        const float gi = gamma[ch] * invstd;
        double dy_acc[LANES] = {0}, dyx_acc[LANES] = {0};
        for (int i = 0; i < n; i++) {
            const float *dyp = DG_BN_PLANE(dy, i, ch);
            float *dxp = DG_BN_PLANE(dx, i, ch);
            for (int j = 0; j < hw; j++) dxp[j] = dg_grad_out(accumulate, dxp[j], gi * dyp[j]);
            if (dgamma || dbeta) lanes_add_dy(dy_acc, dyx_acc, dyp, DG_BN_PLANE(x, i, ch), hw, mean, invstd);
        }
        const double sum_dy = lanes_total(dy_acc), sum_dy_xhat = lanes_total(dyx_acc);
        if (dbeta) dbeta[ch] += (float)sum_dy;
        if (dgamma) dgamma[ch] += (float)sum_dy_xhat;
    }
}
