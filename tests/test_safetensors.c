/* tests/test_safetensors.c — host/safetensors: write→read round trips of every dtype (scalars and
 * empty tensors included), metadata, exact float conversions, writer argument errors, and one
 * hand-made malformed file per reader check. Files live in a fresh temp dir, removed at the end. */
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "host/safetensors.h"

static char tmpdir[512];
static char errbuf[1024];

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", tmpdir, name); }

static void make_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/dg_st_test_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(2);
    }
}

static void remove_tmpdir(void) {
    dg_test_empty_dir(tmpdir);
    rmdir(tmpdir);
}

static int count_dir_entries(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

/* A raw file: 8-byte length (hlen, or strlen(json) when hlen == UINT64_MAX), json, data. */
static void write_raw(const char *path, uint64_t hlen, const char *json, const void *data, size_t dlen) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    size_t jl = json ? strlen(json) : 0;
    if (hlen == UINT64_MAX) hlen = jl;
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(hlen >> (8 * i));
    fwrite(le, 1, 8, f);
    if (jl) fwrite(json, 1, jl, f);
    if (dlen) fwrite(data, 1, dlen, f);
    fclose(f);
}

static int bits_equal(float a, float b) { return memcmp(&a, &b, 4) == 0; }

/* --------------------------------------------------------------------------------------------- */

