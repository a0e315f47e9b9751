/* tests/asan_nonfinite.c — what a suspect's NaN, infinite or huge weights reach on the way to a
 * verdict, under AddressSanitizer and UBSan with float-cast-overflow (a float converted to an int
 * it does not fit is undefined, and x86 quietly gives INT_MIN): LeNet-5's forward and Deep Taylor
 * relevance with such weights, the fingerprint image they quantise to and its SSIM against a clean
 * one, watermark digit extraction and every verification search, and the JSON number text.
 * Each must be defined, say "no" where it should, and never look like a match. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "host/cli.h"
#include "host/infip.h"
#include "host/json_fields.h"
#include "host/relevance.h"
#include "host/ssim.h"
#include "host/watermark.h"
#include "kernels/math/watermark.h"
#include "nets/registry.h"

/* dg_infip_image: clip(round(λ·Σ_c R), 0, 255), NaN read as 0 */
static void check_image(void) {
    const float rel[2 * 8] = {-1.0f, 0.4f, 0.5f, 254.6f, 300.0f, NAN, INFINITY, -INFINITY,
                              0.0f,  0.0f, 0.0f, 0.0f,   1e38f,  0.0f, 1.0f,    1e38f};
    const uint8_t want1[8] = {0, 0, 1, 255, 255, 0, 255, 0}, want2[8] = {0, 0, 1, 255, 255, 0, 255, 0};
    uint8_t img[8];
    dg_infip_image(rel, 1, 2, 4, 1.0f, img);
    CHECK(memcmp(img, want1, 8) == 0, "one channel: %d %d %d %d %d %d %d %d", img[0], img[1], img[2], img[3], img[4],
          img[5], img[6], img[7]);
    dg_infip_image(rel, 2, 2, 4, 1.0f, img); /* sums: -1, .4, .5, 254.6, +big, NaN, inf, -inf + 1e38 */
    CHECK(memcmp(img, want2, 8) == 0, "two channels summed: %d %d %d %d %d %d %d %d", img[0], img[1], img[2], img[3],
          img[4], img[5], img[6], img[7]);
    dg_infip_image(rel, 1, 2, 4, 1e30f, img);
    CHECK(img[0] == 0 && img[1] == 255 && img[5] == 0, "λ = 1e30: %d %d %d", img[0], img[1], img[5]);
}

/* LeNet-5 with its weights spoiled three ways: relevance, images and SSIM stay defined */
static void check_relevance(void) {
    char err[256];
    dg_net *net = dg_net_create("lenet5", 10, 1, 28, 28, err, sizeof err);
    CHECK(net && dg_net_setup(net, dg_backend_cpu(), 2) == 0, "lenet5: %s", err);
    if (!net) return;
    float *p = malloc(sizeof(float) * net->n_param_floats);
    const size_t per = 784;
    float x[2 * 784], rel[2 * 784], logits[20];
    uint8_t clean[784], img[784];
    int pred[2];
    dg_test_fill(x, 2 * per, 5, -0.4f, 2.8f);
    const float spoil[4] = {0.0f, NAN, INFINITY, 3e38f};
    for (int s = 0; s < 4; s++) {
        dg_test_fill(p, net->n_param_floats, 11, -0.2f, 0.2f);
        if (s) /* conv2's weights and fc3's first row */
            for (int i = 0; i < net->n_params; i++)
                if (strcmp(net->params[i].name, "conv2.weight") == 0 || strcmp(net->params[i].name, "fc3.weight") == 0)
                    for (size_t j = 0; j < net->params[i].numel; j += 7) p[net->params[i].offset + j] = spoil[s];
        net->be->upload(net->param_arena, p, sizeof(float) * net->n_param_floats);
        dg_relevance_opts o = {.eps = 1e-9f};
        const float mean[1] = {0.1307f}, std[1] = {0.3081f};
        dg_relevance_bounds(&o, 1, mean, std);
        dg_relevance *r = dg_relevance_new(net, &o, err, sizeof err);
        CHECK(r && dg_relevance_run(r, x, 2, NULL, pred, logits, rel) == 0, "spoil %d: relevance runs: %s", s, err);
        for (int i = 0; i < 2; i++) { /* a class in 0..9, or -1 exactly when the outputs are not all finite */
            int finite = 1;
            for (int j = 0; j < 10; j++) finite &= isfinite(logits[i * 10 + j]) != 0;
            CHECK(finite ? pred[i] >= 0 && pred[i] < 10 : pred[i] == -1,
                  "spoil %d: image %d predicts %d, its outputs %s finite", s, i, pred[i], finite ? "all" : "not all");
        }
        dg_infip_image(rel, 1, 28, 28, 5000.0f, s ? img : clean);
        double ssim = dg_ssim(clean, s ? img : clean, 28, 28, DG_SSIM_GLOBAL);
        CHECK(isfinite(ssim) && ssim >= -1.0 && ssim <= 1.0 && (s || ssim == 1.0), "spoil %d: SSIM %g", s, ssim);
        dg_relevance_free(r);
    }
    free(p);
    dg_net_free(net);
}

