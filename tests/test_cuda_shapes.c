/* tests/test_cuda_shapes.c — the CUDA backend's device-free logic, without a GPU: shape checks, the
 * convolution algorithm cache (against a brute-force LRU model), algorithm choice and workspace cap,
 * launch geometry, the pooling backward's gather ranges (replayed on the host against the CPU
 * backend's scatter, bit for bit) and the allocation registry. Includes kernels/cuda/shapes.c
 * directly, so the CPU-only build needs no CUDA. */
#include "../kernels/cuda/shapes.c"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static dg_conv_desc conv(int n, int c, int h, int w, int k, int r, int stride, int pad) {
    dg_conv_desc d = {.n = n, .c = c, .h = h, .w = w, .k = k, .r = r, .s = r, .stride = stride, .pad = pad};
    dg_conv_desc_init(&d);
    return d;
}

static void test_shape_checks(void) {
    const char *why = NULL;
    dg_conv_desc d = conv(8, 3, 32, 32, 16, 3, 1, 1);
    CHECK(dg_cuda_conv_check(&d, &why) == 0, "a plain 3x3 conv is accepted");
    d = conv(0, 3, 32, 32, 16, 3, 1, 1);
    CHECK(dg_cuda_conv_check(&d, &why) == 1, "batch 0 is nothing to do");
    d = conv(1, 3, 5, 5, 4, 7, 1, 0);
    why = NULL;
    CHECK(dg_cuda_conv_check(&d, &why) == -1 && why, "a 7x7 filter on an unpadded 5x5 input is refused");
    d = conv(2, 3, 9, 9, 4, 3, 2, 1);
    d.oh += 1;
    CHECK(dg_cuda_conv_check(&d, &why) == -1, "a stale oh is refused");
    d = conv(1024, 64, 256, 256, 8, 3, 1, 1); /* 2^32 input elements */
    CHECK(dg_cuda_conv_check(&d, &why) == -1 && strstr(why, "2^31"), "a 2^32-element input is refused: %s", why);
    d = conv(1, 3, 7, 7, 4, 3, 0, 1);
    CHECK(dg_cuda_conv_check(&d, &why) == -1, "stride 0 is refused");
    d = conv(3, 5, 13, 11, 6, 5, 2, 2);
    CHECK(dg_cuda_conv_check(&d, &why) == 0 && d.oh == 7 && d.ow == 6, "odd non-square input: %dx%d", d.oh, d.ow);

    dg_pool_desc p = {.n = 2, .c = 3, .h = 9, .w = 9, .k = 3, .stride = 2, .pad = 1};
    dg_pool_desc_init(&p);
    CHECK(dg_cuda_pool_check(&p, &why) == 0, "3x3/2 pad 1 pooling is accepted");
    p.n = 0;
    CHECK(dg_cuda_pool_check(&p, &why) == 1, "pooling a batch of 0 is nothing to do");
    dg_pool_desc q = {.n = 1, .c = 1, .h = 4, .w = 4, .k = 2, .stride = 2, .pad = 2};
    q.oh = q.ow = 3;
    CHECK(dg_cuda_pool_check(&q, &why) == -1, "padding over half the window is refused (as PyTorch)");
    dg_pool_desc big = {.n = 1, .c = 1, .h = 46340, .w = 46340, .k = 2, .stride = 1, .pad = 1};
    dg_pool_desc_init(&big); /* input 46340² < 2^31, output 46341² > 2^31 */
    why = NULL;
    CHECK(dg_cuda_pool_check(&big, &why) == -1 && why && strstr(why, "output"),
          "an output of 2^31 elements from a smaller input is refused (%s)", why ? why : "accepted");

    CHECK(dg_cuda_nchw_check(8, 64, 1024, &why) == 0, "ordinary bn shape");
    CHECK(dg_cuda_nchw_check(0, 64, 1024, &why) == 1, "empty bn shape");
    CHECK(dg_cuda_nchw_check(8, -1, 1024, &why) == -1, "negative size");
    CHECK(dg_cuda_nchw_check(65536, 1024, 64, &why) == -1, "2^32 elements refused");
}

