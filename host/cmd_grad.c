/* host/cmd_grad.c — `dnnguard grad`: one batch through the net with batch norm in training mode
 * and dropout off, nothing updated; writes the batch, the loss, the logits, every parameter's
 * gradient under its own name and the input gradient, so another framework can be compared
 * tensor by tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "loader.h"
#include "safetensors.h"
#include "session.h"

int dg_cmd_grad(int argc, char **argv) {
    const char *net_name = NULL, *model = NULL, *data = NULL, *out = NULL, *backend = "auto", *normalize = NULL;
    int batch = 8;
    uint64_t seed = 1;
    const dg_opt opts[] = {
        {"net", DG_OPT_STR, &net_name, "net name"},
        {"model", DG_OPT_STR, &model, "weights (safetensors or torch.save .pt)"},
        {"data", DG_OPT_STR, &data, "data set spec (the batch is drawn from its training split)"},
        DG_NORMALIZE_OPT(normalize),
        {"batch", DG_OPT_INT, &batch, "batch size (default 8)"},
        {"seed", DG_OPT_U64, &seed, "which batch: the first of the seed's shuffled order (default 1)"},
        {"out", DG_OPT_STR, &out, "gradients file to write (safetensors; torch.save for .pt/.pth)"},
        {"backend", DG_OPT_STR, &backend, "cpu | cuda | auto"},
    };
    int rc = dg_cli_parse("grad", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (!model || !out) {
        dg_cli_error("grad: --model FILE and --out FILE are required");
        return DG_EXIT_BAD_INPUT;
    }
    if (batch < 1) {
        dg_cli_error("grad: --batch must be ≥ 1");
        return DG_EXIT_BAD_INPUT;
    }
    dg_norm norm;
    if (dg_session_norm("grad", normalize, &norm) != 0) return DG_EXIT_BAD_INPUT;
    const dg_backend *be = dg_cli_backend(backend);
    if (!be) return DG_EXIT_BAD_INPUT;
    dg_dataset ds;
    if (dg_session_data(data, 1, &norm, &ds) != 0) return DG_EXIT_BAD_INPUT;
    rc = DG_EXIT_BAD_INPUT;
    batch = dg_session_batch(batch, 0, &ds); /* one batch of at most the whole set: sized for what it uses */
    dg_net *net = dg_session_net(net_name, &ds, be, batch, model);
    dg_loader *loader = net ? dg_loader_new(&ds, batch, seed, 1, 0) : NULL;
    float *dx = NULL, *host_grads = NULL, *host_input = NULL, *host_dx = NULL, *logits = NULL;
    int64_t *labels64 = NULL;
    dg_st_entry *entries = NULL;
    if (!loader) goto done;
    size_t per = (size_t)ds.c * ds.h * ds.w;
    dg_loader_begin(loader, 0, 0);
    const float *x;
    const int32_t *labels;
    int n = dg_loader_next(loader, &x, &labels);
    dx = be->alloc(sizeof(float) * per * (size_t)n);
    host_grads = malloc(sizeof(float) * (net->n_param_floats ? net->n_param_floats : 1));
    host_input = malloc(sizeof(float) * per * (size_t)n);
    host_dx = malloc(sizeof(float) * per * (size_t)n);
    logits = malloc(sizeof(float) * (size_t)n * net->classes);
    labels64 = malloc(sizeof(int64_t) * (size_t)n);
    entries = calloc((size_t)net->n_params + 5, sizeof *entries);
    if (!dx || !host_grads || !host_input || !host_dx || !logits || !labels64 || !entries) {
        dg_cli_error("grad: out of memory");
        goto done;
    }
    memcpy(host_input, x, sizeof(float) * per * (size_t)n);
    for (int i = 0; i < n; i++) labels64[i] = labels[i];
    be->upload(net->nodes[0].y, x, sizeof(float) * per * (size_t)n);
    be->upload(net->labels, labels, sizeof(int32_t) * (size_t)n);
    dg_net_zero_grad(net);
    dg_net_forward(net, net->nodes[0].y, n, DG_MODE_BN_BATCH);
    float loss = (float)dg_net_loss(net, n);
    dg_net_backward(net, n, dx);
    be->download(host_grads, net->grad_arena, sizeof(float) * net->n_param_floats);
    be->download(host_dx, dx, sizeof(float) * per * (size_t)n);
    be->download(logits, net->nodes[dg_net_output(net)].y, sizeof(float) * (size_t)n * net->classes);

    int e = 0;
    entries[e++] = (dg_st_entry){.name = "input", .dtype = DG_ST_F32, .ndim = 4, .shape = {n, ds.c, ds.h, ds.w},
                                 .data = host_input};
    entries[e++] = (dg_st_entry){.name = "labels", .dtype = DG_ST_I64, .ndim = 1, .shape = {n}, .data = labels64};
    entries[e++] = (dg_st_entry){.name = "loss", .dtype = DG_ST_F32, .ndim = 0, .data = &loss};
    entries[e++] = (dg_st_entry){.name = "logits", .dtype = DG_ST_F32, .ndim = 2, .shape = {n, net->classes},
                                 .data = logits};
    for (int i = 0; i < net->n_params; i++) {
        const dg_param *p = &net->params[i];
        if (p->role == DG_PARAM_RUNNING) continue;
        dg_st_entry *en = &entries[e++];
        en->name = p->name;
        en->dtype = DG_ST_F32;
        en->ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) en->shape[d] = p->shape[d];
        en->data = host_grads + p->offset;
    }
    entries[e++] = (dg_st_entry){.name = "input.grad", .dtype = DG_ST_F32, .ndim = 4,
                                 .shape = {n, ds.c, ds.h, ds.w}, .data = host_dx};
    char err[512];
    const char *keys[] = {"net", "model", "loss", "normalize"}; /* the input tensor's normalisation */
    char loss_text[32], norm_text[256];
    snprintf(loss_text, sizeof loss_text, "%.9g", loss);
    dg_norm_format(ds.mean, ds.std, ds.c, norm_text, sizeof norm_text);
    const char *values[] = {net_name, model, loss_text, norm_text};
    if (dg_st_write(out, entries, e, keys, values, 4, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto done;
    }
    printf("{\"out\": ");
    dg_json_string(stdout, out);
    printf(", \"batch\": %d, \"loss\": %s}\n", n, dg_json_sig(loss, 9).s);
    rc = DG_EXIT_OK;
done:
    if (net) be->free(dx);
    free(host_grads);
    free(host_input);
    free(host_dx);
    free(logits);
    free(labels64);
    free(entries);
    dg_loader_free(loader);
    dg_net_free(net);
    dg_data_free(&ds);
    return rc;
}
