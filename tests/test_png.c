/* tests/test_png.c — host/png: write→read round trips (grey and RGB, odd sizes, all 256 values, bit
 * for bit), the conversion rules (16-bit rounding, low bit depths, palettes, alpha ignored, Adam7,
 * grey↔RGB), and refusal of bad files and bad writes. Files live in a fresh temp dir, removed at the end. */
#include <dirent.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "host/png.h"

static char tmpdir[512];
static char errbuf[1024];

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", tmpdir, name); }

static int count_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static void write_file(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

/* A deterministic image whose pixels run through all 256 values. */
static dg_image make_image(int w, int h, int c, unsigned seed) {
    dg_image im = {w, h, c, malloc((size_t)w * h * c), 0, NULL};
    for (size_t i = 0; i < (size_t)w * h * c; i++) im.pixels[i] = (uint8_t)(i * 7 + seed * 31 + (i / 256) * 3);
    return im;
}

/* "<prefix>: <something>" */
static int names(const char *err, const char *prefix) {
    size_t k = strlen(prefix);
    return strncmp(err, prefix, k) == 0 && err[k] == ':' && err[k + 1] == ' ' && err[k + 2];
}

/* ------------------------------------------------------------------------------------------- */
/* files made directly with libpng (what our writer never produces) and by hand                  */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} membuf;

static void mem_write(png_structp png, png_bytep data, size_t len) {
    membuf *m = png_get_io_ptr(png);
    if (m->n + len > m->cap) {
        m->cap = (m->n + len) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, data, len);
    m->n += len;
}
static void mem_flush(png_structp png) { (void)png; }

/* rows: h rows of packed samples as PNG stores them (16-bit big-endian, low depths packed). */
static membuf libpng_encode(int w, int h, int depth, int ctype, int interlace, const uint8_t *data, size_t rowbytes,
                            const png_color *pal, int npal, const uint8_t *trns, int ntrns, const png_color_16 *trns_c,
                            int with_text) {
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "libpng_encode failed\n");
        exit(2);
    }
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_check_for_invalid_index(png, 0); /* lets a test write indices past the PLTE entries */
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns || trns_c) png_set_tRNS(png, info, trns, ntrns, trns_c);
    if (with_text) {
        png_text t = {0};
        t.compression = PNG_TEXT_COMPRESSION_NONE;
        t.key = (png_charp) "Comment";
        t.text = (png_charp) "dnnguard test";
        png_set_text(png, info, &t, 1);
    }
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(data + (size_t)y * rowbytes);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return m;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void add_chunk(membuf *m, const char *type, const uint8_t *data, uint32_t len) {
    m->p = realloc(m->p, m->n + len + 12);
    put_be32(m->p + m->n, len);
    memcpy(m->p + m->n + 4, type, 4);
    if (len) memcpy(m->p + m->n + 8, data, len);
    put_be32(m->p + m->n + 8 + len, (uint32_t)crc32(0, m->p + m->n + 4, len + 4));
    m->n += len + 12;
}

/* A hand-made file whose IHDR claims w×h (grey or RGB, 8 bits) over a few rows of real data. */
static membuf hand_made(uint32_t w, uint32_t h, int ctype) {
    membuf m = {0};
    m.p = malloc(8);
    memcpy(m.p, "\x89PNG\r\n\x1a\n", 8);
    m.n = 8;
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 8;
    ihdr[9] = (uint8_t)ctype;
    add_chunk(&m, "IHDR", ihdr, 13);
    uint8_t raw[64] = {0}, z[128];
    uLongf zn = sizeof z;
    compress(z, &zn, raw, sizeof raw);
    add_chunk(&m, "IDAT", z, (uint32_t)zn);
    add_chunk(&m, "IEND", NULL, 0);
    return m;
}

/* Offset of the first chunk of this type, or 0. */
static size_t find_chunk(const membuf *m, const char *type) {
    for (size_t at = 8; at + 12 <= m->n;) {
        uint32_t len = (uint32_t)m->p[at] << 24 | (uint32_t)m->p[at + 1] << 16 | (uint32_t)m->p[at + 2] << 8 | m->p[at + 3];
        if (memcmp(m->p + at + 4, type, 4) == 0) return at;
        at += (size_t)len + 12;
    }
    return 0;
}

