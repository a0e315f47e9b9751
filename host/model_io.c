/* host/model_io.c — safetensors ⇄ net parameters. Loading is strict (every name present, every
 * shape equal, nothing unexpected) so that a weight file for another net fails loudly instead of
 * half-loading. Knows nothing of training or optimizers beyond writing tensors it is handed. */
#include "model_io.h"
#include "sha256.h"

#include "error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

int dg_model_ignored_tensor(const char *name) {
    return ends_with(name, ".num_batches_tracked") || strncmp(name, "optim.", 6) == 0;
}

int dg_model_running_stat(const char *name) {
    return ends_with(name, ".running_mean") || ends_with(name, ".running_var");
}

static void shape_text(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

size_t dg_model_name_prefix(const dg_st_file *f, int k, const char **text) {
    const char *first = NULL;
    for (int t = 0; t < f->n_tensors && !first; t++)
        if (!dg_model_ignored_tensor(f->tensors[t].name)) first = f->tensors[t].name;
    if (text) *text = first;
    if (!first) return 0;
    for (size_t len = 1; first[len - 1]; len++) {
        if (first[len - 1] != '.' || !first[len]) continue;
        for (int t = 0; t < f->n_tensors; t++)
            if (!dg_model_ignored_tensor(f->tensors[t].name) && strncmp(f->tensors[t].name, first, len) != 0)
                return 0; /* a longer prefix is not shared either */
        if (k-- == 0) return len;
    }
    return 0;
}

/* name with each dotted word that is an alias pair's side `from` (0: the file's word, 1: the net's)
 * replaced by its other side, into out[cap]. 0, or -1 when it does not fit. */
static int rename_words(const char *name, const char *const *aliases, int from, char *out, size_t cap) {
    size_t used = 0;
    for (const char *p = name;; p++) {
        size_t len = strcspn(p, ".");
        const char *word = NULL;
        for (int a = 0; aliases && aliases[a]; a += 2)
            if (strlen(aliases[a + from]) == len && strncmp(p, aliases[a + from], len) == 0)
                word = aliases[a + 1 - from];
        int n = word ? snprintf(out + used, cap - used, "%s%s", word, p[len] ? "." : "")
                     : snprintf(out + used, cap - used, "%.*s", (int)len + (p[len] ? 1 : 0), p);
        if (n < 0 || (size_t)n >= cap - used) return -1;
        used += (size_t)n;
        p += len;
        if (!*p) return 0;
    }
}

static const char *const *map_aliases(const dg_net *net, const dg_name_map *map) {
    return map->aliased ? net->file_aliases : NULL;
}

/* The net's name for the file's tensor file_name under map into out[cap]: 0, or -1 when the name
 * does not carry the map's prefix or is too long. */
static int net_name(const dg_net *net, const dg_name_map *map, const char *file_name, char *out, size_t cap) {
    if (strlen(file_name) <= map->strip || strncmp(file_name, map->prefix, map->strip) != 0) return -1;
    return rename_words(file_name + map->strip, map_aliases(net, map), 0, out, cap);
}

/* The file's name under map for the net's parameter param_name into out[cap]: 0, or -1. */
static int file_name(const dg_net *net, const dg_name_map *map, const char *param_name, char *out, size_t cap) {
    if (map->strip >= cap) return -1;
    memcpy(out, map->prefix, map->strip);
    return rename_words(param_name, map_aliases(net, map), 1, out + map->strip, cap - map->strip);
}

int dg_model_file_param(const dg_net *net, const dg_name_map *map, const char *name) {
    char own[DG_NAME_MAX * 4], back[DG_NAME_MAX * 4];
    if (dg_model_ignored_tensor(name) || net_name(net, map, name, own, sizeof own) != 0) return -1;
    int p = dg_net_find_param(net, own);
    /* only the map's own spelling: under the aliases, "fc.weight" beside "linear.weight" is extra */
    if (p < 0 || file_name(net, map, net->params[p].name, back, sizeof back) != 0 || strcmp(back, name) != 0)
        return -1;
    return p;
}

/* How many of the net's parameters f holds under map. */
static int hits(const dg_net *net, const dg_st_file *f, const dg_name_map *map) {
    char full[DG_NAME_MAX * 4];
    int n = 0;
    for (int i = 0; i < net->n_params; i++)
        n += file_name(net, map, net->params[i].name, full, sizeof full) == 0 && dg_st_find(f, full) >= 0;
    return n;
}

/* Whether every tensor of f (the ignored ones aside), read under map, is one of the net's. */
static int all_known(const dg_net *net, const dg_st_file *f, const dg_name_map *map) {
    for (int t = 0; t < f->n_tensors; t++)
        if (!dg_model_ignored_tensor(f->tensors[t].name) && dg_model_file_param(net, map, f->tensors[t].name) < 0)
            return 0;
    return 1;
}

/* The map under which f's names are the net's: none, then each prefix that every name carries
 * (dg_model_name_prefix), first in the net's own words, then in its aliases'. When none fits, the
 * one under which f holds most of the net's parameters (the first on a tie), so that its missing or
 * extra tensor is named rather than the first of its fine ones. */
static void find_map(const dg_net *net, const dg_st_file *f, dg_name_map *map) {
    dg_name_map best = {"", 0, 0};
    int best_hits = -1;
    for (int aliased = 0; aliased < (net->file_aliases ? 2 : 1); aliased++)
        for (int k = -1;; k++) {
            dg_name_map m = {"", 0, aliased};
            if (k >= 0 && !(m.strip = dg_model_name_prefix(f, k, &m.prefix))) break;
            int h = hits(net, f, &m);
            if (h == net->n_params && all_known(net, f, &m)) { /* the net's parameters exactly */
                *map = m;
                return;
            }
            if (h > best_hits) best_hits = h, best = m;
        }
    *map = best;
}

void dg_model_map_text(const dg_net *net, const dg_name_map *map, char *out, size_t cap) {
    char prefix[DG_NAME_MAX * 4];
    snprintf(prefix, sizeof prefix, "%.*s", (int)map->strip, map->prefix);
    int used = 0;
    out[0] = 0;
    if (map->strip) used = snprintf(out, cap, "without the prefix '%s'", dg_err_safe(prefix).s);
    for (int a = 0; map->aliased && net->file_aliases[a] && used >= 0 && (size_t)used < cap; a += 2) {
        const char *sep = a ? ", " : map->strip ? " and with " : "with ";
        used += snprintf(out + used, cap - (size_t)used, "%s'%s' for '%s'", sep, net->file_aliases[a],
                         net->file_aliases[a + 1]);
    }
}

/* A batch norm's running_var below zero (-inf included) is no variance that training leaves (it
 * averages squares), and its square root would fail later under another name: 0, or -1 with err
 * naming the tensor. NaN and +inf are left to dg_model_require_finite, like other weights'. */
static int check_running_vars(const dg_net *net, const float *host, const char *path, char *err, size_t err_len) {
    for (int i = 0; i < net->n_params; i++) {
        const dg_param *p = &net->params[i];
        if (p->role != DG_PARAM_RUNNING || !ends_with(p->name, ".running_var")) continue;
        for (size_t j = 0; j < p->numel; j++)
            if (host[p->offset + j] < 0) {
                snprintf(err, err_len, "%s: tensor '%s' holds a negative variance (%g at index %zu); not a trained "
                         "batch norm's running_var", path, p->name, (double)host[p->offset + j], j);
                return -1;
            }
    }
    return 0;
}

int dg_model_load_file(dg_net *net, const dg_st_file *f, dg_name_map *map_out, char *err, size_t err_len) {
    dg_name_map map;
    find_map(net, f, &map); /* when none fits, the errors below speak of the likeliest */
    if (map_out) *map_out = map;
    char how[DG_NAME_MAX * 4 + 128] = "", without[sizeof how + 32] = ""; /* said with each error */
    dg_model_map_text(net, &map, how, sizeof how);
    if (how[0]) snprintf(without, sizeof without, " (names read %s)", how);
    for (int t = 0; t < f->n_tensors; t++) {
        const char *name = f->tensors[t].name;
        if (!dg_model_ignored_tensor(name) && dg_model_file_param(net, &map, name) < 0) {
            snprintf(err, err_len, "%s: unexpected tensor '%s' for net %s%s", f->path, name, net->name, without);
            return -1;
        }
    }
    float *host = calloc(net->n_param_floats ? net->n_param_floats : 1, sizeof(float));
    if (!host) {
        snprintf(err, err_len, "%s: out of memory", f->path);
        return -1;
    }
    char full[DG_NAME_MAX * 4];
    for (int i = 0; i < net->n_params; i++) {
        const dg_param *p = &net->params[i];
        int t = file_name(net, &map, p->name, full, sizeof full) == 0 ? dg_st_find(f, full) : -1;
        if (t < 0) {
            char spelled[sizeof full + 48] = ""; /* under the aliases the file's name differs */
            if (map.aliased && strcmp(full + map.strip, p->name) != 0)
                snprintf(spelled, sizeof spelled, " ('%s' in this file's names)", dg_err_safe(full + map.strip).s);
            snprintf(err, err_len, "%s: missing tensor '%s'%s for net %s%s", f->path, p->name, spelled, net->name,
                     without);
            free(host);
            return -1;
        }
        const dg_st_tensor *st = &f->tensors[t];
        int same = st->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = st->shape[d] == p->shape[d];
        if (!same) {
            int64_t want[4];
            for (int d = 0; d < p->ndim; d++) want[d] = p->shape[d];
            char got_s[96], want_s[96];
            shape_text(got_s, sizeof got_s, st->ndim, st->shape);
            shape_text(want_s, sizeof want_s, p->ndim, want);
            snprintf(err, err_len, "%s: tensor '%s' has shape %s, net %s needs %s", f->path, p->name, got_s,
                     net->name, want_s);
            free(host);
            return -1;
        }
        if (st->dtype != DG_ST_F32 && st->dtype != DG_ST_F16 && st->dtype != DG_ST_BF16 && st->dtype != DG_ST_F64) {
            snprintf(err, err_len, "%s: tensor '%s' has dtype %s; weights must be F32, F16, BF16 or F64", f->path,
                     p->name, dg_st_dtype_name(st->dtype));
            free(host);
            return -1;
        }
        if (dg_st_read_f32(f, t, host + p->offset, p->numel, err, err_len) != 0) {
            free(host);
            return -1;
        }
    }
    if (check_running_vars(net, host, f->path, err, err_len) != 0) {
        free(host);
        return -1;
    }
    net->be->upload(net->param_arena, host, sizeof(float) * net->n_param_floats);
    free(host);
    return 0;
}

int dg_model_load(dg_net *net, const char *path, char *err, size_t err_len) {
    return dg_model_load_meta(net, path, NULL, NULL, 0, err, err_len);
}

int dg_model_load_meta(dg_net *net, const char *path, const char *key, char *value, size_t cap, char *err,
                       size_t err_len) {
    if (value && cap) value[0] = 0;
    dg_st_file f;
    if (dg_st_open(path, &f, err, err_len) != 0) return -1;
    const char *meta = key ? dg_st_meta(&f, key) : NULL;
    if (meta && value && strlen(meta) < cap) memcpy(value, meta, strlen(meta) + 1);
    dg_name_map map;
    int rc = dg_model_load_file(net, &f, &map, err, err_len);
    if (rc == 0 && (map.strip || map.aliased)) {
        /* torch_pt took DataParallel's "module." off already: say the whole prefix ("module.model.") */
        const char *dp = dg_st_meta(&f, "torch_stripped_prefix");
        char text[DG_NAME_MAX * 4 + 128], prefix[DG_NAME_MAX * 4 + 16];
        dg_name_map shown = map;
        if (dp && snprintf(prefix, sizeof prefix, "%s%.*s", dp, (int)map.strip, map.prefix) < (int)sizeof prefix)
            shown = (dg_name_map){prefix, strlen(prefix), map.aliased};
        dg_model_map_text(net, &shown, text, sizeof text);
        fprintf(stderr, "dnnguard: note: %s: names read %s\n", dg_err_safe_path(path).s, text);
    }
    const char *module = rc == 0 ? dg_st_meta(&f, "torch_module") : NULL;
    if (module) /* torch.save(model) or TorchScript: its code and settings are not read, only its tensors */
        fprintf(stderr, "dnnguard: note: %s: a whole module (%s): only its tensors are read; its layers' settings "
                "(strides, padding, batch-norm eps, pooling) are taken to be the net's, not checked\n",
                dg_err_safe_path(path).s, dg_err_safe(module).s);
    dg_st_close(&f);
    return rc;
}

float *dg_model_download(const dg_net *net) {
    float *host = malloc(sizeof(float) * (net->n_param_floats ? net->n_param_floats : 1));
    if (host) net->be->download(host, net->param_arena, sizeof(float) * net->n_param_floats);
    return host;
}

int dg_model_require_finite(const dg_net *net, const char *path, const char *what, char *err, size_t err_len) {
    float *host = dg_model_download(net);
    if (!host) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < net->n_params && rc == 0; i++) {
        const dg_param *p = &net->params[i];
        for (size_t j = 0; j < p->numel; j++)
            if (!isfinite(host[p->offset + j])) {
                snprintf(err, err_len, "%s: %s[%zu] is %s: %s needs a working model", path, p->name, j,
                         isnan(host[p->offset + j]) ? "NaN" : "infinite", what);
                rc = -1;
                break;
            }
    }
    free(host);
    return rc;
}

