/* host/data.c — loading MNIST / Fashion-MNIST (IDX) and CIFAR-10 (binary batches) into memory as
 * uint8, raw or gzip'd, with every header field, size and label checked; the synthetic set; the
 * seeded subset. Host memory and files only: no batching, augmentation or device code. */
#include "data.h"
#include "data_folder.h"

#include "../kernels/math/pixel.h"
#include "error.h"
#include "input_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../kernels/math/rng.h"

#define IDX_MAX_SIDE 4096
#define CIFAR_RECORD 3073
#define CIFAR_PIXELS 3072
/* One CIFAR batch file may hold at most this many bytes (a real one holds 30730000): a bound
 * on the memory a hostile or corrupt gzip stream can make us allocate. */
#define CIFAR_MAX_FILE_BYTES ((size_t)1 << 30)
/* The synthetic set's pixel bytes are bounded too, and so are an IDX file's (8 GiB, 130 times
 * MNIST's training set): a header may announce what a small gzip stream then inflates to. */
#define SYNTH_MAX_BYTES ((size_t)1 << 33)
#define IDX_MAX_BYTES ((size_t)1 << 33)


/* ------------------------------------------------------------------------------------------ */
/* one input file, raw or gzip. Gzip is decoded with inflate() directly rather than gzread():   */
/* gzread() accepts a stream whose trailer (ISIZE) is cut off, inflate() lets us insist on a    */
/* complete stream, CRC and length checked.                                                      */

#define SRC_IN_BYTES ((size_t)1 << 18)

typedef struct {
    int fd;
    char path[PATH_MAX];
    int gz;          /* the content is gzip (magic 1f 8b), whatever the name */
    int zs_ready;    /* inflateInit2 done */
    int gz_done;     /* the last gzip member ended and the file ended with it */
    z_stream zs;
    uint8_t *in;     /* input buffer: next/avail are the unread part */
    uint8_t *next;
    size_t avail;
    int in_eof;
} src_file;

/* Refill the input buffer (when empty). -1 on a read error. */
static int src_fill(src_file *s, char *err, size_t err_len) {
    if (s->avail || s->in_eof) return 0;
    for (;;) {
        ssize_t r = read(s->fd, s->in, SRC_IN_BYTES);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            dg_err_set(err, err_len, s->path, "read error: %s", strerror(errno));
            return -1;
        }
        if (r == 0) s->in_eof = 1;
        s->next = s->in;
        s->avail = (size_t)r;
        return 0;
    }
}

static void src_close(src_file *s) {
    if (s->zs_ready) inflateEnd(&s->zs);
    if (s->fd >= 0) close(s->fd);
    free(s->in);
    s->zs_ready = 0;
    s->fd = -1;
    s->in = NULL;
}

/* Open DIR/NAME, else DIR/NAME.gz. A .gz name must hold gzip; any file that starts with the
 * gzip magic is decompressed. */
static int src_open(src_file *s, const char *dir, const char *name, char *err, size_t err_len) {
    memset(s, 0, sizeof *s);
    s->fd = -1;
    int gz_name = 0;
    for (int attempt = 0; attempt < 2 && s->fd < 0; attempt++) {
        int len = snprintf(s->path, sizeof s->path, "%s/%s%s", dir, name, attempt ? ".gz" : "");
        if (len < 0 || (size_t)len >= sizeof s->path) {
            dg_err_set(err, err_len, dir, "path too long");
            return -1;
        }
        s->fd = dg_open_regular(s->path);
        if (s->fd == DG_NOT_REGULAR) {
            dg_err_set(err, err_len, s->path, "not a regular file");
            return -1;
        }
        if (s->fd < 0 && errno != ENOENT) {
            dg_err_set(err, err_len, s->path, "cannot open: %s", strerror(errno));
            return -1;
        }
        gz_name = attempt == 1;
    }
    if (s->fd < 0) {
        char shown[PATH_MAX + 8];
        snprintf(shown, sizeof shown, "%s/%s[.gz]", dir, name);
        dg_err_set(err, err_len, shown, "no such file");
        return -1;
    }
    s->in = malloc(SRC_IN_BYTES);
    if (!s->in) {
        dg_err_set(err, err_len, s->path, "out of memory");
        src_close(s);
        return -1;
    }
    if (src_fill(s, err, err_len) != 0) {
        src_close(s);
        return -1;
    }
    s->gz = s->avail >= 2 && s->next[0] == 0x1f && s->next[1] == 0x8b;
    if (gz_name && !s->gz) {
        dg_err_set(err, err_len, s->path, "not in gzip format");
        src_close(s);
        return -1;
    }
    if (s->gz) {
        if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK) {
            dg_err_set(err, err_len, s->path, "cannot start gzip decoding (out of memory)");
            src_close(s);
            return -1;
        }
        s->zs_ready = 1;
    }
    return 0;
}

