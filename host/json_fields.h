/* host/json_fields.h — what the JSON files dnnguard writes and reads back (fingerprint registries,
 * InFIP manifests) share: floats written in their shortest exact form, checked field readers, one
 * document per file, and the description of a net's input (shape, classes, normalisation). */
#ifndef DG_JSON_FIELDS_H
#define DG_JSON_FIELDS_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* the shortest decimal text that reads back as the same float (0.01, not 0.00999999978); null for
 * NaN and ±inf, which JSON cannot hold (the readers then refuse the field by name) */
void dg_json_float_text(float v, char *num, size_t len);
void dg_json_add_float(cJSON *obj, const char *name, float v);
/* a double in the shortest of 15 to 17 digits that reads back exactly (cJSON's own printing may
 * lose the last bit); null for NaN and ±inf. The text needs 32 bytes. */
void dg_json_double_text(double v, char *num, size_t len);
void dg_json_add_double(cJSON *obj, const char *name, double v);
cJSON *dg_json_float_array(const float *v, int n);

/* Print root, free it, and write the text as a private (0600) file atomically
 * (dg_write_private_text). 0, or −1 with err. */
int dg_json_write_private(cJSON *root, const char *path, char *err, size_t err_len);

/* Parse text as exactly one JSON document (white space may follow it, nothing else); NULL otherwise. */
cJSON *dg_json_parse_one(const char *text, size_t len);

/* Parse text as one JSON object whose "format" is `format` and in which no object names a member
 * twice: the document, or NULL with err "<name>: <why>". */
cJSON *dg_json_open(const char *text, size_t len, const char *name, const char *format, const char *what, char *err,
                    size_t err_len);

/* field readers: 0 ok, −1 missing, of the wrong type or out of range */
int dg_json_get_int(const cJSON *obj, const char *name, long lo, long hi, int *out);
int dg_json_get_float(const cJSON *v, double lo, double hi, float *out);
int dg_json_get_double(const cJSON *v, double lo, double hi, double *out); /* exactly as written */
int dg_json_get_string(const cJSON *obj, const char *name, char *out, size_t cap);
int dg_json_is_hex64(const char *s);
/* a file name inside the file's own folder, or one folder below it ("keys/key-0.png" when
 * subfolders is set): no absolute path, no "..", no leading dot, no backslash */
int dg_json_is_plain_name(const char *s, int subfolders);

/* The input a file describes: "shape" [C ≤ 3, H, W ≤ 4096], "classes" (2..max_classes), "mean"
 * and "std" per channel. Writing adds those four fields. 0, or −1 with *why set. */
void dg_json_add_input(cJSON *root, int c, int h, int w, int classes, const float *mean, const float *std);
int dg_json_get_input(const cJSON *root, int max_classes, int *c, int *h, int *w, int *classes, float *mean,
                      float *std, const char **why);

#endif
