/* host/infip_manifest.c — the InFIP reference folder's manifest.json: written 0600 (it names the
 * owner's key images), read back with every field checked, since a reference folder is handed to
 * `infip verify` as input. */
#include "infip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_fields.h"
#include "private_file.h"
#include "sha256.h"

#define MANIFEST_FORMAT "dnnguard-infip-1"
#define MAX_CLASSES 100000

int dg_infip_manifest_write(const dg_infip_manifest *m, const char *path, char *err, size_t err_len) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", MANIFEST_FORMAT);
    cJSON_AddStringToObject(root, "net", m->net);
    cJSON_AddStringToObject(root, "data", m->data);
    cJSON_AddStringToObject(root, "split", m->split);
    cJSON_AddStringToObject(root, "model_sha256", m->model_sha256);
    dg_json_add_input(root, m->c, m->h, m->w, m->classes, m->mean, m->std);
    dg_json_add_float(root, "lambda", m->lambda);
    dg_json_add_float(root, "stabilizer", m->eps);
    cJSON_AddStringToObject(root, "inject", m->inject_logit ? "logit" : "one");
    cJSON_AddStringToObject(root, "seed", m->seed);
    if (m->batch > 0) cJSON_AddNumberToObject(root, "batch", m->batch);
    cJSON_AddStringToObject(root, "relevance", DG_INFIP_RELEVANCE);
    cJSON *keys = cJSON_AddArrayToObject(root, "keys");
    for (int i = 0; i < m->n_keys; i++) {
        const dg_infip_key *k = &m->keys[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "index", k->index);
        cJSON_AddNumberToObject(o, "label", k->label);
        cJSON_AddNumberToObject(o, "predicted", k->predicted);
        cJSON_AddStringToObject(o, "key", k->key_file);
        cJSON_AddStringToObject(o, "key_sha256", k->key_sha256);
        cJSON_AddStringToObject(o, "fingerprint", k->fp_file);
        cJSON_AddStringToObject(o, "fingerprint_sha256", k->fp_sha256);
        dg_json_add_float(o, "relevance_sum", k->relevance_sum);
        cJSON_AddItemToArray(keys, o);
    }
    return dg_json_write_private(root, path, err, err_len);
}

/* a decimal seed that fits 64 bits */
static int is_seed(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 20) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return n < 20 || strcmp(s, "18446744073709551615") <= 0;
}

static int by_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* whether two keys share a data-set index (1 also when out of memory: refuse rather than guess) */
static int has_repeats(const dg_infip_key *keys, int n) {
    int *idx = malloc(sizeof(int) * (size_t)n), repeat = 0;
    if (!idx) return 1;
    for (int i = 0; i < n; i++) idx[i] = keys[i].index;
    qsort(idx, (size_t)n, sizeof *idx, by_int);
    for (int i = 1; i < n && !repeat; i++) repeat = idx[i] == idx[i - 1];
    free(idx);
    return repeat;
}

