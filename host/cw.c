/* host/cw.c — the fingerprint generator (see cw.h): Carlini–Wagner L2 over a whole batch of
 * targets at once. Per search step: δ starts at the source (x' = source), Adam minimises
 * ||x' − x0||² + α·(f + w·g) on δ; whenever an item meets its target on the continuous image, the
 * same δ is judged again on its 8-bit image (the one handed out), and the smallest distortion
 * that passes there is kept. α then moves by binary search per item. All tensors stay on the
 * device; per step the host reads back probabilities, distances and losses (n·(k + 2) floats). */
#include "cw.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "../kernels/math/cw.h"
#include "../kernels/math/pixel.h"
#include "session.h"

void dg_cw_defaults(dg_cw_opts *o, int colour) {
    o->lr = colour ? 0.001f : 0.005f;
    o->alpha_init = colour ? 0.5f : 20.0f;
    o->alpha_lo = 0.0f;
    o->alpha_hi = colour ? 1.0f : 40.0f;
    o->search_steps = 6;
    o->max_iter = 1000;
    o->conf_weight = 3.0f;
    o->margin = 0.005f;
    o->untargeted = 0;
}

/* device and host state of one run */
typedef struct cw_state {
    const dg_backend *be;
    int n, c, hw, k;
    size_t per, total;
    float *delta, *delta_prev, *best, *x0, *m, *v, *ddelta, *du, *dist, *mean, *std, *conf, *alpha, *loss;
    int32_t *targets;
    float *h_start, *h_probs, *h_dist, *h_loss, *h_alpha, *h_lo, *h_hi;
    float *h_best_sq, *h_step_sq; /* the squared L2 of the best 8-bit image: over the run, in this search step */
    int *h_pred, *h_candidate, *h_was, *h_met;
    int32_t *h_targets;
    int untargeted;
} cw_state;

static void release(cw_state *s) {
    float *dev[] = {s->delta, s->delta_prev, s->best, s->x0, s->m, s->v, s->ddelta, s->du, s->dist,
                    s->mean, s->std, s->conf, s->alpha, s->loss};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) s->be->free(dev[i]);
    s->be->free(s->targets);
    free(s->h_start), free(s->h_probs), free(s->h_dist), free(s->h_loss), free(s->h_alpha);
    free(s->h_lo), free(s->h_hi), free(s->h_best_sq), free(s->h_step_sq), free(s->h_pred), free(s->h_candidate);
    free(s->h_was), free(s->h_met), free(s->h_targets);
}

static int acquire(cw_state *s) {
    const dg_backend *be = s->be;
    size_t img = sizeof(float) * s->total, row = sizeof(float) * (size_t)s->n;
    float **dev_img[] = {&s->delta, &s->delta_prev, &s->best, &s->x0, &s->m, &s->v, &s->ddelta, &s->du};
    float **dev_row[] = {&s->dist, &s->conf, &s->alpha, &s->loss};
    int ok = 1;
    for (size_t i = 0; i < sizeof dev_img / sizeof *dev_img; i++) ok &= (*dev_img[i] = be->alloc(img)) != NULL;
    for (size_t i = 0; i < sizeof dev_row / sizeof *dev_row; i++) ok &= (*dev_row[i] = be->alloc(row)) != NULL;
    ok &= (s->mean = be->alloc(sizeof(float) * (size_t)s->c)) != NULL;
    ok &= (s->std = be->alloc(sizeof(float) * (size_t)s->c)) != NULL;
    ok &= (s->targets = be->alloc(sizeof(int32_t) * (size_t)s->n)) != NULL;
    s->h_start = malloc(img);
    s->h_probs = malloc(row * (size_t)s->k);
    s->h_dist = malloc(row), s->h_loss = malloc(row), s->h_alpha = malloc(row);
    s->h_lo = malloc(row), s->h_hi = malloc(row), s->h_best_sq = malloc(row), s->h_step_sq = malloc(row);
    s->h_pred = malloc(sizeof(int) * (size_t)s->n);
    s->h_candidate = malloc(sizeof(int) * (size_t)s->n);
    s->h_was = malloc(sizeof(int) * (size_t)s->n);
    s->h_met = malloc(sizeof(int) * (size_t)s->n);
    s->h_targets = malloc(sizeof(int32_t) * (size_t)s->n);
    return ok && s->h_start && s->h_probs && s->h_dist && s->h_loss && s->h_alpha && s->h_lo && s->h_hi &&
                   s->h_best_sq && s->h_step_sq && s->h_pred && s->h_candidate && s->h_was && s->h_met && s->h_targets
               ? 0
               : -1;
}