static void test_keys(void) {
    dg_conv_desc d = conv(8, 3, 32, 32, 16, 3, 1, 1);
    dg_conv_key a = dg_conv_key_make(&d, 0, 0), b = dg_conv_key_make(&d, 0, 0);
    CHECK(dg_conv_key_equal(&a, &b) && dg_conv_key_hash(&a) == dg_conv_key_hash(&b), "equal keys, equal hashes");
    dg_conv_key c = dg_conv_key_make(&d, 1, 0), t = dg_conv_key_make(&d, 0, 1), both = dg_conv_key_make(&d, 5, 7);
    CHECK(!dg_conv_key_equal(&a, &c) && !dg_conv_key_equal(&a, &t), "the modes are part of the key");
    CHECK(both.deterministic == 1 && both.tf32 == 1, "mode flags are normalised to 0/1");
    /* every geometry field matters */
    int *fields[] = {&b.n, &b.c, &b.h, &b.w, &b.k, &b.r, &b.s, &b.stride, &b.pad};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        b = a;
        *fields[i] += 1;
        CHECK(!dg_conv_key_equal(&a, &b), "field %zu distinguishes keys", i);
    }
    /* hashes spread over the buckets: 1000 realistic shapes land in many buckets */
    static int hit[DG_CONV_CACHE_BUCKETS];
    memset(hit, 0, sizeof hit);
    int used = 0;
    for (int n = 1; n <= 10; n++)
        for (int ch = 16; ch <= 16 * 10; ch += 16)
            for (int hw = 4; hw <= 40; hw += 4) {
                dg_conv_desc e = conv(n, ch, hw, hw, ch, 3, 1, 1);
                dg_conv_key k = dg_conv_key_make(&e, 0, 0);
                int bkt = (int)(dg_conv_key_hash(&k) & (DG_CONV_CACHE_BUCKETS - 1));
                if (!hit[bkt]++) used++;
            }
    CHECK(used > DG_CONV_CACHE_BUCKETS / 2, "1000 shapes use %d of %d buckets", used, DG_CONV_CACHE_BUCKETS);
}

/* A brute-force model of the cache: keys with their last-use stamps, evicting the oldest. */
typedef struct model {
    dg_conv_key key[DG_CONV_CACHE_CAP];
    uint64_t stamp[DG_CONV_CACHE_CAP];
    int n;
    uint64_t clock;
} model;

static int model_find(model *m, const dg_conv_key *k) {
    for (int i = 0; i < m->n; i++)
        if (dg_conv_key_equal(&m->key[i], k)) {
            m->stamp[i] = ++m->clock;
            return i;
        }
    return -1;
}

/* returns the evicted key's index in the model before replacement, or -1 */
static int model_insert(model *m, const dg_conv_key *k, dg_conv_key *evicted_key) {
    if (m->n < DG_CONV_CACHE_CAP) {
        m->key[m->n] = *k;
        m->stamp[m->n++] = ++m->clock;
        return -1;
    }
    int old = 0;
    for (int i = 1; i < m->n; i++)
        if (m->stamp[i] < m->stamp[old]) old = i;
    *evicted_key = m->key[old];
    m->key[old] = *k;
    m->stamp[old] = ++m->clock;
    return old;
}

