/* host/fp_common.h — what the fingerprint commands (fp issue | auth | eval, predict, attack forge)
 * share: the net a registry describes and the data checked against it, 8-bit images to the net's
 * input exactly as the data loader makes it, and probabilities of a batch of inputs. */
#ifndef DG_FP_COMMON_H
#define DG_FP_COMMON_H

#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "cli.h"
#include "cw.h"
#include "data.h"
#include "fingerprint.h"
#include "net.h"
#include "png.h"

/* The generator's options on the command line, shared by fp issue, fp eval and attack forge: an
 * unset value (NaN, INT_MIN: values the parser never gives) keeps the default of the data set's kind;
 * a set one must be in range (the rates and α > 0, the weight ≥ 0, the counts ≥ 1). */
typedef struct dg_cw_cli {
    float lr, alpha, alpha_max, conf_weight;
    int search_steps, iters;
} dg_cw_cli;
#define DG_CW_CLI_INIT {NAN, NAN, NAN, NAN, INT_MIN, INT_MIN}
/* the search's options; DG_CW_CLI_OPTS adds the confidence term's weight (attack forge's untargeted
 * C&W has no confidence term, so it takes only these) */
#define DG_CW_SEARCH_OPTS(v)                                                                                     \
    {"lr", DG_OPT_FLOAT, &(v).lr, "Adam step on δ (default: 0.005 grey, 0.001 colour)"},                          \
    {"alpha", DG_OPT_FLOAT, &(v).alpha, "first α (default: 20 grey, 0.5 colour)"},                               \
    {"alpha-max", DG_OPT_FLOAT, &(v).alpha_max, "α is searched in (0, alpha-max) (default: 40 grey, 1 colour)"}, \
    {"search-steps", DG_OPT_INT, &(v).search_steps, "binary-search steps of α (default 6)"},                     \
    {"iters", DG_OPT_INT, &(v).iters, "Adam steps per search step (default 1000)"}
#define DG_CW_CLI_OPTS(v)                                                                                        \
    DG_CW_SEARCH_OPTS(v),                                                                                        \
    {"conf-weight", DG_OPT_FLOAT, &(v).conf_weight, "weight of the confidence term KL(q ‖ p) (default 3)"}
/* o = the defaults for the kind (colour or grey), then every option set in v; −1 and a message
 * when a set value is out of range. */
int dg_cw_cli_apply(const char *command, const dg_cw_cli *v, int colour, dg_cw_opts *o);

/* Planar 8-bit pixels [c·h·w] → the net's input [c·h·w] with mean/std (kernels/math/pixel.h). */
void dg_fp_pixels_to_input(const uint8_t *pixels, int c, int hw, const float *mean, const float *std, float *u);

/* An interleaved PNG image (channels == c) ↔ planar pixels [c·h·w]. */
void dg_fp_image_to_planar(const dg_image *img, uint8_t *planar);
void dg_fp_planar_to_image(const uint8_t *planar, int c, int h, int w, dg_image *img); /* img->pixels caller-owned */

/* Softmax probabilities [n, classes] of n inputs (device pointer x, or host when host_x is set)
 * on the net in eval mode. */
void dg_fp_probs(dg_net *net, const float *host_x, int n, float *probs);

/* ActiveGuard's decision for n planar 8-bit images [n·c·h·w] (in chunks of the net's batch); an
 * identity the registry does not list is refused (d->authorized 0, d->user kept). 0 or −1 (out
 * of memory). */
int dg_fp_decide_images(dg_net *net, const dg_fp_registry *r, const uint8_t *pixels, int n, dg_fp_decision *d);

/* The gradient of the cross-entropy with labels y with respect to the [0, 1] pixels, for n host
 * inputs (normalised) x [n·c·h·w]: written to grad [n·c·h·w] (host), through the frozen net. */
void dg_fp_pixel_grad_xent(dg_net *net, const float *x, const int32_t *labels, int n, const float *std, float *grad);

/* Read a fingerprint PNG and check it has the registry's size and channels; pixels planar
 * [c·h·w] (caller frees). NULL with the message printed. */
uint8_t *dg_fp_read_png(const char *path, const dg_fp_registry *r);

/* Build and load the registry's net from model on backend be (batch capacity `batch`), after
 * checking that model is the one the registry was issued for. NULL with the message printed. */
dg_net *dg_fp_registry_net(const dg_fp_registry *r, const char *model, const dg_backend *be, int batch);

/* Load split `train` (1 train, 0 test) of spec into ds, normalised by norm, for registry r read from
 * the file `registry`: its images must have r's shape and classes, and r must be issued for `net`
 * when not NULL (the registry is then named in the message, else spec); then the normalisation is
 * checked and taken as dg_session_norm_recorded does (given: --normalize was given). 0, or -1 with
 * the message printed and ds empty. */
int dg_fp_registry_data(const char *command, const dg_fp_registry *r, const char *registry, const char *net,
                        const char *spec, int train, const dg_norm *norm, int given, dg_dataset *ds);

#endif
