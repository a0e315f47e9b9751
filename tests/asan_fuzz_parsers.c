/* tests/asan_fuzz_parsers.c — a deterministic mutation fuzzer for the file parsers (safetensors,
 * PyTorch's torch.save files; IDX, CIFAR-10; raw and gzip; watermark keys; fingerprint registries;
 * PNG; folder:DIR trees), built with ASan/UBSan: a few thousand mutants of valid files must
 * each load or fail cleanly, and what loads must be readable in bounds. Touches only a temp dir.
 * Build with -DDG_LIBFUZZER -fsanitize=fuzzer for a libFuzzer target instead of main(). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "host/data.h"
#include "host/fingerprint.h"
#include "host/infip.h"
#include "host/png.h"
#include "host/safetensors.h"
#include "host/torch_pt.h"
#include "host/watermark.h"

#define TIME_BUDGET_S 30.0 /* at most; a fast machine finishes every parser's mutants sooner */

static char tmpdir[512], dir_raw[600], dir_gz[600], st_path[600];
static char errbuf[2048];

/* ------------------------------------------------------------------------------------------- */
/* deterministic randomness                                                                      */

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static size_t rnd_below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------------- */
/* byte buffers                                                                                  */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void buf_reserve(buf *b, size_t n) {
    if (n <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < n) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    b->cap = cap;
}
static void buf_set(buf *b, const void *p, size_t n) {
    buf_reserve(b, n + 1);
    if (n) memcpy(b->p, p, n);
    b->n = n;
}
static void buf_insert(buf *b, size_t at, const void *p, size_t n) {
    if (at > b->n) at = b->n;
    buf_reserve(b, b->n + n + 1);
    memmove(b->p + at + n, b->p + at, b->n - at);
    memcpy(b->p + at, p, n);
    b->n += n;
}
static void buf_erase(buf *b, size_t at, size_t n) {
    if (at >= b->n) return;
    if (n > b->n - at) n = b->n - at;
    memmove(b->p + at, b->p + at + n, b->n - at - n);
    b->n -= n;
}

static void write_bytes(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
}

static void gzip_bytes(const uint8_t *p, size_t n, buf *out) {
    uLongf cap = compressBound((uLong)n) + 64;
    buf_reserve(out, cap);
    z_stream s;
    memset(&s, 0, sizeof s);
    if (deflateInit2(&s, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) exit(2);
    s.next_in = (Bytef *)(uintptr_t)p;
    s.avail_in = (uInt)n;
    s.next_out = out->p;
    s.avail_out = (uInt)cap;
    if (deflate(&s, Z_FINISH) != Z_STREAM_END) exit(2);
    out->n = s.total_out;
    deflateEnd(&s);
}

/* ------------------------------------------------------------------------------------------- */
/* generic mutations                                                                             */

static const uint8_t interesting8[] = {0, 1, 2, 7, 8, 9, 10, 0x7f, 0x80, 0xfe, 0xff, '"', '{', '}', '[', ']', ',',
                                       ':', '-', '.', 'e', '0', '9', ' ', '\\', 0xc3, 0xed};
static const uint32_t interesting32[] = {0, 1, 2, 3, 9, 10, 28, 4095, 4096, 4097, 0x7fff, 0x8000, 0xffff, 0x10000,
                                         0x7fffffff, 0x80000000u, 0xfffffffeu, 0xffffffffu, 0x803, 0x801};

/* bias: positions < bias_len are chosen half of the time (the header) */
static size_t pick_pos(const buf *b, size_t bias_len) {
    if (b->n == 0) return 0;
    if (bias_len && bias_len < b->n && (rnd() & 1)) return rnd_below(bias_len);
    return rnd_below(b->n);
}

static void mutate_bytes(buf *b, size_t bias_len) {
    switch (rnd_below(6)) {
    case 0: /* bit flip */
        if (b->n) {
            size_t at = pick_pos(b, bias_len);
            b->p[at] ^= (uint8_t)(1u << rnd_below(8));
        }
        break;
    case 1: /* interesting byte */
        if (b->n) b->p[pick_pos(b, bias_len)] = interesting8[rnd_below(sizeof interesting8)];
        break;
    case 2: /* truncate */
        b->n = rnd_below(b->n + 1);
        break;
    case 3: { /* append random bytes */
        uint8_t extra[64];
        size_t k = 1 + rnd_below(sizeof extra);
        for (size_t i = 0; i < k; i++) extra[i] = (uint8_t)rnd();
        buf_insert(b, b->n, extra, k);
        break;
    }
    case 4: /* random byte */
        if (b->n) b->p[pick_pos(b, bias_len)] = (uint8_t)rnd();
        break;
    default: /* interesting big-endian u32 (IDX header fields) */
        if (b->n >= 4) {
            size_t at = rnd_below(bias_len && bias_len <= b->n ? bias_len : b->n);
            if (at > b->n - 4) at = b->n - 4;
            at &= ~(size_t)3;
            uint32_t v = interesting32[rnd_below(sizeof interesting32 / sizeof interesting32[0])];
            if (rnd() & 1) v += (uint32_t)rnd_below(3) - 1u;
            b->p[at] = (uint8_t)(v >> 24);
            b->p[at + 1] = (uint8_t)(v >> 16);
            b->p[at + 2] = (uint8_t)(v >> 8);
            b->p[at + 3] = (uint8_t)v;
        }
        break;
    }
}

/* ------------------------------------------------------------------------------------------- */
/* safetensors                                                                                   */

static const char *const json_tokens[] = {
    "-1", "0", "1", "1.5", "1e3", "1e300", "-0", "4294967296", "9007199254740993", "18446744073709551616", "null",
    "true", "false", "[]", "{}", "[0]", "[0,0]", "[1,2,3,4,5,6,7,8,9]", "\"F32\"", "\"F16\"", "\"BF16\"", "\"F64\"",
    "\"I64\"", "\"BOOL\"", "\"U8\"", "\"X\"", "\"\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"",
    "\"a\"", ",", ":", "{", "}", "[", "]", "\"\\u0000\"", "\"\\ud800\"", "\"\xc3\xa9\"", "\"\xff\"", " ", "",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "[0,8]", "[8,0]", "[0,1e300]", "[2,3]", "[0]",
    /* watermark keys */
    "\"dnnguard-wmkey-1\"", "\"positions\"", "\"digits\"", "\"filter\"", "\"1234567890\"", "\"0\"", "16", "149",
    "150", "2147483648", "1e-45", "[16,6,5,5]", "[1,1,1,1]", "[0,1,2,3,4,5,6,7,8,9,10,11,12]",
    /* fingerprint registries */
    "\"dnnguard-fp-registry-1\"", "\"fingerprint_classes\"", "\"confidences\"", "\"users\"", "\"id\"", "\"class\"",
    "\"confidence\"", "\"file\"", "\"sha256\"", "\"margin\"", "\"eps\"", "\"../x.png\"", "\".x\"", "\"a\\\\b\"",
    "\"user-00.png\"", "0.01", "0.3", "0.31", "0.5", "0.99", "0.995", "999", "1000", "1001", "4096", "4097",
    "[0,1,2]", "[1,28,28]", "[3,32,32]", "[0.1307]", "[0.2,0.35,0.5]", "[9,3]",
    /* InFIP manifests */
    "\"dnnguard-infip-1\"", "\"keys\"", "\"index\"", "\"label\"", "\"predicted\"", "\"key\"", "\"fingerprint\"",
    "\"key_sha256\"", "\"fingerprint_sha256\"", "\"relevance_sum\"", "\"lambda\"", "\"stabilizer\"", "\"inject\"",
    "\"one\"", "\"logit\"", "\"relevance.safetensors\"", "\"keys/key-00000.png\"", "\"keys/../x.png\"",
    "\"keys/\"", "\"/etc/passwd\"", "\"a/b/c.png\"", "\"18446744073709551615\"", "\"18446744073709551616\"",
    "5000", "1e-9", "100000", "100001",
    /* InFIP calibrations */
    "\"dnnguard-infip-calibration-1\"", "\"independent\"", "\"thresholds\"", "\"highest_independent\"",
    "\"assim_global\"", "\"assim_gaussian\"", "\"false_positive_bound\"", "\"manifest_sha256\"",
    "\"owner_model_sha256\"", "0.9", "0.95", "0.9500000000000001", "0.33333333333333331", "1.0000000000000002",
    "-1.0000000000000002"};

static uint64_t get_hlen(const buf *b) {
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | b->p[i];
    return h;
}
static void set_hlen(buf *b, uint64_t h) {
    for (int i = 0; i < 8; i++) b->p[i] = (uint8_t)(h >> (8 * i));
}

static int is_tok(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' ||
           c == '+' || c == '_';
}

/* Replace one JSON token inside the header; keep the length prefix right most of the time. */
static void mutate_json(buf *b) {
    if (b->n < 8) return;
    uint64_t h = get_hlen(b);
    if (h > b->n - 8 || h == 0) return;
    size_t hs = 8, he = 8 + (size_t)h;
    size_t at = hs + rnd_below((size_t)h);
    size_t s = at, e = at + 1;
    if (b->p[at] == '"') { /* a whole string */
        e = at + 1;
        while (e < he && b->p[e] != '"') e++;
        if (e < he) e++;
    } else if (is_tok(b->p[at])) {
        while (s > hs && is_tok(b->p[s - 1])) s--;
        while (e < he && is_tok(b->p[e])) e++;
    }
    const char *tok = json_tokens[rnd_below(sizeof json_tokens / sizeof json_tokens[0])];
    size_t tl = strlen(tok);
    int op = (int)rnd_below(4);
    if (op == 0) { /* insert instead of replace */
        buf_insert(b, s, tok, tl);
        h += tl;
    } else if (op == 1 && e - s < (size_t)h) { /* duplicate the token */
        buf tmp = {0};
        buf_set(&tmp, b->p + s, e - s);
        buf_insert(b, e, tmp.p, tmp.n);
        h += tmp.n;
        free(tmp.p);
    } else {
        buf_erase(b, s, e - s);
        buf_insert(b, s, tok, tl);
        h = h - (e - s) + tl;
    }
    if (rnd_below(10) < 8) set_hlen(b, h);
}

static void mutate_hlen(buf *b) {
    if (b->n < 8) return;
    uint64_t h = get_hlen(b);
    switch (rnd_below(5)) {
    case 0: h += rnd_below(17) - 8; break;
    case 1: h = rnd(); break;
    case 2: h = b->n - 8 + rnd_below(3); break;
    case 3: h = rnd_below(b->n + 1); break;
    default: h = (uint64_t)100 * 1000 * 1000 + rnd_below(3) - 1; break;
    }
    set_hlen(b, h);
}

static int st_ok = 0, st_rejected = 0;

static void run_safetensors(const buf *b) {
    write_bytes(st_path, b->p, b->n);
    dg_st_file f;
    errbuf[0] = 0;
    int rc = dg_st_open(st_path, &f, errbuf, sizeof errbuf);
    if (rc != 0) {
        st_rejected++;
        CHECK(rc == -1 && strncmp(errbuf, st_path, strlen(st_path)) == 0 && strlen(errbuf) > strlen(st_path) + 2,
              "rejection without a message naming the file: rc %d '%s'", rc, errbuf);
        CHECK(f.bytes == NULL && f.tensors == NULL, "struct not cleared after failure");
        dg_st_close(&f);
        return;
    }
    st_ok++;
    size_t covered = 0; /* a safetensors file's tensors cover its data exactly (a .pt has data_start 0) */
    for (int i = 0; i < f.n_tensors; i++) covered += f.tensors[i].end - f.tensors[i].begin;
    CHECK(f.data_start == 0 || covered == f.size - f.data_start, "tensors cover %zu of %zu data bytes", covered,
          f.size - f.data_start);
    for (int i = 0; i < f.n_tensors; i++) {
        const dg_st_tensor *t = &f.tensors[i];
        CHECK(t->ndim >= 0 && t->ndim <= 8, "ndim %d", t->ndim);
        CHECK(t->begin <= t->end && t->end <= f.size - f.data_start, "tensor %d span [%zu,%zu) beyond %zu", i, t->begin,
              t->end, f.size - f.data_start);
        CHECK(t->end - t->begin == t->numel * dg_st_dtype_size(t->dtype), "tensor %d size", i);
        float *out = malloc(t->numel ? t->numel * sizeof(float) : 1); /* exact: ASan sees any overrun */
        if (!out) continue;
        int r = dg_st_read_f32(&f, i, out, t->numel, errbuf, sizeof errbuf);
        CHECK(r == 0, "reading accepted tensor %d: %s", i, errbuf);
        r = dg_st_read_f32(&f, i, out, t->numel + 1, errbuf, sizeof errbuf);
        CHECK(r == -1, "wrong numel accepted");
        free(out);
        int j = dg_st_find(&f, t->name);
        CHECK(j == i, "find('%s') = %d, want %d", t->name, j, i);
    }
    for (int m = 0; m < f.n_meta; m++) CHECK(dg_st_meta(&f, f.meta_keys[m]) == f.meta_values[m], "meta lookup");
    dg_st_close(&f);
}

static void make_st_seeds(buf *seeds, int *n_seeds) {
    float f32[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
    uint16_t f16[4] = {0x3c00, 0x0001, 0x7c00, 0xfe00};
    uint16_t bf16[3] = {0x3f80, 0x0001, 0xff80};
    double f64[2] = {0.1, -1e300};
    int64_t i64[2] = {-1, INT64_MAX};
    int32_t i32[1] = {-5};
    int16_t i16[2] = {-1, 2};
    int8_t i8[2] = {-128, 127};
    uint8_t u8[3] = {0, 128, 255};
    float sc = 2.5f;
    dg_st_entry e[] = {
        {"conv1.weight", DG_ST_F32, 4, {1, 2, 3, 1}, f32}, {"h", DG_ST_F16, 2, {2, 2}, f16}, {"b", DG_ST_BF16, 1, {3}, bf16},
        {"d", DG_ST_F64, 1, {2}, f64}, {"l", DG_ST_I64, 1, {2}, i64}, {"i", DG_ST_I32, 0, {0}, i32},
        {"s", DG_ST_I16, 1, {2}, i16}, {"c", DG_ST_I8, 2, {1, 2}, i8}, {"u", DG_ST_U8, 1, {3}, u8},
        {"t", DG_ST_BOOL, 1, {3}, u8}, {"scalar", DG_ST_F32, 0, {0}, &sc}, {"empty", DG_ST_F32, 2, {0, 3}, NULL},
    };
    const char *mk[] = {"format", "epoch"}, *mv[] = {"pt", "3"};
    char err[512];
    int n = 0;
    for (int v = 0; v < 3; v++) {
        int ne = v == 0 ? (int)(sizeof e / sizeof e[0]) : v == 1 ? 2 : 1;
        if (dg_st_write(st_path, e, ne, mk, mv, v == 2 ? 0 : 2, err, sizeof err) != 0) {
            fprintf(stderr, "seed write: %s\n", err);
            exit(2);
        }
        FILE *fp = fopen(st_path, "rb");
        fseek(fp, 0, SEEK_END);
        long len = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        buf_reserve(&seeds[n], (size_t)len + 1);
        seeds[n].n = fread(seeds[n].p, 1, (size_t)len, fp);
        fclose(fp);
        n++;
    }
    /* a hand-written one with whitespace (before the object too), entries out of their data's order,
     * unknown keys and a null __metadata__ */
    const char *hdr = " \n{ \"__metadata__\" : null ,\n \"x\" : { \"shape\" : [ 2 ] , \"dtype\" : \"F32\" , "
                      "\"data_offsets\" : [ 1 , 9 ], \"extra\": {\"k\": [1, 2]} },\"y\":{\"dtype\":\"U8\",\"shape\":[],"
                      "\"data_offsets\":[0,1]}}";
    size_t hl = strlen(hdr);
    buf_reserve(&seeds[n], 8 + hl + 9);
    seeds[n].n = 0;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    buf_insert(&seeds[n], 0, le, 8);
    buf_insert(&seeds[n], 8, hdr, hl);
    uint8_t data[9] = {7, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40};
    buf_insert(&seeds[n], 8 + hl, data, sizeof data);
    n++;
    *n_seeds = n;
}

static void fuzz_safetensors(int iterations, double deadline, int *done) {
    buf seeds[4] = {{0}};
    int n_seeds;
    make_st_seeds(seeds, &n_seeds);
    for (int s = 0; s < n_seeds; s++) run_safetensors(&seeds[s]);
    CHECK(st_ok == n_seeds, "seed files rejected (%d of %d accepted): %s", st_ok, n_seeds, errbuf);
    buf b = {0};
    for (int s = 0; s < n_seeds; s++) { /* one byte more, which no tensor covers: refused, as the reference does */
        buf_set(&b, seeds[s].p, seeds[s].n);
        buf_insert(&b, b.n, "", 1);
        int before = st_rejected;
        run_safetensors(&b);
        CHECK(st_rejected == before + 1 && strstr(errbuf, "belong to no tensor"), "seed %d and a trailing byte: '%s'", s,
              errbuf);
    }
    int it = 0;
    for (; it < iterations && now_s() < deadline; it++) {
        const buf *seed = &seeds[rnd_below((size_t)n_seeds)];
        buf_set(&b, seed->p, seed->n);
        int k = 1 + (int)rnd_below(4);
        for (int m = 0; m < k; m++) {
            size_t hl = b.n >= 8 ? (size_t)get_hlen(&b) + 8 : 8;
            switch (rnd_below(8)) {
            case 0: case 1: case 2: mutate_json(&b); break;
            case 3: mutate_hlen(&b); break;
            default: mutate_bytes(&b, hl < b.n ? hl : b.n); break;
            }
        }
        run_safetensors(&b);
    }
    *done = it;
    free(b.p);
    for (int s = 0; s < n_seeds; s++) free(seeds[s].p);
}

/* ---- PyTorch's torch.save files (host/torch_pt.c, behind dg_st_open): the two files of
 * tests/fixtures (made by make_pt.py) and one that dnnguard's writer makes of the second
 * (host/torch_pt_write.c, with its metadata entry), mutated anywhere, in their stored data.pkl most
 * often and there also with pickle opcodes and little-endian lengths, and in the metadata's JSON ---- */

static int pt_ok = 0, pt_rejected = 0;

static int read_whole(const char *path, buf *out) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    uint8_t chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0) buf_insert(out, out->n, chunk, got);
    fclose(fp);
    return 0;
}

