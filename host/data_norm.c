/* host/data_norm.c — the input normalisation a user states (--normalize MEAN/STD, or a preset):
 * strict parsing, applying it over a data set's own, and writing it back as text for records.
 * Text and numbers only: no files, devices or option tables. */
#include "data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json_fields.h"

/* Bounds of a stated normalisation. A mean is of [0, 1] pixels; a std below 1e-6 would scale a pixel
 * past what float32 arithmetic downstream keeps finite (the records' reader takes the same bounds). */
#define NORM_STD_MIN 1e-6
#define NORM_STD_MAX 1e6

/* One comma list of 1 to 3 numbers, from text up to end, into v; the count, or −1 with err. */
static int parse_values(const char *text, const char *end, const char *what, const char *whole, int is_std, float *v,
                        char *err, size_t err_len) {
    int n = 0;
    const char *p = text;
    for (;;) {
        char item[64];
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        size_t len = (size_t)(stop - p);
        if (len == 0 || len >= sizeof item) {
            dg_err_set(err, err_len, "--normalize", "'%s': expected MEAN/STD, each one number or one per channel "
                       "separated by commas (e.g. 0.5/0.5), imagenet, none or data", dg_err_safe(whole).s);
            return -1;
        }
        if (n == 3) {
            dg_err_set(err, err_len, "--normalize", "'%s': more than 3 %s values (images have at most 3 channels)",
                       dg_err_safe(whole).s, what);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = 0;
        char *item_end;
        errno = 0;
        double x = strtod(item, &item_end);
        /* strtod would skip leading spaces and take "nan", "inf" and hex: a finite decimal only */
        if (*item_end || item_end == item || errno || !isfinite(x) || !strchr("+-.0123456789", item[0]) ||
            strpbrk(item, "xX")) {
            dg_err_set(err, err_len, "--normalize", "'%s': %s value '%s' is not a finite number", dg_err_safe(whole).s,
                       what, dg_err_safe(item).s);
            return -1;
        }
        if (is_std ? !(x >= NORM_STD_MIN && x <= NORM_STD_MAX) : !(x >= 0.0 && x <= 1.0)) {
            dg_err_set(err, err_len, "--normalize", is_std ? "'%s': std %g must lie in [1e-6, 1e6]"
                                                           : "'%s': mean %g must lie in [0, 1] (a mean of [0, 1] pixels)",
                       dg_err_safe(whole).s, x);
            return -1;
        }
        v[n++] = (float)(x + 0.0); /* -0 as 0 */
        if (!comma) return n;
        p = comma + 1;
    }
}

int dg_norm_parse(const char *text, dg_norm *out, char *err, size_t err_len) {
    if (err && err_len) err[0] = 0;
    memset(out, 0, sizeof *out);
    if (!text || strcmp(text, "data") == 0) return 0;
    if (strcmp(text, "imagenet") == 0) text = "0.485,0.456,0.406/0.229,0.224,0.225"; /* torchvision's */
    else if (strcmp(text, "none") == 0) text = "0/1";                                  /* pixels on [0, 1] */
    const char *slash = strchr(text, '/');
    if (!slash || strchr(slash + 1, '/')) {
        dg_err_set(err, err_len, "--normalize", "'%s': expected MEAN/STD (e.g. 0.5/0.5 or "
                   "0.485,0.456,0.406/0.229,0.224,0.225), imagenet, none or data", dg_err_safe(text).s);
        return -1;
    }
    out->n_mean = parse_values(text, slash, "mean", text, 0, out->mean, err, err_len);
    if (out->n_mean < 0) return -1;
    out->n_std = parse_values(slash + 1, slash + 1 + strlen(slash + 1), "std", text, 1, out->std, err, err_len);
    if (out->n_std < 0) return -1;
    out->given = 1;
    return 0;
}

int dg_norm_apply(const dg_norm *norm, dg_dataset *d, char *err, size_t err_len) {
    if (!norm || !norm->given) return 0;
    if ((norm->n_mean != 1 && norm->n_mean != d->c) || (norm->n_std != 1 && norm->n_std != d->c)) {
        dg_err_set(err, err_len, "--normalize", "%d mean and %d std values for %d-channel images (give one value%s)",
                   norm->n_mean, norm->n_std, d->c, d->c > 1 ? ", or one per channel" : "");
        return -1;
    }
    for (int ch = 0; ch < 3; ch++) { /* channels ≥ c repeat channel 0, as the loaders set them */
        int k = ch < d->c ? ch : 0;
        d->mean[ch] = norm->mean[norm->n_mean == 1 ? 0 : k];
        d->std[ch] = norm->std[norm->n_std == 1 ? 0 : k];
    }
    return 0;
}

int dg_norm_equal(const dg_dataset *d, const float *mean, const float *std) {
    for (int ch = 0; ch < d->c; ch++)
        if (d->mean[ch] != mean[ch] || d->std[ch] != std[ch]) return 0;
    return 1;
}

void dg_norm_format(const float *mean, const float *std, int c, char *out, size_t cap) {
    size_t len = 0;
    out[0] = 0;
    for (int k = 0; k < 2 * c; k++) {
        char num[32];
        dg_json_float_text(k < c ? mean[k] : std[k - c], num, sizeof num);
        const char *sep = k == 0 ? "" : k == c ? "/" : ",";
        int wrote = snprintf(out + len, cap - len, "%s%s", sep, num);
        if (wrote < 0 || (size_t)wrote >= cap - len) return; /* cut: the caller's buffer is too small */
        len += (size_t)wrote;
    }
}
