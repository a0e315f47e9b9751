/* host/cmd_overwrite.c — `dnnguard attack overwrite`: the watermark-overwriting attack of the
 * InFIP paper. The pirate embeds a watermark of their own, Zhang et al.'s noise backdoor (key
 * images = images of a source class plus Gaussian noise, labelled with a target class), by
 * fine-tuning the stolen model on a data subset with the keys mixed in. Reports the backdoor's
 * accuracy (on the keys trained, and on fresh noisy images of the test split) before and after. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "session.h"
#include "train.h"
#include "../kernels/math/rng.h"

/* a standard normal draw from counter i of the stream (Box–Muller) */
static double normal(uint64_t stream, uint64_t i) {
    double u1 = ((double)(dg_rng_u64(stream, 2 * i) >> 11) + 0.5) * 0x1p-53;
    double u2 = (double)(dg_rng_u64(stream, 2 * i + 1) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* n noisy copies of images of class `source` drawn from ds (seed), labelled `target`, into keys
 * (its buffers malloc'd). taken (NULL, or one flag per image of ds): images flagged are not drawn,
 * and the ones drawn are flagged, so fresh keys from the split trained on share no image with its
 * keys. 0, or −1 with the message printed. */
static int make_keys(const dg_dataset *ds, const char *split, int n, int source, int target, float noise_std,
                     uint64_t seed, unsigned char *taken, dg_dataset *keys) {
    int *pool = malloc(sizeof(int) * (size_t)ds->n), m = 0;
    if (!pool) {
        dg_cli_error("attack overwrite: out of memory");
        return -1;
    }
    for (int i = 0; i < ds->n; i++)
        if (ds->labels[i] == source && !(taken && taken[i])) pool[m++] = i;
    int *pick = m >= n ? malloc(sizeof(int) * (size_t)n) : NULL;
    if (m < n || !pick || dg_data_subset_indices(m, n, seed, pick) != 0) {
        if (m < n)
            dg_cli_error("attack overwrite: --keys %d, but the %s split has %d images of class %d (--source-class)%s",
                         n, split, m, source, taken ? " that are not already the keys trained on" : "");
        else dg_cli_error("attack overwrite: out of memory");
        free(pool), free(pick);
        return -1;
    }
    *keys = *ds;
    size_t per = (size_t)ds->c * ds->h * ds->w;
    keys->n = n;
    keys->images = malloc(per * (size_t)n);
    keys->labels = malloc(sizeof(int32_t) * (size_t)n);
    if (!keys->images || !keys->labels) {
        dg_cli_error("attack overwrite: out of memory");
        free(pool), free(pick), free(keys->images), free(keys->labels);
        memset(keys, 0, sizeof *keys);
        return -1;
    }
    uint64_t stream = dg_rng_stream(seed, 0x6e6f697365ull /* "noise" */);
    for (int i = 0; i < n; i++) {
        const uint8_t *src = ds->images + (size_t)pool[pick[i]] * per;
        for (size_t j = 0; j < per; j++) {
            double v = src[j] + 255.0 * noise_std * normal(stream, (uint64_t)i * per + j);
            keys->images[(size_t)i * per + j] = (uint8_t)(v <= 0.0 ? 0 : v >= 255.0 ? 255 : (int)floor(v + 0.5));
        }
        keys->labels[i] = target;
        if (taken) taken[pool[pick[i]]] = 1;
    }
    free(pool), free(pick);
    return 0;
}

/* The accuracy of model on the keys, the fresh keys and the first `limit` test images (all when
 * ≤ 0), from one load: 0, or −1 with the message printed. A model trained with another
 * normalisation is not warned of here: the fine-tuning's --init says so, once. */
static int accuracies(const char *net_name, const char *model, const dg_dataset *keys, const dg_dataset *fresh,
                      const dg_dataset *test, int limit, const char *backend, double acc[3]) {
    const dg_backend *be = dg_cli_backend(backend);
    dg_net *net = be ? dg_session_net(net_name, test, be, 256, NULL) : NULL;
    int rc = net && dg_session_load(net, model, NULL, NULL) == 0 ? 0 : -1;
    const dg_dataset *sets[3] = {keys, fresh, test};
    for (int i = 0; i < 3 && rc == 0; i++) {
        dg_eval_result r = {0};
        rc = dg_evaluate(net, sets[i], i == 2 ? limit : 0, &r);
        acc[i] = r.accuracy;
        dg_eval_result_free(&r);
    }
    dg_net_free(net);
    return rc;
}

int dg_cmd_attack_overwrite(int argc, char **argv) {
    dg_train_opts o;
    dg_train_defaults(&o);
    const char *model = NULL;
    int n_keys = 100, source = 1, target = 0, limit = 0;
    float noise_std = 0.2f;
    uint64_t key_seed = 7;
    const dg_opt extra[] = {
        {"keys", DG_OPT_INT, &n_keys, "number of backdoor key images mixed into the fine-tuning data (default 100)"},
        {"source-class", DG_OPT_INT, &source, "class the key images are drawn from (default 1)"},
        {"target-class", DG_OPT_INT, &target, "class the keys are labelled with (default 0)"},
        {"noise-std", DG_OPT_FLOAT, &noise_std, "Gaussian noise added to the keys, on [0, 1] pixels (default 0.2)"},
        {"key-seed", DG_OPT_U64, &key_seed, "draws the key images and their noise (default 7)"},
        {"limit", DG_OPT_INT, &limit, "test accuracy (before, after and each epoch's) on the first N test images (default: all)"},
    };
    int rc = dg_train_parse("attack overwrite", argc, argv, &o, 1, &model, extra, (int)(sizeof extra / sizeof *extra));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (!o.net || !o.data || !o.out) {
        dg_cli_error("attack overwrite: --model, --net, --data and --out are required");
        return DG_EXIT_BAD_INPUT;
    }
    dg_dataset train = {0}, test = {0}, keys = {0}, fresh = {0};
    unsigned char *taken = NULL; /* with --split test: the test images drawn as keys */
    dg_norm norm; /* the test split and the keys made from the splits take it too */
    if (dg_session_norm("attack overwrite", o.normalize, &norm) != 0 ||
        dg_session_data(o.data, strcmp(o.split, "test") != 0, &norm, &train) != 0)
        return DG_EXIT_BAD_INPUT;
    rc = DG_EXIT_BAD_INPUT;
    char err[512];
    if (dg_data_load_test(o.data, &train, &test, err, sizeof err) != 0) { /* a folder's: train's normalisation */
        dg_cli_error("%s", err);
        goto done;
    }
    if (n_keys < 1 || source < 0 || source >= train.classes || target < 0 || target >= train.classes ||
        source == target || !(noise_std >= 0.0f && noise_std <= 10.0f) || limit < 0) {
        dg_cli_error("attack overwrite: --keys must be ≥ 1, --source-class and --target-class two different classes "
                     "below %d, --noise-std in [0, 10], --limit ≥ 0", train.classes);
        goto done;
    }
    /* the keys trained on come from the split fine-tuned on; fresh ones from the test split, and
     * from other images than the keys' when that is the split fine-tuned on (--split test) */
    const int same_split = strcmp(o.split, "test") == 0;
    /* (both are the test split, in one order: the one flag array serves both draws) */
    taken = same_split ? calloc((size_t)(train.n > test.n ? train.n : test.n), 1) : NULL;
    if (same_split && !taken) {
        dg_cli_error("attack overwrite: out of memory");
        goto done;
    }
    if (make_keys(&train, o.split, n_keys, source, target, noise_std, key_seed, taken, &keys) != 0 ||
        make_keys(&test, "test", n_keys, source, target, noise_std, dg_rng_stream(key_seed, 1), taken, &fresh) != 0)
        goto done;
    double before[3], after[3]; /* the keys', the fresh keys', the test split's */
    if (accuracies(o.net, model, &keys, &fresh, &test, limit, o.backend, before) != 0) goto done;
    o.extra = &keys;
    o.quiet = 1;
    o.eval_limit = limit; /* the epochs' test accuracy too: --limit is there to make the run short */
    int trained = dg_train(&o);
    if (trained != DG_EXIT_OK) {
        rc = trained;
        goto done;
    }
    if (accuracies(o.net, o.out, &keys, &fresh, &test, limit, o.backend, after) != 0) goto done;
    printf("{\"out\": ");
    dg_json_string(stdout, o.out);
    printf(", \"attack\": \"overwrite\", \"model\": ");
    dg_json_string(stdout, model);
    printf(", \"keys\": %d, \"source_class\": %d, \"target_class\": %d, \"noise_std\": %g, \"finetune_images\": %d, \"trained_images\": %d, "
           "\"epochs\": %d, \"wm_accuracy_before\": %.6f, \"wm_accuracy\": %.6f, \"wm_accuracy_fresh_before\": %.6f, "
           "\"wm_accuracy_fresh\": %.6f, \"test_acc_before\": %.6f, \"test_acc\": %.6f, \"test_images\": %d}\n",
           n_keys, source, target, (double)noise_std, o.subset > 0 ? o.subset : train.n,
           (o.subset > 0 ? o.subset : train.n) + n_keys, o.epochs, before[0], after[0],
           before[1], after[1], before[2], after[2], limit > 0 && limit < test.n ? limit : test.n);
    rc = DG_EXIT_OK;
done:
    free(taken);
    dg_data_free(&train);
    dg_data_free(&test);
    dg_data_free(&keys);
    dg_data_free(&fresh);
    return rc;
}
