/* tests/test_data.c — host/data: the real MNIST and CIFAR-10 test split from $DG_SHARED_DATA
 * (counts, first labels, per-class counts, pixel statistics), Fashion-MNIST when installed, the
 * synthetic set, subsets, and one hand-made bad file per loader check (in a temp dir). */
#include <dirent.h>
#include <limits.h>
#include <math.h>
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
#include "host/error.h"

static char tmpdir[512];
static char errbuf[2048];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void write_file(const char *name, const uint8_t *data, size_t len, int gz) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s%s", tmpdir, name, gz ? ".gz" : "");
    if (gz) {
        gzFile g = gzopen(p, "wb");
        if (!g || (len && gzwrite(g, data, (unsigned)len) != (int)len) || gzclose(g) != Z_OK) {
            fprintf(stderr, "cannot write %s\n", p);
            exit(2);
        }
    } else {
        FILE *f = fopen(p, "wb");
        if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
            fprintf(stderr, "cannot write %s\n", p);
            exit(2);
        }
    }
}

static uint8_t *read_file(const char *name, size_t *len) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* A small IDX pair: n images of h×w (pixel = (i*7 + k) & 255), labels i % 10. */
typedef struct {
    uint8_t img[16 + 64 * 8 * 8 + 64];
    size_t img_len;
    uint8_t lab[8 + 64 + 8];
    size_t lab_len;
} idx_pair;

static void make_idx(idx_pair *p, int n, int h, int w) {
    put_be32(p->img, 0x803);
    put_be32(p->img + 4, (uint32_t)n);
    put_be32(p->img + 8, (uint32_t)h);
    put_be32(p->img + 12, (uint32_t)w);
    for (int i = 0; i < n * h * w; i++) p->img[16 + i] = (uint8_t)((i / (h * w)) * 7 + i % (h * w));
    p->img_len = 16 + (size_t)n * h * w;
    put_be32(p->lab, 0x801);
    put_be32(p->lab + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) p->lab[8 + i] = (uint8_t)(i % 10);
    p->lab_len = 8 + (size_t)n;
}

