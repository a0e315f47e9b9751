/* kernels/cpu/conv_dnnl.c — the CPU convolutions through oneDNN's JIT kernels (AVX2/AVX-512),
 * where they beat im2col + OpenBLAS (bench/README.md): the user's NCHW/OIHW tensors are reordered
 * into the layouts oneDNN's primitive picks, the primitive runs, and the result is reordered back;
 * the filter gradient accumulates (+=) in that last reorder (a sum post-op), and the input
 * gradient does when asked to (accumulate, backend.h), else the reorder writes it.
 *
 * Unlike conv.c this file keeps state: one oneDNN engine and stream, a cache of primitives per
 * shape and pass, and one growing buffer for the reordered tensors (the backend is driven by one
 * host thread; OpenMP runs inside each primitive). Results are repeatable for a fixed thread count.
 * Which shapes and passes take this path: wants(); DNNGUARD_CPU_CONV=im2col|dnnl|auto overrides. */
#include "cpu.h"

enum { PASS_FWD, PASS_BWD_DATA, PASS_BWD_FILTER, PASSES };

#ifdef DNNGUARD_HAVE_DNNL

#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* One pass of one shape: the primitive, the three tensors' layouts it wants (in its argument
 * order: two inputs, one output), reorders from the user's layouts into them and back, and the
 * bytes of each reordered tensor in the shared buffer. */
typedef struct dnnl_pass {
    int state;                           /* 0 not built, 1 ready, -1 unavailable (use im2col) */
    dnnl_primitive_t prim;
    dnnl_primitive_t to_inner[2];        /* user → primitive layout; NULL when they are the same */
    dnnl_primitive_t to_user;            /* primitive layout → user (+= for the backward passes) */
    dnnl_primitive_t to_user_set;        /* the same without the +=: bwd data that writes dx */
    dnnl_memory_t user[3], inner[3];     /* handles set at each call */
    size_t bytes[3];
    int args[3];                         /* DNNL_ARG_* of the three tensors */
} dnnl_pass;

typedef struct dnnl_entry {
    dg_conv_desc d;
    unsigned long used;                  /* for eviction: the call count when last used */
    dnnl_pass pass[PASSES];
} dnnl_entry;

#define DNNL_CACHE 64
static dnnl_entry g_cache[DNNL_CACHE];
static int g_entries;
static unsigned long g_calls;
static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;
static int g_ready;                      /* 0 not tried, 1 ready, -1 oneDNN unusable */
static char *g_buf;                      /* the reordered tensors of the current call */
static size_t g_buf_bytes;

static int ready(void) {
    if (g_ready == 0) {
        g_ready = dnnl_engine_create(&g_engine, dnnl_cpu, 0) == dnnl_success &&
                  dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags) == dnnl_success ? 1 : -1;
        if (g_ready < 0) fprintf(stderr, "dnnguard: oneDNN is unavailable here; convolutions use im2col\n");
    }
    return g_ready > 0;
}

/* "auto" (default): oneDNN for the shapes where it measured faster than im2col on AVX-512 (bench/
 * README.md); "dnnl": every shape; "im2col": none. */
static int mode(void) {
    static int m = -1;
    if (m < 0) {
        const char *e = getenv("DNNGUARD_CPU_CONV");
        m = !e || !strcmp(e, "auto") ? 2 : !strcmp(e, "dnnl") ? 1 : !strcmp(e, "im2col") ? 0 : -2;
        if (m == -2) {
            fprintf(stderr, "dnnguard: DNNGUARD_CPU_CONV must be auto, dnnl or im2col, not '%s'; using auto\n", e);
            m = 2;
        }
    }
    return m;
}

/* Frees what a pass holds, also a pass whose build stopped half way (oneDNN's destroy functions
 * take NULL), and leaves it zeroed: not built. */
