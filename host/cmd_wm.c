/* host/cmd_wm.c — `dnnguard wm keygen` (a key from a clean model's conv layer) and `dnnguard wm
 * verify` (Algorithm 1 on any safetensors file, JSON on stdout, the verdict as the exit code). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "atomic_file.h"
#include "cli.h"
#include "commands.h"
#include "error.h"
#include "model_io.h"
#include "safetensors.h"
#include "session.h"
#include "sha256.h"
#include "watermark.h"

/* The layer tensor from a weight file, checked to be a 4-d conv weight (and, when want is not
 * NULL, of that shape). Host memory the caller frees, or NULL with the message printed. */
static float *read_layer(const char *path, const char *layer, const int *want, int shape[4]) {
    char err[512];
    dg_st_file f;
    if (dg_st_open(path, &f, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return NULL;
    }
    float *w = NULL;
    int t = dg_st_find(&f, layer);
    char full[512];
    for (int k = 0; t < 0; k++) { /* "model.conv2.weight": a prefix that every name carries */
        const char *text = NULL;
        size_t len = dg_model_name_prefix(&f, k, &text);
        if (!len || snprintf(full, sizeof full, "%.*s%s", (int)len, text, layer) >= (int)sizeof full) break;
        t = dg_st_find(&f, full);
        if (t >= 0)
            fprintf(stderr, "dnnguard: note: %s: '%s' read as '%s'\n", dg_err_safe_path(path).s, layer,
                    dg_err_safe(full).s);
    }
    if (t < 0) {
        dg_cli_error("%s: no tensor '%s'", path, layer);
    } else if (f.tensors[t].ndim != 4 || f.tensors[t].numel == 0) {
        dg_cli_error("%s: '%s' is not a conv weight (it has %d dimensions, not O, I, R, S)", path, layer,
                     f.tensors[t].ndim);
    } else {
        const int64_t *dims = f.tensors[t].shape;
        int small = 1, same = 1;
        for (int d = 0; d < 4; d++) small &= dims[d] < (1 << 24);
        for (int d = 0; d < 4 && small; d++) {
            shape[d] = (int)dims[d];
            same &= !want || want[d] == shape[d];
        }
        if (!small) {
            dg_cli_error("%s: '%s' is %lldx%lldx%lldx%lld: a dimension of 2^24 or more is not a conv weight", path, layer,
                         (long long)dims[0], (long long)dims[1], (long long)dims[2], (long long)dims[3]);
        } else if (!same) {
            dg_cli_error("%s: '%s' is %dx%dx%dx%d but the key's layer is %dx%dx%dx%d", path, layer, shape[0], shape[1],
                         shape[2], shape[3], want[0], want[1], want[2], want[3]);
        } else if (!(w = malloc(sizeof(float) * f.tensors[t].numel))) {
            dg_cli_error("%s: out of memory", path);
        } else if (dg_st_read_f32(&f, t, w, f.tensors[t].numel, err, sizeof err) != 0) {
            dg_cli_error("%s", err);
            free(w);
            w = NULL;
        }
    }
    dg_st_close(&f);
    return w;
}

/* A key is made from a clean model: every floating-point tensor of the file (the net's or not,
 * since keygen may run without --net) must be finite, as dg_model_require_finite asks of fp issue
 * and infip extract. 0, or -1 with the first NaN or infinite element named. */
static int require_finite_file(const char *path) {
    char err[512];
    dg_st_file f;
    if (dg_st_open(path, &f, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return -1;
    }
    int rc = 0;
    for (int t = 0; t < f.n_tensors && rc == 0; t++) {
        const dg_st_tensor *x = &f.tensors[t];
        int floating = x->dtype == DG_ST_F32 || x->dtype == DG_ST_F16 || x->dtype == DG_ST_BF16 || x->dtype == DG_ST_F64;
        if (!floating || x->numel == 0 || dg_model_ignored_tensor(x->name)) continue;
        float *v = malloc(sizeof(float) * x->numel);
        if (!v || dg_st_read_f32(&f, t, v, x->numel, err, sizeof err) != 0) {
            dg_cli_error("%s", v ? err : "wm keygen: out of memory");
            rc = -1;
        }
        for (size_t j = 0; rc == 0 && j < x->numel; j++)
            if (!isfinite(v[j])) {
                dg_cli_error("%s: %s[%zu] is %s: a watermark key needs a working model", path, x->name, j,
                             isnan(v[j]) ? "NaN" : "infinite");
                rc = -1;
            }
        free(v);
    }
    dg_st_close(&f);
    return rc;
}

static int keygen(int argc, char **argv) {
    const char *model = NULL, *net_name = NULL, *layer = NULL, *digits = NULL, *out = NULL;
    uint64_t seed = 1;
    int force = 0;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "the clean model (safetensors or torch.save .pt)"},
        {"net", DG_OPT_STR, &net_name, "its net: then the model must load into it and the layer be one of its convs"},
        {"layer", DG_OPT_STR, &layer, "the conv weight to carry the watermark, e.g. conv2.weight"},
        {"digits", DG_OPT_STR, &digits, "the watermark, a string of digits 0-9, e.g. 1234567890210"},
        {"seed", DG_OPT_U64, &seed, "draws the positions (default 1)"},
        {"out", DG_OPT_STR, &out, "the key file to write (JSON, mode 0600)"},
        {"force", DG_OPT_FLAG, &force, "replace an existing key file"},
    };
    int rc = dg_cli_parse("wm keygen", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (!model || !layer || !digits || !out) {
        dg_cli_error("wm keygen: --model, --layer, --digits and --out are required");
        return DG_EXIT_BAD_INPUT;
    }
    char why[600];
    if (dg_same_file(out, model)) {
        dg_cli_error("wm keygen: --out is the --model file: the key would replace it");
        return DG_EXIT_BAD_INPUT;
    }
    if (dg_check_writable(out, why, sizeof why) != 0) {
        dg_cli_error("%s", why);
        return DG_EXIT_BAD_INPUT;
    }
    struct stat st;
    if (!force && stat(out, &st) == 0) {
        dg_cli_error("%s: a key is already there (a key is a secret: --force replaces it)", out);
        return DG_EXIT_BAD_INPUT;
    }
    if (net_name) { /* the model must be a whole, loadable model of that net, and the layer one of its convs */
        dg_net *net = dg_session_net(net_name, NULL, dg_backend_cpu(), 1, model);
        if (!net) return DG_EXIT_BAD_INPUT;
        int p = dg_net_find_param(net, layer);
        int conv = p >= 0 && net->nodes[net->params[p].node].kind == DG_NODE_CONV &&
                   net->params[p].role == DG_PARAM_WEIGHT;
        dg_net_free(net);
        if (!conv) {
            dg_cli_error("wm keygen: '%s' is not a conv weight of %s", layer, net_name);
            return DG_EXIT_BAD_INPUT;
        }
    }
    if (require_finite_file(model) != 0) return DG_EXIT_BAD_INPUT;
    int shape[4];
    float *w = read_layer(model, layer, NULL, shape);
    if (!w) return DG_EXIT_BAD_INPUT;
    char err[512];
    dg_wm_key *key = malloc(sizeof *key);
    rc = DG_EXIT_BAD_INPUT;
    if (!key) {
        dg_cli_error("wm keygen: out of memory");
    } else if (dg_wm_keygen(w, shape, layer, digits, seed, key, err, sizeof err) != 0) {
        dg_cli_error("wm keygen: %s", err);
    } else if (dg_sha256_file(model, key->model_sha256, err, sizeof err) != 0 ||
               dg_wm_key_write(key, out, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
    } else {
        printf("{\"key\": ");
        dg_json_string(stdout, out);
        printf(", \"model\": ");
        dg_json_string(stdout, model);
        printf(", \"model_sha256\": \"%s\", \"layer\": ", key->model_sha256);
        dg_json_string(stdout, layer);
        printf(", \"shape\": [%d, %d, %d, %d], \"filter\": %d, \"n_digits\": %d, \"w_min\": %.9g, \"w_max\": %.9g, "
               "\"a\": %.9g, \"b\": %.9g}\n",
               shape[0], shape[1], shape[2], shape[3], key->filter, key->n, (double)key->w_min, (double)key->w_max,
               (double)key->a, (double)key->b);
        rc = DG_EXIT_OK;
    }
    free(key);
    free(w);
    return rc;
}

/* --clean: the key must be what keygen makes of the clean model (its SHA-256, then the filter,
 * range and map keygen derives from the layer with the key's seed and digits); *clean_matches is
 * how many digits the clean model reads at the key's filter (a suspect that reads no more was read
 * off a model, not embedded). 0, or -1 with the message printed. */
static int check_against_clean(const char *clean, const dg_wm_key *key, int *clean_matches) {
    char err[512], sha[65], digits[DG_WM_MAX_DIGITS + 1];
    if (dg_sha256_file(clean, sha, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return -1;
    }
    if (strcmp(sha, key->model_sha256) != 0) {
        dg_cli_error("wm verify: %s is not the model the key was made from (its SHA-256 is not the key's model_sha256)",
                     clean);
        return -1;
    }
    int shape[4], rc = -1;
    float *w = read_layer(clean, key->layer, key->shape, shape);
    dg_wm_key *again = malloc(sizeof *again);
    dg_wm_result *r = malloc(sizeof *r);
    for (int k = 0; k < key->n; k++) digits[k] = (char)('0' + key->digits[k]);
    digits[key->n] = 0;
    if (!w) { /* read_layer said why */
    } else if (!again || !r) {
        dg_cli_error("wm verify: out of memory");
    } else if (dg_wm_keygen(w, shape, key->layer, digits, key->seed, again, err, sizeof err) != 0) {
        dg_cli_error("wm verify: %s: %s", clean, err);
    } else if (again->filter != key->filter || again->w_min != key->w_min || again->w_max != key->w_max ||
               again->a != key->a || again->b != key->b) {
        dg_cli_error("wm verify: the key's filter or range is not what wm keygen makes of %s (filter %d, [%.9g, %.9g]; "
                     "the key says %d, [%.9g, %.9g]): the key was edited", clean, again->filter, (double)again->w_min,
                     (double)again->w_max, key->filter, (double)key->w_min, (double)key->w_max);
    } else if (dg_wm_verify(key, w, DG_WM_SEARCH_KEY, key->n, r) != 0) { /* how many it reads, at the key's filter */
        dg_cli_error("wm verify: out of memory");
    } else {
        *clean_matches = r->matches;
        rc = 0;
    }
    free(w);
    free(again);
    free(r);
    return rc;
}

static int verify(int argc, char **argv) {
    const char *model = NULL, *key_path = NULL, *search_name = "filters", *clean = NULL;
    int need = -1; /* not given: all digits */
    double max_p = 1e-6;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "the suspect model (safetensors or torch.save .pt, any trainer)"},
        {"key", DG_OPT_STR, &key_path, "the owner's key (wm keygen)"},
        {"search", DG_OPT_STR, &search_name,
         "key | filters | channels: read only the key's filter; also every output filter (default: survives an "
         "output-channel permutation); also any input-channel assignment"},
        {"min-match", DG_OPT_INT, &need, "digits that must match (default: all, as Algorithm 1)"},
        {"max-p-chance", DG_OPT_DOUBLE, &max_p,
         "verified only when a layer without the watermark would pass with at most this chance (default 1e-6)"},
        {"clean", DG_OPT_STR, &clean,
         "the clean model the key was made from: the key must be keygen's of it, and it must not read the digits"},
    };
    int rc = dg_cli_parse("wm verify", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (!model || !key_path) {
        dg_cli_error("wm verify: --model and --key are required");
        return DG_EXIT_BAD_INPUT;
    }
    if (!(max_p > 0.0 && max_p <= 1.0)) {
        dg_cli_error("wm verify: --max-p-chance must be in (0, 1]");
        return DG_EXIT_BAD_INPUT;
    }
    dg_wm_search search;
    if (strcmp(search_name, "key") == 0) search = DG_WM_SEARCH_KEY;
    else if (strcmp(search_name, "filters") == 0) search = DG_WM_SEARCH_FILTERS;
    else if (strcmp(search_name, "channels") == 0) search = DG_WM_SEARCH_CHANNELS;
    else {
        dg_cli_error("wm verify: --search must be key, filters or channels, not '%s'", search_name);
        return DG_EXIT_BAD_INPUT;
    }
    char err[512];
    dg_wm_key *key = malloc(sizeof *key);
    dg_wm_result *r = malloc(sizeof *r);
    float *w = NULL;
    rc = DG_EXIT_BAD_INPUT;
    if (!key || !r) {
        dg_cli_error("wm verify: out of memory");
        goto done;
    }
    if (dg_wm_key_read(key_path, key, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto done;
    }
    if (need == -1) need = key->n;
    if (need < 1 || need > key->n) {
        dg_cli_error("wm verify: --min-match must be from 1 to the key's %d digits", key->n);
        goto done;
    }
    int clean_matches = -1;
    if (clean && check_against_clean(clean, key, &clean_matches) != 0) goto done;
    int shape[4];
    char sha[65];
    if (!(w = read_layer(model, key->layer, key->shape, shape))) goto done;
    if (dg_sha256_file(model, sha, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto done;
    }
    if (dg_wm_verify(key, w, search, need, r) != 0) {
        dg_cli_error("wm verify: out of memory for the search over %s", search_name);
        rc = DG_EXIT_BAD_INPUT;
        goto done;
    }
    printf("{\"model\": ");
    dg_json_string(stdout, model);
    printf(", \"model_sha256\": \"%s\", \"key\": ", sha);
    dg_json_string(stdout, key_path);
    printf(", \"layer\": ");
    dg_json_string(stdout, key->layer);
    printf(", \"search\": \"%s\", \"key_filter\": %d, \"filter\": %d, \"input_permuted\": %s, \"digits\": \"",
           search_name, key->filter, r->filter, r->input_permuted ? "true" : "false");
    for (int k = 0; k < key->n; k++) putchar('0' + key->digits[k]);
    printf("\", \"extracted\": [");
    for (int k = 0; k < key->n; k++) printf(k ? ", %d" : "%d", r->extracted[k]);
    printf("], \"residual\": [");
    for (int k = 0; k < key->n; k++) printf(k ? ", %s" : "%s", dg_json_fixed(r->residual[k], 4).s);
    /* matching digits prove something only when a layer without the watermark would rarely match:
     * a short key, a map that reads most weights as one digit, or a search that tries enough places
     * makes the match near certain for any model */
    const int significant = r->p_chance <= max_p;
    /* digits that the key's own clean model reads were read off it, not embedded: a key made (or
     * edited) to fit; the suspect may be that model itself */
    const int suspect_is_clean = strcmp(sha, key->model_sha256) == 0;
    /* (as many as the suspect reads: a clean model reads a few by chance, which --min-match may ask for) */
    const int read_off = r->verified && (suspect_is_clean || (clean && clean_matches >= r->matches));
    const int verified = r->verified && significant && !read_off;
    static const char *const stage[] = {"key", "filters", "channels"}; /* by dg_wm_search */
    printf("], \"matches\": %d, \"n\": %d, \"need\": %d, \"digits_match\": %s, \"matched_by\": ", r->matches, key->n,
           need, r->verified ? "true" : "false");
    if (r->matched_by >= 0) printf("\"%s\"", stage[r->matched_by]);
    else printf("null");
    printf(", \"p_chance\": %s, \"max_p_chance\": %s, \"suspect_is_keys_model\": %s, \"clean\": ",
           dg_json_exact(r->p_chance).s, dg_json_exact(max_p).s, suspect_is_clean ? "true" : "false");
    if (clean) dg_json_string(stdout, clean);
    else printf("null");
    printf(", \"clean_matches\": ");
    if (clean) printf("%d", clean_matches);
    else printf("null");
    printf(", \"verified\": %s}\n", verified ? "true" : "false");
    if (r->verified && !significant)
        fprintf(stderr, "dnnguard: wm verify: the digits match (stage %s), but a layer without the watermark would "
                "match there with chance %.3g (above --max-p-chance %g): not a proof, not verified\n",
                stage[r->matched_by], r->p_chance, max_p);
    else if (r->verified && suspect_is_clean)
        fprintf(stderr, "dnnguard: wm verify: the digits match, but the suspect is the model the key was made from "
                "(its SHA-256 is the key's model_sha256): digits it reads were not embedded; not verified\n");
    else if (r->verified && read_off)
        fprintf(stderr, "dnnguard: wm verify: the digits match, but --clean, the model the key was made from, reads "
                "%d of them too: they were read off a model, not embedded; not verified\n", clean_matches);
    rc = verified ? DG_EXIT_OK : DG_EXIT_NO;
done:
    free(key);
    free(r);
    free(w);
    return rc;
}

int dg_cmd_wm(int argc, char **argv) {
    if (argc >= 1 && strcmp(argv[0], "keygen") == 0) return keygen(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "verify") == 0) return verify(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "--help") == 0) {
        printf("usage: dnnguard wm keygen|verify [options]   (--help after the subcommand lists its options)\n");
        return DG_EXIT_OK;
    }
    dg_cli_error("wm: expected keygen or verify%s%s", argc ? ", not " : "", argc ? argv[0] : "");
    return DG_EXIT_BAD_INPUT;
}
