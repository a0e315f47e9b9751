/* host/cmd_forge.c — `dnnguard attack forge`: the paper's Table IV. An attacker without a
 * fingerprint submits fakes — clean test images, FGSM examples, or untargeted C&W examples — and
 * we count the share that the control layer authenticates (by the rule alone, and in strict mode,
 * where only an issued fingerprint's exact pixels pass). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/math/pixel.h"
#include "cli.h"
#include "commands.h"
#include "cw.h"
#include "fingerprint.h"
#include "fp_common.h"
#include "session.h"

/* the issued fingerprints' pixels, to decide strict mode without the files' bytes: a fake passes
 * strict mode only if it is pixel for pixel the fingerprint issued to the identity it claims */
static uint8_t *issued_pixels(const dg_fp_registry *r, const char *registry_path) {
    size_t per = (size_t)r->c * r->h * r->w, dir_len = strlen(registry_path);
    while (dir_len > 0 && registry_path[dir_len - 1] != '/') dir_len--;
    uint8_t *all = calloc((size_t)(r->n_users ? r->n_users : 1), per);
    char *path = malloc(dir_len + 80);
    if (!all || !path) {
        free(all);
        free(path);
        return NULL;
    }
    for (int i = 0; i < r->n_users; i++) {
        snprintf(path, dir_len + 80, "%.*s%s", (int)dir_len, registry_path, r->users[i].file);
        uint8_t *px = dg_fp_read_png(path, r);
        if (!px) { /* the message is printed */
            free(all);
            free(path);
            return NULL;
        }
        memcpy(all + (size_t)i * per, px, per);
        free(px);
    }
    free(path);
    return all;
}