static void pass_free(dnnl_pass *p) {
    dnnl_primitive_destroy(p->prim);
    for (int i = 0; i < 2; i++) dnnl_primitive_destroy(p->to_inner[i]);
    dnnl_primitive_destroy(p->to_user);
    dnnl_primitive_destroy(p->to_user_set);
    for (int i = 0; i < 3; i++) {
        dnnl_memory_destroy(p->user[i]);
        dnnl_memory_destroy(p->inner[i]);
    }
    memset(p, 0, sizeof *p);
}

static int same_shape(const dg_conv_desc *a, const dg_conv_desc *b) {
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w && a->k == b->k && a->r == b->r &&
           a->s == b->s && a->stride == b->stride && a->pad == b->pad;
}

static dnnl_entry *entry_for(const dg_conv_desc *d) {
    g_calls++;
    for (int i = 0; i < g_entries; i++)
        if (same_shape(&g_cache[i].d, d)) {
            g_cache[i].used = g_calls;
            return &g_cache[i];
        }
    int at = g_entries;
    if (g_entries == DNNL_CACHE) { /* evict the least recently used shape */
        at = 0;
        for (int i = 1; i < DNNL_CACHE; i++)
            if (g_cache[i].used < g_cache[at].used) at = i;
        for (int p = 0; p < PASSES; p++) pass_free(&g_cache[at].pass[p]);
    } else {
        g_entries++;
    }
    memset(&g_cache[at], 0, sizeof g_cache[at]);
    g_cache[at].d = *d;
    g_cache[at].used = g_calls;
    return &g_cache[at];
}

/* A reorder from one layout to another; sum: dst += reorder(src). NULL on failure. */
static dnnl_primitive_t reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, int sum) {
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    int ok = dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && sum)
        ok = dnnl_post_ops_create(&po) == dnnl_success && dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    if (ok) ok = dnnl_reorder_primitive_desc_create(&pd, from, g_engine, to, g_engine, attr) == dnnl_success;
    if (ok && dnnl_primitive_create(&prim, pd) != dnnl_success) prim = NULL;
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return prim;
}