static void test_round_trip(void) {
    char path[600];
    path_in(path, sizeof path, "rt.safetensors");

    float f32[6] = {1.5f, -2.25f, 0.0f, 1e-30f, 3.4e38f, -7.0f};
    uint16_t f16[10] = {0x3C00, 0xC000, 0x3555, 0x0001, 0x7BFF, 0x7C00, 0xFC00, 0x8000, 0x03FF, 0x7E00};
    float f16_want[10] = {1.0f, -2.0f, 0.333251953125f, 5.9604644775390625e-8f, 65504.0f, INFINITY, -INFINITY, -0.0f,
                          6.097555160522461e-5f, NAN};
    uint16_t bf16[5] = {0x3F80, 0xC040, 0x3F81, 0x7F80, 0x0001};
    float bf16_want[5] = {1.0f, -3.0f, 1.0078125f, INFINITY, 0.0f};
    {
        uint32_t b = 0x00010000u; /* bf16 0x0001 = float bits 0x00010000, a float subnormal */
        memcpy(&bf16_want[4], &b, 4);
    }
    double f64[6] = {0.1, 1e300, -1e300, 3.5, (double)FLT_MAX, 1e-50};
    float f64_want[6] = {(float)0.1, INFINITY, -INFINITY, 3.5f, FLT_MAX, 0.0f};
    int64_t i64[3] = {-5, (int64_t)1 << 40, INT64_MIN};
    float i64_want[3] = {-5.0f, 1099511627776.0f, -9223372036854775808.0f};
    int32_t i32[2] = {-7, INT32_MAX};
    int16_t i16[2] = {-32768, 1234};
    int8_t i8[3] = {-128, 0, 127};
    uint8_t u8[5] = {0, 1, 128, 254, 255};
    uint8_t bl[3] = {0, 1, 2};
    float scalar = 42.5f;
    int64_t scalar_i = -3;

    dg_st_entry e[] = {
        {"w.f32", DG_ST_F32, 2, {2, 3}, f32},
        {"h.f16", DG_ST_F16, 1, {10}, f16},
        {"b.bf16", DG_ST_BF16, 2, {5, 1}, bf16},
        {"d.f64", DG_ST_F64, 3, {1, 2, 3}, f64},
        {"i.i64", DG_ST_I64, 1, {3}, i64},
        {"i.i32", DG_ST_I32, 1, {2}, i32},
        {"i.i16", DG_ST_I16, 1, {2}, i16},
        {"i.i8", DG_ST_I8, 1, {3}, i8},
        {"u.u8", DG_ST_U8, 1, {5}, u8},
        {"b.bool", DG_ST_BOOL, 1, {3}, bl},
        {"scalar", DG_ST_F32, 0, {0}, &scalar},
        {"scalar_i64", DG_ST_I64, 0, {0}, &scalar_i},
        {"empty", DG_ST_F32, 2, {0, 5}, NULL},
        {"empty_i64", DG_ST_I64, 1, {0}, NULL},
        {"ünïcode.näme", DG_ST_U8, 8, {1, 1, 1, 1, 1, 1, 1, 1}, u8},
    };
    int n = (int)(sizeof e / sizeof e[0]);
    const char *mk[] = {"format", "note", "empty"};
    const char *mv[] = {"pt", "värde \"quoted\" \\ and\nnewline", ""};
    int rc = dg_st_write(path, e, n, mk, mv, 3, errbuf, sizeof errbuf);
    CHECK(rc == 0, "write failed: %s", errbuf);
    CHECK(count_dir_entries() == 1, "temporary file left behind (%d entries)", count_dir_entries());

    /* header layout: length multiple of 8, padded with spaces, data aligned */
    FILE *fp = fopen(path, "rb");
    uint8_t le[8] = {0};
    CHECK(fp && fread(le, 1, 8, fp) == 8, "cannot reread header length");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | le[i];
    CHECK(hlen % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hlen);
    char *hdr = calloc(1, (size_t)hlen + 1);
    CHECK(hdr && fread(hdr, 1, (size_t)hlen, fp) == hlen, "cannot reread header");
    if (hdr) {
        size_t jl = strlen(hdr);
        while (jl > 0 && hdr[jl - 1] == ' ') jl--;
        CHECK(hdr[0] == '{' && hdr[jl - 1] == '}', "header does not look like one JSON object: %s", hdr);
        CHECK(strncmp(hdr, "{\"__metadata__\":{\"format\":\"pt\"", 30) == 0, "metadata not first: %.60s", hdr);
        CHECK(strstr(hdr, "\"w.f32\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}") != NULL,
              "unexpected entry text: %s", hdr);
        CHECK(strstr(hdr, "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":") != NULL,
              "scalar entry text: %s", hdr);
    }
    free(hdr);
    if (fp) fclose(fp);

    dg_st_file f;
    rc = dg_st_open(path, &f, errbuf, sizeof errbuf);
    CHECK(rc == 0, "open failed: %s", errbuf);
    if (rc != 0) return;
    CHECK(f.n_tensors == n, "n_tensors %d, want %d", f.n_tensors, n);
    CHECK(f.data_start % 8 == 0, "data_start %zu not aligned", f.data_start);
    for (int i = 0; i < n && i < f.n_tensors; i++) {
        const dg_st_tensor *t = &f.tensors[i];
        CHECK(strcmp(t->name, e[i].name) == 0, "tensor %d is '%s', want '%s' (header order kept)", i, t->name, e[i].name);
        CHECK(dg_st_find(&f, e[i].name) == i, "find('%s') = %d, want %d", e[i].name, dg_st_find(&f, e[i].name), i);
        CHECK(t->dtype == e[i].dtype, "%s: dtype %d", t->name, (int)t->dtype);
        CHECK(t->ndim == e[i].ndim, "%s: ndim %d, want %d", t->name, t->ndim, e[i].ndim);
        size_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++) {
            CHECK(t->shape[d] == e[i].shape[d], "%s: shape[%d]", t->name, d);
            numel *= (size_t)e[i].shape[d];
        }
        CHECK(t->numel == numel, "%s: numel %zu want %zu", t->name, t->numel, numel);
        CHECK(t->end - t->begin == numel * dg_st_dtype_size(t->dtype), "%s: byte span", t->name);
        if (numel && t->end - t->begin == numel * dg_st_dtype_size(t->dtype))
            CHECK(memcmp(f.bytes + f.data_start + t->begin, e[i].data, t->end - t->begin) == 0, "%s: raw bytes differ",
                  t->name);
    }
    CHECK(dg_st_find(&f, "missing") == -1, "find of a missing name");
    CHECK(dg_st_find(&f, "") == -1, "find of the empty name");
    CHECK(dg_st_meta(&f, "format") && strcmp(dg_st_meta(&f, "format"), "pt") == 0, "meta format");
    CHECK(dg_st_meta(&f, "note") && strcmp(dg_st_meta(&f, "note"), mv[1]) == 0, "meta note: %s",
          dg_st_meta(&f, "note") ? dg_st_meta(&f, "note") : "(null)");
    CHECK(dg_st_meta(&f, "empty") && dg_st_meta(&f, "empty")[0] == 0, "empty meta value");
    CHECK(dg_st_meta(&f, "absent") == NULL, "absent meta key");
    CHECK(f.n_meta == 3, "n_meta %d", f.n_meta);

    float out[16];
    struct {
        const char *name;
        size_t n;
        const float *want;
    } conv[] = {
        {"w.f32", 6, f32}, {"h.f16", 10, f16_want}, {"b.bf16", 5, bf16_want}, {"d.f64", 6, f64_want},
        {"i.i64", 3, i64_want},
    };
    for (size_t c = 0; c < sizeof conv / sizeof conv[0]; c++) {
        int idx = dg_st_find(&f, conv[c].name);
        rc = dg_st_read_f32(&f, idx, out, conv[c].n, errbuf, sizeof errbuf);
        CHECK(rc == 0, "read %s: %s", conv[c].name, errbuf);
        for (size_t k = 0; rc == 0 && k < conv[c].n; k++) {
            if (isnan(conv[c].want[k]))
                CHECK(isnan(out[k]), "%s[%zu] = %g, want nan", conv[c].name, k, out[k]);
            else
                CHECK(bits_equal(out[k], conv[c].want[k]), "%s[%zu] = %.9g, want %.9g", conv[c].name, k, out[k],
                      conv[c].want[k]);
        }
    }
    const struct {
        const char *name;
        size_t n;
        float want[5];
    } ints[] = {
        {"i.i32", 2, {-7.0f, 2147483648.0f}}, {"i.i16", 2, {-32768.0f, 1234.0f}}, {"i.i8", 3, {-128.0f, 0.0f, 127.0f}},
        {"u.u8", 5, {0, 1, 128, 254, 255}}, {"b.bool", 3, {0, 1, 1}}, {"scalar", 1, {42.5f}}, {"scalar_i64", 1, {-3.0f}},
    };
    for (size_t c = 0; c < sizeof ints / sizeof ints[0]; c++) {
        rc = dg_st_read_f32(&f, dg_st_find(&f, ints[c].name), out, ints[c].n, errbuf, sizeof errbuf);
        CHECK(rc == 0, "read %s: %s", ints[c].name, errbuf);
        for (size_t k = 0; rc == 0 && k < ints[c].n; k++)
            CHECK(out[k] == ints[c].want[k], "%s[%zu] = %.9g, want %.9g", ints[c].name, k, out[k], ints[c].want[k]);
    }
    rc = dg_st_read_f32(&f, dg_st_find(&f, "empty"), NULL, 0, errbuf, sizeof errbuf);
    CHECK(rc == 0, "read of an empty tensor: %s", errbuf);
    CHECK(f.tensors[dg_st_find(&f, "empty")].numel == 0, "empty numel");
    CHECK(f.tensors[dg_st_find(&f, "scalar")].ndim == 0 && f.tensors[dg_st_find(&f, "scalar")].numel == 1, "scalar");

    /* wrong expected size, bad index */
    rc = dg_st_read_f32(&f, 0, out, 7, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, path) && strstr(errbuf, "w.f32") && strstr(errbuf, "6 elements"),
          "numel mismatch: rc %d, '%s'", rc, errbuf);
    rc = dg_st_read_f32(&f, n, out, 1, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, path), "index out of range: rc %d, '%s'", rc, errbuf);
    rc = dg_st_read_f32(&f, -1, out, 1, errbuf, sizeof errbuf);
    CHECK(rc == -1, "index -1: rc %d", rc);
    dg_st_close(&f);
    dg_st_close(&f); /* twice is harmless */

    /* overwrite atomically with a file holding no tensors and no metadata */
    rc = dg_st_write(path, NULL, 0, NULL, NULL, 0, errbuf, sizeof errbuf);
    CHECK(rc == 0, "empty write: %s", errbuf);
    rc = dg_st_open(path, &f, errbuf, sizeof errbuf);
    CHECK(rc == 0 && f.n_tensors == 0 && f.n_meta == 0, "empty reopen: %s", errbuf);
    CHECK(dg_st_find(&f, "w.f32") == -1, "find in an empty file");
    dg_st_close(&f);
    unlink(path);
}

