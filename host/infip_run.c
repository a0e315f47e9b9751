/* host/infip_run.c — the steps `infip extract`, `verify` and `calibrate` share (host/infip_run.h). */
#include "infip_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fp_common.h"
#include "model_io.h"
#include "png.h"
#include "session.h"
#include "sha256.h"
#include "ssim.h"
#include "../nets/registry.h"

#define DEFAULT_ACT_BUDGET ((size_t)1 << 30) /* activation bytes a default batch may take */

dg_net *dg_infip_net(const char *name, int c, int h, int w, int classes, const dg_backend *be, int batch, int n,
                     const char *model, const float *mean, const float *std) {
    char err[512];
    dg_net *net = dg_net_create(name, classes, c, h, w, err, sizeof err);
    if (!net) {
        dg_cli_error("%s", err);
        return NULL;
    }
    if (batch <= 0) { /* bytes(b) = fixed + b · per_image */
        size_t one = dg_net_activation_bytes(net, 1), per_image = dg_net_activation_bytes(net, 2) - one;
        size_t fixed = one - per_image;
        size_t fit = per_image && DEFAULT_ACT_BUDGET > fixed ? (DEFAULT_ACT_BUDGET - fixed) / per_image : 1;
        batch = fit < 1 ? 1 : fit > 256 ? 256 : (int)fit;
    }
    if (batch > n) batch = n;
    if (dg_net_setup(net, be, batch) != 0) {
        dg_net_free(net);
        return NULL;
    }
    if (dg_session_load(net, model, mean, std) != 0) {
        dg_net_free(net);
        return NULL;
    }
    return net;
}

dg_relevance *dg_infip_plan(dg_net *net, const float *mean, const float *std, float eps, int inject_logit) {
    dg_relevance_opts ro = {.eps = eps, .inject_logit = inject_logit};
    dg_relevance_bounds(&ro, net->in_c, mean, std);
    char err[512];
    dg_relevance *r = dg_relevance_new(net, &ro, err, sizeof err);
    if (!r) dg_cli_error("%s", err);
    return r;
}

int dg_infip_relevance_on_ranks(dg_dist *dist, dg_relevance *plan, dg_net *net, int n, dg_infip_input_fn make,
                                const void *ctx, float *x, float *rel, int *pred, float *logits) {
    const size_t per = (size_t)net->in_c * net->in_h * net->in_w;
    int lo, hi, failed = 0;
    dg_dist_share(n, dist->rank, dist->size, &lo, &hi);
    for (int first = lo; first < hi && !failed; first += net->batch) {
        int b = hi - first < net->batch ? hi - first : net->batch;
        for (int i = 0; i < b; i++) make(ctx, first + i, x + (size_t)i * per);
        if (dg_relevance_run(plan, x, b, NULL, pred + first, logits ? logits + (size_t)first * net->classes : NULL,
                             rel + (size_t)first * per) != 0) {
            dg_cli_error("infip: out of memory");
            failed = 1;
        }
    }
    if (dg_dist_agree(dist, failed) != 0) return -1; /* before the gathers, which a failed rank would not reach */
    dg_dist_gather_shares(dist, rel, sizeof(float) * per, n);
    dg_dist_gather_shares(dist, pred, sizeof(int), n);
    if (logits) dg_dist_gather_shares(dist, logits, sizeof(float) * (size_t)net->classes, n);
    return 0;
}