/* forward the box of `delta` (8-bit when quantize) through the frozen net and the logit terms;
 * probabilities, distances and losses come back to the host */
static void forward(cw_state *s, dg_net *net, const float *delta, int quantize, float conf_weight) {
    const dg_backend *be = s->be;
    float *u = net->nodes[0].y;
    dg_node *out = &net->nodes[dg_net_output(net)];
    be->cw_box_fwd(s->n, s->c, s->hw, delta, s->x0, s->mean, s->std, quantize, u, s->dist);
    dg_net_forward(net, u, s->n, DG_MODE_EVAL);
    dg_net_zero_grad(net);
    be->cw_logits(s->n, s->k, out->y, s->targets, s->conf, s->alpha, conf_weight, s->untargeted, net->probs, s->loss,
                  out->dy);
    be->download(s->h_probs, net->probs, sizeof(float) * (size_t)s->n * s->k);
    be->download(s->h_dist, s->dist, sizeof(float) * (size_t)s->n);
    be->download(s->h_loss, s->loss, sizeof(float) * (size_t)s->n);
    dg_argmax_rows(s->h_probs, s->n, s->k, s->h_pred);
}

static int meets(const cw_state *s, const dg_cw_item *it, int i, float margin) {
    if (s->untargeted) return s->h_pred[i] != it->target;
    return s->h_pred[i] == it->target && fabsf(s->h_probs[(size_t)i * s->k + it->target] - it->conf) < margin;
}

