/* bench/bench_train.c — dg_bench_train: training throughput of one net on one fixed batch (SGD,
 * momentum 0.9), with the time of each phase (forward+loss, zero-grad+backward, optimizer) and,
 * with --profile, of each backend op. Prints JSON lines; decides nothing. Uses only the public
 * host/ and nets/ API and the backend op table; touches no file but the data set it reads. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/cli.h"
#include "host/data.h"
#include "host/loader.h"
#include "host/net.h"
#include "host/session.h"
#include "kernels/math/rng.h"
#include "nets/registry.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ---- per-op profile: a copy of the backend's op table whose entries time the real ones ---- */

enum {
    P_CONV_FWD, P_CONV_BWD_DATA, P_CONV_BWD_FILTER, P_BIAS_FWD, P_BIAS_BWD, P_LINEAR_FWD, P_LINEAR_BWD,
    P_RELU_FWD, P_RELU_BWD, P_MAXPOOL_FWD, P_MAXPOOL_BWD, P_AVGPOOL_FWD, P_AVGPOOL_BWD, P_BN_FWD_TRAIN,
    P_BN_FWD_EVAL, P_BN_BWD, P_BN_BWD_EVAL, P_DROPOUT_FWD, P_DROPOUT_BWD, P_ADD, P_AXPY, P_SOFTMAX_XENT,
    P_SGD_STEP, P_ZERO, P_COPY, P_UPLOAD, P_DOWNLOAD, P_COUNT
};
static const char *prof_names[P_COUNT] = {
    "conv_fwd", "conv_bwd_data", "conv_bwd_filter", "bias_fwd", "bias_bwd", "linear_fwd", "linear_bwd",
    "relu_fwd", "relu_bwd", "maxpool_fwd", "maxpool_bwd", "avgpool_fwd", "avgpool_bwd", "bn_fwd_train",
    "bn_fwd_eval", "bn_bwd", "bn_bwd_eval", "dropout_fwd", "dropout_bwd", "add", "axpy", "softmax_xent",
    "sgd_step", "zero", "copy", "upload", "download"};

static const dg_backend *real;
static double prof_ms[P_COUNT];
static long prof_calls[P_COUNT];

/* conv time per layer shape and direction, to see which layers dominate */
#define MAX_SHAPES 128
typedef struct conv_shape {
    dg_conv_desc d;
    double ms[3];
    long calls[3];
} conv_shape;
static conv_shape shapes[MAX_SHAPES];
static int n_shapes;

static void conv_account(const dg_conv_desc *d, int dir, double ms) {
    int i;
    for (i = 0; i < n_shapes; i++) {
        const dg_conv_desc *e = &shapes[i].d;
        if (e->n == d->n && e->c == d->c && e->h == d->h && e->w == d->w && e->k == d->k && e->r == d->r &&
            e->s == d->s && e->stride == d->stride && e->pad == d->pad)
            break;
    }
    if (i == n_shapes) {
        if (n_shapes == MAX_SHAPES) return;
        memset(&shapes[i], 0, sizeof shapes[i]);
        shapes[i].d = *d;
        n_shapes++;
    }
    shapes[i].ms[dir] += ms;
    shapes[i].calls[dir]++;
}

#define TIMED(slot, call)                                                                                    \
    do {                                                                                                     \
        double t0_ = now_ms();                                                                               \
        call;                                                                                                \
        real->sync();                                                                                        \
        double dt_ = now_ms() - t0_;                                                                         \
        prof_ms[slot] += dt_;                                                                                \
        prof_calls[slot]++;                                                                                  \
        last_ms = dt_;                                                                                       \
    } while (0)
static double last_ms;

