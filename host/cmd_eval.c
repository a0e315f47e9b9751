/* host/cmd_eval.c — `dnnguard eval`: accuracy, mean loss and per-class accuracy of a weight file
 * on a data split, as JSON on stdout. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "session.h"

int dg_cmd_eval(int argc, char **argv) {
    const char *net_name = NULL, *model = NULL, *data = NULL, *split = "test", *backend = "auto", *normalize = NULL;
    int batch = 256, limit = 0;
    const dg_opt opts[] = {
        {"net", DG_OPT_STR, &net_name, "net name"},
        {"model", DG_OPT_STR, &model, "weights (safetensors or torch.save .pt)"},
        {"data", DG_OPT_STR, &data, "data set spec, as for train"},
        {"split", DG_OPT_STR, &split, "test | train (default test)"},
        DG_NORMALIZE_OPT(normalize),
        {"batch", DG_OPT_INT, &batch, "batch size (default 256)"},
        {"limit", DG_OPT_INT, &limit, "only the first N images (default 0: all)"},
        {"backend", DG_OPT_STR, &backend, "cpu | cuda | auto"},
    };
    int rc = dg_cli_parse("eval", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (!model) {
        dg_cli_error("eval: --model FILE is required");
        return DG_EXIT_BAD_INPUT;
    }
    if (strcmp(split, "test") != 0 && strcmp(split, "train") != 0) {
        dg_cli_error("eval: --split must be test or train, not '%s'", split);
        return DG_EXIT_BAD_INPUT;
    }
    if (batch < 1 || limit < 0) {
        dg_cli_error("eval: --batch must be ≥ 1 and --limit ≥ 0 (0: every image)");
        return DG_EXIT_BAD_INPUT;
    }
    dg_norm norm;
    if (dg_session_norm("eval", normalize, &norm) != 0) return DG_EXIT_BAD_INPUT;
    const dg_backend *be = dg_cli_backend(backend);
    if (!be) return DG_EXIT_BAD_INPUT;
    dg_dataset ds;
    if (dg_session_data(data, strcmp(split, "train") == 0, &norm, &ds) != 0) return DG_EXIT_BAD_INPUT;
    batch = dg_session_batch(batch, limit, &ds);
    dg_net *net = dg_session_net(net_name, &ds, be, batch, model);
    dg_eval_result r = {0};
    rc = DG_EXIT_BAD_INPUT;
    if (net && dg_evaluate(net, &ds, limit, &r) == 0) {
        printf("{\"model\": ");
        dg_json_string(stdout, model);
        printf(", \"net\": ");
        dg_json_string(stdout, net_name);
        printf(", \"data\": ");
        dg_json_string(stdout, data);
        char norm_text[256];
        dg_norm_format(ds.mean, ds.std, ds.c, norm_text, sizeof norm_text);
        printf(", \"normalize\": \"%s\"", norm_text);
        /* null where a figure does not exist: top-5 of five classes or fewer is always right, a class
         * without images has no accuracy (0 would say its images were all wrong) */
        printf(", \"split\": \"%s\", \"images\": %d, \"accuracy\": %.6f, \"top5_accuracy\": ", split, r.images,
               r.accuracy);
        if (r.classes > 5) printf("%.6f", r.top5_accuracy);
        else printf("null");
        printf(", \"loss\": %s, \"per_class_accuracy\": [", dg_json_fixed(r.loss, 6).s);
        for (int k = 0; k < r.classes; k++) {
            if (k) printf(", ");
            if (r.count[k]) printf("%.6f", (double)r.correct[k] / r.count[k]);
            else printf("null");
        }
        printf("], \"per_class_count\": [");
        for (int k = 0; k < r.classes; k++) printf(k ? ", %d" : "%d", r.count[k]);
        printf("], \"nonfinite_outputs\": %d}\n", r.nonfinite);
        if (r.nonfinite) /* the accuracy is true (no made-up class is right), but the user should know */
            fprintf(stderr, "dnnguard: eval: %d of %d images have NaN or infinite outputs, counted wrong: %s is not a "
                    "working model\n", r.nonfinite, r.images, model);
        rc = DG_EXIT_OK;
    }
    dg_eval_result_free(&r);
    dg_net_free(net);
    dg_data_free(&ds);
    return rc;
}
