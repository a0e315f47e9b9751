/* host/selftest.c — the engine of `dnnguard selftest`: builds cases for every op of the table (odd
 * sizes, strides 1–2, padding 0–3, kernels 1/3/5/7, batch 1 and 8), runs each on the reference and
 * the tested backend from the same inputs inside guard words, compares by normalised error, and
 * runs one training step of lenet5 and resnet18-cifar on both. Touches devices only through the op
 * table (upload/download); includes no CUDA header. */
#include "selftest.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kernels/math/dropout.h"
#include "../kernels/math/rng.h"
#include "../nets/registry.h"
#include "cli.h"
#include "net.h"
#include "relevance.h"

/* 64 guard words before and after every output, input and workspace, holding a quiet NaN with a
 * recognisable payload: a stray write changes them, and a stray read spreads NaN. */
#define GUARD 64
#define SENTINEL 0x7FC0DEADu
#define MAXBUF 10

static const char *const op_names[] = {
    "alloc", "upload", "download", "copy", "zero",
    "conv_fwd", "conv_bwd_data", "conv_bwd_filter", "bias_fwd", "bias_bwd",
    "linear_fwd", "linear_bwd", "relu_fwd", "relu_bwd",
    "maxpool_fwd", "maxpool_bwd", "avgpool_fwd", "avgpool_bwd",
    "bn_fwd_train", "bn_fwd_eval", "bn_bwd", "bn_bwd_eval",
    "dropout_fwd", "dropout_bwd", "add", "axpy", "scale", "sum_squares", "softmax_xent", "sgd_step", "adam_step",
    "wm_reg", "cw_box_fwd", "cw_box_bwd", "cw_logits", "lrp_ratio", "lrp_share", "lrp_maxpool", "net_step",
    "net_relevance", NULL,
};

const char *const *dg_selftest_op_names(void) { return op_names; }

int dg_selftest_op_guarded(const char *op) {
    return strcmp(op, "alloc") != 0 && strcmp(op, "net_step") != 0 && strcmp(op, "net_relevance") != 0;
}

/* ---- cases ---- */

enum { ST_IN, ST_OUT, ST_INOUT }; /* read only (checked unchanged); written; accumulated/updated */

typedef struct tbuf {
    const char *name;
    int role;
    int is_int;  /* int32 elements */
    int null;    /* the op gets NULL here (an optional output left out) */
    size_t count;
    void *init;  /* IN/INOUT: initial contents (count elements, malloc'd); OUT: NULL */
} tbuf;

typedef struct tcase tcase;
/* p[i]: the device pointer of buffer i (NULL when null); ws: the conv workspace or NULL */
typedef void (*run_fn)(const dg_backend *be, const tcase *c, void *const *p, void *ws);

struct tcase {
    const char *op;
    char shape[96];
    int nbuf;
    tbuf buf[MAXBUF];
    int tf32_sensitive;
    int conv_ws;
    dg_conv_desc conv;
    dg_pool_desc pool;
    int n, c, hw, in, out;
    size_t count, offset;
    float f[6];
    int iv[4];
    int accumulate; /* backward ops: add to dx (1) or write it (0) */
    uint64_t seed;
    void *host;  /* upload/download: a host buffer the op reads or writes */
    run_fn run;
};

typedef struct ctx {
    const dg_selftest_opts *o;
    dg_selftest_report *r;
    int oom;
} ctx;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static float *rnd(ctx *x, size_t n, uint64_t seed, float lo, float hi) {
    float *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) {
        x->oom = 1;
        return NULL;
    }
    uint64_t s = dg_rng_stream(x->o->seed, seed);
    for (size_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * dg_rng_uniform(s, i);
    return v;
}

static void add_buf(tcase *c, const char *name, int role, int is_int, size_t count, void *init) {
    tbuf *b = &c->buf[c->nbuf++];
    b->name = name;
    b->role = role;
    b->is_int = is_int;
    b->count = count;
    b->init = init;
    b->null = 0;
}
static void add_in(tcase *c, const char *name, float *data, size_t n) { add_buf(c, name, ST_IN, 0, n, data); }
static void add_out(tcase *c, const char *name, size_t n) { add_buf(c, name, ST_OUT, 0, n, NULL); }
static void add_inout(tcase *c, const char *name, float *data, size_t n) { add_buf(c, name, ST_INOUT, 0, n, data); }
static void add_null(tcase *c, const char *name) {
    add_buf(c, name, ST_OUT, 0, 0, NULL);
    c->buf[c->nbuf - 1].null = 1;
}

static void free_case(tcase *c) {
    for (int i = 0; i < c->nbuf; i++) free(c->buf[i].init);
    free(c->host);
}

static dg_selftest_row *new_row(ctx *x, const char *op, const char *shape) {
    dg_selftest_report *r = x->r;
    if (r->n_rows == r->cap_rows) {
        int cap = r->cap_rows ? r->cap_rows * 2 : 64;
        dg_selftest_row *grown = realloc(r->rows, sizeof *grown * (size_t)cap);
        if (!grown) {
            x->oom = 1;
            return NULL;
        }
        r->rows = grown;
        r->cap_rows = cap;
    }
    dg_selftest_row *row = &r->rows[r->n_rows++];
    memset(row, 0, sizeof *row);
    snprintf(row->op, sizeof row->op, "%s", op);
    snprintf(row->shape, sizeof row->shape, "%s", shape);
    row->guards_ok = dg_selftest_op_guarded(op) ? 1 : -1; /* −1: no guard words (alloc, the nets) */
    return row;
}

static int wanted(const ctx *x, const char *op) { return !x->o->only || strcmp(x->o->only, op) == 0; }

/* --inject-error for the ops that do not run through check_case (alloc and the whole nets) */
static int injecting(const ctx *x, const char *op) {
    return x->o->inject && !x->o->inject_stray && strcmp(x->o->inject, op) == 0;
}

/* v[0] moved far enough that (δ/||v||)² > 4 ≫ any tolerance */
static void spoil(float *v, size_t n) {
    double energy = 0.0;
    for (size_t j = 0; j < n; j++) energy += (double)v[j] * v[j];
    v[0] += (float)(1.0 + 2.0 * sqrt(energy));
}

/* Start case c of op, run by run, named by the printf-style fmt; 0 (and c untouched) when --only
 * leaves op out. The caller then adds the buffers and parameters and hands c to check_case. */
static int begin_case(const ctx *x, tcase *c, const char *op, run_fn run, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int begin_case(const ctx *x, tcase *c, const char *op, run_fn run, const char *fmt, ...) {
    if (!wanted(x, op)) return 0;
    memset(c, 0, sizeof *c);
    c->op = op;
    c->run = run;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->shape, sizeof c->shape, fmt, ap);
    va_end(ap);
    return 1;
}

/* An input (checked unchanged) or accumulated buffer of n values drawn uniformly from [lo, hi). */
static void rnd_in(ctx *x, tcase *c, const char *name, size_t n, uint64_t seed, float lo, float hi) {
    add_in(c, name, rnd(x, n, seed, lo, hi), n);
}
static void rnd_inout(ctx *x, tcase *c, const char *name, size_t n, uint64_t seed, float lo, float hi) {
    add_inout(c, name, rnd(x, n, seed, lo, hi), n);
}

/* A backward op's input gradient dx: random values it adds to (c->accumulate), or NaN everywhere,
 * which an op that writes dx must not let through. */
static void grad_out(ctx *x, tcase *c, const char *name, size_t n, uint64_t seed) {
    float *v = rnd(x, n, seed, -1, 1);
    for (size_t i = 0; v && !c->accumulate && i < n; i++) v[i] = NAN;
    add_inout(c, name, v, n);
}

/* The two ways a backward op may treat dx, for case names: "" (adds) or " dx written" */
#define ACC_MODES(acc) for (int acc = 1; acc >= 0; acc--)
#define ACC_TEXT(acc) ((acc) ? "" : " dx written")

static void set_ms(dg_selftest_row *row, int k, double ms) {
    if (k == 0) row->ms_ref = ms;
    else row->ms_test = ms;
}

/* ---- running one case on one backend ---- */

typedef struct side {
    void *base[MAXBUF];
    void *p[MAXBUF];
    void *host[MAXBUF]; /* after the run: GUARD + count + GUARD words as downloaded */
    void *ws_base, *ws;
    size_t ws_words;
    int guards_ok;
    char broke[48];
    double ms;
} side;

static size_t words_of(const tbuf *b) { return b->count + 2 * GUARD; }

static void fill_sentinel(uint32_t *w, size_t n) {
    for (size_t i = 0; i < n; i++) w[i] = SENTINEL;
}

static void release_side(const dg_backend *be, tcase *c, side *s) {
    for (int i = 0; i < c->nbuf; i++) {
        if (s->base[i]) be->free(s->base[i]);
        free(s->host[i]);
    }
    if (s->ws_base) be->free(s->ws_base);
    memset(s, 0, sizeof *s);
}

/* Allocate every buffer inside its guards and upload the initial contents. */
static int setup_side(ctx *x, const dg_backend *be, tcase *c, side *s) {
    memset(s, 0, sizeof *s);
    s->guards_ok = 1;
    for (int i = 0; i < c->nbuf; i++) {
        const tbuf *b = &c->buf[i];
        if (b->null) continue;
        size_t words = words_of(b);
        uint32_t *h = malloc(words * sizeof *h);
        s->base[i] = be->alloc(words * sizeof(uint32_t));
        s->host[i] = h;
        if (!h || !s->base[i]) {
            x->oom = 1;
            return -1;
        }
        fill_sentinel(h, words);
        if (b->init) memcpy(h + GUARD, b->init, b->count * sizeof(uint32_t));
        be->upload(s->base[i], h, words * sizeof *h);
        s->p[i] = (char *)s->base[i] + GUARD * sizeof(uint32_t);
    }
    if (c->conv_ws) {
        size_t bytes = be->conv_workspace_bytes(&c->conv);
        s->ws_words = (bytes + 3) / 4;
        size_t words = s->ws_words + 2 * GUARD;
        uint32_t *h = malloc(words * sizeof *h);
        s->ws_base = be->alloc(words * sizeof *h);
        if (!h || !s->ws_base) {
            free(h);
            x->oom = 1;
            return -1;
        }
        fill_sentinel(h, words);
        be->upload(s->ws_base, h, words * sizeof *h);
        free(h);
        s->ws = (char *)s->ws_base + GUARD * sizeof(uint32_t);
    }
    return 0;
}

