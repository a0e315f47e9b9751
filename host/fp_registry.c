/* host/fp_registry.c — the fingerprint registry file: JSON written 0600 (it says who holds which
 * fingerprint), read back with every field checked, since a registry is handed to `fp auth`
 * and `predict` as input. */
#include "fingerprint.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private_file.h"

#define REGISTRY_FORMAT "dnnguard-fp-registry-1"

/* the shortest decimal text that reads back as the same float (0.01, not 0.00999999978) */
static void float_text(float v, char *num, size_t len) {
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(num, len, "%.*g", digits, (double)v);
        if (strtof(num, NULL) == v) return;
    }
}

static void add_float(cJSON *obj, const char *name, float v) {
    char num[32];
    float_text(v, num, sizeof num);
    cJSON_AddRawToObject(obj, name, num);
}

static cJSON *float_array(const float *v, int n) {
    cJSON *a = cJSON_CreateArray();
    char num[32];
    for (int i = 0; i < n; i++) {
        float_text(v[i], num, sizeof num);
        cJSON_AddItemToArray(a, cJSON_CreateRaw(num));
    }
    return a;
}

int dg_fp_registry_write(const dg_fp_registry *r, const char *path, char *err, size_t err_len) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", REGISTRY_FORMAT);
    cJSON_AddStringToObject(root, "net", r->net);
    cJSON_AddStringToObject(root, "data", r->data);
    cJSON_AddStringToObject(root, "split", r->split);
    cJSON_AddStringToObject(root, "model_sha256", r->model_sha256);
    int shape[3] = {r->c, r->h, r->w};
    cJSON_AddItemToObject(root, "shape", cJSON_CreateIntArray(shape, 3));
    cJSON_AddNumberToObject(root, "classes", r->classes);
    cJSON_AddItemToObject(root, "mean", float_array(r->mean, r->c));
    cJSON_AddItemToObject(root, "std", float_array(r->std, r->c));
    add_float(root, "eps", r->eps);
    add_float(root, "margin", r->margin);
    cJSON_AddItemToObject(root, "fingerprint_classes", cJSON_CreateIntArray(r->classes_fp, r->n_classes_fp));
    cJSON_AddItemToObject(root, "confidences", float_array(r->confs, r->n_confs));
    cJSON *users = cJSON_AddArrayToObject(root, "users");
    for (int i = 0; i < r->n_users; i++) {
        const dg_fp_user *u = &r->users[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", u->id);
        cJSON_AddNumberToObject(o, "class", u->cls);
        add_float(o, "confidence", u->conf);
        cJSON_AddNumberToObject(o, "source_index", u->source);
        cJSON_AddStringToObject(o, "file", u->file);
        cJSON_AddStringToObject(o, "sha256", u->sha256);
        add_float(o, "l2", u->l2);
        add_float(o, "confidence_at_issue", u->p_issue);
        cJSON_AddItemToArray(users, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    int rc = dg_write_private_text(path, text, err, err_len);
    cJSON_free(text);
    return rc;
}

/* field readers: 0 ok, -1 wrong */
static int get_int(const cJSON *obj, const char *name, long lo, long hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi) ||
        v->valuedouble != floor(v->valuedouble))
        return -1;
    *out = (int)v->valuedouble;
    return 0;
}
static int get_float(const cJSON *v, double lo, double hi, float *out) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) return -1;
    *out = (float)v->valuedouble;
    return 0;
}
static int get_string(const cJSON *obj, const char *name, char *out, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) return -1;
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}
static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}
/* a file name inside the registry's folder: no path separators, no leading dot */
static int is_plain_name(const char *s) { return s[0] && s[0] != '.' && !strchr(s, '/') && !strchr(s, '\\'); }