static int read_fixture(const char *name, buf *out) {
    const char *src = getenv("DG_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", src ? src : "..", name);
    return read_whole(path, out);
}

/* [*at, *end) of the stored data.pkl: from the pickle's PROTO after the entry's name */
static void pickle_span(const buf *b, size_t *at, size_t *end) {
    *at = *end = 0;
    for (size_t i = 0; i + 9 <= b->n; i++)
        if (memcmp(b->p + i, "/data.pkl", 9) == 0) {
            for (size_t j = i + 9; j + 1 < b->n; j++)
                if (b->p[j] == 0x80 && b->p[j + 1] <= 5) {
                    *at = j;
                    break;
                }
            break;
        }
    for (size_t j = *at; *at && j < b->n; j++)
        if (b->p[j] == '.' && (j + 1 == b->n || b->p[j + 1] == 'P')) { /* STOP, then the next entry's header */
            *end = j + 1;
            break;
        }
}

static void mutate_pickle(buf *b, size_t at, size_t end) {
    static const char ops[] = "()tl}]dsuaeqrhjcXKMJNRQb.\x85\x86\x87\x88\x89\x8a\x8c\x93\x94\x95";
    if (end <= at || end > b->n) return;
    size_t pos = at + rnd_below(end - at);
    if (rnd() & 1) {
        b->p[pos] = (uint8_t)ops[rnd_below(sizeof ops - 1)];
    } else if (pos + 4 <= end) {
        uint32_t v = interesting32[rnd_below(sizeof interesting32 / sizeof interesting32[0])];
        for (int i = 0; i < 4; i++) b->p[pos + (size_t)i] = (uint8_t)(v >> (8 * i));
    }
}

/* The third seed: params.pt as dg_st_write writes it to a .pt path, with two metadata pairs; its
 * bytes into out, [*json_at, *json_end) the metadata entry's JSON. */