static void broke(side *s, const char *what, const char *name) {
    if (s->guards_ok) snprintf(s->broke, sizeof s->broke, "%s %s", what, name);
    s->guards_ok = 0;
}

static int guards_intact(const uint32_t *w, size_t count) {
    for (size_t i = 0; i < GUARD; i++)
        if (w[i] != SENTINEL || w[GUARD + count + i] != SENTINEL) return 0;
    return 1;
}

/* Download everything; check the guards, the inputs, and the workspace's guards. */
static void collect_side(ctx *x, const dg_backend *be, tcase *c, side *s) {
    for (int i = 0; i < c->nbuf; i++) {
        const tbuf *b = &c->buf[i];
        if (b->null) continue;
        uint32_t *h = s->host[i];
        be->download(h, s->base[i], words_of(b) * sizeof *h);
        if (!guards_intact(h, b->count)) broke(s, "guard around", b->name);
        if (b->role == ST_IN && memcmp(h + GUARD, b->init, b->count * sizeof *h) != 0) broke(s, "changed input", b->name);
    }
    if (s->ws_base) {
        size_t words = s->ws_words + 2 * GUARD;
        uint32_t *h = malloc(words * sizeof *h);
        if (!h) {
            x->oom = 1;
            return;
        }
        be->download(h, s->ws_base, words * sizeof *h);
        if (!guards_intact(h, s->ws_words)) broke(s, "guard around", "workspace");
        free(h);
    }
}

static double timed_run(const dg_backend *be, tcase *c, side *s) {
    be->sync();
    double t0 = now_ms();
    c->run(be, c, s->p, s->ws);
    be->sync();
    return now_ms() - t0;
}

/* ||a − b||² / ||b||² in double (||a||² when b is all zeros); NaN/inf propagate. */
static double norm_error(const float *a, const float *b, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (isnan(num) || isnan(den)) return NAN;
    return den > 0.0 ? num / den : num;
}

/* e is worse than cur: a NaN is worse than anything, and stays the worst */
static int worse(double e, double cur) { return isnan(e) ? !isnan(cur) : (!isnan(cur) && e > cur); }

/* The hidden --inject-error: make one element of the case's first output wrong on the tested side;
 * --inject-stray: write the word just past that output instead (a guard must notice). */
static void inject(const dg_backend *be, tcase *c, side *s, int stray) {
    for (int i = 0; i < c->nbuf; i++) {
        tbuf *b = &c->buf[i];
        if (b->null || b->role == ST_IN || b->count == 0) continue;
        uint32_t *h = s->host[i];
        if (stray) {
            const uint32_t word = 0;
            be->upload((uint32_t *)s->p[i] + b->count, &word, sizeof word);
            return;
        }
        be->download(h + GUARD, s->p[i], b->count * sizeof *h);
        if (b->is_int) {
            ((int32_t *)(h + GUARD))[0] += 1;
        } else {
            spoil((float *)(h + GUARD), b->count);
        }
        be->upload(s->p[i], h + GUARD, b->count * sizeof *h);
        return;
    }
}

/* Run case c on both backends, compare, append a row. Frees the case's host data. */
static void check_case(ctx *x, tcase *c) {
    if (x->oom) {
        free_case(c);
        return;
    }
    const dg_selftest_opts *o = x->o;
    const dg_backend *be[2] = {o->ref, o->test};
    side s[2];
    memset(s, 0, sizeof s);
    dg_selftest_row *row = new_row(x, c->op, c->shape);
    if (!row) goto done;
    row->tol = (o->tf32 && c->tf32_sensitive) ? DG_SELFTEST_TOL_TF32 : DG_SELFTEST_TOL_FP32;
    for (int k = 0; k < 2; k++) {
        if (setup_side(x, be[k], c, &s[k]) != 0) goto done;
        s[k].ms = timed_run(be[k], c, &s[k]);
        if (k == 1 && o->inject && strcmp(o->inject, c->op) == 0) inject(be[k], c, &s[k], o->inject_stray);
        collect_side(x, be[k], c, &s[k]);
    }
    row->guards_ok = s[0].guards_ok && s[1].guards_ok;
    int exact_ok = 1, first = 1;
    double worst = 0.0;
    for (int i = 0; i < c->nbuf; i++) {
        const tbuf *b = &c->buf[i];
        if (b->null || b->role == ST_IN) continue;
        const uint32_t *ref = (const uint32_t *)s[0].host[i] + GUARD, *got = (const uint32_t *)s[1].host[i] + GUARD;
        double e;
        if (b->is_int) {
            size_t wrong = 0;
            for (size_t j = 0; j < b->count; j++) wrong += ref[j] != got[j];
            e = b->count ? (double)wrong / (double)b->count : 0.0;
            if (wrong) exact_ok = 0;
        } else {
            e = norm_error((const float *)got, (const float *)ref, b->count);
        }
        if (first || worse(e, worst)) {
            worst = e;
            snprintf(row->worst, sizeof row->worst, "%s", b->name);
        }
        first = 0;
    }
    row->error = worst;
    if (!row->guards_ok)
        snprintf(row->worst, sizeof row->worst, "%s%.36s", s[0].guards_ok ? "" : "reference: ",
                 s[0].guards_ok ? s[1].broke : s[0].broke);
    row->pass = row->guards_ok && exact_ok && !isnan(worst) && worst <= row->tol;
    if (!row->pass) x->r->failed++;
    /* timing: the mean of reps further runs (outputs are no longer looked at) */
    for (int k = 0; k < 2; k++) {
        double ms = s[k].ms;
        if (o->reps > 0) {
            ms = 0.0;
            for (int r = 0; r < o->reps; r++) ms += timed_run(be[k], c, &s[k]);
            ms /= o->reps;
        }
        set_ms(row, k, ms);
    }
done:
    for (int k = 0; k < 2; k++) release_side(be[k], c, &s[k]);
    free_case(c);
}

/* ---- memory ops ---- */

/* A run function: one call through the op table on the case's buffers p[] (ws: the conv workspace). */
#define RUN_FN(name, ...)                                                                  \
    static void name(const dg_backend *be, const tcase *c, void *const *p, void *ws) { \
        (void)ws;                                                                          \
        __VA_ARGS__;                                                                       \
    }

RUN_FN(run_upload, be->upload((float *)p[0] + c->offset, c->host, c->count * sizeof(float)))
/* c->host is shared by both sides: NaN first, so a download that skips part of it cannot pass on
 * what the reference's left there */
RUN_FN(run_download, for (size_t i = 0; i < c->count; i++) ((float *)c->host)[i] = NAN;
       be->download(c->host, (const float *)p[0] + c->offset, c->count * sizeof(float));
       be->upload((float *)p[1] + 1, c->host, c->count * sizeof(float)))
RUN_FN(run_copy, be->copy((float *)p[1] + 5, (const float *)p[0] + c->offset, c->count * sizeof(float)))
RUN_FN(run_zero, be->zero((float *)p[0] + c->offset, c->count * sizeof(float)))

/* alloc: zero-filled and 64-byte aligned, on the tested backend (and the reference, for symmetry) */
static void check_alloc(ctx *x) {
    const size_t sizes[] = {1, 1000, 4099, (size_t)1 << 20};
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        char shape[64];
        snprintf(shape, sizeof shape, "%zu bytes", sizes[t]);
        dg_selftest_row *row = new_row(x, "alloc", shape);
        if (!row) return;
        row->tol = 0.0;
        const dg_backend *be[2] = {x->o->ref, x->o->test};
        size_t nonzero[2] = {0, 0};
        int aligned[2] = {1, 1};
        for (int k = 0; k < 2; k++) {
            unsigned char *h = malloc(sizes[t]);
            double t0 = now_ms();
            void *p = be[k]->alloc(sizes[t]);
            be[k]->sync();
            double ms = now_ms() - t0;
            if (!h || !p) {
                free(h);
                if (p) be[k]->free(p);
                x->oom = 1;
                return;
            }
            aligned[k] = ((uintptr_t)p & 63u) == 0;
            if (k == 1 && injecting(x, "alloc")) {
                const unsigned char one = 1;
                be[k]->upload((char *)p + sizes[t] / 2, &one, 1);
            }
            be[k]->download(h, p, sizes[t]);
            for (size_t i = 0; i < sizes[t]; i++) nonzero[k] += h[i] != 0;
            be[k]->free(p);
            free(h);
            set_ms(row, k, ms);
        }
        row->error = (double)(nonzero[0] + nonzero[1]) / (double)sizes[t];
        row->pass = row->error == 0.0 && aligned[0] && aligned[1];
        snprintf(row->worst, sizeof row->worst, "%s", !aligned[0] || !aligned[1] ? "alignment" : "contents");
        if (!row->pass) x->r->failed++;
    }
}