static void test_cache(void) {
    static dg_conv_cache cache;
    static model m;
    dg_conv_cache_init(&cache);
    memset(&m, 0, sizeof m);

    dg_conv_desc d = conv(8, 3, 32, 32, 16, 3, 1, 1);
    dg_conv_key k0 = dg_conv_key_make(&d, 0, 0);
    CHECK(dg_conv_cache_find(&cache, &k0) == -1, "empty cache misses");
    int ev = -1;
    int s0 = dg_conv_cache_insert(&cache, &k0, &ev);
    CHECK(s0 >= 0 && ev == 0, "first insert gets a slot without eviction");
    cache.plan[s0].ws_need = 12345;
    CHECK(dg_conv_cache_find(&cache, &k0) == s0 && cache.plan[s0].ws_need == 12345, "found again with its plan");
    dg_conv_key k1 = dg_conv_key_make(&d, 0, 1);
    CHECK(dg_conv_cache_find(&cache, &k1) == -1, "same geometry, other mode: a miss");

    /* random workload over 600 keys against the model: same hits, same evictions, and the
     * slot of a key never changes while it lives */
    dg_conv_cache_init(&cache);
    memset(&m, 0, sizeof m);
    static int slot_of_model[DG_CONV_CACHE_CAP];
    uint64_t s = 12345;
    int mismatches = 0, evictions = 0, hits = 0;
    for (int step = 0; step < 20000; step++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        /* a skewed draw: small ids are hot, so there are both hits and evictions */
        int id = (int)((s >> 11) % 600);
        if ((s >> 40) & 1) id %= 200;
        dg_conv_desc e = conv(1 + id % 7, 1 + id / 7, 9, 9, 4, 3, 1, 1);
        dg_conv_key k = dg_conv_key_make(&e, id & 1, 0);
        int got = dg_conv_cache_find(&cache, &k);
        int want = model_find(&m, &k);
        if ((got >= 0) != (want >= 0)) mismatches++;
        if (got >= 0) {
            hits++;
            if (slot_of_model[want] != got) mismatches++;
            continue;
        }
        dg_conv_key gone;
        int evicted = 0;
        int slot = dg_conv_cache_insert(&cache, &k, &evicted);
        int replaced = model_insert(&m, &k, &gone);
        if (evicted != (replaced >= 0)) mismatches++;
        if (replaced >= 0) {
            evictions++;
            if (slot_of_model[replaced] != slot) mismatches++; /* the LRU entry's slot was reused */
            if (dg_conv_cache_find(&cache, &gone) != -1) mismatches++;
            slot_of_model[replaced] = slot;
        } else {
            slot_of_model[m.n - 1] = slot;
        }
        if (cache.plan[slot].ws_need != 0) mismatches++; /* a new slot starts with an empty plan */
        cache.plan[slot].ws_need = (size_t)id + 1;
    }
    CHECK(mismatches == 0, "cache agrees with the LRU model (%d mismatches, %d hits, %d evictions)", mismatches, hits,
          evictions);
    CHECK(hits > 1000 && evictions > 1000, "the workload exercised hits (%d) and evictions (%d)", hits, evictions);
    CHECK(cache.count == DG_CONV_CACHE_CAP, "the cache is full: %d", cache.count);
    /* every live key is found in its slot with its own plan */
    int bad = 0;
    for (int i = 0; i < m.n; i++) {
        int got = dg_conv_cache_find(&cache, &m.key[i]);
        if (got != slot_of_model[i]) bad++;
        int id = (m.key[i].c - 1) * 7 + (m.key[i].n - 1);
        if (got >= 0 && cache.plan[got].ws_need != (size_t)id + 1) bad++;
    }
    CHECK(bad == 0, "all %d live keys found with their plans (%d bad)", m.n, bad);
}

