/* host/session.c — shared set-up for the subcommands and whole-split evaluation (see session.h). */
#include "session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error.h"
#include "loader.h"
#include "model_io.h"
#include "../nets/registry.h"

int dg_session_norm(const char *command, const char *text, dg_norm *norm) {
    char err[512];
    if (dg_norm_parse(text, norm, err, sizeof err) != 0) {
        dg_cli_error("%s: %s", command, err);
        return -1;
    }
    return 0;
}

int dg_session_norm_recorded(const char *command, int given, const char *record, dg_dataset *ds, const float *mean,
                             const float *std) {
    if (given && !dg_norm_equal(ds, mean, std)) {
        char asked[256], recorded[256];
        dg_norm_format(ds->mean, ds->std, ds->c, asked, sizeof asked);
        dg_norm_format(mean, std, ds->c, recorded, sizeof recorded);
        dg_cli_error("%s: --normalize gives %s, but %s was made with %s: a check against it must use that one",
                     command, asked, dg_err_safe_path(record).s, recorded);
        return -1;
    }
    for (int ch = 0; ch < 3; ch++) { /* channels ≥ c repeat channel 0, as the loaders set them */
        ds->mean[ch] = mean[ch < ds->c ? ch : 0];
        ds->std[ch] = std[ch < ds->c ? ch : 0];
    }
    return 0;
}

int dg_session_batch(int batch, int limit, const dg_dataset *ds) {
    int images = limit > 0 && limit < ds->n ? limit : ds->n;
    return batch > images ? (images > 0 ? images : 1) : batch;
}

