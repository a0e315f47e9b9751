/* tests/test_dist_overlap.c — the device-free logic of data parallelism: shares of a batch, the
 * GPU a rank binds, the gradient bucket plan, and the NCCL path's orchestration run for real on the
 * CPU backend against a recording stand-in for the NCCL table: every bucket is launched once, in
 * plan order, only after the backward walk has written all of it (its bytes when launched equal the
 * final gradient), a held bucket after the gradient added behind the walk, the whole arena covered,
 * the running statistics put into the reduction and copied back; on two ranks and on one, which
 * reduces as many do. NCCL itself never runs here. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "host/dist_buckets.h"
#include "host/dist_train.h"
#include "kernels/math/rng.h"
#include "nets/registry.h"

static void test_shares(void) {
    for (int n = 0; n <= 70; n++)
        for (int size = 1; size <= 9; size++) {
            int expect_lo = 0, small = n, large = 0;
            for (int r = 0; r < size; r++) {
                int lo, hi;
                dg_dist_share(n, r, size, &lo, &hi);
                CHECK(lo == expect_lo && hi >= lo, "share %d of %d items over %d ranks starts at %d", r, n, size, lo);
                expect_lo = hi;
                if (hi - lo < small) small = hi - lo;
                if (hi - lo > large) large = hi - lo;
            }
            CHECK(expect_lo == n && large - small <= 1, "%d items over %d ranks: tiled, sizes %d..%d", n, size, small,
                  large);
        }
}

static void test_pick_device(void) {
    CHECK(dg_dist_pick_device(0, 1, 0) == -1, "no device");
    CHECK(dg_dist_pick_device(3, 4, 1) == 0, "one device visible per task (--gpus-per-task): that one");
    CHECK(dg_dist_pick_device(2, 4, 4) == 2 && dg_dist_pick_device(0, 2, 8) == 0, "one GPU per local rank");
    CHECK(dg_dist_pick_device(1, 3, 2) == -1, "more ranks on the node than GPUs is refused");
    CHECK(dg_dist_pick_device(4, 4, 8) == -1 && dg_dist_pick_device(-1, 4, 8) == -1, "a local rank out of range");
}

static dg_net *build(const char *name, int classes, int c, int h, int w) {
    char err[256];
    dg_net *net = dg_net_create(name, classes, c, h, w, err, sizeof err);
    CHECK(net != NULL, "%s builds: %s", name, err);
    return net;
}

/* The lowest node index owning a parameter in [begin, end). */
static int lowest_owner(const dg_net *net, size_t begin, size_t end) {
    int lowest = -1;
    for (int p = 0; p < net->n_params; p++) {
        size_t at = net->params[p].offset;
        if (at >= begin && at < end && (lowest < 0 || net->params[p].node < lowest)) lowest = net->params[p].node;
    }
    return lowest;
}

static void test_plan(const char *name, int classes, int c, int h, int w) {
    dg_net *net = build(name, classes, c, h, w);
    if (!net) return;
    const size_t caps[] = {1, 700, 50000, DG_BUCKET_DEFAULT_FLOATS, (size_t)1 << 40};
    for (size_t k = 0; k < sizeof caps / sizeof *caps; k++) {
        int held = net->n_params / 2;
        dg_grad_bucket *b = NULL;
        int n = dg_grad_buckets_plan(net, caps[k], held, &b);
        CHECK(n >= 1, "%s cap %zu: %d buckets", name, caps[k], n);
        size_t expect_end = net->n_param_floats;
        int held_seen = 0, previous_ready = net->n_nodes;
        for (int i = 0; i < n; i++) {
            CHECK(b[i].end == expect_end && b[i].begin < b[i].end, "%s cap %zu bucket %d [%zu, %zu) follows on",
                  name, caps[k], i, b[i].begin, b[i].end);
            expect_end = b[i].begin;
            int owner = lowest_owner(net, b[i].begin, b[i].end);
            size_t at = net->params[held].offset;
            int holds = at >= b[i].begin && at < b[i].end;
            held_seen += holds;
            CHECK(holds ? b[i].ready_node == -1 : b[i].ready_node == owner,
                  "%s cap %zu bucket %d ready after node %d (lowest owner %d, held %d)", name, caps[k], i,
                  b[i].ready_node, owner, holds);
            if (!holds) {
                CHECK(owner <= previous_ready, "%s: buckets become ready in walk order", name);
                previous_ready = owner;
            }
            if (i + 1 < n) CHECK(b[i].end - b[i].begin >= caps[k], "%s: only the last bucket may be small", name);
            /* no node's parameters straddle two buckets */
            for (int p = 0; p < net->n_params; p++) {
                const dg_param *q = &net->params[p];
                int in = q->offset >= b[i].begin && q->offset < b[i].end;
                for (int r = 0; in && r < net->n_params; r++)
                    if (net->params[r].node == q->node)
                        CHECK(net->params[r].offset >= b[i].begin && net->params[r].offset < b[i].end,
                              "%s: node %d's parameters lie in one bucket", name, q->node);
            }
        }
        CHECK(expect_end == 0 && held_seen == 1, "%s cap %zu: the buckets tile the arena, one is held", name, caps[k]);
        if (caps[k] == 1) CHECK(n > 2, "%s: a tiny cap gives a bucket per node (%d)", name, n);
        free(b);
    }
    dg_net_free(net);
}