/* Builds pass `which` of d; 0, or -1 when oneDNN cannot do it (the caller then uses im2col). */
static int build(const dg_conv_desc *d, int which, dnnl_pass *p) {
    dnnl_dims_t src = {d->n, d->c, d->h, d->w}, wei = {d->k, d->c, d->r, d->s}, dst = {d->n, d->k, d->oh, d->ow};
    dnnl_dims_t strides = {d->stride, d->stride}, pad = {d->pad, d->pad};
    dnnl_memory_desc_t src_any, wei_any, dst_any, user_md[3];
    dnnl_convolution_desc_t fd, bd;
    dnnl_primitive_desc_t fwd_pd = NULL, pd = NULL;
    int ok = dnnl_memory_desc_init_by_tag(&src_any, 4, src, dnnl_f32, dnnl_format_tag_any) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&wei_any, 4, wei, dnnl_f32, dnnl_format_tag_any) == dnnl_success &&
             dnnl_memory_desc_init_by_tag(&dst_any, 4, dst, dnnl_f32, dnnl_format_tag_any) == dnnl_success &&
             dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src_any,
                                                &wei_any, NULL, &dst_any, strides, pad, pad) == dnnl_success &&
             dnnl_primitive_desc_create(&fwd_pd, &fd, NULL, g_engine, NULL) == dnnl_success;
    /* the tensors in argument order: the two inputs, then the output */
    static const int args[PASSES][3] = {
        {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
        {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC},
        {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS},
    };
    static const dnnl_query_t queries[PASSES][3] = {
        {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md},
        {dnnl_query_diff_dst_md, dnnl_query_weights_md, dnnl_query_diff_src_md},
        {dnnl_query_src_md, dnnl_query_diff_dst_md, dnnl_query_diff_weights_md},
    };
    const dnnl_dim_t *dims[PASSES][3] = {{src, wei, dst}, {dst, wei, src}, {src, dst, wei}};
    for (int i = 0; ok && i < 3; i++)
        ok = dnnl_memory_desc_init_by_tag(&user_md[i], 4, dims[which][i], dnnl_f32,
                                          dims[which][i] == wei ? dnnl_oihw : dnnl_nchw) == dnnl_success;
    if (ok && which == PASS_FWD) {
        pd = fwd_pd;
        fwd_pd = NULL;
    } else if (ok && which == PASS_BWD_DATA) {
        ok = dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &src_any, &wei_any, &dst_any,
                                                      strides, pad, pad) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &bd, NULL, g_engine, fwd_pd) == dnnl_success;
    } else if (ok) {
        ok = dnnl_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, &src_any, &wei_any, NULL,
                                                         &dst_any, strides, pad, pad) == dnnl_success &&
             dnnl_primitive_desc_create(&pd, &bd, NULL, g_engine, fwd_pd) == dnnl_success;
    }
    memset(p, 0, sizeof *p);
    if (ok) ok = dnnl_primitive_create(&p->prim, pd) == dnnl_success;
    for (int i = 0; ok && i < 3; i++) {
        const dnnl_memory_desc_t *inner = dnnl_primitive_desc_query_md(pd, queries[which][i], 0);
        p->args[i] = args[which][i];
        ok = inner && dnnl_memory_create(&p->user[i], &user_md[i], g_engine, DNNL_MEMORY_NONE) == dnnl_success &&
             dnnl_memory_create(&p->inner[i], inner, g_engine, DNNL_MEMORY_NONE) == dnnl_success;
        if (ok) p->bytes[i] = (dnnl_memory_desc_get_size(inner) + 63) & ~(size_t)63;
        if (ok && i < 2 && !dnnl_memory_desc_equal(inner, &user_md[i]))
            ok = (p->to_inner[i] = reorder(&user_md[i], inner, 0)) != NULL;
        /* the output always goes through the inner buffer: the forward overwrites, the backward
         * passes add onto the user's gradient */
        if (ok && i == 2) ok = (p->to_user = reorder(inner, &user_md[i], which != PASS_FWD)) != NULL;
        if (ok && i == 2 && which == PASS_BWD_DATA) ok = (p->to_user_set = reorder(inner, &user_md[i], 0)) != NULL;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (fwd_pd) dnnl_primitive_desc_destroy(fwd_pd);
    if (!ok) pass_free(p); /* what was made before the failure */
    p->state = ok ? 1 : -1;
    return ok ? 0 : -1;
}

static void must(dnnl_status_t s, const char *what) {
    if (s == dnnl_success) return;
    fprintf(stderr, "dnnguard: oneDNN %s failed (status %d)\n", what, (int)s);
    exit(4);
}

static void exec2(dnnl_primitive_t prim, dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    must(dnnl_primitive_execute(prim, g_stream, 2, a), "reorder");
}

/* Runs pass `which` on user tensors a, b (inputs) and out (the backward data pass adds to it, or
 * writes it when !accumulate); 0, or -1 to fall back to im2col. */
static int run(const dg_conv_desc *d, int which, const float *a, const float *b, float *out, int accumulate) {
    if (!ready()) return -1;
    dnnl_entry *e = entry_for(d);
    dnnl_pass *p = &e->pass[which];
    if (p->state == 0) build(d, which, p);
    if (p->state != 1) return -1;
    size_t need = p->bytes[0] + p->bytes[1] + p->bytes[2];
    if (need > g_buf_bytes) {
        free(g_buf);
        g_buf_bytes = 0;
        g_buf = aligned_alloc(64, need);
        if (!g_buf) return -1;
        g_buf_bytes = need;
    }
    void *user[3] = {(void *)a, (void *)b, out};
    size_t at = 0;
    dnnl_memory_t use[3];
    for (int i = 0; i < 3; i++) {
        must(dnnl_memory_set_data_handle(p->user[i], user[i]), "set_data_handle");
        int staged = i == 2 || p->to_inner[i];
        if (staged) {
            must(dnnl_memory_set_data_handle(p->inner[i], g_buf + at), "set_data_handle");
            at += p->bytes[i];
        }
        use[i] = staged ? p->inner[i] : p->user[i];
    }
    for (int i = 0; i < 2; i++)
        if (p->to_inner[i]) exec2(p->to_inner[i], p->user[i], p->inner[i]);
    dnnl_exec_arg_t args[3] = {{p->args[0], use[0]}, {p->args[1], use[1]}, {p->args[2], use[2]}};
    must(dnnl_primitive_execute(p->prim, g_stream, 3, args), "convolution");
    exec2(which == PASS_BWD_DATA && !accumulate ? p->to_user_set : p->to_user, p->inner[2], p->user[2]);
    must(dnnl_stream_wait(g_stream), "stream wait");
    return 0;
}

