/* host/infip_calibration.c — calibration.json: the independent models' ASSIM against an InFIP
 * reference and the threshold they set (host/infip.h). Read back with every field checked and the
 * thresholds derived again, since `infip verify` decides by it. */
#include "infip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_fields.h"
#include "private_file.h"
#include "ssim.h"
#include "../nets/registry.h"

#define CALIBRATION_FORMAT "dnnguard-infip-calibration-1"

static int net_known(const char *name) {
    int c, h, w, classes;
    return dg_net_default_shape(name, &c, &h, &w, &classes) == 0;
}

static const char *const form_name[2] = {"global", "gaussian"}; /* dg_ssim_mode's names, in its order */

void dg_infip_calibration_derive(dg_infip_calibration *c) {
    for (int f = 0; f < 2; f++) {
        double hi = -INFINITY;
        for (int i = 0; i < c->n; i++) hi = c->nulls[i].assim[f] > hi ? c->nulls[i].assim[f] : hi;
        const int known = f == 0 || c->has_gaussian;
        c->highest[f] = known ? hi : NAN;
        c->threshold[f] = known ? nextafter(hi + c->margin, INFINITY) : NAN; /* every null is below it */
    }
    c->false_positive_bound = 1.0 / (c->n + 1.0);
}

int dg_infip_calibration_write(const dg_infip_calibration *c, const char *path, char *err, size_t err_len) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", CALIBRATION_FORMAT);
    cJSON_AddStringToObject(root, "manifest_sha256", c->manifest_sha256);
    cJSON_AddStringToObject(root, "owner_model_sha256", c->owner_model_sha256);
    cJSON_AddStringToObject(root, "rule", "threshold = the next double above (highest independent ASSIM + margin); "
                                          "pirated when ASSIM >= threshold");
    dg_json_add_double(root, "margin", c->margin);
    dg_json_add_double(root, "false_positive_bound", c->false_positive_bound);
    cJSON *th = cJSON_AddObjectToObject(root, "thresholds"), *hi = cJSON_AddObjectToObject(root, "highest_independent");
    for (int f = 0; f < 2; f++) {
        dg_json_add_double(th, form_name[f], c->threshold[f]);
        dg_json_add_double(hi, form_name[f], c->highest[f]);
    }
    cJSON *list = cJSON_AddArrayToObject(root, "independent");
    for (int i = 0; i < c->n; i++) {
        const dg_infip_null *m = &c->nulls[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", m->model);
        cJSON_AddStringToObject(o, "sha256", m->sha256);
        cJSON_AddStringToObject(o, "net", m->net);
        dg_json_add_double(o, "assim_global", m->assim[0]);
        dg_json_add_double(o, "assim_gaussian", m->assim[1]);
        cJSON_AddItemToArray(list, o);
    }
    return dg_json_write_private(root, path, err, err_len);
}

/* a stored figure equal to the derived one (or both absent) */
static int same_figure(const cJSON *obj, const char *name, double derived) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (isnan(derived)) return cJSON_IsNull(v);
    return cJSON_IsNumber(v) && v->valuedouble == derived;
}

