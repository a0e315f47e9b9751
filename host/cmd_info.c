/* host/cmd_info.c — `dnnguard info`: the tensors of a safetensors file (name, dtype, shape,
 * counts), the parameter table of a named net, or what a data spec loads, as a table or JSON. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "data_folder.h"
#include "error.h"
#include "model_io.h"
#include "net.h"
#include "safetensors.h"
#include "session.h"
#include "sha256.h"
#include "../nets/registry.h"

static const char *dtype_name(dg_st_dtype t) {
    static const char *names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "U8", "I8", "I16", "BOOL"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "?";
}

/* A tensor that PyTorch's parameters() would count: not running statistics, not
 * num_batches_tracked, not optimizer state. */
static int is_parameter(const char *name) { return !dg_model_running_stat(name) && !dg_model_ignored_tensor(name); }

/* A name or metadata text from the file, on stdout: printable ASCII as it is, every other byte as
 * \xNN (and a backslash as \\), so that a hostile file cannot forge lines or send terminal escapes.
 * The characters printed. */
static int print_visible(const char *text) {
    int width = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '\\') width += printf("\\\\");
        else if (*p >= 0x20 && *p < 0x7f) width += printf("%c", *p);
        else width += printf("\\x%02x", *p);
    }
    return width;
}

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
            printf("  ");
            int width = print_visible(t->name);
            printf("%*s %-4s [", width < 48 ? 48 - width : 0, "", dtype_name(t->dtype));
            for (int d = 0; d < t->ndim; d++) printf(d ? ", %lld" : "%lld", (long long)t->shape[d]);
            printf("]\n");
        }
        for (int i = 0; i < f.n_meta; i++) {
            printf("  metadata ");
            print_visible(f.meta_keys[i]);
            printf(" = ");
            print_visible(f.meta_values[i]);
            printf("\n");
        }
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

/* SHA-256 of n little-endian int32 labels */
static void labels_sha256(const int32_t *labels, int n, char hex[65]) {
    dg_sha256 h;
    dg_sha256_init(&h);
    for (int i = 0; i < n; i++) {
        uint32_t v = (uint32_t)labels[i];
        uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
        dg_sha256_update(&h, le, 4);
    }
    dg_sha256_final(&h, hex);
}

/* What a data spec loads: shape, classes (with their names for folder:DIR), counts, the
 * normalisation, and digests of the pixels and labels (to check that two runs or two nodes, or
 * dnnguard and a PyTorch script, read the same data). */