static int written_seed(buf *out, size_t *json_at, size_t *json_end) {
    char src[1024], dst[700], err[512];
    const char *dir = getenv("DG_SOURCE_DIR");
    snprintf(src, sizeof src, "%s/tests/fixtures/params.pt", dir ? dir : "..");
    snprintf(dst, sizeof dst, "%s/written.pt", tmpdir);
    dg_st_file f;
    if (dg_st_open(src, &f, err, sizeof err) != 0) return -1;
    dg_st_entry e[16];
    int n = f.n_tensors < 16 ? f.n_tensors : 16;
    for (int i = 0; i < n; i++) {
        const dg_st_tensor *t = &f.tensors[i];
        e[i] = (dg_st_entry){t->name, t->dtype, t->ndim, {0}, f.bytes + f.data_start + t->begin};
        memcpy(e[i].shape, t->shape, sizeof t->shape);
    }
    const char *keys[2] = {"net", "attack"}, *values[2] = {"lenet5", "prune"};
    int rc = dg_st_write(dst, e, n, keys, values, 2, err, sizeof err);
    dg_st_close(&f);
    if (rc != 0 || read_whole(dst, out) != 0) return -1;
    *json_at = *json_end = 0;
    const char *name = DG_PT_META_ENTRY;
    for (size_t i = 0; i + strlen(name) < out->n && !*json_at; i++) /* its local header's name, then the JSON */
        if (memcmp(out->p + i, name, strlen(name)) == 0)
            for (size_t j = i + strlen(name); j < out->n && !*json_at; j++)
                if (out->p[j] == '{') *json_at = j;
    for (size_t j = *json_at; *json_at && j + 1 < out->n; j++)
        if (out->p[j] == 'P' && out->p[j + 1] == 'K') {
            *json_end = j;
            break;
        }
    return 0;
}

static void mutate_pt_json(buf *b, size_t at, size_t end) {
    static const char chars[] = "{}[]\":,\\ 0a\xff\x00";
    if (end <= at || end > b->n) return;
    b->p[at + rnd_below(end - at)] = (uint8_t)chars[rnd_below(sizeof chars - 1)];
}

static void fuzz_pt(int iterations, double deadline, int *done) {
    enum { SEEDS = 5 };
    buf seeds[SEEDS] = {{0}};
    const char *names[SEEDS] = {"checkpoint.pt", "params.pt", "params.pt as dnnguard writes it", "module.pt",
                                "script.pt"};
    size_t span_at[SEEDS], span_end[SEEDS], json_at = 0, json_end = 0;
    const int ok0 = st_ok, rejected0 = st_rejected;
    for (int s = 0; s < SEEDS; s++) {
        if (s != 2)
            CHECK(read_fixture(names[s], &seeds[s]) == 0, "tests/fixtures/%s is readable (DG_SOURCE_DIR)", names[s]);
        else CHECK(written_seed(&seeds[s], &json_at, &json_end) == 0 && json_end > json_at, "%s: written", names[s]);
        pickle_span(&seeds[s], &span_at[s], &span_end[s]);
        CHECK(span_end[s] > span_at[s], "%s: its data.pkl is found", names[s]);
        int before = st_ok;
        run_safetensors(&seeds[s]);
        CHECK(st_ok == before + 1, "%s loads: %s", names[s], errbuf);
    }
    buf b = {0};
    int it = 0, seeds_ok = st_ok;
    int all_read = 1;
    for (int s = 0; s < SEEDS; s++) all_read &= seeds[s].n > 0;
    for (; it < iterations && now_s() < deadline && all_read; it++) {
        int s = (int)rnd_below(SEEDS);
        buf_set(&b, seeds[s].p, seeds[s].n);
        int k = 1 + (int)rnd_below(3);
        for (int m = 0; m < k; m++) {
            int how = (int)rnd_below(s == 2 ? 4 : 3);
            if (how == 3) mutate_pt_json(&b, json_at, json_end);
            else if (how == 0) mutate_bytes(&b, span_end[s]);
            else mutate_pickle(&b, span_at[s], span_end[s]);
        }
        run_safetensors(&b);
    }
    pt_ok = st_ok - seeds_ok;
    pt_rejected = st_rejected - rejected0;
    st_ok = ok0; /* the safetensors figures stay safetensors' own */
    st_rejected = rejected0;
    *done = it;
    free(b.p);
    for (int s = 0; s < SEEDS; s++) free(seeds[s].p);
}

/* ------------------------------------------------------------------------------------------- */
/* IDX and CIFAR-10                                                                              */

static int data_ok = 0, data_rejected = 0;

static void run_data(const char *spec, int train) {
    dg_dataset d;
    errbuf[0] = 0;
    int rc = dg_data_load(spec, train, &d, errbuf, sizeof errbuf);
    if (rc != 0) {
        data_rejected++;
        CHECK(rc == -1 && errbuf[0] == '/' && strstr(errbuf, ": "), "rejection without a message naming the file: '%s'",
              errbuf);
        CHECK(d.images == NULL && d.labels == NULL, "struct not cleared after failure");
        dg_data_free(&d);
        return;
    }
    data_ok++;
    CHECK(d.n > 0 && d.c >= 1 && d.c <= 3 && d.h >= 1 && d.w >= 1 && d.classes == 10, "accepted dims %d %d %d %d", d.n,
          d.c, d.h, d.w);
    size_t per = (size_t)d.c * d.h * d.w;
    float *img = malloc(per * sizeof(float));
    if (img) {
        dg_data_image_f32(&d, 0, img);
        dg_data_image_f32(&d, d.n - 1, img); /* the last image: ASan sees an images array too short */
        dg_data_image_f32(&d, d.n, img);
        free(img);
    }
    int bad = 0;
    for (int i = 0; i < d.n; i++) bad += d.labels[i] >= d.classes;
    CHECK(bad == 0, "%d labels out of range accepted", bad);
    char err[256];
    CHECK(dg_data_subset(&d, d.n / 2 + 1, 5, err, sizeof err) == 0, "subset: %s", err);
    dg_data_free(&d);
}

static void fuzz_idx(int iterations, double deadline, int *done) {
    enum { N = 6, H = 5, W = 4 };
    uint8_t img[16 + N * H * W], lab[8 + N];
    img[0] = img[1] = 0;
    img[2] = 8;
    img[3] = 3;
    uint32_t dims[3] = {N, H, W};
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < 4; j++) img[4 + 4 * k + j] = (uint8_t)(dims[k] >> (24 - 8 * j));
    for (int i = 0; i < N * H * W; i++) img[16 + i] = (uint8_t)(i * 37);
    memcpy(lab, "\0\0\x08\x01\0\0\0\x06", 8);
    for (int i = 0; i < N; i++) lab[8 + i] = (uint8_t)(i * 3 % 10);

    char img_raw[700], lab_raw[700], img_gz[700], lab_gz[700], spec_raw[700], spec_gz[700];
    snprintf(img_raw, sizeof img_raw, "%s/t10k-images-idx3-ubyte", dir_raw);
    snprintf(lab_raw, sizeof lab_raw, "%s/t10k-labels-idx1-ubyte", dir_raw);
    snprintf(img_gz, sizeof img_gz, "%s/t10k-images-idx3-ubyte.gz", dir_gz);
    snprintf(lab_gz, sizeof lab_gz, "%s/t10k-labels-idx1-ubyte.gz", dir_gz);
    snprintf(spec_raw, sizeof spec_raw, "mnist:%s", dir_raw);
    snprintf(spec_gz, sizeof spec_gz, "fashion-mnist:%s", dir_gz);

    buf bi = {0}, bl = {0}, z = {0};
    /* seeds load */
    write_bytes(img_raw, img, sizeof img);
    write_bytes(lab_raw, lab, sizeof lab);
    run_data(spec_raw, 0);
    gzip_bytes(img, sizeof img, &z);
    write_bytes(img_gz, z.p, z.n);
    gzip_bytes(lab, sizeof lab, &z);
    write_bytes(lab_gz, z.p, z.n);
    run_data(spec_gz, 0);
    CHECK(data_ok == 2, "IDX seeds rejected: %s", errbuf);

    int it = 0;
    for (; it < iterations && now_s() < deadline; it++) {
        buf_set(&bi, img, sizeof img);
        buf_set(&bl, lab, sizeof lab);
        int k = 1 + (int)rnd_below(3);
        int mode = (int)rnd_below(3); /* 0 raw, 1 mutate then gzip, 2 gzip then mutate */
        for (int m = 0; m < k; m++) {
            buf *t = rnd() & 1 ? &bi : &bl;
            if (mode != 2) mutate_bytes(t, t == &bi ? 16 : 8);
        }
        if (mode == 0) {
            write_bytes(img_raw, bi.p, bi.n);
            write_bytes(lab_raw, bl.p, bl.n);
            run_data(spec_raw, 0);
        } else {
            gzip_bytes(bi.p, bi.n, &z);
            buf zi = {0};
            buf_set(&zi, z.p, z.n);
            gzip_bytes(bl.p, bl.n, &z);
            if (mode == 2)
                for (int m = 0; m < k; m++) mutate_bytes(rnd() & 1 ? &zi : &z, 12);
            write_bytes(img_gz, zi.p, zi.n);
            write_bytes(lab_gz, z.p, z.n);
            free(zi.p);
            run_data(spec_gz, 0);
        }
    }
    *done = it;
    free(bi.p);
    free(bl.p);
    free(z.p);
    unlink(img_raw);
    unlink(lab_raw);
    unlink(img_gz);
    unlink(lab_gz);
}

static void fuzz_cifar(int iterations, double deadline, int *done) {
    enum { R = 3073, N = 3 };
    uint8_t *rec = malloc((size_t)N * R);
    for (int r = 0; r < N; r++) {
        rec[(size_t)r * R] = (uint8_t)(r * 4);
        for (int k = 1; k < R; k++) rec[(size_t)r * R + k] = (uint8_t)(r * 5 + k);
    }
    char p_raw[700], p_gz[700], spec_raw[700], spec_gz[700];
    snprintf(p_raw, sizeof p_raw, "%s/test_batch.bin", dir_raw);
    snprintf(p_gz, sizeof p_gz, "%s/test_batch.bin.gz", dir_gz);
    snprintf(spec_raw, sizeof spec_raw, "cifar10:%s", dir_raw);
    snprintf(spec_gz, sizeof spec_gz, "cifar10:%s", dir_gz);
    buf b = {0}, z = {0};
    int it = 0;
    for (; it < iterations && now_s() < deadline; it++) {
        buf_set(&b, rec, (size_t)N * R);
        int k = 1 + (int)rnd_below(3);
        int mode = (int)rnd_below(3);
        for (int m = 0; m < k && mode != 2; m++) {
            if (rnd_below(3) == 0 && b.n) b.p[rnd_below(b.n / R + 1) * R % (b.n ? b.n : 1)] = (uint8_t)rnd_below(12);
            else mutate_bytes(&b, 0);
        }
        if (mode == 0) {
            write_bytes(p_raw, b.p, b.n);
            run_data(spec_raw, 0);
        } else {
            gzip_bytes(b.p, b.n, &z);
            if (mode == 2)
                for (int m = 0; m < k; m++) mutate_bytes(&z, 12);
            write_bytes(p_gz, z.p, z.n);
            run_data(spec_gz, 0);
        }
    }
    *done = it;
    free(b.p);
    free(z.p);
    free(rec);
    unlink(p_raw);
    unlink(p_gz);
}

