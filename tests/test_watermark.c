/* tests/test_watermark.c — the watermark's pieces without training: the regularizer op's value
 * and gradient (finite differences, double reference), key generation (largest-norm filter,
 * the map's range, determinism from the seed, refusals), the key file (exact round trip, mode
 * 0600, every corrupt field refused), verification and its searches on tensors with a planted
 * watermark, permuted copies and unrelated weights, and SHA-256 against the standard's vectors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "host/sha256.h"
#include "host/watermark.h"
#include "kernels/backend.h"
#include "kernels/math/rng.h"
#include "kernels/math/watermark.h"

static const char *DIGITS = "1234567890210";

/* ---- the regularizer op ---- */

typedef struct reg_ctx {
    const dg_backend *be;
    int n;
    float *w;
    int32_t *idx;
    float *digits, *mapped;
    float a, b, lambda;
} reg_ctx;

/* L = λ/n Σ (d − map(w))², in double from the op's mapped output */
static double reg_loss(void *p) {
    reg_ctx *c = p;
    c->be->wm_reg(c->n, c->w, c->idx, c->digits, c->a, c->b, c->lambda, c->mapped, NULL);
    double sum = 0.0;
    for (int k = 0; k < c->n; k++) sum += ((double)c->digits[k] - c->mapped[k]) * ((double)c->digits[k] - c->mapped[k]);
    return c->lambda * sum / c->n;
}

static void test_regularizer(void) {
    const dg_backend *be = dg_backend_cpu();
    enum { SIZE = 400, N = 13 };
    float w[SIZE], dw[SIZE], base[SIZE], digits[N], mapped[N];
    int32_t idx[N];
    dg_test_fill(w, SIZE, 11, -0.3f, 0.3f);
    dg_test_fill(base, SIZE, 12, -1.0f, 1.0f);
    for (int k = 0; k < N; k++) {
        idx[k] = 7 + 29 * k; /* distinct */
        digits[k] = (float)(DIGITS[k] - '0');
    }
    reg_ctx c = {be, N, w, idx, digits, mapped, 15.0f, 4.5f, 0.01f};
    memcpy(dw, base, sizeof dw);
    be->wm_reg(N, w, idx, digits, c.a, c.b, c.lambda, mapped, dw);
    /* mapped against a double reference; untouched gradient entries stay exactly as they were */
    int untouched = 1;
    for (int i = 0; i < SIZE; i++) {
        int key = 0;
        for (int k = 0; k < N; k++) key |= idx[k] == i;
        if (!key) untouched &= dw[i] == base[i];
    }
    CHECK(untouched, "the gradient touched a weight outside the key");
    double worst = 0.0;
    for (int k = 0; k < N; k++) {
        double m = (double)c.a * w[idx[k]] + c.b;
        double g = 2.0 * c.lambda / N * c.a * (m - digits[k]);
        worst = fmax(worst, fabs(mapped[k] - m) / 10.0);
        double g_scale = 2.0 * c.lambda / N * c.a * 9.0; /* the gradient's size at a digit's distance 9 */
        worst = fmax(worst, fabs((dw[idx[k]] - base[idx[k]]) - g) / g_scale);
    }
    CHECK(worst < 1e-5, "mapped values or gradient against the double reference: %g", worst);
    /* finite differences on the whole tensor (the non-key entries must have zero gradient) */
    float grad[SIZE];
    memset(grad, 0, sizeof grad);
    be->wm_reg(N, w, idx, digits, c.a, c.b, c.lambda, mapped, grad);
    double fd = dg_gradcheck(w, grad, SIZE, reg_loss, &c, 1e-3f, SIZE, 1e-4);
    CHECK(fd < 2e-3, "regularizer gradient against finite differences: worst relative error %g", fd);
}

/* ---- keys ---- */

static void make_layer(float *w, const int shape[4], uint64_t seed) {
    size_t n = (size_t)shape[0] * shape[1] * shape[2] * shape[3];
    dg_test_fill(w, n, seed, -0.2f, 0.2f);
}