static void memory_cases(ctx *x) {
    const size_t counts[] = {1 + 7, 1001, 65543};
    for (size_t t = 0; t < sizeof counts / sizeof *counts; t++) {
        size_t n = counts[t], m = n - 7; /* m floats moved, inside buffers of n */
        tcase c;
        if (begin_case(x, &c, "upload", run_upload, "%zu floats at +3", m)) {
            c.count = m, c.offset = 3;
            rnd_inout(x, &c, "dst", n, 1000 + t, -1, 1);
            c.host = rnd(x, m, 1100 + t, -1, 1);
            check_case(x, &c);
        }
        if (begin_case(x, &c, "download", run_download, "%zu floats from +2", m)) {
            c.count = m, c.offset = 2;
            rnd_in(x, &c, "src", n, 1200 + t, -1, 1);
            rnd_inout(x, &c, "dst", n, 1300 + t, -1, 1);
            c.host = malloc(m * sizeof(float));
            if (!c.host) x->oom = 1;
            check_case(x, &c);
        }
        if (begin_case(x, &c, "copy", run_copy, "%zu floats +2 -> +5", m)) {
            c.count = m, c.offset = 2;
            rnd_in(x, &c, "src", n, 1400 + t, -1, 1);
            rnd_inout(x, &c, "dst", n + 3, 1500 + t, -1, 1);
            check_case(x, &c);
        }
        if (begin_case(x, &c, "zero", run_zero, "%zu floats at +3", m)) {
            c.count = m, c.offset = 3;
            rnd_inout(x, &c, "buf", n, 1600 + t, -1, 1);
            check_case(x, &c);
        }
    }
}

/* ---- convolution and bias ---- */

RUN_FN(run_conv_fwd, be->conv_fwd(&c->conv, p[0], p[1], p[2], ws))
RUN_FN(run_conv_bwd_data, be->conv_bwd_data(&c->conv, p[0], p[1], p[2], c->accumulate, ws))
RUN_FN(run_conv_bwd_filter, be->conv_bwd_filter(&c->conv, p[0], p[1], p[2], ws))
RUN_FN(run_bias_fwd, be->bias_fwd(c->n, c->c, c->hw, p[0], p[1]))
RUN_FN(run_bias_bwd, be->bias_bwd(c->n, c->c, c->hw, p[0], p[1]))

static void conv_cases(ctx *x) {
    static const int shapes[][8] = {
        /* n  c   h   w  k  r stride pad */
        {1, 3, 7, 7, 4, 1, 1, 0},    {8, 3, 9, 9, 5, 3, 1, 1},   {4, 5, 13, 11, 6, 3, 2, 1},
        {1, 2, 15, 15, 3, 5, 2, 2},  {8, 3, 17, 17, 4, 7, 2, 3}, {2, 16, 8, 8, 32, 3, 1, 1},
        {1, 5, 6, 9, 7, 3, 2, 0},    {3, 6, 5, 5, 7, 3, 1, 2},   {8, 1, 28, 28, 6, 5, 1, 2},
        {1, 8, 4, 4, 8, 1, 2, 0},    {2, 4, 11, 11, 4, 7, 1, 3}, {8, 32, 16, 16, 32, 3, 1, 1},
    };
    const struct {
        const char *op;
        run_fn run;
    } ops[3] = {{"conv_fwd", run_conv_fwd}, {"conv_bwd_data", run_conv_bwd_data},
                {"conv_bwd_filter", run_conv_bwd_filter}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        const int *s = shapes[t];
        dg_conv_desc d = {.n = s[0], .c = s[1], .h = s[2], .w = s[3], .k = s[4], .r = s[5], .s = s[5],
                          .stride = s[6], .pad = s[7]};
        if (dg_conv_desc_init(&d) != 0) continue;
        size_t nx = (size_t)d.n * d.c * d.h * d.w, nw = (size_t)d.k * d.c * d.r * d.s,
               ny = (size_t)d.n * d.k * d.oh * d.ow;
        uint64_t seed = 2000 + 10 * t;
        tcase c;
        for (int k = 0; k < 3; k++) {
            for (int acc = 1; acc >= (k == 1 ? 0 : 1); acc--) { /* the input gradient both ways */
                if (!begin_case(x, &c, ops[k].op, ops[k].run, "n%d c%d %dx%d k%d %dx%d s%d p%d%s", d.n, d.c, d.h, d.w,
                                d.k, d.r, d.s, d.stride, d.pad, ACC_TEXT(acc)))
                    continue;
                c.accumulate = acc;
                c.conv = d;
                c.conv_ws = 1;
                c.tf32_sensitive = 1;
                if (k == 0) {
                    rnd_in(x, &c, "x", nx, seed, -1, 1);
                    rnd_in(x, &c, "w", nw, seed + 1, -0.5f, 0.5f);
                    add_out(&c, "y", ny);
                } else if (k == 1) {
                    rnd_in(x, &c, "dy", ny, seed + 2, -1, 1);
                    rnd_in(x, &c, "w", nw, seed + 1, -0.5f, 0.5f);
                    grad_out(x, &c, "dx", nx, seed + 3);
                } else {
                    rnd_in(x, &c, "x", nx, seed, -1, 1);
                    rnd_in(x, &c, "dy", ny, seed + 2, -1, 1);
                    rnd_inout(x, &c, "dw", nw, seed + 4, -1, 1);
                }
                check_case(x, &c);
            }
        }
    }
    static const int bias_shapes[][3] = {{1, 3, 1}, {8, 5, 49}, {2, 64, 100}, {3, 7, 13}};
    for (size_t t = 0; t < sizeof bias_shapes / sizeof *bias_shapes; t++) {
        int n = bias_shapes[t][0], ch = bias_shapes[t][1], hw = bias_shapes[t][2];
        size_t total = (size_t)n * ch * hw;
        uint64_t seed = 2500 + 10 * t;
        tcase c;
        if (begin_case(x, &c, "bias_fwd", run_bias_fwd, "n%d c%d hw%d", n, ch, hw)) {
            c.n = n, c.c = ch, c.hw = hw;
            rnd_in(x, &c, "b", (size_t)ch, seed, -1, 1);
            rnd_inout(x, &c, "y", total, seed + 1, -1, 1);
            check_case(x, &c);
        }
        if (begin_case(x, &c, "bias_bwd", run_bias_bwd, "n%d c%d hw%d", n, ch, hw)) {
            c.n = n, c.c = ch, c.hw = hw;
            rnd_in(x, &c, "dy", total, seed + 2, -1, 1);
            rnd_inout(x, &c, "db", (size_t)ch, seed + 3, -1, 1);
            check_case(x, &c);
        }
    }
}

/* ---- linear ---- */

RUN_FN(run_linear_fwd, be->linear_fwd(c->n, c->in, c->out, p[0], p[1], p[2], p[3]))
RUN_FN(run_linear_bwd, be->linear_bwd(c->n, c->in, c->out, p[0], p[1], p[2], p[3], c->accumulate, p[4], p[5]))

static void linear_cases(ctx *x) {
    static const int shapes[][5] = {/* n in out bias dx */
                                    {1, 7, 3, 1, 1}, {8, 400, 120, 1, 1}, {5, 33, 10, 0, 1}, {8, 84, 10, 1, 0},
                                    {3, 512, 1000, 1, 1}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int n = shapes[t][0], in = shapes[t][1], out = shapes[t][2], bias = shapes[t][3], want_dx = shapes[t][4];
        size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
        uint64_t seed = 3000 + 10 * t;
        tcase c;
        char shape[96];
        snprintf(shape, sizeof shape, "n%d in%d out%d%s%s", n, in, out, bias ? "" : " no bias", want_dx ? "" : " no dx/db");
        if (begin_case(x, &c, "linear_fwd", run_linear_fwd, "%s", shape)) {
            c.n = n, c.in = in, c.out = out;
            c.tf32_sensitive = 1;
            rnd_in(x, &c, "x", nx, seed, -1, 1);
            rnd_in(x, &c, "w", nw, seed + 1, -0.2f, 0.2f);
            if (bias) rnd_in(x, &c, "b", (size_t)out, seed + 2, -1, 1);
            else add_null(&c, "b");
            add_out(&c, "y", ny);
            check_case(x, &c);
        }
        ACC_MODES(acc) {
            if (!begin_case(x, &c, "linear_bwd", run_linear_bwd, "%s%s", shape, ACC_TEXT(acc))) break;
            if (!acc && !want_dx) break;
            c.accumulate = acc;
            c.n = n, c.in = in, c.out = out;
            c.tf32_sensitive = 1;
            rnd_in(x, &c, "x", nx, seed, -1, 1);
            rnd_in(x, &c, "w", nw, seed + 1, -0.2f, 0.2f);
            rnd_in(x, &c, "dy", ny, seed + 3, -1, 1);
            if (want_dx) grad_out(x, &c, "dx", nx, seed + 4);
            else add_null(&c, "dx");
            rnd_inout(x, &c, "dw", nw, seed + 5, -1, 1);
            if (want_dx && bias) rnd_inout(x, &c, "db", (size_t)out, seed + 6, -1, 1);
            else add_null(&c, "db");
            check_case(x, &c);
        }
    }
}

/* ---- element-wise ---- */

RUN_FN(run_relu_fwd, be->relu_fwd(c->count, p[0], p[1]))
RUN_FN(run_relu_bwd, be->relu_bwd(c->count, p[0], p[1], p[2], c->accumulate))
RUN_FN(run_dropout_fwd, be->dropout_fwd(c->count, c->f[0], c->seed, (uint64_t)c->iv[0], p[0], p[1], p[2]))
RUN_FN(run_dropout_bwd, be->dropout_bwd(c->count, p[0], p[1], p[2], c->accumulate))
RUN_FN(run_add, be->add(c->count, p[0], p[1], p[2]))
RUN_FN(run_axpy, be->axpy(c->count, c->f[0], p[0], p[1]))
RUN_FN(run_scale, be->scale(c->count, c->f[0], p[0]))
RUN_FN(run_sum_squares, float s = (float)be->sum_squares(c->count, p[0]); be->upload(p[1], &s, sizeof s))
RUN_FN(run_lrp_ratio, be->lrp_ratio(c->count, p[0], p[1], c->f[0], p[2]))
RUN_FN(run_lrp_share, be->lrp_share(c->count, c->f[0], p[0], p[1], p[2]))

