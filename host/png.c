/* host/png.c — PNG reading and writing through libpng (see png.h): libpng's errors caught with
 * setjmp/longjmp into a message, its limits set for hostile files, every format normalised to 8-bit
 * grey or RGB. Host memory and files only; no nets, no fingerprints, nothing printed. */
#include "png.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "error.h"
#include "input_file.h"

/* ------------------------------------------------------------------------------------------- */
/* libpng's error and warning functions: nothing printed, the message kept for the caller         */

typedef struct {
    char msg[256];  /* the error (ours, set before png_error, or libpng's) */
    char warn[200]; /* libpng's warnings, "; "-separated, appended to an error they may explain */
} png_messages;

static void on_error(png_structp png, png_const_charp msg) {
    png_messages *m = png_get_error_ptr(png);
    if (!m->msg[0]) snprintf(m->msg, sizeof m->msg, "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    png_messages *m = png_get_error_ptr(png);
    size_t used = strlen(m->warn);
    if (msg && used + 3 < sizeof m->warn) snprintf(m->warn + used, sizeof m->warn - used, "%s%s", used ? "; " : "", msg);
}

/* "<name>: <error>[ (<warnings>)]" */
static void report(const png_messages *m, const char *name, char *err, size_t err_len) {
    const char *msg = m->msg[0] ? m->msg : "libpng error";
    if (m->warn[0] && strcmp(m->warn, msg) != 0) dg_err_set(err, err_len, name, "%s (%s)", msg, m->warn);
    else dg_err_set(err, err_len, name, "%s", msg);
}

/* ------------------------------------------------------------------------------------------- */
/* reading                                                                                        */

/* All the decoder's state lives here, not in locals of the function that calls setjmp, so a
 * longjmp clobbers nothing: the caller frees whatever is set, on every path. */
typedef struct {
    png_messages m;
    const uint8_t *bytes;
    size_t n, pos;
    int want;
    png_structp png;
    png_infop info;
    uint8_t *raw;     /* libpng's output when it is not already the wanted layout */
    png_bytep *rows;
    dg_image img;
} decoder;

static void read_fn(png_structp png, png_bytep out, size_t len) {
    decoder *d = png_get_io_ptr(png);
    if (len > d->n - d->pos) {
        if (!d->m.msg[0]) snprintf(d->m.msg, sizeof d->m.msg, "truncated: the file ends after %zu bytes", d->n);
        png_error(png, "truncated");
    }
    memcpy(out, d->bytes + d->pos, len);
    d->pos += len;
}

/* Our own error, through libpng's path (the longjmp below). */
static void fail(decoder *d, const char *msg) {
    if (!d->m.msg[0]) snprintf(d->m.msg, sizeof d->m.msg, "%s", msg);
    png_error(d->png, msg);
}

/* Converts n pixels of sc channels (1 G, 2 GA, 3 RGB, 4 RGBA) into dc channels (1 or 3). */
static void convert_pixels(const uint8_t *src, int sc, uint8_t *dst, int dc, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = src + i * (size_t)sc;
        if (sc <= 2) { /* grey (alpha ignored) */
            if (dc == 1) dst[i] = s[0];
            else dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = s[0];
        } else if (dc == 3) { /* RGB (alpha ignored) */
            memcpy(dst + 3 * i, s, 3);
        } else { /* BT.601 luma, PIL's fixed point: the weights sum to 65536 */
            dst[i] = (uint8_t)((19595u * s[0] + 38470u * s[1] + 7471u * s[2] + 32768u) >> 16);
        }
    }
}

/* Looks up the indices in d->raw through the PLTE chunk, into outc channels. An index past the
 * PLTE entries is refused: libpng would expand it to black with a warning and PIL reads index i
 * as grey (i, i, i); neither is a colour the file's writer gave. */