static void test_writer_errors(void) {
    char path[600];
    path_in(path, sizeof path, "werr.safetensors");
    float x[4] = {1, 2, 3, 4};
    struct {
        dg_st_entry e[2];
        int n;
        const char *want;
    } cases[] = {
        {{{"a", DG_ST_F32, 1, {4}, x}, {"a", DG_ST_F32, 1, {4}, x}}, 2, "twice"},
        {{{"__metadata__", DG_ST_F32, 1, {4}, x}}, 1, "__metadata__"},
        {{{"", DG_ST_F32, 1, {4}, x}}, 1, "no name"},
        {{{NULL, DG_ST_F32, 1, {4}, x}}, 1, "no name"},
        {{{"a", DG_ST_F32, 9, {1, 1, 1, 1, 1, 1, 1, 1}, x}}, 1, "dims"},
        {{{"a", DG_ST_F32, -1, {4}, x}}, 1, "dims"},
        {{{"a", DG_ST_F32, 1, {-4}, x}}, 1, "shape"},
        {{{"a", DG_ST_F32, 1, {4}, NULL}}, 1, "no data"},
        {{{"a", (dg_st_dtype)99, 1, {4}, x}}, 1, "dtype"},
        {{{"bad\xff", DG_ST_F32, 1, {4}, x}}, 1, "UTF-8"},
        {{{"a", DG_ST_U8, 3, {INT64_MAX / 2, 4, 4}, x}}, 1, "shape"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        errbuf[0] = 0;
        int rc = dg_st_write(path, cases[c].e, cases[c].n, NULL, NULL, 0, errbuf, sizeof errbuf);
        CHECK(rc == -1 && strstr(errbuf, path) && strstr(errbuf, cases[c].want), "writer case %zu: rc %d, '%s'", c, rc,
              errbuf);
    }
    const char *k2[] = {"k", "k"}, *v2[] = {"1", "2"};
    int rc = dg_st_write(path, NULL, 0, k2, v2, 2, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, "twice"), "duplicate meta key: rc %d '%s'", rc, errbuf);
    const char *ku[] = {"k"}, *vu[] = {"\xc3"};
    rc = dg_st_write(path, NULL, 0, ku, vu, 1, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, "UTF-8"), "invalid UTF-8 meta value: rc %d '%s'", rc, errbuf);
    rc = dg_st_write(path, NULL, -1, NULL, NULL, 0, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, path), "negative count: rc %d '%s'", rc, errbuf);
    CHECK(strcmp(dg_st_dtype_name(DG_ST_BF16), "BF16") == 0 && strcmp(dg_st_dtype_name((dg_st_dtype)42), "?") == 0 &&
              dg_st_dtype_size(DG_ST_I16) == 2 && dg_st_dtype_size((dg_st_dtype)-1) == 0,
          "dtype name/size helpers");
    const char *kn[] = {"k"}, *vn[] = {NULL};
    rc = dg_st_write(path, NULL, 0, kn, vn, 1, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, "NULL"), "NULL meta value: rc %d '%s'", rc, errbuf);
    char bad[700];
    path_in(bad, sizeof bad, "no/such/dir/x.safetensors");
    dg_st_entry ok = {"a", DG_ST_F32, 1, {4}, x};
    rc = dg_st_write(bad, &ok, 1, NULL, NULL, 0, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, bad), "unwritable path: rc %d '%s'", rc, errbuf);
    /* a directory in the way of the rename: error, temp file removed */
    char dirpath[700];
    path_in(dirpath, sizeof dirpath, "adir");
    mkdir(dirpath, 0755);
    char inner[800];
    snprintf(inner, sizeof inner, "%s/f", dirpath);
    FILE *fp = fopen(inner, "w");
    if (fp) fclose(fp);
    int before = count_dir_entries();
    rc = dg_st_write(dirpath, &ok, 1, NULL, NULL, 0, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, dirpath) && strstr(errbuf, "rename"), "rename onto a directory: rc %d '%s'", rc,
          errbuf);
    CHECK(count_dir_entries() == before, "temporary file left after a failed rename");
    unlink(inner);
    rmdir(dirpath);
    CHECK(count_dir_entries() == 0, "writer errors left files behind (%d)", count_dir_entries());
}

