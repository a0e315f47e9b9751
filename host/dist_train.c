/* host/dist_train.c — the data-parallel parts of a training step (see dist_train.h). Why the
 * running statistics travel in the gradient reduction: every rank then ends each step with the
 * same statistics (the mean over ranks of each rank's update, which for running_mean is exactly
 * the update from the mean of the shards' batch means), so rank 0's checkpoint holds the whole
 * state and a resumed run continues as the uninterrupted one would, without a second collective. */
#include "dist_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static float *grad_of(const dg_net *net, const dg_param *p) { return net->grad_arena + p->offset; }
static float *param_of(const dg_net *net, const dg_param *p) { return net->param_arena + p->offset; }

/* Launch, in plan order, every bucket the walk has finished with (after node `node`). Every rank
 * launches the same buckets in the same order, which NCCL requires. */
static void launch_ready(dg_dist_grads *g, int node) {
    while (g->next < g->n_buckets) {
        const dg_grad_bucket *b = &g->buckets[g->next];
        if (b->ready_node >= 0 && b->ready_node < node) break; /* its last writer is still to run */
        if (b->ready_node >= 0) {
            dg_dist_sum_device(g->dist, g->net->be, g->net->grad_arena + b->begin, b->end - b->begin);
            g->launched[g->next] = 1;
        }
        g->next++; /* a held bucket is passed over here and launched by dg_dist_grads_finish */
    }
}

static void after_backward_node(void *ctx, int node) { launch_ready(ctx, node); }

int dg_dist_grads_init(dg_dist_grads *g, dg_dist *d, dg_net *net, int held_param) {
    memset(g, 0, sizeof *g);
    g->dist = d;
    g->net = net;
    if (!dg_dist_reduces(d) || d->kind != DG_DIST_NCCL) return 0;
    /* NCCL: buckets overlap the backward walk. MPI on the CPU backend gets one reduction of the
     * whole arena after the walk: the CPU's cores are busy with the walk itself, and MPI makes no
     * progress on a non-blocking reduction unless called, so overlapping would gain nothing. */
    g->n_buckets = dg_grad_buckets_plan(net, DG_BUCKET_DEFAULT_FLOATS, held_param, &g->buckets);
    if (g->n_buckets < 0) return -1;
    g->launched = calloc((size_t)g->n_buckets + 1, 1);
    if (!g->launched) return -1;
    net->after_backward_node = after_backward_node;
    net->after_backward_ctx = g;
    return 0;
}

void dg_dist_grads_free(dg_dist_grads *g) {
    if (g->net && g->net->after_backward_ctx == g) {
        g->net->after_backward_node = NULL;
        g->net->after_backward_ctx = NULL;
    }
    free(g->buckets);
    free(g->launched);
    memset(g, 0, sizeof *g);
}

void dg_dist_grads_begin(dg_dist_grads *g) {
    if (!dg_dist_reduces(g->dist)) return;
    dg_net *net = g->net;
    float share = 1.0f / (float)g->dist->size;
    for (int i = 0; i < net->n_params; i++) {
        const dg_param *p = &net->params[i];
        if (p->role != DG_PARAM_RUNNING) continue;
        net->be->zero(grad_of(net, p), sizeof(float) * p->numel);
        net->be->axpy(p->numel, share, param_of(net, p), grad_of(net, p));
    }
    g->next = 0;
    if (g->launched) memset(g->launched, 0, (size_t)g->n_buckets);
}

void dg_dist_grads_finish(dg_dist_grads *g) {
    dg_dist *d = g->dist;
    if (!dg_dist_reduces(d)) return;
    dg_net *net = g->net;
    if (g->buckets) {
        launch_ready(g, 0); /* any bucket the walk did not reach (a net whose input node owns none) */
        for (int k = 0; k < g->n_buckets; k++)
            if (!g->launched[k]) {
                const dg_grad_bucket *b = &g->buckets[k];
                dg_dist_sum_device(d, net->be, net->grad_arena + b->begin, b->end - b->begin);
            }
    } else {
        dg_dist_sum_device(d, net->be, net->grad_arena, net->n_param_floats);
    }
    dg_dist_wait(d);
    /* the averaged statistics go back to their parameters, and their gradient slots to zero: what
     * reads the whole gradient arena (the clip's norm) counts only trained parameters (net.h) */
    for (int i = 0; i < net->n_params; i++) {
        const dg_param *p = &net->params[i];
        if (p->role != DG_PARAM_RUNNING) continue;
        net->be->copy(param_of(net, p), grad_of(net, p), sizeof(float) * p->numel);
        net->be->zero(grad_of(net, p), sizeof(float) * p->numel);
    }
}

void dg_dist_broadcast_device(dg_dist *d, const dg_backend *be, float *buf, size_t count) {
    if (d->size < 2 || count == 0) return;
    float *host = malloc(sizeof(float) * count);
    if (!host) {
        dg_cli_error("rank %d: out of memory for the broadcast of %zu floats", d->rank, count);
        dg_dist_finish(d, DG_EXIT_BAD_INPUT); /* aborts every rank */
        return;
    }
    if (dg_dist_is_root(d)) be->download(host, buf, sizeof(float) * count);
    dg_dist_broadcast(d, host, sizeof(float) * count);
    be->upload(buf, host, sizeof(float) * count);
    free(host);
}

int dg_dist_evaluate(dg_dist *d, dg_net *net, const dg_dataset *ds, dg_eval_result *r) {
    if (d->size < 2) return dg_evaluate(net, ds, 0, r);
    int lo, hi, k = net->classes;
    dg_dist_share(ds->n, d->rank, d->size, &lo, &hi);
    size_t per = (size_t)ds->c * ds->h * ds->w;
    dg_dataset share = *ds;
    share.images += per * (size_t)lo;
    share.labels += lo;
    share.n = hi - lo;
    int failed = share.n > 0 ? dg_evaluate(net, &share, 0, r) != 0 : dg_eval_result_init(r, k) != 0;
    int classes = k; /* the same on every rank, failed or not, so that the sums match */
    /* [failed, loss sum, images, non-finite, top-5 hits, correct per class, count per class] summed over
     * the ranks */
    enum { HEAD = 5 };
    double *sums = calloc(HEAD + 2 * (size_t)classes, sizeof(double));
    if (!sums) {
        dg_cli_error("rank %d: out of memory", d->rank);
        dg_dist_finish(d, DG_EXIT_BAD_INPUT);
        return -1;
    }
    sums[0] = failed;
    sums[1] = r->loss * r->images;
    sums[2] = r->images;
    sums[3] = r->nonfinite;
    sums[4] = (double)llround(r->top5_accuracy * r->images); /* the count it was made from: exact sums */
    if (!failed)
        for (int c = 0; c < classes; c++) sums[HEAD + c] = r->correct[c], sums[HEAD + classes + c] = r->count[c];
    dg_dist_sum_f64(d, sums, HEAD + 2 * classes);
    int any_failed = sums[0] > 0;
    if (any_failed) {
        free(sums);
        dg_eval_result_free(r);
        return -1;
    }
    r->images = (int)sums[2];
    r->nonfinite = (int)sums[3];
    long correct = 0;
    for (int c = 0; c < classes; c++) {
        r->correct[c] = (int)sums[HEAD + c];
        r->count[c] = (int)sums[HEAD + classes + c];
        correct += r->correct[c];
    }
    r->loss = r->images ? sums[1] / r->images : 0.0;
    r->accuracy = r->images ? (double)correct / r->images : 0.0;
    r->top5_accuracy = r->images ? sums[4] / r->images : 0.0;
    free(sums);
    return 0;
}