/* ---- watermark keys: JSON text behind the same 8-byte length prefix, so mutate_json applies ---- */

static int key_ok = 0, key_rejected = 0;

static void run_key(const buf *b) {
    static dg_wm_key key;
    static dg_wm_result r;
    errbuf[0] = 0;
    int rc = dg_wm_key_parse((const char *)b->p + 8, b->n - 8, "key.json", &key, errbuf, sizeof errbuf);
    if (rc != 0) {
        key_rejected++;
        CHECK(rc == -1 && strncmp(errbuf, "key.json: ", 10) == 0, "key rejection without a message: '%s'", errbuf);
        return;
    }
    key_ok++;
    long per = (long)key.shape[1] * key.shape[2] * key.shape[3];
    int sane = key.n >= 1 && key.n <= per && key.filter >= 0 && key.filter < key.shape[0] && key.a > 0.0f;
    for (int k = 0; k < key.n && sane; k++) sane = key.positions[k] >= 0 && key.positions[k] < per && key.digits[k] <= 9;
    CHECK(sane, "an accepted key breaks its own invariants");
    /* verify reads the layer through the key's positions: run it where the layer is small */
    double numel = (double)key.shape[0] * (double)per;
    if (sane && numel <= 1e6) {
        float *w = malloc(sizeof(float) * (size_t)numel); /* exact: ASan sees any overrun */
        if (!w) return;
        for (size_t j = 0; j < (size_t)numel; j++) w[j] = (float)((j * 2654435761u) % 1000) / 1000.0f - 0.5f;
        dg_wm_verify(&key, w, DG_WM_SEARCH_CHANNELS, key.n, &r);
        CHECK(r.filter >= 0 && r.filter < key.shape[0] && r.p_chance >= 0.0 && r.p_chance <= 1.0,
              "verify on a fuzzed key: filter %d, chance %g", r.filter, r.p_chance);
        free(w);
    }
}

static void fuzz_keys(int iterations, double deadline, int *done) {
    float w[16 * 150];
    for (int j = 0; j < 16 * 150; j++) w[j] = (float)((j * 40503u) % 997) / 997.0f - 0.5f;
    static dg_wm_key key;
    char path[700], err[512];
    const int shape[4] = {16, 6, 5, 5};
    snprintf(path, sizeof path, "%s/key.json", tmpdir);
    int made = dg_wm_keygen(w, shape, "conv2.weight", "1234567890210", 7, &key, err, sizeof err);
    memset(key.model_sha256, 'c', 64); /* a key names its clean model's SHA-256 */
    if (made != 0 || dg_wm_key_write(&key, path, err, sizeof err) != 0) {
        fprintf(stderr, "key seed: %s\n", err);
        exit(2);
    }
    FILE *fp = fopen(path, "rb");
    char text[4096];
    size_t len = fread(text, 1, sizeof text, fp);
    fclose(fp);
    unlink(path);
    buf seed = {0}, b = {0};
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)len >> (8 * i));
    buf_insert(&seed, 0, le, 8);
    buf_insert(&seed, 8, text, len);
    run_key(&seed);
    CHECK(key_ok == 1, "the seed key is rejected: %s", errbuf);
    int it = 0;
    for (; it < iterations && now_s() < deadline; it++) {
        buf_set(&b, seed.p, seed.n);
        int k = 1 + (int)rnd_below(4);
        for (int m = 0; m < k; m++) {
            if (rnd_below(5) == 0) mutate_bytes(&b, 0);
            else mutate_json(&b);
        }
        if (b.n < 8) continue;
        run_key(&b);
    }
    *done = it;
    free(seed.p);
    free(b.p);
}

/* ---- fingerprint registries: JSON text behind the same 8-byte length prefix; what is accepted
 * must keep the registry's invariants, and find_user and decide must stay in bounds on it ---- */

static int reg_ok = 0, reg_rejected = 0;

static void run_registry(const buf *b) {
    static dg_fp_registry r;
    errbuf[0] = 0;
    int rc = dg_fp_registry_parse((const char *)b->p + 8, b->n - 8, "registry.json", &r, errbuf, sizeof errbuf);
    if (rc != 0) {
        reg_rejected++;
        CHECK(rc == -1 && strncmp(errbuf, "registry.json: ", 15) == 0 && r.users == NULL && r.n_users == 0,
              "registry rejection without a message or with users left: '%s'", errbuf);
        return;
    }
    reg_ok++;
    int ids = dg_fp_identity_count(&r); /* class · T + j */
    int sane = r.c >= 1 && r.c <= 3 && r.h >= 1 && r.h <= 4096 && r.w >= 1 && r.w <= 4096 && r.classes >= 2 &&
               r.classes <= DG_FP_MAX_CLASSES && r.eps > 0.0f && r.eps <= 0.5f && r.margin >= 0.0f &&
               r.margin <= r.eps && r.n_classes_fp >= 1 && r.n_classes_fp <= r.classes && r.n_confs >= 1 &&
               r.n_confs <= DG_FP_MAX_CONFS && r.n_users >= 0 && r.n_users <= r.n_classes_fp * r.n_confs &&
               (r.users || !r.n_users);
    for (int ch = 0; ch < r.c && sane; ch++) sane = r.std[ch] > 0.0f && isfinite(r.mean[ch]);
    for (int i = 0; i < r.n_classes_fp && sane; i++)
        sane = r.classes_fp[i] >= 0 && r.classes_fp[i] < r.classes && (i == 0 || r.classes_fp[i] > r.classes_fp[i - 1]);
    for (int j = 0; j < r.n_confs && sane; j++)
        sane = r.confs[j] > 0.0f && r.confs[j] < 1.0f &&
               (j == 0 || dg_fp_windows_apart(r.confs[j - 1], r.confs[j], r.eps)); /* the parser's own test */
    for (int i = 0; i < r.n_users && sane; i++) {
        const dg_fp_user *u = &r.users[i];
        size_t len = strnlen(u->file, sizeof u->file);
        int in_fp = 0;
        for (int c = 0; c < r.n_classes_fp; c++) in_fp |= r.classes_fp[c] == u->cls;
        sane = u->id >= 0 && u->id < ids && (i == 0 || u->id > r.users[i - 1].id) && in_fp &&
               u->cls == u->id / r.n_confs && u->conf == r.confs[u->id % r.n_confs] && u->source >= 0 &&
               len > 0 && len < sizeof u->file && u->file[0] != '.' && !memchr(u->file, '/', len) &&
               !memchr(u->file, '\\', len) && strnlen(u->sha256, sizeof u->sha256) == 64 && u->l2 >= 0.0f &&
               u->p_issue >= 0.0f && u->p_issue <= 1.0f;
    }
    CHECK(sane, "an accepted registry breaks its own invariants");
    if (!sane) {
        dg_fp_registry_free(&r);
        return;
    }
    /* find_user finds every listed id at its index, and nothing for an id between or past them */
    int found = 1;
    for (int i = 0; i < r.n_users; i++) {
        found &= dg_fp_find_user(&r, r.users[i].id) == i;
        int next = r.users[i].id + 1;
        if (i + 1 == r.n_users || r.users[i + 1].id != next) found &= dg_fp_find_user(&r, next) == -1;
    }
    found &= dg_fp_find_user(&r, -1) == -1 && dg_fp_find_user(&r, ids) == -1;
    CHECK(found, "find_user on a fuzzed registry");
    /* decide reads exactly r.classes probabilities: an exact-size block lets ASan see an overrun */
    float *probs = malloc(sizeof(float) * (size_t)r.classes);
    if (!probs) exit(2);
    dg_fp_decision d;
    for (int j = 0; j < r.classes; j++) probs[j] = 1.0f / (float)r.classes;
    dg_fp_decide(&r, probs, &d);
    CHECK(d.predicted == 0 && (d.authorized ? d.user >= 0 && d.user < ids : d.user == -1),
          "decide on uniform probabilities: predicted %d user %d", d.predicted, d.user);
    /* every listed user's exact (class, confidence) is that user and nobody else */
    int decided = 1;
    for (int i = 0; i < r.n_users && i < 64; i++) {
        const dg_fp_user *u = &r.users[i];
        memset(probs, 0, sizeof(float) * (size_t)r.classes);
        probs[u->cls] = u->conf;
        dg_fp_decide(&r, probs, &d);
        decided &= d.authorized && d.user == u->id && d.predicted == u->cls && d.conf == u->conf;
    }
    CHECK(decided, "decide does not name a listed user from its own class and confidence");
    free(probs);
    dg_fp_registry_free(&r);
}

/* Reorder the array of objects called `name` ("\"users\":"): duplicate, swap or drop whole objects
 * (what token mutations cannot do), so that ids or indices that repeat or decrease reach the parser
 * with fields that are otherwise right. */
static void mutate_objects(buf *b, const char *name) {
    if (b->n < 8) return;
    uint64_t h = get_hlen(b);
    if (h > b->n - 8 || h == 0) return;
    const uint8_t *t = b->p + 8;
    const uint8_t *key = NULL;
    size_t name_len = strlen(name);
    for (size_t i = 0; i + name_len <= (size_t)h && !key; i++)
        if (memcmp(t + i, name, name_len) == 0) key = t + i;
    if (!key) return;
    size_t open = (size_t)(key - t) + name_len;
    while (open < h && t[open] != '[') open++;
    if (open >= h) return;
    size_t start[16], end[16], close = 0;
    int n = 0, depth = 0;
    for (size_t i = open + 1; i < h; i++) {
        if (t[i] == '{' && depth++ == 0 && n < 16) start[n] = i;
        else if (t[i] == '}' && depth > 0 && --depth == 0 && n < 16) end[n++] = i + 1;
        else if (t[i] == ']' && depth == 0) {
            close = i;
            break;
        }
    }
    if (n == 0 || close == 0) return;
    int order[17], m = 0, op = (int)rnd_below(3), k = (int)rnd_below((size_t)n), j = (int)rnd_below((size_t)n);
    for (int i = 0; i < n; i++) {
        if (op == 2 && i == k) continue;                       /* drop user k */
        order[m++] = op == 1 ? (i == k ? j : i == j ? k : i) : i; /* swap users k and j */
        if (op == 0 && i == k) order[m++] = i;                 /* duplicate user k */
    }
    buf out = {0};
    buf_set(&out, b->p, 8 + open + 1);
    for (int i = 0; i < m; i++) {
        if (i) buf_insert(&out, out.n, ", ", 2);
        buf_insert(&out, out.n, t + start[order[i]], end[order[i]] - start[order[i]]);
    }
    buf_insert(&out, out.n, t + close, b->n - 8 - close);
    set_hlen(&out, (uint64_t)(out.n - 8 - (b->n - 8 - (size_t)h))); /* what follows the header is unchanged */
    buf_set(b, out.p, out.n);
    free(out.p);
}