int dg_session_data(const char *spec, int train, const dg_norm *norm, dg_dataset *ds) {
    char err[512];
    if (!spec) {
        dg_cli_error("--data is required (mnist:DIR, fashion-mnist:DIR, cifar10:DIR, folder[-rgb|-grey]:DIR, "
                     "synthetic:C,H,W,K)");
        return -1;
    }
    if (dg_data_load(spec, train, ds, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return -1;
    }
    if (dg_norm_apply(norm, ds, err, sizeof err) != 0) {
        dg_cli_error("%s: %s", spec, err);
        dg_data_free(ds);
        return -1;
    }
    return 0;
}

/* A model whose file says it was trained with another normalisation than the inputs' gets a
 * warning: its figures on them would be silently lower. A record that does not parse is passed
 * over (not ours). */
static void warn_other_norm(const char *model, const char *trained_with, int c, const float *mean, const float *std) {
    dg_norm norm;
    dg_dataset as_trained = {.c = c};
    char err[512], in_use[256];
    if (!trained_with[0] || dg_norm_parse(trained_with, &norm, err, sizeof err) != 0 ||
        dg_norm_apply(&norm, &as_trained, err, sizeof err) != 0 || dg_norm_equal(&as_trained, mean, std))
        return;
    dg_norm_format(mean, std, c, in_use, sizeof in_use);
    dg_cli_warning("%s was trained with --normalize %s, its inputs here are normalised with %s",
                   dg_err_safe_path(model).s, dg_err_safe(trained_with).s, in_use);
}

int dg_session_load(dg_net *net, const char *model, const float *mean, const float *std) {
    char err[512], trained_with[256];
    if (dg_model_load_meta(net, model, DG_META_NORMALIZE, trained_with, sizeof trained_with, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return -1;
    }
    if (mean && std && std[0] > 0.0f) warn_other_norm(model, trained_with, net->in_c, mean, std);
    return 0;
}

dg_net *dg_session_net(const char *name, const dg_dataset *ds, const dg_backend *be, int batch, const char *model) {
    char err[512];
    if (!name) {
        dg_cli_error("--net is required (dnnguard info --nets lists the known nets)");
        return NULL;
    }
    int c, h, w, classes;
    if (dg_net_default_shape(name, &c, &h, &w, &classes) != 0) {
        dg_cli_error("unknown net '%s' (dnnguard info --nets lists the known nets)", name);
        return NULL;
    }
    if (ds) {
        c = ds->c;
        h = ds->h;
        w = ds->w;
        classes = ds->classes;
    }
    dg_net *net = dg_net_create(name, classes, c, h, w, err, sizeof err);
    if (!net) {
        dg_cli_error("%s", err);
        return NULL;
    }
    if (dg_net_setup(net, be, batch) != 0) {
        dg_net_free(net);
        return NULL;
    }
    if (model && dg_session_load(net, model, ds ? ds->mean : NULL, ds ? ds->std : NULL) != 0) {
        dg_net_free(net);
        return NULL;
    }
    return net;
}

void dg_argmax_rows(const float *rows, int n, int k, int *out) {
    for (int i = 0; i < n; i++) {
        const float *r = rows + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (r[j] > r[best]) best = j;
        out[i] = best;
    }
}

void dg_eval_result_free(dg_eval_result *r) {
    if (!r) return;
    free(r->correct);
    free(r->count);
    memset(r, 0, sizeof *r);
}

int dg_eval_result_init(dg_eval_result *r, int classes) {
    dg_eval_result_free(r);
    r->classes = classes;
    r->correct = calloc((size_t)classes, sizeof(int));
    r->count = calloc((size_t)classes, sizeof(int));
    if (!r->correct || !r->count) {
        dg_cli_error("out of memory for the per-class counts of %d classes", classes);
        dg_eval_result_free(r);
        return -1;
    }
    return 0;
}

int dg_evaluate(dg_net *net, const dg_dataset *ds, int limit, dg_eval_result *r) {
    return dg_evaluate_predictions(net, ds, limit, r, NULL);
}

int dg_evaluate_predictions(dg_net *net, const dg_dataset *ds, int limit, dg_eval_result *r, int *predictions) {
    if (dg_eval_result_init(r, net->classes) != 0) return -1;
    dg_dataset view = *ds;
    if (limit > 0 && limit < view.n) view.n = limit;
    for (int i = 0; i < view.n; i++)
        if (view.labels[i] < 0 || view.labels[i] >= net->classes) {
            dg_cli_error("%s: label %d of image %d is not a class of the %d-way net", ds->name, view.labels[i], i,
                         net->classes);
            dg_eval_result_free(r);
            return -1;
        }
    dg_loader *loader = dg_loader_new(&view, net->batch, 0, 0, 0);
    float *logits = malloc(sizeof(float) * (size_t)net->batch * net->classes);
    int *pred = malloc(sizeof(int) * (size_t)net->batch);
    if (!loader || !logits || !pred) {
        dg_cli_error("out of memory");
        dg_loader_free(loader);
        free(logits);
        free(pred);
        return -1;
    }
    const dg_backend *be = net->be;
    size_t per = (size_t)ds->c * ds->h * ds->w;
    double loss_sum = 0.0;
    long top5 = 0;
    dg_loader_begin(loader, 0, 0);
    const float *x;
    const int32_t *labels;
    int n;
    while ((n = dg_loader_next(loader, &x, &labels)) > 0) {
        be->upload(net->nodes[0].y, x, sizeof(float) * per * (size_t)n);
        be->upload(net->labels, labels, sizeof(int32_t) * (size_t)n);
        dg_net_forward(net, net->nodes[0].y, n, DG_MODE_EVAL);
        loss_sum += dg_net_loss(net, n) * n;
        /* ranks from the logits, as torch's argmax and topk take them: a confident model's softmax
         * underflows to 0 for many classes, which would then tie with the label. Equal logits rank
         * by class index, as the argmax breaks them (all-equal outputs: top-5 is classes 0-4) */
        be->download(logits, net->nodes[dg_net_output(net)].y, sizeof(float) * (size_t)n * net->classes);
        dg_argmax_rows(logits, n, net->classes, pred);
        for (int i = 0; i < n; i++) {
            const float *row = logits + (size_t)i * net->classes;
            int finite = 1, above = 0; /* classes ranked above the label */
            for (int k = 0; k < net->classes && finite; k++) finite = isfinite(row[k]);
            if (!finite) pred[i] = -1, r->nonfinite++;
            for (int k = 0; k < net->classes && finite; k++)
                above += row[k] > row[labels[i]] || (row[k] == row[labels[i]] && k < labels[i]);
            top5 += finite && above < 5;
        }
        if (predictions) memcpy(predictions + r->images, pred, sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) {
            r->count[labels[i]]++;
            r->correct[labels[i]] += pred[i] == labels[i];
        }
        r->images += n;
    }
    int correct = 0;
    for (int k = 0; k < net->classes; k++) correct += r->correct[k];
    r->loss = r->images ? loss_sum / r->images : 0.0;
    r->accuracy = r->images ? (double)correct / r->images : 0.0;
    r->top5_accuracy = r->images ? (double)top5 / r->images : 0.0;
    dg_loader_free(loader);
    free(logits);
    free(pred);
    return 0;
}