static void expand_palette(decoder *d, int w, size_t npix, int outc) {
    png_colorp plte = NULL;
    int entries = 0;
    if (!png_get_PLTE(d->png, d->info, &plte, &entries) || entries < 1 || entries > 256) fail(d, "no usable PLTE chunk");
    uint8_t rgb[256 * 3], lookup[256 * 3];
    for (int i = 0; i < entries; i++) rgb[3 * i] = plte[i].red, rgb[3 * i + 1] = plte[i].green, rgb[3 * i + 2] = plte[i].blue;
    convert_pixels(rgb, 3, lookup, outc, (size_t)entries);
    for (size_t p = 0; p < npix; p++) {
        const int index = d->raw[p];
        if (index >= entries) {
            snprintf(d->m.msg, sizeof d->m.msg, "pixel (%zu, %zu) has palette index %d, but the PLTE chunk has %d entries",
                     p % (size_t)w, p / (size_t)w, index, entries);
            fail(d, d->m.msg);
        }
        memcpy(d->img.pixels + p * (size_t)outc, lookup + index * outc, (size_t)outc);
    }
}

static int run_decoder(decoder *d) {
    if (setjmp(png_jmpbuf(d->png))) return -1;
    png_set_user_limits(d->png, DG_PNG_MAX_SIDE, DG_PNG_MAX_SIDE);
    png_set_chunk_malloc_max(d->png, DG_PNG_MAX_CHUNK_BYTES);
    /* a CRC mismatch in any chunk is an error: a fingerprint image must be the file it was */
    png_set_crc_action(d->png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    png_set_read_fn(d->png, d, read_fn);
    png_set_sig_bytes(d->png, 8);
    d->pos = 8;
    png_read_info(d->png, d->info);

    png_uint_32 w = png_get_image_width(d->png, d->info), h = png_get_image_height(d->png, d->info);
    const int color_type = png_get_color_type(d->png, d->info);
    int stored = (color_type & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    d->img.stored_as = color_type == PNG_COLOR_TYPE_PALETTE  ? "palette"
                       : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? "grey+alpha"
                       : color_type == PNG_COLOR_TYPE_RGB_ALPHA  ? "RGBA"
                       : stored == 3                             ? "RGB"
                                                                 : "grey";
    int stored_bits = png_get_bit_depth(d->png, d->info);
    int outc = d->want ? d->want : stored;
    const int palette = color_type == PNG_COLOR_TYPE_PALETTE;
    if (palette) png_set_packing(d->png); /* one index per byte, looked up below (expand_palette) */
    else png_set_expand(d->png);          /* grey of 1/2/4 bits → 8, tRNS → alpha (then ignored) */
    png_set_scale_16(d->png); /* 16 → 8 bits, round(v·255/65535) */
    (void)png_set_interlace_handling(d->png);
    png_read_update_info(d->png, d->info);

    int ch = png_get_channels(d->png, d->info);
    size_t rowbytes = png_get_rowbytes(d->png, d->info);
    if (w < 1 || h < 1 || w > DG_PNG_MAX_SIDE || h > DG_PNG_MAX_SIDE || ch < 1 || ch > 4 ||
        png_get_bit_depth(d->png, d->info) != 8 || rowbytes != (size_t)w * (size_t)ch)
        fail(d, "unexpected pixel layout after conversion to 8 bits");
    int widest = ch > outc ? ch : outc;
    uint64_t need = (uint64_t)w * h * (uint64_t)widest;
    if (need > DG_PNG_MAX_DECODED_BYTES) {
        snprintf(d->m.msg, sizeof d->m.msg, "%lux%lu pixels x %d channels = %llu bytes decoded, over the %zu MiB limit",
                 (unsigned long)w, (unsigned long)h, widest, (unsigned long long)need, DG_PNG_MAX_DECODED_BYTES >> 20);
        fail(d, d->m.msg);
    }
    size_t npix = (size_t)w * h;
    d->img.pixels = malloc(npix * (size_t)outc);
    const int direct = ch == outc && !palette; /* libpng's output is already the image */
    d->raw = direct ? NULL : malloc(npix * (size_t)ch);
    d->rows = malloc(sizeof(png_bytep) * h);
    if (!d->img.pixels || (!direct && !d->raw) || !d->rows) fail(d, "out of memory");
    uint8_t *base = direct ? d->img.pixels : d->raw;
    for (png_uint_32 y = 0; y < h; y++) d->rows[y] = base + (size_t)y * rowbytes;
    png_read_image(d->png, d->rows);
    png_read_end(d->png, NULL); /* the chunks after the image, their CRCs, and IEND */
    if (palette) expand_palette(d, (int)w, npix, outc);
    else if (!direct) convert_pixels(d->raw, ch, d->img.pixels, outc, npix);
    d->img.w = (int)w;
    d->img.h = (int)h;
    d->img.channels = outc;
    d->img.stored_bits = stored_bits;
    return 0;
}

const char *dg_png_stored_note(const dg_image *img) {
    const char *s = img->stored_as ? img->stored_as : "";
    if (strcmp(s, "RGBA") == 0) return " (stored as RGBA: read as RGB, alpha dropped)";
    if (strcmp(s, "grey+alpha") == 0) return " (stored as grey+alpha: read as grey, alpha dropped)";
    if (strcmp(s, "palette") == 0) return " (stored with a colour palette: read as RGB, even where its colours are grey)";
    return "";
}

int dg_png_decode(const uint8_t *bytes, size_t n, const char *name, dg_image *img, int want_channels, char *err,
                  size_t err_len) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (err && err_len) err[0] = 0;
    if (!name) name = "(png)";
    if (!img) {
        dg_err_set(err, err_len, name, "no image to decode into");
        return -1;
    }
    memset(img, 0, sizeof *img);
    if (want_channels != 0 && want_channels != 1 && want_channels != 3) {
        dg_err_set(err, err_len, name, "%d channels asked for (0, 1 or 3)", want_channels);
        return -1;
    }
    if (!bytes || n == 0) {
        dg_err_set(err, err_len, name, "empty file, not a PNG");
        return -1;
    }
    if (memcmp(bytes, sig, n < 8 ? n : 8) != 0) {
        dg_err_set(err, err_len, name, "not a PNG file (bad signature)");
        return -1;
    }
    if (n < 8) {
        dg_err_set(err, err_len, name, "truncated: the file ends inside the PNG signature (%zu bytes)", n);
        return -1;
    }
    decoder *d = calloc(1, sizeof *d);
    if (!d) {
        dg_err_set(err, err_len, name, "out of memory");
        return -1;
    }
    d->bytes = bytes;
    d->n = n;
    d->want = want_channels;
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &d->m, on_error, on_warning);
    d->info = d->png ? png_create_info_struct(d->png) : NULL;
    int rc = -1;
    if (!d->info) snprintf(d->m.msg, sizeof d->m.msg, "cannot start libpng (out of memory?)");
    else rc = run_decoder(d);
    if (rc == 0) *img = d->img;
    else {
        free(d->img.pixels);
        report(&d->m, name, err, err_len);
    }
    png_destroy_read_struct(d->png ? &d->png : NULL, d->info ? &d->info : NULL, NULL);
    free(d->raw);
    free(d->rows);
    free(d);
    return rc;
}