/* digits of any mapped value, and verification of layers that are all NaN, infinite or huge */
static void check_watermark(void) {
    const float mapped[] = {0.0f, 0.49f, 0.5f, 8.6f, -0.6f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN};
    const int digit[] = {0, 0, 1, 9, -1, 1000, -1000, 1000, -1000, -1};
    int digits_ok = 1;
    for (int i = 0; i < 10; i++) digits_ok &= dg_wm_digit(mapped[i]) == digit[i];
    CHECK(digits_ok, "dg_wm_digit rounds half up, clamps to ±1000 and reads NaN as -1");

    const int shape[4] = {16, 6, 5, 5};
    enum { NUMEL = 16 * 150 };
    static float w[NUMEL], bad[NUMEL];
    dg_test_fill(w, NUMEL, 3, -0.3f, 0.3f);
    static dg_wm_key key;
    static dg_wm_result r;
    char err[256];
    CHECK(dg_wm_keygen(w, shape, "conv2.weight", "1234567890210", 7, &key, err, sizeof err) == 0, "keygen: %s", err);
    const float fill[4] = {NAN, INFINITY, -3e38f, 3e38f};
    for (int f = 0; f < 4; f++) {
        for (int i = 0; i < NUMEL; i++) bad[i] = fill[f];
        int all_no = 1;
        for (int s = 0; s < 3; s++) {
            dg_wm_verify(&key, bad, (dg_wm_search)s, key.n, &r);
            all_no &= !r.verified && r.matches == 0 && r.p_chance >= 0.0 && r.p_chance <= 1.0;
            for (int i = 0; i < key.n; i++)
                all_no &= (r.extracted[i] < 0 || r.extracted[i] > 9) && !(r.residual[i] < 1.0f);
        }
        CHECK(all_no, "a layer of %g: no search verifies or extracts a digit", (double)fill[f]);
    }
    /* one NaN inside the key's filter costs one digit, no more */
    memcpy(bad, w, sizeof bad);
    for (int k = 0; k < key.n; k++) { /* plant the digits exactly */
        float *v = &bad[key.filter * 150 + key.positions[k]];
        *v = ((float)key.digits[k] - key.b) / key.a;
    }
    bad[key.filter * 150 + key.positions[4]] = NAN;
    dg_wm_verify(&key, bad, DG_WM_SEARCH_KEY, key.n - 1, &r);
    CHECK(r.verified && r.matches == key.n - 1 && r.extracted[4] == -1, "a NaN at digit 5: %d of %d match, verified %d",
          r.matches, key.n, r.verified);
}

static void check_json_numbers(void) {
    CHECK(strcmp(dg_json_fixed(NAN, 6).s, "null") == 0 && strcmp(dg_json_fixed(-INFINITY, 6).s, "null") == 0 &&
              strcmp(dg_json_sig(INFINITY, 9).s, "null") == 0,
          "NaN and infinities print as null");
    CHECK(strcmp(dg_json_fixed(0.25, 6).s, "0.250000") == 0 && strcmp(dg_json_sig(1.0 / 3.0, 3).s, "0.333") == 0,
          "finite values as printf prints them: %s %s", dg_json_fixed(0.25, 6).s, dg_json_sig(1.0 / 3.0, 3).s);
    CHECK(strlen(dg_json_fixed(-1.7976931348623157e308, 6).s) == 317, "the largest double fits in full");
    /* the writer of registries and manifests: shortest exact text, null where JSON has no number */
    char num[32];
    dg_json_float_text(NAN, num, sizeof num);
    CHECK(strcmp(num, "null") == 0, "a NaN float field is written as null, not '%s'", num);
    dg_json_float_text(-INFINITY, num, sizeof num);
    CHECK(strcmp(num, "null") == 0, "an infinite float field is written as null, not '%s'", num);
    dg_json_float_text(0.01f, num, sizeof num);
    CHECK(strcmp(num, "0.01") == 0, "0.01f is written as '%s'", num);
    dg_json_float_text(-3.4028235e38f, num, sizeof num);
    CHECK(strtof(num, NULL) == -3.4028235e38f, "the largest float reads back ('%s')", num);
}

int main(void) {
    check_image();
    check_relevance();
    check_watermark();
    check_json_numbers();
    return dg_test_done("asan_nonfinite");
}