static void test_keygen(void) {
    const int shape[4] = {16, 6, 5, 5};
    const int per = 6 * 5 * 5;
    static float w[16 * 150];
    make_layer(w, shape, 5);
    for (int j = 0; j < per; j++) w[9 * per + j] *= 1.5f; /* filter 9 has the largest norm */
    char err[256];
    static dg_wm_key k1, k2, k3;
    CHECK(dg_wm_keygen(w, shape, "conv2.weight", DIGITS, 7, &k1, err, sizeof err) == 0, "keygen: %s", err);
    CHECK(k1.filter == 9, "the largest-norm filter is 9, the key says %d", k1.filter);
    CHECK(k1.n == 13 && strcmp(k1.layer, "conv2.weight") == 0, "n %d layer %s", k1.n, k1.layer);
    float lo = w[9 * per], hi = w[9 * per];
    for (int j = 0; j < per; j++) lo = fminf(lo, w[9 * per + j]), hi = fmaxf(hi, w[9 * per + j]);
    CHECK(k1.w_min == lo && k1.w_max == hi, "the clean range");
    CHECK(fabsf(k1.a * lo + k1.b) < 1e-5f && fabsf(k1.a * hi + k1.b - 9.0f) < 1e-5f,
          "the map sends [w_min, w_max] onto [0, 9]: %g %g", (double)(k1.a * lo + k1.b), (double)(k1.a * hi + k1.b));
    int distinct = 1;
    for (int i = 0; i < k1.n; i++)
        for (int j = 0; j < i; j++) distinct &= k1.positions[i] != k1.positions[j];
    CHECK(distinct, "positions are distinct");
    dg_wm_keygen(w, shape, "conv2.weight", DIGITS, 7, &k2, err, sizeof err);
    CHECK(memcmp(k1.positions, k2.positions, sizeof k1.positions) == 0, "the same seed draws the same positions");
    dg_wm_keygen(w, shape, "conv2.weight", DIGITS, 8, &k3, err, sizeof err);
    CHECK(memcmp(k1.positions, k3.positions, sizeof(int32_t) * 13) != 0, "another seed draws other positions");
    /* all 150 positions of a filter: a permutation of 0..149 */
    char many[151];
    for (int i = 0; i < 150; i++) many[i] = (char)('0' + i % 10);
    many[150] = 0;
    CHECK(dg_wm_keygen(w, shape, "l", many, 3, &k2, err, sizeof err) == 0, "150 digits fit a 150-weight filter");
    int seen[150] = {0}, all = 1;
    for (int i = 0; i < 150; i++) seen[k2.positions[i]]++;
    for (int i = 0; i < 150; i++) all &= seen[i] == 1;
    CHECK(all, "150 positions cover the filter once each");
    char too_many[152];
    memcpy(too_many, many, 150);
    too_many[150] = '1';
    too_many[151] = 0;
    CHECK(dg_wm_keygen(w, shape, "l", too_many, 3, &k2, err, sizeof err) == -1 && strstr(err, "fit"),
          "151 digits refused: %s", err);
    CHECK(dg_wm_keygen(w, shape, "l", "12a4", 3, &k2, err, sizeof err) == -1 && strstr(err, "0-9"),
          "a non-digit refused: %s", err);
    CHECK(dg_wm_keygen(w, shape, "l", "", 3, &k2, err, sizeof err) == -1, "no digits refused");
    static float flat[16 * 150];
    for (int i = 0; i < 16 * 150; i++) flat[i] = 0.5f;
    CHECK(dg_wm_keygen(flat, shape, "l", DIGITS, 3, &k2, err, sizeof err) == -1 && strstr(err, "constant"),
          "a constant filter refused: %s", err);
    /* a range whose map is not finite in floats: too small (9/range overflows) or too large */
    for (int t = 0; t < 2; t++) {
        static float odd[16 * 150];
        memset(odd, 0, sizeof odd);
        odd[9 * per + 1] = t == 0 ? 1e-39f : 3e38f;
        odd[9 * per + 2] = t == 0 ? 0.0f : -3e38f;
        CHECK(dg_wm_keygen(odd, shape, "conv2.weight", DIGITS, 7, &k2, err, sizeof err) == -1 &&
                  strstr(err, "no finite map"),
              "a filter spanning %s refused: %s", t == 0 ? "1e-39" : "±3e38", err);
    }
    /* a NaN or an infinity anywhere in the layer: no key (the range would be worthless) */
    for (int t = 0; t < 3; t++) {
        static float bad[16 * 150];
        memcpy(bad, w, sizeof bad);
        bad[t == 0 ? 9 * per + 3 : t == 1 ? 40 : 16 * 150 - 1] = t == 0 ? NAN : t == 1 ? INFINITY : -INFINITY;
        CHECK(dg_wm_keygen(bad, shape, "conv2.weight", DIGITS, 7, &k2, err, sizeof err) == -1 &&
                  strstr(err, t == 0 ? "conv2.weight[1353] is NaN" : "is infinite"),
              "a layer holding %s refused: %s", t == 0 ? "NaN" : "an infinity", err);
    }
}

