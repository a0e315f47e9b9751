/* host/wm_verify.c — Algorithm 1 of ActiveGuard on a host copy of the layer: extract the weights
 * at the key's positions, map them to the digit scale, round, compare; optionally search every
 * output filter and every input-channel assignment (what a channel permutation moves), with an
 * estimate of how likely a layer without the watermark would pass the same search. */
#include "watermark.h"

#include "../kernels/math/watermark.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* q[d]: fraction of the layer's weights that extract as digit d (the chance that an unrelated
 * weight of this layer reads as d) */
static void digit_frequencies(const dg_wm_key *key, const float *w, double q[10]) {
    size_t numel = (size_t)key->shape[0] * key->shape[1] * key->shape[2] * key->shape[3], count[10] = {0};
    for (size_t j = 0; j < numel; j++) {
        int d = dg_wm_digit(key->a * w[j] + key->b);
        if (d >= 0 && d <= 9) count[d]++;
    }
    for (int d = 0; d < 10; d++) q[d] = (double)count[d] / (double)numel;
}

/* read filter o with the key's positions, input channel k's positions moved to channel_of[k] */
static int read_filter(const dg_wm_key *key, const float *w, int o, const int32_t *channel_of, dg_wm_result *r) {
    int rs = key->shape[2] * key->shape[3], matches = 0;
    const float *f = w + (size_t)o * key->shape[1] * rs;
    for (int k = 0; k < key->n; k++) {
        int p = key->positions[k], i = channel_of ? channel_of[k] : p / rs;
        float m = key->a * f[i * rs + p % rs] + key->b;
        r->extracted[k] = dg_wm_digit(m);
        r->residual[k] = fabsf(m - (float)key->digits[k]);
        r->channel_of[k] = i;
        matches += r->extracted[k] == key->digits[k];
    }
    r->filter = o;
    r->matches = matches;
    return matches;
}

/* ---- the input-channel search: groups of key positions that share an input channel, each
 * to be placed on a distinct channel of the filter where all of the group's digits read right ---- */

typedef struct channel_search {
    const dg_wm_key *key;
    int groups, channels, rs;
    int *group_channel;   /* [groups] the key's input channel of each group */
    unsigned char *fits;  /* [groups × channels] */
    int *owner;           /* [channels] the group placed there, or -1 */
    unsigned char *seen;  /* [channels] */
    int *place;           /* [groups] */
} channel_search;

static int augment(channel_search *s, int g) {
    for (int c = 0; c < s->channels; c++) {
        if (!s->fits[(size_t)g * s->channels + c] || s->seen[c]) continue;
        s->seen[c] = 1;
        if (s->owner[c] < 0 || augment(s, s->owner[c])) {
            s->owner[c] = g;
            s->place[g] = c;
            return 1;
        }
    }
    return 0;
}

/* the key's input channels, each once, in s->group_channel */
static void group_positions(channel_search *s) {
    for (int k = 0; k < s->key->n; k++) {
        int c = s->key->positions[k] / s->rs, known = 0;
        for (int g = 0; g < s->groups; g++) known |= s->group_channel[g] == c;
        if (!known) s->group_channel[s->groups++] = c;
    }
}

/* 1 when filter o holds every digit under some injective input-channel assignment (channel_of
 * filled per digit) */
static int search_channels(channel_search *s, const float *w, int o, int32_t *channel_of) {
    const dg_wm_key *key = s->key;
    const float *f = w + (size_t)o * s->channels * s->rs;
    for (int g = 0; g < s->groups; g++)
        for (int c = 0; c < s->channels; c++) {
            int fits = 1;
            for (int k = 0; k < key->n && fits; k++) {
                if (key->positions[k] / s->rs != s->group_channel[g]) continue;
                fits = dg_wm_digit(key->a * f[c * s->rs + key->positions[k] % s->rs] + key->b) == key->digits[k];
            }
            s->fits[(size_t)g * s->channels + c] = (unsigned char)fits;
        }
    for (int c = 0; c < s->channels; c++) s->owner[c] = -1;
    for (int g = 0; g < s->groups; g++) {
        memset(s->seen, 0, (size_t)s->channels);
        if (!augment(s, g)) return 0;
    }
    for (int k = 0; k < key->n; k++)
        for (int g = 0; g < s->groups; g++)
            if (key->positions[k] / s->rs == s->group_channel[g]) channel_of[k] = s->place[g];
    return 1;
}

/* The chance that one filter at fixed positions reads at least `need` of the n digits right when its
 * weights are independent draws with digit frequencies q: digit k reads right with q(d_k), and the
 * count is Poisson-binomial; its tail by dynamic programming over the digits (exact[j]: j right so
 * far). need = n gives Π q(d_k). */
static double at_least(const dg_wm_key *key, const double q[10], int need, double *exact) {
    exact[0] = 1.0;
    for (int k = 0; k < key->n; k++) {
        const double hit = q[key->digits[k]];
        exact[k + 1] = 0.0;
        for (int j = k + 1; j > 0; j--) exact[j] = exact[j] * (1.0 - hit) + exact[j - 1] * hit;
        exact[0] *= 1.0 - hit;
    }
    double tail = 0.0;
    for (int j = need; j <= key->n; j++) tail += exact[j];
    return fmin(1.0, tail);
}

/* The chance that a layer whose weights are drawn independently from this layer's digit
 * frequencies q passes the search with `need` digits: one filter at fixed positions with `one`
 * (at_least()); a search over O filters multiplies by O (union bound); a search over input channels
 * (which takes every digit) lets each group of positions sharing a channel sit on any of I channels
 * (union bound again), added to the filter search's chance when that needs fewer digits. */