int dg_cw_run(dg_net *net, const float *mean, const float *std, dg_cw_item *items, int n, const dg_cw_opts *o,
              dg_cw_stats *stats) {
    if (n < 1 || n > net->batch || net->classes < 2) return -1;
    cw_state s = {.be = net->be, .n = n, .c = net->in_c, .hw = net->in_h * net->in_w, .k = net->classes,
                  .untargeted = o->untargeted};
    s.per = (size_t)s.c * s.hw;
    s.total = s.per * (size_t)n;
    if (acquire(&s) != 0) {
        release(&s);
        return -1;
    }
    const dg_backend *be = s.be;
    float *h_x0 = s.h_start; /* staging: first the sources, then the starting δ */
    int32_t *h_targets = s.h_targets;
    float *h_conf = s.h_loss; /* staging too: the losses come later */
    for (int i = 0; i < n; i++) {
        memcpy(h_x0 + (size_t)i * s.per, items[i].x0, sizeof(float) * s.per);
        h_targets[i] = items[i].target;
        h_conf[i] = items[i].conf;
        s.h_alpha[i] = o->alpha_init;
        s.h_lo[i] = o->alpha_lo;
        s.h_hi[i] = o->alpha_hi;
        s.h_best_sq[i] = INFINITY;
        items[i].success = 0;
    }
    be->upload(s.x0, h_x0, sizeof(float) * s.total);
    be->upload(s.targets, h_targets, sizeof(int32_t) * (size_t)n);
    be->upload(s.conf, h_conf, sizeof(float) * (size_t)n);
    be->upload(s.mean, mean, sizeof(float) * (size_t)s.c);
    be->upload(s.std, std, sizeof(float) * (size_t)s.c);
    for (size_t j = 0; j < s.total; j++) s.h_start[j] = dg_cw_unbox(h_x0[j]);
    int was_frozen = net->frozen;
    net->frozen = 1;

    for (int step = 0; step < o->search_steps; step++) {
        be->upload(s.delta, s.h_start, sizeof(float) * s.total);
        be->upload(s.alpha, s.h_alpha, sizeof(float) * (size_t)n);
        be->zero(s.m, sizeof(float) * s.total);
        be->zero(s.v, sizeof(float) * s.total);
        memset(s.h_met, 0, sizeof(int) * (size_t)n); /* an 8-bit image met the target at this α */
        for (int i = 0; i < n; i++) s.h_step_sq[i] = INFINITY;
        double previous = INFINITY;
        for (int it = 0; it < o->max_iter; it++) {
            forward(&s, net, s.delta, 0, o->conf_weight);
            if (stats) stats->iterations++;
            int candidates = 0, met_all = 1;
            double objective = 0.0;
            for (int i = 0; i < n; i++) {
                s.h_candidate[i] = meets(&s, &items[i], i, o->margin) && s.h_dist[i] < s.h_step_sq[i];
                candidates += s.h_candidate[i];
                objective += (double)s.h_dist[i] + s.h_loss[i];
            }
            be->zero(s.du, sizeof(float) * s.total);
            dg_net_backward(net, n, s.du);
            be->cw_box_bwd(n, s.c, s.hw, s.delta, s.x0, s.std, s.du, s.ddelta);
            if (candidates) be->copy(s.delta_prev, s.delta, sizeof(float) * s.total);
            be->adam_step(s.total, s.delta, s.ddelta, s.m, s.v, o->lr, 0.9, 0.999, 1e-8f, 0.0, 0, it + 1);
            if (candidates) { /* judge the candidates on their 8-bit images */
                memcpy(s.h_was, s.h_candidate, sizeof(int) * (size_t)n);
                forward(&s, net, s.delta_prev, 1, o->conf_weight);
                if (stats) stats->judge_forwards++;
                /* success at this α is any 8-bit image that meets the target (C&W's per-step best
                 * score), whether or not it beats an earlier α's distortion; the run keeps the smallest */
                for (int i = 0; i < n; i++) {
                    if (!s.h_was[i] || !meets(&s, &items[i], i, o->margin) || !(s.h_dist[i] < s.h_step_sq[i])) continue;
                    s.h_step_sq[i] = s.h_dist[i];
                    s.h_met[i] = 1;
                    if (!(s.h_dist[i] < s.h_best_sq[i])) continue;
                    s.h_best_sq[i] = s.h_dist[i];
                    items[i].success = 1;
                    items[i].p_target = s.h_probs[(size_t)i * s.k + items[i].target];
                    be->copy(s.best + (size_t)i * s.per, s.delta_prev + (size_t)i * s.per, sizeof(float) * s.per);
                }
            }
            for (int i = 0; i < n; i++) met_all &= s.h_met[i];
            if (met_all) break; /* every item has an 8-bit image at this α: search smaller α next */
            if (o->max_iter >= 10 && (it + 1) % (o->max_iter / 10) == 0) { /* C&W's early abort */
                if (objective > previous * 0.9999) break;
                previous = objective;
            }
        }
        if (getenv("DG_CW_DEBUG")) {
            for (int i = 0; i < n; i++)
                fprintf(stderr, "step %d item %d alpha %.3f met %d p_t %.4f pred %d dist %.3f loss %.4f\n", step, i,
                        (double)s.h_alpha[i], s.h_met[i], (double)s.h_probs[(size_t)i * s.k + items[i].target],
                        s.h_pred[i], (double)s.h_dist[i], (double)s.h_loss[i]);
        }
        for (int i = 0; i < n; i++) { /* binary search: success → smaller α, failure → larger */
            if (s.h_met[i]) s.h_hi[i] = fminf(s.h_hi[i], s.h_alpha[i]);
            else s.h_lo[i] = fmaxf(s.h_lo[i], s.h_alpha[i]);
            s.h_alpha[i] = 0.5f * (s.h_lo[i] + s.h_hi[i]);
        }
    }
    net->frozen = was_frozen;
    /* the best 8-bit images */
    float *h_best = s.h_start;
    be->download(h_best, s.best, sizeof(float) * s.total);
    for (int i = 0; i < n; i++) {
        if (!items[i].success) continue;
        items[i].l2 = sqrtf(s.h_best_sq[i]);
        for (size_t j = 0; j < s.per; j++)
            items[i].pixels[j] = (uint8_t)dg_pixel_quantize(dg_cw_box(h_best[(size_t)i * s.per + j]));
    }
    release(&s);
    return 0;
}
