/* host/cmd_attack.c — `dnnguard attack`: the removal attacks a model owner tests a watermark and a
 * fingerprint against: prune (magnitude pruning), finetune (more training on a subset, no
 * regularizer; host/cmd_train.c), permute (a function-preserving channel permutation), and the
 * forgery of users' fingerprints (host/cmd_forge.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attack.h"
#include "cli.h"
#include "commands.h"
#include "model_io.h"
#include "session.h"

/* The shortest decimal text that reads back as r. */
static void format_double(double r, char *buf, size_t len) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, r);
        if (strtod(buf, NULL) == r) return;
    }
}

static int is_float(dg_st_dtype t) { return t == DG_ST_F32 || t == DG_ST_F16 || t == DG_ST_BF16 || t == DG_ST_F64; }

static void print_prune_json(const char *model, const char *out, const char *rate, int global,
                             const dg_prune_layer *layers, int n) {
    size_t total = 0, zeroed = 0;
    for (int l = 0; l < n; l++) zeroed += layers[l].zeroed;
    printf("{\"input\": ");
    dg_json_string(stdout, model);
    printf(", \"output\": ");
    dg_json_string(stdout, out);
    printf(", \"rate\": %s, \"scope\": \"%s\", \"layers\": [", rate, global ? "global" : "layer");
    for (int l = 0; l < n; l++) {
        printf(l ? ", {\"name\": " : "{\"name\": ");
        dg_json_string(stdout, layers[l].name);
        printf(", \"numel\": %zu, \"zeroed\": %zu, \"threshold\": ", layers[l].numel, layers[l].zeroed);
        if (layers[l].zeroed || (global && zeroed)) printf("%s}", dg_json_sig(layers[l].threshold, 9).s);
        else printf("null}"); /* nothing ranked below a threshold */
        total += layers[l].numel;
    }
    printf("], \"weights\": %zu, \"zeroed\": %zu, \"zeroed_fraction\": %.9f}\n", total, zeroed,
           total ? (double)zeroed / (double)total : 0.0);
}