static void p_upload(void *d, const void *s, size_t b) { TIMED(P_UPLOAD, real->upload(d, s, b)); }
static void p_download(void *d, const void *s, size_t b) { TIMED(P_DOWNLOAD, real->download(d, s, b)); }
static void p_copy(void *d, const void *s, size_t b) { TIMED(P_COPY, real->copy(d, s, b)); }
static void p_zero(void *d, size_t b) { TIMED(P_ZERO, real->zero(d, b)); }
static void p_conv_fwd(const dg_conv_desc *d, const float *x, const float *w, float *y, void *ws) {
    TIMED(P_CONV_FWD, real->conv_fwd(d, x, w, y, ws));
    conv_account(d, 0, last_ms);
}
static void p_conv_bwd_data(const dg_conv_desc *d, const float *dy, const float *w, float *dx, int acc, void *ws) {
    TIMED(P_CONV_BWD_DATA, real->conv_bwd_data(d, dy, w, dx, acc, ws));
    conv_account(d, 1, last_ms);
}
static void p_conv_bwd_filter(const dg_conv_desc *d, const float *x, const float *dy, float *dw, void *ws) {
    TIMED(P_CONV_BWD_FILTER, real->conv_bwd_filter(d, x, dy, dw, ws));
    conv_account(d, 2, last_ms);
}
static void p_bias_fwd(int n, int c, int hw, const float *b, float *y) { TIMED(P_BIAS_FWD, real->bias_fwd(n, c, hw, b, y)); }
static void p_bias_bwd(int n, int c, int hw, const float *dy, float *db) {
    TIMED(P_BIAS_BWD, real->bias_bwd(n, c, hw, dy, db));
}
static void p_linear_fwd(int n, int in, int out, const float *x, const float *w, const float *b, float *y) {
    TIMED(P_LINEAR_FWD, real->linear_fwd(n, in, out, x, w, b, y));
}
static void p_linear_bwd(int n, int in, int out, const float *x, const float *w, const float *dy, float *dx, int acc,
                         float *dw, float *db) {
    TIMED(P_LINEAR_BWD, real->linear_bwd(n, in, out, x, w, dy, dx, acc, dw, db));
}
static void p_relu_fwd(size_t n, const float *x, float *y) { TIMED(P_RELU_FWD, real->relu_fwd(n, x, y)); }
static void p_relu_bwd(size_t n, const float *y, const float *dy, float *dx, int acc) {
    TIMED(P_RELU_BWD, real->relu_bwd(n, y, dy, dx, acc));
}
static void p_maxpool_fwd(const dg_pool_desc *d, const float *x, float *y, int32_t *a) {
    TIMED(P_MAXPOOL_FWD, real->maxpool_fwd(d, x, y, a));
}
static void p_maxpool_bwd(const dg_pool_desc *d, const int32_t *a, const float *dy, float *dx, int acc) {
    TIMED(P_MAXPOOL_BWD, real->maxpool_bwd(d, a, dy, dx, acc));
}
static void p_avgpool_fwd(const dg_pool_desc *d, const float *x, float *y) { TIMED(P_AVGPOOL_FWD, real->avgpool_fwd(d, x, y)); }
static void p_avgpool_bwd(const dg_pool_desc *d, const float *dy, float *dx, int acc) {
    TIMED(P_AVGPOOL_BWD, real->avgpool_bwd(d, dy, dx, acc));
}
static void p_bn_fwd_train(int n, int c, int hw, const float *x, const float *g, const float *b, float *rm, float *rv,
                           float mom, float eps, float *y, float *sm, float *si) {
    TIMED(P_BN_FWD_TRAIN, real->bn_fwd_train(n, c, hw, x, g, b, rm, rv, mom, eps, y, sm, si));
}
static void p_bn_fwd_eval(int n, int c, int hw, const float *x, const float *g, const float *b, const float *rm,
                          const float *rv, float eps, float *y) {
    TIMED(P_BN_FWD_EVAL, real->bn_fwd_eval(n, c, hw, x, g, b, rm, rv, eps, y));
}
static void p_bn_bwd(int n, int c, int hw, const float *x, const float *g, const float *sm, const float *si,
                     const float *dy, float *dx, int acc, float *dg, float *db) {
    TIMED(P_BN_BWD, real->bn_bwd(n, c, hw, x, g, sm, si, dy, dx, acc, dg, db));
}
static void p_bn_bwd_eval(int n, int c, int hw, const float *x, const float *g, const float *rm, const float *rv,
                          float eps, const float *dy, float *dx, int acc, float *dg, float *db) {
    TIMED(P_BN_BWD_EVAL, real->bn_bwd_eval(n, c, hw, x, g, rm, rv, eps, dy, dx, acc, dg, db));
}
static void p_dropout_fwd(size_t n, float p, uint64_t seed, uint64_t first, const float *x, float *y, float *m) {
    TIMED(P_DROPOUT_FWD, real->dropout_fwd(n, p, seed, first, x, y, m));
}
static void p_dropout_bwd(size_t n, const float *m, const float *dy, float *dx, int acc) {
    TIMED(P_DROPOUT_BWD, real->dropout_bwd(n, m, dy, dx, acc));
}
static void p_add(size_t n, const float *a, const float *b, float *y) { TIMED(P_ADD, real->add(n, a, b, y)); }
static void p_axpy(size_t n, float al, const float *x, float *y) { TIMED(P_AXPY, real->axpy(n, al, x, y)); }
static void p_softmax_xent(int n, int k, const float *lg, const int32_t *lb, float *pr, float *ls, float *dl,
                           float sc, float sm) {
    TIMED(P_SOFTMAX_XENT, real->softmax_xent(n, k, lg, lb, pr, ls, dl, sc, sm));
}
static void p_sgd_step(size_t n, float *w, const float *g, float *buf, float lr, float mom, float wd, int nest,
                       int first) {
    TIMED(P_SGD_STEP, real->sgd_step(n, w, g, buf, lr, mom, wd, nest, first));
}