int dg_fp_registry_parse(const char *json, size_t len, const char *name, dg_fp_registry *r, char *err,
                         size_t err_len) {
    memset(r, 0, sizeof *r);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    const char *why = NULL;
    while (root && end < json + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) end++;
    if (root && end != json + len) { /* one document and nothing after it */
        cJSON_Delete(root);
        root = NULL;
    }
    char format[64];
    if (!root) {
        snprintf(err, err_len, "%s: not a JSON document", name);
        return -1;
    }
    if (!cJSON_IsObject(root) || get_string(root, "format", format, sizeof format) != 0 ||
        strcmp(format, REGISTRY_FORMAT) != 0) {
        why = "not a dnnguard fingerprint registry (format \"" REGISTRY_FORMAT "\")";
        goto done;
    }
    if (get_string(root, "net", r->net, sizeof r->net) || get_string(root, "data", r->data, sizeof r->data) ||
        get_string(root, "split", r->split, sizeof r->split) ||
        get_string(root, "model_sha256", r->model_sha256, sizeof r->model_sha256) || !is_hex64(r->model_sha256) ||
        (strcmp(r->split, "test") != 0 && strcmp(r->split, "train") != 0)) {
        why = "\"net\", \"data\", \"split\" (test or train) and \"model_sha256\" (64 hex digits) must be strings";
        goto done;
    }
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(root, "shape");
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != 3) {
        why = "\"shape\" must be [C, H, W]";
        goto done;
    }
    int dims[3];
    for (int d = 0; d < 3; d++) {
        const cJSON *v = cJSON_GetArrayItem(shape, d);
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
            v->valuedouble > (d ? 4096 : 3)) {
            why = "\"shape\" must be [C ≤ 3, H ≤ 4096, W ≤ 4096], positive integers";
            goto done;
        }
        dims[d] = (int)v->valuedouble;
    }
    r->c = dims[0], r->h = dims[1], r->w = dims[2];
    if (get_int(root, "classes", 2, DG_FP_MAX_CLASSES, &r->classes) != 0) {
        why = "\"classes\" must be an integer from 2 to 1000";
        goto done;
    }
    const char *norm[2] = {"mean", "std"};
    for (int k = 0; k < 2; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, norm[k]);
        float *dst = k ? r->std : r->mean;
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != r->c) {
            why = "\"mean\" and \"std\" must hold one number per channel";
            goto done;
        }
        for (int ch = 0; ch < r->c; ch++)
            if (get_float(cJSON_GetArrayItem(a, ch), k ? 1e-6 : -1e6, 1e6, &dst[ch]) != 0) {
                why = "\"mean\" must be finite and \"std\" positive";
                goto done;
            }
    }
    if (get_float(cJSON_GetObjectItemCaseSensitive(root, "eps"), 1e-6, 0.5, &r->eps) != 0 ||
        get_float(cJSON_GetObjectItemCaseSensitive(root, "margin"), 0.0, 0.5, &r->margin) != 0 || r->margin > r->eps) {
        why = "\"eps\" must lie in (0, 0.5] and \"margin\" in [0, eps]";
        goto done;
    }
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(root, "fingerprint_classes");
    const cJSON *confs = cJSON_GetObjectItemCaseSensitive(root, "confidences");
    if (!cJSON_IsArray(cls) || cJSON_GetArraySize(cls) < 1 || cJSON_GetArraySize(cls) > r->classes ||
        !cJSON_IsArray(confs) || cJSON_GetArraySize(confs) < 1 || cJSON_GetArraySize(confs) > DG_FP_MAX_CONFS) {
        why = "\"fingerprint_classes\" and \"confidences\" must be non-empty arrays";
        goto done;
    }
    r->n_classes_fp = cJSON_GetArraySize(cls);
    for (int i = 0; i < r->n_classes_fp; i++) {
        const cJSON *v = cJSON_GetArrayItem(cls, i);
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
            v->valuedouble >= r->classes || (i && v->valuedouble <= r->classes_fp[i - 1])) {
            why = "\"fingerprint_classes\" must be increasing classes of the net";
            goto done;
        }
        r->classes_fp[i] = (int)v->valuedouble;
    }
    r->n_confs = cJSON_GetArraySize(confs);
    for (int i = 0; i < r->n_confs; i++)
        if (get_float(cJSON_GetArrayItem(confs, i), r->eps, 1.0 - r->eps, &r->confs[i]) != 0 ||
            (i && !dg_fp_windows_apart(r->confs[i - 1], r->confs[i], r->eps))) {
            why = "\"confidences\" must increase with windows (c ± eps) inside (0, 1) that do not overlap";
            goto done;
        }
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(root, "users");
    int n = cJSON_IsArray(users) ? cJSON_GetArraySize(users) : -1;
    if (n < 0 || n > r->n_classes_fp * r->n_confs) {
        why = "\"users\" must be an array of at most (fingerprint classes × confidences) users";
        goto done;
    }
    r->users = calloc((size_t)(n ? n : 1), sizeof *r->users);
    if (!r->users) {
        why = "out of memory";
        goto done;
    }
    r->n_users = n;
    for (int i = 0; i < n; i++) {
        const cJSON *o = cJSON_GetArrayItem(users, i);
        dg_fp_user *u = &r->users[i];
        int first_id = i ? r->users[i - 1].id + 1 : 0;
        if (!cJSON_IsObject(o) || get_int(o, "id", first_id, r->n_classes_fp * r->n_confs - 1, &u->id) || get_int(o, "class", 0, r->classes - 1, &u->cls) ||
            get_float(cJSON_GetObjectItemCaseSensitive(o, "confidence"), 0.0, 1.0, &u->conf) ||
            get_int(o, "source_index", 0, 1 << 30, &u->source) || get_string(o, "file", u->file, sizeof u->file) ||
            !is_plain_name(u->file) || get_string(o, "sha256", u->sha256, sizeof u->sha256) || !is_hex64(u->sha256) ||
            get_float(cJSON_GetObjectItemCaseSensitive(o, "l2"), 0.0, 1e6, &u->l2) ||
            get_float(cJSON_GetObjectItemCaseSensitive(o, "confidence_at_issue"), 0.0, 1.0, &u->p_issue)) {
            why = "a user lacks a field or has one out of range (ids increasing, class, confidence, source_index, "
                  "file without a path, sha256, l2, confidence_at_issue)";
            goto done;
        }
        /* the identity must be the one the allocation gives: class index · T + confidence index */
        int ci = u->id / r->n_confs, cj = u->id % r->n_confs;
        if (r->classes_fp[ci] != u->cls || r->confs[cj] != u->conf) {
            why = "a user's class and confidence are not the ones its id allocates";
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    if (why) {
        snprintf(err, err_len, "%s: %s", name, why);
        dg_fp_registry_free(r);
        return -1;
    }
    return 0;
}

int dg_fp_registry_read(const char *path, dg_fp_registry *r, char *err, size_t err_len) {
    size_t len;
    char *text = dg_read_small_text(path, 64u << 20, &len, err, err_len);
    if (!text) {
        memset(r, 0, sizeof *r);
        return -1;
    }
    int rc = dg_fp_registry_parse(text, len, path, r, err, err_len);
    free(text);
    return rc;
}

int dg_fp_find_user(const dg_fp_registry *r, int id) {
    int lo = 0, hi = r->n_users - 1; /* ids increase */
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (r->users[mid].id == id) return mid;
        if (r->users[mid].id < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

void dg_fp_registry_free(dg_fp_registry *r) {
    free(r->users);
    r->users = NULL;
    r->n_users = 0;
}