/* Read up to len bytes; *got says how many came. A short count means a clean end of file; a
 * corrupt, truncated or trailing-garbage gzip stream is an error (-1 with err). */
static int src_read(src_file *s, void *buf, size_t len, size_t *got, char *err, size_t err_len) {
    uint8_t *out = buf;
    *got = 0;
    if (!s->gz) {
        while (*got < len) {
            if (s->avail) { /* what the open already read */
                size_t k = s->avail < len - *got ? s->avail : len - *got;
                memcpy(out + *got, s->next, k);
                s->next += k;
                s->avail -= k;
                *got += k;
                continue;
            }
            if (s->in_eof) break;
            size_t want = len - *got;
            if (want < SRC_IN_BYTES) { /* small reads go through the buffer */
                if (src_fill(s, err, err_len) != 0) return -1;
                continue;
            }
            if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
            ssize_t r = read(s->fd, out + *got, want);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                dg_err_set(err, err_len, s->path, "read error: %s", strerror(errno));
                return -1;
            }
            if (r == 0) s->in_eof = 1;
            *got += (size_t)r;
        }
        return 0;
    }
    while (*got < len && !s->gz_done) {
        if (src_fill(s, err, err_len) != 0) return -1;
        if (s->avail == 0) {
            dg_err_set(err, err_len, s->path, "gzip stream ends early (truncated file)");
            return -1;
        }
        size_t in_now = s->avail < ((size_t)1 << 30) ? s->avail : ((size_t)1 << 30);
        size_t out_now = len - *got < ((size_t)1 << 30) ? len - *got : ((size_t)1 << 30);
        s->zs.next_in = s->next;
        s->zs.avail_in = (uInt)in_now;
        s->zs.next_out = out + *got;
        s->zs.avail_out = (uInt)out_now;
        int ret = inflate(&s->zs, Z_NO_FLUSH);
        size_t used = in_now - s->zs.avail_in;
        s->next += used;
        s->avail -= used;
        *got += out_now - s->zs.avail_out;
        if (ret == Z_STREAM_END) {
            /* the member is complete (CRC and length checked); another may follow */
            if (src_fill(s, err, err_len) != 0) return -1;
            if (s->avail == 0) {
                s->gz_done = 1;
            } else if (s->next[0] == 0x1f) {
                inflateReset(&s->zs);
            } else {
                dg_err_set(err, err_len, s->path, "trailing bytes after the gzip stream");
                return -1;
            }
        } else if (ret == Z_MEM_ERROR) {
            dg_err_set(err, err_len, s->path, "out of memory while decompressing");
            return -1;
        } else if (ret != Z_OK && !(ret == Z_BUF_ERROR && used == 0 && s->zs.avail_out == out_now && s->avail == 0)) {
            dg_err_set(err, err_len, s->path, "corrupt gzip stream (%s)", s->zs.msg ? s->zs.msg : "unknown error");
            return -1;
        }
    }
    return 0;
}

/* Read exactly len bytes into a buffer grown as data arrives (so that a header that lies about
 * the size cannot make us allocate more than the file holds, times two), then require the end
 * of the file. what: used in messages ("pixel", "label"). */