static dg_backend profiled(const dg_backend *be) {
    real = be;
    dg_backend p = *be;
    p.upload = p_upload;
    p.download = p_download;
    p.copy = p_copy;
    p.zero = p_zero;
    p.conv_fwd = p_conv_fwd;
    p.conv_bwd_data = p_conv_bwd_data;
    p.conv_bwd_filter = p_conv_bwd_filter;
    p.bias_fwd = p_bias_fwd;
    p.bias_bwd = p_bias_bwd;
    p.linear_fwd = p_linear_fwd;
    p.linear_bwd = p_linear_bwd;
    p.relu_fwd = p_relu_fwd;
    p.relu_bwd = p_relu_bwd;
    p.maxpool_fwd = p_maxpool_fwd;
    p.maxpool_bwd = p_maxpool_bwd;
    p.avgpool_fwd = p_avgpool_fwd;
    p.avgpool_bwd = p_avgpool_bwd;
    p.bn_fwd_train = p_bn_fwd_train;
    p.bn_fwd_eval = p_bn_fwd_eval;
    p.bn_bwd = p_bn_bwd;
    p.bn_bwd_eval = p_bn_bwd_eval;
    p.dropout_fwd = p_dropout_fwd;
    p.dropout_bwd = p_dropout_bwd;
    p.add = p_add;
    p.axpy = p_axpy;
    p.softmax_xent = p_softmax_xent;
    p.sgd_step = p_sgd_step;
    return p;
}

/* ---- the training step ---- */

typedef struct bench_opts {
    const char *net, *data, *backend, *precision;
    int batch, steps, warmup, profile, deterministic;
    float lr, momentum, wd;
    uint64_t seed;
} bench_opts;

typedef struct phase_ms { double fwd, bwd, opt, total, cpu; } phase_ms;

/* CPU time of the whole process (all threads), ms: with other work on the machine it counts only
 * the time this process ran, so with one thread it is what the step would take on a quiet machine
 * (with several, it also counts OpenMP threads spinning at barriers). */