int dg_infip_calibration_parse(const char *json, size_t len, const char *name, const dg_infip_manifest *m,
                               dg_infip_calibration *c, char *err, size_t err_len) {
    memset(c, 0, sizeof *c);
    cJSON *root = dg_json_open(json, len, name, CALIBRATION_FORMAT, "InFIP calibration", err, err_len);
    const char *why = NULL;
    if (!root) return -1;
    if (dg_json_get_string(root, "manifest_sha256", c->manifest_sha256, sizeof c->manifest_sha256) ||
        !dg_json_is_hex64(c->manifest_sha256) ||
        dg_json_get_string(root, "owner_model_sha256", c->owner_model_sha256, sizeof c->owner_model_sha256) ||
        !dg_json_is_hex64(c->owner_model_sha256) ||
        dg_json_get_double(cJSON_GetObjectItemCaseSensitive(root, "margin"), 0.0, 1.0, &c->margin) || !(c->margin < 1.0)) {
        why = "\"manifest_sha256\" and \"owner_model_sha256\" must be 64 hex digits and \"margin\" a number in [0, 1)";
        goto done;
    }
    if (m && strcmp(c->manifest_sha256, m->file_sha256) != 0) {
        why = "made for another reference (the manifest's SHA-256 differs): run infip calibrate again, or remove it";
        goto done;
    }
    if (m && strcmp(c->owner_model_sha256, m->model_sha256) != 0) {
        why = "made for another owner's model than the manifest names";
        goto done;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "independent");
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;
    if (n < 1 || n > DG_INFIP_MAX_INDEPENDENT) {
        why = "\"independent\" must be an array of 1 to " DG_INFIP_MAX_INDEPENDENT_TEXT " models";
        goto done;
    }
    if (!(c->nulls = calloc((size_t)n, sizeof *c->nulls))) {
        why = "out of memory";
        goto done;
    }
    c->n = n;
    c->has_gaussian = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(list, 0), "assim_gaussian"));
    for (int i = 0; i < n && !why; i++) {
        const cJSON *o = cJSON_GetArrayItem(list, i);
        dg_infip_null *z = &c->nulls[i];
        const cJSON *gauss = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "assim_gaussian") : NULL;
        z->assim[1] = NAN;
        if (!cJSON_IsObject(o) || dg_json_get_string(o, "model", z->model, sizeof z->model) || !z->model[0] ||
            dg_json_get_string(o, "sha256", z->sha256, sizeof z->sha256) || !dg_json_is_hex64(z->sha256) ||
            dg_json_get_string(o, "net", z->net, sizeof z->net) || !net_known(z->net) ||
            dg_json_get_double(cJSON_GetObjectItemCaseSensitive(o, "assim_global"), -1.0, 1.0, &z->assim[0]) ||
            (c->has_gaussian ? dg_json_get_double(gauss, -1.0, 1.0, &z->assim[1]) != 0 : !cJSON_IsNull(gauss)))
            why = "an independent model lacks a field or has one out of range (model, sha256, a known net, "
                  "assim_global and assim_gaussian in [-1, 1], the Gaussian form for all or for none)";
        else if (strcmp(z->sha256, c->owner_model_sha256) == 0)
            why = "an independent model is the owner's";
        for (int j = 0; j < i && !why; j++)
            if (strcmp(c->nulls[j].sha256, z->sha256) == 0) why = "an independent model is listed twice";
    }
    if (!why && m && c->has_gaussian != dg_ssim_fits(m->h, m->w, DG_SSIM_GAUSSIAN))
        why = c->has_gaussian ? "it has Gaussian-form ASSIMs, but the reference's images are smaller than its window"
                              : "it lacks the Gaussian form, which the reference's images allow";
    if (why) goto done;
    dg_infip_calibration_derive(c);
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(root, "thresholds");
    const cJSON *hi = cJSON_GetObjectItemCaseSensitive(root, "highest_independent");
    for (int f = 0; f < 2 && !why; f++)
        if (!same_figure(th, form_name[f], c->threshold[f]) || !same_figure(hi, form_name[f], c->highest[f]))
            why = "its thresholds are not the ones its independent models' ASSIM give (the file was edited)";
    if (!why && !same_figure(root, "false_positive_bound", c->false_positive_bound))
        why = "\"false_positive_bound\" is not 1 / (models + 1)";
    if (!why && !(c->threshold[0] <= 1.0 && (!c->has_gaussian || c->threshold[1] <= 1.0)))
        why = "a threshold above 1, which no model can reach";
done:
    cJSON_Delete(root);
    if (why) {
        snprintf(err, err_len, "%s: %s", name, why);
        dg_infip_calibration_free(c);
        return -1;
    }
    return 0;
}

int dg_infip_calibration_read(const char *path, const dg_infip_manifest *m, dg_infip_calibration *c, char *err,
                              size_t err_len) {
    size_t len;
    char *text = dg_read_small_text(path, 64u << 20, &len, err, err_len);
    if (!text) {
        memset(c, 0, sizeof *c);
        return -1;
    }
    int rc = dg_infip_calibration_parse(text, len, path, m, c, err, err_len);
    free(text);
    return rc;
}

void dg_infip_calibration_free(dg_infip_calibration *c) {
    free(c->nulls);
    c->nulls = NULL;
    c->n = 0;
}
