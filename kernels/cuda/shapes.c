/* kernels/cuda/shapes.c — the CUDA backend's device-free logic (see shapes.h): shape checks, the
 * convolution algorithm cache, algorithm choice, workspace cap, launch geometry, allocation
 * registry. Plain C11: no CUDA header, no device memory, no global state. */
#include "shapes.h"

#include <stdlib.h>
#include <string.h>

#define DG_INT_LIMIT 2147483647.0 /* tensors are indexed with int by cuDNN's 4-d descriptors */

/* ---- shape checks ---- */

static int fail(const char **why, const char *msg) {
    if (why) *why = msg;
    return -1;
}

int dg_cuda_nchw_check(int n, int c, int hw, const char **why) {
    if (n < 0 || c < 0 || hw < 0) return fail(why, "negative size");
    if (n == 0 || c == 0 || hw == 0) return 1;
    if ((double)n * c * hw > DG_INT_LIMIT) return fail(why, "tensor has 2^31 elements or more");
    return 0;
}

int dg_cuda_conv_check(const dg_conv_desc *d, const char **why) {
    if (d->n == 0) return 1;
    if (d->n < 1 || d->c < 1 || d->h < 1 || d->w < 1 || d->k < 1 || d->r < 1 || d->s < 1)
        return fail(why, "every size must be at least 1");
    if (d->stride < 1 || d->pad < 0) return fail(why, "stride must be at least 1 and padding at least 0");
    dg_conv_desc t = *d;
    if (dg_conv_desc_init(&t) != 0) return fail(why, "the filter does not fit the padded input");
    if (t.oh != d->oh || t.ow != d->ow) return fail(why, "oh/ow disagree with dg_conv_desc_init");
    if ((double)d->n * d->c * d->h * d->w > DG_INT_LIMIT) return fail(why, "input has 2^31 elements or more");
    if ((double)d->k * d->c * d->r * d->s > DG_INT_LIMIT) return fail(why, "filter has 2^31 elements or more");
    if ((double)d->n * d->k * d->oh * d->ow > DG_INT_LIMIT) return fail(why, "output has 2^31 elements or more");
    return 0;
}

int dg_cuda_pool_check(const dg_pool_desc *d, const char **why) {
    if (d->n == 0 || d->c == 0) return 1;
    if (d->n < 1 || d->c < 1 || d->h < 1 || d->w < 1 || d->k < 1) return fail(why, "every size must be at least 1");
    dg_pool_desc t = *d;
    if (dg_pool_desc_init(&t) != 0) return fail(why, "window, stride or padding impossible for the input");
    if (t.oh != d->oh || t.ow != d->ow) return fail(why, "oh/ow disagree with dg_pool_desc_init");
    if ((double)d->n * d->c * d->h * d->w > DG_INT_LIMIT) return fail(why, "input has 2^31 elements or more");
    /* padding can make the output larger than the input (k = 2, pad = 1, stride 1: h + 1) */
    if ((double)d->n * d->c * d->oh * d->ow > DG_INT_LIMIT) return fail(why, "output has 2^31 elements or more");
    return 0;
}

/* ---- convolution algorithm cache ---- */

dg_conv_key dg_conv_key_make(const dg_conv_desc *d, int deterministic, int tf32) {
    dg_conv_key k;
    memset(&k, 0, sizeof k);
    k.n = d->n;
    k.c = d->c;
    k.h = d->h;
    k.w = d->w;
    k.k = d->k;
    k.r = d->r;
    k.s = d->s;
    k.stride = d->stride;
    k.pad = d->pad;
    k.deterministic = deterministic ? 1 : 0;
    k.tf32 = tf32 ? 1 : 0;
    return k;
}

int dg_conv_key_equal(const dg_conv_key *a, const dg_conv_key *b) {
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w && a->k == b->k && a->r == b->r &&
           a->s == b->s && a->stride == b->stride && a->pad == b->pad && a->deterministic == b->deterministic &&
           a->tf32 == b->tf32;
}