int dg_cmd_attack_forge(int argc, char **argv) {
    const char *model = NULL, *registry = NULL, *data = NULL, *method = NULL, *backend = "auto", *normalize = NULL;
    int n = 10000, batch = 500;
    float fgsm_eps = NAN; /* unset: the kind's default */
    dg_cw_cli cw_cli = DG_CW_CLI_INIT;
    const dg_opt opts[] = {
        {"model", DG_OPT_STR, &model, "the protected model"},
        {"registry", DG_OPT_STR, &registry, "registry.json from fp issue"},
        {"data", DG_OPT_STR, &data, "the attacker's images (default: the registry's data set, test split)"},
        DG_NORMALIZE_RECORDED_OPT(normalize),
        {"method", DG_OPT_STR, &method, "clean | fgsm | cw"},
        {"n", DG_OPT_INT, &n, "fakes to try: the first N test images (default 10000)"},
        {"fgsm-eps", DG_OPT_FLOAT, &fgsm_eps, "FGSM step on [0, 1] pixels (default: 0.1 grey, 8/255 colour)"},
        {"batch", DG_OPT_INT, &batch, "images per batch (default 500)"},
        DG_CW_SEARCH_OPTS(cw_cli), /* no --conf-weight: the forger's C&W is untargeted, aims at no confidence */
        {"backend", DG_OPT_STR, &backend, "cpu | cuda | auto"},
    };
    int rc = dg_cli_parse("attack forge", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (!model || !registry || !method) {
        dg_cli_error("attack forge: --model, --registry and --method are required");
        return DG_EXIT_BAD_INPUT;
    }
    int kind = strcmp(method, "clean") == 0 ? 0 : strcmp(method, "fgsm") == 0 ? 1 : strcmp(method, "cw") == 0 ? 2 : -1;
    if (kind < 0 || n < 1 || batch < 1) {
        dg_cli_error("attack forge: --method must be clean, fgsm or cw; --n and --batch ≥ 1");
        return DG_EXIT_BAD_INPUT;
    }
    if (!isnan(fgsm_eps) && !(fgsm_eps > 0.0f && fgsm_eps <= 1.0f)) {
        dg_cli_error("attack forge: --fgsm-eps must be in (0, 1] (a step on [0, 1] pixels)");
        return DG_EXIT_BAD_INPUT;
    }
    const char *cw_only[] = {"lr", "alpha", "alpha-max", "search-steps", "iters"};
    for (size_t i = 0; i < sizeof cw_only / sizeof *cw_only; i++)
        if (kind != 2 && dg_cli_given(argc, argv, cw_only[i])) {
            dg_cli_error("attack forge: --%s means something only with --method cw", cw_only[i]);
            return DG_EXIT_BAD_INPUT;
        }
    if (kind != 1 && !isnan(fgsm_eps)) {
        dg_cli_error("attack forge: --fgsm-eps means something only with --method fgsm");
        return DG_EXIT_BAD_INPUT;
    }
    dg_norm norm;
    if (dg_session_norm("attack forge", normalize, &norm) != 0) return DG_EXIT_BAD_INPUT;
    const dg_backend *be = dg_cli_backend(backend);
    if (!be) return DG_EXIT_BAD_INPUT;
    char err[512];
    dg_fp_registry reg;
    if (dg_fp_registry_read(registry, &reg, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return DG_EXIT_BAD_INPUT;
    }
    dg_cw_opts cw;
    if (dg_cw_cli_apply("attack forge", &cw_cli, reg.c == 3, &cw) != 0) {
        dg_fp_registry_free(&reg);
        return DG_EXIT_BAD_INPUT;
    }
    cw.untargeted = 1;
    rc = DG_EXIT_BAD_INPUT;
    dg_dataset ds = {0};
    dg_net *net = NULL;
    uint8_t *issued = NULL, *fakes = NULL;
    float *x = NULL, *grad = NULL, *x01 = NULL;
    int32_t *labels = NULL;
    dg_fp_decision *dec = NULL;
    dg_cw_item *items = NULL;
    long *per_user = NULL;
    if (dg_fp_registry_data("attack forge", &reg, registry, NULL, data ? data : reg.data, 0, &norm, normalize != NULL,
                            &ds) != 0)
        goto done;
    if (n > ds.n) n = ds.n;
    if (batch > n) batch = n;
    if (!(net = dg_fp_registry_net(&reg, model, be, batch))) goto done;
    if (!(issued = issued_pixels(&reg, registry))) goto done;
    size_t per = (size_t)reg.c * reg.h * reg.w, hw = (size_t)reg.h * reg.w;
    fakes = malloc(per * (size_t)batch);
    x = malloc(sizeof(float) * per * (size_t)batch);
    grad = malloc(sizeof(float) * per * (size_t)batch);
    x01 = malloc(sizeof(float) * per * (size_t)batch);
    labels = malloc(sizeof(int32_t) * (size_t)batch);
    dec = malloc(sizeof *dec * (size_t)batch);
    items = calloc((size_t)batch, sizeof *items);
    per_user = calloc((size_t)dg_fp_identity_count(&reg), sizeof(long));
    if (!fakes || !x || !grad || !x01 || !labels || !dec || !items || !per_user) {
        dg_cli_error("attack forge: out of memory");
        goto done;
    }
    if (isnan(fgsm_eps)) fgsm_eps = reg.c == 3 ? 8.0f / 255.0f : 0.1f;
    long made = 0, rule = 0, strict = 0, changed_class = 0;
    double l2_sum = 0.0, t0 = dg_now_s();
    for (int first = 0; first < n; first += batch) {
        int m = n - first < batch ? n - first : batch, k = 0;
        const uint8_t *src = ds.images + (size_t)first * per;
        for (int i = 0; i < m; i++) labels[i] = ds.labels[first + i];
        if (kind == 0) {
            memcpy(fakes, src, per * (size_t)m);
            k = m;
        } else if (kind == 1) { /* FGSM: x + eps·sign(∂CE/∂x), clipped to [0, 1], written as 8 bits */
            for (int i = 0; i < m; i++)
                dg_fp_pixels_to_input(src + (size_t)i * per, reg.c, (int)hw, reg.mean, reg.std, x + (size_t)i * per);
            dg_fp_pixel_grad_xent(net, x, labels, m, reg.std, grad);
            for (size_t j = 0; j < per * (size_t)m; j++) {
                float v = src[j] / 255.0f + fgsm_eps * (grad[j] > 0.0f ? 1.0f : grad[j] < 0.0f ? -1.0f : 0.0f);
                fakes[j] = (uint8_t)dg_pixel_quantize(v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v);
            }
            k = m;
        } else { /* untargeted C&W: leave the true class by the smallest change; only successes are fakes */
            for (size_t j = 0; j < per * (size_t)m; j++) x01[j] = src[j] / 255.0f;
            uint8_t *out = malloc(per * (size_t)m);
            if (!out) {
                dg_cli_error("attack forge: out of memory");
                goto done;
            }
            for (int i = 0; i < m; i++)
                items[i] = (dg_cw_item){.target = labels[i], .x0 = x01 + (size_t)i * per, .pixels = out + (size_t)i * per};
            if (dg_cw_run(net, reg.mean, reg.std, items, m, &cw, NULL) != 0) {
                free(out);
                dg_cli_error("attack forge: out of memory in the generator");
                goto done;
            }
            for (int i = 0; i < m; i++)
                if (items[i].success) {
                    memcpy(fakes + (size_t)k * per, items[i].pixels, per);
                    l2_sum += items[i].l2;
                    k++;
                }
            free(out);
        }
        if (k == 0) continue;
        if (dg_fp_decide_images(net, &reg, fakes, k, dec) != 0) {
            dg_cli_error("attack forge: out of memory");
            goto done;
        }
        for (int i = 0; i < k; i++) {
            made++;
            if (kind != 2 && dec[i].predicted != labels[i]) changed_class++;
            if (!dec[i].authorized) continue;
            rule++;
            per_user[dec[i].user]++;
            int at = dg_fp_find_user(&reg, dec[i].user);
            if (memcmp(fakes + (size_t)i * per, issued + (size_t)at * per, per) == 0) strict++;
        }
    }
    double seconds = dg_now_s() - t0;
    printf("{\"method\": \"%s\", \"tried\": %d, \"fakes\": %ld", method, n, made);
    if (kind == 1) printf(", \"fgsm_eps\": %.6g, \"misclassified\": %ld", (double)fgsm_eps, changed_class);
    if (kind == 2) printf(", \"cw_mean_l2\": %s", dg_json_fixed(made ? l2_sum / made : NAN, 4).s);
    if (kind == 0) printf(", \"misclassified\": %ld", changed_class);
    printf(", \"authenticated\": %ld, \"rate\": %.6f, \"strict_authenticated\": %ld, \"strict_rate\": %.6f, "
           "\"by_identity\": [",
           rule, made ? (double)rule / made : 0.0, strict, made ? (double)strict / made : 0.0);
    for (int u = 0, shown = 0; u < dg_fp_identity_count(&reg); u++)
        if (per_user[u]) printf("%s{\"user\": %d, \"fakes\": %ld}", shown++ ? ", " : "", u, per_user[u]);
    printf("], \"seconds\": %.2f}\n", seconds);
    rc = DG_EXIT_OK;
done:
    dg_net_free(net);
    dg_data_free(&ds);
    dg_fp_registry_free(&reg);
    free(issued), free(fakes), free(x), free(grad), free(x01), free(labels), free(dec), free(items), free(per_user);
    return rc;
}
