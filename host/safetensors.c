/* host/safetensors.c — the safetensors reader (whole file read into memory, every length, offset
 * and JSON type checked before use) and the writer (atomic through host/atomic_file.c; a .pt path
 * goes to host/torch_pt_write.c).
 * Host memory and files only: no nets, no devices, no knowledge of what the tensors mean. */
#include "safetensors.h"
#include "atomic_file.h"
#include "error.h"
#include "input_file.h"
#include "json_fields.h"
#include "torch_pt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                               */


static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). Returns the offset of the
 * first bad byte, or len when all is well. */
size_t dg_st_utf8_check(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t need;
        unsigned min;
        unsigned cp;
        if ((c & 0xe0) == 0xc0) { need = 1; min = 0x80; cp = c & 0x1f; }
        else if ((c & 0xf0) == 0xe0) { need = 2; min = 0x800; cp = c & 0x0f; }
        else if ((c & 0xf8) == 0xf0) { need = 3; min = 0x10000; cp = c & 0x07; }
        else return i;
        if (len - i <= need) return i;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += need + 1;
    }
    return len;
}

static const char *const dtype_names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "U8", "I8", "I16", "BOOL"};
static const size_t dtype_sizes[] = {4, 2, 2, 8, 8, 4, 1, 1, 2, 1};
#define N_DTYPES ((int)(sizeof dtype_sizes / sizeof dtype_sizes[0]))

size_t dg_st_dtype_size(dg_st_dtype dtype) {
    int d = (int)dtype;
    return d >= 0 && d < N_DTYPES ? dtype_sizes[d] : 0;
}

const char *dg_st_dtype_name(dg_st_dtype dtype) {
    int d = (int)dtype;
    return d >= 0 && d < N_DTYPES ? dtype_names[d] : "?";
}

static int dtype_from_name(const char *s, dg_st_dtype *out) {
    for (int d = 0; d < N_DTYPES; d++)
        if (strcmp(s, dtype_names[d]) == 0) {
            *out = (dg_st_dtype)d;
            return 0;
        }
    return -1;
}

/* 2^53: the largest range in which a JSON number parsed into a double is an exact integer. */
#define MAX_EXACT_INT 9007199254740992.0

/* 1 if item is a number holding a non-negative integer ≤ 2^53. */
static int json_uint(const cJSON *item, double *v) {
    if (!cJSON_IsNumber(item)) return 0;
    double d = item->valuedouble;
    if (!isfinite(d) || d < 0 || d != floor(d) || d > MAX_EXACT_INT) return 0;
    *v = d;
    return 1;
}

static const char *json_type_name(const cJSON *item) {
    if (!item) return "missing";
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNull(item)) return "null";
    return "invalid";
}

/* ------------------------------------------------------------------------------------------ */
/* reading                                                                                     */

void dg_st_close(dg_st_file *f) {
    if (!f) return;
    if (f->tensors)
        for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    if (f->meta_keys)
        for (int i = 0; i < f->n_meta; i++) free(f->meta_keys[i]);
    if (f->meta_values)
        for (int i = 0; i < f->n_meta; i++) free(f->meta_values[i]);
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->by_name);
    free(f->bytes);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* Whole file into memory. */