static void elementwise_cases(ctx *x) {
    const size_t counts[] = {1, 1000, 100003};
    for (size_t t = 0; t < sizeof counts / sizeof *counts; t++) {
        size_t n = counts[t];
        uint64_t seed = 4000 + 10 * t;
        tcase c;
        if (begin_case(x, &c, "relu_fwd", run_relu_fwd, "%zu elements", n)) {
            c.count = n;
            float *v = rnd(x, n, seed, -1, 1);
            if (v)
                for (size_t i = 0; i < n; i += 7) v[i] = (i / 7) % 2 ? 0.0f : -0.0f; /* exact zeros both ways */
            add_in(&c, "x", v, n);
            add_out(&c, "y", n);
            check_case(x, &c);
        }
        ACC_MODES(acc) {
            if (!begin_case(x, &c, "relu_bwd", run_relu_bwd, "%zu elements%s", n, ACC_TEXT(acc))) break;
            c.accumulate = acc;
            c.count = n;
            float *y = rnd(x, n, seed, -1, 1);
            if (y)
                for (size_t i = 0; i < n; i++) y[i] = y[i] < 0.0f ? 0.0f : y[i];
            add_in(&c, "y", y, n);
            rnd_in(x, &c, "dy", n, seed + 1, -1, 1);
            grad_out(x, &c, "dx", n, seed + 2);
            check_case(x, &c);
        }
        if (begin_case(x, &c, "add", run_add, "%zu elements", n)) {
            c.count = n;
            rnd_in(x, &c, "a", n, seed + 3, -1, 1);
            rnd_in(x, &c, "b", n, seed + 4, -1, 1);
            add_out(&c, "y", n);
            check_case(x, &c);
        }
        if (begin_case(x, &c, "axpy", run_axpy, "%zu elements alpha -0.37", n)) {
            c.count = n;
            c.f[0] = -0.37f;
            rnd_in(x, &c, "x", n, seed + 5, -1, 1);
            rnd_inout(x, &c, "y", n, seed + 6, -1, 1);
            check_case(x, &c);
        }
        if (begin_case(x, &c, "scale", run_scale, "%zu elements alpha 0.61", n)) {
            c.count = n;
            c.f[0] = 0.61f;
            rnd_inout(x, &c, "x", n, seed + 13, -1, 1);
            check_case(x, &c);
        }
        if (begin_case(x, &c, "sum_squares", run_sum_squares, "%zu elements", n)) {
            c.count = n;
            rnd_in(x, &c, "x", n, seed + 14, -1, 1);
            add_out(&c, "sum", 1);
            check_case(x, &c);
        }
        if (begin_case(x, &c, "lrp_ratio", run_lrp_ratio, "%zu elements eps 1e-9", n)) {
            c.count = n;
            c.f[0] = 1e-9f;
            rnd_in(x, &c, "r", n, seed + 7, -1, 1);
            float *z = rnd(x, n, seed + 8, -1, 1);
            if (z)
                for (size_t i = 0; i < n; i += 5) z[i] = (i / 5) % 2 ? 0.0f : -0.0f; /* 0/0 and r/±0 both ways */
            add_in(&c, "z", z, n);
            add_out(&c, "s", n);
            check_case(x, &c);
        }
        if (begin_case(x, &c, "lrp_share", run_lrp_share, "%zu elements alpha -1", n)) {
            c.count = n;
            c.f[0] = -1.0f;
            rnd_in(x, &c, "x", n, seed + 9, -2, 2);
            rnd_in(x, &c, "c", n, seed + 10, -1, 1);
            rnd_inout(x, &c, "rin", n, seed + 11, -1, 1);
            check_case(x, &c);
        }
    }
    const struct {
        size_t n;
        float p;
    } drop[] = {{1, 0.5f}, {4097, 0.5f}, {1000, 0.1f}, {333, 0.0f}};
    for (size_t t = 0; t < sizeof drop / sizeof *drop; t++) {
        size_t n = drop[t].n;
        float p = drop[t].p;
        uint64_t seed = 4500 + 10 * t;
        uint64_t mask_seed = dg_rng_stream(x->o->seed, seed + 9);
        tcase c;
        if (begin_case(x, &c, "dropout_fwd", run_dropout_fwd, "%zu elements p=%.2f", n, (double)p)) {
            c.count = n;
            c.f[0] = p;
            c.seed = mask_seed;
            c.iv[0] = 100003 * t; /* an offset into the global batch (a rank's share) */
            rnd_in(x, &c, "x", n, seed, -1, 1);
            add_out(&c, "y", n);
            add_out(&c, "mask", n);
            check_case(x, &c);
        }
        ACC_MODES(acc) {
            if (!begin_case(x, &c, "dropout_bwd", run_dropout_bwd, "%zu elements p=%.2f%s", n, (double)p,
                            ACC_TEXT(acc)))
                break;
            c.accumulate = acc;
            c.count = n;
            float *mask = malloc(n * sizeof *mask);
            if (mask) {
                float scale = dg_dropout_scale(p);
                for (size_t i = 0; i < n; i++) mask[i] = dg_dropout_mask(mask_seed, i, p, scale);
            } else {
                x->oom = 1;
            }
            add_in(&c, "mask", mask, n);
            rnd_in(x, &c, "dy", n, seed + 1, -1, 1);
            grad_out(x, &c, "dx", n, seed + 2);
            check_case(x, &c);
        }
    }
}

/* ---- pooling ---- */

RUN_FN(run_maxpool_fwd, be->maxpool_fwd(&c->pool, p[0], p[1], p[2]))
RUN_FN(run_maxpool_bwd, be->maxpool_bwd(&c->pool, p[0], p[1], p[2], c->accumulate))
RUN_FN(run_lrp_maxpool, be->lrp_maxpool(&c->pool, p[0], p[1], p[2], c->f[0], p[3]))
RUN_FN(run_avgpool_fwd, be->avgpool_fwd(&c->pool, p[0], p[1]))
RUN_FN(run_avgpool_bwd, be->avgpool_bwd(&c->pool, p[0], p[1], c->accumulate))

/* The reference's argmax for input x (the max-pool backward's input). */
static int32_t *ref_argmax(ctx *x, const dg_pool_desc *d, const float *xin, size_t nx, size_t ny) {
    const dg_backend *be = x->o->ref;
    int32_t *am = malloc(ny * sizeof *am);
    void *dx = be->alloc(nx * sizeof(float)), *dy = be->alloc(ny * sizeof(float)), *da = be->alloc(ny * sizeof(int32_t));
    if (am && dx && dy && da) {
        be->upload(dx, xin, nx * sizeof(float));
        be->maxpool_fwd(d, dx, dy, da);
        be->download(am, da, ny * sizeof *am);
    } else {
        free(am);
        am = NULL;
        x->oom = 1;
    }
    if (dx) be->free(dx);
    if (dy) be->free(dy);
    if (da) be->free(da);
    return am;
}

static void pool_cases(ctx *x) {
    static const int shapes[][8] = {
        /* n c h w k stride pad negative-input */
        {1, 1, 5, 5, 2, 2, 0, 0},   {8, 3, 9, 9, 3, 2, 1, 0},  {2, 4, 13, 11, 3, 1, 1, 0}, {1, 2, 7, 7, 5, 2, 2, 0},
        {3, 2, 6, 6, 7, 1, 3, 0},   {2, 16, 8, 8, 8, 8, 0, 0}, {1, 3, 12, 12, 3, 3, 0, 0}, {8, 3, 9, 9, 3, 2, 1, 1},
        {2, 2, 10, 7, 2, 2, 0, 0},
    };
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        const int *s = shapes[t];
        dg_pool_desc d = {.n = s[0], .c = s[1], .h = s[2], .w = s[3], .k = s[4], .stride = s[5], .pad = s[6]};
        if (dg_pool_desc_init(&d) != 0) continue;
        size_t nx = (size_t)d.n * d.c * d.h * d.w, ny = (size_t)d.n * d.c * d.oh * d.ow;
        float lo = s[7] ? -3.0f : -1.0f, hi = s[7] ? -1.0f : 1.0f; /* all negative: padding must not win */
        uint64_t seed = 5000 + 10 * t;
        char shape[96];
        snprintf(shape, sizeof shape, "n%d c%d %dx%d k%d s%d p%d%s", d.n, d.c, d.h, d.w, d.k, d.stride, d.pad,
                 s[7] ? " negative" : "");
        tcase c;
        if (begin_case(x, &c, "maxpool_fwd", run_maxpool_fwd, "%s", shape)) {
            c.pool = d;
            float *v = rnd(x, nx, seed, lo, hi);
            if (v)
                for (size_t i = 0; i < nx; i += 5) v[i] = v[i > 0 ? i - 1 : 0]; /* ties: first max must win */
            add_in(&c, "x", v, nx);
            add_out(&c, "y", ny);
            add_buf(&c, "argmax", ST_OUT, 1, ny, NULL);
            check_case(x, &c);
        }
        ACC_MODES(acc) {
            if (!begin_case(x, &c, "maxpool_bwd", run_maxpool_bwd, "%s%s", shape, ACC_TEXT(acc))) break;
            c.accumulate = acc;
            c.pool = d;
            float *v = rnd(x, nx, seed, lo, hi);
            int32_t *am = v ? ref_argmax(x, &d, v, nx, ny) : NULL;
            free(v);
            add_buf(&c, "argmax", ST_IN, 1, ny, am);
            rnd_in(x, &c, "dy", ny, seed + 1, -1, 1);
            grad_out(x, &c, "dx", nx, seed + 2);
            check_case(x, &c);
        }
        if (begin_case(x, &c, "lrp_maxpool", run_lrp_maxpool, "%s tie 1e-5", shape)) {
            c.pool = d;
            c.f[0] = 1e-5f;
            float *v = rnd(x, nx, seed, lo, hi), *m = malloc(sizeof(float) * (ny ? ny : 1));
            if (v)
                for (size_t i = 0; i < nx; i += 5) v[i] = v[i > 0 ? i - 1 : 0]; /* ties: shared */
            int32_t *am = v && m ? ref_argmax(x, &d, v, nx, ny) : NULL; /* y: each window's maximum */
            size_t plane_in = (size_t)d.h * d.w, plane_out = (size_t)d.oh * d.ow;
            for (size_t o = 0; am && o < ny; o++) m[o] = v[(o / plane_out) * plane_in + (size_t)am[o]];
            free(am);
            add_in(&c, "x", v, nx);
            add_in(&c, "y", m, ny);
            rnd_in(x, &c, "r", ny, seed + 6, -1, 1);
            rnd_inout(x, &c, "rin", nx, seed + 7, -1, 1);
            check_case(x, &c);
        }
        if (s[7]) continue; /* the negative case is about max pooling */
        if (begin_case(x, &c, "avgpool_fwd", run_avgpool_fwd, "%s", shape)) {
            c.pool = d;
            rnd_in(x, &c, "x", nx, seed + 3, -1, 1);
            add_out(&c, "y", ny);
            check_case(x, &c);
        }
        ACC_MODES(acc) {
            if (!begin_case(x, &c, "avgpool_bwd", run_avgpool_bwd, "%s%s", shape, ACC_TEXT(acc))) break;
            c.accumulate = acc;
            c.pool = d;
            rnd_in(x, &c, "dy", ny, seed + 4, -1, 1);
            grad_out(x, &c, "dx", nx, seed + 5);
            check_case(x, &c);
        }
    }
}