/* FNV-1a over the fields (not the struct's bytes: no padding can leak in), then a final mix. */
uint64_t dg_conv_key_hash(const dg_conv_key *k) {
    const int f[11] = {k->n, k->c, k->h, k->w, k->k, k->r, k->s, k->stride, k->pad, k->deterministic, k->tf32};
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 11; i++) {
        uint32_t v = (uint32_t)f[i];
        for (int b = 0; b < 4; b++) {
            h ^= (v >> (8 * b)) & 0xffu;
            h *= 0x100000001b3ull;
        }
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static int bucket_of(const dg_conv_key *k) {
    return (int)(dg_conv_key_hash(k) & (uint64_t)(DG_CONV_CACHE_BUCKETS - 1));
}

void dg_conv_cache_init(dg_conv_cache *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < DG_CONV_CACHE_BUCKETS; i++) c->head[i] = -1;
    for (int i = 0; i < DG_CONV_CACHE_CAP; i++) c->next[i] = -1;
}

int dg_conv_cache_find(dg_conv_cache *c, const dg_conv_key *k) {
    for (int s = c->head[bucket_of(k)]; s >= 0; s = c->next[s]) {
        if (dg_conv_key_equal(&c->key[s], k)) {
            c->last_use[s] = ++c->clock;
            c->hits++;
            return s;
        }
    }
    c->misses++;
    return -1;
}

static void unlink_slot(dg_conv_cache *c, int slot) {
    int *link = &c->head[bucket_of(&c->key[slot])];
    while (*link >= 0 && *link != slot) link = &c->next[*link];
    if (*link == slot) *link = c->next[slot];
    c->next[slot] = -1;
}

int dg_conv_cache_insert(dg_conv_cache *c, const dg_conv_key *k, int *evicted) {
    int slot = -1;
    *evicted = 0;
    if (c->count < DG_CONV_CACHE_CAP) {
        for (int i = 0; i < DG_CONV_CACHE_CAP; i++)
            if (!c->used[i]) {
                slot = i;
                break;
            }
        c->count++;
    } else {
        slot = 0;
        for (int i = 1; i < DG_CONV_CACHE_CAP; i++)
            if (c->last_use[i] < c->last_use[slot]) slot = i;
        unlink_slot(c, slot);
        *evicted = 1;
        c->evictions++;
    }
    int b = bucket_of(k);
    c->key[slot] = *k;
    memset(&c->plan[slot], 0, sizeof c->plan[slot]);
    c->used[slot] = 1;
    c->last_use[slot] = ++c->clock;
    c->next[slot] = c->head[b];
    c->head[b] = slot;
    return slot;
}

/* ---- algorithm choice ---- */

static int math_allowed(int math, int tf32) {
    if (math == DG_MATH_DEFAULT || math == DG_MATH_FMA) return 1;
    if (math == DG_MATH_TENSOR_OP) return tf32;
    return 0; /* ALLOW_CONVERSION (FP16 down-conversion) or unknown */
}

int dg_conv_pick(const dg_algo_candidate *cand, int n, size_t cap, int deterministic, int tf32) {
    for (int i = 0; i < n; i++) {
        const dg_algo_candidate *a = &cand[i];
        if (!a->ok || a->algo < 0 || a->ws_bytes > cap) continue;
        if (deterministic && !a->deterministic) continue;
        if (!math_allowed(a->math, tf32)) continue;
        return i;
    }
    return -1;
}

int dg_conv_fallback_algo(int pass) {
    /* IMPLICIT_GEMM = 0; BWD_DATA_ALGO_1 = 1; BWD_FILTER_ALGO_1 = 1 (the _0 ones use atomics) */
    return pass == DG_CONV_FWD ? 0 : 1;
}

int dg_conv_math_for(int candidate_math, int tf32) {
    if (!tf32) return DG_MATH_FMA;
    return candidate_math == DG_MATH_ALLOW_CONVERSION ? DG_MATH_DEFAULT : candidate_math;
}

/* ---- workspace cap ---- */

size_t dg_cuda_ws_cap(size_t total_bytes, const char *env_mb) {
    if (env_mb && *env_mb) {
        char *end = NULL;
        unsigned long long mb = strtoull(env_mb, &end, 10);
        if (end && *end == '\0' && env_mb[0] != '-' && mb > 0 && mb <= ((unsigned long long)1 << 30))
            return (size_t)mb << 20;
    }
    size_t cap = total_bytes / 16;
    if (cap < DG_CUDA_WS_CAP_MIN) cap = DG_CUDA_WS_CAP_MIN;
    if (cap > DG_CUDA_WS_CAP_MAX) cap = DG_CUDA_WS_CAP_MAX;
    return cap;
}

