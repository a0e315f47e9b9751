/* host/cmd_fp.c — `dnnguard fp issue` (users' fingerprints: C&W examples at a fixed class and
 * confidence, written as 8-bit PNGs and checked the way `fp auth` will read them, with a 0600
 * registry) and `dnnguard fp auth` (ActiveGuard's authentication of one image, JSON, the verdict
 * as the exit code). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/math/rng.h"
#include "atomic_file.h"
#include "cli.h"
#include "commands.h"
#include "cw.h"
#include "dist.h"
#include "fingerprint.h"
#include "fp_common.h"
#include "json_fields.h"
#include "model_io.h"
#include "png.h"
#include "session.h"
#include "sha256.h"

/* ---- fp issue ---- */

typedef struct issue_ctx {
    const dg_dataset *ds;
    const int *pred;           /* the model's prediction of every image of the split */
    uint64_t seed;
    long cursor;               /* position in the seeded order of source candidates */
    unsigned char *used;       /* [ds->n] a source already given to someone */
} issue_ctx;

/* The next source image for target class t: in a seeded order, one the model classifies right
 * and whose class is not t (so the fingerprint is an adversarial example), not used before. */
static int next_source(issue_ctx *x, int t) {
    uint64_t stream = dg_rng_stream(x->seed, 0x50a7ceull);
    for (long tries = 0; tries < 4L * x->ds->n; tries++, x->cursor++) {
        int i = (int)(dg_rng_u64(stream, (uint64_t)x->cursor) % (uint64_t)x->ds->n);
        if (x->used[i] || x->ds->labels[i] == t || x->pred[i] != x->ds->labels[i]) continue;
        x->used[i] = 1;
        x->cursor++;
        return i;
    }
    return -1;
}

/* Check an issued image the way `fp auth` reads it: from the PNG file, on backend net_check.
 * 1 when argmax = t, |p_t − c| < margin and `fp auth`'s rule names this very user (not a
 * neighbour whose window touches c's); p_t in *p. */
static int accepted(dg_net *net_check, const dg_fp_registry *r, const char *png, const dg_fp_user *u, float *p,
                    float *probs, float *input) {
    uint8_t *pixels = dg_fp_read_png(png, r);
    if (!pixels) return 0;
    dg_fp_pixels_to_input(pixels, r->c, r->h * r->w, r->mean, r->std, input);
    free(pixels);
    dg_fp_probs(net_check, input, 1, probs);
    dg_fp_decision d;
    dg_fp_decide(r, probs, &d);
    *p = probs[u->cls];
    return d.authorized && d.user == u->id && fabsf(probs[u->cls] - u->conf) < r->margin; /* the id holds the class */
}

/* What became of one generated item, as its rank tells the others. */
typedef struct issue_outcome {
    int issued;
    float l2, p_issue;
    char sha256[65];
} issue_outcome;

/* After --force replaced a registry: its users' PNGs that the new one does not list (user-<digits>.png
 * of identities not issued now) would look like fingerprints of this registry, and are removed, as
 * infip extract --force removes its own. How many went. */
static long drop_stale_fingerprints(const char *out, const dg_fp_user *listed, int n_listed) {
    DIR *d = opendir(out);
    if (!d) return 0;
    long removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *name = e->d_name;
        if (dg_png_numbered(name, "user-") < 0) continue;
        int kept = 0;
        for (int i = 0; i < n_listed && !kept; i++) kept = strcmp(listed[i].file, name) == 0;
        if (kept) continue;
        size_t len = strlen(out) + strlen(name) + 2;
        char *path = malloc(len);
        if (path) snprintf(path, len, "%s/%s", out, name);
        removed += path && unlink(path) == 0;
        free(path);
    }
    closedir(d);
    return removed;
}

static int issue_on_ranks(int argc, char **argv, dg_dist *dist);

/* Users are split across the ranks that --dist names: every rank draws the same source images in
 * the same order, generates and judges its share of each batch, and learns the others' outcomes. */
static int issue(int argc, char **argv) {
    const char *dist_name = "none";
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "--dist") == 0) dist_name = argv[i + 1];
    dg_dist dist;
    if (dg_dist_start(&dist, dist_name, "fp issue", 0) != 0 || dg_dist_same_args(&dist, "fp issue", argc, argv) != 0)
        return dg_dist_finish(&dist, DG_EXIT_BAD_INPUT);
    return dg_dist_finish(&dist, issue_on_ranks(argc, argv, &dist));
}

