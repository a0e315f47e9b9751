/* host/json_fields.c — shared JSON field writing and checked reading (see json_fields.h). */
#include "json_fields.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private_file.h"

void dg_json_float_text(float v, char *num, size_t len) {
    if (!isfinite(v)) {
        snprintf(num, len, "null");
        return;
    }
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(num, len, "%.*g", digits, (double)v);
        if (strtof(num, NULL) == v) return;
    }
}

void dg_json_add_float(cJSON *obj, const char *name, float v) {
    char num[32];
    dg_json_float_text(v, num, sizeof num);
    cJSON_AddRawToObject(obj, name, num);
}

void dg_json_double_text(double v, char *num, size_t len) {
    snprintf(num, len, "null");
    for (int digits = 15; digits <= 17 && isfinite(v); digits++) {
        snprintf(num, len, "%.*g", digits, v);
        if (strtod(num, NULL) == v) return;
    }
}

void dg_json_add_double(cJSON *obj, const char *name, double v) {
    char num[40];
    dg_json_double_text(v, num, sizeof num);
    cJSON_AddRawToObject(obj, name, num);
}

cJSON *dg_json_float_array(const float *v, int n) {
    cJSON *a = cJSON_CreateArray();
    char num[32];
    for (int i = 0; i < n; i++) {
        dg_json_float_text(v[i], num, sizeof num);
        cJSON_AddItemToArray(a, cJSON_CreateRaw(num));
    }
    return a;
}

int dg_json_write_private(cJSON *root, const char *path, char *err, size_t err_len) {
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

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A member name that some object in the tree has twice, or NULL. cJSON keeps the first of two,
 * other readers the last: one file would say two things. *oom is set when out of memory. */
static const char *duplicate_name(const cJSON *node, int *oom) {
    int n = 0;
    const char *dup = NULL;
    for (const cJSON *c = node->child; c; c = c->next) n++;
    if (cJSON_IsObject(node) && n > 1) {
        const char **names = malloc(sizeof(char *) * (size_t)n);
        if (!names) {
            *oom = 1;
            return NULL;
        }
        int k = 0;
        for (const cJSON *c = node->child; c; c = c->next) names[k++] = c->string ? c->string : "";
        qsort(names, (size_t)n, sizeof *names, by_name);
        for (int i = 1; i < n && !dup; i++)
            if (strcmp(names[i - 1], names[i]) == 0) dup = names[i];
        free(names);
    }
    for (const cJSON *c = node->child; c && !dup && !*oom; c = c->next) dup = duplicate_name(c, oom);
    return dup;
}

cJSON *dg_json_parse_one(const char *text, size_t len) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    while (root && end < text + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) end++;
    if (root && end != text + len) { /* one document and nothing after it */
        cJSON_Delete(root);
        root = NULL;
    }
    return root;
}

/* Whether a JSON text escapes a NUL (\u0000): cJSON ends a string or a member name there, other
 * readers keep what follows, so "digits\u0000" would be a member cJSON calls "digits". */
static int has_nul_escape(const char *text, size_t len) {
    for (size_t i = 0; i + 1 < len; i++)
        if (text[i] == '\\') {
            if (text[i + 1] == 'u' && i + 5 < len && text[i + 2] == '0' && text[i + 3] == '0' && text[i + 4] == '0' &&
                text[i + 5] == '0')
                return 1;
            i++; /* the escaped character: \\u0000 in the text is a backslash, then u0000 */
        }
    return 0;
}

cJSON *dg_json_open(const char *text, size_t len, const char *name, const char *format, const char *what, char *err,
                    size_t err_len) {
    cJSON *root = dg_json_parse_one(text, len);
    if (!root) {
        snprintf(err, err_len, "%s: not a JSON document", name);
        return NULL;
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
    const char *twice = NULL;
    int oom = 0;
    if (has_nul_escape(text, len))
        snprintf(err, err_len, "%s: a string holds \\u0000 (cJSON would cut it there, other readers not)", name);
    else if ((twice = duplicate_name(root, &oom)) != NULL)
        snprintf(err, err_len, "%s: an object names \"%.60s\" twice", name, twice);
    else if (oom)
        snprintf(err, err_len, "%s: out of memory", name);
    else if (!cJSON_IsObject(root) || !cJSON_IsString(f) || strcmp(f->valuestring, format) != 0)
        snprintf(err, err_len, "%s: not a dnnguard %s (format \"%s\")", name, what, format);
    else
        return root;
    cJSON_Delete(root);
    return NULL;
}

int dg_json_get_int(const cJSON *obj, const char *name, long lo, long hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi) ||
        v->valuedouble != floor(v->valuedouble))
        return -1;
    *out = (int)v->valuedouble;
    return 0;
}

int dg_json_get_float(const cJSON *v, double lo, double hi, float *out) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) return -1;
    *out = (float)v->valuedouble;
    return 0;
}

int dg_json_get_double(const cJSON *v, double lo, double hi, double *out) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) return -1;
    *out = v->valuedouble;
    return 0;
}

int dg_json_get_string(const cJSON *obj, const char *name, char *out, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) return -1;
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

int dg_json_is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

int dg_json_is_plain_name(const char *s, int subfolders) {
    if (!s[0] || strchr(s, '\\')) return 0;
    const char *slash = strchr(s, '/');
    if (!slash) return s[0] != '.';
    /* one folder level: "dir/name", both parts plain */
    return subfolders && slash != s && s[0] != '.' && slash[1] && slash[1] != '.' && !strchr(slash + 1, '/');
}

void dg_json_add_input(cJSON *root, int c, int h, int w, int classes, const float *mean, const float *std) {
    int shape[3] = {c, h, w};
    cJSON_AddItemToObject(root, "shape", cJSON_CreateIntArray(shape, 3));
    cJSON_AddNumberToObject(root, "classes", classes);
    cJSON_AddItemToObject(root, "mean", dg_json_float_array(mean, c));
    cJSON_AddItemToObject(root, "std", dg_json_float_array(std, c));
}

int dg_json_get_input(const cJSON *root, int max_classes, int *c, int *h, int *w, int *classes, float *mean,
                      float *std, const char **why) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(root, "shape");
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != 3) {
        *why = "\"shape\" must be [C, H, W]";
        return -1;
    }
    int dims[3];
    for (int d = 0; d < 3; d++) {
        const cJSON *v = cJSON_GetArrayItem(shape, d);
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
            v->valuedouble > (d ? 4096 : 3)) {
            *why = "\"shape\" must be [C ≤ 3, H ≤ 4096, W ≤ 4096], positive integers";
            return -1;
        }
        dims[d] = (int)v->valuedouble;
    }
    *c = dims[0], *h = dims[1], *w = dims[2];
    if (dg_json_get_int(root, "classes", 2, max_classes, classes) != 0) {
        *why = "\"classes\" must be an integer from 2 to the largest class count dnnguard takes";
        return -1;
    }
    const char *norm[2] = {"mean", "std"};
    for (int k = 0; k < 2; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, norm[k]);
        float *dst = k ? std : mean;
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != *c) {
            *why = "\"mean\" and \"std\" must hold one number per channel";
            return -1;
        }
        for (int ch = 0; ch < *c; ch++)
            if (dg_json_get_float(cJSON_GetArrayItem(a, ch), k ? 1e-6 : -1e6, 1e6, &dst[ch]) != 0) {
                *why = "\"mean\" must be finite and \"std\" positive";
                return -1;
            }
    }
    return 0;
}