int dg_png_read(const char *path, dg_image *img, int want_channels, char *err, size_t err_len) {
    if (img) memset(img, 0, sizeof *img);
    if (!path || !*path) {
        dg_err_set(err, err_len, "(null)", "no input path given");
        return -1;
    }
    const char *why;
    FILE *f = dg_fopen_regular(path, &why); /* a FIFO would block, a device feed 512 MiB before being refused */
    if (!f) {
        dg_err_set(err, err_len, path, "%s", why);
        return -1;
    }
    uint8_t *bytes = NULL;
    size_t n = 0, cap = 0;
    const char *problem = NULL;
    int saved = 0;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : (size_t)1 << 16;
            if (ncap > DG_PNG_MAX_FILE_BYTES + 1) ncap = DG_PNG_MAX_FILE_BYTES + 1;
            if (ncap == cap) {
                problem = "file is larger than the PNG reader accepts";
                break;
            }
            uint8_t *nb = realloc(bytes, ncap);
            if (!nb) {
                problem = "out of memory";
                break;
            }
            bytes = nb;
            cap = ncap;
        }
        size_t got = fread(bytes + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                saved = errno;
                problem = "read error";
            }
            break;
        }
    }
    fclose(f);
    int rc = -1;
    if (problem && saved) dg_err_set(err, err_len, path, "%s: %s", problem, strerror(saved));
    else if (problem) dg_err_set(err, err_len, path, "%s (%zu MiB)", problem, DG_PNG_MAX_FILE_BYTES >> 20);
    else rc = dg_png_decode(bytes, n, path, img, want_channels, err, err_len);
    free(bytes);
    return rc;
}