static void decode_ok(const membuf *m, int want, dg_image *im, const char *what) {
    int rc = dg_png_decode(m->p, m->n, what, im, want, errbuf, sizeof errbuf);
    CHECK(rc == 0, "%s: %s", what, errbuf);
}

/* ------------------------------------------------------------------------------------------- */

static void test_round_trips(void) {
    static const int sizes[][2] = {{1, 1}, {3, 5}, {5, 3}, {257, 3}, {16, 16}, {2, 129}, {64, 48}};
    char path[700];
    path_in(path, sizeof path, "rt.png");
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int c = 1; c <= 3; c += 2) {
            dg_image im = make_image(sizes[s][0], sizes[s][1], c, (unsigned)s);
            int rc = dg_png_write(path, &im, errbuf, sizeof errbuf);
            CHECK(rc == 0, "write %dx%dx%d: %s", im.w, im.h, c, errbuf);
            dg_image back;
            rc = dg_png_read(path, &back, 0, errbuf, sizeof errbuf);
            CHECK(rc == 0 && back.w == im.w && back.h == im.h && back.channels == c && back.stored_bits == 8 &&
                      memcmp(back.pixels, im.pixels, (size_t)im.w * im.h * c) == 0,
                  "round trip %dx%dx%d: %s", im.w, im.h, c, rc ? errbuf : "pixels differ");
            dg_image_free(&back);
            rc = dg_png_read(path, &back, c, errbuf, sizeof errbuf);
            CHECK(rc == 0 && back.channels == c && memcmp(back.pixels, im.pixels, (size_t)im.w * im.h * c) == 0,
                  "round trip asking for %d channels", c);
            dg_image_free(&back);
            dg_image_free(&im);
        }
    /* every value in both formats, checked value by value */
    dg_image g = {256, 1, 1, malloc(256), 0, NULL}, rgb = {256, 1, 3, malloc(768), 0, NULL};
    for (int v = 0; v < 256; v++) {
        g.pixels[v] = (uint8_t)v;
        rgb.pixels[3 * v] = (uint8_t)v;
        rgb.pixels[3 * v + 1] = (uint8_t)(255 - v);
        rgb.pixels[3 * v + 2] = (uint8_t)(v * 37);
    }
    dg_image back;
    CHECK(dg_png_write(path, &g, errbuf, sizeof errbuf) == 0 && dg_png_read(path, &back, 0, errbuf, sizeof errbuf) == 0,
          "all grey values: %s", errbuf);
    int bad = back.channels != 1;
    for (int v = 0; v < 256 && !bad; v++) bad += back.pixels[v] != v;
    CHECK(!bad, "grey values do not come back exactly");
    dg_image_free(&back);
    CHECK(dg_png_write(path, &rgb, errbuf, sizeof errbuf) == 0 && dg_png_read(path, &back, 0, errbuf, sizeof errbuf) == 0,
          "all RGB values: %s", errbuf);
    CHECK(back.channels == 3 && memcmp(back.pixels, rgb.pixels, 768) == 0, "RGB values do not come back exactly");
    dg_image_free(&back);

    /* grey → RGB replicates; RGB → grey is PIL's BT.601 fixed point */
    CHECK(dg_png_write(path, &g, errbuf, sizeof errbuf) == 0 && dg_png_read(path, &back, 3, errbuf, sizeof errbuf) == 0,
          "grey as RGB: %s", errbuf);
    bad = back.channels != 3;
    for (int v = 0; v < 256 && !bad; v++)
        bad += back.pixels[3 * v] != v || back.pixels[3 * v + 1] != v || back.pixels[3 * v + 2] != v;
    CHECK(!bad, "grey → RGB is not replication");
    dg_image_free(&back);
    CHECK(dg_png_write(path, &rgb, errbuf, sizeof errbuf) == 0 && dg_png_read(path, &back, 1, errbuf, sizeof errbuf) == 0,
          "RGB as grey: %s", errbuf);
    bad = back.channels != 1;
    for (int v = 0; v < 256 && !bad; v++) {
        const uint8_t *p = rgb.pixels + 3 * v;
        bad += back.pixels[v] != (19595 * p[0] + 38470 * p[1] + 7471 * p[2] + 32768) >> 16;
    }
    CHECK(!bad, "RGB → grey is not (19595 R + 38470 G + 7471 B + 32768) >> 16");
    /* a few known values of PIL's convert("L") */
    static const uint8_t px[][4] = {{255, 0, 0, 76}, {0, 255, 0, 150}, {0, 0, 255, 29}, {255, 255, 255, 255}, {1, 1, 1, 1}};
    dg_image five = {5, 1, 3, malloc(15), 0, NULL};
    for (int i = 0; i < 5; i++) memcpy(five.pixels + 3 * i, px[i], 3);
    dg_image_free(&back);
    CHECK(dg_png_write(path, &five, errbuf, sizeof errbuf) == 0 && dg_png_read(path, &back, 1, errbuf, sizeof errbuf) == 0,
          "%s", errbuf);
    for (int i = 0; i < 5 && back.pixels; i++)
        CHECK(back.pixels[i] == px[i][3], "L(%d,%d,%d) = %d, PIL gives %d", px[i][0], px[i][1], px[i][2], back.pixels[i],
              px[i][3]);
    dg_image_free(&back);
    dg_image_free(&five);

    /* the written file: mode 0644 less the umask, nothing else left in the folder */
    mode_t um = umask(022);
    umask(um);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == (0644 & ~um), "mode %o", (unsigned)(st.st_mode & 0777));
    CHECK(count_dir_entries(tmpdir) == 1, "temporary files left beside the output");
    unlink(path);
    dg_image_free(&g);
    dg_image_free(&rgb);
}

