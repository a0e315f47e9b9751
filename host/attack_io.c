/* host/attack_io.c — writing an attacked weight file: every tensor of the input, some replaced by
 * host F32 data, the rest copied (F32 and integer tensors byte for byte), optimizer state dropped,
 * the input's metadata kept (less what the .pt reader said of a torch.save input) with the attack's
 * keys added. Host memory and files only. */
#include "attack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "torch_pt.h"

static int is_float(dg_st_dtype t) { return t == DG_ST_F32 || t == DG_ST_F16 || t == DG_ST_BF16 || t == DG_ST_F64; }

static int is_optimizer_state(const char *name) { return strncmp(name, "optim.", 6) == 0; }

/* The input's metadata followed by the given pairs; a given key replaces the input's value. */
static int merge_meta(const dg_st_file *in, const char *const *keys, const char *const *values, int n,
                      const char ***out_keys, const char ***out_values) {
    int cap = in->n_meta + n;
    const char **k = malloc(sizeof *k * (size_t)(cap ? cap : 1));
    const char **v = malloc(sizeof *v * (size_t)(cap ? cap : 1));
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    int m = 0;
    const int from_pt = dg_pt_claims(in->bytes, in->size); /* its reader described it in keys of its own */
    for (int i = 0; i < in->n_meta; i++) {
        int replaced = from_pt && dg_pt_reader_key(in->meta_keys[i]); /* said of the input file, not of this one */
        for (int j = 0; j < n && !replaced; j++) replaced = strcmp(in->meta_keys[i], keys[j]) == 0;
        if (replaced) continue;
        k[m] = in->meta_keys[i];
        v[m++] = in->meta_values[i];
    }
    for (int j = 0; j < n; j++) {
        k[m] = keys[j];
        v[m++] = values[j];
    }
    *out_keys = k;
    *out_values = v;
    return m;
}

int dg_attack_write(const char *path, const dg_st_file *in, float *const *replace, const char *const *meta_keys,
                    const char *const *meta_values, int n_meta, char *err, size_t err_len) {
    int n = in->n_tensors;
    dg_st_entry *entries = calloc((size_t)(n ? n : 1), sizeof *entries);
    float **converted = calloc((size_t)(n ? n : 1), sizeof *converted);
    const char **keys = NULL, **values = NULL;
    int n_keys = -1, n_out = 0, rc = -1;
    if (entries && converted) n_keys = merge_meta(in, meta_keys, meta_values, n_meta, &keys, &values);
    if (n_keys < 0) {
        snprintf(err, err_len, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const dg_st_tensor *t = &in->tensors[i];
        if (is_optimizer_state(t->name)) continue;
        dg_st_entry *e = &entries[n_out++];
        e->name = t->name;
        e->ndim = t->ndim;
        memcpy(e->shape, t->shape, sizeof e->shape);
        e->dtype = t->dtype;
        e->data = in->bytes + in->data_start + t->begin;
        if (replace && replace[i]) {
            e->dtype = DG_ST_F32;
            e->data = replace[i];
        } else if (is_float(t->dtype) && t->dtype != DG_ST_F32) {
            converted[i] = malloc(sizeof(float) * (t->numel ? t->numel : 1));
            if (!converted[i]) {
                snprintf(err, err_len, "%s: out of memory", path);
                goto done;
            }
            if (dg_st_read_f32(in, i, converted[i], t->numel, err, err_len) != 0) goto done;
            e->dtype = DG_ST_F32;
            e->data = converted[i];
        }
    }
    rc = dg_st_write(path, entries, n_out, keys, values, n_keys, err, err_len);
done:
    for (int i = 0; converted && i < n; i++) free(converted[i]);
    free(converted);
    free(entries);
    free(keys);
    free(values);
    return rc;
}
