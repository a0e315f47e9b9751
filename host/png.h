/* host/png.h — 8-bit grey and RGB images and PNG files (through libpng): a reader for hostile
 * files (every PNG libpng accepts, normalised to 8-bit grey or RGB) and an atomic writer.
 * Host memory only; knows nothing of nets, fingerprints or devices. */
#ifndef DG_PNG_H
#define DG_PNG_H

#include <stddef.h>
#include <stdint.h>

/* Row-major, channels interleaved (R,G,B,R,G,B,...); channels 1 (grey) or 3 (RGB);
 * pixels holds w·h·channels bytes (malloc'd; dg_image_free releases it). */
typedef struct dg_image {
    int w, h, channels;
    uint8_t *pixels;
    int stored_bits; /* set by the reader: the file's bits per sample (1, 2, 4, 8, 16); ignored by the writer */
    const char *stored_as; /* set by the reader: "grey", "grey+alpha", "RGB", "RGBA" or "palette" (static text) */
} dg_image;

/* For messages about a read image's channels: "" when the file held them as read (grey, RGB),
 * else what it held and what reading made of it, e.g. " (stored as RGBA: read as RGB, alpha dropped)". */
const char *dg_png_stored_note(const dg_image *img);

/* Limits of the reader (and of the writer, so that what we write we can read back). */
#define DG_PNG_MAX_SIDE 16384                       /* pixels, width and height */
#define DG_PNG_MAX_DECODED_BYTES ((size_t)256 << 20) /* w·h·channels, as decoded and as returned */
#define DG_PNG_MAX_CHUNK_BYTES ((size_t)8 << 20)    /* one ancillary chunk (text, ICC profile) */
#define DG_PNG_MAX_FILE_BYTES ((size_t)512 << 20)

/* Write img as an 8-bit grey (channels 1) or RGB (channels 3) PNG, not interlaced, with no
 * gamma or colour chunks. Atomic: "<path>.tmp.<pid>.<n>" in the same folder (mode 0644 less the
 * umask), fsync, rename, fsync of the folder. 0, or -1 with err "<path>: <problem>" and no file
 * left behind. */
int dg_png_write(const char *path, const dg_image *img, char *err, size_t err_len);

/* Read a PNG file; see dg_png_decode. 0, or -1 with err "<path>: <problem>" and img zeroed. */
int dg_png_read(const char *path, dg_image *img, int want_channels, char *err, size_t err_len);

/* Decode a PNG held in memory (name is used in messages only). Accepts every colour type, bit
 * depth (1, 2, 4, 8, 16) and interlacing (Adam7) that libpng accepts, and normalises:
 *  - 8-bit samples are returned exactly as stored (a file we wrote reads back bit for bit);
 *  - 1/2/4-bit grey is scaled to 0..255 (v·255/(2^bits − 1)), palettes are expanded to RGB;
 *  - 16-bit samples become the nearest 8-bit value, round(v·255/65535) = (v·255 + 32767) / 65535
 *    (integer division; libpng's png_set_scale_16): unbiased, where the high byte would round
 *    every value down, and 8-bit data stored as 16-bit (v·257) comes back unchanged;
 *  - alpha (an alpha channel or a tRNS chunk) is ignored, not composited onto a background;
 *  - gamma, sBIT and colour-profile chunks are ignored: samples are taken as they are.
 * want_channels: 0 = as stored (grey and grey+alpha → 1, palette and RGB(A) → 3), 1 = grey,
 * 3 = RGB. Grey → RGB replicates the value; RGB → grey is ITU-R BT.601 luma exactly as PIL's
 * convert("L") computes it: L = (19595·R + 38470·G + 7471·B + 32768) >> 16.
 * Refused, with one line naming name: a bad signature, an empty or truncated file, any CRC
 * mismatch (critical or ancillary chunk), a side over DG_PNG_MAX_SIDE, a decoded size over
 * DG_PNG_MAX_DECODED_BYTES, a palette index past the PLTE entries, missing IEND, and whatever
 * else libpng reports as an error. An ancillary chunk over DG_PNG_MAX_CHUNK_BYTES is skipped
 * unread (no ancillary chunk changes the pixels returned). 0, or -1 with err "<name>: <problem>", img zeroed. */
int dg_png_decode(const uint8_t *bytes, size_t n, const char *name, dg_image *img, int want_channels, char *err,
                  size_t err_len);

/* Frees the pixels and zeroes img; harmless on a zeroed image. */
void dg_image_free(dg_image *img);

/* The number of a file name PREFIX<digits>.png (key-00012.png, fp-00012.png, user-07.png), or −1
 * for any other name (LONG_MAX past its range: still a number, and past any count). */
long dg_png_numbered(const char *name, const char *prefix);

#endif
