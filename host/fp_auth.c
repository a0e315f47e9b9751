/* host/fp_auth.c — the identity space of users' fingerprints (classes × confidences, the paper's
 * capacity), ActiveGuard's authentication rule, and the control layer's random answers. */
#include "fingerprint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/math/rng.h"

int dg_fp_parse_classes(const char *text, int k, int *out, int cap, char *err, size_t err_len) {
    unsigned char seen[DG_FP_MAX_CLASSES] = {0};
    const char *p = text;
    if (k > DG_FP_MAX_CLASSES) k = DG_FP_MAX_CLASSES;
    while (p && *p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p) goto bad;
        if (*end == '-') {
            p = end + 1;
            b = strtol(p, &end, 10);
            if (end == p) goto bad;
        }
        if (a < 0 || b < a || b >= k) {
            snprintf(err, err_len, "--classes '%s': classes must lie in 0..%d, ranges low-high", text, k - 1);
            return -1;
        }
        for (long c = a; c <= b; c++) seen[c] = 1;
        if (*end == ',' && end[1]) end++; /* a comma must have a next item */
        else if (*end) goto bad;
        p = end;
    }
    int n = 0;
    for (int c = 0; c < k; c++)
        if (seen[c]) {
            if (n == cap) goto bad;
            out[n++] = c;
        }
    if (n == 0) goto bad;
    return n;
bad:
    snprintf(err, err_len, "--classes '%s': expected classes like 0-9 or 1,3,5", text);
    return -1;
}

int dg_fp_parse_confs(const char *text, float eps, float *out, int cap, char *err, size_t err_len) {
    int n = 0;
    const char *p = text;
    while (p && *p) {
        char *end;
        double c = strtod(p, &end);
        if (end == p || n == cap || (*end && (*end != ',' || !end[1]))) {
            snprintf(err, err_len, "--conf '%s': expected confidences like 0.2,0.3,0.4", text);
            return -1;
        }
        if (!(c - eps > 0.0 && c + eps <= 1.0)) {
            snprintf(err, err_len, "--conf %g: its window (c − ε, c + ε) with ε = %g must lie inside (0, 1]", c,
                     (double)eps);
            return -1;
        }
        if (n > 0 && !dg_fp_windows_apart(out[n - 1], (float)c, eps)) {
            snprintf(err, err_len, "--conf %g after %g: confidences must increase and their windows (c ± %g) must "
                     "not overlap", c, (double)out[n - 1], (double)eps);
            return -1;
        }
        out[n++] = (float)c;
        p = *end ? end + 1 : end;
    }
    if (n == 0) {
        snprintf(err, err_len, "--conf: no confidences given");
        return -1;
    }
    return n;
}

int dg_fp_windows_apart(float a, float b, float eps) { return (double)b - (double)a >= 2.0 * (double)eps - 1e-6; }

int dg_fp_identity(const dg_fp_registry *r, int cls, int j) { return cls * r->n_confs + j; }
int dg_fp_identity_count(const dg_fp_registry *r) { return r->classes * r->n_confs; }
int dg_fp_is_fp_class(const dg_fp_registry *r, int cls) {
    for (int i = 0; i < r->n_classes_fp; i++)
        if (r->classes_fp[i] == cls) return 1;
    return 0;
}

double dg_fp_capacity(int classes, double z1, double z2, double eps) { return classes * (z2 - z1) / (2.0 * eps); }

void dg_fp_decide(const dg_fp_registry *r, const float *probs, dg_fp_decision *d) {
    memset(d, 0, sizeof *d);
    d->user = -1;
    d->predicted = -1;
    d->p_max = NAN;
    for (int j = 0; j < r->classes; j++)
        if (!isfinite(probs[j])) return; /* no class, and never authorised, whatever the softmax did */
    int arg = 0, tied = 0;
    for (int j = 1; j < r->classes; j++)
        if (probs[j] > probs[arg]) arg = j, tied = 0;
        else if (probs[j] == probs[arg]) tied = 1;
    d->predicted = arg;
    d->p_max = probs[arg];
    /* "argmax = t" needs one maximum: a tie (a collapsed model's uniform 1/K) names no class */
    if (tied) return;
    if (!dg_fp_is_fp_class(r, arg)) return;
    int matched = -1;
    for (int j = 0; j < r->n_confs; j++)
        if (fabsf(d->p_max - r->confs[j]) < r->eps) {
            /* windows may touch (spacing 2ε): a float within ε of both names no one user */
            if (matched >= 0) return;
            matched = j;
        }
    if (matched < 0) return;
    d->authorized = 1;
    d->user = dg_fp_identity(r, arg, matched);
    d->conf = r->confs[matched];
}

int dg_fp_random_class(uint64_t seed, uint64_t i, int classes) {
    return (int)(dg_rng_u64(dg_rng_stream(seed, 0xc0417011ull), i) % (uint64_t)classes);
}