void dg_image_free(dg_image *img) {
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* ------------------------------------------------------------------------------------------- */
/* writing: encode into memory, then one atomic file write                                       */

typedef struct {
    png_messages m;
    const dg_image *img;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    uint8_t *p;
    size_t n, cap;
} encoder;

static void write_fn(png_structp png, png_bytep data, size_t len) {
    encoder *e = png_get_io_ptr(png);
    if (len > e->cap - e->n) {
        size_t cap = e->cap ? e->cap : 4096;
        while (cap - e->n < len) {
            if (cap > SIZE_MAX / 2) png_error(png, "out of memory");
            cap *= 2;
        }
        uint8_t *np = realloc(e->p, cap);
        if (!np) png_error(png, "out of memory");
        e->p = np;
        e->cap = cap;
    }
    memcpy(e->p + e->n, data, len);
    e->n += len;
}

static void flush_fn(png_structp png) { (void)png; }

static int run_encoder(encoder *e) {
    if (setjmp(png_jmpbuf(e->png))) return -1;
    const dg_image *img = e->img;
    png_set_write_fn(e->png, e, write_fn, flush_fn);
    png_set_IHDR(e->png, e->info, (png_uint_32)img->w, (png_uint_32)img->h, 8,
                 img->channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    e->rows = malloc(sizeof(png_bytep) * (size_t)img->h);
    if (!e->rows) png_error(e->png, "out of memory");
    size_t stride = (size_t)img->w * (size_t)img->channels;
    for (int y = 0; y < img->h; y++) e->rows[y] = (png_bytep)(img->pixels + (size_t)y * stride);
    png_write_info(e->png, e->info);
    png_write_image(e->png, e->rows);
    png_write_end(e->png, NULL);
    return 0;
}

int dg_png_write(const char *path, const dg_image *img, char *err, size_t err_len) {
    if (err && err_len) err[0] = 0;
    if (!path || !*path) {
        dg_err_set(err, err_len, "(null)", "no output path given");
        return -1;
    }
    if (!img || !img->pixels || (img->channels != 1 && img->channels != 3) || img->w < 1 || img->h < 1 ||
        img->w > DG_PNG_MAX_SIDE || img->h > DG_PNG_MAX_SIDE ||
        (uint64_t)img->w * (uint64_t)img->h * (uint64_t)img->channels > DG_PNG_MAX_DECODED_BYTES) {
        dg_err_set(err, err_len, path, "cannot write a %dx%d image of %d channels (1 or 3 channels, sides 1..%d)",
                   img ? img->w : 0, img ? img->h : 0, img ? img->channels : 0, DG_PNG_MAX_SIDE);
        return -1;
    }
    encoder *e = calloc(1, sizeof *e);
    if (!e) {
        dg_err_set(err, err_len, path, "out of memory");
        return -1;
    }
    e->img = img;
    e->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &e->m, on_error, on_warning);
    e->info = e->png ? png_create_info_struct(e->png) : NULL;
    int rc = -1;
    if (!e->info) snprintf(e->m.msg, sizeof e->m.msg, "cannot start libpng (out of memory?)");
    else rc = run_encoder(e);
    png_destroy_write_struct(e->png ? &e->png : NULL, e->info ? &e->info : NULL);
    if (rc != 0) report(&e->m, path, err, err_len);
    else rc = dg_write_atomic(path, &(dg_chunk){e->p, e->n}, 1, err, err_len);
    free(e->rows);
    free(e->p);
    free(e);
    return rc;
}

long dg_png_numbered(const char *name, const char *prefix) {
    size_t plen = strlen(prefix);
    size_t digits = strncmp(name, prefix, plen) == 0 ? strspn(name + plen, "0123456789") : 0;
    if (digits == 0 || strcmp(name + plen + digits, ".png") != 0) return -1;
    return strtol(name + plen, NULL, 10);
}