/* Replace one number of the header by a value near the registry's own (class indices, ids, the
 * confidences and their windows), so that edges are reached far more often than with any token. */
static void mutate_number(buf *b) {
    static const char *const near[] = {"0", "1", "2", "3", "4", "5", "8", "9", "10", "11", "99", "100", "-1", "0.19",
                                       "0.2", "0.21", "0.22", "0.34", "0.35", "0.36", "0.37", "0.5", "0.51", "0.49",
                                       "0.01", "0.005", "0.0101", "0.05", "0.1", "0.9", "0.95", "0.99", "1", "1.0001"};
    if (b->n < 8) return;
    uint64_t h = get_hlen(b);
    if (h > b->n - 8 || h == 0) return;
    const uint8_t *t = b->p + 8;
    size_t starts[512];
    int n = 0;
    for (size_t i = 0; i < h && n < 512; i++)
        if (((t[i] >= '0' && t[i] <= '9') || t[i] == '-') && (i == 0 || !is_tok(t[i - 1])) &&
            (i == 0 || t[i - 1] != '"'))
            starts[n++] = i;
    if (n == 0) return;
    size_t s = starts[rnd_below((size_t)n)], e = s;
    while (e < h && is_tok(t[e])) e++;
    const char *tok = near[rnd_below(sizeof near / sizeof *near)];
    buf_erase(b, 8 + s, e - s);
    buf_insert(b, 8 + s, tok, strlen(tok));
    set_hlen(b, h - (e - s) + strlen(tok));
}

/* the file a writer just made (rc its result) as a seed behind an 8-byte length; the file removed */
static void file_seed(int rc, const char *path, const char *err, buf *seed) {
    if (rc != 0) {
        fprintf(stderr, "seed %s: %s\n", path, err);
        exit(2);
    }
    FILE *fp = fopen(path, "rb");
    static char text[16384];
    size_t len = fp ? fread(text, 1, sizeof text, fp) : 0;
    if (fp) fclose(fp);
    unlink(path);
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)len >> (8 * i));
    seed->n = 0;
    buf_insert(seed, 0, le, 8);
    buf_insert(seed, 8, text, len);
}

/* a registry as dg_fp_registry_write writes it, behind an 8-byte length */
static void registry_seed(const dg_fp_registry *reg, buf *seed) {
    char path[700], err[512] = "";
    snprintf(path, sizeof path, "%s/registry.json", tmpdir);
    file_seed(dg_fp_registry_write(reg, path, err, sizeof err), path, err, seed);
}

/* The mutation loop of the JSON parsers (registries, manifests, calibrations): a seed, 1–4 byte,
 * object (`objects`: the array whose entries are reordered and repeated), number or token
 * mutations (numbers up to number_share tenths), then the parser; the mutants run. */
static int fuzz_json_documents(const buf *seeds, int n_seeds, const char *objects, int number_share,
                               void (*parse)(const buf *), int iterations, double deadline) {
    buf b = {0};
    int it = 0;
    for (; it < iterations && now_s() < deadline; it++) {
        const buf *seed = &seeds[rnd_below((size_t)n_seeds)];
        buf_set(&b, seed->p, seed->n);
        int k = 1 + (int)rnd_below(4);
        for (int q = 0; q < k; q++) {
            size_t r = rnd_below(10);
            if (r < 2) mutate_bytes(&b, 0);
            else if (r < 4) mutate_objects(&b, objects);
            else if (r < (size_t)number_share) mutate_number(&b);
            else mutate_json(&b);
        }
        if (b.n < 8) continue;
        parse(&b);
    }
    free(b.p);
    return it;
}

static void fuzz_registry(int iterations, double deadline, int *done) {
    static dg_fp_registry reg;
    static dg_fp_user users[4];
    memset(&reg, 0, sizeof reg);
    snprintf(reg.net, sizeof reg.net, "lenet5");
    snprintf(reg.data, sizeof reg.data, "mnist:/data/mnist");
    snprintf(reg.split, sizeof reg.split, "test");
    memset(reg.model_sha256, 'a', 64);
    reg.c = 1, reg.h = 28, reg.w = 28, reg.classes = 10;
    reg.mean[0] = 0.1307f, reg.std[0] = 0.3081f, reg.eps = 0.01f, reg.margin = 0.005f;
    reg.n_classes_fp = 3, reg.classes_fp[0] = 0, reg.classes_fp[1] = 4, reg.classes_fp[2] = 9;
    reg.n_confs = 3, reg.confs[0] = 0.2f, reg.confs[1] = 0.35f, reg.confs[2] = 0.5f;
    const int ids[4] = {0, 1, 13, 29}; /* class · 3 + j; ids 2, 12, 14, 27 and 28 failed: absent */
    for (int i = 0; i < 4; i++) {
        users[i].id = ids[i];
        users[i].cls = ids[i] / 3;
        users[i].conf = reg.confs[ids[i] % 3];
        users[i].source = 100 * i + 7;
        snprintf(users[i].file, sizeof users[i].file, "user-%02d.png", ids[i]);
        for (int k = 0; k < 64; k++) users[i].sha256[k] = "0123456789abcdef"[(k * 7 + i) % 16];
        users[i].l2 = 1.25f * (float)(i + 1);
        users[i].p_issue = users[i].conf + 0.001f;
    }
    reg.n_users = 4, reg.users = users;
    /* seeds: 4 users with ids skipped; the same with no users (so that mutated classes and
     * confidences are not refused for the users' sake); colour, 100 classes, users 1 and 199 */
    buf seeds[3] = {{0}, {0}, {0}};
    registry_seed(&reg, &seeds[0]);
    reg.n_users = 0;
    registry_seed(&reg, &seeds[1]);
    reg.c = 3, reg.h = reg.w = 32, reg.classes = 100;
    reg.mean[1] = 0.48f, reg.mean[2] = 0.45f, reg.std[1] = 0.25f, reg.std[2] = 0.26f, reg.eps = 0.05f, reg.margin = 0.05f;
    reg.classes_fp[1] = 50, reg.classes_fp[2] = 99, reg.n_confs = 2, reg.confs[0] = 0.1f, reg.confs[1] = 0.9f;
    users[0].id = 1, users[0].cls = 0, users[0].conf = 0.9f;
    users[1].id = 199, users[1].cls = 99, users[1].conf = 0.9f; /* 99 · 2 + 1 */
    reg.n_users = 2;
    registry_seed(&reg, &seeds[2]);
    for (int s = 0; s < 3; s++) run_registry(&seeds[s]);
    CHECK(reg_ok == 3, "a seed registry is rejected: %s", errbuf);
    *done = fuzz_json_documents(seeds, 3, "\"users\":", 7, run_registry, iterations, deadline);
    for (int s = 0; s < 3; s++) free(seeds[s].p);
}

/* ---- InFIP manifests: the same framing; what is accepted keeps the manifest's invariants ---- */

static int man_ok = 0, man_rejected = 0;

static void run_manifest(const buf *b) {
    static dg_infip_manifest m;
    errbuf[0] = 0;
    int rc = dg_infip_manifest_parse((const char *)b->p + 8, b->n - 8, "manifest.json", &m, errbuf, sizeof errbuf);
    if (rc != 0) {
        man_rejected++;
        CHECK(rc == -1 && strncmp(errbuf, "manifest.json: ", 15) == 0 && m.keys == NULL && m.n_keys == 0,
              "manifest rejection without a message or with keys left: '%s'", errbuf);
        return;
    }
    man_ok++;
    int sane = m.c >= 1 && m.c <= 3 && m.h >= 1 && m.h <= 4096 && m.w >= 1 && m.w <= 4096 && m.classes >= 2 &&
               m.lambda > 0.0f && m.eps >= 0.0f && m.eps <= 1.0f && m.n_keys >= 1 && m.n_keys <= DG_INFIP_MAX_KEYS &&
               m.keys && (m.inject_logit == 0 || m.inject_logit == 1) && strnlen(m.seed, sizeof m.seed) > 0;
    for (int ch = 0; ch < m.c && sane; ch++) sane = m.std[ch] > 0.0f && isfinite(m.mean[ch]);
    for (int i = 0; i < m.n_keys && sane; i++) {
        const dg_infip_key *k = &m.keys[i];
        const char *files[2] = {k->key_file, k->fp_file};
        sane = k->index >= 0 && k->label >= 0 && k->label < m.classes && k->predicted >= 0 &&
               k->predicted < m.classes && strnlen(k->key_sha256, 65) == 64 && strnlen(k->fp_sha256, 65) == 64;
        for (int f = 0; f < 2 && sane; f++) /* inside the folder: no "..", no absolute path, ≤ 1 level */
            sane = files[f][0] && files[f][0] != '/' && files[f][0] != '.' && !strstr(files[f], "/.") &&
                   !strchr(files[f], '\\') && (!strchr(files[f], '/') || !strchr(strchr(files[f], '/') + 1, '/'));
        for (int j = 0; j < i && sane && i < 64; j++) sane = m.keys[j].index != k->index;
    }
    CHECK(sane, "an accepted manifest breaks its own invariants");
    dg_infip_manifest_free(&m);
}

static void manifest_seed(const dg_infip_manifest *m, buf *seed) {
    char path[700], err[512] = "";
    snprintf(path, sizeof path, "%s/manifest.json", tmpdir);
    file_seed(dg_infip_manifest_write(m, path, err, sizeof err), path, err, seed);
}

