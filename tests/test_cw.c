/* tests/test_cw.c — the fingerprint-generation ops on the CPU: the logit terms' gradient
 * (Carlini–Wagner's target term plus the confidence term) and the tanh box's gradient (with the
 * data set's normalisation and the distance to the source) by finite differences and against
 * double references; the box's inverse. Needs only kernels/. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels/cpu/cpu.h"
#include "host/data.h"
#include "kernels/math/cw.h"
#include "kernels/math/pixel.h"

enum { N = 4, K = 10 };

typedef struct logits_ctx {
    float *z;
    int32_t *t;
    float *conf, *alpha, weight;
    int untargeted;
    float probs[N * K], loss[N], d[N * K];
} logits_ctx;

static double logits_loss(void *p) {
    logits_ctx *c = p;
    dg_cpu_cw_logits(N, K, c->z, c->t, c->conf, c->alpha, c->weight, c->untargeted, c->probs, c->loss, c->d);
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += c->loss[i];
    return sum;
}

/* the loss of one row in double, straight from the definition */
static double row_loss_ref(const float *z, int t, double conf, double alpha, double weight) {
    double mx = z[0], other = -INFINITY, sum = 0.0;
    for (int j = 0; j < K; j++) {
        if (z[j] > mx) mx = z[j];
        if (j != t && z[j] > other) other = z[j];
    }
    for (int j = 0; j < K; j++) sum += exp(z[j] - mx);
    double f = fmax(other - z[t], 0.0), g = 0.0;
    for (int j = 0; j < K; j++) {
        double q = j == t ? conf : (1.0 - conf) / (K - 1), p = exp(z[j] - mx) / sum;
        g += q * log(q / p);
    }
    return alpha * (f + weight * g);
}

static void test_logits(void) {
    float z[N * K], conf[N] = {0.2f, 0.3f, 0.4f, 0.9f}, alpha[N] = {20.0f, 1.0f, 0.5f, 7.0f};
    int32_t t[N] = {0, 9, 4, 7};
    dg_test_fill(z, N * K, 3, -3.0f, 3.0f);
    z[3 * K + 7] = 8.0f; /* row 3: the target already wins, f = 0: only the confidence term acts */
    logits_ctx c = {.z = z, .t = t, .conf = conf, .alpha = alpha, .weight = 10.0f};
    logits_loss(&c);
    float analytic[N * K];
    memcpy(analytic, c.d, sizeof analytic);
    double worst_ref = 0.0;
    for (int i = 0; i < N; i++) {
        double ref = row_loss_ref(z + i * K, t[i], conf[i], alpha[i], 10.0);
        worst_ref = fmax(worst_ref, fabs(c.loss[i] - ref) / fmax(1.0, fabs(ref)));
    }
    CHECK(worst_ref < 1e-5, "the loss against the double definition: %g", worst_ref);
    /* central differences of the double definition (the float loss itself is too coarse for them) */
    double fd = 0.0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < K; j++) {
            float row[K];
            memcpy(row, z + i * K, sizeof row);
            const float h = 1.0f / 1024.0f;
            row[j] = z[i * K + j] + h;
            double lp = row_loss_ref(row, t[i], conf[i], alpha[i], 10.0);
            row[j] = z[i * K + j] - h;
            double lm = row_loss_ref(row, t[i], conf[i], alpha[i], 10.0);
            double num = (lp - lm) / (2.0 * h), ana = analytic[i * K + j];
            fd = fmax(fd, fabs(num - ana) / fmax(fabs(num) + fabs(ana), 1e-3 * alpha[i]));
        }
    CHECK(fd < 1e-3, "logit-term gradient against finite differences of the definition: worst relative error %g", fd);
    double s = 0.0;
    for (int j = 0; j < K; j++) s += analytic[3 * K + j];
    CHECK(fabs(s) < 1e-5, "a softmax-only gradient sums to zero over the row (%g)", s);
    CHECK(analytic[3 * K + 7] != 0.0f, "the confidence term still pushes a winning target toward c");
    /* the weight scales only the confidence term */
    c.weight = 0.0f;
    logits_loss(&c);
    int only_f = 1;
    for (int j = 0; j < K; j++) only_f &= c.d[3 * K + j] == 0.0f; /* f = 0 and no confidence term */
    CHECK(only_f && c.loss[3] == 0.0f, "with weight 0 a row whose target wins costs nothing");
    CHECK(c.d[0 * K + 0] == -20.0f, "the target's gradient is −alpha while the target loses (%g)", (double)c.d[0]);
    /* untargeted: leave t; f = max(z_t − max_{j≠t} z_j, 0) */
    c.untargeted = 1;
    logits_loss(&c);
    double worst_u = 0.0;
    int grads_ok = 1;
    for (int i = 0; i < N; i++) {
        const float *row = z + i * K;
        int other = t[i] == 0 ? 1 : 0;
        for (int j = 0; j < K; j++)
            if (j != t[i] && row[j] > row[other]) other = j;
        double f = fmax(row[t[i]] - row[other], 0.0);
        worst_u = fmax(worst_u, fabs(c.loss[i] - alpha[i] * f));
        for (int j = 0; j < K; j++) {
            float want = f > 0 ? (j == t[i] ? alpha[i] : (j == other ? -alpha[i] : 0.0f)) : 0.0f;
            grads_ok &= c.d[i * K + j] == want;
        }
    }
    CHECK(worst_u < 1e-5 && grads_ok, "untargeted: loss alpha·max(z_t − max others, 0) (%g) and its ±alpha gradient",
          worst_u);
}