static void test_pick(void) {
    dg_algo_candidate c[5] = {
        {.algo = 6, .ok = 1, .ws_bytes = 300u << 20, .deterministic = 1, .math = DG_MATH_FMA},   /* too big */
        {.algo = 0, .ok = 0, .ws_bytes = 0, .deterministic = 1, .math = DG_MATH_FMA},           /* failed */
        {.algo = 3, .ok = 1, .ws_bytes = 1u << 20, .deterministic = 0, .math = DG_MATH_FMA},    /* non-det */
        {.algo = 1, .ok = 1, .ws_bytes = 2u << 20, .deterministic = 1, .math = DG_MATH_TENSOR_OP},
        {.algo = 2, .ok = 1, .ws_bytes = 4u << 20, .deterministic = 1, .math = DG_MATH_DEFAULT},
    };
    size_t cap = 256u << 20;
    CHECK(dg_conv_pick(c, 5, cap, 0, 0) == 2, "fp32: the best that fits, is ok and is FMA");
    CHECK(dg_conv_pick(c, 5, cap, 1, 0) == 4, "deterministic fp32 skips non-det and tensor-op");
    CHECK(dg_conv_pick(c, 5, cap, 1, 1) == 3, "deterministic tf32 takes the tensor-op one");
    CHECK(dg_conv_pick(c, 5, (size_t)1 << 30, 0, 0) == 0, "a larger cap admits the top one");
    CHECK(dg_conv_pick(c, 5, 0, 0, 0) == -1, "no workspace: nothing here qualifies (failed one is not ok)");
    CHECK(dg_conv_pick(c, 0, cap, 0, 0) == -1, "no candidates");
    dg_algo_candidate conv16[1] = {{.algo = 1, .ok = 1, .ws_bytes = 0, .deterministic = 1,
                                    .math = DG_MATH_ALLOW_CONVERSION}};
    CHECK(dg_conv_pick(conv16, 1, cap, 0, 1) == -1, "FP16 down-conversion is never picked");
    CHECK(dg_conv_fallback_algo(DG_CONV_FWD) == 0 && dg_conv_fallback_algo(DG_CONV_BWD_DATA) == 1 &&
              dg_conv_fallback_algo(DG_CONV_BWD_FILTER) == 1,
          "fallbacks: IMPLICIT_GEMM, BWD_DATA_ALGO_1, BWD_FILTER_ALGO_1 (the deterministic ones)");
    CHECK(dg_conv_math_for(DG_MATH_DEFAULT, 0) == DG_MATH_FMA && dg_conv_math_for(DG_MATH_TENSOR_OP, 0) == DG_MATH_FMA,
          "fp32 always runs with FMA math (no TF32)");
    CHECK(dg_conv_math_for(DG_MATH_TENSOR_OP, 1) == DG_MATH_TENSOR_OP && dg_conv_math_for(DG_MATH_FMA, 1) == DG_MATH_FMA,
          "tf32 keeps the candidate's math");

    size_t GiB = (size_t)1 << 30, MiB = (size_t)1 << 20;
    CHECK(dg_cuda_ws_cap(80 * GiB, NULL) == GiB, "80 GiB device: 1 GiB cap");
    CHECK(dg_cuda_ws_cap(8 * GiB, "") == 512 * MiB, "8 GiB device: 512 MiB cap");
    CHECK(dg_cuda_ws_cap(512 * MiB, NULL) == 64 * MiB, "small device: the 64 MiB floor");
    CHECK(dg_cuda_ws_cap(80 * GiB, "200") == 200 * MiB, "DNNGUARD_CUDA_WS_MB=200");
    CHECK(dg_cuda_ws_cap(80 * GiB, "abc") == GiB && dg_cuda_ws_cap(80 * GiB, "-5") == GiB &&
              dg_cuda_ws_cap(80 * GiB, "0") == GiB && dg_cuda_ws_cap(80 * GiB, "12x") == GiB,
          "malformed DNNGUARD_CUDA_WS_MB values are ignored");
}

