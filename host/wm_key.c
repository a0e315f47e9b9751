/* host/wm_key.c — watermark keys: generation from the clean layer (largest-norm filter, seeded
 * positions, the linear digit map) and the JSON key file, written 0600 and read with every field
 * checked. No device memory, no training. */
#include "watermark.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/math/rng.h"
#include "json_fields.h"
#include "private_file.h"

#define KEY_FORMAT "dnnguard-wmkey-1"

/* The digit map of a filter's range: [lo, hi] onto [0, 9], as keygen writes it and the reader demands. */
static void digit_map(float lo, float hi, float *a, float *b) {
    *a = 9.0f / (hi - lo);
    *b = -*a * lo;
}

/* The n distinct positions seed draws among per_filter weights: the first n steps of a Fisher–Yates
 * shuffle. Only the entries the n swaps touch are kept (moved[] holds index → value for at most 2n
 * of them), so a hostile key's huge filter costs no memory; keygen and the reader share it. */
static void draw_positions(uint64_t seed, long per_filter, int n, int32_t *out) {
    long moved_at[2 * DG_WM_MAX_DIGITS]; /* 96 KiB of stack at most */
    int32_t moved_to[2 * DG_WM_MAX_DIGITS];
    int n_moved = 0;
    uint64_t stream = dg_rng_stream(seed, 0x77a7e2ull);
    for (int k = 0; k < n; k++) {
        long j = (long)k + (long)(dg_rng_u64(stream, (uint64_t)k) % (uint64_t)(per_filter - k));
        int32_t at_k = (int32_t)k, at_j = (int32_t)j; /* an entry no swap has touched holds its index */
        int slot_k = -1, slot_j = -1;
        for (int m = 0; m < n_moved; m++) {
            if (moved_at[m] == k) slot_k = m, at_k = moved_to[m];
            if (moved_at[m] == j) slot_j = m, at_j = moved_to[m];
        }
        if (slot_k < 0) slot_k = n_moved, moved_at[n_moved++] = k;
        if (slot_j < 0 && j != k) slot_j = n_moved, moved_at[n_moved++] = j;
        moved_to[slot_k] = at_j; /* swap entries k and j */
        if (j != k) moved_to[slot_j] = at_k;
        out[k] = at_j;
    }
}

int dg_wm_keygen(const float *w, const int shape[4], const char *layer, const char *digits, uint64_t seed,
                 dg_wm_key *key, char *err, size_t err_len) {
    memset(key, 0, sizeof *key);
    size_t n = strlen(digits);
    long per_filter = (long)shape[1] * shape[2] * shape[3];
    if (n == 0) {
        snprintf(err, err_len, "the watermark needs at least one digit");
        return -1;
    }
    for (size_t k = 0; k < n; k++)
        if (digits[k] < '0' || digits[k] > '9') {
            snprintf(err, err_len, "watermark digit %zu is '%c': digits must be 0-9", k + 1, digits[k]);
            return -1;
        }
    if ((long)n > per_filter || n > DG_WM_MAX_DIGITS) {
        snprintf(err, err_len, "%zu digits do not fit: a filter of %s holds %ld weights (I·R·S)%s", n, layer,
                 per_filter, n > DG_WM_MAX_DIGITS ? ", and a key holds at most 4096 digits" : "");
        return -1;
    }
    for (long j = 0; j < shape[0] * per_filter; j++)
        if (!isfinite(w[j])) {
            snprintf(err, err_len, "%s[%ld] is %s: a key needs a clean, trained layer", layer, j,
                     isnan(w[j]) ? "NaN" : "infinite");
            return -1;
        }
    /* the filter with the largest L2 norm (the lowest index among equals) */
    double best = -1.0;
    for (int o = 0; o < shape[0]; o++) {
        double norm = 0.0;
        for (long j = 0; j < per_filter; j++) norm += (double)w[o * per_filter + j] * w[o * per_filter + j];
        if (norm > best) best = norm, key->filter = o;
    }
    const float *f = w + key->filter * per_filter;
    float lo = f[0], hi = f[0];
    for (long j = 1; j < per_filter; j++) lo = f[j] < lo ? f[j] : lo, hi = f[j] > hi ? f[j] : hi;
    if (!(hi > lo)) {
        snprintf(err, err_len, "filter %d of %s is constant: no range to map the digits onto", key->filter, layer);
        return -1;
    }
    float a, b;
    digit_map(lo, hi, &a, &b);
    if (!(isfinite(a) && a > 0.0f && isfinite(b))) { /* a range too small or too large for floats */
        snprintf(err, err_len, "filter %d of %s spans [%g, %g], which gives no finite map onto the digits",
                 key->filter, layer, (double)lo, (double)hi);
        return -1;
    }
    draw_positions(seed, per_filter, (int)n, key->positions);
    for (size_t k = 0; k < n; k++) key->digits[k] = (uint8_t)(digits[k] - '0');
    snprintf(key->layer, sizeof key->layer, "%s", layer);
    memcpy(key->shape, shape, sizeof key->shape);
    key->n = (int)n;
    key->w_min = lo;
    key->w_max = hi;
    key->a = a;
    key->b = b;
    key->seed = seed;
    return 0;
}