static int read_whole_file(const char *path, uint8_t **bytes, size_t *size, char *err, size_t err_len) {
    *bytes = NULL;
    *size = 0;
    int fd = dg_open_regular(path);
    if (fd < 0) {
        if (fd == DG_NOT_REGULAR) dg_err_set(err, err_len, path, "not a regular file");
        else dg_err_set(err, err_len, path, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        dg_err_set(err, err_len, path, "cannot stat: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size > (uintmax_t)SIZE_MAX - 1) {
        dg_err_set(err, err_len, path, "file too large");
        close(fd);
        return -1;
    }
    size_t cap = (size_t)st.st_size;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) {
        dg_err_set(err, err_len, path, "out of memory reading %zu bytes", cap);
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < cap) {
        size_t want = cap - got;
        if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
        ssize_t r = read(fd, buf + got, want);
        if (r < 0) {
            if (errno == EINTR) continue;
            dg_err_set(err, err_len, path, "read error: %s", strerror(errno));
            free(buf);
            close(fd);
            return -1;
        }
        if (r == 0) break; /* the file shrank: use what is there, the checks below judge it */
        got += (size_t)r;
    }
    close(fd);
    *bytes = buf;
    *size = got;
    return 0;
}

typedef struct {
    const char *name;
    int idx;
} name_idx;

static int cmp_name_idx(const void *a, const void *b) {
    const name_idx *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

typedef struct {
    size_t begin, end;
    int idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* meta (called `what` in messages) into f's empty metadata lists */
static int parse_metadata(dg_st_file *f, const cJSON *meta, const char *what, char *err, size_t err_len) {
    if (cJSON_IsNull(meta)) return 0;
    if (!cJSON_IsObject(meta)) {
        dg_err_set(err, err_len, f->path, "%s is %s, not an object", what, json_type_name(meta));
        return -1;
    }
    int n = cJSON_GetArraySize(meta);
    if (n == 0) return 0;
    f->meta_keys = calloc((size_t)n, sizeof(char *));
    f->meta_values = calloc((size_t)n, sizeof(char *));
    if (!f->meta_keys || !f->meta_values) {
        dg_err_set(err, err_len, f->path, "out of memory");
        return -1;
    }
    const cJSON *kv;
    cJSON_ArrayForEach(kv, meta) {
        const char *key = kv->string ? kv->string : "";
        if (!cJSON_IsString(kv) || !kv->valuestring) {
            dg_err_set(err, err_len, f->path, "%s value for '%s' is %s, not a string", what, dg_err_safe(key).s,
                       json_type_name(kv));
            return -1;
        }
        for (int j = 0; j < f->n_meta; j++)
            if (strcmp(f->meta_keys[j], key) == 0) {
                dg_err_set(err, err_len, f->path, "%s has key '%s' twice", what, dg_err_safe(key).s);
                return -1;
            }
        if (f->n_meta >= n) break; /* cannot happen: n counted the same list */
        char *k = dup_str(key), *v = dup_str(kv->valuestring);
        if (!k || !v) {
            free(k);
            free(v);
            dg_err_set(err, err_len, f->path, "out of memory");
            return -1;
        }
        f->meta_keys[f->n_meta] = k;
        f->meta_values[f->n_meta] = v;
        f->n_meta++;
    }
    return 0;
}

int dg_st_metadata_text(dg_st_file *f, const char *text, size_t len, const char *what, char *err, size_t err_len) {
    if (dg_st_utf8_check((const unsigned char *)text, len) != len) {
        dg_err_set(err, err_len, f->path, "%s is not valid UTF-8", what);
        return -1;
    }
    cJSON *meta = dg_json_parse_one(text, len);
    if (!meta) {
        dg_err_set(err, err_len, f->path, "%s is not one JSON value", what);
        return -1;
    }
    int rc = parse_metadata(f, meta, what, err, err_len);
    cJSON_Delete(meta);
    return rc;
}

/* One header entry → f->tensors[f->n_tensors]. data_size: bytes after the header. */
static int parse_tensor(dg_st_file *f, const cJSON *item, size_t data_size, char *err, size_t err_len) {
    const char *name = item->string ? item->string : "";
    dg_safe_name sn = dg_err_safe(name);
    if (!cJSON_IsObject(item)) {
        dg_err_set(err, err_len, f->path, "tensor '%s': entry is %s, not an object", sn.s, json_type_name(item));
        return -1;
    }
    const cJSON *jd = NULL, *js = NULL, *jo = NULL, *child;
    cJSON_ArrayForEach(child, item) {
        const char *k = child->string ? child->string : "";
        const cJSON **slot = strcmp(k, "dtype") == 0 ? &jd : strcmp(k, "shape") == 0 ? &js
                           : strcmp(k, "data_offsets") == 0 ? &jo : NULL;
        if (!slot) continue; /* unknown keys are tolerated, as the reference does */
        if (*slot) {
            dg_err_set(err, err_len, f->path, "tensor '%s': key '%s' appears twice", sn.s, k);
            return -1;
        }
        *slot = child;
    }
    if (!jd || !js || !jo) {
        dg_err_set(err, err_len, f->path, "tensor '%s': no '%s'", sn.s, !jd ? "dtype" : !js ? "shape" : "data_offsets");
        return -1;
    }
    dg_st_tensor *t = &f->tensors[f->n_tensors];
    if (!cJSON_IsString(jd) || !jd->valuestring) {
        dg_err_set(err, err_len, f->path, "tensor '%s': dtype is %s, not a string", sn.s, json_type_name(jd));
        return -1;
    }
    if (dtype_from_name(jd->valuestring, &t->dtype) != 0) {
        dg_err_set(err, err_len, f->path, "tensor '%s': unknown or unsupported dtype '%s'", sn.s,
                dg_err_safe(jd->valuestring).s);
        return -1;
    }
    if (!cJSON_IsArray(js)) {
        dg_err_set(err, err_len, f->path, "tensor '%s': shape is %s, not an array", sn.s, json_type_name(js));
        return -1;
    }
    int ndim = cJSON_GetArraySize(js);
    if (ndim > DG_ST_MAX_DIMS) {
        dg_err_set(err, err_len, f->path, "tensor '%s': %d dims, at most %d supported", sn.s, ndim, DG_ST_MAX_DIMS);
        return -1;
    }
    size_t numel = 1;
    int overflow = 0, d = 0;
    cJSON_ArrayForEach(child, js) {
        double v;
        if (!json_uint(child, &v)) {
            if (cJSON_IsNumber(child))
                dg_err_set(err, err_len, f->path, "tensor '%s': shape[%d] = %g is not a non-negative integer", sn.s, d,
                        child->valuedouble);
            else
                dg_err_set(err, err_len, f->path, "tensor '%s': shape[%d] is %s, not a non-negative integer", sn.s, d,
                        json_type_name(child));
            return -1;
        }
        t->shape[d] = (int64_t)v;
        if (!overflow && numel != 0 && v != 0 && (size_t)v > SIZE_MAX / numel) overflow = 1;
        numel = overflow ? 0 : numel * (size_t)v;
        d++;
    }
    t->ndim = ndim;
    /* a 0 dim makes numel 0 even after an overflow elsewhere */
    for (int k = 0; k < ndim; k++)
        if (t->shape[k] == 0) overflow = 0, numel = 0;
    size_t esize = dtype_sizes[t->dtype];
    if (overflow || numel > SIZE_MAX / esize) {
        dg_err_set(err, err_len, f->path, "tensor '%s': element count overflows", sn.s);
        return -1;
    }
    t->numel = numel;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2) {
        dg_err_set(err, err_len, f->path, "tensor '%s': data_offsets is not an array of two integers", sn.s);
        return -1;
    }
    double b, e;
    if (!json_uint(cJSON_GetArrayItem(jo, 0), &b) || !json_uint(cJSON_GetArrayItem(jo, 1), &e)) {
        dg_err_set(err, err_len, f->path, "tensor '%s': data_offsets are not non-negative integers", sn.s);
        return -1;
    }
    if (b > e) {
        dg_err_set(err, err_len, f->path, "tensor '%s': data_offsets begin %.0f > end %.0f", sn.s, b, e);
        return -1;
    }
    if (e > (double)data_size) {
        dg_err_set(err, err_len, f->path, "tensor '%s': data_offsets end %.0f beyond the data (%zu bytes; file truncated?)",
                sn.s, e, data_size);
        return -1;
    }
    t->begin = (size_t)b;
    t->end = (size_t)e;
    if (t->end - t->begin != numel * esize) {
        dg_err_set(err, err_len, f->path, "tensor '%s': %zu data bytes, but %zu elements of %s need %zu", sn.s,
                t->end - t->begin, numel, dtype_names[t->dtype], numel * esize);
        return -1;
    }
    t->name = dup_str(name);
    if (!t->name) {
        dg_err_set(err, err_len, f->path, "out of memory");
        return -1;
    }
    f->n_tensors++;
    return 0;
}

/* Duplicate names, and where the tensors' bytes lie. In a safetensors file (tile) they must cover
 * the data exactly, one after another from its first byte to its last, empty tensors at their place
 * among them, as the reference reader requires (its InvalidOffset and MetadataIncompleteBuffer): a
 * gap or trailing bytes could hide another file's content. A torch.save file's tensors lie where its
 * archive puts them, and only must not overlap. */
static int check_names_and_layout(dg_st_file *f, int tile, char *err, size_t err_len) {
    int n = f->n_tensors;
    name_idx *ni = malloc(sizeof *ni * (size_t)(n ? n : 1));
    span *sp = malloc(sizeof *sp * (size_t)(n ? n : 1));
    f->by_name = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!ni || !sp || !f->by_name) {
        free(ni);
        free(sp);
        dg_err_set(err, err_len, f->path, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        ni[i].name = f->tensors[i].name;
        ni[i].idx = i;
    }
    qsort(ni, (size_t)n, sizeof *ni, cmp_name_idx);
    for (int i = 1; i < n; i++)
        if (strcmp(ni[i - 1].name, ni[i].name) == 0) {
            dg_err_set(err, err_len, f->path, "tensor name '%s' appears twice", dg_err_safe(ni[i].name).s);
            free(ni);
            free(sp);
            return -1;
        }
    for (int i = 0; i < n; i++) f->by_name[i] = ni[i].idx;
    free(ni);

    int m = 0;
    for (int i = 0; i < n; i++)
        if (tile || f->tensors[i].end > f->tensors[i].begin) {
            sp[m].begin = f->tensors[i].begin;
            sp[m].end = f->tensors[i].end;
            sp[m].idx = i;
            m++;
        }
    qsort(sp, (size_t)m, sizeof *sp, cmp_span);
    size_t covered = 0; /* the data's bytes [0, covered) lie in the tensors so far */
    int last = -1;      /* the tensor that ends there */
    for (int i = 0; i < m; i++) {
        const char *name = f->tensors[sp[i].idx].name;
        if ((last >= 0 && sp[i].begin < covered) || (tile && sp[i].begin > covered)) {
            if (sp[i].begin < covered)
                dg_err_set(err, err_len, f->path, "tensors '%s' and '%s' overlap in the data",
                        dg_err_safe(f->tensors[last].name).s, dg_err_safe(name).s);
            else
                dg_err_set(err, err_len, f->path, "bytes %zu to %zu of the data, before tensor '%s', belong to no "
                        "tensor: a safetensors file's tensors follow one another", covered, sp[i].begin,
                        dg_err_safe(name).s);
            free(sp);
            return -1;
        }
        if (sp[i].end > covered || last < 0) {
            covered = sp[i].end;
            last = sp[i].idx;
        }
    }
    free(sp);
    const size_t data_size = f->size - f->data_start;
    if (tile && covered != data_size) {
        dg_err_set(err, err_len, f->path, "the data's last %zu bytes (from byte %zu) belong to no tensor: a "
                "safetensors file ends with its last tensor's data", data_size - covered, covered);
        return -1;
    }
    return 0;
}

static int parse_file(dg_st_file *f, char *err, size_t err_len) {
    if (f->size < 8) {
        dg_err_set(err, err_len, f->path, "%zu bytes, shorter than a safetensors file's 8-byte header length (and "
                   "not a torch.save file: no zip archive, no legacy torch.save pickle)", f->size);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->bytes[i];
    if (hlen > DG_ST_MAX_HEADER_BYTES) {
        dg_err_set(err, err_len, f->path, "neither a safetensors file (its header length would be %llu, absurd: the "
                   "limit is %u bytes) nor a torch.save file (no zip archive, no legacy torch.save pickle)%s",
                   (unsigned long long)hlen,
                   (unsigned)DG_ST_MAX_HEADER_BYTES,
                   f->bytes[0] == 0x80 ? "; it is a Python pickle that torch.save did not write (pickle.dump?): save "
                                         "it with torch.save(model.state_dict(), path)" : "");
        return -1;
    }
    if (hlen > f->size - 8) {
        dg_err_set(err, err_len, f->path, "header length %llu is larger than the rest of the file (%zu bytes)",
                (unsigned long long)hlen, f->size - 8);
        return -1;
    }
    if (hlen < 2) {
        dg_err_set(err, err_len, f->path, "header of %llu bytes cannot hold a JSON object", (unsigned long long)hlen);
        return -1;
    }
    const char *hdr = (const char *)f->bytes + 8;
    size_t bad = dg_st_utf8_check((const unsigned char *)hdr, (size_t)hlen);
    if (bad != (size_t)hlen) {
        dg_err_set(err, err_len, f->path, "header is not valid UTF-8 (byte %zu of the header)", bad);
        return -1;
    }
    if (memchr(hdr, 0, (size_t)hlen)) {
        dg_err_set(err, err_len, f->path, "header contains a NUL byte");
        return -1;
    }
    f->data_start = 8 + (size_t)hlen;
    size_t data_size = f->size - f->data_start;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + hlen ? (size_t)(end - hdr) : 0;
        dg_err_set(err, err_len, f->path, "header is not valid JSON (error near byte %zu of the header)", at);
        return -1;
    }
    if (end)
        for (const char *p = end; p < hdr + hlen; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                dg_err_set(err, err_len, f->path, "header has trailing bytes after the JSON (at byte %zu of the header)",
                        (size_t)(p - hdr));
                cJSON_Delete(root);
                return -1;
            }
    if (!cJSON_IsObject(root)) {
        dg_err_set(err, err_len, f->path, "header is %s, not a JSON object", json_type_name(root));
        cJSON_Delete(root);
        return -1;
    }
    int total = cJSON_GetArraySize(root);
    f->tensors = calloc((size_t)(total > 0 ? total : 1), sizeof *f->tensors);
    if (!f->tensors) {
        dg_err_set(err, err_len, f->path, "out of memory");
        cJSON_Delete(root);
        return -1;
    }
    int rc = 0, seen_meta = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        const char *key = item->string ? item->string : "";
        if (strcmp(key, "__metadata__") == 0) {
            if (seen_meta++) {
                dg_err_set(err, err_len, f->path, "__metadata__ appears twice");
                rc = -1;
            } else {
                rc = parse_metadata(f, item, "__metadata__", err, err_len);
            }
        } else if (f->n_tensors >= total) {
            dg_err_set(err, err_len, f->path, "internal error: header changed while parsed");
            rc = -1;
        } else {
            rc = parse_tensor(f, item, data_size, err, err_len);
        }
        if (rc) break;
    }
    cJSON_Delete(root);
    if (rc) return rc;
    return check_names_and_layout(f, 1, err, err_len);
}

int dg_st_open(const char *path, dg_st_file *f, char *err, size_t err_len) {
    if (err && err_len) err[0] = 0;
    if (!f) {
        dg_err_set(err, err_len, path, "no file struct given");
        return -1;
    }
    memset(f, 0, sizeof *f);
    if (!path) {
        dg_err_set(err, err_len, "(null)", "no path given");
        return -1;
    }
    f->path = dup_str(path);
    if (!f->path) {
        dg_err_set(err, err_len, path, "out of memory");
        return -1;
    }
    if (read_whole_file(path, &f->bytes, &f->size, err, err_len) != 0) {
        dg_st_close(f);
        return -1;
    }
    /* PyTorch's torch.save files hold the same tensors (host/torch_pt.c) */
    int rc = dg_pt_claims(f->bytes, f->size)
                 ? (dg_pt_fill(f, err, err_len) == 0 ? check_names_and_layout(f, 0, err, err_len) : -1)
                 : parse_file(f, err, err_len);
    if (rc != 0) dg_st_close(f);
    return rc;
}

int dg_st_find(const dg_st_file *f, const char *name) {
    if (!f || !name || !f->by_name) return -1;
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int idx = f->by_name[mid];
        int c = strcmp(f->tensors[idx].name, name);
        if (c == 0) return idx;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

const char *dg_st_meta(const dg_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

static uint64_t load_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

int dg_st_read_f32(const dg_st_file *f, int i, float *out, size_t expect_numel, char *err, size_t err_len) {
    if (!f || !f->bytes || i < 0 || i >= f->n_tensors) {
        dg_err_set(err, err_len, f && f->path ? f->path : "(null)", "no tensor number %d", i);
        return -1;
    }
    const dg_st_tensor *t = &f->tensors[i];
    if (t->numel != expect_numel) {
        dg_err_set(err, err_len, f->path, "tensor '%s' has %zu elements, %zu expected", dg_err_safe(t->name).s, t->numel,
                expect_numel);
        return -1;
    }
    size_t esize = dtype_sizes[t->dtype];
    /* re-check what dg_st_open established, so that a struct changed by a caller cannot read out of bounds */
    if (t->begin > t->end || t->end > f->size - f->data_start || t->end - t->begin != t->numel * esize) {
        dg_err_set(err, err_len, f->path, "tensor '%s' has inconsistent offsets", dg_err_safe(t->name).s);
        return -1;
    }
    if (t->numel && !out) {
        dg_err_set(err, err_len, f->path, "tensor '%s': no output buffer", dg_err_safe(t->name).s);
        return -1;
    }
    const uint8_t *p = f->bytes + f->data_start + t->begin;
    size_t n = t->numel;
    switch (t->dtype) {
    case DG_ST_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (n) memcpy(out, p, n * 4);
#else
        for (size_t k = 0; k < n; k++) {
            uint32_t b = (uint32_t)load_le(p + 4 * k, 4);
            memcpy(&out[k], &b, 4);
        }
#endif
        break;
    case DG_ST_F16:
        for (size_t k = 0; k < n; k++) out[k] = f16_to_f32((uint16_t)load_le(p + 2 * k, 2));
        break;
    case DG_ST_BF16:
        for (size_t k = 0; k < n; k++) {
            uint32_t b = (uint32_t)load_le(p + 2 * k, 2) << 16;
            memcpy(&out[k], &b, 4);
        }
        break;
    case DG_ST_F64:
        for (size_t k = 0; k < n; k++) {
            uint64_t b = load_le(p + 8 * k, 8);
            double d;
            memcpy(&d, &b, 8);
            if (isnan(d)) out[k] = NAN;
            else if (d > FLT_MAX) out[k] = (d >= (double)FLT_MAX + ldexp(1.0, 103)) ? INFINITY : FLT_MAX;
            else if (d < -FLT_MAX) out[k] = (d <= -(double)FLT_MAX - ldexp(1.0, 103)) ? -INFINITY : -FLT_MAX;
            else out[k] = (float)d;
        }
        break;
    case DG_ST_I64:
        for (size_t k = 0; k < n; k++) out[k] = (float)(int64_t)load_le(p + 8 * k, 8);
        break;
    case DG_ST_I32:
        for (size_t k = 0; k < n; k++) out[k] = (float)(int32_t)(uint32_t)load_le(p + 4 * k, 4);
        break;
    case DG_ST_I16:
        for (size_t k = 0; k < n; k++) out[k] = (float)(int16_t)(uint16_t)load_le(p + 2 * k, 2);
        break;
    case DG_ST_U8:
        for (size_t k = 0; k < n; k++) out[k] = (float)p[k];
        break;
    case DG_ST_I8:
        for (size_t k = 0; k < n; k++) out[k] = (float)(int8_t)p[k];
        break;
    case DG_ST_BOOL:
        for (size_t k = 0; k < n; k++) out[k] = p[k] ? 1.0f : 0.0f;
        break;
    default:
        dg_err_set(err, err_len, f->path, "tensor '%s' has an unknown dtype", dg_err_safe(t->name).s);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* writing                                                                                     */

int dg_st_write(const char *path, const dg_st_entry *entries, int n, const char *const *meta_keys,
                const char *const *meta_values, int n_meta, char *err, size_t err_len) {
    if (err && err_len) err[0] = 0;
    if (!path || !*path) {
        dg_err_set(err, err_len, "(null)", "no output path given");
        return -1;
    }
    if (n < 0 || (n > 0 && !entries)) {
        dg_err_set(err, err_len, path, "bad tensor list (%d entries)", n);
        return -1;
    }
    if (n_meta < 0 || (n_meta > 0 && (!meta_keys || !meta_values))) {
        dg_err_set(err, err_len, path, "bad metadata list (%d pairs)", n_meta);
        return -1;
    }
    for (int m = 0; m < n_meta; m++) {
        if (!meta_keys[m] || !meta_values[m]) {
            dg_err_set(err, err_len, path, "metadata pair %d has a NULL key or value", m);
            return -1;
        }
        if (dg_st_utf8_check((const unsigned char *)meta_keys[m], strlen(meta_keys[m])) != strlen(meta_keys[m]) ||
            dg_st_utf8_check((const unsigned char *)meta_values[m], strlen(meta_values[m])) != strlen(meta_values[m])) {
            dg_err_set(err, err_len, path, "metadata '%s' is not valid UTF-8", dg_err_safe(meta_keys[m]).s);
            return -1;
        }
        for (int j = 0; j < m; j++)
            if (strcmp(meta_keys[j], meta_keys[m]) == 0) {
                dg_err_set(err, err_len, path, "metadata key '%s' given twice", dg_err_safe(meta_keys[m]).s);
                return -1;
            }
    }
    size_t *nbytes = malloc(sizeof(size_t) * (size_t)(n ? n : 1));
    name_idx *ni = malloc(sizeof *ni * (size_t)(n ? n : 1));
    if (!nbytes || !ni) {
        free(nbytes);
        free(ni);
        dg_err_set(err, err_len, path, "out of memory");
        return -1;
    }
    size_t total = 0;
    int bad = 0;
    for (int i = 0; i < n && !bad; i++) {
        const dg_st_entry *e = &entries[i];
        bad = 1;
        if (!e->name || !*e->name) {
            dg_err_set(err, err_len, path, "tensor %d has no name", i);
        } else if (dg_st_utf8_check((const unsigned char *)e->name, strlen(e->name)) != strlen(e->name)) {
            dg_err_set(err, err_len, path, "tensor name '%s' is not valid UTF-8", dg_err_safe(e->name).s);
        } else if (strcmp(e->name, "__metadata__") == 0) {
            dg_err_set(err, err_len, path, "a tensor cannot be called __metadata__");
        } else if (dg_st_dtype_size(e->dtype) == 0) {
            dg_err_set(err, err_len, path, "tensor '%s': unknown dtype %d", dg_err_safe(e->name).s, (int)e->dtype);
        } else if (e->ndim < 0 || e->ndim > DG_ST_MAX_DIMS) {
            dg_err_set(err, err_len, path, "tensor '%s': %d dims (0..%d allowed)", dg_err_safe(e->name).s, e->ndim,
                    DG_ST_MAX_DIMS);
        } else {
            size_t numel = 1;
            int ok = 1, zero = 0;
            for (int d = 0; d < e->ndim; d++) {
                if (e->shape[d] < 0 || (double)e->shape[d] > MAX_EXACT_INT) ok = 0;
                else if (e->shape[d] == 0) zero = 1;
            }
            for (int d = 0; ok && !zero && d < e->ndim; d++) {
                size_t v = (size_t)e->shape[d];
                if (v > SIZE_MAX / numel) ok = 0;
                else numel *= v;
            }
            if (zero) numel = 0;
            size_t es = dg_st_dtype_size(e->dtype);
            if (!ok || numel > SIZE_MAX / es || numel * es > SIZE_MAX - total ||
                (double)(total + numel * es) > MAX_EXACT_INT) {
                dg_err_set(err, err_len, path, "tensor '%s': negative or too large shape", dg_err_safe(e->name).s);
            } else if (numel && !e->data) {
                dg_err_set(err, err_len, path, "tensor '%s': no data", dg_err_safe(e->name).s);
            } else {
                nbytes[i] = numel * es;
                total += nbytes[i];
                ni[i].name = e->name;
                ni[i].idx = i;
                bad = 0;
            }
        }
    }
    if (!bad) {
        qsort(ni, (size_t)n, sizeof *ni, cmp_name_idx);
        for (int i = 1; i < n && !bad; i++)
            if (strcmp(ni[i - 1].name, ni[i].name) == 0) {
                dg_err_set(err, err_len, path, "tensor name '%s' given twice", dg_err_safe(ni[i].name).s);
                bad = 1;
            }
    }
    free(ni);
    if (bad) {
        free(nbytes);
        return -1;
    }

    if (dg_pt_path(path)) {
        int rc = dg_pt_write(path, entries, n, nbytes, meta_keys, meta_values, n_meta, err, err_len);
        free(nbytes);
        return rc;
    }

    /* the header */
    cJSON *root = cJSON_CreateObject();
    int oom = !root;
    if (!oom && n_meta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        oom = !meta;
        for (int m = 0; m < n_meta && !oom; m++) oom = !cJSON_AddStringToObject(meta, meta_keys[m], meta_values[m]);
    }
    size_t off = 0;
    for (int i = 0; i < n && !oom; i++) {
        const dg_st_entry *e = &entries[i];
        char shape[8 * 24 + 4], offs[64];
        size_t used = 0;
        shape[used++] = '[';
        for (int d = 0; d < e->ndim; d++)
            used += (size_t)snprintf(shape + used, sizeof shape - used, d ? ",%lld" : "%lld", (long long)e->shape[d]);
        snprintf(shape + used, sizeof shape - used, "]");
        snprintf(offs, sizeof offs, "[%zu,%zu]", off, off + nbytes[i]);
        off += nbytes[i];
        cJSON *obj = cJSON_CreateObject();
        if (!obj || !cJSON_AddItemToObject(root, e->name, obj)) {
            cJSON_Delete(obj);
            oom = 1;
            break;
        }
        oom = !cJSON_AddStringToObject(obj, "dtype", dtype_names[e->dtype]) || !cJSON_AddRawToObject(obj, "shape", shape) ||
              !cJSON_AddRawToObject(obj, "data_offsets", offs);
    }
    char *json = oom ? NULL : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) {
        free(nbytes);
        dg_err_set(err, err_len, path, "out of memory building the header");
        return -1;
    }
    size_t jlen = strlen(json);
    size_t hlen = (jlen + 7) / 8 * 8;
    if (hlen > DG_ST_MAX_HEADER_BYTES) {
        free(json);
        free(nbytes);
        dg_err_set(err, err_len, path, "header of %zu bytes is larger than readers accept", hlen);
        return -1;
    }
    uint8_t *head = malloc(8 + hlen);
    if (!head) {
        free(json);
        free(nbytes);
        dg_err_set(err, err_len, path, "out of memory");
        return -1;
    }
    for (int i = 0; i < 8; i++) head[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(head + 8, json, jlen);
    memset(head + 8 + jlen, ' ', hlen - jlen);
    free(json);

    /* the file */
    dg_chunk *chunks = malloc(sizeof *chunks * (size_t)(n + 1));
    int rc = -1;
    if (!chunks) {
        dg_err_set(err, err_len, path, "out of memory");
    } else {
        chunks[0] = (dg_chunk){head, 8 + hlen};
        for (int i = 0; i < n; i++) chunks[i + 1] = (dg_chunk){entries[i].data, nbytes[i]};
        rc = dg_write_atomic(path, chunks, (size_t)n + 1, err, err_len);
    }
    free(chunks);
    free(head);
    free(nbytes);
    return rc;
}
