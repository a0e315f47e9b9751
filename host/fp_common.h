/* host/fp_common.h — what the fingerprint commands (fp issue | auth | eval, predict, attack forge)
 * share: the net a registry describes, 8-bit images to the net's input exactly as the data loader
 * makes it, and probabilities of a batch of inputs. */
#ifndef DG_FP_COMMON_H
#define DG_FP_COMMON_H

#include <stdint.h>

#include "data.h"
#include "fingerprint.h"
#include "net.h"
#include "png.h"

/* Planar 8-bit pixels [c·h·w] → the net's input [c·h·w] with mean/std (kernels/math/pixel.h). */
void dg_fp_pixels_to_input(const uint8_t *pixels, int c, int hw, const float *mean, const float *std, float *u);

/* An interleaved PNG image (channels == c) ↔ planar pixels [c·h·w]. */
void dg_fp_image_to_planar(const dg_image *img, uint8_t *planar);
void dg_fp_planar_to_image(const uint8_t *planar, int c, int h, int w, dg_image *img); /* img->pixels caller-owned */

/* Softmax probabilities [n, classes] of n inputs (device pointer x, or host when host_x is set)
 * on the net in eval mode. */
void dg_fp_probs(dg_net *net, const float *host_x, int n, float *probs);

/* Read a fingerprint PNG and check it has the registry's size and channels; pixels planar
 * [c·h·w] (caller frees). NULL with the message printed. */
uint8_t *dg_fp_read_png(const char *path, const dg_fp_registry *r);

/* Build and load the registry's net from model on backend be (batch capacity `batch`), after
 * checking that model is the one the registry was issued for. NULL with the message printed. */
dg_net *dg_fp_registry_net(const dg_fp_registry *r, const char *model, const dg_backend *be, int batch);

#endif
