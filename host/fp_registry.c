/* host/fp_registry.c — the fingerprint registry file: JSON written 0600 (it says who holds which
 * fingerprint), read back with every field checked, since a registry is handed to `fp auth`
 * and `predict` as input. */
#include "fingerprint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_fields.h"
#include "private_file.h"

#define REGISTRY_FORMAT "dnnguard-fp-registry-1"
#define TEXT_OF_(x) #x
#define TEXT_OF(x) TEXT_OF_(x) /* a macro's value as a string literal */

int dg_fp_registry_write(const dg_fp_registry *r, const char *path, char *err, size_t err_len) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", REGISTRY_FORMAT);
    cJSON_AddStringToObject(root, "net", r->net);
    cJSON_AddStringToObject(root, "data", r->data);
    cJSON_AddStringToObject(root, "split", r->split);
    cJSON_AddStringToObject(root, "model_sha256", r->model_sha256);
    dg_json_add_input(root, r->c, r->h, r->w, r->classes, r->mean, r->std);
    dg_json_add_float(root, "eps", r->eps);
    dg_json_add_float(root, "margin", r->margin);
    cJSON_AddItemToObject(root, "fingerprint_classes", cJSON_CreateIntArray(r->classes_fp, r->n_classes_fp));
    cJSON_AddItemToObject(root, "confidences", dg_json_float_array(r->confs, r->n_confs));
    cJSON *users = cJSON_AddArrayToObject(root, "users");
    for (int i = 0; i < r->n_users; i++) {
        const dg_fp_user *u = &r->users[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", u->id);
        cJSON_AddNumberToObject(o, "class", u->cls);
        dg_json_add_float(o, "confidence", u->conf);
        cJSON_AddNumberToObject(o, "source_index", u->source);
        cJSON_AddStringToObject(o, "file", u->file);
        cJSON_AddStringToObject(o, "sha256", u->sha256);
        dg_json_add_float(o, "l2", u->l2);
        dg_json_add_float(o, "confidence_at_issue", u->p_issue);
        cJSON_AddItemToArray(users, o);
    }
    return dg_json_write_private(root, path, err, err_len);
}

int dg_fp_registry_parse(const char *json, size_t len, const char *name, dg_fp_registry *r, char *err,
                         size_t err_len) {
    memset(r, 0, sizeof *r);
    cJSON *root = dg_json_open(json, len, name, REGISTRY_FORMAT, "fingerprint registry", err, err_len);
    const char *why = NULL;
    if (!root) return -1;
    if (dg_json_get_string(root, "net", r->net, sizeof r->net) ||
        dg_json_get_string(root, "data", r->data, sizeof r->data) ||
        dg_json_get_string(root, "split", r->split, sizeof r->split) ||
        dg_json_get_string(root, "model_sha256", r->model_sha256, sizeof r->model_sha256) ||
        !dg_json_is_hex64(r->model_sha256) ||
        (strcmp(r->split, "test") != 0 && strcmp(r->split, "train") != 0)) {
        why = "\"net\", \"data\", \"split\" (test or train) and \"model_sha256\" (64 hex digits) must be strings";
        goto done;
    }
    if (dg_json_get_input(root, DG_FP_MAX_CLASSES, &r->c, &r->h, &r->w, &r->classes, r->mean, r->std, &why) != 0)
        goto done;
    if (dg_json_get_float(cJSON_GetObjectItemCaseSensitive(root, "eps"), 1e-6, 0.5, &r->eps) != 0 ||
        dg_json_get_float(cJSON_GetObjectItemCaseSensitive(root, "margin"), 0.0, 0.5, &r->margin) != 0 ||
        r->margin > r->eps) {
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
        if (dg_json_get_float(cJSON_GetArrayItem(confs, i), r->eps, 1.0 - r->eps, &r->confs[i]) != 0 ||
            (i && !dg_fp_windows_apart(r->confs[i - 1], r->confs[i], r->eps))) {
            why = "\"confidences\" must increase with windows (c ± eps) inside (0, 1) that do not overlap";
            goto done;
        }
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(root, "users");
    int n = cJSON_IsArray(users) ? cJSON_GetArraySize(users) : -1;
    if (n < 0 || n > r->n_classes_fp * r->n_confs || n > DG_FP_MAX_USERS) {
        why = "\"users\" must be an array of at most (fingerprint classes × confidences) users, and of at most "
              TEXT_OF(DG_FP_MAX_USERS) " (what fp issue writes)";
        goto done;
    }
    r->users = calloc((size_t)(n ? n : 1), sizeof *r->users);
    if (!r->users) {
        why = "out of memory";
        goto done;
    }
    r->n_users = n;
    const cJSON *o = users->child; /* walked in order: cJSON_GetArrayItem(i) starts from the head each time */
    for (int i = 0; i < n; i++, o = o->next) {
        dg_fp_user *u = &r->users[i];
        int first_id = i ? r->users[i - 1].id + 1 : 0;
        if (!cJSON_IsObject(o) || dg_json_get_int(o, "id", first_id, dg_fp_identity_count(r) - 1, &u->id) ||
            dg_json_get_int(o, "class", 0, r->classes - 1, &u->cls) ||
            dg_json_get_float(cJSON_GetObjectItemCaseSensitive(o, "confidence"), 0.0, 1.0, &u->conf) ||
            dg_json_get_int(o, "source_index", 0, 1 << 30, &u->source) ||
            dg_json_get_string(o, "file", u->file, sizeof u->file) || !dg_json_is_plain_name(u->file, 0) ||
            dg_json_get_string(o, "sha256", u->sha256, sizeof u->sha256) || !dg_json_is_hex64(u->sha256) ||
            dg_json_get_float(cJSON_GetObjectItemCaseSensitive(o, "l2"), 0.0, 1e6, &u->l2) ||
            dg_json_get_float(cJSON_GetObjectItemCaseSensitive(o, "confidence_at_issue"), 0.0, 1.0, &u->p_issue)) {
            why = "a user lacks a field or has one out of range (ids increasing, class, confidence, source_index, "
                  "file without a path, sha256, l2, confidence_at_issue)";
            goto done;
        }
        /* the identity must be the one the allocation gives: class · T + confidence index, the class
         * one of L_fp */
        int t = u->id / r->n_confs, cj = u->id % r->n_confs;
        if (!dg_fp_is_fp_class(r, t) || t != u->cls || r->confs[cj] != u->conf) {
            why = "a user's class and confidence are not the ones its id allocates (id = class · T + j, the "
                  "class one of fingerprint_classes)";
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