static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* The step of host/train.c: zero_grad → forward(TRAIN) → loss → backward → SGD per parameter. */
static phase_ms train_step(dg_net *net, float *momentum_buf, const bench_opts *o, long step) {
    const dg_backend *be = net->be;
    int n = net->batch;
    phase_ms t;
    net->dropout_seed = dg_rng_stream(o->seed, (uint64_t)step);
    double c0 = cpu_ms(), t0 = now_ms();
    dg_net_forward(net, net->nodes[0].y, n, DG_MODE_TRAIN);
    double loss = dg_net_loss(net, n);
    be->sync();
    double t1 = now_ms();
    dg_net_zero_grad(net);
    dg_net_backward(net, n, NULL);
    be->sync();
    double t2 = now_ms();
    for (int i = 0; i < net->n_params; i++) {
        const dg_param *p = &net->params[i];
        if (p->role == DG_PARAM_RUNNING) continue;
        be->sgd_step(p->numel, net->param_arena + p->offset, net->grad_arena + p->offset, momentum_buf + p->offset,
                     o->lr, o->momentum, o->wd, 0, step == 0);
    }
    be->sync();
    double t3 = now_ms();
    t.cpu = cpu_ms() - c0;
    if (!isfinite(loss)) fprintf(stderr, "dg_bench_train: warning: loss %g at step %ld\n", loss, step);
    t.fwd = t1 - t0;
    t.bwd = t2 - t1;
    t.opt = t3 - t2;
    t.total = t3 - t0;
    return t;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place; its median. */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: dg_bench_train --net NAME [--batch 128] [--steps 20] [--warmup 3] [--data SPEC]\n"
            "                      [--lr 0.01] [--momentum 0.9] [--wd 5e-4] [--seed 1] [--backend cpu|cuda|auto]\n"
            "                      [--precision fp32|tf32] [--deterministic] [--profile]\n"
            "Times --steps SGD training steps of NAME on one fixed batch (the first --batch images of the\n"
            "training split of --data, unaugmented; without --data, synthetic images of the net's natural shape)\n"
            "after --warmup untimed steps, and prints one JSON line: images/s, step and phase times are\n"
            "medians over the steps (the _mean fields are plain means). The thread count is OpenMP's\n"
            "(OMP_NUM_THREADS). --profile adds one JSON line per backend op and per conv shape, from\n"
            "another --steps steps timed op by op. On the CUDA backend the line also gives the device, the\n"
            "backend's peak allocation (device_peak_mib) and the device memory taken beyond the empty\n"
            "context (device_used_mib).\n");
}