static void test_formats(void) {
    enum { W = 256, H = 256 };
    dg_image a, b;
    /* 16-bit grey, every value: round(v·255/65535); 16-bit RGB the same per channel */
    uint8_t *d16 = malloc((size_t)W * H * 2);
    for (int i = 0; i < W * H; i++) {
        d16[2 * i] = (uint8_t)(i >> 8);
        d16[2 * i + 1] = (uint8_t)i;
    }
    membuf m = libpng_encode(W, H, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, d16, W * 2, NULL, 0, NULL, 0, NULL, 0);
    decode_ok(&m, 0, &a, "grey16.png");
    int bad = a.channels != 1 || a.w != W || a.h != H;
    for (int v = 0; v < W * H && !bad; v++) bad += a.pixels[v] != (uint8_t)((v * 255u + 32767u) / 65535u);
    CHECK(!bad, "16-bit grey is not rounded to the nearest 8-bit value");
    CHECK(a.stored_bits == 16, "a 16-bit file reports stored_bits %d", a.stored_bits);
    int keep = 1; /* 8-bit values stored as 16-bit (v·257) come back unchanged */
    for (int v = 0; v < 256; v++) keep &= a.pixels[v * 257] == v;
    CHECK(keep, "v*257 does not come back as v");
    dg_image_free(&a);
    free(m.p);
    /* 16-bit RGBA (alpha ignored): 4 rows of 256 pixels */
    uint8_t *d64 = malloc((size_t)W * 4 * 2 * 4);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < W; x++)
            for (int k = 0; k < 4; k++) {
                unsigned v = (unsigned)(x * 257 + y * 61 + k * 4099) & 0xffffu;
                d64[((size_t)y * W + x) * 8 + 2 * k] = (uint8_t)(v >> 8);
                d64[((size_t)y * W + x) * 8 + 2 * k + 1] = (uint8_t)v;
            }
    m = libpng_encode(W, 4, 16, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE, d64, W * 8, NULL, 0, NULL, 0, NULL, 0);
    decode_ok(&m, 0, &a, "rgba16.png");
    bad = a.channels != 3;
    for (int i = 0; i < W * 4 && !bad; i++)
        for (int k = 0; k < 3; k++) {
            unsigned v = (unsigned)d64[8 * i + 2 * k] << 8 | d64[8 * i + 2 * k + 1];
            bad += a.pixels[3 * i + k] != (v * 255u + 32767u) / 65535u;
        }
    CHECK(!bad, "16-bit RGBA → RGB");
    dg_image_free(&a);
    free(m.p);
    free(d64);

    /* low bit depths: 1, 2, 4-bit grey scaled to 0..255 */
    for (int depth = 1; depth <= 4; depth *= 2) {
        int w = 13, per = 8 / depth, maxv = (1 << depth) - 1;
        size_t rb = (size_t)(w + per - 1) / per;
        uint8_t packed[3 * 7] = {0};
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < w; x++) {
                int v = (x + y) % (maxv + 1);
                packed[y * rb + (size_t)x / per] |= (uint8_t)(v << (8 - depth * (x % per + 1)));
            }
        m = libpng_encode(w, 3, depth, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, packed, rb, NULL, 0, NULL, 0, NULL, 0);
        decode_ok(&m, 0, &a, "lowdepth.png");
        bad = a.channels != 1 || a.w != w || a.h != 3;
        for (int y = 0; y < 3 && !bad; y++)
            for (int x = 0; x < w; x++) bad += a.pixels[y * w + x] != ((x + y) % (maxv + 1)) * 255 / maxv;
        CHECK(!bad, "%d-bit grey not scaled to 0..255", depth);
        dg_image_free(&a);
        free(m.p);
    }

    /* palette (4-bit, with tRNS: alpha ignored) → RGB, and as grey */
    png_color pal[16];
    uint8_t trns[16];
    for (int i = 0; i < 16; i++) {
        pal[i].red = (png_byte)(i * 17);
        pal[i].green = (png_byte)(255 - i * 13);
        pal[i].blue = (png_byte)(i * 91);
        trns[i] = (uint8_t)(i * 16);
    }
    uint8_t idx[5 * 3];
    for (int i = 0; i < 15; i++) idx[i] = (uint8_t)((i % 16) << 4 | ((i * 5 + 1) % 16));
    m = libpng_encode(10, 3, 4, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, idx, 5, pal, 16, trns, 16, NULL, 0);
    decode_ok(&m, 0, &a, "palette.png");
    decode_ok(&m, 1, &b, "palette.png");
    bad = a.channels != 3 || b.channels != 1;
    for (int y = 0; y < 3 && !bad; y++)
        for (int x = 0; x < 10; x++) {
            int byte = idx[y * 5 + x / 2], i = x % 2 ? byte & 15 : byte >> 4;
            const uint8_t *p = a.pixels + 3 * (y * 10 + x);
            bad += p[0] != pal[i].red || p[1] != pal[i].green || p[2] != pal[i].blue;
            bad += b.pixels[y * 10 + x] != (19595 * pal[i].red + 38470 * pal[i].green + 7471 * pal[i].blue + 32768) >> 16;
        }
    CHECK(!bad, "palette with transparency → RGB / grey");
    dg_image_free(&a);
    dg_image_free(&b);
    free(m.p);

    /* an index past the PLTE entries is refused (libpng made it black, PIL grey i), 4- and 8-bit,
     * interlaced too: the same 4 entries, indices up to 15 (4-bit) or 200 (8-bit) */
    for (int depth = 4; depth <= 8; depth += 4)
        for (int interlace = 0; interlace < 2; interlace++) {
            uint8_t past[10 * 3];
            const size_t rb = depth == 4 ? 5 : 10;
            memset(past, 0, sizeof past);
            past[rb + 1] = depth == 4 ? 0x2f : 200; /* row 1, pixel 3 (4-bit) or 1 (8-bit) */
            m = libpng_encode(10, 3, depth, PNG_COLOR_TYPE_PALETTE, interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                              past, rb, pal, 4, NULL, 0, NULL, 0);
            for (int want = 0; want <= 3; want += (want == 0 ? 1 : 2)) {
                dg_image im = {7, 7, 7, (uint8_t *)1, 0, NULL};
                int rc = dg_png_decode(m.p, m.n, "past.png", &im, want, errbuf, sizeof errbuf);
                CHECK(rc == -1 && im.pixels == NULL && strstr(errbuf, depth == 4 ? "(3, 1) has palette index 15" :
                                                                  "(1, 1) has palette index 200") &&
                          strstr(errbuf, "4 entries"),
                      "%d-bit palette index past PLTE (interlace %d, want %d): rc %d, '%s'", depth, interlace, want, rc,
                      errbuf);
                if (rc == 0) dg_image_free(&im);
            }
            free(m.p);
        }

    /* grey+alpha → grey (alpha ignored); grey with a tRNS colour key */
    uint8_t ga[2 * 7 * 2];
    for (int i = 0; i < 14; i++) ga[2 * i] = (uint8_t)(i * 19), ga[2 * i + 1] = (uint8_t)(i * 3);
    m = libpng_encode(7, 2, 8, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_INTERLACE_NONE, ga, 14, NULL, 0, NULL, 0, NULL, 0);
    decode_ok(&m, 0, &a, "ga.png");
    bad = a.channels != 1;
    for (int i = 0; i < 14 && !bad; i++) bad += a.pixels[i] != ga[2 * i];
    CHECK(!bad, "grey+alpha → grey");
    dg_image_free(&a);
    free(m.p);
    dg_image g = make_image(9, 4, 1, 3);
    png_color_16 key = {0};
    key.gray = g.pixels[5];
    m = libpng_encode(9, 4, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, g.pixels, 9, NULL, 0, NULL, 0, &key, 0);
    decode_ok(&m, 0, &a, "grey-trns.png");
    CHECK(a.channels == 1 && memcmp(a.pixels, g.pixels, 36) == 0, "grey with tRNS: the key colour must be kept");
    dg_image_free(&a);
    dg_image_free(&g);
    free(m.p);

    /* Adam7 interlacing: the same pixels as the plain file, grey, RGB and 16-bit, odd sizes */
    for (int c = 1; c <= 3; c += 2) {
        static const int sz[][2] = {{1, 1}, {3, 5}, {17, 9}, {33, 40}};
        for (int s = 0; s < 4; s++) {
            dg_image im = make_image(sz[s][0], sz[s][1], c, 11u + (unsigned)s);
            m = libpng_encode(im.w, im.h, 8, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7,
                              im.pixels, (size_t)im.w * c, NULL, 0, NULL, 0, NULL, 0);
            decode_ok(&m, 0, &a, "adam7.png");
            CHECK(a.channels == c && a.w == im.w && a.h == im.h &&
                      memcmp(a.pixels, im.pixels, (size_t)im.w * im.h * c) == 0,
                  "Adam7 %dx%dx%d differs from the plain pixels", im.w, im.h, c);
            dg_image_free(&a);
            dg_image_free(&im);
            free(m.p);
        }
    }
    m = libpng_encode(W, H, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_ADAM7, d16, W * 2, NULL, 0, NULL, 0, NULL, 0);
    decode_ok(&m, 0, &a, "adam7-16.png");
    bad = a.channels != 1;
    for (int v = 0; v < W * H && !bad; v++) bad += a.pixels[v] != (uint8_t)((v * 255u + 32767u) / 65535u);
    CHECK(!bad, "16-bit Adam7 grey");
    dg_image_free(&a);
    free(m.p);
    free(d16);

    /* a text chunk is accepted; a bad CRC on it is not */
    dg_image im = make_image(4, 4, 3, 5);
    m = libpng_encode(4, 4, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, im.pixels, 12, NULL, 0, NULL, 0, NULL, 1);
    decode_ok(&m, 0, &a, "text.png");
    CHECK(a.channels == 3 && memcmp(a.pixels, im.pixels, 48) == 0, "file with a tEXt chunk");
    dg_image_free(&a);
    size_t t = find_chunk(&m, "tEXt");
    CHECK(t > 0, "no tEXt chunk written");
    if (t) {
        uint32_t len = (uint32_t)m.p[t] << 24 | (uint32_t)m.p[t + 1] << 16 | (uint32_t)m.p[t + 2] << 8 | m.p[t + 3];
        m.p[t + 8 + len] ^= 0x40; /* its CRC */
        CHECK(dg_png_decode(m.p, m.n, "text.png", &a, 0, errbuf, sizeof errbuf) == -1 && names(errbuf, "text.png") &&
                  strstr(errbuf, "CRC") && a.pixels == NULL,
              "bad ancillary CRC accepted: '%s'", errbuf);
    }
    dg_image_free(&im);
    free(m.p);
}