static char tmpdir[256];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_key_file(void) {
    const int shape[4] = {16, 6, 5, 5};
    static float w[16 * 150];
    make_layer(w, shape, 6);
    char err[512], path[400];
    static dg_wm_key k, back;
    dg_wm_keygen(w, shape, "conv2.weight", DIGITS, 12345678901234567ull, &k, err, sizeof err);
    snprintf(k.model_sha256, sizeof k.model_sha256, "%064d", 0);
    snprintf(path, sizeof path, "%s/k.json", tmpdir);
    CHECK(dg_wm_key_write(&k, path, err, sizeof err) == 0, "write: %s", err);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "the key file is mode 0600 (%o)", st.st_mode & 0777);
    CHECK(dg_wm_key_read(path, &back, err, sizeof err) == 0, "read back: %s", err);
    CHECK(back.a == k.a && back.b == k.b && back.w_min == k.w_min && back.w_max == k.w_max,
          "the map's floats survive the round trip exactly");
    CHECK(back.seed == k.seed && back.filter == k.filter && back.n == k.n &&
              memcmp(back.positions, k.positions, sizeof k.positions) == 0 &&
              memcmp(back.digits, k.digits, sizeof k.digits) == 0 && strcmp(back.layer, k.layer) == 0 &&
              memcmp(back.shape, k.shape, sizeof k.shape) == 0 && strcmp(back.model_sha256, k.model_sha256) == 0,
          "every field survives the round trip");

    /* corrupt keys: each gives -1 and a message naming the file */
    static const struct { const char *json, *mention; } bad[] = {
        {"", "JSON"},
        {"[1,2]", "format"},
        {"{\"format\":\"dnnguard-wmkey-2\"}", "format"},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[0,1],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1}", "shape"},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,0],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[0,1],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1}", "shape"},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":16,\"digits\":\"12\","
         "\"positions\":[0,1],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1}", "filter"},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":1.5,\"digits\":\"12\","
         "\"positions\":[0,1],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1}", "filter"},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"1x\","
         "\"positions\":[0,1],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1}", "digits"},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[0],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1}", "positions"},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[3,3],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1}", "distinct"},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[0,150],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1}", "positions"},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[0,1],\"a\":0,\"b\":0,\"w_min\":0,\"w_max\":1}", "\"a\""},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[0,1],\"a\":9,\"b\":1e999,\"w_min\":0,\"w_max\":1}", "\"a\""},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[0,1],\"a\":9,\"b\":0,\"w_min\":1,\"w_max\":1}", "w_max"},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[0,1],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1,\"seed\":\"12x\"}", "seed"},
        /* a map that is not the range's: with a tiny a and b = 5, every weight of any layer reads 5 */
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"55\","
         "\"positions\":[0,1],\"a\":1e-9,\"b\":5,\"w_min\":0,\"w_max\":1}", "9 / (w_max - w_min)"},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[0,1],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1}", "layer"},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[65536,65536,1,1],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[0,1],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1}", "2^31"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_text(path, bad[i].json);
        err[0] = 0;
        int rc = dg_wm_key_read(path, &back, err, sizeof err);
        CHECK(rc == -1 && strncmp(err, path, strlen(path)) == 0 && strstr(err, bad[i].mention),
              "corrupt key %zu refused naming the file and '%s': rc %d '%s'", i, bad[i].mention, rc, err);
    }
    snprintf(path, sizeof path, "%s/missing.json", tmpdir);
    CHECK(dg_wm_key_read(path, &back, err, sizeof err) == -1 && strstr(err, "missing.json"), "a missing key: %s", err);
    /* a valid minimal key parses (the refusals above are not a parser that refuses everything): its
     * positions are the ones seed 3 draws, which keygen finds */
    static dg_wm_key drawn;
    CHECK(dg_wm_keygen(w, shape, "c", "12", 3, &drawn, err, sizeof err) == 0, "keygen: %s", err);
    const char *sha = "\"model_sha256\":\"" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\"";
    char ok[600], edited[600];
    snprintf(ok, sizeof ok,
             "{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
             "\"positions\":[%d,%d],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1,\"seed\":\"3\",%s}",
             drawn.positions[0], drawn.positions[1], sha);
    CHECK(dg_wm_key_parse(ok, strlen(ok), "ok", &back, err, sizeof err) == 0, "a minimal key parses: %s", err);
    /* edited keys: positions chosen by hand (any layer has weights that read the digits somewhere),
     * no seed, no or a malformed model_sha256 */
    struct { const char *json_fmt, *mention; int p0, p1; } edits[] = {
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[%d,%d],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1,\"seed\":\"3\",%s}",
         "not the ones \"seed\" draws", drawn.positions[1], drawn.positions[0]},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[%d,%d],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1,\"seed\":\"3\",%s}",
         "not the ones \"seed\" draws", drawn.positions[0], (drawn.positions[1] + 1) % 150},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[%d,%d],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1,%s}", "\"seed\"", drawn.positions[0],
         drawn.positions[1]},
        {"{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
         "\"positions\":[%d,%d],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1,\"seed\":\"-3\",%s}", "\"seed\"",
         drawn.positions[0], drawn.positions[1]},
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        snprintf(edited, sizeof edited, edits[i].json_fmt, edits[i].p0, edits[i].p1, sha);
        CHECK(dg_wm_key_parse(edited, strlen(edited), "k", &back, err, sizeof err) == -1 && strstr(err, edits[i].mention),
              "edited key %zu refused naming '%s': '%s'", i, edits[i].mention, err);
    }
    static const char *const shas[] = {"", "\"model_sha256\":\"zz\"",
                                       "\"model_sha256\":\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\""};
    for (int i = 0; i < 3; i++) {
        snprintf(edited, sizeof edited,
                 "{\"format\":\"dnnguard-wmkey-1\",\"layer\":\"c\",\"shape\":[16,6,5,5],\"filter\":0,\"digits\":\"12\","
                 "\"positions\":[%d,%d],\"a\":9,\"b\":0,\"w_min\":0,\"w_max\":1,\"seed\":\"3\"%s%s}",
                 drawn.positions[0], drawn.positions[1], shas[i][0] ? "," : "", shas[i]);
        CHECK(dg_wm_key_parse(edited, strlen(edited), "k", &back, err, sizeof err) == -1 && strstr(err, "model_sha256"),
              "a key without a well-formed model_sha256 (%d) refused: '%s'", i, err);
    }
}

