/* host/infip_run.h — what `infip extract`, `verify` and `calibrate` share: a net set up for the
 * keys and loaded, its relevance plan, the relevance of n keys split over the ranks, a PNG written
 * and hashed, the owner's reference folder read and checked, and a model's fingerprints of the
 * reference's keys scored against the owner's by SSIM. Every function that fails prints its one
 * line (dg_cli_error) and returns −1 or NULL. */
#ifndef DG_INFIP_RUN_H
#define DG_INFIP_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "dist.h"
#include "infip.h"
#include "net.h"
#include "relevance.h"

/* Net `name` for a c×h×w input and `classes` outputs, set up for `batch` keys per pass (≤ 0: the
 * largest whose activations fit 1 GiB, at most 256), never more than n, with `model` loaded; with
 * the keys' mean and std (or NULL) it warns of a model trained with another normalisation. */
dg_net *dg_infip_net(const char *name, int c, int h, int w, int classes, const dg_backend *be, int batch, int n,
                     const char *model, const float *mean, const float *std);
dg_relevance *dg_infip_plan(dg_net *net, const float *mean, const float *std, float eps, int inject_logit);

/* The relevance of this rank's share of n inputs, in batches of the net's: make(ctx, k, x) writes
 * the normalised input of key k into x (room for net->batch inputs); rank r fills rel, pred and
 * logits (may be NULL) at its share of the keys, and the shares are gathered so that every rank
 * ends with all n. */
typedef void (*dg_infip_input_fn)(const void *ctx, int k, float *x);
int dg_infip_relevance_on_ranks(dg_dist *dist, dg_relevance *plan, dg_net *net, int n, dg_infip_input_fn make,
                                const void *ctx, float *x, float *rel, int *pred, float *logits);

/* Write planar pixels [c, h, w] as the PNG dir/name and hash it into sha; interleaved: c·h·w bytes. */
int dg_infip_write_png(const char *dir, const char *name, const uint8_t *planar, int c, int h, int w,
                       uint8_t *interleaved, char sha[65]);
int dg_infip_all_finite(const float *v, size_t n);

/* The owner's reference folder, read whole and checked before any suspect is looked at: the
 * manifest, every PNG's SHA-256 against it, its size and channels, and fingerprints that keep grey
 * levels (99% or more black and white pixels tell no model apart: refused). */
typedef struct dg_infip_reference {
    dg_infip_manifest m;
    uint8_t *keys;  /* [n_keys, c, h, w] the key images' planar pixels */
    uint8_t *owner; /* [n_keys, h, w] the owner's fingerprints */
} dg_infip_reference;
int dg_infip_reference_load(const char *dir, dg_infip_reference *ref);
void dg_infip_reference_free(dg_infip_reference *ref);

/* A model's fingerprints of the reference's keys against the owner's: relevance injected at the
 * model's own prediction, each map drawn at the reference's λ, and its SSIM in both forms (the
 * Gaussian one only where the images hold its window; ssim[DG_SSIM_GAUSSIAN] is NULL otherwise).
 * Every rank computes its share of the keys; rank 0 holds the scores, and when out_dir is given
 * writes the model's fingerprints there as fp-00000.png, ... */
typedef struct dg_infip_score {
    double *ssim[2]; /* [n_keys] per form, indexed by dg_ssim_mode */
    int *pred;       /* [n_keys] the model's class of each key */
    int agree;       /* keys where it predicts what the owner's model predicted */
    int nonfinite;   /* keys whose relevance is not finite in the model (drawn black, so counted) */
    int batch;       /* keys per pass */
    double seconds;  /* relevance and comparison */
} dg_infip_score;
int dg_infip_score_model(const dg_infip_reference *ref, const char *model, const char *net_name,
                         const dg_backend *be, int batch, dg_dist *dist, const char *out_dir, dg_infip_score *s);
void dg_infip_score_free(dg_infip_score *s);

#endif
