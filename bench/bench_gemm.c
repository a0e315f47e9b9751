/* bench/bench_gemm.c — dg_bench_gemm: GFLOP/s of OpenBLAS's cblas_sgemm on large square products
 * (the peak the convolutions are measured against) and of the CPU backend's conv forward,
 * backward-data and backward-filter, through dg_backend_cpu(), on the layers of the benchmarked nets.
 * Prints JSON lines; decides nothing. Touches only its own buffers. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/backend.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The layer list: one entry per distinct conv shape of the benchmarked nets at CIFAR/MNIST size;
 * `used` names the layers that have this shape. The same list drives torch_peer.py's conv bench
 * (through --list), so both sides time the same shapes. */
typedef struct layer {
    const char *name, *used;
    int c, h, k, r, stride, pad;
} layer;

static const layer layers[] = {
    {"lenet5.conv1", "lenet5 conv1", 1, 28, 6, 5, 1, 2},
    {"lenet5.conv2", "lenet5 conv2", 6, 14, 16, 5, 1, 0},
    {"3-16@32", "wrn-16-4 conv1", 3, 32, 16, 3, 1, 1},
    {"3-64@32", "vgg16 features.0, resnet18 conv1", 3, 32, 64, 3, 1, 1},
    {"16-64@32", "wrn-16-4 block1.0.conv1", 16, 32, 64, 3, 1, 1},
    {"16-64@32 1x1", "wrn-16-4 block1.0.convShortcut", 16, 32, 64, 1, 1, 0},
    {"64-64@32", "wrn-16-4 group 1, vgg16 64@32, resnet18 layer1", 64, 32, 64, 3, 1, 1},
    {"64-128@32 s2", "wrn-16-4 block2.0.conv1, resnet18 layer2.0.conv1", 64, 32, 128, 3, 2, 1},
    {"64-128@32 1x1 s2", "wrn-16-4 block2 shortcut, resnet18 layer2 downsample", 64, 32, 128, 1, 2, 0},
    {"64-128@16", "vgg16 features.7", 64, 16, 128, 3, 1, 1},
    {"128-128@16", "wrn-16-4 group 2, vgg16 128@16, resnet18 layer2", 128, 16, 128, 3, 1, 1},
    {"128-256@16 s2", "wrn-16-4 block3.0.conv1, resnet18 layer3.0.conv1", 128, 16, 256, 3, 2, 1},
    {"128-256@8", "vgg16 features.14", 128, 8, 256, 3, 1, 1},
    {"256-256@8", "wrn-16-4 group 3, vgg16 256@8, resnet18 layer3", 256, 8, 256, 3, 1, 1},
    {"256-512@8 s2", "resnet18 layer4.0.conv1", 256, 8, 512, 3, 2, 1},
    {"256-512@4", "vgg16 features.24", 256, 4, 512, 3, 1, 1},
    {"512-512@4", "vgg16 512@4, resnet18 layer4", 512, 4, 512, 3, 1, 1},
    {"512-512@2", "vgg16 512@2", 512, 2, 512, 3, 1, 1},
};
enum { N_LAYERS = sizeof layers / sizeof layers[0] };

