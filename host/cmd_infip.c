/* host/cmd_infip.c — `dnnguard infip extract` (an owner's reference folder: key images, their DTD
 * relevance fingerprints as PNGs, the raw relevance, a manifest), `dnnguard infip verify` (InFIP's
 * Algorithm 1 on a suspect model: its fingerprints of the same keys, ASSIM against the owner's, the
 * decision as JSON and as the exit code) and `dnnguard infip calibrate` (the threshold set by
 * independently trained models, stored beside the manifest for verify). The steps they share are
 * host/infip_run.c. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "cli.h"
#include "commands.h"
#include "dist.h"
#include "infip.h"
#include "infip_run.h"
#include "json_fields.h"
#include "model_io.h"
#include "png.h"
#include "relevance.h"
#include "safetensors.h"
#include "session.h"
#include "sha256.h"
#include "ssim.h"

static int make_folder(const char *path) {
    char err[600];
    if (dg_make_folder(path, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return -1;
    }
    return 0;
}

/* Remove dir's PREFIX<digits>.png of keys n and later: left by a larger run that --force replaced, they
 * are no key of the new one. How many went. */
static long drop_pngs_past(const char *dir, const char *prefix, int n) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    long removed = 0;
    char path[4600];
    for (struct dirent *e; (e = readdir(d));) {
        if (dg_png_numbered(e->d_name, prefix) < n) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        removed += unlink(path) == 0;
    }
    closedir(d);
    return removed;
}

/* Whether path (which need not exist yet: then its parent must) is folder or lies inside it. */
static int inside_folder(const char *path, const char *folder) {
    char *rf = realpath(folder, NULL), *rp = realpath(path, NULL);
    if (!rp) { /* a folder to be made: its parent's real path and its own name */
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", path);
        size_t len = strlen(parent);
        while (len > 1 && parent[len - 1] == '/') parent[--len] = 0;
        char *slash = strrchr(parent, '/');
        const char *name = slash ? slash + 1 : parent;
        if (slash) *slash = 0;
        char *rparent = realpath(slash ? (parent[0] ? parent : "/") : ".", NULL);
        if (rparent && (rp = malloc(strlen(rparent) + strlen(name) + 2))) sprintf(rp, "%s/%s", rparent, name);
        free(rparent);
    }
    size_t n = rf ? strlen(rf) : 0;
    int inside = rf && rp && strncmp(rp, rf, n) == 0 && (rp[n] == 0 || rp[n] == '/' || n == 1);
    free(rf);
    free(rp);
    return inside;
}

/* verify --out writes fp-NNNNN.png: never into the reference, any folder of it included (its
 * fingerprints/ would be the suspect's from then on, and every later verify would compare the
 * suspect with itself), and not over another run's fingerprints unless --force says so. Said, and
 * -1, when refused. */
static int check_verify_out(const char *out, const char *reference, int force) {
    if (inside_folder(out, reference)) {
        dg_cli_error("infip verify: --out %s is the reference's own folder or inside it: the suspect's fingerprints "
                     "would mix with the owner's; give a folder of its own", out);
        return -1;
    }
    DIR *dir = opendir(out);
    if (!dir) return 0; /* new (made next), or not a folder: make_folder says which */
    const char *held = NULL;
    for (struct dirent *e; !held && (e = readdir(dir));)
        if (dg_png_numbered(e->d_name, "fp-") >= 0) held = e->d_name;
    if (held && !force) dg_cli_error("infip verify: --out %s already holds fingerprints (%s): --force replaces "
                                     "them, or give a new folder", out, held);
    closedir(dir);
    return held && !force ? -1 : 0;
}

static int parse_inject(const char *text, int *logit) {
    if (strcmp(text, "one") == 0) *logit = 0;
    else if (strcmp(text, "logit") == 0) *logit = 1;
    else {
        dg_cli_error("--inject must be one or logit, not '%s'", text);
        return -1;
    }
    return 0;
}

/* --dist NAME from argv (before the options are parsed), started; the command runs on the ranks */
static int on_ranks(const char *command, int argc, char **argv, int (*run)(int, char **, dg_dist *)) {
    const char *dist_name = "none";
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "--dist") == 0) dist_name = argv[i + 1];
    dg_dist dist;
    if (dg_dist_start(&dist, dist_name, command, 0) != 0 || dg_dist_same_args(&dist, command, argc, argv) != 0)
        return dg_dist_finish(&dist, DG_EXIT_BAD_INPUT);
    return dg_dist_finish(&dist, run(argc, argv, &dist));
}

#define BATCH_OPT(v) \
    {"batch", DG_OPT_INT, &(v), "keys per pass (default: what fits 1 GiB of activations, at most 256)"}
#define SCORE_BATCH_OPT(v)                                                                                      \
    {"batch", DG_OPT_INT, &(v), "keys per pass (default: the reference's for a model of the owner's net, which " \
                                "rounds as the owner's did; else what fits 1 GiB of activations, at most 256)"}
#define DIST_OPT(v) \
    {"dist", DG_OPT_STR, &(v), "none | mpi: the keys split across the ranks mpirun or srun started (default none)"}

/* ---- infip extract ---- */

/* A calibration left from the reference --force replaced no longer holds: removed, and said. One
 * that cannot be read is left, and said (verify refuses it); the same command again writes the
 * same manifest, and its calibration then stays. */
static void drop_stale_calibration(const char *out, const char *manifest_path) {
    char path[4200], err[600], sha[65];
    dg_infip_calibration cal;
    snprintf(path, sizeof path, "%s/" DG_INFIP_CALIBRATION, out);
    struct stat st;
    if (lstat(path, &st) != 0 || dg_sha256_file(manifest_path, sha, err, sizeof err) != 0) return;
    if (dg_infip_calibration_read(path, NULL, &cal, err, sizeof err) != 0) {
        fprintf(stderr, "dnnguard: infip extract: warning: left %s, which cannot be read (%s); verify refuses it\n", path, err);
        return;
    }
    int stale = strcmp(cal.manifest_sha256, sha) != 0;
    dg_infip_calibration_free(&cal);
    if (stale && unlink(path) == 0)
        fprintf(stderr, "dnnguard: infip extract: removed %s: it calibrated the reference this one replaced\n", path);
}