/* --------------------------------------------------------------------------------------------- */

static void expect_bad(const char *label, uint64_t hlen, const char *json, const void *data, size_t dlen,
                       const char *want) {
    char path[600];
    path_in(path, sizeof path, "bad.safetensors");
    write_raw(path, hlen, json, data, dlen);
    dg_st_file f;
    errbuf[0] = 0;
    int rc = dg_st_open(path, &f, errbuf, sizeof errbuf);
    CHECK(rc == -1, "%s: accepted", label);
    if (getenv("DG_TEST_VERBOSE")) printf("%-24s %s\n", label, errbuf);
    CHECK(strncmp(errbuf, path, strlen(path)) == 0 && errbuf[strlen(path)] == ':', "%s: message lacks the path: '%s'",
          label, errbuf);
    CHECK(strstr(errbuf, want) != NULL, "%s: message '%s' lacks '%s'", label, errbuf, want);
    CHECK(f.tensors == NULL && f.bytes == NULL && f.n_tensors == 0, "%s: struct not cleared", label);
    dg_st_close(&f);
    unlink(path);
}

static void expect_good(const char *label, uint64_t hlen, const char *json, const void *data, size_t dlen, int n_tensors) {
    char path[600];
    path_in(path, sizeof path, "good.safetensors");
    write_raw(path, hlen, json, data, dlen);
    dg_st_file f;
    int rc = dg_st_open(path, &f, errbuf, sizeof errbuf);
    CHECK(rc == 0, "%s: rejected: %s", label, errbuf);
    if (rc == 0) CHECK(f.n_tensors == n_tensors, "%s: %d tensors, want %d", label, f.n_tensors, n_tensors);
    dg_st_close(&f);
    unlink(path);
}