static void test_launch(void) {
    dg_launch l = dg_launch_1d(0, 132);
    CHECK(l.blocks == 0, "nothing to do: no launch");
    l = dg_launch_1d(1, 132);
    CHECK(l.blocks == 1 && l.threads == DG_CUDA_THREADS, "1 element: 1 block");
    l = dg_launch_1d(256, 132);
    CHECK(l.blocks == 1, "256: 1 block");
    l = dg_launch_1d(257, 132);
    CHECK(l.blocks == 2, "257: 2 blocks");
    l = dg_launch_1d((size_t)1 << 33, 132);
    CHECK(l.blocks == 132u * DG_CUDA_WAVES, "huge n: capped at %u blocks (grid-stride)", l.blocks);
    l = dg_launch_1d((size_t)1 << 33, 0);
    CHECK(l.blocks == DG_CUDA_WAVES, "unknown SM count counts as one");
    /* a grid-stride loop (i = tid; i < n; i += blocks·threads) visits every index exactly once:
     * simulated for a few sizes, counting visits per index */
    size_t ns[] = {1, 31, 255, 256, 257, 100003, 4224 * 256 + 17, (size_t)3 << 20};
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
        l = dg_launch_1d(ns[t], 132);
        size_t stride = (size_t)l.blocks * l.threads, wrong = 0;
        unsigned char *seen = calloc(ns[t], 1);
        for (size_t tid = 0; tid < stride; tid++)
            for (size_t i = tid; i < ns[t]; i += stride) seen[i]++;
        for (size_t i = 0; i < ns[t]; i++) wrong += seen[i] != 1;
        free(seen);
        CHECK(wrong == 0 && l.blocks <= 132u * DG_CUDA_WAVES && (stride < ns[t] + l.threads),
              "n=%zu: %u blocks visit every index once (%zu wrong), no block wholly idle", ns[t], l.blocks, wrong);
    }

    l = dg_launch_rows(64, 131072, DG_CUDA_ROW_THREADS);
    CHECK(l.blocks == 64 && l.threads == DG_CUDA_ROW_THREADS, "bn 64 channels of 128k: 64 blocks of 512");
    l = dg_launch_rows(10, 1, DG_CUDA_ROW_THREADS);
    CHECK(l.blocks == 10 && l.threads == 32, "one value per channel: a single warp");
    l = dg_launch_rows(128, 10, DG_CUDA_THREADS);
    CHECK(l.threads == 32, "softmax over 10 classes: one warp");
    l = dg_launch_rows(128, 1000, DG_CUDA_THREADS);
    CHECK(l.threads == 256, "softmax over 1000 classes: 256 threads");
    l = dg_launch_rows(3, 100, DG_CUDA_THREADS);
    CHECK(l.threads == 128, "100 items: 128 threads (power of two, multiple of 32)");
    l = dg_launch_rows(0, 100, DG_CUDA_THREADS);
    CHECK(l.blocks == 0, "no rows: no launch");
    for (size_t len = 1; len < 5000; len = len * 3 + 1) {
        l = dg_launch_rows(1, len, DG_CUDA_ROW_THREADS);
        int pow2 = (l.threads & (l.threads - 1)) == 0;
        CHECK(pow2 && l.threads >= 32 && l.threads <= DG_CUDA_ROW_THREADS &&
                  (l.threads >= len || l.threads == DG_CUDA_ROW_THREADS) && (l.threads / 2 < len || l.threads == 32),
              "row of %zu: %u threads", len, l.threads);
    }
    /* a cap that is not a power of two, or above 1024, still gives whole warps, at most 32 of them */
    l = dg_launch_rows(4, 5000, 300);
    CHECK(l.threads == 256, "cap 300: 256 threads, not 300 (%u)", l.threads);
    l = dg_launch_rows(4, 1 << 20, 4096);
    CHECK(l.threads == 1024, "cap 4096: 1024 threads (%u)", l.threads);
    l = dg_launch_rows(4, 5000, 8);
    CHECK(l.threads == 32, "cap 8: one warp (%u)", l.threads);
    l = dg_launch_rows((size_t)1 << 32, 1, 32);
    CHECK(l.blocks == 0x7fffffffu, "2^32 rows: the grid stops at 2^31 - 1 blocks (%u)", l.blocks);
    l = dg_launch_rows_strided((size_t)256 * 512, 16, DG_CUDA_THREADS, 132);
    CHECK(l.blocks == 132u * DG_CUDA_WAVES && l.threads == 32, "bn eval over 128k planes of 4x4: capped grid, 1 warp");
    l = dg_launch_rows_strided(6, 50176, DG_CUDA_THREADS, 132);
    CHECK(l.blocks == 6 && l.threads == 256, "6 large planes: 6 blocks of 256");
}

/* dg_pool_covering against the definition, for every input row. */
static void test_covering(void) {
    int bad = 0, cases = 0;
    for (int k = 1; k <= 7; k++)
        for (int stride = 1; stride <= 4; stride++)
            for (int pad = 0; 2 * pad <= k; pad++)
                for (int in = 1; in <= 17; in++) {
                    if (in + 2 * pad < k) continue;
                    int out = (in + 2 * pad - k) / stride + 1;
                    for (int i = 0; i < in; i++) {
                        int lo, hi;
                        dg_pool_covering(i, k, stride, pad, out, &lo, &hi);
                        for (int o = 0; o < out; o++) {
                            int start = o * stride - pad;
                            int covers = start <= i && i < start + k;
                            int inside = o >= lo && o < hi;
                            if (covers != inside) bad++;
                        }
                        cases++;
                    }
                }
    CHECK(bad == 0, "covering ranges match the window definition (%d rows, %d wrong)", cases, bad);
}