/* ---- batch norm ---- */

RUN_FN(run_bn_fwd_train,
       be->bn_fwd_train(c->n, c->c, c->hw, p[0], p[1], p[2], p[3], p[4], c->f[0], c->f[1], p[5], p[6], p[7]))
RUN_FN(run_bn_fwd_eval, be->bn_fwd_eval(c->n, c->c, c->hw, p[0], p[1], p[2], p[3], p[4], c->f[1], p[5]))
RUN_FN(run_bn_bwd, be->bn_bwd(c->n, c->c, c->hw, p[0], p[1], p[2], p[3], p[4], p[5], c->accumulate, p[6], p[7]))
RUN_FN(run_bn_bwd_eval,
       be->bn_bwd_eval(c->n, c->c, c->hw, p[0], p[1], p[2], p[3], c->f[1], p[4], p[5], c->accumulate, p[6], p[7]))

/* The reference's saved mean and 1/std for x (the training backward's inputs). */
static void ref_bn_stats(ctx *x, int n, int ch, int hw, const float *xin, float **mean, float **invstd) {
    const dg_backend *be = x->o->ref;
    size_t total = (size_t)n * ch * hw, cb = (size_t)ch * sizeof(float);
    float *ones = malloc(cb), *zeros = calloc((size_t)ch, sizeof(float));
    *mean = malloc(cb);
    *invstd = malloc(cb);
    void *dx = be->alloc(total * sizeof(float)), *dy = be->alloc(total * sizeof(float));
    void *g = be->alloc(cb), *b = be->alloc(cb), *rm = be->alloc(cb), *rv = be->alloc(cb), *sm = be->alloc(cb),
         *si = be->alloc(cb);
    if (ones && zeros && *mean && *invstd && dx && dy && g && b && rm && rv && sm && si) {
        for (int i = 0; i < ch; i++) ones[i] = 1.0f;
        be->upload(dx, xin, total * sizeof(float));
        be->upload(g, ones, cb);
        be->upload(b, zeros, cb);
        be->upload(rm, zeros, cb);
        be->upload(rv, ones, cb);
        be->bn_fwd_train(n, ch, hw, dx, g, b, rm, rv, 0.1f, 1e-5f, dy, sm, si);
        be->download(*mean, sm, cb);
        be->download(*invstd, si, cb);
    } else {
        free(*mean);
        free(*invstd);
        *mean = *invstd = NULL;
        x->oom = 1;
    }
    void *all[] = {dx, dy, g, b, rm, rv, sm, si};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i]) be->free(all[i]);
    free(ones);
    free(zeros);
}

static void bn_cases(ctx *x) {
    static const int shapes[][4] = {/* n c hw mean-offset */
                                    {1, 3, 1, 0}, {8, 4, 49, 0}, {2, 16, 64, 0}, {8, 3, 1, 0}, {4, 5, 9, 100},
                                    {8, 8, 256, 0}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int n = shapes[t][0], ch = shapes[t][1], hw = shapes[t][2];
        float off = (float)shapes[t][3];
        size_t total = (size_t)n * ch * hw, cn = (size_t)ch;
        uint64_t seed = 6000 + 10 * t;
        char shape[96];
        snprintf(shape, sizeof shape, "n%d c%d hw%d%s", n, ch, hw, off != 0.0f ? " mean 100" : "");
        tcase c;
        if (begin_case(x, &c, "bn_fwd_train", run_bn_fwd_train, "%s", shape)) {
            c.n = n, c.c = ch, c.hw = hw;
            c.f[0] = 0.1f;
            c.f[1] = 1e-5f;
            rnd_in(x, &c, "x", total, seed, off - 1.0f, off + 2.0f);
            rnd_in(x, &c, "gamma", cn, seed + 1, 0.5f, 1.5f);
            rnd_in(x, &c, "beta", cn, seed + 2, -0.5f, 0.5f);
            rnd_inout(x, &c, "running_mean", cn, seed + 3, -0.2f, 0.2f);
            rnd_inout(x, &c, "running_var", cn, seed + 4, 0.5f, 2.0f);
            add_out(&c, "y", total);
            add_out(&c, "save_mean", cn);
            add_out(&c, "save_invstd", cn);
            check_case(x, &c);
        }
        if (begin_case(x, &c, "bn_fwd_eval", run_bn_fwd_eval, "%s", shape)) {
            c.n = n, c.c = ch, c.hw = hw;
            c.f[1] = 1e-5f;
            rnd_in(x, &c, "x", total, seed, off - 1.0f, off + 2.0f);
            rnd_in(x, &c, "gamma", cn, seed + 1, 0.5f, 1.5f);
            rnd_in(x, &c, "beta", cn, seed + 2, -0.5f, 0.5f);
            rnd_in(x, &c, "running_mean", cn, seed + 3, off - 0.2f, off + 0.2f);
            rnd_in(x, &c, "running_var", cn, seed + 4, 0.5f, 2.0f);
            add_out(&c, "y", total);
            check_case(x, &c);
        }
        ACC_MODES(acc) {
            if (!begin_case(x, &c, "bn_bwd", run_bn_bwd, "%s%s", shape, ACC_TEXT(acc))) break;
            c.accumulate = acc;
            c.n = n, c.c = ch, c.hw = hw;
            float *xv = rnd(x, total, seed, off - 1.0f, off + 2.0f), *mean = NULL, *invstd = NULL;
            if (xv) ref_bn_stats(x, n, ch, hw, xv, &mean, &invstd);
            add_in(&c, "x", xv, total);
            rnd_in(x, &c, "gamma", cn, seed + 1, 0.5f, 1.5f);
            add_in(&c, "save_mean", mean, cn);
            add_in(&c, "save_invstd", invstd, cn);
            rnd_in(x, &c, "dy", total, seed + 5, -1, 1);
            grad_out(x, &c, "dx", total, seed + 6);
            rnd_inout(x, &c, "dgamma", cn, seed + 7, -1, 1);
            rnd_inout(x, &c, "dbeta", cn, seed + 8, -1, 1);
            check_case(x, &c);
        }
        for (int with_params = 1; with_params >= 0; with_params--) ACC_MODES(acc) {
            if (!begin_case(x, &c, "bn_bwd_eval", run_bn_bwd_eval, "%.60s%s%s", shape,
                            with_params ? "" : " no dgamma/dbeta", ACC_TEXT(acc)))
                break;
            c.accumulate = acc;
            c.n = n, c.c = ch, c.hw = hw;
            c.f[1] = 1e-5f;
            rnd_in(x, &c, "x", total, seed, off - 1.0f, off + 2.0f);
            rnd_in(x, &c, "gamma", cn, seed + 1, 0.5f, 1.5f);
            rnd_in(x, &c, "running_mean", cn, seed + 3, off - 0.2f, off + 0.2f);
            rnd_in(x, &c, "running_var", cn, seed + 4, 0.5f, 2.0f);
            rnd_in(x, &c, "dy", total, seed + 5, -1, 1);
            grad_out(x, &c, "dx", total, seed + 6);
            if (with_params) {
                rnd_inout(x, &c, "dgamma", cn, seed + 7, -1, 1);
                rnd_inout(x, &c, "dbeta", cn, seed + 8, -1, 1);
            } else {
                add_null(&c, "dgamma");
                add_null(&c, "dbeta");
            }
            check_case(x, &c);
        }
    }
}

/* ---- loss and optimizers ---- */

RUN_FN(run_softmax_xent, be->softmax_xent(c->n, c->out, p[0], p[1], p[2], p[3], p[4], c->f[0], c->f[1]))
RUN_FN(run_sgd, be->sgd_step(c->count, p[0], p[1], p[2], c->f[0], c->f[1], c->f[2], c->iv[0], c->iv[1]))
RUN_FN(run_wm_reg, be->wm_reg(c->n, p[0], p[1], p[2], c->f[0], c->f[1], c->f[2], p[3], p[4]))
RUN_FN(run_cw_box_fwd, be->cw_box_fwd(c->n, c->c, c->hw, p[0], p[1], p[2], p[3], c->iv[0], p[4], p[5]))
RUN_FN(run_cw_box_bwd, be->cw_box_bwd(c->n, c->c, c->hw, p[0], p[1], p[2], p[3], p[4]))
RUN_FN(run_cw_logits, be->cw_logits(c->n, c->out, p[0], p[1], p[2], p[3], c->f[0], c->iv[0], p[4], p[5], p[6]))
RUN_FN(run_adam,
       be->adam_step(c->count, p[0], p[1], p[2], p[3], c->f[0], c->f[1], c->f[2], c->f[3], c->f[4], c->iv[1],
                     c->iv[0]))

