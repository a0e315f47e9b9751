/* host/ssim.h — the structural similarity index of two 8-bit images (Wang et al. 2004), in the
 * two forms InFIP's verification can use: the paper's global form (one window over the whole
 * image) and the standard windowed form (11×11 Gaussian, σ = 1.5, as scikit-image computes it
 * with gaussian_weights=True, sigma=1.5, use_sample_covariance=False). Host memory only. */
#ifndef DG_SSIM_H
#define DG_SSIM_H

#include <stdint.h>

typedef enum dg_ssim_mode {
    DG_SSIM_GLOBAL,   /* μ, σ², σxy over all pixels; c1 = (0.01)², c2 = (0.03)² on [0, 1] values */
    DG_SSIM_GAUSSIAN, /* the mean of the SSIM map over the pixels whose 11×11 window fits inside */
} dg_ssim_mode;

#define DG_SSIM_WINDOW 11 /* the Gaussian window's side: 2·int(3.5·1.5 + 0.5) + 1, scikit-image's */

/* "global" or "gaussian" → mode; 0, or −1 for anything else. */
int dg_ssim_parse_mode(const char *text, dg_ssim_mode *mode);
const char *dg_ssim_mode_name(dg_ssim_mode mode);

/* SSIM of two h×w single-channel images a, b (row-major, values 0–255 read as v/255), in double.
 * The Gaussian form needs h, w ≥ DG_SSIM_WINDOW; it returns NAN otherwise (callers check first
 * with dg_ssim_fits). NAN also when h or w < 1. */
double dg_ssim(const uint8_t *a, const uint8_t *b, int h, int w, dg_ssim_mode mode);
int dg_ssim_fits(int h, int w, dg_ssim_mode mode);

/* For interleaved images of `channels` channels: the mean over channels of each channel's SSIM
 * (scikit-image's channel_axis=-1). */
double dg_ssim_interleaved(const uint8_t *a, const uint8_t *b, int h, int w, int channels, dg_ssim_mode mode);

#endif
