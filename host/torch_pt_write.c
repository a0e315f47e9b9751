/* host/torch_pt_write.c — writing tensors as torch.save(state_dict, path) does, so that PyTorch
 * reads dnnguard's output with torch.load (weights_only=True too) and no safetensors package:
 * a zip archive of stored entries under "archive/", a protocol-2 pickle of an OrderedDict of
 * _rebuild_tensor_v2 calls, one storage entry per tensor with its data aligned to 64 bytes as
 * torch aligns it, "byteorder" and "version" records; dnnguard's string metadata travels in
 * "archive/extra/dnnguard_metadata.json", which torch.load passes over and dg_pt_fill reads back.
 * Fixed timestamps, so the same tensors give the same bytes. */
#include "torch_pt.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "atomic_file.h"
#include "error.h"

int dg_pt_path(const char *path) {
    size_t n = path ? strlen(path) : 0;
    return (n > 3 && strcasecmp(path + n - 3, ".pt") == 0) || (n > 4 && strcasecmp(path + n - 4, ".pth") == 0);
}

/* A growing byte buffer; oom sticks once set, so callers check it once at the end. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} buf;

static void put(buf *b, const void *data, size_t len) {
    if (b->oom) return;
    if (len > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n < len) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (len) memcpy(b->p + b->n, data, len);
    b->n += len;
}

static void put_le(buf *b, uint64_t v, int bytes) {
    uint8_t x[8];
    for (int i = 0; i < bytes; i++) x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, (size_t)bytes);
}

static void op(buf *b, uint8_t code) { put(b, &code, 1); }

/* ---- the pickle ---- */

static void p_global(buf *b, const char *module, const char *name) { /* GLOBAL 'module\nname\n' */
    op(b, 'c');
    put(b, module, strlen(module));
    op(b, '\n');
    put(b, name, strlen(name));
    op(b, '\n');
}

static void p_str(buf *b, const char *s) { /* BINUNICODE: u32 length, UTF-8 */
    size_t len = strlen(s);
    op(b, 'X');
    put_le(b, len, 4);
    put(b, s, len);
}

static void p_int(buf *b, int64_t v) { /* the shortest of BININT1, BININT2, BININT, LONG1 */
    if (v >= 0 && v < 256) {
        op(b, 'K');
        put_le(b, (uint64_t)v, 1);
    } else if (v >= 0 && v < 65536) {
        op(b, 'M');
        put_le(b, (uint64_t)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        op(b, 'J');
        put_le(b, (uint64_t)(uint32_t)(int32_t)v, 4);
    } else {
        op(b, 0x8a);
        put_le(b, 8, 1);
        put_le(b, (uint64_t)v, 8);
    }
}

static void p_int_tuple(buf *b, const int64_t *v, int n) {
    if (n == 0) {
        op(b, ')'); /* EMPTY_TUPLE */
        return;
    }
    op(b, '('); /* MARK */
    for (int i = 0; i < n; i++) p_int(b, v[i]);
    op(b, 't'); /* TUPLE */
}

static const char *storage_class(dg_st_dtype dtype) {
    switch (dtype) {
    case DG_ST_F32: return "FloatStorage";
    case DG_ST_F16: return "HalfStorage";
    case DG_ST_BF16: return "BFloat16Storage";
    case DG_ST_F64: return "DoubleStorage";
    case DG_ST_I64: return "LongStorage";
    case DG_ST_I32: return "IntStorage";
    case DG_ST_I16: return "ShortStorage";
    case DG_ST_I8: return "CharStorage";
    case DG_ST_U8: return "ByteStorage";
    case DG_ST_BOOL: return "BoolStorage";
    }
    return NULL;
}

/* A contiguous tensor's strides (a dim of 0 counts as 1, as torch counts it); -1 when they
 * overflow int64, which a shape with a zero dim and huge others can (torch could not load it). */
static int contiguous_strides(const dg_st_entry *e, int64_t *stride) {
    int64_t s = 1;
    for (int d = e->ndim; d-- > 0;) {
        stride[d] = s;
        if (__builtin_mul_overflow(s, e->shape[d] > 0 ? e->shape[d] : 1, &s)) return -1;
    }
    return 0;
}

/* OrderedDict([(name, _rebuild_tensor_v2(storage i, 0, shape, contiguous stride, False,
 * OrderedDict())), ...]): the pickle torch.save writes for a state dict of contiguous tensors,
 * short of its memo entries (which no reader needs). */
static void pickle_state_dict(buf *b, const dg_st_entry *entries, int n, const size_t *nbytes) {
    op(b, 0x80); /* PROTO 2 */
    op(b, 2);
    p_global(b, "collections", "OrderedDict");
    op(b, ')');
    op(b, 'R'); /* REDUCE */
    for (int i = 0; i < n; i++) {
        const dg_st_entry *e = &entries[i];
        if (i % 1000 == 0) op(b, '('); /* SETITEMS in batches of 1000, as CPython's pickler */
        p_str(b, e->name);
        p_global(b, "torch._utils", "_rebuild_tensor_v2");
        op(b, '(');
        op(b, '('); /* the persistent id: ('storage', class, key, 'cpu', numel) */
        p_str(b, "storage");
        p_global(b, "torch", storage_class(e->dtype));
        char key[24];
        snprintf(key, sizeof key, "%d", i);
        p_str(b, key);
        p_str(b, "cpu");
        p_int(b, (int64_t)(nbytes[i] / dg_st_dtype_size(e->dtype)));
        op(b, 't');
        op(b, 'Q'); /* BINPERSID */
        p_int(b, 0);
        int64_t stride[DG_ST_MAX_DIMS];
        contiguous_strides(e, stride); /* fits: dg_pt_write checked */
        p_int_tuple(b, e->shape, e->ndim);
        p_int_tuple(b, stride, e->ndim);
        op(b, 0x89); /* NEWFALSE: requires_grad */
        p_global(b, "collections", "OrderedDict");
        op(b, ')');
        op(b, 'R');
        op(b, 't');
        op(b, 'R');
        if (i % 1000 == 999 || i == n - 1) op(b, 'u'); /* SETITEMS */
    }
    op(b, '.'); /* STOP */
}

/* ---- the zip ---- */

#define ALIGN 64 /* torch's kFieldAlignment: each entry's data starts at a multiple of it */
#define ZIP_LIMIT 0xFFFFFFFFu /* offsets and sizes beyond this need zip64, which this writer leaves out */

typedef struct {
    char name[48];
    const void *data;
    size_t len;
    uint32_t crc;
    uint64_t local; /* its local header's offset */
} record;

static uint32_t crc_of(const void *data, size_t len) {
    return (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), data, len);
}