/* The PNGs of keys past n that a larger reference --force replaced left behind (keys/key-NNNNN.png,
 * fingerprints/fp-NNNNN.png): the manifest no longer lists them, so they are removed, and said. */
static void drop_stale_pngs(const char *out, int n) {
    static const char *const folder[] = {"keys", "fingerprints"}, *const prefix[] = {"key-", "fp-"};
    long removed = 0;
    for (int f = 0; f < 2; f++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", out, folder[f]);
        removed += drop_pngs_past(dir, prefix[f], n);
    }
    if (removed)
        fprintf(stderr, "dnnguard: infip extract: removed %ld PNGs of keys past %d: the reference this one replaced had them\n",
                removed, n - 1);
}

static void data_input(const void *ctx, int k, float *x) {
    const void *const *c = ctx; /* {dataset, indices} */
    dg_data_image_f32(c[0], ((const int *)c[1])[k], x);
}

static int extract(int argc, char **argv, dg_dist *dist) {
    const char *model = NULL, *net_name = NULL, *keys_spec = NULL, *split = "test", *out = NULL, *backend = "auto";
    const char *inject_text = "one", *dist_name = "none", *normalize = NULL;
    int n = 400, batch = 0, force = 0;
    float lambda = 5000.0f, eps = DG_RELEVANCE_EPS;
    uint64_t seed = 1;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "the owner's model (safetensors or torch.save .pt)"},
        {"net", DG_OPT_STR, &net_name, "its net"},
        {"keys", DG_OPT_STR, &keys_spec, "the data set the key images are drawn from (e.g. cifar10:DIR)"},
        {"split", DG_OPT_STR, &split, "test (default) or train"},
        {"normalize", DG_OPT_STR, &normalize, DG_NORMALIZE_HELP "; recorded in the manifest, with the z^B bounds it gives"},
        {"n", DG_OPT_INT, &n, "number of key images (default 400)"},
        {"seed", DG_OPT_U64, &seed, "draws the keys (default 1)"},
        {"lambda", DG_OPT_FLOAT, &lambda, "fingerprint = clip(round(lambda · relevance), 0, 255) (default 5000)"},
        {"inject", DG_OPT_STR, &inject_text, "relevance at the predicted logit: one (default) | logit (its value)"},
        {"stabilizer", DG_OPT_FLOAT, &eps, "eps of the rules' denominators (default 1e-9)"},
        BATCH_OPT(batch),
        {"backend", DG_OPT_STR, &backend, "cpu | cuda | auto"},
        {"out", DG_OPT_DIR, &out, "the reference folder to write"},
        {"force", DG_OPT_FLAG, &force, "replace a reference already in --out"},
        DIST_OPT(dist_name),
    };
    int rc = dg_cli_parse("infip extract", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : dg_dist_fail(dist);
    int inject_logit = 0;
    if (!model || !net_name || !keys_spec || !out) {
        dg_cli_error("infip extract: --model, --net, --keys and --out are required");
        return dg_dist_fail(dist);
    }
    if (parse_inject(inject_text, &inject_logit) != 0) return dg_dist_fail(dist);
    if (strcmp(split, "test") != 0 && strcmp(split, "train") != 0) {
        dg_cli_error("infip extract: --split must be test or train, not '%s'", split);
        return dg_dist_fail(dist);
    }
    if (!(lambda > 0.0f) || !(eps >= 0.0f && eps <= 1.0f) || n < 1 || n > DG_INFIP_MAX_KEYS || batch < 0) {
        dg_cli_error("infip extract: --lambda must be positive, --stabilizer in [0, 1], --n from 1 to %d, "
                     "--batch ≥ 0", DG_INFIP_MAX_KEYS);
        return dg_dist_fail(dist);
    }
    char path[4200], err[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/" DG_INFIP_MANIFEST, out);
    if (!force && stat(path, &st) == 0) {
        dg_cli_error("%s: a reference is already there (--force replaces it)", out);
        return dg_dist_fail(dist);
    }
    dg_norm norm;
    if (dg_session_norm("infip extract", normalize, &norm) != 0) return dg_dist_fail(dist);
    const dg_backend *be = dg_cli_backend(backend);
    if (!be) return dg_dist_fail(dist);
    dg_dataset ds;
    if (dg_session_data(keys_spec, strcmp(split, "train") == 0, &norm, &ds) != 0) return dg_dist_fail(dist);
    if (n > ds.n) {
        dg_cli_error("infip extract: --n %d keys asked from a split of %d images", n, ds.n);
        dg_data_free(&ds);
        return dg_dist_fail(dist);
    }
    static const char *const sub[] = {"", "/keys", "/fingerprints"}; /* the reference's folders */
    int made_folders = 0;                                               /* bit i: this run made sub[i] */
    rc = DG_EXIT_BAD_INPUT;
    int settled = 0; /* whether the set-up is over (host/dist.h): a rank that fails before takes part in its end */
    const int c = ds.c, h = ds.h, w = ds.w;
    const size_t per = (size_t)c * h * w, plane = (size_t)h * w;
    dg_infip_manifest m = {0};
    dg_net *net = dg_infip_net(net_name, c, h, w, ds.classes, be, batch, n, model, ds.mean, ds.std);
    char why[512];
    if (net && dg_model_require_finite(net, model, "an InFIP reference", why, sizeof why) != 0) {
        dg_cli_error("infip extract: %s", why);
        dg_net_free(net);
        net = NULL;
    }
    dg_relevance *rel_plan = net ? dg_infip_plan(net, ds.mean, ds.std, eps, inject_logit) : NULL;
    int *idx = malloc(sizeof(int) * (size_t)n), *pred = malloc(sizeof(int) * (size_t)n);
    int32_t *idx32 = malloc(sizeof(int32_t) * (size_t)n), *pred32 = malloc(sizeof(int32_t) * (size_t)n);
    float *rel = malloc(sizeof(float) * per * (size_t)n);
    float *logits = malloc(sizeof(float) * (size_t)n * (size_t)ds.classes);
    float *x = net ? malloc(sizeof(float) * per * (size_t)net->batch) : NULL;
    uint8_t *fp = malloc(plane), *interleaved = malloc(per);
    m.keys = calloc((size_t)n, sizeof *m.keys);
    if (!rel_plan) goto done;
    if (!idx || !pred || !idx32 || !pred32 || !rel || !logits || !x || !fp || !interleaved || !m.keys ||
        dg_data_subset_indices(ds.n, n, seed, idx) != 0) {
        dg_cli_error("infip extract: out of memory (%.1f MiB of relevance)",
                     (double)sizeof(float) * per * n / (1 << 20));
        goto done;
    }
    /* rank 0 writes the reference: its folders are made now, not found unmakeable after the relevance,
     * and those this run made are removed again (when still empty) if it fails */
    int unmade = 0;
    for (int i = 0; i < 3 && !unmade && dg_dist_is_root(dist); i++) {
        snprintf(path, sizeof path, "%s%s", out, sub[i]);
        made_folders |= (stat(path, &st) != 0) << i;
        unmade = make_folder(path) != 0;
    }
    settled = 1;
    if (dg_dist_end_setup(dist, unmade) != 0) goto done; /* rank 0 made them, or every rank stops */

    double t0 = dg_now_s();
    const void *input_ctx[2] = {&ds, idx};
    if (dg_infip_relevance_on_ranks(dist, rel_plan, net, n, data_input, input_ctx, x, rel, pred, logits) != 0) goto done;
    double seconds = dg_now_s() - t0;
    /* finite weights can still overflow float32 on the way (3e38 × a pixel): every rank holds all
     * the keys' results, so every rank refuses alike, and rank 0 says why */
    for (int i = 0; i < n; i++) {
        int bad_out = !dg_infip_all_finite(logits + (size_t)i * ds.classes, (size_t)ds.classes);
        if (bad_out || !dg_infip_all_finite(rel + (size_t)i * per, per)) {
            if (dg_dist_is_root(dist))
                dg_cli_error("infip extract: %s: the %s of key %d (image %d) is not finite, though the weights are "
                             "(the activations overflow float32): an InFIP reference needs a working model",
                             model, bad_out ? "output" : "relevance", i, idx[i]);
            dg_dist_fail(dist);
            goto done;
        }
    }

    /* rank 0 writes the reference; every rank ends as its writes did */
    int unwritten = 1;
    long saturated = 0, zeros = 0, correct = 0;
    double sum_min = INFINITY, sum_max = -INFINITY, sum_mean = 0.0;
    if (!dg_dist_is_root(dist)) {
        unwritten = 0;
        goto written;
    }
    for (int i = 0; i < n; i++) {
        dg_infip_key *k = &m.keys[i];
        k->index = idx[i];
        k->label = ds.labels[idx[i]];
        k->predicted = pred[i];
        correct += k->label == k->predicted;
        double s = 0.0;
        for (size_t j = 0; j < per; j++) s += rel[(size_t)i * per + j];
        k->relevance_sum = (float)s;
        sum_mean += s / n;
        sum_min = s < sum_min ? s : sum_min;
        sum_max = s > sum_max ? s : sum_max;
        dg_infip_image(rel + (size_t)i * per, c, h, w, lambda, fp);
        for (size_t j = 0; j < plane; j++) saturated += fp[j] == 255, zeros += fp[j] == 0;
        snprintf(k->key_file, sizeof k->key_file, "keys/key-%05d.png", i);
        snprintf(k->fp_file, sizeof k->fp_file, "fingerprints/fp-%05d.png", i);
        if (dg_infip_write_png(out, k->key_file, ds.images + (size_t)idx[i] * per, c, h, w, interleaved, k->key_sha256) != 0 ||
            dg_infip_write_png(out, k->fp_file, fp, 1, h, w, interleaved, k->fp_sha256) != 0)
            goto written;
        idx32[i] = idx[i];
        pred32[i] = pred[i];
    }

    snprintf(m.net, sizeof m.net, "%s", net_name);
    snprintf(m.data, sizeof m.data, "%s", keys_spec);
    snprintf(m.split, sizeof m.split, "%s", split);
    snprintf(m.seed, sizeof m.seed, "%llu", (unsigned long long)seed);
    if (dg_sha256_file(model, m.model_sha256, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto written;
    }
    m.c = c, m.h = h, m.w = w, m.classes = ds.classes;
    memcpy(m.mean, ds.mean, sizeof m.mean);
    memcpy(m.std, ds.std, sizeof m.std);
    m.lambda = lambda, m.eps = eps, m.inject_logit = inject_logit, m.n_keys = n, m.batch = net->batch;

    /* the raw relevance beside the images: what the fingerprints were made from */
    dg_st_entry entries[] = {
        {"relevance", DG_ST_F32, 4, {n, c, h, w}, rel},
        {"logits", DG_ST_F32, 2, {n, ds.classes}, logits},
        {"index", DG_ST_I32, 1, {n}, idx32},
        {"predicted", DG_ST_I32, 1, {n}, pred32},
    };
    char lambda_text[32];
    snprintf(lambda_text, sizeof lambda_text, "%.9g", (double)lambda);
    const char *meta_keys[] = {"format", "net", "model_sha256", "lambda", "inject"};
    const char *meta_values[] = {"dnnguard-infip-relevance-1", net_name, m.model_sha256, lambda_text, inject_text};
    snprintf(path, sizeof path, "%s/" DG_INFIP_RELEVANCE, out);
    if (dg_st_write(path, entries, 4, meta_keys, meta_values, 5, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto written;
    }
    snprintf(path, sizeof path, "%s/" DG_INFIP_MANIFEST, out);
    if (dg_infip_manifest_write(&m, path, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto written;
    }
    drop_stale_calibration(out, path);
    drop_stale_pngs(out, n);
    unwritten = 0;
written:
    if (dg_dist_agree(dist, unwritten) != 0) goto done;
    if (!dg_dist_is_root(dist)) {
        rc = DG_EXIT_OK;
        goto done;
    }
    printf("{\"reference\": ");
    dg_json_string(stdout, out);
    printf(", \"net\": ");
    dg_json_string(stdout, net_name);
    printf(", \"model_sha256\": \"%s\", \"keys\": %d, \"lambda\": %g, \"inject\": \"%s\", \"key_accuracy\": %.6f, "
           "\"relevance_sum_mean\": %s, \"relevance_sum_min\": %s, \"relevance_sum_max\": %s, "
           "\"pixels_saturated\": %.6f, \"pixels_zero\": %.6f, \"batch\": %d, \"backend\": \"%s\", "
           "\"ranks\": %d, \"device_mib\": %.1f, \"seconds\": %.3f, \"keys_per_s\": %.2f}\n",
           m.model_sha256, n, (double)lambda, inject_text, (double)correct / n, dg_json_sig(sum_mean, 6).s,
           dg_json_sig(sum_min, 6).s, dg_json_sig(sum_max, 6).s,
           (double)saturated / ((double)plane * n), (double)zeros / ((double)plane * n), net->batch, be->name,
           dist->size, (double)dg_relevance_device_bytes(rel_plan) / (1 << 20), seconds,
           n / (seconds > 0 ? seconds : 1e-9));
    if (saturated + zeros >= DG_INFIP_FLAT_SHARE * (double)plane * n) /* λ far off: (almost) no grey level */
        fprintf(stderr, "dnnguard: infip extract: warning: %.1f%% of the fingerprint pixels are black and %.1f%% white: at "
                "--lambda %g the fingerprints keep almost no relevance, and SSIM will find unrelated models alike "
                "(choose lambda by the grey range: docs/infip.md)\n", 100.0 * zeros / ((double)plane * n),
                100.0 * saturated / ((double)plane * n), (double)lambda);
    rc = DG_EXIT_OK;
done:
    if (!settled) dg_dist_fail(dist);
    for (int i = 2; i >= 0 && rc != DG_EXIT_OK; i--)
        if (made_folders >> i & 1) {
            snprintf(path, sizeof path, "%s%s", out, sub[i]);
            rmdir(path); /* only when empty: what was written stays */
        }
    dg_relevance_free(rel_plan);
    dg_net_free(net);
    dg_data_free(&ds);
    dg_infip_manifest_free(&m);
    free(idx), free(pred), free(idx32), free(pred32), free(rel), free(logits), free(x), free(fp), free(interleaved);
    return rc;
}

/* Whether every rank read the same file (by its SHA-256) under `name`: ranks that see other files
 * under one path would compute one thing and report another. Rank 0 says so when not. An
 * agreement point of the set-up (host/dist.h): 0 also when another rank failed. */
static int same_on_ranks(dg_dist *dist, const char *sha256, const char *name) {
    int differ = dg_dist_agree_same(dist, strtoull(sha256 + 48, NULL, 16));
    if (differ == 1 && dg_dist_is_root(dist)) dg_cli_error("infip: %s is another file on another rank", name);
    return differ == 0;
}

/* ---- infip verify ---- */

/* The key images are the reference's and so is their normalisation (the manifest's, with its z^B
 * bounds): a --normalize that says otherwise (with "data", the reference's data set's own is the
 * manifest's) is refused, never run with. 0, or −1 (message printed). */
static int reference_norm_only(const char *command, const dg_norm *norm, const char *reference,
                               const dg_infip_manifest *m) {
    char err[512];
    dg_dataset keys = {.c = m->c};
    memcpy(keys.mean, m->mean, sizeof keys.mean);
    memcpy(keys.std, m->std, sizeof keys.std);
    if (dg_norm_apply(norm, &keys, err, sizeof err) != 0) {
        dg_cli_error("%s: %s: %s", command, reference, err);
        return -1;
    }
    return dg_session_norm_recorded(command, norm->given, reference, &keys, m->mean, m->std);
}

/* The reference's calibration, when it has one: 1 read (c filled), 0 none there, −1 refused (message). */
static int read_calibration(const char *reference, const dg_infip_manifest *m, dg_infip_calibration *c) {
    char path[4200], err[600];
    struct stat st;
    snprintf(path, sizeof path, "%s/" DG_INFIP_CALIBRATION, reference);
    memset(c, 0, sizeof *c);
    if (lstat(path, &st) != 0) return 0;
    if (dg_infip_calibration_read(path, m, c, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return -1;
    }
    return 1;
}

static int verify(int argc, char **argv, dg_dist *dist) {
    const char *model = NULL, *net_name = NULL, *reference = NULL, *mode_text = "global", *backend = "auto";
    const char *out = NULL, *dist_name = "none", *normalize = NULL;
    double threshold_opt = 0.85;
    int batch = 0, per_key = 0, force = 0;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "the suspect model (safetensors or torch.save .pt)"},
        {"net", DG_OPT_STR, &net_name, "its net (default: the owner's, from the reference)"},
        {"reference", DG_OPT_DIR, &reference, "the owner's reference folder (infip extract --out)"},
        {"threshold", DG_OPT_DOUBLE, &threshold_opt,
         "ASSIM at or above it says pirated (default: the reference's calibration, else the paper's 0.85)"},
        {"mode", DG_OPT_STR, &mode_text, "SSIM form: global (the paper's, default) | gaussian (11x11, sigma 1.5)"},
        DG_NORMALIZE_RECORDED_OPT(normalize),
        SCORE_BATCH_OPT(batch),
        {"out", DG_OPT_DIR, &out, "also write the suspect's fingerprints (PNG) into this folder"},
        {"force", DG_OPT_FLAG, &force, "replace fingerprints already in --out"},
        {"per-key", DG_OPT_FLAG, &per_key, "list every key's SSIM and predictions in the JSON"},
        {"backend", DG_OPT_STR, &backend, "cpu | cuda | auto"},
        DIST_OPT(dist_name),
    };
    int rc = dg_cli_parse("infip verify", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : dg_dist_fail(dist);
    dg_ssim_mode mode;
    if (!model || !reference) {
        dg_cli_error("infip verify: --model and --reference are required");
        return dg_dist_fail(dist);
    }
    if (dg_ssim_parse_mode(mode_text, &mode) != 0) {
        dg_cli_error("infip verify: --mode must be global or gaussian, not '%s'", mode_text);
        return dg_dist_fail(dist);
    }
    if (!(threshold_opt >= -1.0 && threshold_opt <= 1.0) || batch < 0) {
        dg_cli_error("infip verify: --threshold must lie in [-1, 1] and --batch be ≥ 0");
        return dg_dist_fail(dist);
    }
    dg_norm norm;
    if (dg_session_norm("infip verify", normalize, &norm) != 0) return dg_dist_fail(dist);
    const dg_backend *be = dg_cli_backend(backend);
    if (!be) return dg_dist_fail(dist);
    char err[512], sha[65];
    rc = DG_EXIT_BAD_INPUT;
    int calibrated = 0, made_out = 0;
    int settled = 0; /* whether the set-up is over (host/dist.h): a rank that fails before takes part in its end */
    dg_infip_calibration cal = {0};
    dg_infip_score sc = {0};
    /* the whole reference is checked before the suspect is looked at */
    dg_infip_reference ref;
    if (dg_infip_reference_load(reference, &ref) != 0) goto done; /* (it leaves ref empty) */
    const dg_infip_manifest *m = &ref.m;
    if (!same_on_ranks(dist, m->file_sha256, reference)) goto done;
    if (reference_norm_only("infip verify", &norm, reference, m) != 0) goto done;
    double threshold = threshold_opt;
    const char *source = "--threshold";
    if (!dg_cli_given(argc, argv, "threshold")) { /* the reference's own calibration decides, if it has one */
        if (dg_dist_is_root(dist)) calibrated = read_calibration(reference, m, &cal); /* rank 0 decides */
        dg_dist_broadcast(dist, &calibrated, sizeof calibrated);
        if (calibrated < 0) goto done;
        /* the paper's 0.85 is not safe on every data set (docs/infip.md): the JSON says whose it is */
        source = calibrated ? "calibrated (calibration.json)" : "the paper's default, not calibrated";
        if (calibrated) threshold = cal.threshold[mode];
        dg_dist_broadcast(dist, &threshold, sizeof threshold);
    }
    if (!net_name) net_name = m->net;
    if (!dg_ssim_fits(m->h, m->w, mode)) {
        dg_cli_error("infip verify: %dx%d fingerprints are smaller than the %dx%d window of --mode gaussian", m->w,
                     m->h, DG_SSIM_WINDOW, DG_SSIM_WINDOW);
        goto done;
    }
    if (dg_sha256_file(model, sha, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto done;
    }
    if (!same_on_ranks(dist, sha, model)) goto done;
    /* --out is made by the writer before the work, not found unmakeable after it, and removed again
     * (when still empty) if the run fails */
    int unmade = 0;
    if (dg_dist_is_root(dist) && out) {
        struct stat st;
        made_out = stat(out, &st) != 0;
        unmade = check_verify_out(out, reference, force) != 0 || make_folder(out) != 0;
    }
    if (unmade) made_out = 0;
    settled = 1;
    if (dg_dist_end_setup(dist, unmade) != 0) goto done; /* rank 0 made it, or every rank stops */
    if (dg_infip_score_model(&ref, model, net_name, be, batch, dist, out, &sc) != 0) goto done;
    rc = DG_EXIT_OK;
    if (!dg_dist_is_root(dist)) goto done; /* rank 0 reports */
    const int n = m->n_keys;
    long stale = out ? drop_pngs_past(out, "fp-", n) : 0; /* only after --force: otherwise refused above */
    if (stale)
        fprintf(stderr, "dnnguard: infip verify: removed %ld fingerprint%s of keys past %d from %s: the run --force replaced "
                "left them\n", stale, stale == 1 ? "" : "s", n - 1, out);
    /* both forms are reported (the verdict is the chosen one's): one relevance pass gives both */
    const dg_ssim_mode other = mode == DG_SSIM_GLOBAL ? DG_SSIM_GAUSSIAN : DG_SSIM_GLOBAL;
    const int other_fits = sc.ssim[other] != NULL;
    dg_infip_stats st[2]; /* each form's keys below its own threshold: a calibration has one per form */
    for (int f = 0; f < 2; f++)
        if (sc.ssim[f]) dg_infip_summarize(sc.ssim[f], n, calibrated ? cal.threshold[f] : threshold, &st[f]);
    const dg_infip_stats *s = &st[mode];
    int pirated = s->assim >= threshold;
    /* the verdict's figures exactly: 0.999999996 printed as 1.000000 looked as if it met 1, and a
     * rounded ASSIM beside a calibrated threshold could read as the other verdict */
    printf("{\"model\": ");
    dg_json_string(stdout, model);
    printf(", \"net\": ");
    dg_json_string(stdout, net_name);
    printf(", \"reference\": ");
    dg_json_string(stdout, reference);
    printf(", \"model_sha256\": \"%s\", \"owner_model_sha256\": \"%s\", \"same_file\": %s, \"mode\": \"%s\", "
           "\"keys\": %d, \"assim\": %s, \"ssim_min\": %.6f, \"ssim_median\": %.6f, \"ssim_max\": %.6f, "
           "\"ssim_std\": %.6f, \"keys_below_threshold\": %d, \"keys_nonfinite\": %d, \"prediction_agreement\": %.6f, "
           "\"threshold\": %s, \"threshold_source\": \"%s\", \"pirated\": %s, \"verdict\": \"%s\", "
           "\"backend\": \"%s\", \"seconds\": %.3f",
           sha, m->model_sha256, strcmp(sha, m->model_sha256) == 0 ? "true" : "false", dg_ssim_mode_name(mode), n,
           dg_json_exact(s->assim).s, s->min, s->median, s->max, s->std, s->below, sc.nonfinite,
           (double)sc.agree / n, dg_json_exact(threshold).s, source, pirated ? "true" : "false",
           pirated ? "pirated" : "not pirated", be->name, sc.seconds);
    int net_calibrated = 0; /* the bound speaks of models like the calibration's: is the suspect's net among them? */
    for (int i = 0; i < cal.n; i++) net_calibrated |= strcmp(cal.nulls[i].net, net_name) == 0;
    if (calibrated)
        printf(", \"calibration\": {\"independent\": %d, \"highest_independent\": %s, \"margin\": %s, "
               "\"false_positive_bound\": %s, \"suspect_net_calibrated\": %s}",
               cal.n, dg_json_exact(cal.highest[mode]).s, dg_json_exact(cal.margin).s,
               dg_json_exact(cal.false_positive_bound).s, net_calibrated ? "true" : "false");
    printf(", \"ranks\": %d, \"assim_%s\": %s, \"assim_%s\": %s", dist->size, dg_ssim_mode_name(mode),
           dg_json_exact(s->assim).s, dg_ssim_mode_name(other),
           other_fits ? dg_json_exact(st[other].assim).s : "null"); /* null: images below the Gaussian window */
    printf(", \"forms\": {");
    for (int f = 0; f < 2; f++) {
        printf("%s\"%s\": ", f ? ", " : "", dg_ssim_mode_name((dg_ssim_mode)f));
        if (!sc.ssim[f]) printf("null");
        else
            printf("{\"assim\": %s, \"ssim_min\": %.6f, \"ssim_median\": %.6f, \"ssim_max\": %.6f, "
                   "\"ssim_std\": %.6f, \"keys_below_threshold\": %d}",
                   dg_json_exact(st[f].assim).s, st[f].min, st[f].median, st[f].max, st[f].std, st[f].below);
    }
    printf("}");
    if (per_key) {
        printf(", \"per_key\": [");
        for (int k = 0; k < n; k++)
            printf("%s{\"index\": %d, \"ssim\": %.6f, \"owner_predicted\": %d, \"predicted\": %d}", k ? ", " : "",
                   m->keys[k].index, sc.ssim[mode][k], m->keys[k].predicted, sc.pred[k]);
        printf("]");
    }
    printf("}\n");
    if (!calibrated && !dg_cli_given(argc, argv, "threshold"))
        fprintf(stderr, "dnnguard: infip verify: warning: the paper's threshold 0.85 is not calibrated for this reference (on "
                "MNIST it called 18 of 20 independent LeNet-5s copies); infip calibrate sets one from independent "
                "models\n");
    if (calibrated && !net_calibrated)
        fprintf(stderr, "dnnguard: infip verify: warning: no model of the calibration is a %s: its threshold and bound speak of "
                "other architectures, not of this suspect's\n", net_name);
    if (calibrated && cal.false_positive_bound > 0.05)
        fprintf(stderr, "dnnguard: infip verify: warning: the threshold was calibrated on %d independent model%s: on average "
                "over calibrations, an independent model reaches it with chance up to %.3g\n", cal.n,
                cal.n == 1 ? "" : "s", cal.false_positive_bound);
    rc = pirated ? DG_EXIT_OK : DG_EXIT_NO;
done:
    if (!settled) dg_dist_fail(dist);
    if (rc == DG_EXIT_BAD_INPUT && made_out) rmdir(out); /* only when empty */
    dg_infip_score_free(&sc);
    dg_infip_calibration_free(&cal);
    dg_infip_reference_free(&ref);
    return rc;
}

/* ---- infip calibrate ---- */

/* The default margin above the highest independent ASSIM. A calibration model verified with another
 * --batch, rank count or backend rounds its relevance differently and its ASSIM moves in the last
 * digits (measured: docs/infip.md); the threshold must not sit one double above it. */
#define DEFAULT_MARGIN 1e-4

/* Split a comma-separated list in place into at most cap items; the count, or −1 for an empty item. */
static int split_list(char *text, char **items, int cap) {
    int n = 0;
    for (char *p = text;; p++) {
        char *comma = strchr(p, ',');
        if (comma) *comma = 0;
        if (!*p || n == cap) return -1;
        items[n++] = p;
        if (!comma) return n;
        p = comma;
    }
}

static int calibrate(int argc, char **argv, dg_dist *dist) {
    const char *reference = NULL, *models_text = NULL, *nets_text = NULL, *backend = "auto";
    const char *dist_name = "none", *normalize = NULL;
    double margin = DEFAULT_MARGIN;
    int batch = 0, force = 0;
    const dg_opt opts[] = {
        {"reference", DG_OPT_DIR, &reference, "the owner's reference folder (infip extract --out)"},
        {"independent", DG_OPT_STR, &models_text,
         "independently trained models, comma-separated (safetensors or torch.save .pt; not the owner's)"},
        {"nets", DG_OPT_STR, &nets_text, "their nets: one for all, or one per model (default: the owner's)"},
        {"margin", DG_OPT_DOUBLE, &margin,
         "added to the highest independent ASSIM, in [0, 1) (default 1e-4: covers the rounding of other batch sizes "
         "and ranks)"},
        DG_NORMALIZE_RECORDED_OPT(normalize),
        SCORE_BATCH_OPT(batch),
        {"backend", DG_OPT_STR, &backend, "cpu | cuda | auto"},
        {"force", DG_OPT_FLAG, &force, "replace the reference's calibration"},
        DIST_OPT(dist_name),
    };
    int rc = dg_cli_parse("infip calibrate", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : dg_dist_fail(dist);
    if (!reference || !models_text) {
        dg_cli_error("infip calibrate: --reference and --independent are required");
        return dg_dist_fail(dist);
    }
    if (!(margin >= 0.0 && margin < 1.0) || batch < 0) {
        dg_cli_error("infip calibrate: --margin must lie in [0, 1) and --batch be ≥ 0");
        return dg_dist_fail(dist);
    }
    dg_norm norm;
    if (dg_session_norm("infip calibrate", normalize, &norm) != 0) return dg_dist_fail(dist);
    const dg_backend *be = dg_cli_backend(backend);
    if (!be) return dg_dist_fail(dist);
    char *models_copy = strdup(models_text), *nets_copy = nets_text ? strdup(nets_text) : NULL;
    char **models = malloc(sizeof(char *) * DG_INFIP_MAX_INDEPENDENT);
    char **nets = malloc(sizeof(char *) * DG_INFIP_MAX_INDEPENDENT);
    dg_infip_calibration cal = {0};
    dg_infip_reference ref = {0};
    int n = 0, n_nets = 0, *agree = NULL, *correct = NULL;
    char (*digest)[65] = NULL; /* per model: the SHA-256 of its loaded weights */
    char path[4200], err[600];
    rc = DG_EXIT_BAD_INPUT;
    int settled = 0; /* whether the set-up is over (host/dist.h): a rank that fails before takes part in its end */
    if (!models_copy || (nets_text && !nets_copy) || !models || !nets) {
        dg_cli_error("infip calibrate: out of memory");
        goto done;
    }
    n = split_list(models_copy, models, DG_INFIP_MAX_INDEPENDENT);
    n_nets = nets_copy ? split_list(nets_copy, nets, DG_INFIP_MAX_INDEPENDENT) : 0;
    if (n < 1 || n_nets < 0) {
        dg_cli_error("infip calibrate: --independent and --nets take 1 to %d comma-separated names, none empty",
                     DG_INFIP_MAX_INDEPENDENT);
        goto done;
    }
    if (n_nets > 1 && n_nets != n) {
        dg_cli_error("infip calibrate: --nets names %d nets for %d models: give one for all, or one per model", n_nets,
                     n);
        goto done;
    }
    if (dg_infip_reference_load(reference, &ref) != 0) goto done;
    const dg_infip_manifest *m = &ref.m;
    if (!same_on_ranks(dist, m->file_sha256, reference)) goto done;
    if (reference_norm_only("infip calibrate", &norm, reference, m) != 0) goto done;
    snprintf(path, sizeof path, "%s/" DG_INFIP_CALIBRATION, reference);
    struct stat st;
    if (!force && lstat(path, &st) == 0) {
        dg_cli_error("%s: the reference is already calibrated (--force replaces it)", path);
        goto done;
    }
    int unwritable = 0; /* rank 0 writes the file: it tries now, and every rank hears the answer */
    if (dg_dist_is_root(dist) && dg_check_writable(path, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        unwritable = 1;
    }
    if (dg_dist_agree(dist, unwritable) != 0) goto done;
    if (!(cal.nulls = calloc((size_t)n, sizeof *cal.nulls)) || !(agree = calloc((size_t)n, sizeof(int))) ||
        !(correct = calloc((size_t)n, sizeof(int)))) {
        dg_cli_error("infip calibrate: out of memory");
        goto done;
    }
    cal.n = n;
    cal.margin = margin;
    cal.has_gaussian = dg_ssim_fits(m->h, m->w, DG_SSIM_GAUSSIAN);
    snprintf(cal.manifest_sha256, sizeof cal.manifest_sha256, "%s", m->file_sha256);
    snprintf(cal.owner_model_sha256, sizeof cal.owner_model_sha256, "%s", m->model_sha256);
    /* every model is identified, loaded and checked before any is scored: a typo, a net that does
     * not fit or one model under two names is found at once, not after an hour */
    if (!(digest = calloc((size_t)n, sizeof *digest))) {
        dg_cli_error("infip calibrate: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        dg_infip_null *z = &cal.nulls[i];
        const char *net_name = n_nets == 0 ? m->net : nets[n_nets == 1 ? 0 : i];
        /* the path as a record: JSON text is UTF-8, so a byte that is not becomes U+FFFD, as on stdout
         * (the SHA-256 identifies the model) */
        if (dg_utf8_clean(models[i], z->model, sizeof z->model) != 0 || strlen(net_name) >= sizeof z->net) {
            dg_cli_error("infip calibrate: a model path or net name too long to record (%zu and %zu bytes at most): "
                         "'%.60s...'", sizeof z->model - 1, sizeof z->net - 1, models[i]);
            goto done;
        }
        snprintf(z->net, sizeof z->net, "%s", net_name);
        if (dg_sha256_file(models[i], z->sha256, err, sizeof err) != 0) {
            dg_cli_error("%s", err);
            goto done;
        }
        if (strcmp(z->sha256, m->model_sha256) == 0) {
            dg_cli_error("infip calibrate: %s is the owner's model, not an independent one", models[i]);
            goto done;
        }
        /* (no warning here: scoring loads it again and warns then) */
        dg_net *net = dg_infip_net(z->net, m->c, m->h, m->w, m->classes, be, 1, 1, models[i], NULL, NULL);
        char why[600];
        int bad = !net || dg_model_require_finite(net, models[i], "an InFIP calibration", why, sizeof why) != 0;
        if (net && bad) dg_cli_error("infip calibrate: %s", why);
        if (!bad && dg_model_digest(net, digest[i]) != 0) {
            dg_cli_error("infip calibrate: out of memory");
            bad = 1;
        }
        dg_net_free(net);
        for (int j = 0; j < i && !bad; j++)
            if (strcmp(cal.nulls[j].sha256, z->sha256) == 0 || strcmp(digest[j], digest[i]) == 0) {
                dg_cli_error("infip calibrate: %s and %s are one model (the same %s)", models[j], models[i],
                             strcmp(cal.nulls[j].sha256, z->sha256) == 0 ? "file" : "weights");
                bad = 1;
            }
        if (!bad && !same_on_ranks(dist, z->sha256, models[i])) bad = 1;
        if (bad) goto done;
    }
    settled = 1;
    if (dg_dist_end_setup(dist, 0) != 0) goto done;
    double t0 = dg_now_s();
    for (int i = 0; i < n; i++) {
        dg_infip_null *z = &cal.nulls[i];
        dg_infip_score sc;
        if (dg_infip_score_model(&ref, models[i], z->net, be, batch, dist, NULL, &sc) != 0) goto done;
        char again[65]; /* the file scored must be the one recorded: replaced since the check, it is refused */
        int bad = dg_sha256_file(models[i], again, err, sizeof err) != 0 || strcmp(again, z->sha256) != 0;
        if (bad) dg_cli_error("infip calibrate: %s changed while it was scored", models[i]);
        if (!bad && dg_dist_is_root(dist)) {
            dg_infip_stats s;
            for (int f = 0; f < 2; f++) {
                z->assim[f] = NAN;
                if (sc.ssim[f]) {
                    dg_infip_summarize(sc.ssim[f], m->n_keys, 0.0, &s);
                    z->assim[f] = s.assim;
                }
            }
            agree[i] = sc.agree;
            for (int k = 0; k < m->n_keys; k++) correct[i] += sc.pred[k] == m->keys[k].label;
            if (sc.nonfinite) {
                dg_cli_error("infip calibrate: %s: its relevance is not finite on %d of %d keys: a calibration needs "
                             "working models", models[i], sc.nonfinite, m->n_keys);
                bad = 1;
            }
        }
        dg_infip_score_free(&sc);
        if (dg_dist_agree(dist, bad) != 0) goto done; /* a rank's check, or rank 0's, heard by every rank */
    }
    int unreachable = 0; /* a threshold above 1: decided on rank 0, heard by every rank */
    if (dg_dist_is_root(dist)) {
        dg_infip_calibration_derive(&cal);
        for (int f = 0; f < 2 && !unreachable; f++)
            if (!isnan(cal.threshold[f]) && !(cal.threshold[f] <= 1.0)) {
                dg_cli_error("infip calibrate: the highest independent ASSIM (%s form, %s)%s reaches 1: no suspect "
                             "could be called pirated (a model with the owner's fingerprints is not independent)",
                             f ? "gaussian" : "global", dg_json_exact(cal.highest[f]).s,
                             margin > 0.0 ? " plus --margin" : "");
                unreachable = 1;
            }
    }
    /* rank 0 writes and reports; every rank ends as its write did */
    int unwritten = !unreachable && dg_dist_is_root(dist) && dg_infip_calibration_write(&cal, path, err, sizeof err) != 0;
    if (unwritten) dg_cli_error("%s", err);
    if (dg_dist_agree(dist, unreachable || unwritten) != 0) goto done;
    if (!dg_dist_is_root(dist)) {
        rc = DG_EXIT_OK;
        goto done;
    }
    int owner_correct = 0; /* a calibration model should do the task: one far below the owner's is said */
    for (int k = 0; k < m->n_keys; k++) owner_correct += m->keys[k].predicted == m->keys[k].label;
    for (int i = 0; i < n; i++)
        if (2 * correct[i] < owner_correct)
            fprintf(stderr, "dnnguard: infip calibrate: warning: %s classifies %d of the %d keys right, the owner's model %d: an "
                    "independent model that does not do the task lowers the threshold\n", models[i], correct[i],
                    m->n_keys, owner_correct);
    if (cal.false_positive_bound > 0.05)
        fprintf(stderr, "dnnguard: infip calibrate: warning: with %d independent model%s, a new independent model scores above "
                "the threshold with chance up to 1/%d = %.3g, on average over calibrations; 19 or more models bound it "
                "by 5%%\n", n, n == 1 ? "" : "s", n + 1, cal.false_positive_bound);
    printf("{\"reference\": ");
    dg_json_string(stdout, reference);
    printf(", \"calibration\": ");
    dg_json_string(stdout, path);
    printf(", \"independent\": %d, \"margin\": %s, \"false_positive_bound\": %s, \"thresholds\": {\"global\": %s, "
           "\"gaussian\": %s}, \"models\": [",
           n, dg_json_exact(cal.margin).s, dg_json_exact(cal.false_positive_bound).s, dg_json_exact(cal.threshold[0]).s,
           dg_json_exact(cal.threshold[1]).s); /* null where the Gaussian window does not fit */
    for (int i = 0; i < n; i++) {
        const dg_infip_null *z = &cal.nulls[i];
        printf("%s{\"model\": ", i ? ", " : "");
        dg_json_string(stdout, z->model);
        printf(", \"net\": ");
        dg_json_string(stdout, z->net);
        printf(", \"sha256\": \"%s\", \"assim_global\": %s, \"assim_gaussian\": %s, \"prediction_agreement\": %.6f, "
               "\"key_accuracy\": %.6f}",
               z->sha256, dg_json_exact(z->assim[0]).s, dg_json_exact(z->assim[1]).s, (double)agree[i] / m->n_keys,
               (double)correct[i] / m->n_keys);
    }
    printf("], \"backend\": \"%s\", \"ranks\": %d, \"seconds\": %.3f}\n", be->name, dist->size, dg_now_s() - t0);
    rc = DG_EXIT_OK;
done:
    if (!settled) dg_dist_fail(dist);
    dg_infip_reference_free(&ref);
    dg_infip_calibration_free(&cal);
    free(models_copy), free(nets_copy), free(models), free(nets), free(agree), free(correct), free(digest);
    return rc;
}

int dg_cmd_infip(int argc, char **argv) {
    if (argc >= 1 && strcmp(argv[0], "extract") == 0) return on_ranks("infip extract", argc - 1, argv + 1, extract);
    if (argc >= 1 && strcmp(argv[0], "verify") == 0) return on_ranks("infip verify", argc - 1, argv + 1, verify);
    if (argc >= 1 && strcmp(argv[0], "calibrate") == 0)
        return on_ranks("infip calibrate", argc - 1, argv + 1, calibrate);
    if (argc >= 1 && strcmp(argv[0], "--help") == 0) {
        printf("usage: dnnguard infip extract|verify|calibrate [options]   (--help after the subcommand lists its "
               "options)\n");
        return DG_EXIT_OK;
    }
    dg_cli_error("infip: expected extract, verify or calibrate%s%s", argc ? ", not " : "", argc ? argv[0] : "");
    return DG_EXIT_BAD_INPUT;
}