static int attack_prune(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *rate_text = NULL;
    int global = 0;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "weights to prune (safetensors or torch.save .pt)"},
        {"rate", DG_OPT_STR, &rate_text, "fraction of conv and linear weights to zero, in [0, 1]"},
        {"global", DG_OPT_FLAG, &global, "rank all layers' weights together (default: each layer on its own)"},
        {"out", DG_OPT_STR, &out, "pruned weights (safetensors; torch.save for .pt/.pth)"},
    };
    int rc = dg_cli_parse("attack prune", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (!model || !out || !rate_text) {
        dg_cli_error("attack prune: --model FILE, --rate R and --out FILE are required");
        return DG_EXIT_BAD_INPUT;
    }
    char *end;
    double rate = strtod(rate_text, &end);
    if (end == rate_text || *end || !(rate >= 0.0 && rate <= 1.0)) {
        dg_cli_error("attack prune: --rate must be a number in [0, 1], not '%s'", rate_text);
        return DG_EXIT_BAD_INPUT;
    }
    char err[512], rate_s[32];
    format_double(rate, rate_s, sizeof rate_s);
    dg_st_file f;
    if (dg_st_open(model, &f, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return DG_EXIT_BAD_INPUT;
    }
    rc = DG_EXIT_BAD_INPUT;
    int n = 0;
    float **replace = calloc((size_t)(f.n_tensors ? f.n_tensors : 1), sizeof *replace);
    dg_prune_layer *layers = calloc((size_t)(f.n_tensors ? f.n_tensors : 1), sizeof *layers);
    if (!replace || !layers) {
        dg_cli_error("%s: out of memory", model);
        goto done;
    }
    for (int i = 0; i < f.n_tensors; i++) {
        const dg_st_tensor *t = &f.tensors[i];
        if (!dg_prune_is_target(t->name, t->ndim)) continue;
        if (!is_float(t->dtype)) {
            dg_cli_error("%s: weight '%s' has dtype %s; weights must be F32, F16, BF16 or F64", model, t->name,
                         dg_st_dtype_name(t->dtype));
            goto done;
        }
        replace[i] = malloc(sizeof(float) * (t->numel ? t->numel : 1));
        if (!replace[i]) {
            dg_cli_error("%s: out of memory", model);
            goto done;
        }
        if (dg_st_read_f32(&f, i, replace[i], t->numel, err, sizeof err) != 0) {
            dg_cli_error("%s", err);
            goto done;
        }
        layers[n++] = (dg_prune_layer){.name = t->name, .w = replace[i], .numel = t->numel};
    }
    if (n == 0) {
        dg_cli_error("%s: no conv or linear weights to prune (4-D or 2-D tensors named *.weight)", model);
        goto done;
    }
    if (dg_prune_layers(layers, n, rate, global, err, sizeof err) != 0) {
        dg_cli_error("%s: %s", model, err);
        goto done;
    }
    const char *keys[] = {"attack", "prune_rate", "prune_scope"};
    const char *values[] = {"prune", rate_s, global ? "global" : "layer"};
    if (dg_attack_write(out, &f, replace, keys, values, 3, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto done;
    }
    print_prune_json(model, out, rate_s, global, layers, n);
    rc = DG_EXIT_OK;
done:
    for (int i = 0; replace && i < f.n_tensors; i++) free(replace[i]);
    free(replace);
    free(layers);
    dg_st_close(&f);
    return rc;
}

static void print_permute_json(const char *model, const char *out, const char *net_name, const char *layer,
                               unsigned long long seed, const dg_net *net, const dg_permute_plan *plan,
                               const int *perm) {
    printf("{\"input\": ");
    dg_json_string(stdout, model);
    printf(", \"output\": ");
    dg_json_string(stdout, out);
    printf(", \"net\": ");
    dg_json_string(stdout, net_name);
    printf(", \"layer\": ");
    dg_json_string(stdout, layer);
    printf(", \"seed\": %llu, \"channels\": %d, \"permutation\": [", seed, plan->channels);
    for (int c = 0; c < plan->channels; c++) printf(c ? ", %d" : "%d", perm[c]);
    printf("], \"changed\": [");
    for (int s = 0; s < plan->n_steps; s++) {
        if (s) printf(", ");
        dg_json_string(stdout, net->params[plan->steps[s].param].name);
    }
    printf("]}\n");
}

static int attack_permute(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *net_name = NULL, *data = NULL, *layer = NULL;
    uint64_t seed = 1;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "weights to permute (safetensors or torch.save .pt)"},
        {"net", DG_OPT_STR, &net_name, "the net the weights belong to"},
        {"data", DG_OPT_STR, &data, "data set spec, for the input shape and class count (default: the net's own)"},
        {"layer", DG_OPT_STR, &layer, "conv or linear weight whose output channels are permuted (conv2.weight)"},
        {"seed", DG_OPT_U64, &seed, "seed of the permutation (default 1)"},
        {"out", DG_OPT_STR, &out, "permuted weights (safetensors; torch.save for .pt/.pth)"},
    };
    int rc = dg_cli_parse("attack permute", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (!model || !out || !net_name || !layer) {
        dg_cli_error("attack permute: --model FILE, --net NAME, --layer NAME and --out FILE are required");
        return DG_EXIT_BAD_INPUT;
    }
    char err[512];
    dg_st_file f;
    if (dg_st_open(model, &f, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return DG_EXIT_BAD_INPUT;
    }
    rc = DG_EXIT_BAD_INPUT;
    dg_dataset ds;
    memset(&ds, 0, sizeof ds);
    dg_net *net = NULL;
    dg_permute_plan plan = {0};
    int *perm = NULL;
    float *host = NULL;
    float **replace = NULL;
    const dg_backend *be = dg_cli_backend("cpu");
    if (!be || (data && dg_session_data(data, 0, NULL, &ds) != 0)) goto done;
    if (!(net = dg_session_net(net_name, data ? &ds : NULL, be, 1, NULL))) goto done;
    dg_name_map map; /* how the file names the net's tensors ("model." on each): the output keeps its names */
    if (dg_model_load_file(net, &f, &map, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto done;
    }
    if (dg_permute_plan_build(net, layer, &plan, err, sizeof err) != 0) {
        dg_cli_error("attack permute: %s", err);
        goto done;
    }
    perm = malloc(sizeof(int) * (size_t)plan.channels);
    host = dg_model_download(net);
    replace = calloc((size_t)(f.n_tensors ? f.n_tensors : 1), sizeof *replace);
    if (!perm || !host || !replace) {
        dg_cli_error("%s: out of memory", model);
        goto done;
    }
    dg_permute_draw(plan.channels, seed, perm);
    if (dg_permute_apply(net, &plan, perm, host) != 0) {
        dg_cli_error("%s: out of memory", model);
        goto done;
    }
    for (int i = 0; i < f.n_tensors; i++) {
        int p = dg_model_file_param(net, &map, f.tensors[i].name);
        if (p >= 0) replace[i] = host + net->params[p].offset;
    }
    char seed_s[32];
    snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)seed);
    const char *keys[] = {"attack", "permute_layer", "permute_seed"};
    const char *values[] = {"permute", layer, seed_s};
    if (dg_attack_write(out, &f, replace, keys, values, 3, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto done;
    }
    print_permute_json(model, out, net_name, layer, (unsigned long long)seed, net, &plan, perm);
    rc = DG_EXIT_OK;
done:
    free(replace);
    free(host);
    free(perm);
    dg_permute_plan_free(&plan);
    dg_net_free(net);
    dg_data_free(&ds);
    dg_st_close(&f);
    return rc;
}

int dg_cmd_attack(int argc, char **argv) {
    if (argc < 1) {
        dg_cli_error("attack: name the attack: prune, finetune, permute, forge or overwrite (dnnguard attack --help)");
        return DG_EXIT_BAD_INPUT;
    }
    if (strcmp(argv[0], "--help") == 0) {
        printf("usage: dnnguard attack prune|finetune|permute|forge|overwrite [options]   (--help after the attack lists its "
               "options)\n"
               "  prune     zero the smallest conv and linear weights, per layer or --global\n"
               "  finetune  train further on a subset, without the watermark regularizer\n"
               "  permute   shuffle one layer's output channels and its consumers' inputs (same function)\n"
               "  forge     submit clean, FGSM or C&W images as fake fingerprints; the share authenticated\n"
               "  overwrite fine-tune with a noise-backdoor watermark of the pirate's own (Zhang et al.)\n");
        return DG_EXIT_OK;
    }
    if (strcmp(argv[0], "prune") == 0) return attack_prune(argc - 1, argv + 1);
    if (strcmp(argv[0], "finetune") == 0) return dg_cmd_attack_finetune(argc - 1, argv + 1);
    if (strcmp(argv[0], "permute") == 0) return attack_permute(argc - 1, argv + 1);
    if (strcmp(argv[0], "forge") == 0) return dg_cmd_attack_forge(argc - 1, argv + 1);
    if (strcmp(argv[0], "overwrite") == 0) return dg_cmd_attack_overwrite(argc - 1, argv + 1);
    dg_cli_error("attack: unknown attack '%s' (prune, finetune, permute, forge, overwrite)", argv[0]);
    return DG_EXIT_BAD_INPUT;
}