/* The local header of r at offset `at` (the bytes so far), padded with an extra field of id
 * "FB", as torch's writer pads it, so that the data that follows starts on ALIGN. */
static void local_header(buf *b, const record *r, uint64_t at) {
    size_t name_len = strlen(r->name);
    size_t pad = (ALIGN - (size_t)((at + 30 + name_len) % ALIGN)) % ALIGN;
    if (pad && pad < 4) pad += ALIGN; /* an extra field is at least its 4-byte head */
    put_le(b, 0x04034b50, 4);
    put_le(b, 20, 2);  /* version needed: 2.0 */
    put_le(b, 0, 2);   /* flags */
    put_le(b, 0, 2);   /* stored */
    put_le(b, 0, 2);   /* time 00:00 */
    put_le(b, 0x21, 2); /* date 1980-01-01 */
    put_le(b, r->crc, 4);
    put_le(b, r->len, 4);
    put_le(b, r->len, 4);
    put_le(b, name_len, 2);
    put_le(b, pad, 2);
    put(b, r->name, name_len);
    if (pad) {
        put_le(b, 0x4246, 2);
        put_le(b, pad - 4, 2);
        for (size_t i = 4; i < pad; i++) op(b, 'Z');
    }
}

static void central_entry(buf *b, const record *r) {
    size_t name_len = strlen(r->name);
    put_le(b, 0x02014b50, 4);
    put_le(b, 0x0314, 2); /* made by: Unix, 2.0 */
    put_le(b, 20, 2);
    put_le(b, 0, 2);
    put_le(b, 0, 2);
    put_le(b, 0, 2);
    put_le(b, 0x21, 2);
    put_le(b, r->crc, 4);
    put_le(b, r->len, 4);
    put_le(b, r->len, 4);
    put_le(b, name_len, 2);
    put_le(b, 0, 2); /* extra */
    put_le(b, 0, 2); /* comment */
    put_le(b, 0, 2); /* disk */
    put_le(b, 0, 2); /* internal attributes */
    put_le(b, (uint64_t)0100644 << 16, 4); /* external: a regular file, rw-r--r-- */
    put_le(b, r->local, 4);
    put(b, r->name, name_len);
}

static char *metadata_json(const char *const *keys, const char *const *values, int n) {
    cJSON *root = cJSON_CreateObject();
    int oom = !root;
    for (int m = 0; m < n && !oom; m++) oom = !cJSON_AddStringToObject(root, keys[m], values[m]);
    char *json = oom ? NULL : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return json;
}