/* the watermark regularizer: n distinct positions (a seeded partial shuffle) in a tensor of
 * `size` weights, with and without the gradient */
static void wm_cases(ctx *x) {
    static const int shapes[][3] = {/* n size with-dw */ {1, 25, 1}, {13, 2400, 1}, {13, 2400, 0}, {300, 4096, 1}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int n = shapes[t][0], size = shapes[t][1], with_dw = shapes[t][2];
        uint64_t seed = 7900 + 10 * t;
        tcase c;
        if (!begin_case(x, &c, "wm_reg", run_wm_reg, "n%d in %d%s", n, size, with_dw ? "" : " no dw")) break;
        c.n = n;
        c.f[0] = 9.0f / 0.6f; /* a: [-0.3, 0.3] onto [0, 9] */
        c.f[1] = 4.5f;
        c.f[2] = 0.01f;
        int32_t *idx = malloc((size_t)size * sizeof *idx);
        float *digits = malloc((size_t)n * sizeof *digits);
        if (idx && digits) {
            uint64_t s = dg_rng_stream(x->o->seed, seed + 1);
            for (int i = 0; i < size; i++) idx[i] = i;
            for (int i = 0; i < n; i++) { /* the first n of a Fisher–Yates shuffle */
                int j = i + (int)(dg_rng_u64(s, (uint64_t)i) % (uint64_t)(size - i));
                int32_t keep = idx[i];
                idx[i] = idx[j];
                idx[j] = keep;
                digits[i] = (float)(dg_rng_u64(s, (uint64_t)(size + i)) % 10u);
            }
        } else {
            x->oom = 1;
        }
        rnd_in(x, &c, "w", (size_t)size, seed, -0.3f, 0.3f);
        add_buf(&c, "idx", ST_IN, 1, (size_t)n, idx);
        add_in(&c, "digits", digits, (size_t)n);
        add_out(&c, "mapped", (size_t)n);
        if (with_dw) rnd_inout(x, &c, "dw", (size_t)size, seed + 2, -1, 1);
        else add_null(&c, "dw");
        check_case(x, &c);
    }
}

/* fingerprint generation: the tanh box (odd sizes, 1 and 3 channels, batch 1) and the logit terms
 * (targets anywhere, including 0 and k−1, logits with ties) */
static void cw_cases(ctx *x) {
    static const int boxes[][4] = {/* n c hw quantize */ {1, 1, 784, 0}, {7, 3, 1024, 1}, {3, 1, 5, 0}, {2, 3, 9, 1}};
    for (size_t t = 0; t < sizeof boxes / sizeof *boxes; t++) {
        int n = boxes[t][0], ch = boxes[t][1], hw = boxes[t][2], quantize = boxes[t][3];
        size_t total = (size_t)n * ch * hw;
        uint64_t seed = 8100 + 10 * t;
        for (int bwd = 0; bwd < 2; bwd++) {
            tcase c;
            if (bwd && quantize) continue; /* the backward has no quantized form */
            if (!begin_case(x, &c, bwd ? "cw_box_bwd" : "cw_box_fwd", bwd ? run_cw_box_bwd : run_cw_box_fwd,
                            "n%d c%d hw%d%s", n, ch, hw, quantize ? " 8-bit" : ""))
                continue;
            c.n = n, c.c = ch, c.hw = hw;
            c.iv[0] = quantize;
            rnd_in(x, &c, "delta", total, seed, -3.0f, 3.0f);
            rnd_in(x, &c, "x0", total, seed + 1, 0.0f, 1.0f);
            if (!bwd) rnd_in(x, &c, "mean", (size_t)ch, seed + 2, 0.1f, 0.6f);
            rnd_in(x, &c, "std", (size_t)ch, seed + 3, 0.2f, 0.4f);
            if (bwd) {
                rnd_in(x, &c, "du", total, seed + 4, -1.0f, 1.0f);
                add_out(&c, "ddelta", total);
            } else {
                add_out(&c, "u", total);
                add_out(&c, "dist", (size_t)n);
            }
            check_case(x, &c);
        }
    }
    static const int rows[][3] = {/* n k untargeted */ {1, 2, 0}, {30, 10, 0}, {5, 1000, 0}, {30, 10, 1}};
    for (size_t t = 0; t < sizeof rows / sizeof *rows; t++) {
        int n = rows[t][0], k = rows[t][1];
        uint64_t seed = 8300 + 10 * t;
        tcase c;
        if (!begin_case(x, &c, "cw_logits", run_cw_logits, "n%d k%d%s", n, k, rows[t][2] ? " untargeted" : "")) break;
        c.n = n, c.out = k;
        c.f[0] = 10.0f;
        c.iv[0] = rows[t][2];
        int32_t *targets = malloc((size_t)n * sizeof *targets);
        if (targets)
            for (int i = 0; i < n; i++) targets[i] = (int32_t)((i * 7) % k);
        else
            x->oom = 1;
        float *logits = rnd(x, (size_t)n * k, seed, -4.0f, 4.0f);
        if (logits && k > 2) logits[2] = logits[1]; /* a tie for the strongest other class */
        add_in(&c, "logits", logits, (size_t)n * k);
        add_buf(&c, "targets", ST_IN, 1, (size_t)n, targets);
        rnd_in(x, &c, "conf", (size_t)n, seed + 1, 0.1f, 0.9f);
        rnd_in(x, &c, "alpha", (size_t)n, seed + 2, 0.5f, 40.0f);
        add_out(&c, "probs", (size_t)n * k);
        add_out(&c, "loss", (size_t)n);
        add_out(&c, "dlogits", (size_t)n * k);
        check_case(x, &c);
    }
}

static void loss_optim_cases(ctx *x) {
    static const int shapes[][5] = {/* n k with-dlogits logit-scale smoothing% */
                                    {1, 2, 1, 1, 0}, {8, 10, 1, 3, 0}, {3, 1000, 1, 5, 0}, {5, 7, 0, 1, 0},
                                    {4, 10, 1, 50, 0}, {8, 10, 1, 3, 10}, {3, 1000, 1, 5, 30}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int n = shapes[t][0], k = shapes[t][1], with_d = shapes[t][2];
        float scale = (float)shapes[t][3];
        size_t nl = (size_t)n * k;
        uint64_t seed = 7000 + 10 * t;
        tcase c;
        const float smoothing = (float)shapes[t][4] / 100.0f;
        if (!begin_case(x, &c, "softmax_xent", run_softmax_xent, "n%d k%d logits +-%g%s smoothing %g", n, k,
                        (double)scale, with_d ? "" : " no dlogits", (double)smoothing))
            break;
        c.n = n, c.out = k;
        c.f[0] = 1.0f / (float)n;
        c.f[1] = smoothing;
        int32_t *labels = malloc((size_t)n * sizeof *labels);
        if (labels) {
            uint64_t s = dg_rng_stream(x->o->seed, seed + 1);
            for (int i = 0; i < n; i++) labels[i] = (int32_t)(dg_rng_u64(s, (uint64_t)i) % (uint64_t)k);
        } else {
            x->oom = 1;
        }
        rnd_in(x, &c, "logits", nl, seed, -scale, scale);
        add_buf(&c, "labels", ST_IN, 1, (size_t)n, labels);
        add_out(&c, "probs", nl);
        add_out(&c, "loss", (size_t)n);
        if (with_d) add_out(&c, "dlogits", nl);
        else add_null(&c, "dlogits");
        check_case(x, &c);
    }
    const size_t n = 1237;
    const struct {
        float momentum, wd;
        int nesterov, first;
    } sgd[] = {{0.0f, 0.0f, 0, 1}, {0.9f, 5e-4f, 0, 1}, {0.9f, 5e-4f, 0, 0}, {0.9f, 5e-4f, 1, 0}};
    for (size_t t = 0; t < sizeof sgd / sizeof *sgd; t++) {
        uint64_t seed = 7500 + 10 * t;
        tcase c;
        if (!begin_case(x, &c, "sgd_step", run_sgd, "%zu momentum %.1f wd %g%s%s", n, (double)sgd[t].momentum,
                        (double)sgd[t].wd, sgd[t].nesterov ? " nesterov" : "", sgd[t].first ? " first" : ""))
            break;
        c.count = n;
        c.f[0] = 0.1f;
        c.f[1] = sgd[t].momentum;
        c.f[2] = sgd[t].wd;
        c.iv[0] = sgd[t].nesterov;
        c.iv[1] = sgd[t].first;
        rnd_inout(x, &c, "w", n, seed, -1, 1);
        rnd_in(x, &c, "g", n, seed + 1, -1, 1);
        if (sgd[t].momentum != 0.0f) rnd_inout(x, &c, "buf", n, seed + 2, -1, 1);
        else add_null(&c, "buf");
        check_case(x, &c);
    }
    const struct {
        int t;
        float wd;
        int decoupled;
    } adam[] = {{1, 0.0f, 0}, {10, 5e-4f, 0}, {1000, 0.0f, 0}, {3, 1e-2f, 1}};
    for (size_t t = 0; t < sizeof adam / sizeof *adam; t++) {
        uint64_t seed = 7800 + 10 * t;
        tcase c;
        if (!begin_case(x, &c, "adam_step", run_adam, "%zu step %d wd %g%s", n, adam[t].t, (double)adam[t].wd,
                        adam[t].decoupled ? " decoupled (AdamW)" : ""))
            break;
        c.count = n;
        c.f[0] = 1e-3f;
        c.f[1] = 0.9f;
        c.f[2] = 0.999f;
        c.f[3] = 1e-8f;
        c.f[4] = adam[t].wd;
        c.iv[0] = adam[t].t;
        c.iv[1] = adam[t].decoupled;
        rnd_inout(x, &c, "w", n, seed, -1, 1);
        rnd_in(x, &c, "g", n, seed + 1, -1, 1);
        rnd_inout(x, &c, "m", n, seed + 2, -0.1f, 0.1f);
        rnd_inout(x, &c, "v", n, seed + 3, 0.0f, 0.01f);
        check_case(x, &c);
    }
    wm_cases(x);
    cw_cases(x);
}