/* Every way a file can be wrong: -1, a message that starts with the name, img zeroed. */
static void expect_refused(const uint8_t *p, size_t n, const char *what, const char *must_say) {
    dg_image im = {7, 7, 7, (uint8_t *)1, 0, NULL};
    errbuf[0] = 0;
    int rc = dg_png_decode(p, n, "bad.png", &im, 0, errbuf, sizeof errbuf);
    CHECK(rc == -1 && names(errbuf, "bad.png") && im.pixels == NULL && im.w == 0 &&
              (!must_say || strstr(errbuf, must_say)),
          "%s: rc %d, '%s'", what, rc, errbuf);
    if (rc == 0) dg_image_free(&im);
}

static void test_refusals(void) {
    char path[700], dpath[700];
    dg_image im = make_image(37, 11, 3, 9), a;
    path_in(path, sizeof path, "good.png");
    CHECK(dg_png_write(path, &im, errbuf, sizeof errbuf) == 0, "%s", errbuf);
    size_t n = 0;
    uint8_t *good = read_file(path, &n);
    CHECK(good && n > 60, "written file unreadable");
    if (!good) return;

    expect_refused(good, 0, "empty", "empty");
    uint8_t *cut = malloc(n);
    int fails = 0;
    for (size_t k = 1; k < n; k++) { /* every cut point */
        memcpy(cut, good, k);
        errbuf[0] = 0;
        int rc = dg_png_decode(cut, k, "cut.png", &a, 0, errbuf, sizeof errbuf);
        if (rc != -1 || !names(errbuf, "cut.png") || a.pixels) {
            if (fails++ < 3) CHECK(0, "cut at %zu of %zu: rc %d, '%s'", k, n, rc, errbuf);
            dg_image_free(&a);
        }
    }
    CHECK(fails == 0, "%d cut points accepted or badly reported", fails);
    memcpy(cut, good, n);
    cut[0] = 'G';
    expect_refused(cut, n, "bad signature", "signature");
    memcpy(cut, good, n);
    cut[4] = '\n'; /* the \r\n → \n\n of a text-mode transfer */
    expect_refused(cut, n, "mangled signature", "signature");
    static const char *crcs[] = {"IHDR", "IDAT", "IEND"};
    for (int c = 0; c < 3; c++) {
        memcpy(cut, good, n);
        membuf m = {cut, n, n};
        size_t at = find_chunk(&m, crcs[c]);
        CHECK(at > 0, "no %s", crcs[c]);
        uint32_t len = (uint32_t)cut[at] << 24 | (uint32_t)cut[at + 1] << 16 | (uint32_t)cut[at + 2] << 8 | cut[at + 3];
        cut[at + 8 + len + 3] ^= 1;
        expect_refused(cut, n, crcs[c], "CRC");
        memcpy(cut, good, n); /* and a flipped data byte under an intact CRC */
        if (len) {
            cut[at + 8 + len / 2] ^= 0x10; /* zlib may object before the CRC is checked */
            expect_refused(cut, n, "flipped data byte", NULL);
        }
    }
    free(cut);

    /* huge declared sizes, with valid CRCs: the limits speak before any allocation */
    membuf m = hand_made(100000, 100000, 0);
    expect_refused(m.p, m.n, "100000x100000", "width");
    free(m.p);
    m = hand_made(16384, 16385, 2);
    expect_refused(m.p, m.n, "height 16385", "height");
    free(m.p);
    m = hand_made(16384, 16384, 2);
    expect_refused(m.p, m.n, "16384x16384 RGB", "MiB limit");
    free(m.p);
    m = hand_made(0, 5, 0);
    expect_refused(m.p, m.n, "zero width", NULL);
    free(m.p);
    m = hand_made(8, 8, 0); /* 64 bytes of data for 8 rows of 1 + 8 bytes: too little image data */
    expect_refused(m.p, m.n, "short IDAT", NULL);
    free(m.p);

    /* files: missing, a folder, bad arguments */
    path_in(dpath, sizeof dpath, "missing.png");
    CHECK(dg_png_read(dpath, &a, 0, errbuf, sizeof errbuf) == -1 && names(errbuf, dpath), "missing file: '%s'", errbuf);
    CHECK(dg_png_read(tmpdir, &a, 0, errbuf, sizeof errbuf) == -1 && names(errbuf, tmpdir), "a folder: '%s'", errbuf);
    CHECK(dg_png_read(path, &a, 2, errbuf, sizeof errbuf) == -1 && names(errbuf, path), "want 2: '%s'", errbuf);
    write_file(dpath, good, 0);
    CHECK(dg_png_read(dpath, &a, 0, errbuf, sizeof errbuf) == -1 && names(errbuf, dpath) && strstr(errbuf, "empty"),
          "empty file: '%s'", errbuf);
    write_file(dpath, good, n / 2);
    CHECK(dg_png_read(dpath, &a, 0, errbuf, sizeof errbuf) == -1 && names(errbuf, dpath) && strstr(errbuf, "truncated"),
          "truncated file: '%s'", errbuf);
    unlink(dpath);

    /* writes that fail leave nothing behind, and the old file in place */
    int before = count_dir_entries(tmpdir);
    path_in(dpath, sizeof dpath, "sub");
    mkdir(dpath, 0755);
    CHECK(dg_png_write(dpath, &im, errbuf, sizeof errbuf) == -1 && names(errbuf, dpath), "over a folder: '%s'", errbuf);
    CHECK(count_dir_entries(tmpdir) == before + 1, "a temporary file was left after a failed rename");
    rmdir(dpath);
    path_in(dpath, sizeof dpath, "no/such/dir/x.png");
    CHECK(dg_png_write(dpath, &im, errbuf, sizeof errbuf) == -1 && names(errbuf, dpath), "no folder: '%s'", errbuf);
    if (geteuid() != 0) { /* root writes anywhere */
        path_in(dpath, sizeof dpath, "ro");
        mkdir(dpath, 0500);
        char inner[800];
        snprintf(inner, sizeof inner, "%s/x.png", dpath);
        CHECK(dg_png_write(inner, &im, errbuf, sizeof errbuf) == -1 && names(errbuf, inner), "read-only: '%s'", errbuf);
        CHECK(count_dir_entries(dpath) == 0, "files left in a read-only folder");
        rmdir(dpath);
    }
    dg_image bad_img[] = {{0, 3, 1, im.pixels, 0, NULL},  {3, 0, 3, im.pixels, 0, NULL}, {2, 2, 2, im.pixels, 0, NULL},
                          {2, 2, 4, im.pixels, 0, NULL},  {2, 2, 3, NULL, 0, NULL},     {16385, 1, 1, im.pixels, 0, NULL}};
    for (size_t i = 0; i < sizeof bad_img / sizeof *bad_img; i++)
        CHECK(dg_png_write(path, &bad_img[i], errbuf, sizeof errbuf) == -1 && names(errbuf, path),
              "bad image %zu written: '%s'", i, errbuf);
    CHECK(dg_png_read(path, &a, 0, errbuf, sizeof errbuf) == 0 && a.w == 37 && memcmp(a.pixels, im.pixels, 37 * 11 * 3) == 0,
          "the old file was damaged by failed writes");
    dg_image_free(&a);
    CHECK(count_dir_entries(tmpdir) == before, "files left behind by failed writes");
    unlink(path);
    free(good);
    dg_image_free(&im);
    dg_image_free(&im); /* harmless twice */
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/dg_png_test_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_round_trips();
    test_formats();
    test_refusals();
    dg_test_empty_dir(tmpdir);
    rmdir(tmpdir);
    return dg_test_done("test_png");
}