static int src_read_exact(src_file *s, size_t len, uint8_t **out, const char *what, size_t header_bytes, char *err,
                          size_t err_len) {
    *out = NULL;
    size_t cap = len < ((size_t)16 << 20) ? len : ((size_t)16 << 20);
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) {
        dg_err_set(err, err_len, s->path, "out of memory");
        return -1;
    }
    size_t have = 0;
    while (have < len) {
        if (have == cap) {
            size_t ncap = cap > len / 2 ? len : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                dg_err_set(err, err_len, s->path, "out of memory (%zu bytes)", ncap);
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        size_t want = cap - have, got;
        if (src_read(s, buf + have, want, &got, err, err_len) != 0) {
            free(buf);
            return -1;
        }
        have += got;
        if (got < want) { /* end of file before all the announced bytes came */
            dg_err_set(err, err_len, s->path, "truncated: the header announces %zu %s bytes, the file holds %zu", len,
                    what, have);
            free(buf);
            return -1;
        }
    }
    uint8_t extra;
    size_t got;
    if (src_read(s, &extra, 1, &got, err, err_len) != 0) {
        free(buf);
        return -1;
    }
    if (got) {
        /* in a gzip file, extra data is often the sign of a damaged stream: decode on (without
         * keeping it, at most 256 MB) so that the CRC check can say so */
        if (s->gz) {
            uint8_t scratch[1 << 14];
            size_t drained = 0;
            while (got && drained < ((size_t)256 << 20)) {
                if (src_read(s, scratch, sizeof scratch, &got, err, err_len) != 0) {
                    free(buf);
                    return -1;
                }
                drained += got;
            }
        }
        dg_err_set(err, err_len, s->path, "longer than its header announces (%zu bytes expected)", header_bytes + len);
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* IDX                                                                                         */

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int load_idx(const char *dir, int train, dg_dataset *d, char *err, size_t err_len) {
    const char *img_name = train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte";
    const char *lab_name = train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte";
    src_file si, sl;
    uint8_t hdr[16];
    size_t got;

    /* images */
    if (src_open(&si, dir, img_name, err, err_len) != 0) return -1;
    if (src_read(&si, hdr, 16, &got, err, err_len) != 0) goto fail_img;
    if (got < 16) {
        dg_err_set(err, err_len, si.path, "%zu bytes, too short for an IDX image header (16 bytes)", got);
        goto fail_img;
    }
    if (be32(hdr) != 0x00000803u) {
        dg_err_set(err, err_len, si.path, "bad magic 0x%08x (an IDX file of unsigned bytes with 3 dims has 0x00000803)",
                be32(hdr));
        goto fail_img;
    }
    uint32_t n = be32(hdr + 4), h = be32(hdr + 8), w = be32(hdr + 12);
    if (n == 0 || n > (uint32_t)INT_MAX) {
        dg_err_set(err, err_len, si.path, "image count %u out of range (1..%d)", n, INT_MAX);
        goto fail_img;
    }
    if (h == 0 || w == 0 || h > IDX_MAX_SIDE || w > IDX_MAX_SIDE) {
        dg_err_set(err, err_len, si.path, "image size %ux%u out of range (1..%d per side)", h, w, IDX_MAX_SIDE);
        goto fail_img;
    }
    if ((size_t)n > IDX_MAX_BYTES / ((size_t)h * w)) {
        dg_err_set(err, err_len, si.path, "%u images of %ux%u: more than the %zu pixel bytes an IDX set may hold", n, h,
                   w, IDX_MAX_BYTES);
        goto fail_img;
    }
    size_t pixels = (size_t)n * h * w;
    if (src_read_exact(&si, pixels, &d->images, "pixel", 16, err, err_len) != 0) goto fail_img;
    src_close(&si);

    /* labels */
    if (src_open(&sl, dir, lab_name, err, err_len) != 0) return -1;
    if (src_read(&sl, hdr, 8, &got, err, err_len) != 0) goto fail_lab;
    if (got < 8) {
        dg_err_set(err, err_len, sl.path, "%zu bytes, too short for an IDX label header (8 bytes)", got);
        goto fail_lab;
    }
    if (be32(hdr) != 0x00000801u) {
        dg_err_set(err, err_len, sl.path, "bad magic 0x%08x (an IDX file of unsigned bytes with 1 dim has 0x00000801)",
                be32(hdr));
        goto fail_lab;
    }
    uint32_t nl = be32(hdr + 4);
    if (nl != n) {
        dg_err_set(err, err_len, sl.path, "holds %u labels, but %s/%s[.gz] holds %u images", nl, dir, img_name, n);
        goto fail_lab;
    }
    uint8_t *label_bytes = NULL;
    if (src_read_exact(&sl, n, &label_bytes, "label", 8, err, err_len) != 0) goto fail_lab;
    src_close(&sl);
    for (uint32_t i = 0; i < n; i++)
        if (label_bytes[i] >= 10) {
            dg_err_set(err, err_len, sl.path, "label %u at index %u is out of range (0..9)", label_bytes[i], i);
            free(label_bytes);
            return -1;
        }
    d->labels = malloc(sizeof(int32_t) * (size_t)n);
    if (!d->labels) {
        dg_err_set(err, err_len, sl.path, "out of memory");
        free(label_bytes);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) d->labels[i] = label_bytes[i];
    free(label_bytes);
    d->n = (int)n;
    d->c = 1;
    d->h = (int)h;
    d->w = (int)w;
    d->classes = 10;
    return 0;

fail_img:
    src_close(&si);
    return -1;
fail_lab:
    src_close(&sl);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* CIFAR-10                                                                                    */

/* Read the whole file (at most `limit` bytes) into a new buffer. */
static int src_read_all(src_file *s, size_t limit, uint8_t **out, size_t *len, char *err, size_t err_len) {
    size_t cap = (size_t)1 << 20, have = 0; /* grown by doubling: a small file costs little */
    uint8_t *buf = malloc(cap);
    if (!buf) {
        dg_err_set(err, err_len, s->path, "out of memory");
        return -1;
    }
    for (;;) {
        if (have == cap) {
            if (cap >= limit) {
                dg_err_set(err, err_len, s->path, "larger than %zu bytes: not a CIFAR-10 batch", limit);
                free(buf);
                return -1;
            }
            size_t ncap = cap * 2 > limit ? limit : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                dg_err_set(err, err_len, s->path, "out of memory");
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got;
        if (src_read(s, buf + have, cap - have, &got, err, err_len) != 0) {
            free(buf);
            return -1;
        }
        have += got;
        if (have < cap) break;
    }
    *out = buf;
    *len = have;
    return 0;
}

static int load_cifar10(const char *dir, int train, dg_dataset *d, char *err, size_t err_len) {
    static const char *const train_files[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                              "data_batch_4.bin", "data_batch_5.bin"};
    static const char *const test_files[] = {"test_batch.bin"};
    const char *const *files = train ? train_files : test_files;
    int n_files = train ? 5 : 1;
    size_t total = 0;
    for (int f = 0; f < n_files; f++) {
        src_file s;
        if (src_open(&s, dir, files[f], err, err_len) != 0) return -1;
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = src_read_all(&s, CIFAR_MAX_FILE_BYTES, &buf, &len, err, err_len);
        src_close(&s);
        if (rc != 0) return -1;
        if (len == 0 || len % CIFAR_RECORD != 0) {
            dg_err_set(err, err_len, s.path, "%zu bytes, not a positive multiple of the %d-byte CIFAR-10 record%s", len,
                    CIFAR_RECORD, len % CIFAR_RECORD ? " (truncated or extra bytes)" : "");
            free(buf);
            return -1;
        }
        size_t recs = len / CIFAR_RECORD;
        if (total + recs > (size_t)INT_MAX) {
            dg_err_set(err, err_len, s.path, "too many records");
            free(buf);
            return -1;
        }
        for (size_t r = 0; r < recs; r++)
            if (buf[r * CIFAR_RECORD] >= 10) {
                dg_err_set(err, err_len, s.path, "label %u of record %zu is out of range (0..9)", buf[r * CIFAR_RECORD], r);
                free(buf);
                return -1;
            }
        uint8_t *ni = realloc(d->images, (total + recs) * CIFAR_PIXELS);
        if (ni) d->images = ni;
        int32_t *nl = ni ? realloc(d->labels, sizeof(int32_t) * (total + recs)) : NULL;
        if (nl) d->labels = nl;
        if (!ni || !nl) {
            dg_err_set(err, err_len, s.path, "out of memory");
            free(buf);
            return -1;
        }
        for (size_t r = 0; r < recs; r++) {
            const uint8_t *rec = buf + r * CIFAR_RECORD;
            d->labels[total + r] = rec[0];
            memcpy(d->images + (total + r) * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS);
        }
        free(buf);
        total += recs;
    }
    d->n = (int)total;
    d->c = 3;
    d->h = 32;
    d->w = 32;
    d->classes = 10;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* synthetic                                                                                   */

/* Parse a decimal int in [lo, hi] that ends at a ',' or the end; advances *p. */
static int parse_int(const char **p, long lo, long hi, long *v) {
    const char *s = *p;
    if (*s < '0' || *s > '9') return -1;
    long x = 0;
    while (*s >= '0' && *s <= '9') {
        x = x * 10 + (*s - '0');
        if (x > hi) return -1;
        s++;
    }
    if (*s != ',' && *s != 0) return -1;
    if (x < lo) return -1;
    *v = x;
    *p = *s == ',' ? s + 1 : s;
    return 0;
}

static int load_synthetic(const char *spec, const char *args, int train, dg_dataset *d, char *err, size_t err_len) {
    long v[5] = {0, 0, 0, 0, 256};
    static const long lo[5] = {1, 1, 1, 1, 1}, hi[5] = {3, 4096, 4096, 100000, INT_MAX};
    static const char *const what[5] = {"C (1..3)", "H (1..4096)", "W (1..4096)", "K (1..100000)", "N (1..2^31-1)"};
    const char *p = args;
    int k = 0;
    for (; k < 5 && *p; k++)
        if (parse_int(&p, lo[k], hi[k], &v[k]) != 0) {
            dg_err_set(err, err_len, spec, "bad %s; expected synthetic:C,H,W,K[,N]", what[k]);
            return -1;
        }
    size_t alen = strlen(args);
    if (k < 4 || *p || (alen && args[alen - 1] == ',')) {
        dg_err_set(err, err_len, spec, "expected synthetic:C,H,W,K[,N]");
        return -1;
    }
    size_t per = (size_t)v[0] * (size_t)v[1] * (size_t)v[2];
    if ((size_t)v[4] > SYNTH_MAX_BYTES / per) {
        dg_err_set(err, err_len, spec, "more than %zu pixel bytes", SYNTH_MAX_BYTES);
        return -1;
    }
    size_t bytes = per * (size_t)v[4];
    d->images = malloc(bytes);
    d->labels = malloc(sizeof(int32_t) * (size_t)v[4]);
    if (!d->images || !d->labels) {
        dg_err_set(err, err_len, spec, "out of memory");
        return -1;
    }
    uint64_t seed = train ? 0x53594e5448545241ull /* "SYNTHTRA" */ : 0x53594e5448545354ull /* "SYNTHTST" */;
    size_t words = bytes / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t r = dg_rng_u64(seed, i);
        for (int b = 0; b < 8; b++) d->images[i * 8 + (size_t)b] = (uint8_t)(r >> (8 * b));
    }
    if (bytes % 8) {
        uint64_t r = dg_rng_u64(seed, words);
        for (size_t b = words * 8; b < bytes; b++) d->images[b] = (uint8_t)(r >> (8 * (b - words * 8)));
    }
    for (long i = 0; i < v[4]; i++) d->labels[i] = (int32_t)(i % v[3]);
    d->n = (int)v[4];
    d->c = (int)v[0];
    d->h = (int)v[1];
    d->w = (int)v[2];
    d->classes = (int)v[3];
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* public                                                                                      */

void dg_data_free(dg_dataset *d) {
    if (!d) return;
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

static void set_norm(dg_dataset *d, const float *mean, const float *std, int c) {
    for (int ch = 0; ch < 3; ch++) {
        d->mean[ch] = mean[ch < c ? ch : 0];
        d->std[ch] = std[ch < c ? ch : 0];
    }
}

const char *dg_data_folder_dir(const char *spec, int *channels) {
    static const struct {
        const char *kind;
        int channels;
    } kinds[] = {{"folder:", 0}, {"folder-rgb:", 3}, {"folder-grey:", 1}};
    for (size_t k = 0; spec && k < sizeof kinds / sizeof *kinds; k++)
        if (strncmp(spec, kinds[k].kind, strlen(kinds[k].kind)) == 0) {
            if (channels) *channels = kinds[k].channels;
            return spec + strlen(kinds[k].kind);
        }
    return NULL;
}

static int load_spec(const char *spec, int train, const dg_dataset *like, dg_dataset *out, char *err,
                     size_t err_len) {
    if (err && err_len) err[0] = 0;
    if (!out) {
        dg_err_set(err, err_len, spec, "no data set struct given");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!spec) {
        dg_err_set(err, err_len, "(null)", "no data set given");
        return -1;
    }
    const char *colon = strchr(spec, ':');
    size_t kind_len = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *dir = colon ? colon + 1 : NULL;
#define KIND_IS(s) (kind_len == strlen(s) && strncmp(spec, s, kind_len) == 0)
    int rc;
    if (KIND_IS("fashion-mnist") && !colon) dir = DG_FASHION_MNIST_DIR;
    if (KIND_IS("mnist") || KIND_IS("fashion-mnist") || KIND_IS("cifar10")) {
        if (!dir || !*dir) {
            dg_err_set(err, err_len, spec, "no directory given (expected %.*s:DIR)", (int)kind_len, spec);
            return -1;
        }
        if (KIND_IS("cifar10")) {
            rc = load_cifar10(dir, train, out, err, err_len);
        } else {
            rc = load_idx(dir, train, out, err, err_len);
        }
    } else if (KIND_IS("folder") || KIND_IS("folder-rgb") || KIND_IS("folder-grey")) {
        if (!dir || !*dir) {
            dg_err_set(err, err_len, spec, "no directory given (expected %.*s:DIR)", (int)kind_len, spec);
            return -1;
        }
        int channels = 0;
        dg_data_folder_dir(spec, &channels);
        /* sets its own name and normalisation */
        rc = dg_folder_load(dir, train, channels, train ? NULL : like, out, err, err_len);
    } else if (KIND_IS("synthetic")) {
        rc = load_synthetic(spec, dir ? dir : "", train, out, err, err_len);
    } else {
        dg_err_set(err, err_len, spec,
                "unknown data set (expected mnist:DIR, fashion-mnist[:DIR], cifar10:DIR, folder[-rgb|-grey]:DIR or "
                "synthetic:C,H,W,K[,N])");
        return -1;
    }
    if (rc != 0) {
        dg_data_free(out);
        return -1;
    }
    if (KIND_IS("mnist")) {
        static const float m[1] = {0.1307f}, s[1] = {0.3081f};
        snprintf(out->name, sizeof out->name, "mnist");
        set_norm(out, m, s, 1);
    } else if (KIND_IS("fashion-mnist")) {
        static const float m[1] = {0.2860f}, s[1] = {0.3530f};
        snprintf(out->name, sizeof out->name, "fashion-mnist");
        set_norm(out, m, s, 1);
    } else if (KIND_IS("cifar10")) {
        static const float m[3] = {0.4914f, 0.4822f, 0.4465f}, s[3] = {0.2470f, 0.2435f, 0.2616f};
        snprintf(out->name, sizeof out->name, "cifar10");
        set_norm(out, m, s, 3);
    } else if (KIND_IS("synthetic")) {
        static const float m[3] = {0.5f, 0.5f, 0.5f}, s[3] = {0.25f, 0.25f, 0.25f};
        snprintf(out->name, sizeof out->name, "synthetic");
        set_norm(out, m, s, 3);
    }
#undef KIND_IS
    if (like) { /* normalised as the split the net is trained on, whatever set that split's */
        memcpy(out->mean, like->mean, sizeof out->mean);
        memcpy(out->std, like->std, sizeof out->std);
    }
    /* the test split is fed to a net built for the training split's images and classes */
    if (like && (out->c != like->c || out->h != like->h || out->w != like->w || out->classes > like->classes)) {
        dg_err_set(err, err_len, spec,
                   "the test split's images are %dx%dx%d with %d classes, the training split's %dx%dx%d with %d",
                   out->c, out->h, out->w, out->classes, like->c, like->h, like->w, like->classes);
        dg_data_free(out);
        return -1;
    }
    return 0;
}

int dg_data_load(const char *spec, int train, dg_dataset *out, char *err, size_t err_len) {
    return load_spec(spec, train, NULL, out, err, err_len);
}

int dg_data_load_test(const char *spec, const dg_dataset *like, dg_dataset *out, char *err, size_t err_len) {
    return load_spec(spec, 0, like, out, err, err_len);
}

int dg_data_subset_indices(int n, int count, uint64_t seed, int *out) {
    if (n < 1 || count < 1 || count > n) return -1;
    int *perm = malloc(sizeof(int) * (size_t)n);
    if (!perm) return -1;
    for (int i = 0; i < n; i++) perm[i] = i;
    uint64_t stream = dg_rng_stream(seed, 0x7375627365742131ull /* "subset!1" */);
    for (int i = 0; i < count; i++) {
        uint64_t range = (uint64_t)(n - i);
        int j = i + (int)(dg_rng_u64(stream, (uint64_t)i) % range); /* bias ≤ range / 2^64 */
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        out[i] = perm[i];
    }
    free(perm);
    return 0;
}

int dg_data_subset(dg_dataset *d, int count, uint64_t seed, char *err, size_t err_len) {
    if (err && err_len) err[0] = 0;
    if (!d || !d->images || !d->labels || d->n <= 0) {
        dg_err_set(err, err_len, d ? d->name : "(null)", "subset of an empty data set");
        return -1;
    }
    if (count < 1 || count > d->n) {
        dg_err_set(err, err_len, d->name, "subset of %d images asked from %d", count, d->n);
        return -1;
    }
    size_t per = (size_t)d->c * d->h * d->w;
    int *idx = malloc(sizeof(int) * (size_t)count);
    uint8_t *images = malloc((size_t)count * per + 1);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)count);
    if (!idx || !images || !labels || dg_data_subset_indices(d->n, count, seed, idx) != 0) {
        free(idx), free(images), free(labels);
        dg_err_set(err, err_len, d->name, "out of memory");
        return -1;
    }
    for (int i = 0; i < count; i++) {
        memcpy(images + (size_t)i * per, d->images + (size_t)idx[i] * per, per);
        labels[i] = d->labels[idx[i]];
    }
    free(idx);
    free(d->images);
    free(d->labels);
    d->images = images;
    d->labels = labels;
    d->n = count;
    return 0;
}

int dg_data_append(dg_dataset *d, const dg_dataset *extra, char *err, size_t err_len) {
    if (err && err_len) err[0] = 0;
    if (extra->c != d->c || extra->h != d->h || extra->w != d->w) {
        dg_err_set(err, err_len, d->name, "cannot append %dx%dx%d images to a %dx%dx%d data set", extra->c, extra->h,
                   extra->w, d->c, d->h, d->w);
        return -1;
    }
    for (int i = 0; i < extra->n; i++)
        if (extra->labels[i] < 0 || extra->labels[i] >= d->classes) {
            dg_err_set(err, err_len, d->name, "appended label %d is not in 0..%d", extra->labels[i], d->classes - 1);
            return -1;
        }
    if (extra->n <= 0) return 0;
    size_t per = (size_t)d->c * d->h * d->w, n = (size_t)d->n + (size_t)extra->n;
    if (n > (size_t)INT_MAX) {
        dg_err_set(err, err_len, d->name, "%d + %d images are more than a data set holds (%d)", d->n, extra->n, INT_MAX);
        return -1;
    }
    uint8_t *images = realloc(d->images, n * per);
    int32_t *labels = NULL;
    if (images) d->images = images;
    if (images) labels = realloc(d->labels, sizeof(int32_t) * n);
    if (!images || !labels) {
        dg_err_set(err, err_len, d->name, "out of memory");
        return -1;
    }
    d->labels = labels;
    memcpy(d->images + (size_t)d->n * per, extra->images, (size_t)extra->n * per);
    memcpy(d->labels + d->n, extra->labels, sizeof(int32_t) * (size_t)extra->n);
    d->n = (int)n;
    return 0;
}

void dg_data_image_f32(const dg_dataset *d, int i, float *out) {
    if (!out || !d) return;
    size_t plane = (size_t)d->h * d->w;
    size_t per = (size_t)d->c * plane;
    if (i < 0 || i >= d->n || !d->images) {
        for (size_t k = 0; k < per; k++) out[k] = 0.0f;
        return;
    }
    const uint8_t *px = d->images + (size_t)i * per;
    for (int ch = 0; ch < d->c; ch++) {
        int cc = ch < 3 ? ch : 0;
        float scale = dg_pixel_scale(d->std[cc]), shift = dg_pixel_shift(d->mean[cc], d->std[cc]);
        const uint8_t *src = px + (size_t)ch * plane;
        float *dst = out + (size_t)ch * plane;
        for (size_t k = 0; k < plane; k++) dst[k] = dg_pixel_normalize((float)src[k], scale, shift);
    }
}