/* ---- one training step of a whole net ---- */

typedef struct net_side {
    dg_net *net;
    float *dx, *buf; /* device: input gradient, SGD momentum */
    float *logits, *grads, *grads_indep, *params, *dx_host, *acts;
    size_t acts_bytes;
    double loss;
    double ms;
} net_side;

static void release_net_side(net_side *s) {
    if (s->net && s->net->be) {
        if (s->dx) s->net->be->free(s->dx);
        if (s->buf) s->net->be->free(s->buf);
    }
    dg_net_free(s->net);
    free(s->logits);
    free(s->grads);
    free(s->grads_indep);
    free(s->params);
    free(s->dx_host);
    free(s->acts);
    memset(s, 0, sizeof *s);
}

/* Bytes from the start of the activation arena to the end of the forward state: every node's
 * output, the activation gradients (zeroed for backward), argmax, masks and saved statistics. */
static size_t forward_state_bytes(const dg_net *net) {
    return (size_t)((const char *)net->labels - (const char *)net->act_arena);
}

static void sgd_all(net_side *s) {
    dg_net *net = s->net;
    for (int i = 0; i < net->n_params; i++) {
        const dg_param *p = &net->params[i];
        if (p->role == DG_PARAM_RUNNING) continue;
        net->be->sgd_step(p->numel, net->param_arena + p->offset, net->grad_arena + p->offset, s->buf + p->offset,
                          0.05f, 0.9f, 5e-4f, 0, 1);
    }
}

static double param_error(const dg_net *net, const float *a, const float *b, int running, const float *base) {
    double num = 0.0, den = 0.0;
    for (int i = 0; i < net->n_params; i++) {
        const dg_param *p = &net->params[i];
        if ((p->role == DG_PARAM_RUNNING) != running) continue;
        for (size_t j = 0; j < p->numel; j++) {
            double va = a[p->offset + j], vb = b[p->offset + j];
            if (base) { /* compare the step (after − before), not the weights */
                va -= base[p->offset + j];
                vb -= base[p->offset + j];
            }
            num += (va - vb) * (va - vb);
            den += vb * vb;
        }
    }
    if (isnan(num) || isnan(den)) return NAN;
    return den > 0.0 ? num / den : num;
}

static void net_step(ctx *x, const char *name, int batch) {
    const dg_selftest_opts *o = x->o;
    char shape[96], err[256];
    snprintf(shape, sizeof shape, "%s batch %d", name, batch);
    dg_selftest_row *row = new_row(x, "net_step", shape);
    if (!row) return;
    row->tol = o->tf32 ? DG_SELFTEST_TOL_TF32 : DG_SELFTEST_TOL_FP32;
    int c, h, w, classes;
    if (dg_net_default_shape(name, &c, &h, &w, &classes) != 0) {
        x->oom = 1;
        return;
    }
    net_side s[2];
    memset(s, 0, sizeof s);
    float *init = NULL, *input = NULL;
    int32_t *labels = NULL;
    const dg_backend *be[2] = {o->ref, o->test};
    size_t per = (size_t)c * h * w, nin = per * (size_t)batch;
    for (int k = 0; k < 2; k++) {
        s[k].net = dg_net_create(name, classes, c, h, w, err, sizeof err);
        if (!s[k].net) {
            fprintf(stderr, "dnnguard: selftest: %s\n", err);
            x->oom = 1;
            goto done;
        }
        if (dg_net_setup(s[k].net, be[k], batch) != 0) {
            x->oom = 1;
            goto done;
        }
    }
    dg_net *n0 = s[0].net;
    size_t nparam = n0->n_param_floats, nlog = (size_t)batch * classes;
    init = malloc(nparam * sizeof *init);
    input = rnd(x, nin, 9000, 0.0f, 1.0f);
    labels = malloc((size_t)batch * sizeof *labels);
    if (!init || !input || !labels) {
        x->oom = 1;
        goto done;
    }
    dg_net_init_host(n0, dg_rng_stream(o->seed, 9001), init);
    for (int i = 0; i < batch; i++)
        labels[i] = (int32_t)(dg_rng_u64(dg_rng_stream(o->seed, 9002), (uint64_t)i) % (uint64_t)classes);
    for (int k = 0; k < 2; k++) {
        net_side *q = &s[k];
        dg_net *net = q->net;
        q->acts_bytes = forward_state_bytes(net);
        q->dx = be[k]->alloc(nin * sizeof(float));
        q->buf = be[k]->alloc(nparam * sizeof(float));
        q->logits = malloc(nlog * sizeof(float));
        q->grads = malloc(nparam * sizeof(float));
        q->grads_indep = malloc(nparam * sizeof(float));
        q->params = malloc(nparam * sizeof(float));
        q->dx_host = malloc(nin * sizeof(float));
        q->acts = malloc(q->acts_bytes ? q->acts_bytes : 1);
        if (!q->dx || !q->buf || !q->logits || !q->grads || !q->grads_indep || !q->params || !q->dx_host || !q->acts) {
            x->oom = 1;
            goto done;
        }
        be[k]->upload(net->param_arena, init, nparam * sizeof(float));
        be[k]->upload(net->nodes[0].y, input, nin * sizeof(float));
        be[k]->upload(net->labels, labels, (size_t)batch * sizeof(int32_t));
        /* independent forward, loss and backward on each backend */
        be[k]->sync();
        double t0 = now_ms();
        dg_net_zero_grad(net);
        dg_net_forward(net, net->nodes[0].y, batch, DG_MODE_BN_BATCH);
        q->loss = dg_net_loss(net, batch);
        dg_net_backward(net, batch, q->dx);
        be[k]->sync();
        q->ms = now_ms() - t0;
        be[k]->download(q->logits, net->nodes[dg_net_output(net)].y, nlog * sizeof(float));
        be[k]->download(q->grads_indep, net->grad_arena, nparam * sizeof(float));
        be[k]->download(q->acts, net->act_arena, q->acts_bytes);
    }
    /* The reference's backward again, from the tested backend's forward state: a ReLU or max-pool
     * decision that last-bit differences flipped between the two forwards would otherwise show as
     * a backward error. The forwards were compared independently above. */
    {
        dg_net *r = s[0].net;
        size_t fwd_end = r->grad_begin, state_begin = r->grad_end;
        be[0]->upload(r->act_arena, s[1].acts, fwd_end);
        be[0]->upload((char *)r->act_arena + state_begin, (char *)s[1].acts + state_begin,
                      s[1].acts_bytes - state_begin);
        be[0]->zero(s[0].dx, nin * sizeof(float));
        dg_net_zero_grad(r);
        (void)dg_net_loss(r, batch);
        dg_net_backward(r, batch, s[0].dx);
    }
    if (injecting(x, "net_step")) { /* one gradient of the tested side, on the device */
        be[1]->download(s[1].grads, s[1].net->grad_arena, nparam * sizeof(float));
        spoil(s[1].grads, nparam);
        be[1]->upload(s[1].net->grad_arena, s[1].grads, nparam * sizeof(float));
    }
    for (int k = 0; k < 2; k++) {
        dg_net *net = s[k].net;
        be[k]->download(s[k].grads, net->grad_arena, nparam * sizeof(float));
        be[k]->download(s[k].dx_host, s[k].dx, nin * sizeof(float));
        sgd_all(&s[k]);
        be[k]->download(s[k].params, net->param_arena, nparam * sizeof(float));
    }
    /* ReLU decisions that differ between the independent forwards (informational) */
    size_t flips = 0;
    for (int i = 1; i < n0->n_nodes; i++) {
        const dg_node *nd = &n0->nodes[i];
        if (nd->kind != DG_NODE_RELU) continue;
        size_t off = (size_t)((const char *)nd->y - (const char *)n0->act_arena), cnt = (size_t)batch * nd->c * nd->h * nd->w;
        const float *a = (const float *)((const char *)s[0].acts + off), *b = (const float *)((const char *)s[1].acts + off);
        for (size_t j = 0; j < cnt; j++) flips += (a[j] > 0.0f) != (b[j] > 0.0f);
    }
    double dl = s[1].loss - s[0].loss;
    struct {
        const char *name;
        double e;
    } comp[] = {
        {"loss", s[0].loss != 0.0 ? dl * dl / (s[0].loss * s[0].loss) : dl * dl},
        {"logits", norm_error(s[1].logits, s[0].logits, nlog)},
        {"activations", norm_error((const float *)s[1].acts, (const float *)s[0].acts, n0->grad_begin / sizeof(float))},
        {"running_stats", param_error(n0, s[1].params, s[0].params, 1, NULL)},
        {"grads", norm_error(s[1].grads, s[0].grads, nparam)},
        {"input_grad", norm_error(s[1].dx_host, s[0].dx_host, nin)},
        {"sgd_step", param_error(n0, s[1].params, s[0].params, 0, init)},
    };
    double worst = 0.0;
    int pos = snprintf(row->note, sizeof row->note, "loss %.7g vs %.7g;", s[1].loss, s[0].loss);
    for (size_t i = 0; i < sizeof comp / sizeof *comp; i++) {
        double e = comp[i].e;
        if (i == 0 || worse(e, worst)) {
            worst = e;
            snprintf(row->worst, sizeof row->worst, "%s", comp[i].name);
        }
        if (i >= 1 && pos >= 0 && (size_t)pos < sizeof row->note)
            pos += snprintf(row->note + pos, sizeof row->note - (size_t)pos, " %s %.1e;", comp[i].name, e);
    }
    double indep = norm_error(s[1].grads_indep, s[0].grads_indep, nparam);
    if (pos >= 0 && (size_t)pos < sizeof row->note)
        snprintf(row->note + pos, sizeof row->note - (size_t)pos, " relu flips %zu; grads of independent runs %.1e",
                 flips, indep);
    row->error = worst;
    row->pass = !isnan(worst) && worst <= row->tol;
    row->ms_ref = s[0].ms;
    row->ms_test = s[1].ms;
    if (!row->pass) x->r->failed++;
done:
    if (x->oom && row && !row->pass && row->error == 0.0) {
        row->error = NAN;
        snprintf(row->worst, sizeof row->worst, "could not run");
        x->r->failed++;
    }
    for (int k = 0; k < 2; k++) release_net_side(&s[k]);
    free(init);
    free(input);
    free(labels);
}