static void fuzz_manifest(int iterations, double deadline, int *done) {
    static dg_infip_manifest m;
    static dg_infip_key keys[5];
    memset(&m, 0, sizeof m);
    snprintf(m.net, sizeof m.net, "vgg16-cifar");
    snprintf(m.data, sizeof m.data, "cifar10:/data/cifar10");
    snprintf(m.split, sizeof m.split, "test");
    memset(m.model_sha256, 'b', 64);
    snprintf(m.seed, sizeof m.seed, "3");
    m.c = 3, m.h = m.w = 32, m.classes = 10, m.lambda = 5000.0f, m.eps = 1e-9f;
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.247f, 0.2435f, 0.2616f};
    memcpy(m.mean, mean, sizeof mean);
    memcpy(m.std, std, sizeof std);
    for (int i = 0; i < 5; i++) {
        keys[i].index = 1000 * i + 17;
        keys[i].label = i;
        keys[i].predicted = (i * 3) % 10;
        snprintf(keys[i].key_file, sizeof keys[i].key_file, "keys/key-%05d.png", i);
        snprintf(keys[i].fp_file, sizeof keys[i].fp_file, "fingerprints/fp-%05d.png", i);
        for (int k = 0; k < 64; k++) {
            keys[i].key_sha256[k] = "0123456789abcdef"[(k * 5 + i) % 16];
            keys[i].fp_sha256[k] = "0123456789abcdef"[(k * 3 + i) % 16];
        }
        keys[i].relevance_sum = 1.0f - 0.01f * (float)i;
    }
    m.n_keys = 5, m.keys = keys;
    buf seeds[2] = {{0}, {0}};
    manifest_seed(&m, &seeds[0]);
    m.c = 1, m.h = m.w = 28, m.inject_logit = 1, m.n_keys = 2; /* grey, the logit injection */
    manifest_seed(&m, &seeds[1]);
    for (int s = 0; s < 2; s++) run_manifest(&seeds[s]);
    CHECK(man_ok == 2, "a seed manifest is rejected: %s", errbuf);
    *done = fuzz_json_documents(seeds, 2, "\"keys\":", 6, run_manifest, iterations, deadline);
    for (int s = 0; s < 2; s++) free(seeds[s].p);
}

/* ---- InFIP calibrations: the same framing, read for one manifest; what is accepted keeps the
 * calibration's invariants (the thresholds its ASSIMs give, every model below them, none twice) ---- */

static int cal_ok = 0, cal_rejected = 0;
/* what the calibrations are read for: only the hashes and the image size (28×28 holds the Gaussian
 * window, 8×8 does not) matter; every mutant is read for both */
static dg_infip_manifest cal_manifests[2];

static void run_calibration_for(const buf *b, const dg_infip_manifest *cal_manifest) {
    static dg_infip_calibration c;
    errbuf[0] = 0;
    int rc = dg_infip_calibration_parse((const char *)b->p + 8, b->n - 8, "calibration.json", cal_manifest, &c,
                                        errbuf, sizeof errbuf);
    if (rc != 0) {
        cal_rejected++;
        CHECK(rc == -1 && strncmp(errbuf, "calibration.json: ", 18) == 0 && c.nulls == NULL && c.n == 0,
              "calibration rejection without a message or with models left: '%s'", errbuf);
        return;
    }
    cal_ok++;
    int sane = c.n >= 1 && c.n <= DG_INFIP_MAX_INDEPENDENT && c.nulls && c.margin >= 0.0 && c.margin <= 1.0 &&
               c.threshold[0] <= 1.0 && (!c.has_gaussian || c.threshold[1] <= 1.0) &&
               c.false_positive_bound == 1.0 / (c.n + 1.0);
    for (int i = 0; i < c.n && sane; i++) {
        const dg_infip_null *z = &c.nulls[i];
        sane = z->assim[0] < c.threshold[0] && (!c.has_gaussian || z->assim[1] < c.threshold[1]) &&
               (c.has_gaussian || isnan(z->assim[1])) && strcmp(z->sha256, cal_manifest->model_sha256) != 0 &&
               z->model[0] && c.has_gaussian == (cal_manifest->h >= 11);
        for (int j = 0; j < i && sane && i < 64; j++) sane = strcmp(c.nulls[j].sha256, z->sha256) != 0;
    }
    CHECK(sane, "an accepted calibration breaks its own invariants");
    dg_infip_calibration_free(&c);
}

static void run_calibration(const buf *b) {
    for (int i = 0; i < 2; i++) run_calibration_for(b, &cal_manifests[i]);
}

static void calibration_seed(dg_infip_calibration *c, buf *seed) {
    char path[700], err[512] = "";
    snprintf(path, sizeof path, "%s/calibration.json", tmpdir);
    dg_infip_calibration_derive(c);
    file_seed(dg_infip_calibration_write(c, path, err, sizeof err), path, err, seed);
}

static void fuzz_calibration(int iterations, double deadline, int *done) {
    static dg_infip_null nulls[3];
    static dg_infip_calibration c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < 2; i++) {
        memset(cal_manifests[i].file_sha256, 'c', 64);
        memset(cal_manifests[i].model_sha256, 'b', 64);
        cal_manifests[i].c = 1, cal_manifests[i].h = cal_manifests[i].w = i ? 8 : 28;
    }
    memcpy(c.manifest_sha256, cal_manifests[0].file_sha256, 65);
    memcpy(c.owner_model_sha256, cal_manifests[0].model_sha256, 65);
    for (int i = 0; i < 3; i++) {
        snprintf(nulls[i].model, sizeof nulls[i].model, "runs/lenet5-%d.safetensors", i + 2);
        snprintf(nulls[i].net, sizeof nulls[i].net, "lenet5");
        for (int k = 0; k < 64; k++) nulls[i].sha256[k] = "0123456789abcdef"[(k * 7 + i) % 16];
        nulls[i].assim[0] = 0.9 + 0.01 * i;
        nulls[i].assim[1] = 0.8 + 0.03 * i;
    }
    c.n = 3, c.nulls = nulls, c.has_gaussian = 1, c.margin = 0.01;
    buf seeds[2] = {{0}, {0}};
    calibration_seed(&c, &seeds[0]);
    c.n = 1, c.has_gaussian = 0, c.margin = 0.0, nulls[0].assim[1] = NAN; /* images below the Gaussian window */
    calibration_seed(&c, &seeds[1]);
    for (int s = 0; s < 2; s++) run_calibration(&seeds[s]);
    CHECK(cal_ok == 2, "a seed calibration is rejected: %s", errbuf); /* each for the manifest of its size */
    *done = fuzz_json_documents(seeds, 2, "\"independent\":", 6, run_calibration, iterations, deadline);
    for (int s = 0; s < 2; s++) free(seeds[s].p);
}

/* ---- PNG: seeds written by dg_png_write (grey, RGB) and hand-made ones (palette + tRNS, 16-bit
 * grey+alpha and RGBA under Adam7, 1-bit grey); byte mutations and chunk-aware ones (IHDR fields,
 * lengths, types, order, new chunks, the inflated image data), the CRC of a mutated chunk fixed up
 * most of the time so that the mutation reaches the decoder rather than the CRC check ---- */

static int png_ok = 0, png_rejected = 0;
static char png_path[600];

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* want: 0, 1 or 3; via_file: through dg_png_read and a file instead of memory */
static void run_png(const buf *b, int want, int via_file) {
    dg_image im;
    const char *name = via_file ? png_path : "fuzz.png";
    errbuf[0] = 0;
    int rc;
    if (via_file) {
        write_bytes(png_path, b->p, b->n);
        rc = dg_png_read(png_path, &im, want, errbuf, sizeof errbuf);
    } else {
        rc = dg_png_decode(b->p, b->n, name, &im, want, errbuf, sizeof errbuf);
    }
    size_t nl = strlen(name);
    if (rc != 0) {
        png_rejected++;
        CHECK(rc == -1 && strncmp(errbuf, name, nl) == 0 && errbuf[nl] == ':' && strlen(errbuf) > nl + 2,
              "PNG rejection without a message naming the file: rc %d '%s'", rc, errbuf);
        CHECK(im.pixels == NULL && im.w == 0 && im.h == 0, "image not cleared after failure");
        return;
    }
    png_ok++;
    int sane = im.w >= 1 && im.h >= 1 && im.w <= DG_PNG_MAX_SIDE && im.h <= DG_PNG_MAX_SIDE &&
               (want ? im.channels == want : (im.channels == 1 || im.channels == 3)) && im.pixels &&
               (uint64_t)im.w * (uint64_t)im.h * (uint64_t)im.channels <= DG_PNG_MAX_DECODED_BYTES;
    CHECK(sane, "accepted PNG: %dx%d, %d channels", im.w, im.h, im.channels);
    if (!sane) return;
    size_t n = (size_t)im.w * im.h * im.channels;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += im.pixels[i]; /* ASan sees a buffer shorter than w·h·c */
    CHECK(sum <= 255u * (uint64_t)n, "pixel sum");
    if (n <= 4096 && rnd_below(8) == 0) { /* what we accept we can write, and read back exactly */
        dg_image back;
        int ok = dg_png_write(png_path, &im, errbuf, sizeof errbuf) == 0 &&
                 dg_png_read(png_path, &back, 0, errbuf, sizeof errbuf) == 0;
        CHECK(ok && back.w == im.w && back.h == im.h && back.channels == im.channels && memcmp(back.pixels, im.pixels, n) == 0,
              "accepted PNG does not survive write + read: %s", errbuf);
        if (ok) dg_image_free(&back);
    }
    dg_image_free(&im);
}

/* A chunk at offset at (its length field); keeps the buffer's bytes after it. */
static void png_insert_chunk(buf *b, size_t at, const char *type, const uint8_t *data, uint32_t len) {
    uint8_t head[8];
    put_be32(head, len);
    memcpy(head + 4, type, 4);
    buf_insert(b, at, head, 8);
    if (len) buf_insert(b, at + 8, data, len);
    uint8_t crc[4];
    uLong c = crc32(0, (const Bytef *)type, 4);
    if (len) c = crc32(c, data, len); /* zlib's crc32 of a NULL buffer is its initial value, not a no-op */
    put_be32(crc, (uint32_t)c);
    buf_insert(b, at + 8 + len, crc, 4);
}

static void png_fix_crc(buf *b, size_t at) {
    if (at + 12 > b->n) return;
    uint32_t len = be32(b->p + at);
    if (len > b->n - at - 12) return;
    put_be32(b->p + at + 8 + len, (uint32_t)crc32(0, b->p + at + 4, len + 4));
}

/* The chunks' offsets (while their lengths stay inside the buffer). */
static int png_chunks(const buf *b, size_t *at, int max) {
    int n = 0;
    for (size_t p = 8; n < max && p + 12 <= b->n;) {
        uint32_t len = be32(b->p + p);
        if (len > b->n - p - 12) break;
        at[n++] = p;
        p += 12 + (size_t)len;
    }
    return n;
}