/* Host replays of pool.cu's gather kernels (same loops, same order of additions). */
static void maxpool_bwd_gather(const dg_pool_desc *d, const int32_t *argmax, const float *dy, float *dx,
                               int accumulate) {
    const size_t out = (size_t)d->oh * d->ow, in = (size_t)d->h * d->w, total = (size_t)d->n * d->c * in;
    for (size_t e = 0; e < total; e++) {
        size_t pl = e / in;
        int idx = (int)(e - pl * in), iy = idx / d->w, ix = idx - iy * d->w;
        int oy0, oy1, ox0, ox1;
        dg_pool_covering(iy, d->k, d->stride, d->pad, d->oh, &oy0, &oy1);
        dg_pool_covering(ix, d->k, d->stride, d->pad, d->ow, &ox0, &ox1);
        float acc = accumulate ? dx[e] : 0.0f;
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = ox0; ox < ox1; ox++)
                if (argmax[pl * out + oy * d->ow + ox] == idx) acc += dy[pl * out + oy * d->ow + ox];
        dx[e] = acc;
    }
}

static void avgpool_bwd_gather(const dg_pool_desc *d, const float *dy, float *dx, int accumulate) {
    const size_t out = (size_t)d->oh * d->ow, in = (size_t)d->h * d->w, total = (size_t)d->n * d->c * in;
    const float div = (float)(d->k * d->k);
    for (size_t e = 0; e < total; e++) {
        size_t pl = e / in;
        int idx = (int)(e - pl * in), iy = idx / d->w, ix = idx - iy * d->w;
        int oy0, oy1, ox0, ox1;
        dg_pool_covering(iy, d->k, d->stride, d->pad, d->oh, &oy0, &oy1);
        dg_pool_covering(ix, d->k, d->stride, d->pad, d->ow, &ox0, &ox1);
        float acc = accumulate ? dx[e] : 0.0f;
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = ox0; ox < ox1; ox++) acc += dy[pl * out + oy * d->ow + ox] / div;
        dx[e] = acc;
    }
}

static void test_pool_gather_matches_cpu(void) {
    const dg_backend *cpu = dg_backend_cpu();
    const int shapes[][7] = {/* n c h w k stride pad */
                             {2, 3, 9, 9, 3, 2, 1}, {1, 2, 13, 11, 3, 1, 1}, {3, 1, 7, 7, 5, 2, 2},
                             {2, 2, 6, 6, 7, 1, 3}, {1, 4, 8, 8, 8, 8, 0},   {2, 3, 10, 7, 2, 2, 0},
                             {1, 1, 5, 5, 4, 3, 2}, {2, 2, 12, 12, 3, 3, 0}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        const int *s = shapes[t];
        dg_pool_desc d = {.n = s[0], .c = s[1], .h = s[2], .w = s[3], .k = s[4], .stride = s[5], .pad = s[6]};
        CHECK(dg_pool_desc_init(&d) == 0, "shape %zu valid", t);
        size_t in = (size_t)d.n * d.c * d.h * d.w, out = (size_t)d.n * d.c * d.oh * d.ow;
        float *x = malloc(in * sizeof *x), *y = malloc(out * sizeof *y), *dy = malloc(out * sizeof *dy);
        float *dx_cpu = malloc(in * sizeof *dx_cpu), *dx_gather = malloc(in * sizeof *dx_gather);
        int32_t *am = malloc(out * sizeof *am);
        dg_test_fill(x, in, 100 + t, -2.0f, 2.0f);
        /* ties: a coarse grid of values, so that "first maximum wins" matters */
        for (size_t i = 0; i < in; i++) x[i] = roundf(x[i] * 2.0f) / 2.0f;
        dg_test_fill(dy, out, 200 + t, -1.0f, 1.0f);
        dg_test_fill(dx_cpu, in, 300 + t, -1.0f, 1.0f);
        memcpy(dx_gather, dx_cpu, in * sizeof *dx_cpu);
        cpu->maxpool_fwd(&d, x, y, am);
        for (int acc = 1; acc >= 0; acc--) { /* onto dx, then over a NaN-filled one */
            if (!acc) dg_test_fill_nan(dx_cpu, in), dg_test_fill_nan(dx_gather, in);
            cpu->maxpool_bwd(&d, am, dy, dx_cpu, acc);
            maxpool_bwd_gather(&d, am, dy, dx_gather, acc);
            CHECK(memcmp(dx_cpu, dx_gather, in * sizeof *dx_cpu) == 0,
                  "max pool shape %zu, accumulate %d: gather == CPU scatter, bit for bit", t, acc);
            dg_test_fill(dx_cpu, in, 400 + t, -1.0f, 1.0f);
            memcpy(dx_gather, dx_cpu, in * sizeof *dx_cpu);
            if (!acc) dg_test_fill_nan(dx_cpu, in), dg_test_fill_nan(dx_gather, in);
            cpu->avgpool_bwd(&d, dy, dx_cpu, acc);
            avgpool_bwd_gather(&d, dy, dx_gather, acc);
            CHECK(memcmp(dx_cpu, dx_gather, in * sizeof *dx_cpu) == 0,
                  "avg pool shape %zu, accumulate %d: gather == CPU scatter, bit for bit", t, acc);
        }
        free(x);
        free(y);
        free(dy);
        free(dx_cpu);
        free(dx_gather);
        free(am);
    }
}

