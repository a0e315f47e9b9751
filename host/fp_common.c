/* host/fp_common.c — shared pieces of the fingerprint commands (see fp_common.h). */
#include "fp_common.h"

#include <stdlib.h>
#include <string.h>

#include "../kernels/math/pixel.h"
#include "cli.h"
#include "session.h"
#include "sha256.h"

void dg_fp_pixels_to_input(const uint8_t *pixels, int c, int hw, const float *mean, const float *std, float *u) {
    for (int ch = 0; ch < c; ch++) {
        float scale = dg_pixel_scale(std[ch]), shift = dg_pixel_shift(mean[ch], std[ch]);
        for (int j = 0; j < hw; j++)
            u[(size_t)ch * hw + j] = dg_pixel_normalize((float)pixels[(size_t)ch * hw + j], scale, shift);
    }
}

void dg_fp_image_to_planar(const dg_image *img, uint8_t *planar) {
    size_t hw = (size_t)img->w * img->h;
    for (size_t j = 0; j < hw; j++)
        for (int ch = 0; ch < img->channels; ch++) planar[ch * hw + j] = img->pixels[j * img->channels + ch];
}

void dg_fp_planar_to_image(const uint8_t *planar, int c, int h, int w, dg_image *img) {
    size_t hw = (size_t)w * h;
    img->w = w, img->h = h, img->channels = c;
    for (size_t j = 0; j < hw; j++)
        for (int ch = 0; ch < c; ch++) img->pixels[j * c + ch] = planar[ch * hw + j];
}

void dg_fp_probs(dg_net *net, const float *host_x, int n, float *probs) {
    const dg_backend *be = net->be;
    size_t per = (size_t)net->in_c * net->in_h * net->in_w;
    be->upload(net->nodes[0].y, host_x, sizeof(float) * per * (size_t)n);
    be->zero(net->labels, sizeof(int32_t) * (size_t)n); /* the loss is not wanted, only its softmax */
    dg_net_forward(net, net->nodes[0].y, n, DG_MODE_EVAL);
    be->softmax_xent(n, net->classes, net->nodes[dg_net_output(net)].y, net->labels, net->probs, net->loss, NULL,
                     0.0f);
    be->download(probs, net->probs, sizeof(float) * (size_t)n * net->classes);
}

uint8_t *dg_fp_read_png(const char *path, const dg_fp_registry *r) {
    char err[512];
    dg_image img;
    if (dg_png_read(path, &img, 0, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return NULL;
    }
    uint8_t *planar = NULL;
    if (img.w != r->w || img.h != r->h || img.channels != r->c)
        dg_cli_error("%s: the image is %dx%d with %d channel%s; the registry's fingerprints are %dx%d with %d", path,
                     img.w, img.h, img.channels, img.channels == 1 ? "" : "s", r->w, r->h, r->c);
    else if (!(planar = malloc((size_t)r->c * r->h * r->w)))
        dg_cli_error("%s: out of memory", path);
    else
        dg_fp_image_to_planar(&img, planar);
    dg_image_free(&img);
    return planar;
}

dg_net *dg_fp_registry_net(const dg_fp_registry *r, const char *model, const dg_backend *be, int batch) {
    char err[512], sha[65];
    if (dg_sha256_file(model, sha, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return NULL;
    }
    if (strcmp(sha, r->model_sha256) != 0) {
        dg_cli_error("%s: not the model the registry's fingerprints were issued for (its SHA-256 differs)", model);
        return NULL;
    }
    dg_dataset shape = {.c = r->c, .h = r->h, .w = r->w, .classes = r->classes};
    return dg_session_net(r->net, &shape, be, batch, model);
}
