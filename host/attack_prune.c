/* host/attack_prune.c — magnitude pruning of conv and linear weights held in host memory: per layer
 * or over all layers at once, the floor(rate·n) entries of smallest |w| set to zero, ties going to
 * the lower flat index. Knows nothing of files, nets or devices. */
#include "attack.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/math/rng.h"

static int ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

int dg_prune_is_target(const char *name, int ndim) {
    return (ndim == 2 || ndim == 4) && ends_with(name, ".weight") && strncmp(name, "optim.", 6) != 0;
}

/* What the ranking compares: |w|, with NaN above every number (never pruned before +inf is). */
static float rank_key(float w) { return isnan(w) ? INFINITY : fabsf(w); }

/* The k-th smallest (0-based, k < n) of a[0..n): quickselect with a three-way partition, so that
 * many equal keys (the zeros of an already pruned model) cost no extra rounds, and pivots drawn
 * from a fixed stream, so that the expected time is linear whatever the input. Reorders a. */
static float select_kth(float *a, size_t n, size_t k) {
    size_t lo = 0, hi = n;
    uint64_t draw = 0;
    while (hi - lo > 1) {
        float pivot = a[lo + dg_rng_u64(0x7072756e65ull, draw++) % (hi - lo)];
        size_t lt = lo, i = lo, gt = hi; /* [lo,lt) < pivot, [lt,i) == pivot, [gt,hi) > pivot */
        while (i < gt) {
            float x = a[i];
            if (x < pivot) {
                a[i++] = a[lt];
                a[lt++] = x;
            } else if (x > pivot) {
                a[i] = a[--gt];
                a[gt] = x;
            } else {
                i++;
            }
        }
        if (k < lt) hi = lt;
        else if (k >= gt) lo = gt;
        else return pivot;
    }
    return a[lo];
}

/* Zero the k smallest keys of layers[0..n) taken as one sequence (layer after layer) of `total`
 * entries; scratch holds `total` floats. */
static void prune_group(dg_prune_layer *layers, int n, size_t total, size_t k, float *scratch) {
    for (int l = 0; l < n; l++) {
        layers[l].zeroed = 0;
        layers[l].threshold = 0.0f;
    }
    if (k == 0) return;
    size_t m = 0;
    for (int l = 0; l < n; l++)
        for (size_t j = 0; j < layers[l].numel; j++) scratch[m++] = rank_key(layers[l].w[j]);
    float threshold = select_kth(scratch, total, k - 1);
    size_t below = 0;
    for (int l = 0; l < n; l++)
        for (size_t j = 0; j < layers[l].numel; j++) below += rank_key(layers[l].w[j]) < threshold;
    size_t ties = k - below; /* entries equal to the threshold still to zero, lowest index first */
    for (int l = 0; l < n; l++) {
        float *w = layers[l].w;
        for (size_t j = 0; j < layers[l].numel; j++) {
            float key = rank_key(w[j]);
            int zero = key < threshold;
            if (!zero && key == threshold && ties > 0) {
                zero = 1;
                ties--;
            }
            if (zero) {
                w[j] = 0.0f;
                layers[l].zeroed++;
            }
        }
        layers[l].threshold = threshold;
    }
}

/* floor(rate·n) as the decimal rate means it: 0.29 is held as 0.28999999999999998 and 0.29·100 is
 * 28.999999999999996 in doubles, one weight short. A product a few ulps below an integer is that integer. */
static size_t prune_count(double rate, size_t n) {
    double x = rate * (double)n, k = floor(x);
    if (k + 1.0 <= (double)n && (k + 1.0) - x <= 8.0 * DBL_EPSILON * (k + 1.0)) k += 1.0;
    return (size_t)k;
}

int dg_prune_layers(dg_prune_layer *layers, int n, double rate, int global, char *err, size_t err_len) {
    if (!(rate >= 0.0 && rate <= 1.0)) {
        snprintf(err, err_len, "prune rate %g is not in [0, 1]", rate);
        return -1;
    }
    size_t total = 0, largest = 0;
    for (int l = 0; l < n; l++) {
        total += layers[l].numel;
        if (layers[l].numel > largest) largest = layers[l].numel;
    }
    size_t need = global ? total : largest;
    float *scratch = malloc(sizeof(float) * (need ? need : 1));
    if (!scratch) {
        snprintf(err, err_len, "out of memory (%zu floats to rank)", need);
        return -1;
    }
    if (global) {
        prune_group(layers, n, total, prune_count(rate, total), scratch);
    } else {
        for (int l = 0; l < n; l++)
            prune_group(&layers[l], 1, layers[l].numel, prune_count(rate, layers[l].numel), scratch);
    }
    free(scratch);
    return 0;
}