static int issue_on_ranks(int argc, char **argv, dg_dist *dist) {
    const char *model = NULL, *net_name = NULL, *data = NULL, *classes_text = NULL, *confs_text = NULL, *out = NULL,
               *split = "test", *backend = "auto", *dist_name = "none", *normalize = NULL;
    float eps = 0.01f, margin = NAN; /* unset: eps / 2 */
    int users = 0, retries = 5, batch = 0, force = 0;
    uint64_t seed = 1;
    dg_cw_opts cw;
    dg_cw_cli cw_cli = DG_CW_CLI_INIT;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "the protected model (safetensors or torch.save .pt)"},
        {"net", DG_OPT_STR, &net_name, "its net"},
        {"data", DG_OPT_STR, &data, "where the source images come from (data set spec)"},
        {"split", DG_OPT_STR, &split, "test | train: the split of the sources (default test)"},
        {"normalize", DG_OPT_STR, &normalize, DG_NORMALIZE_HELP "; recorded in the registry"},
        {"classes", DG_OPT_STR, &classes_text, "fingerprint classes L_fp, e.g. 0-9 (default: all)"},
        {"conf", DG_OPT_STR, &confs_text, "fingerprint confidences C_fp, e.g. 0.2,0.3,0.4"},
        {"eps", DG_OPT_FLOAT, &eps, "authentication window |P − c| < eps (default 0.01)"},
        {"margin", DG_OPT_FLOAT, &margin, "an issued fingerprint must be within margin of c (default eps/2)"},
        {"users", DG_OPT_INT, &users, "how many users (default: classes × confidences); the i·T + j-th gets class i "
                                      "of L_fp, confidence j, identity class·T + j"},
        {"out", DG_OPT_DIR, &out, "folder for the PNGs and registry.json"},
        {"force", DG_OPT_FLAG, &force, "replace a registry already in --out"},
        {"seed", DG_OPT_U64, &seed, "picks the source images (default 1)"},
        {"retries", DG_OPT_INT, &retries, "new source images tried for a user whose fingerprint fails (default 5)"},
        {"batch", DG_OPT_INT, &batch, "users generated at once (default: all)"},
        DG_CW_CLI_OPTS(cw_cli),
        {"backend", DG_OPT_STR, &backend, "cpu | cuda | auto"},
        {"dist", DG_OPT_STR, &dist_name, "none | mpi: users split across the ranks mpirun or srun started "
                                         "(--batch stays the batch of all ranks together; default none)"},
    };
    int rc = dg_cli_parse("fp issue", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : dg_dist_fail(dist);
    if (!model || !net_name || !data || !confs_text || !out) {
        dg_cli_error("fp issue: --model, --net, --data, --conf and --out are required");
        return dg_dist_fail(dist);
    }
    if (strcmp(split, "test") != 0 && strcmp(split, "train") != 0) {
        dg_cli_error("fp issue: --split must be test or train");
        return dg_dist_fail(dist);
    }
    int there = 0; /* a registry in --out already (replaced with --force) */
    {
        struct stat st;
        size_t len = strlen(out) + 32;
        char *existing = malloc(len);
        there = existing && (snprintf(existing, len, "%s/registry.json", out), stat(existing, &st) == 0);
        free(existing);
        if (there && !force) { /* its users' fingerprints would stop authenticating */
            dg_cli_error("%s: a registry is already there (a registry is a secret, and its users' fingerprints "
                         "authenticate through it: --force replaces it)", out);
            return dg_dist_fail(dist);
        }
    }
    if (isnan(margin)) margin = eps / 2.0f;
    if (!(eps > 0.0f && eps <= 0.5f) || !(margin > 0.0f && margin <= eps) || retries < 0 || batch < 0) {
        dg_cli_error("fp issue: need 0 < eps ≤ 0.5, 0 < margin ≤ eps, --retries and --batch ≥ 0");
        return dg_dist_fail(dist);
    }
    dg_norm norm;
    if (dg_session_norm("fp issue", normalize, &norm) != 0) return dg_dist_fail(dist);
    const dg_backend *be = dg_cli_backend(backend);
    if (!be) return dg_dist_fail(dist);
    const int root = dg_dist_is_root(dist);
    char err[512];
    dg_dataset ds;
    if (dg_session_data(data, strcmp(split, "train") == 0, &norm, &ds) != 0) return dg_dist_fail(dist);
    /* the paper's settings per kind, then the options */
    if (dg_cw_cli_apply("fp issue", &cw_cli, ds.c == 3, &cw) != 0) {
        dg_data_free(&ds);
        return dg_dist_fail(dist);
    }
    cw.margin = margin;

    dg_fp_registry reg = {0};
    int n_cls = 0, n_conf = 0;
    int all[DG_FP_MAX_CLASSES];
    for (int k = 0; k < ds.classes && k < DG_FP_MAX_CLASSES; k++) all[k] = k;
    if (classes_text) {
        n_cls = dg_fp_parse_classes(classes_text, ds.classes, reg.classes_fp, DG_FP_MAX_CLASSES, err, sizeof err);
    } else {
        n_cls = ds.classes < DG_FP_MAX_CLASSES ? ds.classes : DG_FP_MAX_CLASSES;
        memcpy(reg.classes_fp, all, sizeof(int) * (size_t)n_cls);
    }
    if (n_cls > 0) n_conf = dg_fp_parse_confs(confs_text, eps, reg.confs, DG_FP_MAX_CONFS, err, sizeof err);
    if (n_cls < 0 || n_conf < 0) {
        dg_cli_error("fp issue: %s", err);
        dg_data_free(&ds);
        return dg_dist_fail(dist);
    }
    /* the predicted class has probability at least 1/K: a fingerprint must land within margin of c, so c
     * with c + margin ≤ 1/K is never issued (C&W would spend every retry on it) */
    for (int j = 0; j < n_conf; j++) {
        if ((double)reg.confs[j] + margin <= 1.0 / ds.classes) {
            dg_cli_error("fp issue: --conf %g: with %d classes the predicted class has probability at least 1/%d = "
                         "%.4g, never within --margin %g of %g", (double)reg.confs[j], ds.classes, ds.classes,
                         1.0 / ds.classes, (double)margin, (double)reg.confs[j]);
            dg_data_free(&ds);
            return dg_dist_fail(dist);
        }
    }
    int capacity_ids = n_cls * n_conf;
    if (users == 0) users = capacity_ids;
    if (users < 1 || users > capacity_ids || users > DG_FP_MAX_USERS) {
        dg_cli_error("fp issue: --users %d: %d classes × %d confidences give %d identities", users, n_cls, n_conf,
                     capacity_ids);
        dg_data_free(&ds);
        return dg_dist_fail(dist);
    }
    if (batch == 0 || batch > users) batch = users;
    /* rank 0 makes and tries the folder, once (the probe's name is per process); every rank writes its
     * users' PNGs into it */
    int unmade = root && dg_make_folder(out, err, sizeof err) != 0;
    if (unmade) dg_cli_error("%s", err);
    if (dg_dist_agree(dist, unmade) != 0) {
        dg_data_free(&ds);
        return DG_EXIT_BAD_INPUT;
    }
    if (!root) (void)mkdir(out, 0700); /* there already on a shared file system */

    rc = DG_EXIT_BAD_INPUT;
    int settled = 0; /* whether the set-up is over (host/dist.h): a rank that fails before takes part in its end */
    const int c = ds.c, hw = ds.h * ds.w;
    const size_t per = (size_t)c * hw;
    dg_net *net = dg_session_net(net_name, &ds, be, batch > 256 ? batch : 256, model);
    char why[512];
    if (net && dg_model_require_finite(net, model, "issuing fingerprints", why, sizeof why) != 0) {
        dg_cli_error("fp issue: %s", why);
        dg_net_free(net);
        net = NULL;
    }
    /* (the CPU copy that judges the fingerprints loads the model again, unwarned: warned above) */
    dg_net *check = be == dg_backend_cpu() ? NULL : dg_session_net(net_name, &ds, dg_backend_cpu(), 1, NULL);
    if (check && dg_session_load(check, model, NULL, NULL) != 0) {
        dg_net_free(check);
        check = NULL;
    }
    int *pred = malloc(sizeof(int) * (size_t)ds.n);
    unsigned char *used = calloc((size_t)ds.n, 1);
    dg_fp_user *u = calloc((size_t)users, sizeof *u);
    int *issued = calloc((size_t)users, sizeof(int)), *pending = malloc(sizeof(int) * (size_t)users);
    int *who = malloc(sizeof(int) * (size_t)batch);
    dg_cw_item *items = calloc((size_t)batch, sizeof *items);
    issue_outcome *outcome = calloc((size_t)batch, sizeof *outcome);
    float *x0 = malloc(sizeof(float) * per * (size_t)batch), *input = malloc(sizeof(float) * per);
    float *probs = malloc(sizeof(float) * (size_t)ds.classes);
    uint8_t *pixels = malloc(per * (size_t)batch), *interleaved = malloc(per);
    char *path = malloc(strlen(out) + 96);
    if (!net || (be != dg_backend_cpu() && !check) || !pred || !used || !u || !issued || !pending || !who || !items ||
        !outcome || !x0 ||
        !input || !probs || !pixels || !interleaved || !path) {
        if (net) dg_cli_error("fp issue: out of memory");
        goto done;
    }
    dg_eval_result ev = {0}; /* the predictions, and the loss to see that the outputs are finite */
    int eval_rc = dg_evaluate_predictions(net, &ds, 0, &ev, pred);
    double eval_loss = ev.loss;
    dg_eval_result_free(&ev);
    if (eval_rc != 0) goto done;
    if (!isfinite(eval_loss)) { /* finite weights that overflow float32 on the way (3e38 × a pixel) */
        dg_cli_error("fp issue: %s: the model's loss on %s is not finite, though its weights are (its activations or "
                     "outputs overflow float32): issuing fingerprints needs a working model", model, data);
        goto done;
    }
    snprintf(reg.net, sizeof reg.net, "%s", net_name);
    snprintf(reg.data, sizeof reg.data, "%s", data);
    snprintf(reg.split, sizeof reg.split, "%s", split);
    if (dg_sha256_file(model, reg.model_sha256, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto done;
    }
    reg.c = c, reg.h = ds.h, reg.w = ds.w, reg.classes = ds.classes;
    memcpy(reg.mean, ds.mean, sizeof reg.mean);
    memcpy(reg.std, ds.std, sizeof reg.std);
    reg.eps = eps, reg.margin = margin;
    reg.n_classes_fp = n_cls, reg.n_confs = n_conf;
    reg.n_users = users, reg.users = u;
    const int last_id = dg_fp_identity(&reg, reg.classes_fp[(users - 1) / n_conf], (users - 1) % n_conf);
    for (int i = 0; i < users; i++) { /* the i-th user: the (i / T)-th class of L_fp, confidence i mod T */
        u[i].cls = reg.classes_fp[i / n_conf];
        u[i].id = dg_fp_identity(&reg, u[i].cls, i % n_conf);
        u[i].conf = reg.confs[i % n_conf];
        u[i].source = -1;
        snprintf(u[i].file, sizeof u[i].file, last_id >= 10000 ? "user-%06d.png" : last_id >= 100 ? "user-%04d.png"
                 : "user-%02d.png", u[i].id);
    }
    settled = 1; /* the model loads and works on every rank */
    if (dg_dist_end_setup(dist, 0) != 0) goto done;
    issue_ctx ictx = {&ds, pred, seed, 0, used};
    double t0 = dg_now_s();
    int attempts = 0, n_issued = 0;
    dg_cw_stats stats = {0};
    for (int round = 0; round <= retries && n_issued < users; round++) {
        int n_pending = 0;
        for (int i = 0; i < users; i++)
            if (!issued[i]) pending[n_pending++] = i;
        for (int first = 0; first < n_pending; first += batch) {
            int n = n_pending - first < batch ? n_pending - first : batch, m = 0;
            for (int b = 0; b < n; b++) {
                dg_fp_user *user = &u[pending[first + b]];
                int src = next_source(&ictx, user->cls);
                if (src < 0) continue; /* no fresh source left for this class */
                user->source = src;
                for (size_t j = 0; j < per; j++) x0[(size_t)m * per + j] = ds.images[(size_t)src * per + j] / 255.0f;
                items[m] = (dg_cw_item){.target = user->cls, .conf = user->conf, .x0 = x0 + (size_t)m * per,
                                        .pixels = pixels + (size_t)m * per};
                who[m++] = pending[first + b];
            }
            if (m == 0) continue;
            attempts += m;
            int lo, hi; /* this rank's share of the batch */
            dg_dist_share(m, dist->rank, dist->size, &lo, &hi);
            int failed = 0; /* on this rank: every rank hears of it before the gather */
            if (hi > lo && dg_cw_run(net, ds.mean, ds.std, items + lo, hi - lo, &cw, &stats) != 0) {
                dg_cli_error("fp issue: out of memory in the generator");
                failed = 1;
            }
            memset(outcome, 0, sizeof *outcome * (size_t)m);
            for (int b = lo; b < hi && !failed; b++) {
                dg_fp_user *user = &u[who[b]];
                if (!items[b].success) continue;
                snprintf(path, strlen(out) + 96, "%s/%s", out, user->file);
                dg_image img = {.pixels = interleaved};
                dg_fp_planar_to_image(items[b].pixels, c, ds.h, ds.w, &img);
                if (dg_png_write(path, &img, err, sizeof err) != 0) {
                    dg_cli_error("%s", err);
                    failed = 1;
                    break;
                }
                /* accepted only when it authenticates as written, on this backend and on the CPU */
                float p_here, p_cpu;
                int ok = accepted(net, &reg, path, user, &p_here, probs, input);
                if (ok && check) ok = accepted(check, &reg, path, user, &p_cpu, probs, input);
                if (!ok) {
                    remove(path);
                    continue;
                }
                if (dg_sha256_file(path, outcome[b].sha256, err, sizeof err) != 0) {
                    dg_cli_error("%s", err);
                    failed = 1;
                    break;
                }
                outcome[b].l2 = items[b].l2;
                outcome[b].p_issue = p_here;
                outcome[b].issued = 1;
            }
            if (dg_dist_agree(dist, failed) != 0) goto done;
            dg_dist_gather_shares(dist, outcome, sizeof *outcome, m);
            for (int b = 0; b < m; b++) {
                if (!outcome[b].issued) continue;
                dg_fp_user *user = &u[who[b]];
                memcpy(user->sha256, outcome[b].sha256, sizeof user->sha256);
                user->l2 = outcome[b].l2;
                user->p_issue = outcome[b].p_issue;
                issued[who[b]] = 1;
                n_issued++;
            }
        }
    }
    double seconds = dg_now_s() - t0;
    /* the registry lists the users who got a fingerprint; a user left without one is reported */
    int listed = 0;
    for (int i = 0; i < users; i++)
        if (issued[i]) u[listed++] = u[i];
    reg.n_users = listed;
    double work[2] = {(double)stats.iterations, (double)stats.judge_forwards}; /* all ranks' C&W work */
    dg_dist_sum_f64(dist, work, 2);
    stats.iterations = (long)work[0], stats.judge_forwards = (long)work[1];
    /* rank 0 writes the registry and reports; every rank ends as its write did */
    snprintf(path, strlen(out) + 96, "%s/registry.json", out);
    int unwritten = root && dg_fp_registry_write(&reg, path, err, sizeof err) != 0;
    if (unwritten) dg_cli_error("%s", err);
    if (dg_dist_agree(dist, unwritten) != 0) goto done;
    rc = n_issued == users ? DG_EXIT_OK : DG_EXIT_NO;
    if (!root) goto done;
    long stale = there ? drop_stale_fingerprints(out, u, listed) : 0;
    if (stale)
        fprintf(stderr, "dnnguard: fp issue: removed %ld fingerprint%s of the registry this one replaced\n", stale,
                stale == 1 ? "" : "s");
    double l2_sum = 0.0;
    for (int i = 0; i < listed; i++) l2_sum += u[i].l2;
    printf("{\"registry\": ");
    dg_json_string(stdout, path);
    printf(", \"users\": %d, \"issued\": %d, \"listed\": %d, \"attempts\": %d, \"classes\": %d, \"confidences\": %d, "
           "\"eps\": %g, \"margin\": %g, \"capacity\": %.1f, \"mean_l2\": %s, \"seconds\": %.2f, "
           "\"fingerprints_per_s\": %.3f, \"cw_iterations\": %ld, \"cw_judge_forwards\": %ld, \"backend\": \"%s\", "
           "\"not_issued\": [",
           users, n_issued, listed, attempts, n_cls, n_conf, (double)eps, (double)margin,
           dg_fp_capacity(n_cls, (double)reg.confs[0] - eps, (double)reg.confs[n_conf - 1] + eps, eps),
           dg_json_fixed(listed ? l2_sum / listed : NAN, 4).s, seconds, n_issued / (seconds > 0 ? seconds : 1), stats.iterations,
           stats.judge_forwards, be->name);
    for (int i = 0, k = 0; i < users; i++) /* by identity, as the registry names users (u is compacted) */
        if (!issued[i]) printf(k++ ? ", %d" : "%d", dg_fp_identity(&reg, reg.classes_fp[i / n_conf], i % n_conf));
    printf("]}\n");
    if (rc != DG_EXIT_OK)
        dg_cli_error("fp issue: %d of %d users got no fingerprint that authenticates after %d retries "
                     "(more --retries, --iters or --search-steps may help)", users - n_issued, users, retries);
done:
    if (!settled) dg_dist_fail(dist);
    dg_net_free(net);
    dg_net_free(check);
    dg_data_free(&ds);
    free(pred), free(used), free(u), free(issued), free(pending), free(who), free(items), free(outcome), free(x0),
        free(input);
    free(probs), free(pixels), free(interleaved), free(path);
    return rc;
}

/* ---- fp auth ---- */

static int auth(int argc, char **argv) {
    const char *model = NULL, *registry = NULL, *input_png = NULL, *backend = "auto";
    int strict = 0;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "the protected model"},
        {"registry", DG_OPT_STR, &registry, "registry.json from fp issue"},
        {"input", DG_OPT_STR, &input_png, "the submitted fingerprint (PNG)"},
        {"strict", DG_OPT_FLAG, &strict, "also require the very file issued to that user (SHA-256)"},
        {"backend", DG_OPT_STR, &backend, "cpu | cuda | auto"},
    };
    int rc = dg_cli_parse("fp auth", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (!model || !registry || !input_png) {
        dg_cli_error("fp auth: --model, --registry and --input are required");
        return DG_EXIT_BAD_INPUT;
    }
    const dg_backend *be = dg_cli_backend(backend);
    if (!be) return DG_EXIT_BAD_INPUT;
    char err[512], sha[65];
    dg_fp_registry reg;
    if (dg_fp_registry_read(registry, &reg, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return DG_EXIT_BAD_INPUT;
    }
    rc = DG_EXIT_BAD_INPUT;
    dg_net *net = NULL;
    uint8_t *pixels = dg_fp_read_png(input_png, &reg);
    float *input = malloc(sizeof(float) * (size_t)reg.c * reg.h * reg.w);
    float *probs = malloc(sizeof(float) * (size_t)reg.classes);
    if (!pixels || !input || !probs) goto done;
    if (dg_sha256_file(input_png, sha, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto done;
    }
    if (!(net = dg_fp_registry_net(&reg, model, be, 1))) goto done;
    dg_fp_pixels_to_input(pixels, reg.c, reg.h * reg.w, reg.mean, reg.std, input);
    dg_fp_probs(net, input, 1, probs);
    dg_fp_decision d;
    dg_fp_decide(&reg, probs, &d);
    /* the rule names an identity; it is authorised only when the registry lists that user (an
     * identity never issued, or whose fingerprint failed, is nobody's), and in strict mode only
     * with the very file issued to them */
    int at = d.authorized ? dg_fp_find_user(&reg, d.user) : -1, listed = at >= 0;
    int same_file = listed && strcmp(sha, reg.users[at].sha256) == 0;
    int authorized = listed && (!strict || same_file);
    char conf_text[32]; /* as the registry writes it: 0.3, not 0.300000012 */
    dg_json_float_text(authorized ? d.conf : NAN, conf_text, sizeof conf_text);
    printf("{\"input\": ");
    dg_json_string(stdout, input_png);
    /* rule_user is the identity the rule names (-1: none), user_listed and issued_file are about it;
     * user, class and confidence are the authorised user's (-1, -1, null when refused) */
    printf(", \"sha256\": \"%s\", \"predicted\": %d, \"p_max\": %s, \"rule_met\": %s, \"rule_user\": %d, "
           "\"user_listed\": %s, \"user\": %d, \"class\": %d, \"confidence\": %s, \"strict\": %s, "
           "\"issued_file\": %s, \"authorized\": %s}\n",
           sha, d.predicted, dg_json_fixed(d.p_max, 6).s, d.authorized ? "true" : "false", d.authorized ? d.user : -1,
           listed ? "true" : "false", authorized ? d.user : -1, authorized ? d.predicted : -1,
           conf_text, strict ? "true" : "false",
           same_file ? "true" : "false", authorized ? "true" : "false");
    rc = authorized ? DG_EXIT_OK : DG_EXIT_NO;
done:
    dg_net_free(net);
    dg_fp_registry_free(&reg);
    free(pixels), free(input), free(probs);
    return rc;
}

int dg_cmd_fp(int argc, char **argv) {
    if (argc >= 1 && strcmp(argv[0], "issue") == 0) return issue(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "auth") == 0) return auth(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "eval") == 0) return dg_cmd_fp_eval(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "--help") == 0) {
        printf("usage: dnnguard fp issue|auth|eval [options]   (--help after the subcommand lists its options)\n");
        return DG_EXIT_OK;
    }
    dg_cli_error("fp: expected issue, auth or eval%s%s", argc ? ", not " : "", argc ? argv[0] : "");
    return DG_EXIT_BAD_INPUT;
}