/* A valid PNG of any colour type, depth and interlacing, with filter bytes 0..4 and random samples. */
static void make_png_seed(buf *b, uint32_t w, uint32_t h, int depth, int ctype, int interlace) {
    static const int chans[7] = {1, 0, 3, 1, 2, 0, 4};
    static const int a7[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
    b->n = 0;
    buf_insert(b, 0, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = (uint8_t)ctype;
    ihdr[12] = (uint8_t)interlace;
    png_insert_chunk(b, b->n, "IHDR", ihdr, 13);
    if (ctype == 3) {
        uint8_t plte[3 * 16], trns[3] = {0, 128, 255};
        for (int i = 0; i < 48; i++) plte[i] = (uint8_t)(i * 37);
        png_insert_chunk(b, b->n, "PLTE", plte, 3u * (1u << depth));
        png_insert_chunk(b, b->n, "tRNS", trns, 3);
    }
    png_insert_chunk(b, b->n, "tEXt", (const uint8_t *)"Comment\0seed", 12);
    buf raw = {0};
    int bpp_bits = depth * chans[ctype];
    for (int pass = 0; pass < (interlace ? 7 : 1); pass++) {
        const int *p = interlace ? a7[pass] : (const int[4]){0, 0, 1, 1};
        if (w <= (uint32_t)p[0] || h <= (uint32_t)p[1]) continue; /* an empty pass has no rows at all */
        uint32_t pw = (w - (uint32_t)p[0] + (uint32_t)p[2] - 1) / (uint32_t)p[2];
        uint32_t ph = (h - (uint32_t)p[1] + (uint32_t)p[3] - 1) / (uint32_t)p[3];
        size_t rb = ((size_t)pw * (size_t)bpp_bits + 7) / 8;
        for (uint32_t y = 0; y < ph; y++) {
            uint8_t f = (uint8_t)rnd_below(5);
            buf_insert(&raw, raw.n, &f, 1);
            for (size_t k = 0; k < rb; k++) {
                uint8_t v = (uint8_t)rnd();
                buf_insert(&raw, raw.n, &v, 1);
            }
        }
    }
    uLongf zn = compressBound((uLong)raw.n);
    uint8_t *z = malloc(zn);
    if (!z || compress(z, &zn, raw.p, (uLong)raw.n) != Z_OK) exit(2);
    png_insert_chunk(b, b->n, "IDAT", z, (uint32_t)zn);
    png_insert_chunk(b, b->n, "IEND", NULL, 0);
    free(z);
    free(raw.p);
}

/* Inflate chunk at's data, mutate the raw image bytes (filter types, rows, length), deflate it back. */
static void mutate_idat(buf *b, size_t at) {
    uint32_t len = be32(b->p + at);
    uLongf rn = 1 << 16;
    uint8_t *raw = malloc(rn);
    if (!raw || uncompress(raw, &rn, b->p + at + 8, len) != Z_OK) {
        free(raw);
        return;
    }
    buf r = {0};
    buf_set(&r, raw, rn);
    free(raw);
    if (rnd() & 1 && r.n) r.p[rnd_below(r.n)] = (uint8_t)rnd_below(7); /* a filter type, or one past them */
    else mutate_bytes(&r, 0);
    uLongf zn = compressBound((uLong)r.n);
    uint8_t *z = malloc(zn);
    if (z && compress(z, &zn, r.p, (uLong)r.n) == Z_OK) {
        buf_erase(b, at, 12 + (size_t)len);
        png_insert_chunk(b, at, "IDAT", z, (uint32_t)zn);
    }
    free(z);
    free(r.p);
}

static void mutate_png(buf *b) {
    static const char *const types[] = {"IHDR", "PLTE", "IDAT", "IEND", "tRNS", "gAMA", "cHRM", "sRGB", "iCCP", "sBIT",
                                        "bKGD", "hIST", "pHYs", "sPLT", "tIME", "tEXt", "zTXt", "iTXt", "eXIf", "acTL",
                                        "fcTL", "xyzw", "IDAx", "ihdr"};
    static const uint8_t depths[] = {0, 1, 2, 3, 4, 8, 16, 255};
    size_t at[64];
    int nc = png_chunks(b, at, 64);
    if (nc == 0 || rnd_below(8) == 0) {
        mutate_bytes(b, 33); /* signature + IHDR */
        return;
    }
    size_t k = at[rnd_below((size_t)nc)];
    uint32_t len = be32(b->p + k);
    int fix = rnd_below(8) != 0;
    /* where a chunk goes: after IHDR most of the time, else the file fails before its data */
    size_t to = nc > 1 && rnd_below(8) ? at[1 + rnd_below((size_t)nc - 1)] : at[rnd_below((size_t)nc)];
    switch (rnd_below(9)) {
    case 0: /* one data byte */
        if (len) b->p[k + 8 + rnd_below(len)] = rnd() & 1 ? interesting8[rnd_below(sizeof interesting8)] : (uint8_t)rnd();
        break;
    case 1: case 2: /* an IHDR field */
        k = at[0];
        if (be32(b->p + k) != 13) break;
        switch (rnd_below(5)) {
        case 0: case 1: {
            uint32_t v = interesting32[rnd_below(sizeof interesting32 / sizeof interesting32[0])];
            if (rnd() & 1) v = (uint32_t)rnd_below(40) + (rnd() & 1 ? 16370 : 0);
            put_be32(b->p + k + 8 + 4 * rnd_below(2), v);
            break;
        }
        case 2: b->p[k + 16] = depths[rnd_below(sizeof depths)]; break;
        case 3: b->p[k + 17] = (uint8_t)rnd_below(8); break;
        default: b->p[k + 18 + rnd_below(3)] = (uint8_t)rnd_below(3); break;
        }
        break;
    case 3: /* the length field */
        put_be32(b->p + k, rnd() & 1 ? interesting32[rnd_below(sizeof interesting32 / sizeof interesting32[0])]
                                     : len + (uint32_t)rnd_below(9) - 4u);
        break;
    case 4: /* the type */
        memcpy(b->p + k + 4, types[rnd_below(sizeof types / sizeof *types)], 4);
        break;
    case 5: /* drop a chunk */
        buf_erase(b, k, 12 + (size_t)len);
        fix = 0;
        break;
    case 6: { /* copy a chunk somewhere else */
        buf tmp = {0};
        buf_set(&tmp, b->p + k, 12 + (size_t)len);
        buf_insert(b, to, tmp.p, tmp.n);
        free(tmp.p);
        fix = 0;
        break;
    }
    case 7: { /* a new chunk */
        uint8_t data[48];
        uint32_t n = (uint32_t)rnd_below(sizeof data + 1);
        for (uint32_t i = 0; i < n; i++) data[i] = rnd() & 1 ? (uint8_t)rnd() : (uint8_t)rnd_below(3);
        png_insert_chunk(b, to, types[rnd_below(sizeof types / sizeof *types)], data, n);
        fix = 0;
        break;
    }
    default: /* the image data itself */
        for (int i = 0; i < nc; i++)
            if (memcmp(b->p + at[i] + 4, "IDAT", 4) == 0) {
                mutate_idat(b, at[i]);
                break;
            }
        fix = 0;
        break;
    }
    if (fix) png_fix_crc(b, k);
}

static void make_png_seeds(buf *seeds, int *n_seeds) {
    char err[512];
    int n = 0;
    for (int c = 1; c <= 3; c += 2) {
        dg_image im = {c == 1 ? 7 : 9, c == 1 ? 5 : 4, c, malloc(64 * 3), 0, NULL};
        for (int i = 0; i < 64 * 3; i++) im.pixels[i] = (uint8_t)(i * 29);
        if (dg_png_write(png_path, &im, err, sizeof err) != 0) {
            fprintf(stderr, "PNG seed: %s\n", err);
            exit(2);
        }
        free(im.pixels);
        FILE *fp = fopen(png_path, "rb");
        uint8_t tmp[4096];
        size_t len = fread(tmp, 1, sizeof tmp, fp);
        fclose(fp);
        buf_set(&seeds[n++], tmp, len);
    }
    make_png_seed(&seeds[n++], 6, 3, 2, 3, 0);  /* 2-bit palette with tRNS */
    make_png_seed(&seeds[n++], 11, 7, 16, 4, 1); /* 16-bit grey+alpha, Adam7 */
    make_png_seed(&seeds[n++], 5, 9, 8, 6, 1);   /* RGBA, Adam7 */
    make_png_seed(&seeds[n++], 17, 2, 1, 0, 0);  /* 1-bit grey */
    make_png_seed(&seeds[n++], 9, 5, 4, 3, 1);   /* 4-bit palette, Adam7 (PLTE cuts make indices past it) */
    *n_seeds = n;
}

static void fuzz_png(int iterations, double deadline, int *done) {
    buf seeds[7] = {{0}};
    int n_seeds;
    make_png_seeds(seeds, &n_seeds);
    for (int s = 0; s < n_seeds; s++) run_png(&seeds[s], 0, 0);
    CHECK(png_ok == n_seeds, "PNG seeds rejected (%d of %d accepted): %s", png_ok, n_seeds, errbuf);
    buf b = {0};
    int it = 0;
    for (; it < iterations && now_s() < deadline; it++) {
        const buf *seed = &seeds[rnd_below((size_t)n_seeds)];
        buf_set(&b, seed->p, seed->n);
        int k = 1 + (int)rnd_below(3);
        for (int m = 0; m < k; m++) mutate_png(&b);
        static const int wants[3] = {0, 1, 3};
        run_png(&b, wants[rnd_below(3)], rnd_below(16) == 0);
    }
    *done = it;
    free(b.p);
    for (int s = 0; s < n_seeds; s++) free(seeds[s].p);
    unlink(png_path);
}

/* ---- folder:DIR trees: mutated PNG files, and the tree's shape changed around them ---- */

static int folder_ok = 0, folder_rejected = 0;
static char folder_root[600];

static void run_folder(const char *spec, int train, int h, int w) {
    dg_dataset d;
    errbuf[0] = 0;
    int rc = dg_data_load(spec, train, &d, errbuf, sizeof errbuf);
    if (rc != 0) {
        folder_rejected++;
        CHECK(rc == -1 && errbuf[0] == '/' && strstr(errbuf, ": "), "folder rejection without a path: '%s'", errbuf);
        CHECK(d.images == NULL && d.labels == NULL && d.n == 0, "struct not cleared after a folder failure");
        dg_data_free(&d);
        return;
    }
    folder_ok++;
    CHECK(d.n > 0 && (d.c == 1 || d.c == 3) && d.h == h && d.w == w && d.classes >= 2, "accepted folder dims %d %d %d %d",
          d.n, d.c, d.h, d.w);
    int bad = 0;
    for (int i = 0; i < d.n; i++) bad += d.labels[i] < 0 || d.labels[i] >= d.classes;
    CHECK(bad == 0, "%d folder labels out of range", bad);
    float *img = malloc(sizeof(float) * (size_t)d.c * d.h * d.w);
    if (img) dg_data_image_f32(&d, d.n - 1, img); /* the last image: ASan sees a short buffer */
    free(img);
    for (int ch = 0; ch < 3; ch++) CHECK(d.std[ch] > 0.0f && d.mean[ch] >= 0.0f && d.mean[ch] <= 1.0f, "folder stats");
    dg_data_free(&d);
}

/* A tree of 2 classes × 2 images per split (grey and RGB, 6×4), mutants of one file at a time,
 * and one change of shape: an empty class, a test-only class, a JPEG name, a link loop, a folder
 * named like an image, a file of another size. Both splits load, or fail with one message. */
static void fuzz_folder(int iterations, double deadline, int *done) {
    enum { H = 4, W = 6, FILES = 8 };
    char paths[FILES][700], spec[700], extra[760], extra2[800];
    buf orig[FILES] = {{0}}, b = {0};
    snprintf(folder_root, sizeof folder_root, "%s/folder", tmpdir);
    snprintf(spec, sizeof spec, "folder:%s", folder_root);
    mkdir(folder_root, 0700);
    for (int f = 0; f < FILES; f++) {
        const char *split = f < 4 ? "train" : "test", *cls = (f / 2) % 2 ? "b" : "a";
        snprintf(paths[f], sizeof paths[f], "%s/%s", folder_root, split);
        mkdir(paths[f], 0700);
        snprintf(paths[f], sizeof paths[f], "%s/%s/%s", folder_root, split, cls);
        mkdir(paths[f], 0700);
        snprintf(paths[f], sizeof paths[f], "%s/%s/%s/%d.png", folder_root, split, cls, f);
        int c = f % 2 ? 3 : 1;
        dg_image im = {W, H, c, malloc((size_t)W * H * 3), 0, NULL};
        for (int i = 0; i < W * H * c; i++) im.pixels[i] = (uint8_t)(i * 37 + f * 11);
        char err[512];
        CHECK(dg_png_write(paths[f], &im, err, sizeof err) == 0, "folder seed: %s", err);
        dg_image_free(&im);
        read_whole(paths[f], &orig[f]);
    }
    run_folder(spec, 1, H, W);
    run_folder(spec, 0, H, W);
    CHECK(folder_ok == 2, "the unmutated folder tree is refused: %s", errbuf);
    int it = 0;
    for (; it < iterations && now_s() < deadline; it++) {
        int f = (int)rnd_below(FILES), shape = (int)rnd_below(8);
        buf_set(&b, orig[f].p, orig[f].n);
        int k = (int)rnd_below(3);
        for (int m = 0; m < k; m++) mutate_png(&b);
        write_bytes(paths[f], b.p, b.n);
        extra[0] = extra2[0] = 0;
        switch (shape) {
        case 1: snprintf(extra, sizeof extra, "%s/train/c", folder_root), mkdir(extra, 0700); break;
        case 2:
            snprintf(extra, sizeof extra, "%s/test/z", folder_root), mkdir(extra, 0700);
            snprintf(extra2, sizeof extra2, "%s/0.png", extra), write_bytes(extra2, orig[0].p, orig[0].n);
            break;
        case 3: snprintf(extra2, sizeof extra2, "%s/train/a/x.JPG", folder_root), write_bytes(extra2, b.p, b.n); break;
        case 4:
            snprintf(extra2, sizeof extra2, "%s/train/b/up", folder_root);
            CHECK(symlink("..", extra2) == 0, "link");
            break;
        case 5: snprintf(extra, sizeof extra, "%s/test/a/dir.png", folder_root), mkdir(extra, 0700); break;
        default: break;
        }
        run_folder(spec, 1, H, W);
        run_folder(spec, 0, H, W);
        if (extra2[0]) unlink(extra2);
        if (extra[0]) rmdir(extra);
        write_bytes(paths[f], orig[f].p, orig[f].n);
    }
    *done = it;
    free(b.p);
    for (int f = 0; f < FILES; f++) {
        unlink(paths[f]);
        free(orig[f].p);
    }
    static const char *const dirs[] = {"train/a", "train/b", "test/a", "test/b", "train", "test", ""};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        snprintf(extra, sizeof extra, "%s/%s", folder_root, dirs[i]);
        rmdir(extra);
    }
}

static void setup_dirs(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/dg_fuzz_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(2);
    }
    snprintf(dir_raw, sizeof dir_raw, "%s/raw", tmpdir);
    snprintf(dir_gz, sizeof dir_gz, "%s/gz", tmpdir);
    snprintf(st_path, sizeof st_path, "%s/f.safetensors", tmpdir);
    snprintf(png_path, sizeof png_path, "%s/f.png", tmpdir);
    mkdir(dir_raw, 0700);
    mkdir(dir_gz, 0700);
}

