/* host/cmd_info.c — `dnnguard info`: the tensors of a safetensors file (name, dtype, shape,
 * counts), or the parameter table of a named net, as a table or JSON. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "model_io.h"
#include "net.h"
#include "safetensors.h"
#include "../nets/registry.h"

static const char *dtype_name(dg_st_dtype t) {
    static const char *names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "U8", "I8", "I16", "BOOL"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "?";
}

/* A tensor that PyTorch's parameters() would count: not running statistics, not
 * num_batches_tracked, not optimizer state. */
static int is_parameter(const char *name) { return !dg_model_running_stat(name) && !dg_model_ignored_tensor(name); }

static int info_model(const char *path, int json) {
    char err[512];
    dg_st_file f;
    if (dg_st_open(path, &f, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return DG_EXIT_BAD_INPUT;
    }
    size_t total = 0, params = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        total += f.tensors[i].numel;
        if (is_parameter(f.tensors[i].name)) params += f.tensors[i].numel;
    }
    if (json) {
        printf("{\"file\": ");
        dg_json_string(stdout, path);
        printf(", \"tensors\": [");
        for (int i = 0; i < f.n_tensors; i++) {
            const dg_st_tensor *t = &f.tensors[i];
            printf(i ? ", {\"name\": " : "{\"name\": ");
            dg_json_string(stdout, t->name);
            printf(", \"dtype\": \"%s\", \"shape\": [", dtype_name(t->dtype));
            for (int d = 0; d < t->ndim; d++) printf(d ? ", %lld" : "%lld", (long long)t->shape[d]);
            printf("]}");
        }
        printf("], \"metadata\": {");
        for (int i = 0; i < f.n_meta; i++) {
            if (i) printf(", ");
            dg_json_string(stdout, f.meta_keys[i]);
            printf(": ");
            dg_json_string(stdout, f.meta_values[i]);
        }
        printf("}, \"parameters\": %zu, \"elements\": %zu}\n", params, total);
    } else {
        printf("%s: %d tensors\n", path, f.n_tensors);
        for (int i = 0; i < f.n_tensors; i++) {
            const dg_st_tensor *t = &f.tensors[i];
            printf("  %-48s %-4s [", t->name, dtype_name(t->dtype));
            for (int d = 0; d < t->ndim; d++) printf(d ? ", %lld" : "%lld", (long long)t->shape[d]);
            printf("]\n");
        }
        for (int i = 0; i < f.n_meta; i++) printf("  metadata %s = %s\n", f.meta_keys[i], f.meta_values[i]);
        printf("parameters: %zu (all elements: %zu)\n", params, total);
    }
    dg_st_close(&f);
    return DG_EXIT_OK;
}

static int info_net(const char *name, int classes, int json) {
    char err[512];
    int c, h, w, k;
    if (dg_net_default_shape(name, &c, &h, &w, &k) != 0) {
        dg_cli_error("unknown net '%s' (dnnguard info --nets lists the known nets)", name);
        return DG_EXIT_BAD_INPUT;
    }
    if (classes > 0) k = classes;
    dg_net *net = dg_net_create(name, k, c, h, w, err, sizeof err);
    if (!net) {
        dg_cli_error("%s", err);
        return DG_EXIT_BAD_INPUT;
    }
    size_t total = 0;
    for (int i = 0; i < net->n_params; i++) total += net->params[i].numel;
    if (json) {
        printf("{\"net\": ");
        dg_json_string(stdout, name);
        printf(", \"input\": [%d, %d, %d], \"classes\": %d, \"params\": [", c, h, w, k);
        for (int i = 0; i < net->n_params; i++) {
            const dg_param *p = &net->params[i];
            printf(i ? ", {\"name\": \"%s\", \"shape\": [" : "{\"name\": \"%s\", \"shape\": [", p->name);
            for (int d = 0; d < p->ndim; d++) printf(d ? ", %d" : "%d", p->shape[d]);
            printf("]}");
        }
        printf("], \"trainable\": %zu, \"total\": %zu}\n", dg_net_trainable_count(net), total);
    } else {
        printf("%s: input %d×%d×%d, %d classes, %d nodes\n", name, c, h, w, k, net->n_nodes);
        for (int i = 0; i < net->n_params; i++) {
            const dg_param *p = &net->params[i];
            printf("  %-48s [", p->name);
            for (int d = 0; d < p->ndim; d++) printf(d ? ", %d" : "%d", p->shape[d]);
            printf("]\n");
        }
        printf("trainable parameters: %zu (with running statistics: %zu)\n", dg_net_trainable_count(net), total);
    }
    dg_net_free(net);
    return DG_EXIT_OK;
}

int dg_cmd_info(int argc, char **argv) {
    const char *model = NULL, *net = NULL;
    int json = 0, classes = 0, list = 0;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "a safetensors or torch.save (.pt) file: list its tensors"},
        {"net", DG_OPT_STR, &net, "a net name: list its parameters"},
        {"classes", DG_OPT_INT, &classes, "class count for --net (default: the net's natural one)"},
        {"json", DG_OPT_FLAG, &json, "JSON instead of a table"},
        {"nets", DG_OPT_FLAG, &list, "list the known net names"},
    };
    int rc = dg_cli_parse("info", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (list) {
        fputs(dg_net_list(), stdout);
        return DG_EXIT_OK;
    }
    if (!model == !net) {
        dg_cli_error("info: give exactly one of --model FILE and --net NAME");
        return DG_EXIT_BAD_INPUT;
    }
    return model ? info_model(model, json) : info_net(net, classes, json);
}