static void fill(float *p, size_t n, unsigned *state) {
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        p[i] = (float)((*state >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

/* Run f until at least min_s seconds and min_reps repetitions have passed; the best repetition's
 * seconds (the least disturbed by other work on the machine). */
typedef void (*bench_fn)(void *ctx);
static double best_time(bench_fn f, void *ctx, double min_s, int min_reps) {
    f(ctx); /* warm-up: page faults, OpenBLAS thread start */
    double best = 1e30, start = now_s();
    for (int r = 0; r < min_reps || now_s() - start < min_s; r++) {
        double t0 = now_s();
        f(ctx);
        double t = now_s() - t0;
        if (t < best) best = t;
        if (r > 1000) break;
    }
    return best;
}

typedef struct gemm_ctx { int n; float *a, *b, *c; } gemm_ctx;
static void run_gemm(void *p) {
    gemm_ctx *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->n, g->n, g->n, 1.0f, g->a, g->n, g->b, g->n, 0.0f,
                g->c, g->n);
}

typedef struct conv_ctx {
    const dg_backend *be;
    dg_conv_desc d;
    float *x, *w, *y, *dy, *dx, *dw;
    void *ws;
    int op; /* 0 fwd, 1 bwd_data, 2 bwd_filter */
} conv_ctx;
static void run_conv(void *p) {
    conv_ctx *c = p;
    if (c->op == 0) c->be->conv_fwd(&c->d, c->x, c->w, c->y, c->ws);
    else if (c->op == 1) c->be->conv_bwd_data(&c->d, c->dy, c->w, c->dx, 1, c->ws);
    else c->be->conv_bwd_filter(&c->d, c->x, c->dy, c->dw, c->ws);
    c->be->sync();
}

static void usage(FILE *f) {
    fprintf(f, "usage: dg_bench_gemm [--batch 128] [--min-time 0.3] [--peak-sizes 1024,2048,3072] [--only NAME]\n"
               "       dg_bench_gemm --list\n"
               "Prints one JSON line per sgemm size (op \"sgemm\"), then one per conv layer and direction (fwd,\n"
               "bwd_data, bwd_filter) with its GFLOP/s and its percentage of the best sgemm GFLOP/s.\n"
               "--list prints the layer list (for torch_peer.py) and exits. Threads: OMP_NUM_THREADS.\n");
}

int main(int argc, char **argv) {
    int batch = 128, list = 0;
    double min_s = 0.3;
    const char *sizes = "1024,2048,3072", *only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--list")) {
            list = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "dg_bench_gemm: %s needs a value (or is unknown)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--min-time")) min_s = atof(v);
        else if (!strcmp(a, "--peak-sizes")) sizes = v;
        else if (!strcmp(a, "--only")) only = v;
        else {
            fprintf(stderr, "dg_bench_gemm: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (batch < 1) {
        fprintf(stderr, "dg_bench_gemm: --batch must be >= 1\n");
        return 2;
    }
    if (list) {
        for (int i = 0; i < N_LAYERS; i++) {
            const layer *l = &layers[i];
            printf("{\"layer\":\"%s\",\"used\":\"%s\",\"c\":%d,\"h\":%d,\"w\":%d,\"k\":%d,\"r\":%d,\"s\":%d,"
                   "\"stride\":%d,\"pad\":%d}\n",
                   l->name, l->used, l->c, l->h, l->h, l->k, l->r, l->r, l->stride, l->pad);
        }
        return 0;
    }
    int threads = omp_get_max_threads();
    unsigned state = 12345u;

    /* sgemm peak: the best of a few large square products */
    double peak = 0.0;
    for (const char *p = sizes; p && *p;) {
        int n = atoi(p);
        p = strchr(p, ',');
        if (p) p++;
        if (n < 1) continue;
        size_t nn = (size_t)n * n;
        gemm_ctx g = {n, malloc(nn * 4), malloc(nn * 4), malloc(nn * 4)};
        if (!g.a || !g.b || !g.c) {
            fprintf(stderr, "dg_bench_gemm: out of memory\n");
            return 2;
        }
        fill(g.a, nn, &state);
        fill(g.b, nn, &state);
        double t = best_time(run_gemm, &g, min_s, 3);
        double gf = 2.0 * n * n * (double)n / t * 1e-9;
        if (gf > peak) peak = gf;
        printf("{\"impl\":\"dnnguard\",\"op\":\"sgemm\",\"m\":%d,\"n\":%d,\"k\":%d,\"threads\":%d,\"ms\":%.3f,"
               "\"gflops\":%.2f}\n",
               n, n, n, threads, t * 1e3, gf);
        fflush(stdout);
        free(g.a);
        free(g.b);
        free(g.c);
    }
    printf("{\"impl\":\"dnnguard\",\"op\":\"sgemm_peak\",\"threads\":%d,\"gflops\":%.2f,\"blas\":\"%s\"}\n", threads,
           peak, openblas_get_config());
    fflush(stdout);

    const dg_backend *be = dg_backend_cpu();
    static const char *ops[3] = {"fwd", "bwd_data", "bwd_filter"};
    for (int i = 0; i < N_LAYERS; i++) {
        const layer *l = &layers[i];
        if (only && strcmp(only, l->name) != 0) continue;
        conv_ctx c = {.be = be};
        c.d = (dg_conv_desc){.n = batch, .c = l->c, .h = l->h, .w = l->h, .k = l->k, .r = l->r, .s = l->r,
                             .stride = l->stride, .pad = l->pad};
        if (dg_conv_desc_init(&c.d) != 0) {
            fprintf(stderr, "dg_bench_gemm: bad layer %s\n", l->name);
            return 2;
        }
        size_t nx = (size_t)batch * l->c * l->h * l->h, nw = (size_t)l->k * l->c * l->r * l->r,
               ny = (size_t)batch * l->k * c.d.oh * c.d.ow, wsb = be->conv_workspace_bytes(&c.d);
        c.x = be->alloc(nx * 4);
        c.dx = be->alloc(nx * 4);
        c.w = be->alloc(nw * 4);
        c.dw = be->alloc(nw * 4);
        c.y = be->alloc(ny * 4);
        c.dy = be->alloc(ny * 4);
        c.ws = wsb ? be->alloc(wsb) : NULL;
        size_t nh = nx > ny ? nx : ny;
        if (nw > nh) nh = nw;
        float *h = malloc(nh * 4); /* host staging for x, dy and w */
        if (!c.x || !c.dx || !c.w || !c.dw || !c.y || !c.dy || (wsb && !c.ws) || !h) {
            fprintf(stderr, "dg_bench_gemm: out of memory for %s\n", l->name);
            return 2;
        }
        fill(h, nx, &state);
        be->upload(c.x, h, nx * 4);
        fill(h, ny, &state);
        be->upload(c.dy, h, ny * 4);
        fill(h, nw, &state);
        be->upload(c.w, h, nw * 4);
        double flop = 2.0 * batch * l->k * (double)l->c * l->r * l->r * c.d.oh * c.d.ow;
        for (int op = 0; op < 3; op++) {
            c.op = op;
            double t = best_time(run_conv, &c, min_s, 3);
            double gf = flop / t * 1e-9;
            printf("{\"impl\":\"dnnguard\",\"op\":\"%s\",\"layer\":\"%s\",\"used\":\"%s\",\"n\":%d,\"c\":%d,\"h\":%d,"
                   "\"k\":%d,\"r\":%d,\"stride\":%d,\"pad\":%d,\"threads\":%d,\"ms\":%.3f,\"gflops\":%.2f,"
                   "\"pct_of_sgemm_peak\":%.1f}\n",
                   ops[op], l->name, l->used, batch, l->c, l->h, l->k, l->r, l->stride, l->pad, threads, t * 1e3, gf,
                   peak > 0 ? 100.0 * gf / peak : 0.0);
            fflush(stdout);
        }
        free(h);
        be->free(c.x);
        be->free(c.dx);
        be->free(c.w);
        be->free(c.dw);
        be->free(c.y);
        be->free(c.dy);
        if (c.ws) be->free(c.ws);
    }
    return 0;
}