static int parse_args(int argc, char **argv, bench_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--profile")) {
            o->profile = 1;
            continue;
        }
        if (!strcmp(a, "--deterministic")) {
            o->deterministic = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "dg_bench_train: %s needs a value (or is unknown)\n", a);
            return -1;
        }
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(a, "--net")) o->net = v;
        else if (!strcmp(a, "--data")) o->data = v;
        else if (!strcmp(a, "--backend")) o->backend = v;
        else if (!strcmp(a, "--precision")) o->precision = v;
        else if (!strcmp(a, "--batch")) o->batch = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--steps")) o->steps = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--warmup")) o->warmup = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--lr")) o->lr = strtof(v, &end);
        else if (!strcmp(a, "--momentum")) o->momentum = strtof(v, &end);
        else if (!strcmp(a, "--wd")) o->wd = strtof(v, &end);
        else if (!strcmp(a, "--seed")) o->seed = strtoull(v, &end, 10);
        else {
            fprintf(stderr, "dg_bench_train: unknown option '%s' (see --help)\n", a);
            return -1;
        }
        if (end && (*end || end == v)) {
            fprintf(stderr, "dg_bench_train: %s: '%s' is not a number\n", a, v);
            return -1;
        }
    }
    if (!o->net || o->batch < 1 || o->steps < 1 || o->warmup < 0) {
        fprintf(stderr, "dg_bench_train: --net is required; --batch and --steps must be >= 1, --warmup >= 0\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    bench_opts o = {.backend = "cpu", .precision = "fp32", .batch = 128, .steps = 20, .warmup = 3, .lr = 0.01f, .momentum = 0.9f,
                    .wd = 5e-4f, .seed = 1};
    if (parse_args(argc, argv, &o) != 0) return 2;
    const dg_backend *be = dg_cli_backend(o.backend);
    if (!be || dg_cli_backend_modes("dg_bench_train", be, o.precision, o.deterministic) != 0) return 2;

    /* the data set: the given one, or synthetic images of the net's natural shape */
    char synth[128];
    const char *spec = o.data;
    if (!spec) {
        int c, h, w, k;
        if (dg_net_default_shape(o.net, &c, &h, &w, &k) != 0) {
            fprintf(stderr, "dg_bench_train: unknown net '%s'\n", o.net);
            return 2;
        }
        snprintf(synth, sizeof synth, "synthetic:%d,%d,%d,%d,%d", c, h, w, k, o.batch);
        spec = synth;
    }
    dg_dataset ds = {0};
    if (dg_session_data(spec, 1, NULL, &ds) != 0) return 2;
    if (ds.n < o.batch) {
        fprintf(stderr, "dg_bench_train: %s has %d images, fewer than --batch %d\n", spec, ds.n, o.batch);
        dg_data_free(&ds);
        return 2;
    }
    dg_net *net = dg_session_net(o.net, &ds, be, o.batch, NULL);
    if (!net) {
        dg_data_free(&ds);
        return 2;
    }

    /* the fixed batch: the first `batch` images in file order, no augmentation */
    dg_loader *loader = dg_loader_new(&ds, o.batch, o.seed, 0, 0);
    float *host = malloc(sizeof(float) * (net->n_param_floats ? net->n_param_floats : 1));
    float *momentum_buf = be->alloc(sizeof(float) * net->n_param_floats);
    if (!loader || !host || !momentum_buf) {
        fprintf(stderr, "dg_bench_train: out of memory\n");
        return 2;
    }
    const float *x;
    const int32_t *labels;
    dg_loader_begin(loader, 0, 0);
    int n = dg_loader_next(loader, &x, &labels);
    if (n != o.batch) {
        fprintf(stderr, "dg_bench_train: the loader gave %d images, not %d\n", n, o.batch);
        return 2;
    }
    size_t per = (size_t)ds.c * ds.h * ds.w;
    be->upload(net->nodes[0].y, x, sizeof(float) * per * (size_t)n);
    be->upload(net->labels, labels, sizeof(int32_t) * (size_t)n);
    dg_net_init_host(net, o.seed, host);
    be->upload(net->param_arena, host, sizeof(float) * net->n_param_floats);

    long step = 0;
    for (int i = 0; i < o.warmup; i++) train_step(net, momentum_buf, &o, step++);
    /* medians per phase (robust to other work on the machine) and the plain mean of whole steps */
    double *t_fwd = malloc(sizeof(double) * 5 * (size_t)o.steps), *t_bwd = t_fwd + o.steps,
           *t_opt = t_bwd + o.steps, *t_all = t_opt + o.steps, *t_cpu = t_all + o.steps, sum = 0.0;
    for (int i = 0; i < o.steps; i++) {
        phase_ms t = train_step(net, momentum_buf, &o, step++);
        t_fwd[i] = t.fwd;
        t_bwd[i] = t.bwd;
        t_opt[i] = t.opt;
        t_all[i] = t.total;
        t_cpu[i] = t.cpu;
        sum += t.total;
    }
    double mean = sum / o.steps, med = median(t_all, o.steps);
    printf("{\"impl\":\"dnnguard\",\"net\":\"%s\",\"batch\":%d,\"threads\":%d,\"images_per_s\":%.2f,"
           "\"ms_per_step\":%.3f,\"forward_ms\":%.3f,\"backward_ms\":%.3f,\"optim_ms\":%.3f,"
           "\"images_per_s_mean\":%.2f,\"ms_per_step_mean\":%.3f,\"ms_per_step_min\":%.3f,\"cpu_ms_per_step\":%.3f,"
           "\"steps\":%d,\"warmup\":%d,\"data\":\"%s\",\"backend\":\"%s\"",
           o.net, o.batch, omp_get_max_threads(), 1e3 * o.batch / med, med, median(t_fwd, o.steps),
           median(t_bwd, o.steps), median(t_opt, o.steps), 1e3 * o.batch / mean, mean, t_all[0], median(t_cpu, o.steps),
           o.steps, o.warmup, ds.name, be->name);
    dg_cli_device_info dev = dg_cli_device(be);
    if (dev.peak_bytes >= 0) { /* a device that counts its memory: the CUDA backend */
        printf(",\"device\":");
        dg_json_string(stdout, dev.name);
        printf(",\"precision\":\"%s\",\"deterministic\":%s,\"device_peak_mib\":%.1f,\"device_used_mib\":%.1f",
               o.precision, o.deterministic ? "true" : "false", (double)dev.peak_bytes / (1 << 20),
               (double)dev.footprint_bytes / (1 << 20));
    }
    printf("}\n");
    fflush(stdout);

    if (o.profile) {
        dg_backend pb = profiled(be);
        net->be = &pb;
        double t0 = now_ms();
        for (int i = 0; i < o.steps; i++) train_step(net, momentum_buf, &o, step++);
        double wall = (now_ms() - t0) / o.steps, accounted = 0.0;
        net->be = be;
        for (int k = 0; k < P_COUNT; k++) accounted += prof_ms[k];
        for (int k = 0; k < P_COUNT; k++) {
            if (!prof_calls[k]) continue;
            printf("{\"profile\":\"op\",\"net\":\"%s\",\"op\":\"%s\",\"calls_per_step\":%.1f,\"ms_per_step\":%.3f,"
                   "\"pct_of_step\":%.1f}\n",
                   o.net, prof_names[k], (double)prof_calls[k] / o.steps, prof_ms[k] / o.steps,
                   100.0 * prof_ms[k] / o.steps / wall);
        }
        printf("{\"profile\":\"unaccounted\",\"net\":\"%s\",\"ms_per_step\":%.3f,\"step_ms\":%.3f}\n", o.net,
               wall - accounted / o.steps, wall);
        static const char *dirs[3] = {"fwd", "bwd_data", "bwd_filter"};
        for (int i = 0; i < n_shapes; i++) {
            const dg_conv_desc *d = &shapes[i].d;
            double flop = 2.0 * d->n * d->k * d->c * d->r * d->s * d->oh * d->ow;
            for (int k = 0; k < 3; k++) {
                if (!shapes[i].calls[k]) continue;
                double ms = shapes[i].ms[k] / shapes[i].calls[k];
                printf("{\"profile\":\"conv\",\"net\":\"%s\",\"op\":\"%s\",\"c\":%d,\"h\":%d,\"w\":%d,\"k\":%d,\"r\":%d,"
                       "\"stride\":%d,\"pad\":%d,\"layers\":%.0f,\"ms_per_call\":%.3f,\"ms_per_step\":%.3f,"
                       "\"gflops\":%.1f}\n",
                       o.net, dirs[k], d->c, d->h, d->w, d->k, d->r, d->stride, d->pad,
                       (double)shapes[i].calls[k] / o.steps, ms, shapes[i].ms[k] / o.steps, flop / ms * 1e-6);
            }
        }
    }
    free(t_fwd);
    free(host);
    be->free(momentum_buf);
    dg_loader_free(loader);
    dg_net_free(net);
    dg_data_free(&ds);
    return 0;
}