int dg_pt_write(const char *path, const dg_st_entry *entries, int n, const size_t *nbytes, const char *const *meta_keys,
                const char *const *meta_values, int n_meta, char *err, size_t err_len) {
    buf pkl = {0}, heads = {0}, tail = {0};
    char *json = n_meta ? metadata_json(meta_keys, meta_values, n_meta) : NULL;
    const int n_rec = n + 3 + (n_meta > 0);
    record *rec = calloc((size_t)n_rec, sizeof *rec);
    dg_chunk *chunks = calloc((size_t)n_rec * 2 + 1, sizeof *chunks);
    size_t *head_at = calloc((size_t)n_rec, sizeof *head_at);
    int rc = -1;
    if (!rec || !chunks || !head_at || (n_meta && !json)) goto oom;
    if (n_rec >= 0xFFFF) { /* 0xFFFF entries is the end record's zip64 mark */
        dg_err_set(err, err_len, path, "%d tensors: a torch.save file of more than %d tensors needs zip64, which "
                   "dnnguard does not write; write .safetensors instead", n, 0xFFFF - 1 - (n_rec - n));
        goto done;
    }
    for (int i = 0; i < n; i++) {
        int64_t stride[DG_ST_MAX_DIMS];
        if (contiguous_strides(&entries[i], stride) != 0) {
            dg_err_set(err, err_len, path, "tensor '%s': its shape's strides overflow 64 bits, which torch.load "
                       "refuses", dg_err_safe(entries[i].name).s);
            goto done;
        }
    }
    pickle_state_dict(&pkl, entries, n, nbytes);
    if (pkl.oom) goto oom;
    /* the records in torch's order: data.pkl, byteorder, the storages, version; then ours */
    int r = 0;
    rec[r++] = (record){"archive/data.pkl", pkl.p, pkl.n, 0, 0};
    rec[r++] = (record){"archive/byteorder", "little", 6, 0, 0};
    for (int i = 0; i < n; i++) {
        rec[r] = (record){"", entries[i].data, nbytes[i], 0, 0};
        snprintf(rec[r].name, sizeof rec[r].name, "archive/data/%d", i);
        r++;
    }
    rec[r++] = (record){"archive/version", "3\n", 2, 0, 0};
    if (json) {
        rec[r] = (record){"", json, strlen(json), 0, 0};
        snprintf(rec[r].name, sizeof rec[r].name, "archive/%s", DG_PT_META_ENTRY);
        r++;
    }
    /* local headers into one buffer (pointers into it are taken after it stops growing) */
    uint64_t at = 0;
    for (int i = 0; i < n_rec; i++) {
        rec[i].crc = crc_of(rec[i].data, rec[i].len);
        rec[i].local = at;
        head_at[i] = heads.n;
        local_header(&heads, &rec[i], at);
        at += (heads.n - head_at[i]) + rec[i].len;
        if (at > ZIP_LIMIT) {
            dg_err_set(err, err_len, path, "over 4 GiB of tensors: a torch.save file that large needs zip64, which "
                       "dnnguard does not write; write .safetensors instead");
            goto done;
        }
    }
    uint64_t cd_at = at;
    for (int i = 0; i < n_rec; i++) central_entry(&tail, &rec[i]);
    uint64_t cd_len = tail.n;
    if (cd_at + cd_len > ZIP_LIMIT) {
        dg_err_set(err, err_len, path, "over 4 GiB with its directory: a torch.save file that large needs zip64, "
                   "which dnnguard does not write; write .safetensors instead");
        goto done;
    }
    put_le(&tail, 0x06054b50, 4); /* the end of the central directory */
    put_le(&tail, 0, 2);
    put_le(&tail, 0, 2);
    put_le(&tail, (uint64_t)n_rec, 2);
    put_le(&tail, (uint64_t)n_rec, 2);
    put_le(&tail, cd_len, 4);
    put_le(&tail, cd_at, 4);
    put_le(&tail, 0, 2);
    if (heads.oom || tail.oom) goto oom;
    size_t c = 0;
    for (int i = 0; i < n_rec; i++) {
        size_t end = i + 1 < n_rec ? head_at[i + 1] : heads.n;
        chunks[c++] = (dg_chunk){heads.p + head_at[i], end - head_at[i]};
        chunks[c++] = (dg_chunk){rec[i].data, rec[i].len};
    }
    chunks[c++] = (dg_chunk){tail.p, tail.n};
    rc = dg_write_atomic(path, chunks, c, err, err_len);
    goto done;
oom:
    dg_err_set(err, err_len, path, "out of memory");
done:
    free(pkl.p);
    free(heads.p);
    free(tail.p);
    free(json);
    free(rec);
    free(chunks);
    free(head_at);
    return rc;
}