static double chance_of(const channel_search *s, dg_wm_search search, const double q[10], int need, double one) {
    const dg_wm_key *key = s->key;
    if (search != DG_WM_SEARCH_CHANNELS) return fmin(1.0, search == DG_WM_SEARCH_FILTERS ? one * key->shape[0] : one);
    const double filters = need < key->n ? one * key->shape[0] : 0.0;
    double per_filter = 1.0;
    for (int g = 0; g < s->groups; g++) {
        double group = 1.0;
        for (int k = 0; k < key->n; k++)
            if (key->positions[k] / s->rs == s->group_channel[g]) group *= q[key->digits[k]];
        per_filter *= fmin(1.0, group * s->channels);
    }
    return fmin(1.0, per_filter * key->shape[0] + filters);
}

/* A stage's result that reads at least `need` digits: kept in *pass when its chance (of as many
 * right digits as it read: the p-value of the count seen) is the smallest so far. */
static void keep_pass(const channel_search *s, const double q[10], double *work, dg_wm_search stage,
                      const dg_wm_result *got, dg_wm_result *pass, double *pass_p, int *have) {
    const double p = chance_of(s, stage, q, got->matches, at_least(s->key, q, got->matches, work));
    if (*have && p >= *pass_p) return;
    *pass = *got;
    pass->verified = 1, pass->matched_by = (int)stage, pass->p_chance = p;
    *pass_p = p, *have = 1;
}

int dg_wm_verify(const dg_wm_key *key, const float *w, dg_wm_search search, int need, dg_wm_result *r) {
    int rc = 0;
    memset(r, 0, sizeof *r);
    channel_search s = {.key = key, .channels = key->shape[1], .rs = key->shape[2] * key->shape[3]};
    s.group_channel = malloc(sizeof(int) * (size_t)key->n);
    s.fits = malloc((size_t)key->n * (size_t)s.channels);
    s.owner = malloc(sizeof(int) * (size_t)s.channels);
    s.seen = malloc((size_t)s.channels);
    s.place = malloc(sizeof(int) * (size_t)key->n);
    int32_t *channel_of = malloc(sizeof(int32_t) * (size_t)key->n);
    /* trial: a stage's read; pass: the strongest passing stage's (zeroed: only [0, n) is ever written) */
    dg_wm_result *trial = calloc(1, sizeof *trial), *pass = calloc(1, sizeof *pass);
    double *work = malloc(sizeof(double) * ((size_t)key->n + 1));
    if (!s.group_channel || !s.fits || !s.owner || !s.seen || !s.place || !channel_of || !trial || !pass || !work) {
        r->p_chance = 1.0; /* out of memory: no verdict */
        rc = -1;
        goto done;
    }
    group_positions(&s);
    double q[10];
    digit_frequencies(key, w, q);
    /* A match is judged by the chance of the stage that found it (a wide layer's channel search
     * tries so many places that its chance is near 1, while the key's filter is still strong
     * evidence); with nothing found, the chance of the whole search asked for is reported.
     * Algorithm 1: the key's filter at the key's positions. A full match ends the search; with
     * --min-match below n a stage may pass on a few digits read by chance, so the later stages
     * still run (the watermark may sit whole in the filter a permutation moved it to) and the
     * verdict is the passing stage with the smallest chance, judged at the count it read */
    int have = 0; /* whether `pass` holds a passing stage's result */
    double pass_p = 2.0;
    read_filter(key, w, key->filter, NULL, r);
    if (r->matches >= need) keep_pass(&s, q, work, DG_WM_SEARCH_KEY, r, pass, &pass_p, &have);
    if (search == DG_WM_SEARCH_KEY || r->matches == key->n) goto decided;

    /* every output filter; the best match is reported (ties: the key's filter, then the lowest index) */
    int best = key->filter, best_matches = r->matches;
    for (int o = 0; o < key->shape[0]; o++)
        if (read_filter(key, w, o, NULL, trial) > best_matches) best = o, best_matches = trial->matches;
    read_filter(key, w, best, NULL, r);
    if (r->matches >= need) keep_pass(&s, q, work, DG_WM_SEARCH_FILTERS, r, pass, &pass_p, &have);
    if (search == DG_WM_SEARCH_FILTERS || r->matches == key->n) goto decided;

    /* every filter under any injective input-channel assignment: all digits must read right */
    for (int o = 0; o < key->shape[0]; o++)
        if (search_channels(&s, w, o, channel_of)) {
            read_filter(key, w, o, channel_of, trial);
            trial->input_permuted = 0;
            for (int k = 0; k < key->n; k++) trial->input_permuted |= channel_of[k] != key->positions[k] / s.rs;
            keep_pass(&s, q, work, DG_WM_SEARCH_CHANNELS, trial, pass, &pass_p, &have); /* every digit reads */
            break;
        }
decided:
    if (have) *r = *pass; /* verified by the strongest passing stage */
    else /* nothing passed: the chance of the whole search asked for */
        r->verified = 0, r->matched_by = -1, r->p_chance = chance_of(&s, search, q, need, at_least(key, q, need, work));
done:
    free(s.group_channel);
    free(s.fits);
    free(s.owner);
    free(s.seen);
    free(s.place);
    free(channel_of);
    free(trial);
    free(pass);
    free(work);
    return rc;
}