static void write_idx(const idx_pair *p, int train, int gz) {
    write_file(train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte", p->img, p->img_len, gz);
    write_file(train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte", p->lab, p->lab_len, gz);
}

/* Load "mnist:<tmpdir>" and expect failure naming `file` (a name inside tmpdir) and `what`. */
static void expect_fail(const char *label, const char *kind, int train, const char *file, const char *what) {
    char spec[700];
    snprintf(spec, sizeof spec, "%s:%s", kind, tmpdir);
    dg_dataset d;
    errbuf[0] = 0;
    int rc = dg_data_load(spec, train, &d, errbuf, sizeof errbuf);
    char want_file[1024];
    snprintf(want_file, sizeof want_file, "%s/%s", tmpdir, file);
    CHECK(rc == -1, "%s: accepted", label);
    CHECK(strncmp(errbuf, want_file, strlen(want_file)) == 0, "%s: message does not start with %s: '%s'", label,
          want_file, errbuf);
    CHECK(strstr(errbuf, what) != NULL, "%s: message '%s' lacks '%s'", label, errbuf, what);
    CHECK(d.images == NULL && d.labels == NULL && d.n == 0, "%s: struct not cleared", label);
    if (getenv("DG_TEST_VERBOSE")) printf("%-28s %s\n", label, errbuf);
    dg_data_free(&d);
}

static void test_bad_idx(void) {
    idx_pair good, p;
    make_idx(&good, 12, 5, 6);

    /* sanity: the good pair loads, raw and gzip'd */
    for (int gz = 0; gz < 2; gz++) {
        dg_test_empty_dir(tmpdir);
        write_idx(&good, 0, gz);
        char spec[700];
        snprintf(spec, sizeof spec, "mnist:%s", tmpdir);
        dg_dataset d;
        int rc = dg_data_load(spec, 0, &d, errbuf, sizeof errbuf);
        CHECK(rc == 0, "good small IDX (gz=%d): %s", gz, errbuf);
        if (rc == 0) {
            CHECK(d.n == 12 && d.c == 1 && d.h == 5 && d.w == 6 && d.classes == 10, "dims %d %d %d %d", d.n, d.c, d.h, d.w);
            CHECK(memcmp(d.images, good.img + 16, 12 * 30) == 0, "pixels differ");
            CHECK(d.labels[11] == 1, "label 11");
            float img[30];
            dg_data_image_f32(&d, 3, img);
            float want = ((float)good.img[16 + 3 * 30 + 4] / 255.0f - 0.1307f) / 0.3081f;
            CHECK(fabsf(img[4] - want) < 1e-5f, "normalised pixel %g want %g", img[4], want);
            dg_data_image_f32(&d, 12, img);
            CHECK(img[0] == 0.0f && img[29] == 0.0f, "out-of-range image index not zero-filled");
        }
        dg_data_free(&d);
    }

    dg_test_empty_dir(tmpdir);
    p = good;
    p.img[3] = 0x02;
    write_idx(&p, 0, 0);
    expect_fail("image magic", "mnist", 0, "t10k-images-idx3-ubyte", "bad magic 0x00000802");
    dg_test_empty_dir(tmpdir);
    p = good;
    p.lab[2] = 0x09;
    write_idx(&p, 0, 1);
    expect_fail("label magic (gz)", "mnist", 0, "t10k-labels-idx1-ubyte.gz", "bad magic");
    dg_test_empty_dir(tmpdir);
    p = good;
    p.img_len -= 7;
    write_idx(&p, 0, 0);
    expect_fail("truncated images", "mnist", 0, "t10k-images-idx3-ubyte", "truncated");
    dg_test_empty_dir(tmpdir);
    p = good;
    p.img_len -= 1;
    write_idx(&p, 0, 1);
    expect_fail("truncated images (gz)", "mnist", 0, "t10k-images-idx3-ubyte.gz", "truncated");
    dg_test_empty_dir(tmpdir);
    p = good;
    p.img_len = 10;
    write_idx(&p, 0, 0);
    expect_fail("short header", "mnist", 0, "t10k-images-idx3-ubyte", "too short");
    dg_test_empty_dir(tmpdir);
    p = good;
    p.img[p.img_len++] = 0;
    write_idx(&p, 0, 0);
    expect_fail("extra image bytes", "mnist", 0, "t10k-images-idx3-ubyte", "longer than");
    dg_test_empty_dir(tmpdir);
    p = good;
    p.lab[p.lab_len++] = 0;
    write_idx(&p, 0, 1);
    expect_fail("extra label bytes (gz)", "mnist", 0, "t10k-labels-idx1-ubyte.gz", "longer than");
    dg_test_empty_dir(tmpdir);
    p = good;
    p.lab[8 + 5] = 10;
    write_idx(&p, 1, 0);
    expect_fail("label out of range", "mnist", 1, "train-labels-idx1-ubyte", "label 10 at index 5");
    dg_test_empty_dir(tmpdir);
    p = good;
    put_be32(p.lab + 4, 11);
    p.lab_len--;
    write_idx(&p, 0, 0);
    expect_fail("count mismatch", "mnist", 0, "t10k-labels-idx1-ubyte", "11 labels");
    dg_test_empty_dir(tmpdir);
    p = good;
    put_be32(p.img + 8, 5000);
    write_idx(&p, 0, 0);
    expect_fail("image too tall", "fashion-mnist", 0, "t10k-images-idx3-ubyte", "out of range");
    dg_test_empty_dir(tmpdir);
    p = good;
    put_be32(p.img + 4, 0);
    write_idx(&p, 0, 0);
    expect_fail("zero images", "mnist", 0, "t10k-images-idx3-ubyte", "count 0");
    dg_test_empty_dir(tmpdir);
    p = good;
    put_be32(p.img + 4, 0xffffffffu);
    write_idx(&p, 0, 0);
    expect_fail("absurd count", "mnist", 0, "t10k-images-idx3-ubyte", "out of range");
    dg_test_empty_dir(tmpdir);
    p = good;
    put_be32(p.img + 4, 256); /* announces 4 GiB, holds 360 bytes: no giant allocation */
    put_be32(p.img + 8, 4096);
    put_be32(p.img + 12, 4096);
    write_idx(&p, 0, 1);
    expect_fail("lying count (gz)", "mnist", 0, "t10k-images-idx3-ubyte.gz", "truncated");
    dg_test_empty_dir(tmpdir);
    put_be32(p.img + 4, 0x7fffffffu); /* 3.6e16 bytes: past the bound, refused before any reading */
    write_idx(&p, 0, 1);
    expect_fail("count past the byte bound", "mnist", 0, "t10k-images-idx3-ubyte.gz", "pixel bytes an IDX set may hold");

    /* a test split of another image size than the training split's is refused where it is loaded for
     * that training split (its images would not fit the net's input) */
    dg_test_empty_dir(tmpdir);
    write_idx(&good, 1, 0);
    make_idx(&p, 12, 4, 6);
    write_idx(&p, 0, 0);
    {
        char spec[700];
        snprintf(spec, sizeof spec, "mnist:%s", tmpdir);
        dg_dataset tr, te;
        CHECK(dg_data_load(spec, 1, &tr, errbuf, sizeof errbuf) == 0, "train split 5x6: %s", errbuf);
        int rc = dg_data_load_test(spec, &tr, &te, errbuf, sizeof errbuf);
        CHECK(rc == -1 && strstr(errbuf, "1x4x6 with 10 classes, the training split's 1x5x6") && te.images == NULL,
              "a 4x6 test split for a 5x6 training split: rc %d '%s'", rc, errbuf);
        dg_data_free(&tr);
        dg_data_free(&te);
    }

    /* missing files */
    dg_test_empty_dir(tmpdir);
    write_file("t10k-images-idx3-ubyte", good.img, good.img_len, 0);
    expect_fail("missing labels", "mnist", 0, "t10k-labels-idx1-ubyte[.gz]", "no such file");
    dg_test_empty_dir(tmpdir);
    expect_fail("missing images", "mnist", 1, "train-images-idx3-ubyte[.gz]", "no such file");

    /* corrupt gzip: a flipped byte in the deflate data, a cut stream, a .gz that is not gzip */
    dg_test_empty_dir(tmpdir);
    write_idx(&good, 0, 1);
    size_t len;
    uint8_t *gzb = read_file("t10k-images-idx3-ubyte.gz", &len);
    CHECK(gzb && len > 30, "reading back the gz");
    if (gzb && len > 30) {
        uint8_t *copy = malloc(len);
        int failures_seen = 0;
        /* every single-byte corruption after the gzip header must be caught (deflate error or CRC) */
        for (size_t k = 10; k < len; k++) {
            memcpy(copy, gzb, len);
            copy[k] ^= 0x55;
            write_file("t10k-images-idx3-ubyte.gz", copy, len, 0);
            char spec[700];
            snprintf(spec, sizeof spec, "mnist:%s", tmpdir);
            dg_dataset d;
            int rc = dg_data_load(spec, 0, &d, errbuf, sizeof errbuf);
            if (rc == 0) {
                CHECK(0, "corrupt gzip byte %zu accepted", k);
            } else {
                failures_seen++;
                CHECK(strstr(errbuf, "t10k-images-idx3-ubyte.gz") != NULL, "corrupt gzip byte %zu: '%s'", k, errbuf);
            }
            dg_data_free(&d);
        }
        CHECK(failures_seen == (int)(len - 10), "corruptions caught %d of %zu", failures_seen, len - 10);
        memcpy(copy, gzb, len);
        copy[len / 2] ^= 0xff;
        write_file("t10k-images-idx3-ubyte.gz", copy, len, 0);
        expect_fail("corrupt gzip", "mnist", 0, "t10k-images-idx3-ubyte.gz", "gzip");
        write_file("t10k-images-idx3-ubyte.gz", gzb, len - 6, 0);
        expect_fail("cut gzip", "mnist", 0, "t10k-images-idx3-ubyte.gz", "gzip stream ends early");
        write_file("t10k-images-idx3-ubyte.gz", gzb, 15, 0);
        expect_fail("cut gzip header", "mnist", 0, "t10k-images-idx3-ubyte.gz", "");
        free(copy);
    }
    free(gzb);
    write_file("t10k-images-idx3-ubyte.gz", good.img, good.img_len, 0); /* raw bytes under a .gz name */
    expect_fail("gz name, not gzip", "mnist", 0, "t10k-images-idx3-ubyte.gz", "not in gzip format");
    dg_test_empty_dir(tmpdir);

    /* a directory where the file should be */
    char sub[700];
    snprintf(sub, sizeof sub, "%s/t10k-images-idx3-ubyte", tmpdir);
    mkdir(sub, 0700);
    expect_fail("directory", "mnist", 0, "t10k-images-idx3-ubyte", "not a regular file");
    rmdir(sub);
}

/* Damage deep inside a real 1.6 MB gzip stream (past zlib's first buffer): a flipped byte and a
 * cut file must both be errors, not short or wrong data. */
static void test_damaged_real_gzip(const char *shared) {
    char p[1024];
    snprintf(p, sizeof p, "%s/mnist/t10k-images-idx3-ubyte.gz", shared);
    FILE *f = fopen(p, "rb");
    CHECK(f != NULL, "cannot open %s", p);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *gz = malloc((size_t)n);
    size_t len = fread(gz, 1, (size_t)n, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/mnist/t10k-labels-idx1-ubyte.gz", shared);
    f = fopen(p, "rb");
    uint8_t lab[8192];
    size_t lab_len = f ? fread(lab, 1, sizeof lab, f) : 0;
    if (f) fclose(f);
    dg_test_empty_dir(tmpdir);
    write_file("t10k-labels-idx1-ubyte.gz", lab, lab_len, 0);
    write_file("t10k-images-idx3-ubyte.gz", gz, len, 0);
    char spec[700];
    snprintf(spec, sizeof spec, "mnist:%s", tmpdir);
    dg_dataset d;
    int rc = dg_data_load(spec, 0, &d, errbuf, sizeof errbuf);
    CHECK(rc == 0 && d.n == 10000, "copied MNIST test set: %s", errbuf);
    dg_data_free(&d);
    const double where[3] = {0.3, 0.6, 0.999};
    for (int k = 0; k < 3; k++) {
        size_t at = (size_t)(where[k] * (double)len);
        gz[at] ^= 0x10;
        write_file("t10k-images-idx3-ubyte.gz", gz, len, 0);
        expect_fail("flipped byte deep in a gzip", "mnist", 0, "t10k-images-idx3-ubyte.gz", "gzip");
        gz[at] ^= 0x10;
    }
    write_file("t10k-images-idx3-ubyte.gz", gz, len * 6 / 10, 0);
    expect_fail("real gzip cut at 60%", "mnist", 0, "t10k-images-idx3-ubyte.gz", "gzip stream ends early");
    write_file("t10k-images-idx3-ubyte.gz", gz, len - 4, 0); /* the length field of the trailer cut */
    expect_fail("real gzip without ISIZE", "mnist", 0, "t10k-images-idx3-ubyte.gz", "gzip");
    dg_test_empty_dir(tmpdir);
    free(gz);
}

static void test_bad_cifar(void) {
    enum { R = 3073 };
    uint8_t *rec = calloc(4, R + 1);
    for (int r = 0; r < 4; r++) {
        rec[(size_t)r * R] = (uint8_t)(r * 3 % 10);
        for (int k = 1; k < R; k++) rec[(size_t)r * R + k] = (uint8_t)(r + k);
    }
    char spec[700];
    snprintf(spec, sizeof spec, "cifar10:%s", tmpdir);
    for (int gz = 0; gz < 2; gz++) {
        dg_test_empty_dir(tmpdir);
        write_file("test_batch.bin", rec, 3 * R, gz);
        dg_dataset d;
        int rc = dg_data_load(spec, 0, &d, errbuf, sizeof errbuf);
        CHECK(rc == 0, "small CIFAR (gz=%d): %s", gz, errbuf);
        if (rc == 0) {
            CHECK(d.n == 3 && d.c == 3 && d.h == 32 && d.w == 32 && d.classes == 10, "cifar dims");
            CHECK(d.labels[2] == 6 && d.images[2 * 3072 + 5] == (uint8_t)(2 + 6), "cifar record layout");
        }
        dg_data_free(&d);
    }
    dg_test_empty_dir(tmpdir);
    write_file("test_batch.bin", rec, 3 * R - 1, 1);
    expect_fail("cifar short", "cifar10", 0, "test_batch.bin.gz", "multiple");
    dg_test_empty_dir(tmpdir);
    write_file("test_batch.bin", rec, 3 * R + 1, 0);
    expect_fail("cifar extra", "cifar10", 0, "test_batch.bin", "multiple");
    dg_test_empty_dir(tmpdir);
    write_file("test_batch.bin", rec, 0, 0);
    expect_fail("cifar empty", "cifar10", 0, "test_batch.bin", "0 bytes");
    dg_test_empty_dir(tmpdir);
    rec[(size_t)1 * R] = 10;
    write_file("test_batch.bin", rec, 3 * R, 0);
    expect_fail("cifar label", "cifar10", 0, "test_batch.bin", "label 10 of record 1");
    rec[(size_t)1 * R] = 3;
    dg_test_empty_dir(tmpdir);
    write_file("data_batch_1.bin", rec, 3 * R, 0);
    write_file("data_batch_2.bin", rec, 3 * R, 1);
    expect_fail("cifar train missing batch", "cifar10", 1, "data_batch_3.bin[.gz]", "no such file");
    write_file("data_batch_3.bin", rec, 3 * R, 0);
    write_file("data_batch_4.bin", rec, 2 * R, 0);
    write_file("data_batch_5.bin", rec, 4 * R, 1);
    dg_dataset d;
    int rc = dg_data_load(spec, 1, &d, errbuf, sizeof errbuf);
    CHECK(rc == 0 && d.n == 3 + 3 + 3 + 2 + 4, "cifar train of 5 small batches: rc %d n %d %s", rc, d.n, errbuf);
    if (rc == 0) CHECK(d.labels[11] == 0 && d.labels[14] == 9, "cifar concatenation order");
    dg_data_free(&d);
    dg_test_empty_dir(tmpdir);
    free(rec);
}

static void test_specs_and_synthetic(void) {
    dg_dataset d, e;
    const char *bad[] = {"imagenet:/x", "mnist", "mnist:", "cifar10", "synthetic", "synthetic:", "synthetic:3,32,32",
                         "synthetic:4,32,32,10", "synthetic:0,32,32,10", "synthetic:3,32,32,100001", "synthetic:3,32,32,10,0",
                         "synthetic:3,32,x,10", "synthetic:3,32,32,10,5,6", "synthetic:3,-32,32,10",
                         "synthetic:3,4097,32,10", "synthetic:3,32,32,10,99999999999", "synthetic:3,4096,4096,10,1000",
                         "", "synthetic:3,32,32,10,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errbuf[0] = 0;
        int rc = dg_data_load(bad[i], 1, &d, errbuf, sizeof errbuf);
        CHECK(rc == -1 && strncmp(errbuf, bad[i], strlen(bad[i])) == 0 && strlen(errbuf) > strlen(bad[i]) + 2,
              "spec '%s': rc %d '%s'", bad[i], rc, errbuf);
        if (getenv("DG_TEST_VERBOSE")) printf("%-28s %s\n", bad[i], errbuf);
        dg_data_free(&d);
    }
    int rc = dg_data_load(NULL, 1, &d, errbuf, sizeof errbuf);
    CHECK(rc == -1, "NULL spec");

    rc = dg_data_load("synthetic:3,224,224,1000", 1, &d, errbuf, sizeof errbuf);
    CHECK(rc == 0, "synthetic: %s", errbuf);
    if (rc == 0) {
        CHECK(d.n == 256 && d.c == 3 && d.h == 224 && d.w == 224 && d.classes == 1000, "synthetic dims");
        CHECK(strcmp(d.name, "synthetic") == 0, "name %s", d.name);
        CHECK(d.labels[255] == 255 && d.labels[7] == 7 && d.mean[2] == 0.5f && d.std[1] == 0.25f, "synthetic labels/norm");
        double s = 0;
        size_t bytes = (size_t)d.n * 3 * 224 * 224;
        for (size_t k = 0; k < bytes; k++) s += d.images[k];
        CHECK(fabs(s / (double)bytes - 127.5) < 0.5, "synthetic pixel mean %g", s / (double)bytes);
    }
    rc = dg_data_load("synthetic:3,224,224,1000", 1, &e, errbuf, sizeof errbuf);
    CHECK(rc == 0 && memcmp(d.images, e.images, (size_t)256 * 3 * 224 * 224) == 0, "synthetic not deterministic");
    dg_data_free(&e);
    rc = dg_data_load("synthetic:3,224,224,1000", 0, &e, errbuf, sizeof errbuf);
    CHECK(rc == 0 && memcmp(d.images, e.images, 3 * 224 * 224) != 0, "synthetic test split equals train split");
    dg_data_free(&e);
    dg_data_free(&d);
    /* N given; K > 256: labels go on past 255 (they are int32) */
    rc = dg_data_load("synthetic:1,7,5,1000,1000", 1, &d, errbuf, sizeof errbuf);
    CHECK(rc == 0 && d.n == 1000 && d.classes == 1000 && d.labels[999] == 999 && d.labels[256] == 256 && d.c == 1,
          "synthetic with N: %s", errbuf);
    dg_data_free(&d);
    dg_data_free(&d);
    rc = dg_data_load("synthetic:1,2,2,100000,100001", 1, &d, errbuf, sizeof errbuf);
    CHECK(rc == 0 && d.classes == 100000 && d.labels[99999] == 99999 && d.labels[100000] == 0, "synthetic K=1e5: %s",
          errbuf);
    dg_data_free(&d);
    rc = dg_data_load("synthetic:1,3,3,2,3", 0, &d, errbuf, sizeof errbuf); /* 27 bytes: a partial last word */
    CHECK(rc == 0 && d.n == 3 && d.labels[2] == 0, "synthetic 27 bytes: %s", errbuf);
    dg_data_free(&d);
    rc = dg_data_load("synthetic:2,3,4,7,50", 0, &d, errbuf, sizeof errbuf);
    CHECK(rc == 0 && d.n == 50 && d.classes == 7 && d.labels[49] == 49 % 7 && d.c == 2, "synthetic K=7: %s", errbuf);
    dg_data_free(&d);
}

static void test_subset(void) {
    /* a hand-built set where every image names its original index */
    dg_dataset d;
    memset(&d, 0, sizeof d);
    int n = 1000;
    d.n = n;
    d.c = 1;
    d.h = 1;
    d.w = 2;
    d.classes = 10;
    d.images = malloc((size_t)n * 2);
    d.labels = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) {
        d.images[2 * i] = (uint8_t)(i & 255);
        d.images[2 * i + 1] = (uint8_t)(i >> 8);
        d.labels[i] = i % 10;
    }
    dg_dataset a = d;
    a.images = malloc((size_t)n * 2);
    a.labels = malloc(sizeof(int32_t) * (size_t)n);
    memcpy(a.images, d.images, (size_t)n * 2);
    memcpy(a.labels, d.labels, sizeof(int32_t) * (size_t)n);
    dg_dataset b = a;
    b.images = malloc((size_t)n * 2);
    b.labels = malloc(sizeof(int32_t) * (size_t)n);
    memcpy(b.images, d.images, (size_t)n * 2);
    memcpy(b.labels, d.labels, sizeof(int32_t) * (size_t)n);

    int rc = dg_data_subset(&d, 100, 42, errbuf, sizeof errbuf);
    CHECK(rc == 0 && d.n == 100, "subset: %s", errbuf);
    rc = dg_data_subset(&a, 100, 42, errbuf, sizeof errbuf);
    CHECK(rc == 0 && memcmp(a.images, d.images, 200) == 0 && memcmp(a.labels, d.labels, sizeof(int32_t) * 100) == 0,
          "same seed, different subset");
    rc = dg_data_subset(&b, 100, 43, errbuf, sizeof errbuf);
    CHECK(rc == 0 && memcmp(b.images, d.images, 200) != 0, "different seed, same subset");
    char seen[1000] = {0};
    int dup = 0, mismatched = 0, low = 0;
    for (int i = 0; i < 100; i++) {
        int idx = d.images[2 * i] | (d.images[2 * i + 1] << 8);
        if (idx >= n || seen[idx]) dup++;
        else seen[idx] = 1;
        if (d.labels[i] != idx % 10) mismatched++;
        if (idx < 100) low++;
    }
    CHECK(dup == 0 && mismatched == 0, "subset drew duplicates (%d) or split labels from images (%d)", dup, mismatched);
    CHECK(low < 40, "subset not spread over the set (%d of 100 from the first 100)", low);
    rc = dg_data_subset(&d, 101, 1, errbuf, sizeof errbuf);
    CHECK(rc == -1 && strstr(errbuf, "101"), "subset larger than the set: '%s'", errbuf);
    rc = dg_data_subset(&d, 0, 1, errbuf, sizeof errbuf);
    CHECK(rc == -1, "subset of 0");
    rc = dg_data_subset(&d, 100, 1, errbuf, sizeof errbuf);
    CHECK(rc == 0 && d.n == 100, "subset of everything");
    dg_data_free(&d);
    dg_data_free(&a);
    dg_data_free(&b);
    rc = dg_data_subset(&d, 1, 1, errbuf, sizeof errbuf);
    CHECK(rc == -1, "subset of a freed set");
}

/* ------------------------------------------------------------------------------------------- */
/* real data                                                                                   */

static void class_counts(const dg_dataset *d, int *counts) {
    for (int k = 0; k < 10; k++) counts[k] = 0;
    for (int i = 0; i < d->n; i++) counts[d->labels[i] < 10 ? d->labels[i] : 0]++;
}

static double pixel_mean(const dg_dataset *d, int ch) {
    size_t plane = (size_t)d->h * d->w;
    double s = 0;
    for (int i = 0; i < d->n; i++) {
        const uint8_t *p = d->images + ((size_t)i * d->c + ch) * plane;
        for (size_t k = 0; k < plane; k++) s += p[k];
    }
    return s / ((double)d->n * plane * 255.0);
}

static void test_mnist(const char *shared) {
    char spec[1024];
    snprintf(spec, sizeof spec, "mnist:%s/mnist", shared);
    dg_dataset d;
    double t0 = now_s();
    int rc = dg_data_load(spec, 1, &d, errbuf, sizeof errbuf);
    double t1 = now_s();
    CHECK(rc == 0, "MNIST train: %s", errbuf);
    if (rc == 0) {
        printf("MNIST train: %d images in %.2f s\n", d.n, t1 - t0);
        CHECK(d.n == 60000 && d.c == 1 && d.h == 28 && d.w == 28 && d.classes == 10, "MNIST train dims");
        CHECK(strcmp(d.name, "mnist") == 0 && fabsf(d.mean[0] - 0.1307f) < 1e-6f && fabsf(d.std[0] - 0.3081f) < 1e-6f,
              "MNIST name/normalisation");
        static const int want[10] = {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949};
        static const int32_t first[10] = {5, 0, 4, 1, 9, 2, 1, 3, 1, 4};
        int counts[10];
        class_counts(&d, counts);
        for (int k = 0; k < 10; k++) CHECK(counts[k] == want[k], "MNIST train class %d: %d, want %d", k, counts[k], want[k]);
        CHECK(memcmp(d.labels, first, sizeof first) == 0, "MNIST train first labels");
        double m = pixel_mean(&d, 0);
        CHECK(fabs(m - 0.1307) < 5e-5, "MNIST train pixel mean %.5f, want 0.1307", m);
    }
    dg_data_free(&d);
    rc = dg_data_load(spec, 0, &d, errbuf, sizeof errbuf);
    CHECK(rc == 0, "MNIST test: %s", errbuf);
    if (rc == 0) {
        CHECK(d.n == 10000 && d.h == 28 && d.w == 28, "MNIST test dims");
        static const int want[10] = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
        static const int32_t first[10] = {7, 2, 1, 0, 4, 1, 4, 9, 5, 9};
        int counts[10];
        class_counts(&d, counts);
        for (int k = 0; k < 10; k++) CHECK(counts[k] == want[k], "MNIST test class %d: %d, want %d", k, counts[k], want[k]);
        CHECK(memcmp(d.labels, first, sizeof first) == 0, "MNIST test first labels");
        double m = pixel_mean(&d, 0);
        CHECK(fabs(m - 0.1325) < 1e-4, "MNIST test pixel mean %.5f, want 0.1325", m);
        /* subset keeps image/label pairs: the same seed twice gives the same set */
        int rc2 = dg_data_subset(&d, 1000, 7, errbuf, sizeof errbuf);
        CHECK(rc2 == 0 && d.n == 1000, "MNIST subset: %s", errbuf);
    }
    dg_data_free(&d);
}

static void test_cifar(const char *shared) {
    char spec[1024];
    snprintf(spec, sizeof spec, "cifar10:%s/cifar10", shared);
    dg_dataset d;
    double t0 = now_s();
    int rc = dg_data_load(spec, 0, &d, errbuf, sizeof errbuf);
    double t1 = now_s();
    CHECK(rc == 0, "CIFAR-10 test: %s", errbuf);
    if (rc == 0) {
        printf("CIFAR-10 test: %d images in %.2f s\n", d.n, t1 - t0);
        CHECK(d.n == 10000 && d.c == 3 && d.h == 32 && d.w == 32 && d.classes == 10, "CIFAR dims");
        static const int32_t first[10] = {3, 8, 8, 0, 6, 6, 1, 6, 3, 1};
        CHECK(memcmp(d.labels, first, sizeof first) == 0, "CIFAR test first labels");
        int counts[10];
        class_counts(&d, counts);
        for (int k = 0; k < 10; k++) CHECK(counts[k] == 1000, "CIFAR test class %d: %d", k, counts[k]);
        static const double mean[3] = {0.49421428, 0.48513139, 0.45040909};
        for (int ch = 0; ch < 3; ch++) {
            double m = pixel_mean(&d, ch);
            CHECK(fabs(m - mean[ch]) < 1e-6, "CIFAR test channel %d mean %.8f, want %.8f", ch, m, mean[ch]);
        }
        CHECK(fabsf(d.mean[1] - 0.4822f) < 1e-6f && fabsf(d.std[2] - 0.2616f) < 1e-6f, "CIFAR normalisation constants");
    }
    dg_data_free(&d);
}

static void test_fashion(void) {
    struct stat st;
    if (stat(DG_FASHION_MNIST_DIR, &st) != 0) {
        printf("SKIP Fashion-MNIST: %s not installed\n", DG_FASHION_MNIST_DIR);
        return;
    }
    dg_dataset d;
    int rc = dg_data_load("fashion-mnist", 1, &d, errbuf, sizeof errbuf);
    CHECK(rc == 0, "Fashion-MNIST train: %s", errbuf);
    if (rc == 0) {
        CHECK(d.n == 60000 && d.h == 28 && d.w == 28, "Fashion train dims");
        CHECK(strcmp(d.name, "fashion-mnist") == 0 && fabsf(d.mean[0] - 0.2860f) < 1e-6f, "Fashion name/mean");
        int counts[10];
        class_counts(&d, counts);
        for (int k = 0; k < 10; k++) CHECK(counts[k] == 6000, "Fashion train class %d: %d", k, counts[k]);
        double m = pixel_mean(&d, 0);
        CHECK(fabs(m - 0.2860) < 1e-4, "Fashion train pixel mean %.5f, want 0.2860", m);
    }
    dg_data_free(&d);
    char spec[256];
    snprintf(spec, sizeof spec, "fashion-mnist:%s", DG_FASHION_MNIST_DIR);
    rc = dg_data_load(spec, 0, &d, errbuf, sizeof errbuf);
    CHECK(rc == 0 && d.n == 10000, "Fashion-MNIST test: %s", errbuf);
    if (rc == 0) {
        static const int32_t first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
        CHECK(memcmp(d.labels, first, sizeof first) == 0, "Fashion test first labels");
    }
    dg_data_free(&d);
}

/* paths from a data tree in messages: one line, and the end (the file's name) kept */
static void test_safe_path(void) {
    char path[260];
    for (int i = 0; i < 259; i++) path[i] = (char)('a' + i % 26);
    path[259] = 0;
    path[5] = '\n';
    memcpy(path + 259 - 9, "/file.png", 9);
    dg_safe_name s = dg_err_safe_path(path);
    size_t n = strlen(s.s);
    CHECK(strncmp(s.s, "abcde\\x0a", 9) == 0 && strstr(s.s, "...") && n > 9 && strcmp(s.s + n - 9, "/file.png") == 0 &&
              !strchr(s.s, '\n'),
          "a long path keeps its start and its end, escaped: '%s'", s.s);
    memset(path, 0xff, 259); /* the worst case: every byte escaped */
    s = dg_err_safe_path(path);
    CHECK(strlen(s.s) == 20 * 4 + 3 + 60 * 4, "all-escaped path: %zu characters", strlen(s.s));
    CHECK(strcmp(dg_err_safe_path("/short/a.png").s, "/short/a.png") == 0, "a short path is kept whole");
    s = dg_err_safe(path);
    CHECK(strlen(s.s) == 80 * 4 + 3, "dg_err_safe keeps the first 80 bytes");
}

/* dg_data_append refuses a sum past INT_MAX images before it allocates anything */
static void test_append_limit(void) {
    int32_t two[2] = {1, 2};
    uint8_t px[2] = {0, 0};
    dg_dataset big = {.n = INT_MAX - 1, .c = 1, .h = 1, .w = 1, .classes = 10}; /* never touched: no images */
    dg_dataset extra = {.n = 2, .c = 1, .h = 1, .w = 1, .classes = 10, .images = px, .labels = two};
    snprintf(big.name, sizeof big.name, "big");
    CHECK(dg_data_append(&big, &extra, errbuf, sizeof errbuf) == -1 && strstr(errbuf, "more than"),
          "appending past INT_MAX images: '%s'", errbuf);
}

int main(void) {
    test_safe_path();
    test_append_limit();
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/dg_data_test_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_bad_idx();
    test_bad_cifar();
    test_specs_and_synthetic();
    test_subset();

    const char *shared = getenv("DG_SHARED_DATA");
    if (shared && *shared) test_damaged_real_gzip(shared);
    dg_test_empty_dir(tmpdir);
    rmdir(tmpdir);
    if (shared && *shared) {
        test_mnist(shared);
        test_cifar(shared);
    } else {
        printf("SKIP MNIST and CIFAR-10: DG_SHARED_DATA is not set\n");
    }
    test_fashion();
    return dg_test_done("test_data");
}