/* The positions a seed draws are the Fisher–Yates shuffle's first steps over the whole filter, as
 * the full-array form computes them (keys written before the sparse draw still parse). */
static void test_positions_draw(void) {
    const int shape[4] = {4, 3, 3, 3}; /* 27 weights a filter: 27 digits take all of them */
    static float w[4 * 27];
    make_layer(w, shape, 9);
    static dg_wm_key k;
    char err[256];
    for (int n = 1; n <= 27; n += 13)
        for (uint64_t seed = 0; seed < 50; seed++) {
            char digits[28];
            for (int i = 0; i < n; i++) digits[i] = (char)('0' + i % 10);
            digits[n] = 0;
            dg_wm_keygen(w, shape, "l", digits, seed, &k, err, sizeof err);
            int32_t order[27];
            for (int j = 0; j < 27; j++) order[j] = j;
            uint64_t stream = dg_rng_stream(seed, 0x77a7e2ull);
            int same = 1;
            for (int i = 0; i < n; i++) {
                long j = i + (long)(dg_rng_u64(stream, (uint64_t)i) % (uint64_t)(27 - i));
                int32_t t = order[i];
                order[i] = order[j], order[j] = t;
                same &= k.positions[i] == order[i];
            }
            CHECK(same, "seed %llu, %d digits: the sparse draw is the full shuffle's", (unsigned long long)seed, n);
        }
}