/* auto: what bench/RESULTS.md's per-layer table measured (2 AVX-512 cores, batch 128): oneDNN is
 * 1.3-5x faster than im2col on the 3x3 and 5x5 layers of lenet5, wrn-16-4, vgg16 and resnet18 and
 * on strided 1x1 layers, except the input gradient of layers with under 4 input channels (the
 * image layer: 0.2-0.6x) and of 1x1 layers; stride-1 1x1 layers are already a plain GEMM for
 * im2col (0.6-0.8x through oneDNN). */
static int wants(const dg_conv_desc *d, int which) {
    if (d->n < 1 || d->c < 1 || d->k < 1) return 0; /* nothing to compute: im2col's loops do nothing */
    int m = mode();
    if (m != 2) return m;
    int one_by_one = d->r == 1 && d->s == 1;
    if (one_by_one && d->stride == 1 && d->pad == 0) return 0;
    if (which == PASS_BWD_DATA && (d->c < 4 || one_by_one)) return 0;
    return 1;
}

int dg_cpu_dnnl_conv_fwd(const dg_conv_desc *d, const float *x, const float *w, float *y) {
    return wants(d, PASS_FWD) ? run(d, PASS_FWD, x, w, y, 0) : -1;
}
int dg_cpu_dnnl_conv_bwd_data(const dg_conv_desc *d, const float *dy, const float *w, float *dx, int accumulate) {
    return wants(d, PASS_BWD_DATA) ? run(d, PASS_BWD_DATA, dy, w, dx, accumulate) : -1;
}
int dg_cpu_dnnl_conv_bwd_filter(const dg_conv_desc *d, const float *x, const float *dy, float *dw) {
    return wants(d, PASS_BWD_FILTER) ? run(d, PASS_BWD_FILTER, x, dy, dw, 1) : -1;
}

void dg_cpu_dnnl_describe(char *buf, size_t n) {
    const dnnl_version_t *v = dnnl_version();
    static const char *const modes[] = {"im2col (DNNGUARD_CPU_CONV)", "oneDNN (DNNGUARD_CPU_CONV)", "auto"};
    snprintf(buf, n, "oneDNN %d.%d.%d, convolutions %s", v->major, v->minor, v->patch, modes[mode()]);
}

#else /* built without oneDNN: every convolution is im2col's */

#include <stdio.h>

void dg_cpu_dnnl_describe(char *buf, size_t n) { snprintf(buf, n, "no oneDNN, convolutions im2col"); }

int dg_cpu_dnnl_conv_fwd(const dg_conv_desc *d, const float *x, const float *w, float *y) {
    (void)d, (void)x, (void)w, (void)y;
    return -1;
}
int dg_cpu_dnnl_conv_bwd_data(const dg_conv_desc *d, const float *dy, const float *w, float *dx, int accumulate) {
    (void)d, (void)dy, (void)w, (void)dx, (void)accumulate;
    return -1;
}
int dg_cpu_dnnl_conv_bwd_filter(const dg_conv_desc *d, const float *x, const float *dy, float *dw) {
    (void)d, (void)x, (void)dy, (void)dw;
    return -1;
}

#endif