int dg_infip_write_png(const char *dir, const char *name, const uint8_t *planar, int c, int h, int w,
                       uint8_t *interleaved, char sha[65]) {
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    dg_image img = {.pixels = interleaved};
    dg_fp_planar_to_image(planar, c, h, w, &img);
    if (dg_png_write(path, &img, err, sizeof err) != 0 || dg_sha256_file(path, sha, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return -1;
    }
    return 0;
}

int dg_infip_all_finite(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

/* ---- the reference ---- */

/* Read the reference's PNG `name` (checked: its SHA-256 is the manifest's, its size the keys',
 * its channels `channels`) into planar pixels. */
static int read_reference_png(const char *dir, const char *name, const char *sha, int channels, int h, int w,
                              uint8_t *planar) {
    char path[4200], err[512], got[65];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (dg_sha256_file(path, got, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return -1;
    }
    if (strcmp(got, sha) != 0) {
        dg_cli_error("%s: not the file the reference's manifest lists (its SHA-256 differs): the reference was "
                     "modified", path);
        return -1;
    }
    dg_image img;
    if (dg_png_read(path, &img, 0, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return -1;
    }
    int ok = img.w == w && img.h == h && img.channels == channels;
    if (!ok)
        dg_cli_error("%s: %dx%d with %d channel(s)%s, but the reference's keys are %dx%d with %d", path, img.w, img.h,
                     img.channels, dg_png_stored_note(&img), w, h, channels);
    else
        dg_fp_image_to_planar(&img, planar);
    dg_image_free(&img);
    return ok ? 0 : -1;
}

int dg_infip_reference_load(const char *dir, dg_infip_reference *ref) {
    char path[4200], err[512];
    memset(ref, 0, sizeof *ref);
    snprintf(path, sizeof path, "%s/" DG_INFIP_MANIFEST, dir);
    if (dg_infip_manifest_read(path, &ref->m, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return -1;
    }
    const dg_infip_manifest *m = &ref->m;
    const size_t per = (size_t)m->c * m->h * m->w, plane = (size_t)m->h * m->w;
    ref->keys = malloc(per * (size_t)m->n_keys);
    ref->owner = malloc(plane * (size_t)m->n_keys);
    if (!ref->keys || !ref->owner) {
        dg_cli_error("%s: out of memory for %d keys", dir, m->n_keys);
        dg_infip_reference_free(ref);
        return -1;
    }
    for (int i = 0; i < m->n_keys; i++)
        if (read_reference_png(dir, m->keys[i].key_file, m->keys[i].key_sha256, m->c, m->h, m->w,
                               ref->keys + (size_t)i * per) ||
            read_reference_png(dir, m->keys[i].fp_file, m->keys[i].fp_sha256, 1, m->h, m->w,
                               ref->owner + (size_t)i * plane)) {
            dg_infip_reference_free(ref);
            return -1;
        }
    /* fingerprints with (almost) no grey level make every model look alike: ASSIM 1 for anyone */
    size_t black = 0, white = 0, all = plane * (size_t)m->n_keys;
    for (size_t i = 0; i < all; i++) {
        black += ref->owner[i] == 0;
        white += ref->owner[i] == 255;
    }
    if (black + white >= DG_INFIP_FLAT_SHARE * (double)all) {
        dg_cli_error("%s: the fingerprints are %.1f%% black and %.1f%% white: they cannot tell one model from "
                     "another (extract the reference again with a lambda that keeps grey levels; docs/infip.md)", dir,
                     100.0 * black / all, 100.0 * white / all);
        dg_infip_reference_free(ref);
        return -1;
    }
    return 0;
}

void dg_infip_reference_free(dg_infip_reference *ref) {
    dg_infip_manifest_free(&ref->m);
    free(ref->keys), free(ref->owner);
    ref->keys = ref->owner = NULL;
}

/* ---- a model's fingerprints against the owner's ---- */

/* a key image of the reference (planar pixels) as the net's input */
static void pixels_input(const void *ctx, int k, float *x) {
    const dg_infip_reference *r = ctx;
    size_t plane = (size_t)r->m.h * r->m.w;
    dg_fp_pixels_to_input(r->keys + (size_t)k * r->m.c * plane, r->m.c, (int)plane, r->m.mean, r->m.std, x);
}

int dg_infip_score_model(const dg_infip_reference *ref, const char *model, const char *net_name,
                         const dg_backend *be, int batch, dg_dist *dist, const char *out_dir, dg_infip_score *s) {
    const dg_infip_manifest *m = &ref->m;
    const int n = m->n_keys, c = m->c, h = m->h, w = m->w;
    const size_t per = (size_t)c * h * w, plane = (size_t)h * w;
    const int gaussian_fits = dg_ssim_fits(h, w, DG_SSIM_GAUSSIAN);
    memset(s, 0, sizeof *s);
    int rc = -1;
    float *x = NULL, *rel = malloc(sizeof(float) * per * (size_t)n);
    uint8_t *mine = malloc(plane), *interleaved = malloc(plane);
    s->pred = malloc(sizeof(int) * (size_t)n);
    s->ssim[DG_SSIM_GLOBAL] = malloc(sizeof(double) * (size_t)n);
    if (gaussian_fits) s->ssim[DG_SSIM_GAUSSIAN] = malloc(sizeof(double) * (size_t)n);
    /* the reference's batch by default for a suspect of the owner's net: another batch rounds the
     * relevance otherwise, and the owner's own model would not recompute its fingerprints bit for bit */
    if (batch <= 0 && strcmp(net_name, m->net) == 0) batch = m->batch;
    /* every rank loads the model and makes its plan; the ranks agree on that before working together */
    dg_net *net = dg_infip_net(net_name, c, h, w, m->classes, be, batch, n, model, m->mean, m->std);
    dg_relevance *plan = net ? dg_infip_plan(net, m->mean, m->std, m->eps, m->inject_logit) : NULL;
    x = plan ? malloc(sizeof(float) * per * (size_t)net->batch) : NULL;
    int failed = !plan;
    if (plan && (!x || !rel || !mine || !interleaved || !s->pred || !s->ssim[DG_SSIM_GLOBAL] ||
                 (gaussian_fits && !s->ssim[DG_SSIM_GAUSSIAN]))) {
        dg_cli_error("infip: out of memory (%.1f MiB of relevance)", (double)sizeof(float) * per * n / (1 << 20));
        failed = 1;
    }
    if (dg_dist_agree(dist, failed) != 0) goto done;
    s->batch = net->batch;
    double t0 = dg_now_s();
    if (dg_infip_relevance_on_ranks(dist, plan, net, n, pixels_input, ref, x, rel, s->pred, NULL) != 0) goto done;
    failed = 0; /* rank 0 compares, and writes the suspect's fingerprints where asked */
    for (int k = 0; k < n && dg_dist_is_root(dist) && !failed; k++) {
        const uint8_t *owner = ref->owner + (size_t)k * plane;
        /* a key whose outputs are not finite (predicted −1) counts too, even where its map is */
        int finite = s->pred[k] >= 0 && dg_infip_all_finite(rel + (size_t)k * per, per);
        dg_infip_image(rel + (size_t)k * per, c, h, w, m->lambda, mine);
        if (!finite) memset(mine, 0, plane); /* drawn black, the whole map: its finite part is no fingerprint */
        s->ssim[DG_SSIM_GLOBAL][k] = dg_ssim(mine, owner, h, w, DG_SSIM_GLOBAL);
        if (gaussian_fits) s->ssim[DG_SSIM_GAUSSIAN][k] = dg_ssim(mine, owner, h, w, DG_SSIM_GAUSSIAN);
        s->agree += s->pred[k] == m->keys[k].predicted;
        s->nonfinite += !finite; /* said, not hidden */
        char name[64], sha[65];
        snprintf(name, sizeof name, "fp-%05d.png", k);
        failed = out_dir && dg_infip_write_png(out_dir, name, mine, 1, h, w, interleaved, sha) != 0;
    }
    if (dg_dist_agree(dist, failed) != 0) goto done; /* every rank ends as rank 0's writes did */
    s->seconds = dg_now_s() - t0;
    rc = 0;
done:
    if (rc != 0) dg_infip_score_free(s);
    dg_relevance_free(plan);
    dg_net_free(net);
    free(x), free(rel), free(mine), free(interleaved);
    return rc;
}

void dg_infip_score_free(dg_infip_score *s) {
    free(s->ssim[0]), free(s->ssim[1]), free(s->pred);
    memset(s, 0, sizeof *s);
}