/* ---- verification ---- */

/* set the key's weights so that they extract as the key's digits, with some slack in the digit */
static void plant(const dg_wm_key *k, float *w, int filter, const int *channel_map) {
    int rs = k->shape[2] * k->shape[3];
    float *f = w + (size_t)filter * k->shape[1] * rs;
    for (int i = 0; i < k->n; i++) {
        int p = k->positions[i], c = channel_map ? channel_map[p / rs] : p / rs;
        float target = (float)k->digits[i] + 0.3f * (float)((i % 3) - 1); /* within ±0.3 of the digit */
        f[c * rs + p % rs] = (target - k->b) / k->a;
    }
}

static void permute_outputs(const float *w, float *out, const int shape[4], const int *perm) {
    size_t per = (size_t)shape[1] * shape[2] * shape[3];
    for (int o = 0; o < shape[0]; o++) memcpy(out + (size_t)perm[o] * per, w + (size_t)o * per, per * sizeof(float));
}

static void permute_inputs(const float *w, float *out, const int shape[4], const int *perm) {
    int rs = shape[2] * shape[3];
    for (int o = 0; o < shape[0]; o++)
        for (int i = 0; i < shape[1]; i++)
            memcpy(out + ((size_t)o * shape[1] + perm[i]) * rs, w + ((size_t)o * shape[1] + i) * rs, rs * sizeof(float));
}