/* ---- the file ---- */

int dg_wm_key_write(const dg_wm_key *key, const char *path, char *err, size_t err_len) {
    cJSON *root = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *pos = cJSON_CreateArray();
    char digits[DG_WM_MAX_DIGITS + 1], num[64];
    for (int k = 0; k < key->n; k++) digits[k] = (char)('0' + key->digits[k]);
    digits[key->n] = 0;
    cJSON_AddStringToObject(root, "format", KEY_FORMAT);
    cJSON_AddStringToObject(root, "layer", key->layer);
    for (int d = 0; d < 4; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber(key->shape[d]));
    cJSON_AddItemToObject(root, "shape", shape);
    cJSON_AddNumberToObject(root, "filter", key->filter);
    cJSON_AddStringToObject(root, "digits", digits);
    for (int k = 0; k < key->n; k++) cJSON_AddItemToArray(pos, cJSON_CreateNumber(key->positions[k]));
    cJSON_AddItemToObject(root, "positions", pos);
    /* float32 values printed with 9 significant digits read back to the same float */
    const struct { const char *name; float v; } reals[] = {
        {"a", key->a}, {"b", key->b}, {"w_min", key->w_min}, {"w_max", key->w_max}};
    for (size_t i = 0; i < sizeof reals / sizeof *reals; i++) {
        snprintf(num, sizeof num, "%.9g", (double)reals[i].v);
        cJSON_AddRawToObject(root, reals[i].name, num);
    }
    snprintf(num, sizeof num, "%llu", (unsigned long long)key->seed);
    cJSON_AddStringToObject(root, "seed", num); /* a string: JSON numbers lose 64-bit integers */
    cJSON_AddStringToObject(root, "model_sha256", key->model_sha256);
    return dg_json_write_private(root, path, err, err_len);
}

static int json_int(const cJSON *v, long lo, long hi, long *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) return -1;
    *out = (long)d;
    return 0;
}

static int json_float(const cJSON *v, float *out) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 3.0e38) return -1;
    *out = (float)v->valuedouble;
    return 0;
}