/* ---- the NCCL path's orchestration against a recording stand-in ---- */

enum { MAX_LAUNCHES = 512 };
typedef struct recorder {
    const dg_net *net;
    int launches, waits;
    size_t begin[MAX_LAUNCHES], count[MAX_LAUNCHES];
    float *snapshot[MAX_LAUNCHES]; /* the bucket's bytes when it was launched */
} recorder;
static recorder rec;

static void mock_sum_async(dg_dist_comm *c, float *buf, size_t count) {
    (void)c;
    CHECK(rec.launches < MAX_LAUNCHES, "too many launches");
    if (rec.launches >= MAX_LAUNCHES) return;
    int i = rec.launches++;
    rec.begin[i] = (size_t)(buf - rec.net->grad_arena);
    rec.count[i] = count;
    rec.snapshot[i] = malloc(sizeof(float) * count);
    memcpy(rec.snapshot[i], buf, sizeof(float) * count); /* the CPU backend's memory is host memory */
}
static void mock_wait(dg_dist_comm *c) { (void)c, rec.waits++; }
static double mock_take_ms(dg_dist_comm *c) { return (void)c, 0.0; }

/* ranks: the communicator's size (one NCCL rank reduces as many do: dg_dist_reduces) */
static void test_overlap(const char *name, int c, int h, int w, size_t cap, int with_held, int ranks) {
    dg_net *net = build(name, 10, c, h, w);
    if (!net) return;
    const dg_backend *be = dg_backend_cpu();
    const int batch = 3;
    CHECK(dg_net_setup(net, be, batch) == 0, "%s: set up", name);
    float *host = malloc(sizeof(float) * net->n_param_floats);
    dg_net_init_host(net, 7, host);
    be->upload(net->param_arena, host, sizeof(float) * net->n_param_floats);
    size_t per = (size_t)c * h * w;
    float *x = malloc(sizeof(float) * per * batch);
    for (size_t i = 0; i < per * batch; i++) x[i] = dg_rng_uniform(11, i) * 2.0f - 1.0f;
    int32_t labels[3] = {1, 4, 7};
    be->upload(net->nodes[0].y, x, sizeof(float) * per * batch);
    be->upload(net->labels, labels, sizeof labels);

    static const dg_dist_device mock = {"mock", 8, NULL, NULL, NULL, mock_sum_async, mock_wait, mock_take_ms, NULL, NULL};
    dg_dist d;
    dg_dist_single(&d);
    d.kind = DG_DIST_NCCL, d.size = ranks, d.device = &mock, d.comm = (dg_dist_comm *)&rec;
    memset(&rec, 0, sizeof rec);
    rec.net = net;
    int held = with_held ? dg_net_find_param(net, "conv1.weight") : -1;
    dg_dist_grads g;
    CHECK(dg_dist_grads_init(&g, &d, net, held) == 0 && g.n_buckets >= 1, "%s: grads bound", name);
    /* the plan as the test sees it, with the default cap swapped for a small one */
    free(g.buckets);
    g.n_buckets = dg_grad_buckets_plan(net, cap, held, &g.buckets);
    free(g.launched);
    g.launched = calloc((size_t)g.n_buckets + 1, 1);

    dg_net_zero_grad(net);
    dg_net_forward(net, net->nodes[0].y, batch, DG_MODE_TRAIN);
    dg_net_loss_sum(net, batch, 1.0f / 6.0f, 0.0f);
    float *running_before = malloc(sizeof(float) * net->n_param_floats);
    be->download(running_before, net->param_arena, sizeof(float) * net->n_param_floats);
    dg_dist_grads_begin(&g);
    dg_net_backward(net, batch, NULL);
    int during_walk = rec.launches;
    if (held >= 0) { /* a gradient added after the walk, as the watermark regularizer does */
        float *dw = net->grad_arena + net->params[held].offset;
        for (int i = 0; i < 5; i++) dw[i] += 0.25f;
    }
    float *final = malloc(sizeof(float) * net->n_param_floats);
    memcpy(final, net->grad_arena, sizeof(float) * net->n_param_floats);
    dg_dist_grads_finish(&g);

    CHECK(rec.launches == g.n_buckets && rec.waits == 1, "%s: %d buckets, %d launches, %d waits", name, g.n_buckets,
          rec.launches, rec.waits);
    CHECK(g.n_buckets == 1 || during_walk >= 1, "%s: %d of %d buckets launched during the walk", name, during_walk,
          g.n_buckets);
    int held_bucket = -1;
    for (int k = 0; k < g.n_buckets; k++)
        if (g.buckets[k].ready_node < 0) held_bucket = k;
    size_t covered = 0;
    for (int i = 0; i < rec.launches; i++) {
        int expect = i;
        if (held_bucket >= 0) expect = i < held_bucket ? i : i == rec.launches - 1 ? held_bucket : i + 1;
        CHECK(rec.begin[i] == g.buckets[expect].begin && rec.count[i] == g.buckets[expect].end - g.buckets[expect].begin,
              "%s: launch %d is bucket %d of the plan", name, i, expect);
        CHECK(memcmp(rec.snapshot[i], final + rec.begin[i], sizeof(float) * rec.count[i]) == 0,
              "%s: launch %d [%zu, +%zu) was complete when launched", name, i, rec.begin[i], rec.count[i]);
        covered += rec.count[i];
        free(rec.snapshot[i]);
    }
    CHECK(covered == net->n_param_floats, "%s: the launches cover the arena (%zu of %zu floats)", name, covered,
          net->n_param_floats);
    /* running statistics: rank's share (1/size) in the reduction, copied back (the stand-in sums nothing) */
    for (int p = 0; p < net->n_params; p++) {
        const dg_param *q = &net->params[p];
        if (q->role != DG_PARAM_RUNNING) continue;
        for (size_t i = 0; i < q->numel; i++) {
            float want = running_before[q->offset + i] / (float)ranks;
            if (net->param_arena[q->offset + i] != want) {
                CHECK(0, "%s: %s[%zu] = %g after the reduction, want %g", name, q->name, i,
                      (double)net->param_arena[q->offset + i], (double)want);
                break;
            }
        }
    }
    dg_dist_grads_free(&g);
    CHECK(net->after_backward_node == NULL, "%s: the hook is removed", name);
    free(final), free(running_before), free(host), free(x);
    dg_net_free(net);
}

int main(void) {
    test_shares();
    test_pick_device();
    test_plan("lenet5", 10, 1, 28, 28);
    test_plan("resnet18-cifar", 10, 3, 32, 32);
    test_plan("wrn-16-4", 10, 3, 32, 32);
    test_overlap("lenet5", 1, 28, 28, 3000, 1, 2);
    test_overlap("wrn-10-1", 3, 32, 32, 2500, 1, 2);
    test_overlap("resnet18-cifar", 3, 16, 16, 400000, 0, 2);
    test_overlap("wrn-10-1", 3, 32, 32, 2500, 1, 1);
    return dg_test_done("test_dist_overlap");
}
