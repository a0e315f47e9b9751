/* host/ssim.c — SSIM in double (see ssim.h). The Gaussian form follows scikit-image's
 * structural_similarity exactly: scipy's normalised Gaussian taps exp(−x²/2σ²) for x in −5..5,
 * population (co)variances from the filtered moments, and the mean of the SSIM map after cropping
 * the 5-pixel border — so only windows that lie wholly inside the image count and the border
 * mode never matters. An image compared with itself gives exactly 1 in both forms. */
#include "ssim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define C1 1e-4 /* (K1·L)², K1 = 0.01, L = 1 */
#define C2 9e-4 /* (K2·L)², K2 = 0.03 */
#define SIGMA 1.5
#define RADIUS (DG_SSIM_WINDOW / 2)

int dg_ssim_parse_mode(const char *text, dg_ssim_mode *mode) {
    if (strcmp(text, "global") == 0) *mode = DG_SSIM_GLOBAL;
    else if (strcmp(text, "gaussian") == 0) *mode = DG_SSIM_GAUSSIAN;
    else return -1;
    return 0;
}

const char *dg_ssim_mode_name(dg_ssim_mode mode) { return mode == DG_SSIM_GLOBAL ? "global" : "gaussian"; }

int dg_ssim_fits(int h, int w, dg_ssim_mode mode) {
    if (h < 1 || w < 1) return 0;
    return mode == DG_SSIM_GLOBAL || (h >= DG_SSIM_WINDOW && w >= DG_SSIM_WINDOW);
}

static double ssim_of(double mx, double my, double vx, double vy, double vxy) {
    return ((2.0 * mx * my + C1) * (2.0 * vxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
}

/* pixel (i, j) of an image whose samples are `step` bytes apart */
#define PX(p, i, j) ((double)(p)[((size_t)(i) * (size_t)w + (size_t)(j)) * (size_t)step] / 255.0)

static double global_ssim(const uint8_t *a, const uint8_t *b, int h, int w, int step) {
    double n = (double)h * w, sa = 0.0, sb = 0.0;
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) sa += PX(a, i, j), sb += PX(b, i, j);
    double ma = sa / n, mb = sb / n, va = 0.0, vb = 0.0, vab = 0.0;
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            double da = PX(a, i, j) - ma, db = PX(b, i, j) - mb;
            va += da * da, vb += db * db, vab += da * db;
        }
    return ssim_of(ma, mb, va / n, vb / n, vab / n);
}

/* The five filtered moments (x, y, x², y², xy) of every interior pixel: a horizontal pass row by
 * row into a ring of the last DG_SSIM_WINDOW rows (memory for 11 rows, not the image), and, once
 * a window's rows are all there, the vertical pass of the interior row they centre; the mean of
 * the SSIM map over the interior. The sums run in the same order as over a whole-image buffer. */
static double gaussian_ssim(const uint8_t *a, const uint8_t *b, int h, int w, int step) {
    double g[DG_SSIM_WINDOW], total = 0.0;
    for (int k = -RADIUS; k <= RADIUS; k++) total += g[k + RADIUS] = exp(-0.5 / (SIGMA * SIGMA) * k * k);
    for (int k = 0; k < DG_SSIM_WINDOW; k++) g[k] /= total;
    const int iw = w - 2 * RADIUS, ih = h - 2 * RADIUS;
    /* ring[((q · WINDOW) + slot) · iw + j]: moment q of image row r, horizontally filtered, slot r % WINDOW */
    double *ring = malloc(sizeof(double) * 5 * DG_SSIM_WINDOW * (size_t)iw);
    if (!ring) return NAN;
#define RING(q, r, j) ring[((size_t)(q) * DG_SSIM_WINDOW + (size_t)((r) % DG_SSIM_WINDOW)) * (size_t)iw + (size_t)(j)]
    double sum = 0.0;
    for (int i = 0; i < h; i++) {
        for (int j = 0; j < iw; j++) {
            double m[5] = {0, 0, 0, 0, 0};
            for (int k = 0; k < DG_SSIM_WINDOW; k++) {
                double x = PX(a, i, j + k), y = PX(b, i, j + k);
                m[0] += g[k] * x, m[1] += g[k] * y, m[2] += g[k] * x * x, m[3] += g[k] * y * y, m[4] += g[k] * x * y;
            }
            for (int q = 0; q < 5; q++) RING(q, i, j) = m[q];
        }
        const int top = i - (DG_SSIM_WINDOW - 1); /* the interior row whose window ends at row i */
        if (top < 0) continue;
        for (int j = 0; j < iw; j++) {
            double m[5] = {0, 0, 0, 0, 0};
            for (int k = 0; k < DG_SSIM_WINDOW; k++)
                for (int q = 0; q < 5; q++) m[q] += g[k] * RING(q, top + k, j);
            sum += ssim_of(m[0], m[1], m[2] - m[0] * m[0], m[3] - m[1] * m[1], m[4] - m[0] * m[1]);
        }
    }
#undef RING
    free(ring);
    return sum / ((double)ih * iw);
}

static double ssim_strided(const uint8_t *a, const uint8_t *b, int h, int w, int step, dg_ssim_mode mode) {
    if (!dg_ssim_fits(h, w, mode)) return NAN;
    return mode == DG_SSIM_GLOBAL ? global_ssim(a, b, h, w, step) : gaussian_ssim(a, b, h, w, step);
}

double dg_ssim(const uint8_t *a, const uint8_t *b, int h, int w, dg_ssim_mode mode) {
    return ssim_strided(a, b, h, w, 1, mode);
}

double dg_ssim_interleaved(const uint8_t *a, const uint8_t *b, int h, int w, int channels, dg_ssim_mode mode) {
    if (channels < 1) return NAN;
    double sum = 0.0;
    for (int ch = 0; ch < channels; ch++) sum += ssim_strided(a + ch, b + ch, h, w, channels, mode);
    return sum / channels;
}