static void test_verify(void) {
    const int shape[4] = {16, 6, 5, 5};
    enum { NUMEL = 16 * 150 };
    static float w[NUMEL], moved[NUMEL], twice[NUMEL];
    static dg_wm_key k;
    static dg_wm_result r;
    char err[256];
    make_layer(w, shape, 21);
    dg_wm_keygen(w, shape, "conv2.weight", DIGITS, 7, &k, err, sizeof err);
    /* the clean layer does not carry the watermark under any search */
    for (int s = 0; s < 3; s++) {
        dg_wm_verify(&k, w, (dg_wm_search)s, k.n, &r);
        CHECK(!r.verified && r.matches < k.n, "clean layer, search %d: verified %d with %d matches", s, r.verified,
              r.matches);
        CHECK(r.p_chance >= 0.0 && r.p_chance <= 1.0, "p_chance %g is a probability", r.p_chance);
    }
    plant(&k, w, k.filter, NULL);
    dg_wm_verify(&k, w, DG_WM_SEARCH_KEY, k.n, &r);
    int exact = r.verified && r.matches == 13 && r.filter == k.filter && !r.input_permuted;
    for (int i = 0; i < k.n; i++) exact &= r.extracted[i] == k.digits[i] && r.residual[i] <= 0.3001f;
    CHECK(exact, "the planted watermark is extracted exactly, residuals ≤ 0.3");
    double p_key = r.p_chance;
    CHECK(r.matched_by == DG_WM_SEARCH_KEY, "matched by the key's filter (%d)", r.matched_by);
    dg_wm_verify(&k, w, DG_WM_SEARCH_FILTERS, k.n, &r);
    CHECK(r.matched_by == DG_WM_SEARCH_KEY && r.p_chance == p_key,
          "found at the key's filter, a wider search is judged by the key's chance: %g vs %g", r.p_chance, p_key);
    /* a lower bar judges the count read, not the bar: 13 of 13 under need 3 is as unlikely as under 13 */
    for (int need = 1; need <= 13; need += 4) {
        dg_wm_verify(&k, w, DG_WM_SEARCH_FILTERS, need, &r);
        CHECK(r.verified && r.matches == 13 && r.p_chance == p_key,
              "13 of 13 digits with need %d: p_chance %g, want the chance of 13 right, %g", need, r.p_chance, p_key);
    }
    /* one digit off: 12 of 13 fails Algorithm 1, passes with --min-match 12 */
    int rs = 25;
    float *spot = &w[(size_t)k.filter * 150 + (k.positions[4] / rs) * rs + k.positions[4] % rs];
    float saved = *spot;
    *spot = ((float)((k.digits[4] + 3) % 10) - k.b) / k.a;
    dg_wm_verify(&k, w, DG_WM_SEARCH_FILTERS, k.n, &r);
    CHECK(!r.verified && r.matches == 12 && r.filter == k.filter, "12 of 13 digits: not verified (%d matches, filter %d)",
          r.matches, r.filter);
    dg_wm_verify(&k, w, DG_WM_SEARCH_FILTERS, 12, &r);
    CHECK(r.verified, "12 of 13 digits with need 12: verified");
    double p_12 = r.p_chance;
    dg_wm_verify(&k, w, DG_WM_SEARCH_FILTERS, 3, &r);
    CHECK(r.verified && r.matches == 12 && r.p_chance == p_12 && p_12 > p_key,
          "12 of 13 under need 3: p_chance %g, want the chance of 12 or more as under need 12 (%g, above 13's %g)",
          r.p_chance, p_12, p_key);
    *spot = saved;

    /* output channels permuted: the key's filter now holds something else */
    int perm_out[16], perm_in[6];
    for (int o = 0; o < 16; o++) perm_out[o] = (o * 5 + 3) % 16; /* 5 is prime to 16 */
    for (int i = 0; i < 6; i++) perm_in[i] = (i + 2) % 6;
    permute_outputs(w, moved, shape, perm_out);
    dg_wm_verify(&k, moved, DG_WM_SEARCH_KEY, k.n, &r);
    CHECK(!r.verified, "after an output permutation the key's filter alone fails");
    dg_wm_verify(&k, moved, DG_WM_SEARCH_FILTERS, k.n, &r);
    CHECK(r.verified && r.filter == perm_out[k.filter] && !r.input_permuted,
          "the filter search finds the watermark in filter %d (found %d)", perm_out[k.filter], r.filter);
    CHECK(r.matched_by == DG_WM_SEARCH_FILTERS && r.p_chance >= p_key * 15.99 && r.p_chance <= fmin(1.0, p_key * 16.01),
          "found in another filter: searching 16 filters multiplies the chance by 16: %g vs %g", r.p_chance, p_key);
    /* a low --min-match lets the key's filter (now another filter's weights) pass on a few digits read
     * by chance; the search still goes on and the whole watermark where it moved is the verdict */
    double p_moved = r.p_chance;
    for (int need = 1; need <= 13; need += 3) {
        dg_wm_verify(&k, moved, DG_WM_SEARCH_FILTERS, need, &r);
        CHECK(r.verified && r.matches == 13 && r.filter == perm_out[k.filter] && r.matched_by == DG_WM_SEARCH_FILTERS &&
                  r.p_chance == p_moved,
              "need %d after a permutation: verified %d, %d matches in filter %d by stage %d, p %g (want 13 in %d, %g)",
              need, r.verified, r.matches, r.filter, r.matched_by, r.p_chance, perm_out[k.filter], p_moved);
    }
    /* input channels permuted as well: only the channel search finds it */
    permute_inputs(moved, twice, shape, perm_in);
    dg_wm_verify(&k, twice, DG_WM_SEARCH_FILTERS, k.n, &r);
    CHECK(!r.verified, "after an input permutation the filter search fails (%d matches)", r.matches);
    dg_wm_verify(&k, twice, DG_WM_SEARCH_CHANNELS, k.n, &r);
    int channels_ok = r.verified && r.filter == perm_out[k.filter] && r.input_permuted;
    for (int i = 0; i < k.n; i++) channels_ok &= r.channel_of[i] == perm_in[k.positions[i] / rs];
    CHECK(channels_ok, "the channel search finds the watermark and the input assignment");
    CHECK(r.p_chance > 0.0 && r.p_chance < 1e-3, "the channel search's chance estimate %g stays small", r.p_chance);
    /* a fresh layer never verifies under the channel search */
    static float other[NUMEL];
    int false_pass = 0;
    for (uint64_t s = 100; s < 140; s++) {
        make_layer(other, shape, s);
        dg_wm_verify(&k, other, DG_WM_SEARCH_CHANNELS, k.n, &r);
        false_pass += r.verified;
    }
    CHECK(false_pass == 0, "40 unrelated layers: %d pass the channel search", false_pass);

    /* a wide layer (64 input channels, WRN-like): the channel search alone could place most digits
     * almost anywhere (its chance is ~1), but a watermark at the key's filter is judged by the key's
     * chance and verifies under every search */
    const int wide_shape[4] = {32, 64, 3, 3};
    static float wide[32 * 64 * 9];
    static dg_wm_key kw;
    make_layer(wide, wide_shape, 33);
    CHECK(dg_wm_keygen(wide, wide_shape, "wide", DIGITS, 7, &kw, err, sizeof err) == 0, "wide keygen: %s", err);
    plant(&kw, wide, kw.filter, NULL);
    double p_wide[3];
    int wide_ok = 1;
    for (int s = 0; s < 3; s++) {
        dg_wm_verify(&kw, wide, (dg_wm_search)s, kw.n, &r);
        p_wide[s] = r.p_chance;
        wide_ok &= r.verified && r.matched_by == DG_WM_SEARCH_KEY;
    }
    CHECK(wide_ok && p_wide[2] == p_wide[0] && p_wide[0] < 1e-6,
          "a wide layer's watermark at the key's filter: matched by the key under every search, chance %g", p_wide[0]);
}