int dg_wm_key_parse(const char *json, size_t len, const char *name, dg_wm_key *key, char *err, size_t err_len) {
    memset(key, 0, sizeof *key);
    cJSON *root = dg_json_open(json, len, name, KEY_FORMAT, "watermark key", err, err_len);
    if (!root) return -1;
    int rc = -1;
    const char *why = NULL;
    const cJSON *layer = cJSON_GetObjectItemCaseSensitive(root, "layer");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(root, "shape");
    const cJSON *filter = cJSON_GetObjectItemCaseSensitive(root, "filter");
    const cJSON *digits = cJSON_GetObjectItemCaseSensitive(root, "digits");
    const cJSON *positions = cJSON_GetObjectItemCaseSensitive(root, "positions");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(root, "seed");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(root, "model_sha256");
    long v;
    if (!cJSON_IsString(layer) || !layer->valuestring[0] || strlen(layer->valuestring) >= sizeof key->layer) {
        why = "\"layer\" must be a tensor name";
        goto done;
    }
    snprintf(key->layer, sizeof key->layer, "%s", layer->valuestring);
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != 4) {
        why = "\"shape\" must be the conv weight's [O, I, R, S]";
        goto done;
    }
    double numel = 1.0;
    for (int d = 0; d < 4; d++) {
        if (json_int(cJSON_GetArrayItem(shape, d), 1, 1L << 24, &v) != 0) {
            why = "\"shape\" entries must be integers from 1 to 2^24";
            goto done;
        }
        key->shape[d] = (int)v;
        numel *= (double)v;
    }
    if (numel > 2147483647.0) {
        why = "\"shape\" describes more than 2^31 weights";
        goto done;
    }
    long per_filter = (long)key->shape[1] * key->shape[2] * key->shape[3];
    if (json_int(filter, 0, key->shape[0] - 1, &v) != 0) {
        why = "\"filter\" must be an output filter index inside the shape";
        goto done;
    }
    key->filter = (int)v;
    if (!cJSON_IsString(digits)) {
        why = "\"digits\" must be a string of digits";
        goto done;
    }
    size_t n = strlen(digits->valuestring);
    if (n == 0 || n > DG_WM_MAX_DIGITS || (long)n > per_filter) {
        why = "\"digits\" must hold 1 to min(4096, I·R·S) digits";
        goto done;
    }
    key->n = (int)n;
    for (size_t k = 0; k < n; k++) {
        char c = digits->valuestring[k];
        if (c < '0' || c > '9') {
            why = "\"digits\" may hold only 0-9";
            goto done;
        }
        key->digits[k] = (uint8_t)(c - '0');
    }
    if (!cJSON_IsArray(positions) || cJSON_GetArraySize(positions) != (int)n) {
        why = "\"positions\" must be an array with one position per digit";
        goto done;
    }
    for (size_t k = 0; k < n; k++) {
        if (json_int(cJSON_GetArrayItem(positions, (int)k), 0, per_filter - 1, &v) != 0) {
            why = "\"positions\" must be integers inside the filter (0 ≤ p < I·R·S)";
            goto done;
        }
        key->positions[k] = (int32_t)v;
        for (size_t j = 0; j < k; j++)
            if (key->positions[j] == key->positions[k]) {
                why = "\"positions\" must be distinct";
                goto done;
            }
    }
    if (json_float(cJSON_GetObjectItemCaseSensitive(root, "a"), &key->a) != 0 || !(key->a > 0.0f) ||
        json_float(cJSON_GetObjectItemCaseSensitive(root, "b"), &key->b) != 0 ||
        json_float(cJSON_GetObjectItemCaseSensitive(root, "w_min"), &key->w_min) != 0 ||
        json_float(cJSON_GetObjectItemCaseSensitive(root, "w_max"), &key->w_max) != 0 || !(key->w_max > key->w_min)) {
        why = "\"a\" (> 0), \"b\", \"w_min\" < \"w_max\" must be finite numbers";
        goto done;
    }
    { /* the map is the one keygen derives from the range; any other would read any layer as chosen digits */
        float a, b;
        digit_map(key->w_min, key->w_max, &a, &b);
        if (!(fabsf(key->a - a) <= 1e-6f * a && fabsf(key->b - b) <= 1e-6f * fmaxf(1.0f, fabsf(b)))) {
            why = "\"a\" and \"b\" must be 9 / (w_max - w_min) and -a * w_min, the map of [w_min, w_max] onto [0, 9]";
            goto done;
        }
    }
    char *end = NULL;
    errno = 0;
    if (cJSON_IsString(seed)) key->seed = strtoull(seed->valuestring, &end, 10);
    if (!cJSON_IsString(seed) || errno || end == seed->valuestring || *end || seed->valuestring[0] == '-') {
        why = "\"seed\" must be a decimal string (the positions are drawn from it)";
        goto done;
    }
    { /* the positions are the seed's draw: chosen by hand, they could sit on any weights that
       * happen to read the digits, and any model would "carry" the watermark */
        int32_t drawn[DG_WM_MAX_DIGITS];
        draw_positions(key->seed, per_filter, key->n, drawn);
        if (memcmp(drawn, key->positions, sizeof(int32_t) * (size_t)key->n) != 0) {
            why = "\"positions\" are not the ones \"seed\" draws (the key was edited)";
            goto done;
        }
    }
    if (!cJSON_IsString(sha) || !dg_json_is_hex64(sha->valuestring)) {
        why = "\"model_sha256\" must be the clean model's SHA-256, 64 lowercase hex digits";
        goto done;
    }
    snprintf(key->model_sha256, sizeof key->model_sha256, "%s", sha->valuestring);
    rc = 0;
done:
    if (why) snprintf(err, err_len, "%s: %s", name, why);
    cJSON_Delete(root);
    return rc;
}

int dg_wm_key_read(const char *path, dg_wm_key *key, char *err, size_t err_len) {
    size_t len;
    char *text = dg_read_small_text(path, 1 << 20, &len, err, err_len); /* a key is small */
    if (!text) return -1;
    int rc = dg_wm_key_parse(text, len, path, key, err, err_len);
    free(text);
    return rc;
}