static int info_data(const char *spec, const char *split, const char *normalize, int json) {
    dg_dataset ds;
    dg_norm norm;
    if (strcmp(split, "train") != 0 && strcmp(split, "test") != 0) {
        dg_cli_error("info: --split must be train or test, not '%s'", split);
        return DG_EXIT_BAD_INPUT;
    }
    if (dg_session_norm("info", normalize, &norm) != 0) return DG_EXIT_BAD_INPUT;
    if (dg_session_data(spec, strcmp(split, "train") == 0, &norm, &ds) != 0) return DG_EXIT_BAD_INPUT;
    char **names = NULL, err[600];
    int n_names = 0;
    const char *folder = dg_data_folder_dir(spec, NULL);
    if (folder && dg_folder_class_names(folder, &names, &n_names, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        dg_data_free(&ds);
        return DG_EXIT_BAD_INPUT;
    }
    if (names && n_names != ds.classes) { /* read again after loading: the tree changed meanwhile */
        dg_cli_error("%s: the class folders changed while they were read (%d, then %d)", folder, ds.classes, n_names);
        dg_folder_names_free(names, n_names);
        dg_data_free(&ds);
        return DG_EXIT_BAD_INPUT;
    }
    int *count = calloc((size_t)ds.classes, sizeof(int));
    if (!count) {
        dg_cli_error("info: out of memory");
        dg_folder_names_free(names, n_names);
        dg_data_free(&ds);
        return DG_EXIT_BAD_INPUT;
    }
    for (int i = 0; i < ds.n; i++) count[ds.labels[i]]++;
    char img_hex[65], lab_hex[65];
    dg_sha256 h;
    dg_sha256_init(&h);
    dg_sha256_update(&h, ds.images, (size_t)ds.n * ds.c * ds.h * ds.w);
    dg_sha256_final(&h, img_hex);
    labels_sha256(ds.labels, ds.n, lab_hex);
    char norm_text[256]; /* the same as --normalize text, to pass on to another command */
    dg_norm_format(ds.mean, ds.std, ds.c, norm_text, sizeof norm_text);
    if (json) {
        printf("{\"data\": ");
        dg_json_string(stdout, spec);
        printf(", \"split\": \"%s\", \"name\": \"%s\", \"images\": %d, \"shape\": [%d, %d, %d], \"classes\": %d", split,
               ds.name, ds.n, ds.c, ds.h, ds.w, ds.classes);
        printf(", \"mean\": [");
        for (int ch = 0; ch < ds.c; ch++) printf(ch ? ", %.9g" : "%.9g", ds.mean[ch]);
        printf("], \"std\": [");
        for (int ch = 0; ch < ds.c; ch++) printf(ch ? ", %.9g" : "%.9g", ds.std[ch]);
        printf("], \"normalize\": \"%s\", \"class_names\": ", norm_text);
        if (names) {
            printf("[");
            for (int k = 0; k < n_names; k++) {
                if (k) printf(", ");
                dg_json_string(stdout, names[k]);
            }
            printf("]");
        } else {
            printf("null");
        }
        printf(", \"per_class_count\": [");
        for (int k = 0; k < ds.classes; k++) printf(k ? ", %d" : "%d", count[k]);
        printf("], \"images_sha256\": \"%s\", \"labels_sha256\": \"%s\"}\n", img_hex, lab_hex);
    } else {
        printf("%s (%s split): %d images of %d×%d×%d, %d classes\n", spec, split, ds.n, ds.c, ds.h, ds.w, ds.classes);
        printf("  mean");
        for (int ch = 0; ch < ds.c; ch++) printf(" %.4f", ds.mean[ch]);
        printf(", std");
        for (int ch = 0; ch < ds.c; ch++) printf(" %.4f", ds.std[ch]);
        printf(" (--normalize %s)\n", norm_text);
        int shown = ds.classes < 20 ? ds.classes : 20;
        for (int k = 0; k < shown; k++) {
            printf("  class %d: %d images", k, count[k]);
            if (names) printf(" (%s)", dg_err_safe(names[k]).s);
            printf("\n");
        }
        if (shown < ds.classes) printf("  ... %d more classes (--json lists them all)\n", ds.classes - shown);
        printf("  images sha256 %s (uint8, NCHW)\n  labels sha256 %s (int32, little-endian)\n", img_hex, lab_hex);
    }
    free(count);
    dg_folder_names_free(names, n_names);
    dg_data_free(&ds);
    return DG_EXIT_OK;
}

/* `info --nets`: the known nets with their natural input and class count. */
static int list_nets(int json) {
    const char *name, *about;
    int c, h, w, k;
    if (json) printf("[");
    for (int i = 0; (name = dg_net_known(i, &about, &c, &h, &w, &k)); i++) {
        if (json) {
            printf("%s\n  {\"name\": ", i ? "," : "");
            dg_json_string(stdout, name);
            printf(", \"input\": [%d, %d, %d], \"classes\": %d, \"about\": ", c, h, w, k);
            dg_json_string(stdout, about);
            printf("}");
        } else {
            printf("  %-15s %dx%dx%d, %d classes: %s\n", name, c, h, w, k, about);
        }
    }
    if (json) printf("\n]\n");
    return DG_EXIT_OK;
}

int dg_cmd_info(int argc, char **argv) {
    const char *model = NULL, *net = NULL, *data = NULL, *split = "train", *normalize = NULL;
    int json = 0, classes = 0, list = 0;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "a safetensors or torch.save (.pt) file: list its tensors"},
        {"net", DG_OPT_STR, &net, "a net name: list its parameters"},
        {"data", DG_OPT_STR, &data, "a data set spec: what it loads (shape, classes, counts, digests)"},
        {"split", DG_OPT_STR, &split, "train|test: the split --data loads (default train)"},
        DG_NORMALIZE_OPT(normalize),
        {"classes", DG_OPT_INT, &classes, "class count for --net (default: the net's natural one)"},
        {"json", DG_OPT_FLAG, &json, "JSON instead of a table"},
        {"nets", DG_OPT_FLAG, &list, "list the known net names"},
    };
    int rc = dg_cli_parse("info", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (list + (model != NULL) + (net != NULL) + (data != NULL) != 1) {
        dg_cli_error("info: give exactly one of --nets, --model FILE, --net NAME and --data SPEC");
        return DG_EXIT_BAD_INPUT;
    }
    if ((!net && dg_cli_given(argc, argv, "classes")) || (!data && (dg_cli_given(argc, argv, "split") || normalize))) {
        dg_cli_error("info: --classes goes with --net, --split and --normalize with --data");
        return DG_EXIT_BAD_INPUT;
    }
    if (net && dg_cli_given(argc, argv, "classes") && classes < 2) {
        dg_cli_error("info: --classes must be ≥ 2, not %d", classes);
        return DG_EXIT_BAD_INPUT;
    }
    if (list) return list_nets(json);
    if (data) return info_data(data, split, normalize, json);
    return model ? info_model(model, json) : info_net(net, classes, json);
}
