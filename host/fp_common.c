/* host/fp_common.c — shared pieces of the fingerprint commands (see fp_common.h). */
#include "fp_common.h"

#include <stdlib.h>
#include <string.h>

#include "../kernels/math/pixel.h"
#include "cli.h"
#include "session.h"
#include "sha256.h"

int dg_cw_cli_apply(const char *command, const dg_cw_cli *v, int colour, dg_cw_opts *o) {
    dg_cw_defaults(o, colour);
    if ((!isnan(v->lr) && !(v->lr > 0.0f)) || (!isnan(v->alpha) && !(v->alpha > 0.0f)) ||
        (!isnan(v->alpha_max) && !(v->alpha_max > 0.0f)) || (!isnan(v->conf_weight) && v->conf_weight < 0.0f)) {
        dg_cli_error("%s: --lr, --alpha and --alpha-max must be > 0, --conf-weight ≥ 0", command);
        return -1;
    }
    if ((v->search_steps != INT_MIN && v->search_steps < 1) || (v->iters != INT_MIN && v->iters < 1)) {
        dg_cli_error("%s: --search-steps and --iters must be ≥ 1", command);
        return -1;
    }
    if (!isnan(v->lr)) o->lr = v->lr;
    if (!isnan(v->alpha)) o->alpha_init = v->alpha;
    if (!isnan(v->alpha_max)) o->alpha_hi = v->alpha_max;
    if (!isnan(v->conf_weight)) o->conf_weight = v->conf_weight;
    if (v->search_steps != INT_MIN) o->search_steps = v->search_steps;
    if (v->iters != INT_MIN) o->max_iter = v->iters;
    if (!(o->alpha_init < o->alpha_hi)) {
        dg_cli_error("%s: --alpha %g must lie below --alpha-max %g", command, (double)o->alpha_init, (double)o->alpha_hi);
        return -1;
    }
    return 0;
}

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
                     0.0f, 0.0f);
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
        dg_cli_error("%s: the image is %dx%d with %d channel%s%s; the registry's fingerprints are %dx%d with %d", path,
                     img.w, img.h, img.channels, img.channels == 1 ? "" : "s", dg_png_stored_note(&img), r->w, r->h,
                     r->c);
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
        dg_cli_error("%s: not the file the registry's fingerprints were issued for (its SHA-256 differs; the "
                     "registry binds the exact file, so the same weights saved again are another file)", model);
        return NULL;
    }
    dg_dataset shape = {.c = r->c, .h = r->h, .w = r->w, .classes = r->classes}; /* and the normalisation: */
    memcpy(shape.mean, r->mean, sizeof shape.mean); /* a model trained with another is said (session.c) */
    memcpy(shape.std, r->std, sizeof shape.std);
    return dg_session_net(r->net, &shape, be, batch, model);
}

int dg_fp_registry_data(const char *command, const dg_fp_registry *r, const char *registry, const char *net,
                        const char *spec, int train, const dg_norm *norm, int given, dg_dataset *ds) {
    if (dg_session_data(spec, train, norm, ds) != 0) return -1;
    int other_shape = ds->c != r->c || ds->h != r->h || ds->w != r->w || ds->classes != r->classes;
    if (net && (strcmp(r->net, net) != 0 || other_shape))
        dg_cli_error("%s: issued for %s on %dx%dx%d images with %d classes, not for this --net and --data", registry,
                     r->net, r->c, r->h, r->w, r->classes);
    else if (other_shape)
        dg_cli_error("%s: its images are not the registry's %dx%dx%d with %d classes", spec, r->c, r->h, r->w,
                     r->classes);
    /* the model's answers are checked on inputs normalised as its fingerprints were issued with */
    else if (dg_session_norm_recorded(command, given, registry, ds, r->mean, r->std) == 0)
        return 0;
    dg_data_free(ds); /* left empty, as dg_session_data leaves it */
    return -1;
}

int dg_fp_decide_images(dg_net *net, const dg_fp_registry *r, const uint8_t *pixels, int n, dg_fp_decision *d) {
    size_t per = (size_t)r->c * r->h * r->w;
    int chunk = net->batch;
    float *input = malloc(sizeof(float) * per * (size_t)chunk), *probs = malloc(sizeof(float) * (size_t)chunk * r->classes);
    if (!input || !probs) {
        free(input);
        free(probs);
        return -1;
    }
    for (int first = 0; first < n; first += chunk) {
        int m = n - first < chunk ? n - first : chunk;
        for (int i = 0; i < m; i++)
            dg_fp_pixels_to_input(pixels + (size_t)(first + i) * per, r->c, r->h * r->w, r->mean, r->std,
                                  input + (size_t)i * per);
        dg_fp_probs(net, input, m, probs);
        for (int i = 0; i < m; i++) {
            dg_fp_decide(r, probs + (size_t)i * r->classes, &d[first + i]);
            if (d[first + i].authorized && dg_fp_find_user(r, d[first + i].user) < 0) d[first + i].authorized = 0;
        }
    }
    free(input);
    free(probs);
    return 0;
}

void dg_fp_pixel_grad_xent(dg_net *net, const float *x, const int32_t *labels, int n, const float *std, float *grad) {
    const dg_backend *be = net->be;
    size_t per = (size_t)net->in_c * net->in_h * net->in_w, hw = (size_t)net->in_h * net->in_w;
    float *dx = be->alloc(sizeof(float) * per * (size_t)n);
    if (!dx) {
        memset(grad, 0, sizeof(float) * per * (size_t)n);
        return;
    }
    int was_frozen = net->frozen;
    net->frozen = 1;
    be->upload(net->nodes[0].y, x, sizeof(float) * per * (size_t)n);
    be->upload(net->labels, labels, sizeof(int32_t) * (size_t)n);
    dg_net_forward(net, net->nodes[0].y, n, DG_MODE_EVAL);
    dg_net_zero_grad(net);
    dg_net_loss(net, n); /* writes dlogits into the output's gradient */
    dg_net_backward(net, n, dx);
    be->download(grad, dx, sizeof(float) * per * (size_t)n);
    be->free(dx);
    net->frozen = was_frozen;
    /* u = (x − mean)/std: ∂L/∂x = ∂L/∂u / std */
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < net->in_c; ch++)
            for (size_t j = 0; j < hw; j++) grad[(size_t)i * per + ch * hw + j] /= std[ch];
}