int dg_model_digest(const dg_net *net, char hex[65]) {
    float *host = dg_model_download(net);
    if (!host) return -1;
    dg_sha256 h;
    dg_sha256_init(&h);
    for (int i = 0; i < net->n_params; i++) /* in the net's order: the same values give the same digest */
        dg_sha256_update(&h, host + net->params[i].offset, sizeof(float) * net->params[i].numel);
    dg_sha256_final(&h, hex);
    free(host);
    return 0;
}

int dg_model_save(const dg_net *net, const char *path, const dg_extra_tensor *extras, int n_extras,
                  const char *const *meta_keys, const char *const *meta_values, int n_meta, char *err,
                  size_t err_len) {
    float *host = dg_model_download(net);
    dg_st_entry *entries = calloc((size_t)(net->n_params + n_extras), sizeof *entries);
    if (!host || !entries) {
        free(host);
        free(entries);
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < net->n_params; i++) {
        const dg_param *p = &net->params[i];
        entries[i].name = p->name;
        entries[i].dtype = DG_ST_F32;
        entries[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) entries[i].shape[d] = p->shape[d];
        entries[i].data = host + p->offset;
    }
    for (int e = 0; e < n_extras; e++) {
        dg_st_entry *out = &entries[net->n_params + e];
        out->name = extras[e].name;
        out->dtype = DG_ST_F32;
        out->ndim = extras[e].ndim;
        for (int d = 0; d < extras[e].ndim; d++) out->shape[d] = extras[e].shape[d];
        out->data = extras[e].data;
    }
    int rc = dg_st_write(path, entries, net->n_params + n_extras, meta_keys, meta_values, n_meta, err, err_len);
    free(entries);
    free(host);
    return rc;
}