static void test_malformed(void) {
    uint8_t data[64] = {0};
    const uint64_t L = UINT64_MAX; /* "length of the json" */
    char path[600];

    /* too short / empty */
    path_in(path, sizeof path, "short.safetensors");
    FILE *fp = fopen(path, "wb");
    fwrite("abcde", 1, 5, fp);
    fclose(fp);
    dg_st_file f;
    int rc = dg_st_open(path, &f, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, path) && strstr(errbuf, "shorter"), "5-byte file: '%s'", errbuf);
    fp = fopen(path, "wb");
    fclose(fp);
    rc = dg_st_open(path, &f, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, path) && strstr(errbuf, "shorter"), "empty file: '%s'", errbuf);
    unlink(path);

    /* missing file, directory */
    path_in(path, sizeof path, "does-not-exist.safetensors");
    rc = dg_st_open(path, &f, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, path) && strstr(errbuf, "cannot open"), "missing file: '%s'", errbuf);
    rc = dg_st_open(tmpdir, &f, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, tmpdir) && strstr(errbuf, "regular"), "directory: '%s'", errbuf);

    expect_bad("header longer than file", 1000, "{}", NULL, 0, "larger than the rest");
    expect_bad("absurd header", 200000000ull, "{}", NULL, 0, "absurd");
    expect_bad("huge header", UINT64_MAX - 1, "{}", NULL, 0, "absurd");
    expect_bad("zero header", 0, "", NULL, 0, "cannot hold");
    expect_bad("not json", L, "{abc", NULL, 0, "not valid JSON");
    expect_bad("truncated json", L, "{\"a\":{\"dtype\":\"F32\"", NULL, 0, "not valid JSON");
    expect_bad("array", L, "[1, 2]  ", NULL, 0, "not a JSON object");
    expect_bad("string", L, "\"x\"", NULL, 0, "not a JSON object");
    expect_bad("trailing", L, "{} x", NULL, 0, "trailing");
    expect_bad("two objects", L, "{}{}", NULL, 0, "trailing");
    expect_bad("bad utf8", L, "{\"\xc3\x28\":{}}", NULL, 0, "UTF-8");
    expect_bad("overlong utf8", L, "{\"\xc0\xaf\":{}}", NULL, 0, "UTF-8");
    {
        char nul[] = "{\"a\":1}";
        char path2[600];
        path_in(path2, sizeof path2, "bad.safetensors");
        nul[3] = 0; /* {"a\0:1} — write by hand since write_raw uses strlen */
        fp = fopen(path2, "wb");
        uint8_t le[8] = {7, 0, 0, 0, 0, 0, 0, 0};
        fwrite(le, 1, 8, fp);
        fwrite(nul, 1, 7, fp);
        fclose(fp);
        rc = dg_st_open(path2, &f, errbuf, sizeof errbuf);
        CHECK(rc == -1 && strstr(errbuf, path2) && strstr(errbuf, "NUL"), "NUL in header: '%s'", errbuf);
        unlink(path2);
    }
    {
        /* nesting far beyond cJSON's limit must fail cleanly, not blow the stack */
        size_t depth = 200000;
        char *deep = malloc(2 * depth + 8);
        size_t k = 0;
        deep[k++] = '{';
        deep[k++] = '"';
        deep[k++] = 'a';
        deep[k++] = '"';
        deep[k++] = ':';
        for (size_t i = 0; i < depth; i++) deep[k++] = '[';
        deep[k] = 0;
        expect_bad("deep nesting", L, deep, NULL, 0, "not valid JSON");
        free(deep);
    }
    expect_bad("entry not object", L, "{\"a\":5}", NULL, 0, "not an object");
    expect_bad("no dtype", L, "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", data, 4, "no 'dtype'");
    expect_bad("no shape", L, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", data, 4, "no 'shape'");
    expect_bad("no offsets", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", data, 4, "no 'data_offsets'");
    expect_bad("dtype twice", L, "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
               data, 4, "twice");
    expect_bad("dtype number", L, "{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", data, 4,
               "dtype is a number");
    expect_bad("unknown dtype", L, "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", data, 1,
               "unknown");
    expect_bad("lowercase dtype", L, "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", data, 4,
               "unknown");
    expect_bad("shape string", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", data, 4,
               "shape is a string");
    expect_bad("shape elem string", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", data, 4,
               "shape[0]");
    expect_bad("negative dim", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}", data, 4,
               "shape[1]");
    expect_bad("fractional dim", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", data, 4,
               "shape[0]");
    expect_bad("huge dim", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", data, 4,
               "shape[0]");
    expect_bad("9 dims", L, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", data, 1,
               "9 dims");
    expect_bad("numel overflow", L,
               "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}", data, 0,
               "overflow");
    expect_bad("bytes overflow", L,
               "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],\"data_offsets\":[0,0]}}", data, 0,
               "overflow");
    expect_bad("offsets string", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", data, 4,
               "data_offsets");
    expect_bad("offsets 3", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", data, 8,
               "two integers");
    expect_bad("offsets fraction", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", data, 8,
               "not non-negative integers");
    expect_bad("offsets negative", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", data, 8,
               "not non-negative integers");
    expect_bad("begin > end", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", data, 8, "begin 8 > end 4");
    expect_bad("end beyond", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 12, "beyond");
    expect_bad("end beyond huge", L, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9007199254740991,9007199254740992]}}",
               data, 12, "beyond");
    expect_bad("size mismatch", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", data, 16,
               "12 data bytes");
    expect_bad("scalar size", L, "{\"a\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,4]}}", data, 8, "data bytes");
    expect_bad("duplicate name", L,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               data, 8, "appears twice");
    expect_bad("overlap", L,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               data, 12, "overlap");
    expect_bad("same span", L,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
               data, 4, "overlap");
    {
        /* a hostile name: long, with terminal escapes; the message shows it escaped and cut */
        char j[600];
        snprintf(j, sizeof j, "{\"%s\\u001b[31m%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
        expect_bad("hostile name", L, j, data, 8, "aaaa\\x1b[31mbbbb");
        CHECK(strstr(errbuf, "...") != NULL && strchr(errbuf, 0x1b) == NULL, "long name not cut/escaped: %s", errbuf);
    }
    /* the tensors must cover the data exactly, as the reference's InvalidOffset and
     * MetadataIncompleteBuffer require: no gap, no bytes before the first or after the last */
    expect_bad("gap", L,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
               data, 12, "bytes 4 to 8 of the data, before tensor 'b', belong to no tensor");
    expect_bad("leading gap", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", data, 8,
               "bytes 0 to 4 of the data, before tensor 'a'");
    expect_bad("trailing data", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", data, 5,
               "the data's last 1 bytes (from byte 4) belong to no tensor");
    expect_bad("data, no tensors", L, "{}", data, 16, "the data's last 16 bytes (from byte 0)");
    expect_bad("empty tensor out of place", L,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
               data, 8, "tensors 'a' and 'e' overlap");
    expect_bad("empty tensor past the end", L,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}",
               data, 8, "bytes 4 to 8 of the data, before tensor 'e'");
    expect_bad("meta number", L, "{\"__metadata__\":{\"k\":1}}", NULL, 0, "not a string");
    expect_bad("meta not object", L, "{\"__metadata__\":[\"k\"]}", NULL, 0, "not an object");
    expect_bad("meta twice", L, "{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0, "__metadata__ appears twice");
    expect_bad("meta key twice", L, "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", NULL, 0, "twice");

    /* accepted oddities */
    expect_good("empty object", L, "{}", NULL, 0, 0);
    expect_good("padded", L, "{}      ", NULL, 0, 0);
    expect_good("meta null", L, "{\"__metadata__\":null}", NULL, 0, 0);
    expect_good("unknown key", L, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":[1]}}", data,
                4, 1);
    expect_good("leading whitespace", L, "\t\n {}\r ", NULL, 0, 0); /* the reference reads it (a writer may pad) */
    expect_good("empty tensors in place", L,
                "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                "\"z\":{\"dtype\":\"U8\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                "\"a\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                data, 8, 4);
    expect_good("integer as 4.0 and 1e1", L, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1e1],\"data_offsets\":[0,10.0]}}", data, 10,
                1);
}

int main(void) {
    make_tmpdir();
    test_round_trip();
    test_writer_errors();
    test_malformed();
    remove_tmpdir();
    return dg_test_done("test_safetensors");
}