/* ---- launch geometry ---- */

static unsigned grid_cap(int sm_count) { return (unsigned)(sm_count > 0 ? sm_count : 1) * DG_CUDA_WAVES; }

dg_launch dg_launch_1d(size_t n, int sm_count) {
    dg_launch l = {0, DG_CUDA_THREADS};
    if (n == 0) return l;
    size_t blocks = (n + DG_CUDA_THREADS - 1) / DG_CUDA_THREADS;
    size_t cap = grid_cap(sm_count);
    l.blocks = (unsigned)(blocks < cap ? blocks : cap);
    return l;
}

/* A power of two in [32, 1024]: the reductions of reduce.cuh need whole warps and at most 32 of them. */
static unsigned row_threads(size_t row_len, unsigned max_threads) {
    unsigned cap = 32;
    while (cap < 1024 && cap * 2 <= max_threads) cap *= 2;
    unsigned t = 32;
    while (t < cap && t < row_len) t *= 2;
    return t;
}

dg_launch dg_launch_rows(size_t rows, size_t row_len, unsigned max_threads) {
    dg_launch l = {0, row_threads(row_len, max_threads)};
    l.blocks = rows > 0x7fffffffu ? 0x7fffffffu : (unsigned)rows; /* gridDim.x ≤ 2^31 − 1; callers check shapes first */
    return l;
}

dg_launch dg_launch_rows_strided(size_t rows, size_t row_len, unsigned max_threads, int sm_count) {
    dg_launch l = {0, row_threads(row_len, max_threads)};
    size_t cap = grid_cap(sm_count);
    l.blocks = (unsigned)(rows < cap ? rows : cap);
    return l;
}

void dg_pool_covering(int i, int k, int stride, int pad, int out, int *lo, int *hi) {
    /* window o covers rows [o·stride − pad, o·stride − pad + k): o·stride ≥ i + pad − k + 1 and
     * o·stride ≤ i + pad */
    int t = i + pad - k + 1;
    int a = t <= 0 ? 0 : (t + stride - 1) / stride;
    int b = i + pad < 0 ? -1 : (i + pad) / stride;
    if (b > out - 1) b = out - 1;
    *lo = a;
    *hi = b + 1 > a ? b + 1 : a;
}

/* ---- registry of live device allocations ---- */

/* The index of the first entry whose base is > p. */
static size_t upper_bound(const dg_alloc_registry *r, uintptr_t p) {
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->e[mid].base <= p) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int dg_alloc_add(dg_alloc_registry *r, uintptr_t base, size_t bytes) {
    if (base == 0) return -1;
    size_t at = upper_bound(r, base);
    if (at > 0 && r->e[at - 1].base + r->e[at - 1].bytes > base) return -1;
    if (at > 0 && r->e[at - 1].base == base) return -1;
    if (at < r->n && base + bytes > r->e[at].base) return -1;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        dg_alloc_entry *grown = realloc(r->e, cap * sizeof *grown);
        if (!grown) return -1;
        r->e = grown;
        r->cap = cap;
    }
    memmove(&r->e[at + 1], &r->e[at], (r->n - at) * sizeof *r->e);
    r->e[at].base = base;
    r->e[at].bytes = bytes;
    r->n++;
    r->in_use += bytes;
    if (r->in_use > r->peak) r->peak = r->in_use;
    return 0;
}

int dg_alloc_remove(dg_alloc_registry *r, uintptr_t base) {
    size_t at = upper_bound(r, base);
    if (at == 0 || r->e[at - 1].base != base) return -1;
    at--;
    r->in_use -= r->e[at].bytes;
    memmove(&r->e[at], &r->e[at + 1], (r->n - at - 1) * sizeof *r->e);
    r->n--;
    return 0;
}

size_t dg_alloc_room(const dg_alloc_registry *r, uintptr_t p) {
    if (p == 0 || r->n == 0) return 0;
    size_t at = upper_bound(r, p);
    if (at == 0) return 0;
    const dg_alloc_entry *e = &r->e[at - 1];
    return p < e->base + e->bytes ? (size_t)(e->base + e->bytes - p) : 0;
}

void dg_alloc_clear(dg_alloc_registry *r) {
    free(r->e);
    memset(r, 0, sizeof *r);
}