int dg_infip_manifest_parse(const char *json, size_t len, const char *name, dg_infip_manifest *m, char *err,
                            size_t err_len) {
    memset(m, 0, sizeof *m);
    cJSON *root = dg_json_open(json, len, name, MANIFEST_FORMAT, "InFIP manifest", err, err_len);
    const char *why = NULL;
    char inject[16], relevance[64];
    if (!root) return -1;
    if (dg_json_get_string(root, "net", m->net, sizeof m->net) ||
        dg_json_get_string(root, "data", m->data, sizeof m->data) ||
        dg_json_get_string(root, "split", m->split, sizeof m->split) ||
        dg_json_get_string(root, "model_sha256", m->model_sha256, sizeof m->model_sha256) ||
        !dg_json_is_hex64(m->model_sha256) || (strcmp(m->split, "test") != 0 && strcmp(m->split, "train") != 0)) {
        why = "\"net\", \"data\", \"split\" (test or train) and \"model_sha256\" (64 hex digits) must be strings";
        goto done;
    }
    if (dg_json_get_input(root, MAX_CLASSES, &m->c, &m->h, &m->w, &m->classes, m->mean, m->std, &why) != 0) goto done;
    if (dg_json_get_float(cJSON_GetObjectItemCaseSensitive(root, "lambda"), 1e-12, 1e12, &m->lambda) != 0 ||
        dg_json_get_float(cJSON_GetObjectItemCaseSensitive(root, "stabilizer"), 0.0, 1.0, &m->eps) != 0) {
        why = "\"lambda\" must be a positive number and \"stabilizer\" a number in [0, 1]";
        goto done;
    }
    if (dg_json_get_string(root, "inject", inject, sizeof inject) != 0 ||
        (strcmp(inject, "one") != 0 && strcmp(inject, "logit") != 0)) {
        why = "\"inject\" must be \"one\" or \"logit\"";
        goto done;
    }
    m->inject_logit = strcmp(inject, "logit") == 0;
    if (dg_json_get_string(root, "seed", m->seed, sizeof m->seed) != 0 || !is_seed(m->seed)) {
        why = "\"seed\" must be a decimal string of a 64-bit number";
        goto done;
    }
    m->batch = 0; /* optional: references written before it have none */
    if (cJSON_GetObjectItemCaseSensitive(root, "batch") &&
        dg_json_get_int(root, "batch", 1, DG_INFIP_MAX_KEYS, &m->batch) != 0) {
        why = "\"batch\" must be a whole number of keys";
        goto done;
    }
    if (dg_json_get_string(root, "relevance", relevance, sizeof relevance) != 0 ||
        strcmp(relevance, DG_INFIP_RELEVANCE) != 0) {
        why = "\"relevance\" must name " DG_INFIP_RELEVANCE;
        goto done;
    }
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
    int n = cJSON_IsArray(keys) ? cJSON_GetArraySize(keys) : -1;
    if (n < 1 || n > DG_INFIP_MAX_KEYS) {
        why = "\"keys\" must be an array of 1 to 100000 keys";
        goto done;
    }
    if (!(m->keys = calloc((size_t)n, sizeof *m->keys))) {
        why = "out of memory";
        goto done;
    }
    m->n_keys = n;
    for (int i = 0; i < n; i++) {
        const cJSON *o = cJSON_GetArrayItem(keys, i);
        dg_infip_key *k = &m->keys[i];
        if (!cJSON_IsObject(o) || dg_json_get_int(o, "index", 0, 1 << 30, &k->index) ||
            dg_json_get_int(o, "label", 0, m->classes - 1, &k->label) ||
            dg_json_get_int(o, "predicted", 0, m->classes - 1, &k->predicted) ||
            dg_json_get_string(o, "key", k->key_file, sizeof k->key_file) || !dg_json_is_plain_name(k->key_file, 1) ||
            dg_json_get_string(o, "key_sha256", k->key_sha256, sizeof k->key_sha256) ||
            !dg_json_is_hex64(k->key_sha256) ||
            dg_json_get_string(o, "fingerprint", k->fp_file, sizeof k->fp_file) ||
            !dg_json_is_plain_name(k->fp_file, 1) ||
            dg_json_get_string(o, "fingerprint_sha256", k->fp_sha256, sizeof k->fp_sha256) ||
            !dg_json_is_hex64(k->fp_sha256) ||
            dg_json_get_float(cJSON_GetObjectItemCaseSensitive(o, "relevance_sum"), -1e30, 1e30, &k->relevance_sum)) {
            why = "a key lacks a field or has one out of range (index, label and predicted below classes, key and "
                  "fingerprint files inside the folder, their sha256, relevance_sum)";
            goto done;
        }
    }
    if (has_repeats(m->keys, n)) why = "two keys have the same index";
done:
    cJSON_Delete(root);
    if (why) {
        snprintf(err, err_len, "%s: %s", name, why);
        dg_infip_manifest_free(m);
        return -1;
    }
    return 0;
}

int dg_infip_manifest_read(const char *path, dg_infip_manifest *m, char *err, size_t err_len) {
    size_t len;
    char *text = dg_read_small_text(path, 256u << 20, &len, err, err_len);
    if (!text) {
        memset(m, 0, sizeof *m);
        return -1;
    }
    int rc = dg_infip_manifest_parse(text, len, path, m, err, err_len);
    if (rc == 0) { /* what a calibration names the reference by */
        dg_sha256 h;
        dg_sha256_init(&h);
        dg_sha256_update(&h, text, len);
        dg_sha256_final(&h, m->file_sha256);
    }
    free(text);
    return rc;
}

void dg_infip_manifest_free(dg_infip_manifest *m) {
    free(m->keys);
    m->keys = NULL;
    m->n_keys = 0;
}