/* ---- the relevance pass of a whole net ---- */

/* DTD relevance (host/relevance.c) of the same weights and inputs on both backends: the input
 * relevance and the logits, compared by normalised error. */
static void net_relevance(ctx *x, const char *name, int batch) {
    const dg_selftest_opts *o = x->o;
    char shape[96], err[256];
    snprintf(shape, sizeof shape, "%s batch %d", name, batch);
    dg_selftest_row *row = new_row(x, "net_relevance", shape);
    if (!row) return;
    row->tol = o->tf32 ? DG_SELFTEST_TOL_TF32 : DG_SELFTEST_TOL_FP32;
    int c, h, w, classes;
    dg_net *net[2] = {NULL, NULL};
    dg_relevance *plan[2] = {NULL, NULL};
    float *init = NULL, *input = NULL, *rel[2] = {NULL, NULL}, *logits[2] = {NULL, NULL};
    const dg_backend *be[2] = {o->ref, o->test};
    double ms[2] = {0, 0};
    if (dg_net_default_shape(name, &c, &h, &w, &classes) != 0) goto fail;
    size_t nin = (size_t)c * h * w * (size_t)batch, nlog = (size_t)classes * (size_t)batch;
    input = rnd(x, nin, 9100, -1.5f, 2.5f);
    for (int k = 0; k < 2; k++) {
        if (!(net[k] = dg_net_create(name, classes, c, h, w, err, sizeof err)) || dg_net_setup(net[k], be[k], batch) != 0)
            goto fail;
        if (!init) {
            if (!(init = malloc(sizeof(float) * net[k]->n_param_floats))) goto fail;
            dg_net_init_host(net[k], dg_rng_stream(o->seed, 9101), init);
        }
        be[k]->upload(net[k]->param_arena, init, sizeof(float) * net[k]->n_param_floats);
        dg_relevance_opts ro = {.eps = DG_RELEVANCE_EPS};
        const float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.25f, 0.25f, 0.25f};
        dg_relevance_bounds(&ro, c, mean, std);
        rel[k] = malloc(sizeof(float) * nin);
        logits[k] = malloc(sizeof(float) * nlog);
        if (!input || !rel[k] || !logits[k] || !(plan[k] = dg_relevance_new(net[k], &ro, err, sizeof err))) goto fail;
        be[k]->sync();
        double t0 = now_ms();
        if (dg_relevance_run(plan[k], input, batch, NULL, NULL, logits[k], rel[k]) != 0) goto fail;
        be[k]->sync();
        ms[k] = now_ms() - t0;
    }
    if (injecting(x, "net_relevance")) spoil(rel[1], nin);
    double e_log = norm_error(logits[1], logits[0], nlog), e_rel = norm_error(rel[1], rel[0], nin);
    row->error = worse(e_log, e_rel) ? e_log : e_rel;
    snprintf(row->worst, sizeof row->worst, "%s", worse(e_log, e_rel) ? "logits" : "relevance");
    snprintf(row->note, sizeof row->note, "logits %.1e; input relevance %.1e", e_log, e_rel);
    row->pass = !isnan(row->error) && row->error <= row->tol;
    row->ms_ref = ms[0];
    row->ms_test = ms[1];
    if (!row->pass) x->r->failed++;
    goto done;
fail:
    x->oom = 1;
    row->error = NAN;
    snprintf(row->worst, sizeof row->worst, "could not run");
    x->r->failed++;
done:
    for (int k = 0; k < 2; k++) {
        dg_relevance_free(plan[k]);
        dg_net_free(net[k]);
        free(rel[k]);
        free(logits[k]);
    }
    free(init);
    free(input);
}

/* ---- the run ---- */

int dg_selftest_run(const dg_selftest_opts *opts, dg_selftest_report *report) {
    memset(report, 0, sizeof *report);
    ctx x = {.o = opts, .r = report, .oom = 0};
    if (wanted(&x, "alloc")) check_alloc(&x);
    memory_cases(&x);
    conv_cases(&x);
    linear_cases(&x);
    elementwise_cases(&x);
    pool_cases(&x);
    bn_cases(&x);
    loss_optim_cases(&x);
    if (opts->nets && wanted(&x, "net_step") && !x.oom) {
        net_step(&x, "lenet5", 8);
        if (!x.oom) net_step(&x, "resnet18-cifar", 4);
    }
    if (opts->nets && wanted(&x, "net_relevance") && !x.oom) {
        net_relevance(&x, "lenet5", 8);
        if (!x.oom) net_relevance(&x, "vgg16-cifar", 2);
        if (!x.oom) net_relevance(&x, "resnet18-cifar", 2);
    }
    if (x.oom) {
        fprintf(stderr, "dnnguard: selftest: out of memory (or a net could not be set up)\n");
        return -1;
    }
    return 0;
}

void dg_selftest_report_free(dg_selftest_report *report) {
    free(report->rows);
    memset(report, 0, sizeof *report);
}

/* ---- reporting ---- */

void dg_selftest_print(FILE *out, const dg_selftest_opts *opts, const dg_selftest_report *r) {
    char ref_col[32], test_col[32];
    snprintf(ref_col, sizeof ref_col, "ms %s", opts->ref->name);
    snprintf(test_col, sizeof test_col, "ms %s", opts->test->name);
    fprintf(out, "%-16s %-36s %-6s %10s %10s  %-14s %10s %10s\n", "op", "case", "result", "error", "tolerance",
            "worst", ref_col, test_col);
    for (int i = 0; i < r->n_rows; i++) {
        const dg_selftest_row *w = &r->rows[i];
        fprintf(out, "%-16s %-36s %-6s %10.3e %10.1e  %-14s %10.3f %10.3f\n", w->op, w->shape, w->pass ? "pass" : "FAIL",
                w->error, w->tol, w->worst, w->ms_ref, w->ms_test);
        if (w->note[0] && (!w->pass || strcmp(w->op, "net_step") == 0)) fprintf(out, "%-16s   %s\n", "", w->note);
    }
    fprintf(out, "%d of %d cases agree", r->n_rows - r->failed, r->n_rows);
    if (r->failed) {
        fprintf(out, "; failing ops:");
        for (int i = 0; i < r->n_rows; i++) {
            if (r->rows[i].pass) continue;
            int seen = 0;
            for (int j = 0; j < i && !seen; j++) seen = !r->rows[j].pass && strcmp(r->rows[j].op, r->rows[i].op) == 0;
            if (!seen) fprintf(out, " %s", r->rows[i].op);
        }
    }
    fputc('\n', out);
}

static void json_number(FILE *out, double v) {
    if (isnan(v) || isinf(v)) fputs("null", out);
    else fprintf(out, "%.6g", v);
}

void dg_selftest_write_json(FILE *out, const dg_selftest_opts *o, const char *device, const dg_selftest_report *r) {
    fputs("{\n  \"reference\": ", out);
    dg_json_string(out, o->ref->name);
    fputs(",\n  \"backend\": ", out);
    dg_json_string(out, o->test->name);
    fputs(",\n  \"device\": ", out);
    dg_json_string(out, device ? device : "");
    fprintf(out, ",\n  \"precision\": \"%s\",\n", o->tf32 ? "tf32" : "fp32");
    fputs("  \"norm\": \"sum((a-b)^2)/sum(b^2) over every element of an output, b = reference (sum(a^2) when b is "
          "all zeros); integer outputs must match exactly\",\n",
          out);
    fprintf(out, "  \"tolerance_fp32\": %g,\n  \"tolerance_tf32\": %g,\n  \"seed\": %llu,\n  \"reps\": %d,\n",
            DG_SELFTEST_TOL_FP32, DG_SELFTEST_TOL_TF32, (unsigned long long)o->seed, o->reps);
    fprintf(out, "  \"cases\": %d,\n  \"failed\": %d,\n  \"all_agree\": %s,\n  \"results\": [\n", r->n_rows, r->failed,
            r->failed ? "false" : "true");
    for (int i = 0; i < r->n_rows; i++) {
        const dg_selftest_row *w = &r->rows[i];
        fputs("    {\"op\": ", out);
        dg_json_string(out, w->op);
        fputs(", \"case\": ", out);
        dg_json_string(out, w->shape);
        fprintf(out, ", \"pass\": %s, \"error\": ", w->pass ? "true" : "false");
        json_number(out, w->error);
        fputs(", \"tolerance\": ", out);
        json_number(out, w->tol);
        fprintf(out, ", \"guards_ok\": %s, \"worst\": ", w->guards_ok < 0 ? "null" : w->guards_ok ? "true" : "false");
        dg_json_string(out, w->worst);
        fputs(", \"note\": ", out);
        dg_json_string(out, w->note);
        fputs(", \"ms_reference\": ", out);
        json_number(out, w->ms_ref);
        fputs(", \"ms_backend\": ", out);
        json_number(out, w->ms_test);
        fprintf(out, "}%s\n", i + 1 < r->n_rows ? "," : "");
    }
    fputs("  ]\n}\n", out);
}
