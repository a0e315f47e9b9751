/* host/cmd_predict.c — `dnnguard predict`: ActiveGuard's control layer in front of a protected
 * model. A query that comes with a fingerprint that authenticates gets the model's answers; any
 * other gets a class drawn at random per input (seeded), so an unauthorised user sees a model at
 * chance level. Reports the accuracy of both paths on a labelled split (the paper's Fig. 5); exit 1
 * when a fingerprint is given and refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "cli.h"
#include "commands.h"
#include "fingerprint.h"
#include "fp_common.h"
#include "session.h"
#include "sha256.h"

int dg_cmd_predict(int argc, char **argv) {
    const char *model = NULL, *net_name = NULL, *data = NULL, *fingerprint = NULL, *registry = NULL,
               *split = "test", *backend = "auto", *out = NULL, *normalize = NULL;
    int limit = 0, batch = 256;
    uint64_t seed = 1;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "the protected model"},
        {"net", DG_OPT_STR, &net_name, "its net"},
        {"data", DG_OPT_STR, &data, "the labelled queries (data set spec)"},
        {"split", DG_OPT_STR, &split, "test | train (default test)"},
        {"normalize", DG_OPT_STR, &normalize,
         DG_NORMALIZE_HELP "; with --registry, it must be the registry's (default: that one)"},
        {"fingerprint", DG_OPT_STR, &fingerprint, "the user's fingerprint (PNG); without one, the answers are random"},
        {"registry", DG_OPT_STR, &registry, "registry.json from fp issue (needed with --fingerprint)"},
        {"seed", DG_OPT_U64, &seed, "the control layer's random answers (default 1)"},
        {"limit", DG_OPT_INT, &limit, "only the first N queries (default 0: all)"},
        {"out", DG_OPT_STR, &out, "write the answers, one class per line"},
        {"batch", DG_OPT_INT, &batch, "batch size (default 256)"},
        {"backend", DG_OPT_STR, &backend, "cpu | cuda | auto"},
    };
    int rc = dg_cli_parse("predict", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (!model || !net_name || !data) {
        dg_cli_error("predict: --model, --net and --data are required");
        return DG_EXIT_BAD_INPUT;
    }
    if (!fingerprint != !registry) {
        dg_cli_error("predict: --fingerprint and --registry go together");
        return DG_EXIT_BAD_INPUT;
    }
    if ((strcmp(split, "test") != 0 && strcmp(split, "train") != 0) || batch < 1 || limit < 0) {
        dg_cli_error("predict: --split must be test or train, --batch ≥ 1, --limit ≥ 0 (0: every query)");
        return DG_EXIT_BAD_INPUT;
    }
    char err[512];
    if (out && dg_same_file(out, model)) {
        dg_cli_error("predict: --out is the --model file");
        return DG_EXIT_BAD_INPUT;
    }
    if (out && dg_check_openable(out, err, sizeof err) != 0) { /* now, not after the predictions */
        dg_cli_error("%s", err);
        return DG_EXIT_BAD_INPUT;
    }
    dg_norm norm;
    if (dg_session_norm("predict", normalize, &norm) != 0) return DG_EXIT_BAD_INPUT;
    const dg_backend *be = dg_cli_backend(backend);
    if (!be) return DG_EXIT_BAD_INPUT;
    dg_fp_registry reg = {0};
    dg_dataset ds = {0};
    dg_net *net = NULL;
    int *pred = NULL, authorized = 0, user = -1;
    uint8_t *pixels = NULL;
    float *input = NULL, *probs = NULL;
    rc = DG_EXIT_BAD_INPUT;
    if (registry && dg_fp_registry_read(registry, &reg, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto done;
    }
    int train = strcmp(split, "train") == 0;
    if ((registry ? dg_fp_registry_data("predict", &reg, registry, net_name, data, train, &norm, normalize != NULL, &ds)
                  : dg_session_data(data, train, &norm, &ds)) != 0)
        goto done;
    batch = dg_session_batch(batch, limit, &ds);
    net = registry ? dg_fp_registry_net(&reg, model, be, batch) : dg_session_net(net_name, &ds, be, batch, model);
    if (!net) goto done;
    if (fingerprint) { /* the control layer: does the fingerprint authenticate a listed user? */
        if (!(pixels = dg_fp_read_png(fingerprint, &reg))) goto done;
        input = malloc(sizeof(float) * (size_t)reg.c * reg.h * reg.w);
        probs = malloc(sizeof(float) * (size_t)reg.classes);
        if (!input || !probs) goto done;
        dg_fp_pixels_to_input(pixels, reg.c, reg.h * reg.w, reg.mean, reg.std, input);
        dg_fp_probs(net, input, 1, probs);
        dg_fp_decision d;
        dg_fp_decide(&reg, probs, &d);
        authorized = d.authorized && dg_fp_find_user(&reg, d.user) >= 0;
        user = authorized ? d.user : -1;
    }
    int n = limit > 0 && limit < ds.n ? limit : ds.n;
    if (!(pred = malloc(sizeof(int) * (size_t)(n ? n : 1)))) goto done;
    dg_eval_result ev = {0}; /* only the predictions are used */
    int eval_rc = dg_evaluate_predictions(net, &ds, n, &ev, pred);
    const int nonfinite = ev.nonfinite;
    dg_eval_result_free(&ev);
    if (eval_rc != 0) goto done;
    long correct_model = 0, correct_random = 0;
    /* --out naming this process's stdout (/dev/stdout into a file) writes there: a second stream on it
     * would write over the JSON from offset 0 */
    struct stat st_out, st_stdout;
    int to_stdout = out && stat(out, &st_out) == 0 && fstat(STDOUT_FILENO, &st_stdout) == 0 &&
                    st_out.st_dev == st_stdout.st_dev && st_out.st_ino == st_stdout.st_ino;
    FILE *answers = to_stdout ? stdout : out ? fopen(out, "w") : NULL;
    if (out && !answers) {
        dg_cli_error("%s: cannot open for writing", out);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        int random_class = dg_fp_random_class(seed, (uint64_t)i, ds.classes);
        correct_model += pred[i] == ds.labels[i];
        correct_random += random_class == ds.labels[i];
        if (answers) fprintf(answers, "%d\n", authorized ? pred[i] : random_class);
    }
    if (answers && (to_stdout ? fflush(answers) : fclose(answers)) != 0) {
        dg_cli_error("%s: write error", out);
        goto done;
    }
    double acc_model = n ? (double)correct_model / n : 0.0, acc_random = n ? (double)correct_random / n : 0.0;
    printf("{\"model\": ");
    dg_json_string(stdout, model);
    printf(", \"images\": %d, \"fingerprint\": ", n);
    if (fingerprint) dg_json_string(stdout, fingerprint);
    else printf("null");
    printf(", \"authorized\": %s, \"user\": %d, \"path\": \"%s\", \"accuracy\": %.6f, \"accuracy_authorized\": %.6f, "
           "\"accuracy_unauthorized\": %.6f, \"nonfinite_outputs\": %d, \"seed\": %llu}\n",
           authorized ? "true" : "false", user, authorized ? "model" : "random", authorized ? acc_model : acc_random,
           acc_model, acc_random, nonfinite, (unsigned long long)seed);
    if (nonfinite) /* the model gives them no class: −1, counted wrong in accuracy_authorized */
        fprintf(stderr, "dnnguard: predict: %d of %d queries have NaN or infinite outputs (%s): %s is not a working "
                "model\n", nonfinite, n, authorized ? "answered -1, counted wrong" : "the model's answer would be -1",
                model);
    /* a command that decides says it in its exit code too (as fp auth): 1 when the fingerprint
     * given is refused; the answers (random ones then) are written either way */
    rc = fingerprint && !authorized ? DG_EXIT_NO : DG_EXIT_OK;
done:
    dg_net_free(net);
    dg_data_free(&ds);
    dg_fp_registry_free(&reg);
    free(pred), free(pixels), free(input), free(probs);
    return rc;
}