static void test_registry(void) {
    dg_alloc_registry r = {0};
    CHECK(dg_alloc_room(&r, 0x1000) == 0, "empty registry: no room anywhere");
    CHECK(dg_alloc_add(&r, 0x10000, 0x1000) == 0, "add a");
    CHECK(dg_alloc_add(&r, 0x30000, 0x2000) == 0, "add c");
    CHECK(dg_alloc_add(&r, 0x20000, 0x100) == 0, "add b (between, kept sorted)");
    CHECK(r.n == 3 && r.e[0].base == 0x10000 && r.e[1].base == 0x20000 && r.e[2].base == 0x30000, "sorted");
    CHECK(dg_alloc_add(&r, 0x10800, 0x100) == -1, "overlap inside a is refused");
    CHECK(dg_alloc_add(&r, 0x1ff00, 0x200) == -1, "overlap into b is refused");
    CHECK(dg_alloc_add(&r, 0x20000, 0x10) == -1, "a duplicate base is refused");
    CHECK(dg_alloc_add(&r, 0, 16) == -1, "NULL is refused");
    CHECK(dg_alloc_room(&r, 0x10000) == 0x1000, "room at a's start");
    CHECK(dg_alloc_room(&r, 0x10f00) == 0x100, "room inside a (an arena-carved pointer)");
    CHECK(dg_alloc_room(&r, 0x11000) == 0, "one past a's end: none");
    CHECK(dg_alloc_room(&r, 0x300ff) == 0x2000 - 0xff, "room inside c");
    CHECK(dg_alloc_room(&r, 0x5) == 0 && dg_alloc_room(&r, 0) == 0, "below everything / NULL: none");
    CHECK(r.in_use == 0x3100 && r.peak == 0x3100, "in use %zx", r.in_use);
    CHECK(dg_alloc_remove(&r, 0x20010) == -1, "removing an inner pointer is refused");
    CHECK(dg_alloc_remove(&r, 0x20000) == 0 && r.n == 2 && r.in_use == 0x3000 && r.peak == 0x3100, "remove b");
    CHECK(dg_alloc_room(&r, 0x20000) == 0, "b's room is gone");
    CHECK(dg_alloc_remove(&r, 0x20000) == -1, "double remove is refused");
    for (uintptr_t i = 0; i < 1000; i++) CHECK(dg_alloc_add(&r, 0x100000 + i * 0x1000, 0x800) == 0, "bulk add %zu", (size_t)i);
    CHECK(r.n == 1002 && dg_alloc_room(&r, 0x100000 + 500 * 0x1000 + 0x10) == 0x7f0, "1002 live, lookups right");
    CHECK(dg_alloc_room(&r, 0x100000 + 500 * 0x1000 + 0x900) == 0, "a gap between allocations has no room");
    dg_alloc_clear(&r);
    CHECK(r.n == 0 && r.e == NULL, "cleared");
}

int main(void) {
    test_shape_checks();
    test_keys();
    test_cache();
    test_pick();
    test_launch();
    test_covering();
    test_pool_gather_matches_cpu();
    test_registry();
    return dg_test_done("test_cuda_shapes");
}