static void remove_dirs(void) {
    unlink(st_path);
    unlink(png_path);
    rmdir(dir_raw);
    rmdir(dir_gz);
    rmdir(tmpdir);
}

#ifdef DG_LIBFUZZER
/* the file behind the 8-byte frame that the built-in mutator's JSON mutants carry */
static void run_framed(const uint8_t *file, size_t n, void (*parse)(const buf *)) {
    buf b = {0};
    uint8_t le[8] = {0};
    buf_insert(&b, 0, le, 8);
    buf_insert(&b, 8, file, n);
    parse(&b);
    free(b.p);
}

/* libFuzzer: the first byte picks the parser, the rest is the file. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready = 0;
    (void)fuzz_safetensors; /* the built-in mutator's parts, unused here */
    (void)fuzz_pt;
    (void)fuzz_idx;
    (void)fuzz_cifar;
    (void)fuzz_keys;
    (void)fuzz_registry;
    (void)fuzz_manifest;
    (void)fuzz_calibration;
    (void)fuzz_png;
    (void)fuzz_folder;
    (void)remove_dirs;
    if (!ready) {
        setup_dirs();
        ready = 1;
    }
    if (size < 1) return 0;
    char p[800];
    switch (data[0] % 8) {
    case 7: run_framed(data + 1, size - 1, run_calibration); break;
    case 6: run_framed(data + 1, size - 1, run_manifest); break;
    case 5: run_framed(data + 1, size - 1, run_registry); break;
    case 4: {
        static const int wants[3] = {0, 1, 3};
        buf b = {0};
        buf_set(&b, data + 1, size - 1);
        run_png(&b, wants[size % 3], 0);
        free(b.p);
        break;
    }
    case 3: run_framed(data + 1, size - 1, run_key); break;
    case 0: {
        buf b = {0};
        buf_set(&b, data + 1, size - 1);
        run_safetensors(&b);
        free(b.p);
        break;
    }
    case 1:
        snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir_raw);
        write_bytes(p, data + 1, size - 1);
        snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir_raw);
        write_bytes(p, (const uint8_t *)"\0\0\x08\x01\0\0\0\x02\x01\x02", 10);
        snprintf(p, sizeof p, "mnist:%s", dir_raw);
        run_data(p, 0);
        break;
    default:
        snprintf(p, sizeof p, "%s/test_batch.bin.gz", dir_gz);
        write_bytes(p, data + 1, size - 1);
        snprintf(p, sizeof p, "cifar10:%s", dir_gz);
        run_data(p, 0);
        break;
    }
    if (dg_test_failures) abort();
    return 0;
}
#else
int main(int argc, char **argv) {
    int scale = argc > 1 ? atoi(argv[1]) : 1; /* `asan_fuzz_parsers 10`: ten times the mutants */
    if (scale < 1) scale = 1;
    setup_dirs();
    /* Each parser gets its own slice of the budget, counted from when it starts, so that a slow
     * machine (or a busy ctest -j) shortens every parser's run instead of starving the last. */
    struct {
        const char *name;
        void (*fuzz)(int, double, int *);
        int iterations;
        double share;
        int done;
        double seconds;
    } parsers[] = {
        {"safetensors", fuzz_safetensors, 12000, 0.16, 0, 0}, {"torch.save", fuzz_pt, 10000, 0.12, 0, 0},
        {"IDX", fuzz_idx, 4000, 0.10, 0, 0},                  {"CIFAR-10", fuzz_cifar, 1500, 0.06, 0, 0},
        {"keys", fuzz_keys, 6000, 0.06, 0, 0},                {"registries", fuzz_registry, 10000, 0.05, 0, 0},
        {"InFIP manifests", fuzz_manifest, 6000, 0.05, 0, 0}, {"InFIP calibrations", fuzz_calibration, 6000, 0.03, 0, 0},
        {"PNG", fuzz_png, 8000, 0.25, 0, 0},
        {"folder trees", fuzz_folder, 1500, 0.12, 0, 0},
    };
    double t0 = now_s();
    for (size_t i = 0; i < sizeof parsers / sizeof *parsers; i++) {
        double start = now_s();
        parsers[i].fuzz(parsers[i].iterations * scale, start + TIME_BUDGET_S * parsers[i].share * scale,
                        &parsers[i].done);
        parsers[i].seconds = now_s() - start;
    }
    remove_dirs();
    for (size_t i = 0; i < sizeof parsers / sizeof *parsers; i++)
        printf("%s: %d of %d mutants in %.1f s\n", parsers[i].name, parsers[i].done, parsers[i].iterations * scale,
               parsers[i].seconds);
    printf("accepted/rejected: safetensors %d/%d, torch.save %d/%d, IDX and CIFAR-10 %d/%d, keys %d/%d, registries "
           "%d/%d, InFIP manifests %d/%d, calibrations %d/%d, PNG %d/%d, folder loads %d/%d; %.1f s in all\n",
           st_ok, st_rejected, pt_ok, pt_rejected, data_ok, data_rejected, key_ok, key_rejected, reg_ok, reg_rejected,
           man_ok, man_rejected, cal_ok, cal_rejected, png_ok, png_rejected, folder_ok, folder_rejected, now_s() - t0);
    return dg_test_done("asan_fuzz_parsers");
}
#endif