/* ---- SHA-256: FIPS 180-4 examples ---- */

static void test_sha256(void) {
    static const struct { const char *msg, *hex; } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        dg_sha256 s;
        char hex[65];
        dg_sha256_init(&s);
        dg_sha256_update(&s, v[i].msg, strlen(v[i].msg));
        dg_sha256_final(&s, hex);
        CHECK(strcmp(hex, v[i].hex) == 0, "sha256('%s') = %s", v[i].msg, hex);
    }
    /* a million 'a', fed in uneven pieces */
    dg_sha256 s;
    char hex[65], chunk[997];
    memset(chunk, 'a', sizeof chunk);
    dg_sha256_init(&s);
    size_t left = 1000000;
    for (size_t piece = 1; left > 0; piece = piece % 997 + 1) {
        size_t take = piece < left ? piece : left;
        dg_sha256_update(&s, chunk, take);
        left -= take;
    }
    dg_sha256_final(&s, hex);
    CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0,
          "sha256(a × 10^6) = %s", hex);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/dg_wm_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    /* round half up exactly: a mapped weight just below x.5 reads x (adding 0.5 in float rounded it up) */
    const float below_half = nextafterf(0.5f, 0.0f), below_2_5 = nextafterf(2.5f, 0.0f);
    CHECK(dg_wm_digit(below_half) == 0 && dg_wm_digit(0.5f) == 1 && dg_wm_digit(below_2_5) == 2 &&
              dg_wm_digit(2.5f) == 3 && dg_wm_digit(-0.5f) == 0 && dg_wm_digit(nextafterf(-0.5f, -1.0f)) == -1 &&
              dg_wm_digit(8.9999999f) == 9 && dg_wm_digit(-1e-30f) == 0,
          "digits round half up exactly: %d %d %d %d %d %d", dg_wm_digit(below_half), dg_wm_digit(0.5f),
          dg_wm_digit(below_2_5), dg_wm_digit(2.5f), dg_wm_digit(-0.5f), dg_wm_digit(nextafterf(-0.5f, -1.0f)));
    test_regularizer();
    test_keygen();
    test_key_file();
    test_positions_draw();
    test_verify();
    test_sha256();
    dg_test_empty_dir(tmpdir);
    rmdir(tmpdir);
    return dg_test_done("test_watermark");
}