enum { BN = 2, BC = 3, BHW = 7 };

typedef struct box_ctx {
    float *delta, *x0, *r;
    float mean[BC], std[BC];
    float u[BN * BC * BHW], dist[BN];
} box_ctx;

/* L = Σ r·u + Σ dist: its δ-gradient is cw_box_bwd with du = r */
static double box_loss(void *p) {
    box_ctx *c = p;
    dg_cpu_cw_box_fwd(BN, BC, BHW, c->delta, c->x0, c->mean, c->std, 0, c->u, c->dist);
    double sum = 0.0;
    for (int i = 0; i < BN * BC * BHW; i++) sum += (double)c->r[i] * c->u[i];
    for (int i = 0; i < BN; i++) sum += c->dist[i];
    return sum;
}

static void test_box(void) {
    enum { T = BN * BC * BHW };
    float delta[T], x0[T], r[T], grad[T];
    dg_test_fill(delta, T, 5, -2.0f, 2.0f);
    dg_test_fill(x0, T, 6, 0.0f, 1.0f);
    dg_test_fill(r, T, 7, -1.0f, 1.0f);
    box_ctx c = {delta, x0, r, {0.5f, 0.4f, 0.45f}, {0.25f, 0.3f, 0.2f}, {0}, {0}};
    box_loss(&c);
    double worst = 0.0;
    for (int i = 0; i < BN; i++) {
        double d = 0.0;
        for (int j = 0; j < BC * BHW; j++) {
            double xp = 0.5 * (tanh((double)delta[i * BC * BHW + j]) + 1.0), e = xp - x0[i * BC * BHW + j];
            d += e * e;
            int ch = j / BHW;
            worst = fmax(worst, fabs(c.u[i * BC * BHW + j] - (xp - c.mean[ch]) / c.std[ch]));
        }
        worst = fmax(worst, fabs(c.dist[i] - d));
    }
    CHECK(worst < 1e-5, "box forward against double: %g", worst);
    dg_cpu_cw_box_bwd(BN, BC, BHW, delta, x0, c.std, r, grad);
    /* per element, L's dependence on δ_j is r_j·u_j + (x'_j − x0_j)²: central differences in double */
    double fd = 0.0;
    for (int j = 0; j < T; j++) {
        int ch = (j / BHW) % BC;
        double h = 1e-4, l[2];
        for (int s = 0; s < 2; s++) {
            double xp = 0.5 * (tanh((double)delta[j] + (s ? -h : h)) + 1.0);
            l[s] = r[j] * (xp - c.mean[ch]) / c.std[ch] + (xp - x0[j]) * (xp - x0[j]);
        }
        double num = (l[0] - l[1]) / (2.0 * h);
        fd = fmax(fd, fabs(num - grad[j]) / fmax(fabs(num) + fabs(grad[j]), 1e-4));
    }
    CHECK(fd < 1e-4, "box gradient against finite differences of the definition: worst relative error %g", fd);
    double fd_op = dg_gradcheck(delta, grad, T, box_loss, &c, 1.0f / 256.0f, T, 1e-2);
    CHECK(fd_op < 5e-3, "...and against finite differences of the float op: %g", fd_op);
    double inv = 0.0;
    for (int v = 0; v <= 255; v++) inv = fmax(inv, fabs(dg_cw_box(dg_cw_unbox(v / 255.0f)) - v / 255.0f));
    CHECK(inv < 1e-5, "box(unbox(x)) = x on the 8-bit grid, 0 and 1 included: %g", inv);
}

/* the 8-bit box gives the net exactly the input the data loader makes from those bytes */
static void test_quantized_box(void) {
    enum { T = BN * BC * BHW };
    float delta[T], x0[T], u[T], dist[BN], from_loader[BC * BHW];
    uint8_t bytes[T];
    dg_test_fill(delta, T, 8, -4.0f, 4.0f);
    dg_test_fill(x0, T, 9, 0.0f, 1.0f);
    dg_dataset d = {.n = BN, .c = BC, .h = 1, .w = BHW, .classes = 10, .images = bytes,
                    .mean = {0.49f, 0.48f, 0.45f}, .std = {0.25f, 0.24f, 0.26f}};
    dg_cpu_cw_box_fwd(BN, BC, BHW, delta, x0, d.mean, d.std, 1, u, dist);
    for (int j = 0; j < T; j++) bytes[j] = (uint8_t)dg_pixel_quantize(dg_cw_box(delta[j]));
    int same = 1;
    double dist_err = 0.0;
    for (int i = 0; i < BN; i++) {
        dg_data_image_f32(&d, i, from_loader);
        double sum = 0.0;
        for (int j = 0; j < BC * BHW; j++) {
            same &= from_loader[j] == u[i * BC * BHW + j];
            double e = bytes[i * BC * BHW + j] / 255.0 - x0[i * BC * BHW + j];
            sum += e * e;
        }
        dist_err = fmax(dist_err, fabs(sum - dist[i]));
    }
    CHECK(same, "8-bit box input equals the data loader's normalisation bit for bit");
    CHECK(dist_err < 1e-5, "8-bit box distance is to the 8-bit image: %g", dist_err);
}

int main(void) {
    test_logits();
    test_box();
    test_quantized_box();
    return dg_test_done("test_cw");
}
