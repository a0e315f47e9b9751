/* host/cmd_fp_eval.c — `dnnguard fp eval`: the paper's Table II. For every user of a registry,
 * generate --per-user fresh fingerprints for that user's (class, confidence) from new source
 * images, one attempt each, and count how many authenticate as that user (on the 8-bit image,
 * by the same rule as `fp auth`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/math/rng.h"
#include "atomic_file.h"
#include "cli.h"
#include "commands.h"
#include "cw.h"
#include "fingerprint.h"
#include "fp_common.h"
#include "session.h"

int dg_cmd_fp_eval(int argc, char **argv) {
    const char *model = NULL, *registry = NULL, *data = NULL, *backend = "auto", *table = NULL, *normalize = NULL;
    int per_user = 10, batch = 300;
    dg_cw_cli cw_cli = DG_CW_CLI_INIT;
    uint64_t seed = 2;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "the protected model"},
        {"registry", DG_OPT_STR, &registry, "registry.json from fp issue"},
        {"data", DG_OPT_STR, &data, "source images (default: the registry's data set, same split)"},
        DG_NORMALIZE_RECORDED_OPT(normalize),
        {"per-user", DG_OPT_INT, &per_user, "fresh fingerprints per user (default 10; the paper's Table II: 100)"},
        {"seed", DG_OPT_U64, &seed, "picks the source images (default 2, another stream than fp issue)"},
        {"batch", DG_OPT_INT, &batch, "fingerprints generated at once (default 300)"},
        DG_CW_CLI_OPTS(cw_cli),
        {"table", DG_OPT_STR, &table, "also write the per-user table as Markdown"},
        {"backend", DG_OPT_STR, &backend, "cpu | cuda | auto"},
    };
    int rc = dg_cli_parse("fp eval", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (!model || !registry) {
        dg_cli_error("fp eval: --model and --registry are required");
        return DG_EXIT_BAD_INPUT;
    }
    if (per_user < 1 || batch < 1) {
        dg_cli_error("fp eval: --per-user and --batch must be ≥ 1");
        return DG_EXIT_BAD_INPUT;
    }
    char err[512];
    if (table && (dg_same_file(table, model) || dg_same_file(table, registry))) {
        dg_cli_error("fp eval: --table is the --model or --registry file");
        return DG_EXIT_BAD_INPUT;
    }
    if (table && dg_check_openable(table, err, sizeof err) != 0) { /* now, not after the fingerprints */
        dg_cli_error("%s", err);
        return DG_EXIT_BAD_INPUT;
    }
    dg_norm norm;
    if (dg_session_norm("fp eval", normalize, &norm) != 0) return DG_EXIT_BAD_INPUT;
    const dg_backend *be = dg_cli_backend(backend);
    if (!be) return DG_EXIT_BAD_INPUT;
    dg_fp_registry reg;
    if (dg_fp_registry_read(registry, &reg, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return DG_EXIT_BAD_INPUT;
    }
    if (reg.n_users == 0) {
        dg_cli_error("%s: the registry lists no users", registry);
        dg_fp_registry_free(&reg);
        return DG_EXIT_BAD_INPUT;
    }
    dg_cw_opts cw; /* before the model is evaluated: a bad option is said at once */
    if (dg_cw_cli_apply("fp eval", &cw_cli, reg.c == 3, &cw) != 0) {
        dg_fp_registry_free(&reg);
        return DG_EXIT_BAD_INPUT;
    }
    dg_dataset ds = {0};
    rc = DG_EXIT_BAD_INPUT;
    dg_net *net = NULL;
    long total = (long)reg.n_users * per_user;
    if (batch > total) batch = (int)total;
    int *pred = NULL, *owner = NULL, *auth_count = NULL, *gen_count = NULL;
    double *l2_sum = NULL;
    dg_cw_item *items = calloc((size_t)batch, sizeof *items);
    dg_fp_decision *dec = calloc((size_t)batch, sizeof *dec);
    float *x0 = NULL;
    uint8_t *pixels = NULL, *taken = NULL;
    /* the sources are picked by the model's answers on them, normalised as its fingerprints are */
    if (dg_fp_registry_data("fp eval", &reg, registry, NULL, data ? data : reg.data, strcmp(reg.split, "train") == 0,
                            &norm, normalize != NULL, &ds) != 0)
        goto done;
    if (!(net = dg_fp_registry_net(&reg, model, be, batch))) goto done;
    size_t per = (size_t)reg.c * reg.h * reg.w;
    pred = malloc(sizeof(int) * (size_t)ds.n);
    taken = malloc((size_t)ds.n); /* the sources the current user has had, and its issued fingerprint's */
    owner = malloc(sizeof(int) * (size_t)batch);
    auth_count = calloc((size_t)reg.n_users, sizeof(int));
    gen_count = calloc((size_t)reg.n_users, sizeof(int));
    l2_sum = calloc((size_t)reg.n_users, sizeof(double));
    x0 = malloc(sizeof(float) * per * (size_t)batch);
    pixels = malloc(per * (size_t)batch);
    if (!items || !dec || !pred || !taken || !owner || !auth_count || !gen_count || !l2_sum || !x0 || !pixels) {
        dg_cli_error("fp eval: out of memory");
        goto done;
    }
    dg_eval_result ev = {0}; /* only the predictions are used */
    int eval_rc = dg_evaluate_predictions(net, &ds, 0, &ev, pred);
    dg_eval_result_free(&ev);
    if (eval_rc != 0) goto done;
    cw.margin = reg.margin;
    uint64_t stream = dg_rng_stream(seed, 0xe7a1ull);
    long cursor = 0, attempted = 0, authenticated = 0;
    int taken_for = -1; /* whose sources `taken` marks */
    const int registry_data = !data || strcmp(data, reg.data) == 0; /* its sources index this split */
    double t0 = dg_now_s();
    /* q walks the attempts (user q / per_user) once, across batches: a batch that skipped a slot
     * (no source left) must not start the next one before where it stopped, or a user's slots would
     * be walked again with `taken` cleared, reusing sources and counting attempts twice */
    long q = 0;
    while (q < total) {
        int m = 0;
        for (; q < total && m < batch; q++) {
            const dg_fp_user *u = &reg.users[q / per_user];
            if (taken_for != (int)(q / per_user)) { /* fresh: no source twice for a user, nor its own */
                taken_for = (int)(q / per_user);
                memset(taken, 0, ds.n > 0 ? (size_t)ds.n : 0);
                if (registry_data && u->source >= 0 && u->source < ds.n) taken[u->source] = 1;
            }
            int src = -1; /* a source the model gets right, of another class than the target */
            for (long tries = 0; tries < 4L * ds.n && src < 0; tries++, cursor++) {
                int i = (int)(dg_rng_u64(stream, (uint64_t)cursor) % (uint64_t)ds.n);
                if (!taken[i] && ds.labels[i] != u->cls && pred[i] == ds.labels[i]) src = i;
            }
            cursor++;
            if (src < 0) continue; /* none left (or none found): fewer attempts, and said by its count */
            taken[src] = 1;
            for (size_t j = 0; j < per; j++) x0[(size_t)m * per + j] = ds.images[(size_t)src * per + j] / 255.0f;
            items[m] = (dg_cw_item){.target = u->cls, .conf = u->conf, .x0 = x0 + (size_t)m * per,
                                    .pixels = pixels + (size_t)m * per};
            owner[m++] = (int)(q / per_user);
        }
        if (m == 0) continue;
        if (dg_cw_run(net, reg.mean, reg.std, items, m, &cw, NULL) != 0 ||
            dg_fp_decide_images(net, &reg, pixels, m, dec) != 0) {
            dg_cli_error("fp eval: out of memory");
            goto done;
        }
        for (int b = 0; b < m; b++) {
            int who = owner[b];
            gen_count[who]++;
            attempted++;
            /* an attempt counts when the generator produced an image and it authenticates as its user */
            if (items[b].success && dec[b].authorized && dec[b].user == reg.users[who].id) {
                auth_count[who]++;
                authenticated++;
                l2_sum[who] += items[b].l2;
            }
        }
    }
    double seconds = dg_now_s() - t0;
    FILE *md = table ? fopen(table, "w") : NULL;
    if (table && !md) {
        dg_cli_error("%s: cannot open for writing", table);
        goto done;
    }
    if (md) fprintf(md, "| user | class | confidence | fingerprints | authenticated | rate | mean L2 |\n|---|---|---|---|---|---|---|\n");
    double min_rate = 1.0;
    printf("{\"registry\": ");
    dg_json_string(stdout, registry);
    printf(", \"per_user\": %d, \"users\": [", per_user);
    for (int i = 0; i < reg.n_users; i++) {
        const dg_fp_user *u = &reg.users[i];
        double rate = gen_count[i] ? (double)auth_count[i] / gen_count[i] : 0.0;
        if (rate < min_rate) min_rate = rate;
        /* the mean over the fingerprints that authenticated: none (null, —) when none did */
        double mean_l2 = auth_count[i] ? l2_sum[i] / auth_count[i] : NAN;
        printf("%s{\"id\": %d, \"class\": %d, \"confidence\": %g, \"fingerprints\": %d, \"authenticated\": %d, "
               "\"rate\": %.4f, \"mean_l2\": %s}",
               i ? ", " : "", u->id, u->cls, (double)u->conf, gen_count[i], auth_count[i], rate,
               dg_json_fixed(mean_l2, 4).s);
        if (md) {
            fprintf(md, "| %d | %d | %g | %d | %d | %.1f%% | ", u->id, u->cls, (double)u->conf, gen_count[i],
                    auth_count[i], 100.0 * rate);
            if (auth_count[i]) fprintf(md, "%.3f |\n", mean_l2);
            else fputs("— |\n", md);
        }
    }
    printf("], \"fingerprints\": %ld, \"authenticated\": %ld, \"rate\": %.6f, \"min_user_rate\": %.4f, "
           "\"seconds\": %.2f, \"fingerprints_per_s\": %.3f, \"backend\": \"%s\"}\n",
           attempted, authenticated, attempted ? (double)authenticated / attempted : 0.0, min_rate, seconds,
           attempted / (seconds > 0 ? seconds : 1), be->name);
    if (md && fclose(md) != 0) {
        dg_cli_error("%s: write error", table);
        goto done;
    }
    rc = DG_EXIT_OK;
done:
    dg_net_free(net);
    dg_data_free(&ds);
    dg_fp_registry_free(&reg);
    free(items), free(dec), free(pred), free(owner), free(auth_count), free(gen_count), free(l2_sum), free(x0);
    free(pixels);
    free(taken);
    return rc;
}
