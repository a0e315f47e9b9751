/* host/torch_pt.c — see torch_pt.h. Three steps, each checking every length, count and offset
 * against the bytes it has: the zip's central directory (zip64 where sizes need it) → the stored
 * entries of the archive's one folder, sorted by name; data.pkl through a pickle machine → a tree
 * of values whose tensors point at storages (entries "data/<key>"); the state dict picked from the
 * tree → tensors read in place, or copied contiguous after the file's bytes. Every value the
 * machine makes is on one list, freed at the end; the one recursion, over a whole module's
 * submodules, goes 64 deep at most, and its work is bounded by the pickle's size. */
#include "torch_pt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "error.h"

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* u64 safetensors header length that dg_st_open would try (safetensors.h's limit). */
static int plausible_safetensors(const uint8_t *b, size_t size) {
    if (size < 8) return 0;
    uint64_t hlen = le(b, 8);
    return hlen <= DG_ST_MAX_HEADER_BYTES && hlen <= size - 8;
}

/* The magic number that opens a legacy file, as protocols 0 and 1 write it (a decimal LONG). */
#define LEGACY_MAGIC_TEXT "L119547037146038801333356L\n"

/* torch.save(..., _use_new_zipfile_serialization=False) and PyTorch before 1.6: PROTO 2-5, a FRAME
 * from protocol 4 on, then the LONG1 of its 10-byte magic number; at protocols 0 and 1, no PROTO
 * and the number in decimal. Never safetensors: the header length would be 176 MB or over 10^18,
 * or its JSON would hold the byte 0x8a. */
static int legacy(const uint8_t *b, size_t size) {
    if (size >= sizeof LEGACY_MAGIC_TEXT - 1 && memcmp(b, LEGACY_MAGIC_TEXT, sizeof LEGACY_MAGIC_TEXT - 1) == 0)
        return 1;
    if (size < 13 || b[0] != 0x80 || b[1] < 2 || b[1] > 5) return 0;
    size_t at = b[2] == 0x95 ? 11 : 2;
    return b[at] == 0x8a && b[at + 1] == 10;
}

int dg_pt_claims(const uint8_t *b, size_t size) {
    if (legacy(b, size)) return 1;
    return size >= 4 && le(b, 4) == 0x04034b50 && !plausible_safetensors(b, size);
}

/* ------------------------------------------------------------------------------------------ */
/* the zip archive                                                                             */

typedef struct {
    const char *name;
    size_t name_len;
    int method;
    const uint8_t *data;
    size_t size;        /* stored (compressed) bytes */
    uint64_t usize;     /* bytes once inflated */
    uint32_t crc;
} zip_entry;

typedef struct {
    zip_entry *e;
    size_t n;
    const char *folder; /* "archive/" of "archive/data.pkl" */
    size_t folder_len;
    const zip_entry *pkl; /* that entry */
    int torchscript;      /* torch.jit.save's archive: constants.pkl and code/ beside data.pkl */
} zip_dir;

static int cmp_entry(const void *a, const void *b) {
    const zip_entry *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* The entry folder + rest, or NULL. */
static const zip_entry *zip_find(const zip_dir *z, const char *rest) {
    char name[512];
    size_t rest_len = strlen(rest);
    if (z->folder_len + rest_len >= sizeof name) return NULL;
    memcpy(name, z->folder, z->folder_len);
    memcpy(name + z->folder_len, rest, rest_len);
    zip_entry key = {.name = name, .name_len = z->folder_len + rest_len};
    return bsearch(&key, z->e, z->n, sizeof *z->e, cmp_entry);
}

/* A zip name as a C string for messages. */
static dg_safe_name entry_name(const zip_entry *e) {
    char s[128];
    size_t n = e->name_len < sizeof s - 1 ? e->name_len : sizeof s - 1;
    memcpy(s, e->name, n);
    s[n] = 0;
    return dg_err_safe(s);
}

/* The zip64 extended information of a central directory entry: the fields saturated at 0xFFFFFFFF
 * in the entry itself, in this order. */
static int zip64_extra(const uint8_t *x, size_t len, uint64_t *usize, uint64_t *csize, uint64_t *local) {
    for (size_t k = 0; k + 4 <= len;) {
        size_t id = (size_t)le(x + k, 2), n = (size_t)le(x + k + 2, 2);
        if (n > len - k - 4) return -1;
        if (id == 1) {
            const uint8_t *q = x + k + 4;
            size_t left = n;
            uint64_t *fields[3] = {usize, csize, local};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xFFFFFFFFu) continue;
                if (left < 8) return -1;
                *fields[i] = le(q, 8);
                q += 8;
                left -= 8;
            }
        }
        k += 4 + n;
    }
    return 0;
}

static int zip_read(const dg_st_file *f, zip_dir *z, char *err, size_t err_len) {
    const uint8_t *b = f->bytes;
    const size_t size = f->size;
    memset(z, 0, sizeof *z);
    if (size < 22) {
        dg_err_set(err, err_len, f->path, "%zu bytes: too short for a zip archive", size);
        return -1;
    }
    /* the end-of-central-directory record: the last one whose comment reaches the end */
    size_t eocd = SIZE_MAX, lowest = size - 22 > 65535 ? size - 22 - 65535 : 0;
    for (size_t at = size - 22 + 1; at-- > lowest;)
        if (le(b + at, 4) == 0x06054b50 && at + 22 + le(b + at + 20, 2) == size) {
            eocd = at;
            break;
        }
    if (eocd == SIZE_MAX) {
        dg_err_set(err, err_len, f->path, "a zip archive without its end record (truncated?)");
        return -1;
    }
    uint64_t entries = le(b + eocd + 10, 2), cd_size = le(b + eocd + 12, 4), cd_off = le(b + eocd + 16, 4);
    if (entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        uint64_t z64 = eocd >= 20 && le(b + eocd - 20, 4) == 0x07064b50 ? le(b + eocd - 12, 8) : UINT64_MAX;
        if (size < 56 || z64 > size - 56 || le(b + z64, 4) != 0x06064b50) {
            dg_err_set(err, err_len, f->path, "a zip64 archive whose zip64 end record is missing or damaged");
            return -1;
        }
        entries = le(b + z64 + 32, 8);
        cd_size = le(b + z64 + 40, 8);
        cd_off = le(b + z64 + 48, 8);
    }
    if (cd_off > size || cd_size > size - cd_off || entries > cd_size / 46) {
        dg_err_set(err, err_len, f->path, "the zip's central directory (%llu entries, %llu bytes at %llu) does not fit "
                   "the file", (unsigned long long)entries, (unsigned long long)cd_size, (unsigned long long)cd_off);
        return -1;
    }
    z->e = calloc(entries ? (size_t)entries : 1, sizeof *z->e);
    if (!z->e) {
        dg_err_set(err, err_len, f->path, "out of memory");
        return -1;
    }
    size_t at = (size_t)cd_off, end = (size_t)(cd_off + cd_size);
    for (size_t i = 0; i < entries; i++) {
        if (end - at < 46 || le(b + at, 4) != 0x02014b50) {
            dg_err_set(err, err_len, f->path, "zip central directory entry %zu is damaged", i);
            return -1;
        }
        size_t nlen = (size_t)le(b + at + 28, 2), xlen = (size_t)le(b + at + 30, 2), clen = (size_t)le(b + at + 32, 2);
        if (nlen + xlen + clen > end - at - 46) {
            dg_err_set(err, err_len, f->path, "zip central directory entry %zu runs past the directory", i);
            return -1;
        }
        zip_entry *e = &z->e[z->n++];
        e->name = (const char *)b + at + 46;
        e->name_len = nlen;
        e->method = (int)le(b + at + 10, 2);
        uint64_t csize = le(b + at + 20, 4), usize = le(b + at + 24, 4), local = le(b + at + 42, 4);
        if (zip64_extra(b + at + 46 + nlen, xlen, &usize, &csize, &local) != 0) {
            dg_err_set(err, err_len, f->path, "zip entry '%s' has a damaged zip64 field", entry_name(e).s);
            return -1;
        }
        if (local > size || size - local < 30 || le(b + local, 4) != 0x04034b50) {
            dg_err_set(err, err_len, f->path, "zip entry '%s': its local header is missing or damaged", entry_name(e).s);
            return -1;
        }
        uint64_t data = local + 30 + le(b + local + 26, 2) + le(b + local + 28, 2);
        if (data > size || csize > size - data || (e->method == 0 && csize != usize)) {
            dg_err_set(err, err_len, f->path, "zip entry '%s' (%llu bytes) runs past the end of the file", entry_name(e).s,
                       (unsigned long long)csize);
            return -1;
        }
        e->data = b + data;
        e->size = (size_t)csize;
        e->usize = usize;
        e->crc = (uint32_t)le(b + at + 16, 4);
        at += 46 + nlen + xlen + clen;
    }
    qsort(z->e, z->n, sizeof *z->e, cmp_entry);
    for (size_t i = 1; i < z->n; i++)
        if (cmp_entry(&z->e[i - 1], &z->e[i]) == 0) { /* which one would a reader take? */
            dg_err_set(err, err_len, f->path, "zip entry '%s' appears twice", entry_name(&z->e[i]).s);
            return -1;
        }
    /* the folder: of the one entry "<folder>/data.pkl" with no other slash */
    for (size_t i = 0; i < z->n; i++) {
        const zip_entry *e = &z->e[i];
        if (e->name_len < 10 || memcmp(e->name + e->name_len - 9, "/data.pkl", 9) != 0) continue;
        if (memchr(e->name, '/', e->name_len - 9)) continue;
        if (z->folder) {
            dg_err_set(err, err_len, f->path, "a zip archive with more than one data.pkl: not one torch.save file");
            return -1;
        }
        if (e->name_len > 300) {
            dg_err_set(err, err_len, f->path, "a folder name of %zu bytes in the zip archive: too long", e->name_len - 9);
            return -1;
        }
        z->folder = e->name;
        z->folder_len = e->name_len - 8;
        z->pkl = e;
    }
    if (!z->folder) {
        dg_err_set(err, err_len, f->path, "a zip archive but not a PyTorch checkpoint (no <folder>/data.pkl entry)");
        return -1;
    }
    z->torchscript = zip_find(z, "constants.pkl") != NULL; /* its data.pkl is the module's attributes */
    const zip_entry *order = zip_find(z, "byteorder");
    if (order && !(order->method == 0 && order->size == 6 && memcmp(order->data, "little", 6) == 0)) {
        char said[17] = {0};
        memcpy(said, order->data, order->method == 0 && order->size < 16 ? order->size : 0);
        dg_err_set(err, err_len, f->path, "its tensors are not little-endian (byteorder entry '%s')", dg_err_safe(said).s);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* the pickle machine                                                                          */

/* OPAQUE: an object of some class, built by REDUCE or NEWOBJ without calling anything (a
 * checkpoint's argparse.Namespace, a numpy scalar): allowed anywhere but among the weights. */
typedef enum {
    V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR, V_OPAQUE
} vkind;

typedef struct value value;

/* a string key of a dict (or item of a list) and the index of its value (of itself) in items */
typedef struct sorted_key {
    value *key;
    size_t at;
} sorted_key;

typedef struct tensor_view {
    value *storage;
    int64_t offset;         /* in elements */
    int ndim;
    int64_t size[DG_ST_MAX_DIMS], stride[DG_ST_MAX_DIMS];
} tensor_view;

struct value {
    vkind kind;
    dg_st_dtype dtype;      /* STORAGE */
    value *next_made;       /* every value made, for freeing */
    int64_t i;              /* BOOL, INT */
    char *s;                /* STR (bytes too), GLOBAL and OPAQUE "module.name": NUL-terminated, len bytes */
    size_t len;
    value **items;          /* TUPLE, LIST; DICT: key, value, key, value, ... */
    size_t n, cap;
    size_t bytes;           /* STORAGE: its zip entry's size */
    size_t uses;            /* STORAGE: tensors of the state dict on it */
    size_t file_offset;     /* STORAGE: of its zip entry's data in the file's bytes */
    tensor_view *view;      /* TENSOR */
    value *state;           /* OPAQUE: a copy of the dict its BUILD gave (a module's __dict__, a
                             * TorchScript object's attributes), or a copy of a set's items (a list) */
    sorted_key *sorted;     /* DICT, LIST: its string keys sorted (sort_keys), once read for modules */
    size_t n_sorted;
};

typedef struct {
    const dg_st_file *f;
    const zip_dir *z;
    const uint8_t *p;       /* data.pkl */
    size_t len, at;
    value *made;
    value **stack;
    size_t depth, stack_cap;
    size_t *marks;          /* stack depths at each MARK */
    size_t n_marks, marks_cap;
    value **memo;
    size_t memo_cap, memo_count;  /* MEMOIZE stores at memo_count, the number of entries (CPython) */
    size_t spent, budget;         /* bytes the values took, and the most they may */
    value none, yes, no, empty;   /* immutable values shared by every push of them */
    value **storages;             /* by key (storage_slot) */
    size_t storages_cap, storages_count;
    int after_stop;               /* run() is done: errors name no byte of the pickle */
    size_t visits;                /* modules walked by module_state_dict */
    uint64_t work;                /* and the entries it scanned (spend) */
    struct ts_class *classes;     /* TorchScript classes read from the archive's code (ts_class_of) */
    size_t n_classes, classes_cap;
    size_t *class_slots, class_slots_cap; /* their index by name: open addressing, SIZE_MAX empty */
    struct ts_file *files;        /* its code files, each inflated once (ts_file_of) */
    size_t n_files, files_cap;
    char *err;
    size_t err_len;
    int failed;
} vm;

static uint64_t dg_pt_hash(const char *s) { /* FNV-1a */
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int fail(vm *m, const char *fmt, const char *detail) {
    if (!m->failed) {
        char what[800];
        snprintf(what, sizeof what, fmt, detail ? detail : "");
        if (m->after_stop) dg_err_set(m->err, m->err_len, m->f->path, "data.pkl: %s", what);
        else dg_err_set(m->err, m->err_len, m->f->path, "data.pkl byte %zu: %s", m->at, what);
    }
    m->failed = 1;
    return -1;
}

/* Room for want elements at *ptr (capacity *cap): the exact size first, then doubling; charged to
 * *spent, and refused past budget (*spent <= budget always). */
static int grow(void *ptr, size_t *cap, size_t want, size_t elem, size_t *spent, size_t budget) {
    if (want <= *cap) return 0;
    size_t c = *cap ? *cap : want;
    while (c < want) c = c > SIZE_MAX / 4 / elem ? want : c * 2;
    if (c > SIZE_MAX / elem || (c - *cap) * elem > budget - *spent) return -1;
    void *g = realloc(*(void **)ptr, c * elem);
    if (!g) return -1;
    *spent += (c - *cap) * elem;
    *(void **)ptr = g;
    *cap = c;
    return 0;
}

/* The values of a pickle may take this many bytes per byte of it, and 16 MiB besides: torch.save's
 * own take about 20 (an entry of ~60 bytes makes ~17 values), a hostile one of 1-byte opcodes
 * that each make a value is held to this. */
#define SPEND_PER_BYTE 64

/* Charges bytes to the budget (spent never passes it). */
static int charge(vm *m, size_t bytes) {
    if (bytes > m->budget - m->spent) return fail(m, "the pickle makes more objects than its size allows", NULL);
    m->spent += bytes;
    return 0;
}

static value *make(vm *m, vkind kind) {
    if (charge(m, sizeof(value)) != 0) return NULL;
    value *v = calloc(1, sizeof *v);
    if (!v) {
        fail(m, "out of memory", NULL);
        return NULL;
    }
    v->kind = kind;
    v->next_made = m->made;
    m->made = v;
    return v;
}

static int push(vm *m, value *v) {
    if (!v) return -1;
    if (grow(&m->stack, &m->stack_cap, m->depth + 1, sizeof *m->stack, &m->spent, m->budget) != 0)
        return fail(m, "out of memory, or more than the pickle's size allows", NULL);
    m->stack[m->depth++] = v;
    return 0;
}

static value *pop(vm *m) {
    size_t floor = m->n_marks ? m->marks[m->n_marks - 1] : 0;
    if (m->depth <= floor) {
        fail(m, "pops an empty stack", NULL);
        return NULL;
    }
    return m->stack[--m->depth];
}

static value *top(vm *m) {
    size_t floor = m->n_marks ? m->marks[m->n_marks - 1] : 0;
    if (m->depth <= floor) {
        fail(m, "reads an empty stack", NULL);
        return NULL;
    }
    return m->stack[m->depth - 1];
}

/* The items pushed since the last MARK: *n of them at m->stack + *from; the mark is removed and
 * the caller drops the items (m->depth = *from). */
static int since_mark(vm *m, size_t *from, size_t *n) {
    if (!m->n_marks) return fail(m, "no MARK to pop back to", NULL);
    *from = m->marks[--m->n_marks];
    *n = m->depth - *from;
    return 0;
}

static int append_items(vm *m, value *to, value *const *items, size_t n) {
    if (n == 0) return 0; /* (to->items may still be NULL) */
    if (n > SIZE_MAX / 2 - to->n || grow(&to->items, &to->cap, to->n + n, sizeof *to->items, &m->spent, m->budget) != 0)
        return fail(m, "out of memory, or more than the pickle's size allows", NULL);
    memcpy(to->items + to->n, items, n * sizeof *items);
    to->n += n;
    return 0;
}

static value *make_seq(vm *m, vkind kind, value *const *items, size_t n) {
    value *v = make(m, kind);
    if (v && append_items(m, v, items, n) != 0) return NULL;
    return v;
}

static const uint8_t *take(vm *m, size_t n) {
    if (n > m->len - m->at) {
        fail(m, "runs past the end of the pickle", NULL);
        return NULL;
    }
    const uint8_t *q = m->p + m->at;
    m->at += n;
    return q;
}

static value *make_str(vm *m, const uint8_t *q, size_t n) {
    value *v = make(m, V_STR);
    if (!v) return NULL;
    if (charge(m, n + 1) != 0) return NULL;
    v->s = malloc(n + 1);
    if (!v->s) {
        fail(m, "out of memory", NULL);
        return NULL;
    }
    memcpy(v->s, q, n);
    v->s[n] = 0;
    v->len = n;
    return v;
}

/* A newline-terminated line of GLOBAL's operand. */
static const uint8_t *line(vm *m, size_t *n) {
    const uint8_t *q = m->p + m->at, *nl = memchr(q, '\n', m->len - m->at);
    if (!nl) {
        fail(m, "GLOBAL without its newline", NULL);
        return NULL;
    }
    *n = (size_t)(nl - q);
    m->at += *n + 1;
    return q;
}

static value *make_global(vm *m, const uint8_t *mod, size_t mod_len, const uint8_t *name, size_t name_len) {
    if (mod_len > 200 || name_len > 200) {
        fail(m, "a GLOBAL name over 200 bytes", NULL);
        return NULL;
    }
    value *v = make(m, V_GLOBAL);
    if (!v || charge(m, mod_len + name_len + 2) != 0) return NULL;
    v->s = malloc(mod_len + name_len + 2);
    if (!v->s) {
        fail(m, "out of memory", NULL);
        return NULL;
    }
    memcpy(v->s, mod, mod_len);
    v->s[mod_len] = '.';
    memcpy(v->s + mod_len + 1, name, name_len);
    v->len = mod_len + 1 + name_len;
    v->s[v->len] = 0;
    return v;
}

static int memo_put(vm *m, size_t idx) {
    value *v = top(m);
    if (!v) return -1;
    if (idx >= ((size_t)1 << 24) || idx > m->len) return fail(m, "a memo index out of range", NULL);
    size_t old = m->memo_cap;
    if (grow(&m->memo, &m->memo_cap, idx + 1, sizeof *m->memo, &m->spent, m->budget) != 0)
        return fail(m, "out of memory, or more than the pickle's size allows", NULL);
    if (m->memo_cap > old) memset(m->memo + old, 0, (m->memo_cap - old) * sizeof *m->memo);
    m->memo_count += m->memo[idx] == NULL;
    m->memo[idx] = v;
    return 0;
}

static int memo_get(vm *m, size_t idx) {
    if (idx >= m->memo_cap || !m->memo[idx]) return fail(m, "a memo entry that was never stored", NULL);
    return push(m, m->memo[idx]);
}

static const struct {
    const char *name;
    dg_st_dtype dtype;
} storage_types[] = {
    {"torch.FloatStorage", DG_ST_F32}, {"torch.HalfStorage", DG_ST_F16},  {"torch.BFloat16Storage", DG_ST_BF16},
    {"torch.DoubleStorage", DG_ST_F64}, {"torch.LongStorage", DG_ST_I64}, {"torch.IntStorage", DG_ST_I32},
    {"torch.ShortStorage", DG_ST_I16}, {"torch.CharStorage", DG_ST_I8},   {"torch.ByteStorage", DG_ST_U8},
    {"torch.BoolStorage", DG_ST_BOOL},
};

/* The slot of the storage called key in the vm's table of storages (open addressing, at most half
 * full): the storage, or an empty slot for it; NULL when the table cannot grow. */
static value **storage_slot(vm *m, const char *key) {
    if (2 * (m->storages_count + 1) > m->storages_cap) {
        size_t cap = m->storages_cap ? 2 * m->storages_cap : 64;
        if (charge(m, cap * sizeof(value *)) != 0) return NULL;
        value **grown = calloc(cap, sizeof *grown);
        if (!grown) {
            fail(m, "out of memory", NULL);
            return NULL;
        }
        for (size_t i = 0; i < m->storages_cap; i++) {
            value *v = m->storages[i];
            if (!v) continue;
            size_t h = (size_t)dg_pt_hash(v->s) & (cap - 1);
            while (grown[h]) h = (h + 1) & (cap - 1);
            grown[h] = v;
        }
        free(m->storages);
        m->storages = grown;
        m->storages_cap = cap;
    }
    size_t h = (size_t)dg_pt_hash(key) & (m->storages_cap - 1);
    while (m->storages[h] && strcmp(m->storages[h]->s, key) != 0) h = (h + 1) & (m->storages_cap - 1);
    return &m->storages[h];
}

/* BINPERSID's id: ("storage", storage type, key, location, numel) → the storage "data/<key>" of
 * numel elements. torch.load keeps one storage per key, typed as its first reference: a second
 * reference is that same value, and one of another type is refused. */
static value *storage(vm *m, const value *pid) {
    if (pid->kind != V_TUPLE || pid->n != 5 || pid->items[0]->kind != V_STR || strcmp(pid->items[0]->s, "storage") ||
        pid->items[1]->kind != V_GLOBAL || pid->items[2]->kind != V_STR || pid->items[4]->kind != V_INT ||
        pid->items[4]->i < 0 || strlen(pid->items[2]->s) != pid->items[2]->len) {
        fail(m, "a persistent id that is not a storage reference", NULL);
        return NULL;
    }
    size_t t = 0, types = sizeof storage_types / sizeof *storage_types;
    while (t < types && strcmp(storage_types[t].name, pid->items[1]->s) != 0) t++;
    if (t == types) {
        fail(m, "a storage of type %s, which dnnguard does not read", dg_err_safe(pid->items[1]->s).s);
        return NULL;
    }
    value **slot = storage_slot(m, pid->items[2]->s);
    if (!slot) return NULL;
    if (*slot) {
        if ((*slot)->dtype != storage_types[t].dtype) {
            fail(m, "storage '%s' is referenced with two different types", dg_err_safe((*slot)->s).s);
            return NULL;
        }
        return *slot;
    }
    value *v = make(m, V_STORAGE);
    if (!v) return NULL;
    v->dtype = storage_types[t].dtype;
    if (charge(m, pid->items[2]->len + 1) != 0 || !(v->s = strdup(pid->items[2]->s))) return NULL;
    v->len = pid->items[2]->len;
    char rest[300];
    snprintf(rest, sizeof rest, "data/%s", pid->items[2]->s);
    const zip_entry *e = pid->items[2]->len < 200 ? zip_find(m->z, rest) : NULL;
    if (!e) {
        fail(m, "storage '%s' has no data entry in the archive", dg_err_safe(pid->items[2]->s).s);
        return NULL;
    }
    if (e->method != 0) {
        fail(m, "storage '%s' is compressed; torch.save stores its entries as they are", dg_err_safe(pid->items[2]->s).s);
        return NULL;
    }
    uint64_t numel = (uint64_t)pid->items[4]->i;
    if (numel > SIZE_MAX / 8 || numel * dg_st_dtype_size(v->dtype) != e->size) {
        fail(m, "storage '%s' has another size in the archive than its reference says", dg_err_safe(v->s).s);
        return NULL;
    }
    v->bytes = e->size;
    v->file_offset = (size_t)(e->data - m->f->bytes);
    *slot = v;
    m->storages_count++;
    return v;
}

/* A tuple of ints (a tensor's size or stride) into out[ndim]. */
static int int_tuple(vm *m, const value *t, int64_t *out, int *ndim, const char *what) {
    if (t->kind != V_TUPLE || t->n > DG_ST_MAX_DIMS) return fail(m, "a tensor's %s is not a tuple of at most 8 ints", what);
    for (size_t i = 0; i < t->n; i++) {
        if (t->items[i]->kind != V_INT || t->items[i]->i < 0)
            return fail(m, "a tensor's %s holds something other than an int >= 0", what);
        out[i] = t->items[i]->i;
    }
    *ndim = (int)t->n;
    return 0;
}

/* An object of class `name` that a pickle builds (REDUCE of an unknown callable, NEWOBJ, OBJ,
 * INST): nothing is called; it may sit anywhere but among the weights (fill_tensors refuses it). */
static value *opaque_named(vm *m, const char *name) {
    value *v = make(m, V_OPAQUE);
    size_t n = strlen(name);
    if (!v || charge(m, n + 1) != 0 || !(v->s = strdup(name))) return NULL;
    v->len = n;
    return v;
}

static value *opaque(vm *m, const value *cls) {
    return opaque_named(m, cls && cls->kind == V_GLOBAL ? cls->s : "object");
}

/* REDUCE: the few callables of a saved state dict are interpreted; any other makes an opaque
 * object. Nothing is ever called. */
static value *reduce(vm *m, const value *fn, const value *args) {
    if (args->kind != V_TUPLE) {
        fail(m, "REDUCE with arguments that are not a tuple", NULL);
        return NULL;
    }
    const char *name = fn->kind == V_GLOBAL ? fn->s : "";
    if (strcmp(name, "collections.OrderedDict") == 0 && args->n == 0) return make(m, V_DICT);
    if (strcmp(name, "torch._utils._rebuild_tensor_v2") == 0 && (args->n == 6 || args->n == 7)) {
        value *st = args->items[0];
        const value *off = args->items[1];
        if (st->kind != V_STORAGE || off->kind != V_INT || off->i < 0) {
            fail(m, "_rebuild_tensor_v2 without a storage and an offset >= 0", NULL);
            return NULL;
        }
        value *t = make(m, V_TENSOR);
        if (!t || charge(m, sizeof *t->view) != 0 || !(t->view = calloc(1, sizeof *t->view))) return NULL;
        tensor_view *view = t->view;
        int nd_stride = 0;
        if (int_tuple(m, args->items[2], view->size, &view->ndim, "size") != 0 ||
            int_tuple(m, args->items[3], view->stride, &nd_stride, "stride") != 0)
            return NULL;
        if (nd_stride != view->ndim) {
            fail(m, "a tensor whose size and stride differ in length", NULL);
            return NULL;
        }
        view->storage = st;
        view->offset = off->i;
        return t;
    }
    if ((strcmp(name, "torch._utils._rebuild_parameter") == 0 && args->n == 3) ||
        (strcmp(name, "torch._utils._rebuild_parameter_with_state") == 0 && args->n == 4)) {
        if (args->items[0]->kind != V_TENSOR) {
            fail(m, "a parameter without a tensor", NULL);
            return NULL;
        }
        return args->items[0];
    }
    value *obj = opaque(m, fn);
    if (obj && (strcmp(name, "__builtin__.set") == 0 || strcmp(name, "builtins.set") == 0) && args->n == 1 &&
        args->items[0]->kind == V_LIST) /* protocol 2's set: its items, for a module's non-persistent buffers */
        obj->state = make_seq(m, V_LIST, args->items[0]->items, args->items[0]->n); /* set() copies */
    return obj;
}

/* Protocols 0 and 1 (no PROTO opcode: their text forms of numbers and containers) are not read. */
#define PROTOCOL_REFUSED "pickle protocol %s is not read (save with torch.save's default protocol 2, or 3 to 5)"

/* Runs data.pkl to its STOP; the result, or NULL (m->err says why). */
static value *run(vm *m) {
    if (m->len == 0 || m->p[0] != 0x80) /* every pickle of protocol 2 or later opens with PROTO */
        return fail(m, PROTOCOL_REFUSED, "0 or 1"), NULL;
    for (;;) {
        const uint8_t *q = take(m, 1);
        if (!q) return NULL;
        int op = *q;
        size_t from = 0, n = 0;
        value *v, *k, *d;
        switch (op) {
        case 0x80: /* PROTO */
            if (!(q = take(m, 1))) return NULL;
            if (*q < 2 || *q > 5) {
                char number[8];
                snprintf(number, sizeof number, "%d", *q);
                return fail(m, PROTOCOL_REFUSED, number), NULL;
            }
            break;
        case 0x95: /* FRAME: a length hint */
            if (!take(m, 8)) return NULL;
            break;
        case '.': /* STOP */
            return pop(m);
        case '(':
            if (grow(&m->marks, &m->marks_cap, m->n_marks + 1, sizeof *m->marks, &m->spent, m->budget) != 0)
                return fail(m, "out of memory, or more than the pickle's size allows", NULL), NULL;
            m->marks[m->n_marks++] = m->depth;
            break;
        case '0': /* POP */
            if (!pop(m)) return NULL;
            break;
        case '1': /* POP_MARK */
            if (since_mark(m, &from, &n) != 0) return NULL;
            m->depth = from;
            break;
        case '2': /* DUP */
            if (!(v = top(m)) || push(m, v) != 0) return NULL;
            break;
        case 'N': if (push(m, &m->none) != 0) return NULL; break;
        case 0x88: if (push(m, &m->yes) != 0) return NULL; break; /* NEWTRUE */
        case 0x89: if (push(m, &m->no) != 0) return NULL; break;  /* NEWFALSE */
        case 'J': case 'K': case 'M': { /* BININT (signed 4), BININT1, BININT2 */
            size_t w = op == 'J' ? 4 : op == 'K' ? 1 : 2;
            if (!(q = take(m, w)) || !(v = make(m, V_INT))) return NULL;
            v->i = op == 'J' ? (int64_t)(int32_t)(uint32_t)le(q, 4) : (int64_t)le(q, (int)w);
            if (push(m, v) != 0) return NULL;
            break;
        }
        case 0x8a: { /* LONG1: n little-endian two's-complement bytes */
            if (!(q = take(m, 1))) return NULL;
            size_t w = *q;
            if (w > 8) return fail(m, "an integer wider than 64 bits", NULL), NULL;
            if (!(q = take(m, w)) || !(v = make(m, V_INT))) return NULL;
            uint64_t u = w ? le(q, (int)w) : 0;
            if (w && w < 8 && (q[w - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * w);
            v->i = (int64_t)u;
            if (push(m, v) != 0) return NULL;
            break;
        }
        case 'G': /* BINFLOAT, big-endian: its value is never needed */
            if (!take(m, 8) || push(m, make(m, V_FLOAT)) != 0) return NULL;
            break;
        case 'X': case 0x8c: case 0x8d: case 'U': case 'T': case 'B': case 'C': case 0x8e: { /* strings, bytes */
            size_t w = op == 0x8c || op == 'U' || op == 'C' ? 1 : op == 0x8d || op == 0x8e ? 8 : 4;
            if (!(q = take(m, w))) return NULL;
            uint64_t len = le(q, (int)w);
            if (len > m->len - m->at) return fail(m, "a string runs past the end of the pickle", NULL), NULL;
            if (!(q = take(m, (size_t)len)) || push(m, make_str(m, q, (size_t)len)) != 0) return NULL;
            break;
        }
        case ')': if (push(m, &m->empty) != 0) return NULL; break;
        case ']': if (push(m, make(m, V_LIST)) != 0) return NULL; break;
        case '}': if (push(m, make(m, V_DICT)) != 0) return NULL; break;
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            n = (size_t)(op - 0x84);
            size_t floor = m->n_marks ? m->marks[m->n_marks - 1] : 0;
            if (m->depth - floor < n) return fail(m, "TUPLE%s of too few items", op == 0x85 ? "1" : op == 0x86 ? "2" : "3"), NULL;
            if (!(v = make_seq(m, V_TUPLE, m->stack + m->depth - n, n))) return NULL;
            m->depth -= n;
            if (push(m, v) != 0) return NULL;
            break;
        }
        case 't': case 'l': case 'd': /* TUPLE, LIST, DICT of the items since MARK */
            if (since_mark(m, &from, &n) != 0) return NULL;
            if (op == 'd' && n % 2) return fail(m, "DICT of an odd number of items", NULL), NULL;
            if (!(v = make_seq(m, op == 't' ? V_TUPLE : op == 'l' ? V_LIST : V_DICT, m->stack + from, n))) return NULL;
            m->depth = from;
            if (push(m, v) != 0) return NULL;
            break;
        case 'a': /* APPEND */
            if (!(v = pop(m)) || !(d = top(m))) return NULL;
            if (d->kind != V_LIST) return fail(m, "APPEND to something other than a list", NULL), NULL;
            if (append_items(m, d, &v, 1) != 0) return NULL;
            break;
        case 'e': case 'u': /* APPENDS, SETITEMS */
            if (since_mark(m, &from, &n) != 0) return NULL;
            m->depth = from;
            if (!(d = top(m))) return NULL;
            if (d->kind != (op == 'e' ? V_LIST : V_DICT) || (op == 'u' && n % 2))
                return fail(m, op == 'e' ? "APPENDS to something other than a list" : "SETITEMS on something other than a "
                            "dict, or of an odd number of items", NULL), NULL;
            if (append_items(m, d, m->stack + from, n) != 0) return NULL;
            break;
        case 's': /* SETITEM */
            if (!(v = pop(m)) || !(k = pop(m)) || !(d = top(m))) return NULL;
            if (d->kind != V_DICT) return fail(m, "SETITEM on something other than a dict", NULL), NULL;
            {
                value *kv[2] = {k, v};
                if (append_items(m, d, kv, 2) != 0) return NULL;
            }
            break;
        case 'q': case 'r': case 0x94: /* BINPUT, LONG_BINPUT, MEMOIZE */
            if (op == 0x94) {
                if (memo_put(m, m->memo_count) != 0) return NULL;
            } else {
                if (!(q = take(m, op == 'q' ? 1 : 4)) || memo_put(m, (size_t)le(q, op == 'q' ? 1 : 4)) != 0) return NULL;
            }
            break;
        case 'h': case 'j': /* BINGET, LONG_BINGET */
            if (!(q = take(m, op == 'h' ? 1 : 4)) || memo_get(m, (size_t)le(q, op == 'h' ? 1 : 4)) != 0) return NULL;
            break;
        case 'c': { /* GLOBAL "module\nname\n" */
            size_t ml, nl;
            const uint8_t *mod = line(m, &ml), *name = mod ? line(m, &nl) : NULL;
            if (!name || push(m, make_global(m, mod, ml, name, nl)) != 0) return NULL;
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            if (!(v = pop(m)) || !(k = pop(m))) return NULL;
            if (k->kind != V_STR || v->kind != V_STR) return fail(m, "STACK_GLOBAL of non-strings", NULL), NULL;
            if (push(m, make_global(m, (const uint8_t *)k->s, k->len, (const uint8_t *)v->s, v->len)) != 0) return NULL;
            break;
        case 'R': /* REDUCE */
            if (!(v = pop(m)) || !(k = pop(m)) || push(m, reduce(m, k, v)) != 0) return NULL;
            break;
        case 'Q': /* BINPERSID */
            if (!(v = pop(m)) || push(m, storage(m, v)) != 0) return NULL;
            break;
        case 'b': /* BUILD: a state for the object below: an OrderedDict's _metadata, an object's fields */
            if (!(v = pop(m)) || !(d = top(m))) return NULL;
            if (d->kind != V_DICT && d->kind != V_OPAQUE) /* a tensor's state would change what it holds */
                return fail(m, "BUILD of a tensor or of a value that takes no state", NULL), NULL;
            if (d->kind == V_OPAQUE) { /* kept as given (nothing is called): (dict, slots) or the dict */
                value *given = v->kind == V_TUPLE && v->n == 2 ? v->items[0] : v;
                if (given->kind == V_DICT && d->state) /* torch.save builds an object once */
                    return fail(m, "BUILD of one object twice", NULL), NULL;
                /* Python copies it into the object's __dict__: later changes to this dict are not its */
                if (given->kind == V_DICT && !(d->state = make_seq(m, V_DICT, given->items, given->n))) return NULL;
            }
            break;
        case 0x8f: /* EMPTY_SET (protocol 4) */
            if (!(v = opaque_named(m, "builtins.set")) || !(v->state = make(m, V_LIST)) || push(m, v) != 0) return NULL;
            break;
        case 0x90: /* ADDITEMS: MARK items... onto the set below the mark */
            if (since_mark(m, &from, &n) != 0) return NULL;
            m->depth = from;
            if (!(d = top(m))) return NULL;
            if (d->kind != V_OPAQUE || !d->state || d->state->kind != V_LIST || strcmp(d->s, "builtins.set") != 0)
                return fail(m, "ADDITEMS to something other than a set", NULL), NULL;
            if (append_items(m, d->state, m->stack + from, n) != 0) return NULL;
            break;
        case 0x91: /* FROZENSET: MARK items... */
            if (since_mark(m, &from, &n) != 0) return NULL;
            m->depth = from;
            if (!(v = opaque_named(m, "builtins.frozenset")) || !(v->state = make_seq(m, V_LIST, m->stack + from, n)) ||
                push(m, v) != 0)
                return NULL;
            break;
        case 0x81: /* NEWOBJ cls args */
            if (!(v = pop(m)) || !(k = pop(m)) || push(m, opaque(m, k)) != 0) return NULL;
            break;
        case 0x92: /* NEWOBJ_EX cls args kwargs */
            if (!(v = pop(m)) || !(v = pop(m)) || !(k = pop(m)) || push(m, opaque(m, k)) != 0) return NULL;
            break;
        case 'o': /* OBJ: MARK cls args... */
            if (since_mark(m, &from, &n) != 0) return NULL;
            m->depth = from;
            if (push(m, opaque(m, n ? m->stack[from] : NULL)) != 0) return NULL;
            break;
        case 'i': { /* INST "module\nname\n": MARK args... */
            size_t ml, nl;
            const uint8_t *mod = line(m, &ml), *name = mod ? line(m, &nl) : NULL;
            value *cls = name ? make_global(m, mod, ml, name, nl) : NULL;
            if (!cls || since_mark(m, &from, &n) != 0) return NULL;
            m->depth = from;
            if (push(m, opaque(m, cls)) != 0) return NULL;
            break;
        }
        default: {
            char hex[8];
            snprintf(hex, sizeof hex, "0x%02x", op);
            return fail(m, "pickle opcode %s, which a saved state dict does not use", hex), NULL;
        }
        }
        if (m->failed) return NULL;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the state dict                                                                              */

static size_t tensor_entries(const value *d) {
    size_t n = 0;
    for (size_t i = 0; i + 1 < d->n; i += 2) n += d->items[i + 1]->kind == V_TENSOR;
    return n;
}

static int utf8_string(const value *k) {
    return k->kind == V_STR && k->len > 0 && strlen(k->s) == k->len &&
           dg_st_utf8_check((const unsigned char *)k->s, k->len) == k->len;
}

/* Work of the walk over modules (entries scanned, modules visited), bounded by the pickle's and
 * the archive's sizes, so that a small file of shared submodules, long dicts or many classes
 * cannot stall it. 0, or -1 with the vm failed. */
static int spend(vm *m, size_t units) {
    m->work += units;
    if (m->work > 1000000 + 64 * ((uint64_t)m->len + m->f->size))
        return fail(m, "more modules, or module entries, than the file's size allows", NULL);
    return m->failed ? -1 : 0;
}

static int cmp_key(const void *a, const void *b) {
    return strcmp(((const sorted_key *)a)->key->s, ((const sorted_key *)b)->key->s);
}

/* The string keys of d (a dict: its keys; a list: its items) with their places, sorted by key,
 * into d->sorted (once); repeated ones are left for the caller to see. 0, or -1 with the vm failed. */
static int sort_keys(vm *m, value *d) {
    if (d->sorted) return 0;
    int dict = d->kind == V_DICT;
    size_t count = dict ? d->n / 2 : d->n, k = 0;
    if (spend(m, count) != 0) return -1;
    if (!(d->sorted = malloc(sizeof *d->sorted * (count + 1)))) return fail(m, "out of memory", NULL);
    for (size_t i = 0; i < count; i++) {
        value *s = d->items[dict ? 2 * i : i];
        if (s->kind == V_STR) d->sorted[k++] = (sorted_key){s, dict ? 2 * i + 1 : i};
    }
    qsort(d->sorted, k, sizeof *d->sorted, cmp_key);
    d->n_sorted = k;
    return 0;
}

/* The entry of sorted d whose key is name (bsearch), or NULL. */
static const sorted_key *find_key(const value *d, const char *name) {
    value probe = {.kind = V_STR, .s = (char *)(uintptr_t)name};
    sorted_key key = {&probe, 0};
    return bsearch(&key, d->sorted, d->n_sorted, sizeof *d->sorted, cmp_key);
}

/* The first string key that sorted d (sort_keys) holds twice (Python keeps the last value; torch.save
 * never repeats one), or NULL. */
static const value *first_repeat(const value *d) {
    for (size_t i = 1; i < d->n_sorted; i++)
        if (strcmp(d->sorted[i - 1].key->s, d->sorted[i].key->s) == 0) return d->sorted[i].key;
    return NULL;
}

/* Refuses a module dict (its attributes, _parameters, _buffers, _modules) with a key given twice
 * or one that is not a non-empty UTF-8 string, and sorts its keys for dict_get; each dict once.
 * 0 or -1. */
static int no_repeats(vm *m, value *d) {
    if (!d || d->kind != V_DICT || d->sorted) return 0;
    for (size_t i = 0; i + 1 < d->n; i += 2)
        if (!utf8_string(d->items[i])) return fail(m, "a module attribute whose name is not a non-empty UTF-8 string", NULL);
    if (sort_keys(m, d) != 0) return -1;
    const value *k = first_repeat(d);
    return k ? fail(m, "a module's dict holds '%s' twice", dg_err_safe(k->s).s) : 0;
}

/* d[key] for a string key, or NULL: by its sorted keys once no_repeats checked it (they are then
 * unique), else by a scan charged to the walk's work (the last one, as a Python dict keeps it). */
static value *dict_get(vm *m, const value *d, const char *key) {
    if (!d || d->kind != V_DICT) return NULL;
    if (d->sorted) {
        const sorted_key *k = find_key(d, key);
        return k ? d->items[k->at] : NULL;
    }
    value *found = NULL;
    if (spend(m, d->n / 2) != 0) return NULL;
    for (size_t i = 0; i + 1 < d->n; i += 2)
        if (d->items[i]->kind == V_STR && strcmp(d->items[i]->s, key) == 0) found = d->items[i + 1];
    return found;
}

/* Whether the set value (a protocol-2 REDUCE or a protocol-4 EMPTY_SET) holds the string name. */
static int set_has(vm *m, const value *set, const char *name) {
    value *items = set && set->kind == V_OPAQUE ? set->state : NULL;
    if (!items || items->kind != V_LIST || sort_keys(m, items) != 0) return 0;
    return find_key(items, name) != NULL;
}

/* ---- TorchScript: what the archive's code says of a class ---- */

/* A code/ file, inflated once, with the lines where its classes begin, sorted by class name. */
typedef struct ts_file {
    const zip_entry *e;
    const char *text; /* NUL-terminated, owned by a V_STR value */
    size_t len, n_lines;
    struct ts_class_line {
        const char *name; /* in text, name_len bytes */
        size_t name_len;
        const char *line;
    } *lines;
} ts_file;

/* One declared attribute of a class, in the order of the class's slots. */
typedef struct ts_attr {
    const value *name, *type; /* V_STR: "weight", "Tensor" / "Optional[Tensor]" / "__torch__.x.Conv2d" */
} ts_attr;

/* A class: 1 a Module, 2 a module interface, 0 a script class; its attributes, and its
 * __parameters__ and __buffers__ (V_LIST of V_STR, sorted by sort_keys). */
typedef struct ts_class {
    const char *name;
    int kind;
    ts_attr *attrs;
    size_t n_attrs;
    value *params, *buffers;
} ts_class;

static int cmp_class_line(const void *a, const void *b) {
    const struct ts_class_line *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* a character of a quoted attribute name (a submodule may be called "block1-0"; never a dot, a
 * quote, a backslash, a NUL or a line break) */
static int name_char(char c) { return c && c != '"' && c != '\\' && c != '\n' && c != '.'; }

static int ident_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The code file e, inflated (stored or deflated; size and CRC-32 checked; at most 16 MiB) and
 * indexed once: every line that begins "class NAME(" or "class NAME:". NULL with the vm failed. */
static const ts_file *ts_file_of(vm *m, const zip_entry *e) {
    if (spend(m, m->n_files) != 0) return NULL;
    for (size_t i = 0; i < m->n_files; i++)
        if (m->files[i].e == e) return &m->files[i];
    if (e->usize > ((size_t)16 << 20)) return fail(m, "TorchScript code: a code file over 16 MiB", NULL), NULL;
    if (spend(m, e->size + (size_t)e->usize) != 0) return NULL;
    value *v = make(m, V_STR);
    if (!v || charge(m, (size_t)e->usize + 1) != 0) return NULL;
    if (!(v->s = malloc((size_t)e->usize + 1))) return fail(m, "out of memory", NULL), NULL;
    size_t got = SIZE_MAX;
    if (e->method == 0) {
        memcpy(v->s, e->data, e->size);
        got = e->size;
    } else if (e->method == 8 && e->size <= UINT32_MAX) {
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) return fail(m, "out of memory", NULL), NULL;
        zs.next_in = (Bytef *)(uintptr_t)e->data;
        zs.avail_in = (uInt)e->size;
        zs.next_out = (Bytef *)v->s;
        zs.avail_out = (uInt)e->usize + 1; /* one byte more, to see a stream longer than it says */
        if (inflate(&zs, Z_FINISH) == Z_STREAM_END) got = zs.total_out;
        inflateEnd(&zs);
    }
    if (got != e->usize || (uint32_t)crc32(0L, (const Bytef *)v->s, (uInt)got) != e->crc)
        return fail(m, "TorchScript code: a code file that is damaged or compressed otherwise than with deflate",
                    NULL), NULL;
    v->s[got] = 0;
    v->len = got;
    if (grow(&m->files, &m->files_cap, m->n_files + 1, sizeof *m->files, &m->spent, m->budget) != 0)
        return fail(m, "out of memory, or more than the pickle's size allows", NULL), NULL;
    ts_file *f = &m->files[m->n_files++];
    memset(f, 0, sizeof *f);
    f->e = e;
    f->text = v->s;
    f->len = got;
    size_t cap = 0;
    for (const char *p = f->text, *end = f->text + got; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if (eol - p > 6 && memcmp(p, "class ", 6) == 0) {
            const char *q = p + 6;
            while (q < eol && ident_char(*q)) q++;
            if (q > p + 6 && q < eol && (*q == '(' || *q == ':')) {
                if (grow(&f->lines, &cap, f->n_lines + 1, sizeof *f->lines, &m->spent, m->budget) != 0)
                    return fail(m, "out of memory, or more than the pickle's size allows", NULL), NULL;
                f->lines[f->n_lines++] = (struct ts_class_line){p + 6, (size_t)(q - p - 6), p};
            }
        }
        p = eol + 1;
    }
    if (f->n_lines) qsort(f->lines, f->n_lines, sizeof *f->lines, cmp_class_line);
    return f;
}

/* The names of a `["a", "b", ]` list (each followed by a comma) into a new V_LIST. */
static value *ts_name_list(vm *m, const char *p, const char *end) {
    value *list = make(m, V_LIST);
    if (!list) return NULL;
    while (p < end && *p == ' ') p++;
    if (p >= end || *p++ != '[') return fail(m, "TorchScript code: a parameter list that is not [...]", NULL), NULL;
    for (;;) {
        while (p < end && *p == ' ') p++;
        if (p < end && *p == ']') return list;
        const char *q = p + 1;
        while (q < end && name_char(*q)) q++;
        if (p >= end || *p != '"' || q == p + 1 || q + 1 >= end || q[0] != '"' || q[1] != ',')
            return fail(m, "TorchScript code: a parameter list it cannot read", NULL), NULL;
        value *s = make_str(m, (const uint8_t *)p + 1, (size_t)(q - p - 1));
        if (!s || append_items(m, list, &s, 1) != 0) return NULL;
        p = q + 2;
    }
}

/* A declared attribute of a class body line, or 0 when the line declares none: `  name : TYPE`
 * (not a Final constant) or `  __annotations__["name"] = TYPE`. -1 with the vm failed. */
static int ts_attr_line(vm *m, const char *line, const char *eol, ts_attr *a) {
    const char *p = line + 2, *name = p, *type;
    size_t name_len;
    if (strncmp(p, "__annotations__[\"", 17) == 0) {
        name = p + 17;
        const char *q = name;
        while (q < eol && name_char(*q)) q++;
        if (q == name || eol - q < 5 || memcmp(q, "\"] = ", 5) != 0)
            return fail(m, "TorchScript code: an __annotations__ line it cannot read", NULL);
        name_len = (size_t)(q - name);
        type = q + 5;
    } else {
        while (p < eol && ident_char(*p)) p++;
        if (p == name || eol - p < 3 || memcmp(p, " : ", 3) != 0) return 0;
        name_len = (size_t)(p - name);
        type = p + 3;
        if (strncmp(type, "Final[", 6) == 0) return 0; /* a constant, not a slot */
    }
    size_t type_len = (size_t)(eol - type);
    while (type_len && type[type_len - 1] == ' ') type_len--;
    a->name = make_str(m, (const uint8_t *)name, name_len);
    a->type = a->name ? make_str(m, (const uint8_t *)type, type_len) : NULL;
    return a->type ? 1 : -1;
}

/* What the archive's code says of class `name` ("__torch__.a.b.C": class C in code/__torch__/a/b.py,
 * "__torch__.C": in code/__torch__.py), read once per class (found by hash). NULL with the vm
 * failed; a class whose code is missing is an error (torch.jit.load would refuse the file). */
static const ts_class *ts_class_of(vm *m, const char *name) {
    if (strlen(name) >= 400 || strncmp(name, "__torch__.", 10) != 0)
        return fail(m, "a TorchScript class name it cannot read", NULL), NULL;
    if (2 * (m->n_classes + 1) > m->class_slots_cap) { /* the index: open addressing, at most half full */
        size_t cap = m->class_slots_cap ? 2 * m->class_slots_cap : 64;
        if (charge(m, cap * sizeof(size_t)) != 0) return NULL;
        size_t *slots = malloc(cap * sizeof *slots);
        if (!slots) return fail(m, "out of memory", NULL), NULL;
        for (size_t i = 0; i < cap; i++) slots[i] = SIZE_MAX;
        for (size_t i = 0; i < m->n_classes; i++) {
            size_t h = (size_t)dg_pt_hash(m->classes[i].name) & (cap - 1);
            while (slots[h] != SIZE_MAX) h = (h + 1) & (cap - 1);
            slots[h] = i;
        }
        free(m->class_slots);
        m->class_slots = slots;
        m->class_slots_cap = cap;
    }
    size_t h = (size_t)dg_pt_hash(name) & (m->class_slots_cap - 1);
    while (m->class_slots[h] != SIZE_MAX && strcmp(m->classes[m->class_slots[h]].name, name) != 0)
        h = (h + 1) & (m->class_slots_cap - 1);
    if (m->class_slots[h] != SIZE_MAX) return &m->classes[m->class_slots[h]];

    const char *path = name + 10, *dot = strrchr(path, '.'), *cls = dot ? dot + 1 : path;
    char rest[512];
    if (dot) {
        int n = snprintf(rest, sizeof rest, "code/__torch__/%.*s.py", (int)(dot - path), path);
        for (int i = 15; i < n - 3; i++)
            if (rest[i] == '.') rest[i] = '/';
    } else {
        snprintf(rest, sizeof rest, "code/__torch__.py");
    }
    const zip_entry *e = zip_find(m->z, rest);
    if (!e) return fail(m, "TorchScript archive without the code of class %s", dg_err_safe(name).s), NULL;
    const ts_file *file = ts_file_of(m, e);
    if (!file) return NULL;
    struct ts_class_line probe = {cls, strlen(cls), NULL};
    const struct ts_class_line *at =
        file->n_lines ? bsearch(&probe, file->lines, file->n_lines, sizeof *file->lines, cmp_class_line) : NULL;
    if (!at) return fail(m, "TorchScript archive without the code of class %s", dg_err_safe(name).s), NULL;
    if (grow(&m->classes, &m->classes_cap, m->n_classes + 1, sizeof *m->classes, &m->spent, m->budget) != 0)
        return fail(m, "out of memory, or more than the pickle's size allows", NULL), NULL;
    ts_class *c = &m->classes[m->n_classes];
    memset(c, 0, sizeof *c);
    c->name = name;
    m->class_slots[h] = m->n_classes++; /* now, so that its attributes are freed if the parse fails */
    const char *base = at->line + 6 + probe.name_len, *end = file->text + file->len;
    c->kind = strncmp(base, "(Module):", 9) == 0 ? 1 : strncmp(base, "(ModuleInterface):", 18) == 0 ? 2 : 0;
    size_t attrs_cap = 0;
    /* the class's declarations: the lines after `class` that begin with two spaces, up to its methods */
    for (const char *p = memchr(at->line, '\n', (size_t)(end - at->line)); c->kind == 1 && p && p + 3 < end &&
         p[1] == ' ' && p[2] == ' ' && p[3] != ' ' && strncmp(p + 3, "def ", 4) != 0;
         p = memchr(p + 1, '\n', (size_t)(end - p - 1))) {
        const char *line = p + 1, *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        if (spend(m, (size_t)(eol - line)) != 0) return NULL;
        value **slot = strncmp(line, "  __parameters__ =", 18) == 0 ? &c->params
                       : strncmp(line, "  __buffers__ =", 15) == 0  ? &c->buffers : NULL;
        if (slot) {
            if (*slot) return fail(m, "TorchScript code: class %s lists its parameters twice", dg_err_safe(name).s), NULL;
            if (!(*slot = ts_name_list(m, line + (slot == &c->params ? 18 : 15), eol)) || sort_keys(m, *slot) != 0)
                return NULL;
            continue;
        }
        ts_attr a;
        int r = ts_attr_line(m, line, eol, &a);
        if (r < 0) return NULL;
        if (r == 0) continue;
        if (grow(&c->attrs, &attrs_cap, c->n_attrs + 1, sizeof *c->attrs, &m->spent, m->budget) != 0)
            return fail(m, "out of memory, or more than the pickle's size allows", NULL), NULL;
        c->attrs[c->n_attrs++] = a;
    }
    if (c->kind == 1 && (!c->params || !c->buffers))
        return fail(m, "TorchScript code: class %s does not list __parameters__ and __buffers__", dg_err_safe(name).s),
               NULL;
    return c;
}

/* 1: an nn.Module pickled whole (torch.save(model)): an object whose __dict__ holds the dicts
 * _parameters and _modules (and _buffers); 2: a module of a TorchScript archive (an object of a
 * class __torch__.* that its code declares a Module); 0: neither (-1: the vm failed). */
static int module_kind(vm *m, const value *v) {
    if (m->failed) return -1;
    if (v->kind != V_OPAQUE || !v->state || v->state->kind != V_DICT) return 0;
    if (m->z->torchscript && strncmp(v->s, "__torch__.", 10) == 0) {
        const ts_class *c = ts_class_of(m, v->s);
        return c ? 2 * (c->kind == 1) : -1;
    }
    const value *params = dict_get(m, v->state, "_parameters"), *mods = dict_get(m, v->state, "_modules");
    if (m->failed) return -1;
    return params && params->kind == V_DICT && mods && mods->kind == V_DICT ? 1 : 0;
}

static int holds_tensors(const value *v) { return v->kind == V_DICT && tensor_entries(v) > 0; }

#define MODULE_NAME_MAX 4096
#define MODULE_DEPTH_MAX 64

/* prefix + name into full[MODULE_NAME_MAX] (with a dot after it when dot). 0, or -1 with the vm failed. */
static int join_name(vm *m, char *full, const char *prefix, const value *name, int dot) {
    size_t pl = strlen(prefix);
    if (pl + name->len + 2 > MODULE_NAME_MAX) return fail(m, "a parameter name over 4096 bytes", NULL);
    memcpy(full, prefix, pl);
    memcpy(full + pl, name->s, name->len);
    memcpy(full + pl + name->len, dot ? "." : "", dot ? 2 : 1);
    return 0;
}

/* out[prefix + name] = t, the key a new string */
static int add_named(vm *m, value *out, const char *prefix, const value *name, value *t) {
    char full[MODULE_NAME_MAX];
    if (join_name(m, full, prefix, name, 0) != 0) return -1;
    value *key = make_str(m, (const uint8_t *)full, strlen(full)), *kv[2] = {key, t};
    return key ? append_items(m, out, kv, 2) : -1;
}

/* A TorchScript module's state dict, as torch.jit's state_dict() names it (torch/csrc/jit/api/
 * module.h's policies): in the order of its class's slots, the parameters (attributes its code
 * lists in __parameters__ whose value is a tensor), then the buffers (listed in __buffers__ and
 * declared `Tensor`: an Optional[Tensor] one is left out, as torch leaves it), then the
 * submodules (attributes declared of a Module or module-interface class). */
static int ts_state_dict(vm *m, const value *obj, const char *prefix, int depth, value *out);

static int module_state_dict(vm *m, const value *obj, const char *prefix, int depth, value *out);

static int ts_state_dict(vm *m, const value *obj, const char *prefix, int depth, value *out) {
    const ts_class *c = ts_class_of(m, obj->s);
    value *st = obj->state;
    if (!c || no_repeats(m, st) != 0) return -1;
    ts_attr *attrs = c->attrs; /* c itself may move when ts_class_of grows the table */
    const size_t n_attrs = c->n_attrs;
    value *params = c->params, *buffers = c->buffers;
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < n_attrs; i++) {
            const ts_attr *a = &attrs[i];
            if (spend(m, 1) != 0) return -1;
            int is_param = find_key(params, a->name->s) != NULL;
            int is_buffer = !is_param && find_key(buffers, a->name->s) && strcmp(a->type->s, "Tensor") == 0;
            int is_module = 0;
            if (l == 2 && !is_param && strncmp(a->type->s, "__torch__.", 10) == 0) {
                const ts_class *t = ts_class_of(m, a->type->s);
                if (!t) return -1;
                is_module = t->kind != 0;
            }
            if (!(l == 0 ? is_param : l == 1 ? is_buffer : is_module)) continue;
            value *v = dict_get(m, st, a->name->s);
            if (!v) return fail(m, "a TorchScript module without the attribute '%s' its code declares",
                                dg_err_safe(a->name->s).s);
            if (l < 2) {
                if (v->kind == V_NONE) continue;
                if (v->kind != V_TENSOR)
                    return fail(m, "a module's parameter or buffer '%s' is not a tensor", dg_err_safe(a->name->s).s);
                if (add_named(m, out, prefix, a->name, v) != 0) return -1;
                continue;
            }
            int sub = module_kind(m, v);
            if (sub < 0) return -1;
            if (sub != 2) return fail(m, "submodule '%s' is not a TorchScript module", dg_err_safe(a->name->s).s);
            char name[MODULE_NAME_MAX];
            if (join_name(m, name, prefix, a->name, 1) != 0 || module_state_dict(m, v, name, depth + 1, out) != 0)
                return -1;
        }
    return 0;
}

/* The state dict of module obj, as module.state_dict() names it, appended to out under prefix: a
 * pickled nn.Module's parameters (None ones left out), its buffers but those in
 * _non_persistent_buffers_set, then its submodules', in their dicts' order; a TorchScript module's
 * as ts_state_dict reads it. */
static int module_state_dict(vm *m, const value *obj, const char *prefix, int depth, value *out) {
    /* a module reached along many paths (shared submodules) is walked once per path, as
     * state_dict() does; real models share few, so their paths are far fewer than their bytes */
    if (++m->visits > 100000 + m->len / 8)
        return fail(m, "more paths through shared submodules than the pickle's size allows", NULL);
    if (spend(m, 1) != 0) return -1;
    if (depth > MODULE_DEPTH_MAX) return fail(m, "modules nested more than 64 deep (a module inside itself?)", NULL);
    const int kind = module_kind(m, obj);
    if (kind < 0) return -1;
    if (kind == 2) return ts_state_dict(m, obj, prefix, depth, out);
    value *st = obj->state;
    if (no_repeats(m, st) != 0) return -1;
    value *params = dict_get(m, st, "_parameters"), *buffers = dict_get(m, st, "_buffers"),
          *mods = dict_get(m, st, "_modules");
    const value *skip = dict_get(m, st, "_non_persistent_buffers_set");
    if (buffers && buffers->kind != V_DICT) return fail(m, "a module's _buffers is not a dict", NULL);
    if (no_repeats(m, params) != 0 || no_repeats(m, buffers) != 0 || no_repeats(m, mods) != 0) return -1;
    for (int l = 0; l < 2; l++) { /* parameters, then buffers */
        const value *d = l ? buffers : params;
        for (size_t i = 0; d && i + 1 < d->n; i += 2) {
            const value *k = d->items[i];
            value *v = d->items[i + 1];
            if (spend(m, 1) != 0) return -1;
            if (v->kind == V_NONE || (l == 1 && set_has(m, skip, k->s))) continue;
            if (m->failed) return -1;
            if (v->kind != V_TENSOR) return fail(m, "a module's parameter or buffer '%s' is not a tensor", dg_err_safe(k->s).s);
            if (add_named(m, out, prefix, k, v) != 0) return -1;
        }
    }
    for (size_t i = 0; mods && i + 1 < mods->n; i += 2) { /* submodules */
        const value *k = mods->items[i];
        value *v = mods->items[i + 1];
        if (spend(m, 1) != 0) return -1;
        if (v->kind == V_NONE) continue;
        int sub_kind = module_kind(m, v);
        if (sub_kind < 0) return -1;
        if (sub_kind != 1) return fail(m, "submodule '%s' is not a module", dg_err_safe(k->s).s);
        char sub[MODULE_NAME_MAX];
        if (join_name(m, sub, prefix, k, 1) != 0 || module_state_dict(m, v, sub, depth + 1, out) != 0) return -1;
    }
    return 0;
}

/* Refuses the state dict (or the checkpoint dict around it) when it holds a string key twice.
 * 0, or -1 with err (the vm failed when sorting ran out of memory). */
static int repeated_key(vm *m, value *d) {
    if (sort_keys(m, d) != 0) return -1;
    const value *k = first_repeat(d);
    if (k) dg_err_set(m->err, m->err_len, m->f->path, "the dict holds key '%s' twice", dg_err_safe(k->s).s);
    return k ? -1 : 0;
}

/* A module's state dict as a new dict of tensors (module_state_dict), or NULL with err; *module
 * its class name, which must be UTF-8. */
static value *flatten_module(vm *m, const value *module, const char **name) {
    if (strlen(module->s) != module->len ||
        dg_st_utf8_check((const unsigned char *)module->s, module->len) != module->len)
        return fail(m, "a module whose class name is not UTF-8", NULL), NULL;
    *name = module->s;
    value *out = make(m, V_DICT);
    if (!out || module_state_dict(m, module, "", 0, out) != 0) return NULL;
    return out;
}

/* Whether v is a dict holding a tensor of one or more dimensions: weights, unlike a checkpoint's
 * dict of 0-d metrics ({"acc": tensor(0.9)}), which is passed over as its other values are. */
static int holds_weights(const value *v) {
    if (v->kind != V_DICT) return 0;
    for (size_t i = 0; i + 1 < v->n; i += 2)
        if (v->items[i + 1]->kind == V_TENSOR && v->items[i + 1]->view->ndim > 0) return 1;
    return 0;
}

/* Whether tensors a and b are one view of one storage. */
static int same_view(const tensor_view *a, const tensor_view *b) {
    if (a->storage != b->storage || a->offset != b->offset || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->size[d] != b->size[d] || a->stride[d] != b->stride[d]) return 0;
    return 1;
}

static int tensor_fits(const dg_st_file *f, const char *name, const tensor_view *t, size_t *numel, char *err,
                       size_t err_len);
static void gather(const tensor_view *t, size_t numel, const uint8_t *storage_data, uint8_t *out);

/* Whether two tensors on different storages hold the same elements, bit for bit (a state dict
 * copied with clone() or deepcopy beside its module). -1, said, when one does not fit its storage. */
static int same_values(vm *m, const char *name, const tensor_view *a, const tensor_view *b) {
    if (a->storage->dtype != b->storage->dtype || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->size[d] != b->size[d]) return 0;
    size_t n_a, n_b;
    if (tensor_fits(m->f, name, a, &n_a, m->err, m->err_len) != 0 ||
        tensor_fits(m->f, name, b, &n_b, m->err, m->err_len) != 0)
        return -1;
    size_t bytes = n_a * dg_st_dtype_size(a->storage->dtype);
    if (bytes == 0) return 1;
    uint8_t *va = malloc(bytes), *vb = malloc(bytes);
    int same = -1;
    if (va && vb) {
        gather(a, n_a, m->f->bytes + a->storage->file_offset, va);
        gather(b, n_b, m->f->bytes + b->storage->file_offset, vb);
        same = memcmp(va, vb, bytes) == 0;
    } else {
        dg_err_set(m->err, m->err_len, m->f->path, "out of memory");
    }
    free(va), free(vb);
    return same;
}

/* Whether the state dict sd holds the tensors of a module's state dict flat (flatten_module), each
 * under its name: on the same storage, as torch.save({"model": m, "state_dict": m.state_dict()})
 * writes them, or as copies with the same values; a model's EMA copy beside it holds others. -1
 * when the vm failed or a tensor does not fit its storage (said). */
static int same_tensors(vm *m, value *sd, value *flat) {
    if (tensor_entries(sd) != tensor_entries(flat)) return 0;
    if (sort_keys(m, flat) != 0) return -1;
    for (size_t i = 0; i + 1 < sd->n; i += 2) {
        const value *k = sd->items[i], *t = sd->items[i + 1];
        if (t->kind != V_TENSOR) continue;
        const sorted_key *at = k->kind == V_STR ? find_key(flat, k->s) : NULL;
        const value *u = at ? flat->items[at->at] : NULL;
        if (!u || u->kind != V_TENSOR) return 0;
        if (same_view(t->view, u->view)) continue;
        int same = same_values(m, k->s, t->view, u->view);
        if (same != 1) return same;
    }
    return 1;
}

/* A checkpoint dict's keys for messages: "'model', 'ema'" (four at most, then "..."). */
static void key_list(char *out, size_t len, const value *const *keys, size_t n) {
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && i < 4 && used < len; i++) {
        const value *k = keys[i];
        const char *sep = i ? ", " : "";
        if (utf8_string(k)) used += (size_t)snprintf(out + used, len - used, "%s'%s'", sep, dg_err_safe(k->s).s);
        else if (k->kind == V_INT) used += (size_t)snprintf(out + used, len - used, "%s%lld", sep, (long long)k->i);
        else used += (size_t)snprintf(out + used, len - used, "%s?", sep);
    }
    if (n > 4 && used < len) snprintf(out + used, len - used, ", ...");
}

/* Whether dict a holds a weight (a tensor of one or more dimensions) under a name under which dict
 * b holds a tensor: one model's weights at two levels of a checkpoint. 1, 0, or -1 with the vm failed. */
static int shares_a_weight(vm *m, const value *a, value *b) {
    if (!b || b->kind != V_DICT) return 0;
    if (sort_keys(m, b) != 0) return -1;
    for (size_t i = 0; i + 1 < a->n; i += 2) {
        const value *k = a->items[i], *v = a->items[i + 1];
        if (k->kind != V_STR || v->kind != V_TENSOR || v->view->ndim == 0) continue;
        const sorted_key *hit = find_key(b, k->s);
        if (hit && b->items[hit->at]->kind == V_TENSOR) return 1;
    }
    return 0;
}

/* Refuses a dict that holds weights itself and in its entry key (what: how the entry holds them). NULL. */
static const value *refuse_twice(vm *m, const value *key, const char *what) {
    char keys[400];
    key_list(keys, sizeof keys, &key, 1);
    dg_err_set(m->err, m->err_len, m->f->path, "a dict that holds weights itself and, under the same names, in its "
               "entry %s%s: which to check is not clear (a model and its EMA copy?); save that one alone with "
               "torch.save(model.state_dict(), path)", keys, what);
    return NULL;
}

/* The dict whose tensors are the weights, from a checkpoint dict's entries: the one that is a
 * dict of weights ({"state_dict": ..., "optimizer": ..., "epoch": ..., "best_acc1": tensor(...),
 * "metrics": {"acc": tensor(0.9)}}: a dict of 0-d tensors only is not one), else its one entry
 * that is a whole module ({"model": <module>, "ema": None, ...}, as YOLOv5's stripped checkpoints
 * hold it), else the root itself; a state dict beside a module is taken only when it holds that
 * module's own tensors, and two sets of weights (two state dicts, two modules, a module and another
 * state dict: a model and its EMA copy) are refused, naming the entries. A module (torch.save(model),
 * a TorchScript archive) gives its state dict; *entry names the entry, *module the module's class. */
static const value *state_dict(vm *m, value *root, const value **entry, const char **module) {
    const dg_st_file *f = m->f;
    char *err = m->err;
    size_t err_len = m->err_len;
    *entry = NULL;
    *module = NULL;
    int kind = module_kind(m, root);
    if (kind < 0 || m->failed || (kind && !(root = flatten_module(m, root, module)))) return NULL;
    if (root->kind != V_DICT) {
        const char *what = root->kind == V_TENSOR ? "a single tensor" : root->kind == V_OPAQUE ? root->s : "a non-dict object";
        dg_err_set(err, err_len, f->path, "holds %s%s, not a dict of tensors: dnnguard reads the files of "
                   "torch.save(model.state_dict(), path)", root->kind == V_OPAQUE ? "an object of class " : "",
                   dg_err_safe(what).s);
        return NULL;
    }
    /* the entries that hold weights, then those that are whole modules; the first of each kept */
    const value *weight_keys[5] = {0}, *module_keys[5] = {0}, *scalars_key = NULL;
    value *found = NULL, *found_module = NULL;
    size_t dicts = 0, modules = 0;
    for (size_t i = 0; i + 1 < root->n; i += 2) {
        const value *k = root->items[i];
        value *v = root->items[i + 1];
        int vk = module_kind(m, v);
        if (vk < 0 || m->failed) return NULL;
        if (holds_weights(v)) {
            if (!dicts) found = v;
            if (dicts < 5) weight_keys[dicts] = k;
            dicts++;
        } else if (holds_tensors(v)) {
            if (!scalars_key) scalars_key = k;
        } else if (vk) {
            if (!modules) found_module = v;
            if (modules < 5) module_keys[modules] = k;
            modules++;
        }
    }
    char keys[400], more[400];
    /* {**model.state_dict(), "ema": ema.state_dict()}: the top level holds weights under names its
     * entry's state dict holds too (stray tensors beside a checkpoint's entries, an RNG state or a
     * loss history, share none and are passed over as before) */
    int twice = dicts == 1 && !modules ? shares_a_weight(m, root, found) : 0;
    if (twice) return twice < 0 ? NULL : refuse_twice(m, weight_keys[0], "");
    if (dicts > 1 || modules > 1) {
        key_list(keys, sizeof keys, dicts > 1 ? weight_keys : module_keys, dicts > 1 ? dicts : modules);
        dg_err_set(err, err_len, f->path, "a dict with several entries that hold %s (%s): save the model's state dict "
                   "alone with torch.save(model.state_dict(), path)", dicts > 1 ? "tensors" : "whole modules", keys);
        return NULL;
    }
    if (modules && !utf8_string(module_keys[0])) {
        dg_err_set(err, err_len, f->path, "the entry that holds a whole module has a key that is not a UTF-8 string");
        return NULL;
    }
    if (modules) { /* a state dict beside a module is taken before it when it holds the same tensors */
        value *flat = flatten_module(m, found_module, module);
        if (!flat) return NULL;
        int twice = shares_a_weight(m, root, flat); /* the module's weights at the top level too */
        if (twice) return twice < 0 ? NULL : refuse_twice(m, module_keys[0], " (a whole module)");
        if (found) {
            int same = same_tensors(m, found, flat);
            if (same < 0) return NULL;
            if (!same) {
                key_list(keys, sizeof keys, module_keys, 1);
                key_list(more, sizeof more, weight_keys, 1);
                dg_err_set(err, err_len, f->path, "a dict whose entries %s (a whole module) and %s (a state dict) hold "
                           "different weights (a model and its EMA copy?): save the one to check alone with "
                           "torch.save(model.state_dict(), path)", keys, more);
                return NULL;
            }
            *module = NULL; /* the tensors are the state dict's */
            *entry = weight_keys[0];
        } else {
            found = flat;
            *entry = module_keys[0];
        }
    } else if (found) {
        *entry = weight_keys[0];
    }
    if (*entry && !utf8_string(*entry)) {
        dg_err_set(err, err_len, f->path, "the entry that holds the tensors has a key that is not a UTF-8 string");
        return NULL;
    }
    if (!found && !tensor_entries(root)) {
        if (scalars_key) {
            key_list(keys, sizeof keys, &scalars_key, 1);
            dg_err_set(err, err_len, f->path, "a dict with no weights: its entry %s holds 0-d tensors only (metrics?); "
                       "save the model's state dict with torch.save(model.state_dict(), path)", keys);
        } else {
            dg_err_set(err, err_len, f->path, "a dict with no tensors: save the model's state dict with "
                       "torch.save(model.state_dict(), path)");
        }
        return NULL;
    }
    if (repeated_key(m, root) != 0 || (found && repeated_key(m, found) != 0)) return NULL;
    return found ? found : root;
}

/* Checks t against its storage; its element count into *numel. */
static int tensor_fits(const dg_st_file *f, const char *name, const tensor_view *t, size_t *numel, char *err,
                       size_t err_len) {
    size_t el = dg_st_dtype_size(t->storage->dtype), storage_elems = t->storage->bytes / el;
    size_t count = 1, last = (size_t)t->offset;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t s = (uint64_t)t->size[d];
        if (s && count > SIZE_MAX / s) goto too_big;
        count *= (size_t)s;
    }
    if (count) {
        for (int d = 0; d < t->ndim; d++) {
            uint64_t step = (uint64_t)(t->size[d] - 1), stride = (uint64_t)t->stride[d];
            if (stride && step > (SIZE_MAX - last) / stride) goto too_big;
            last += (size_t)(step * stride);
        }
        if ((uint64_t)t->offset >= storage_elems || last >= storage_elems) {
            dg_err_set(err, err_len, f->path, "tensor '%s' reaches element %zu of a storage of %zu", dg_err_safe(name).s,
                       last, storage_elems);
            return -1;
        }
    }
    if (count > SIZE_MAX / 8) goto too_big;
    *numel = count;
    return 0;
too_big:
    dg_err_set(err, err_len, f->path, "tensor '%s' is too large", dg_err_safe(name).s);
    return -1;
}

/* Whether t's elements lie in row-major order, one after another, in its storage. */
static int contiguous(const tensor_view *t) {
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->size[d] != 1 && t->stride[d] != expect) return 0;
        expect *= t->size[d];
    }
    return 1;
}

/* t's elements, in row-major order, from its storage's data at storage_data, to out. */
static void gather(const tensor_view *t, size_t numel, const uint8_t *storage_data, uint8_t *out) {
    if (numel == 0) return; /* its offset need not lie in the storage */
    size_t el = dg_st_dtype_size(t->storage->dtype);
    const uint8_t *base = storage_data + (size_t)t->offset * el;
    if (contiguous(t) || numel == 1) {
        memcpy(out, base, numel * el);
        return;
    }
    int64_t index[DG_ST_MAX_DIMS] = {0};
    size_t at = 0; /* element offset of index in the storage, relative to base */
    for (size_t k = 0; k < numel; k++) {
        memcpy(out + k * el, base + at * el, el);
        for (int d = t->ndim - 1; d >= 0; d--) { /* the next index, odometer-wise */
            at += (size_t)t->stride[d];
            if (++index[d] < t->size[d]) break;
            at -= (size_t)(t->stride[d] * t->size[d]);
            index[d] = 0;
        }
    }
}

int dg_pt_reader_key(const char *key) {
    static const char *const reserved[] = {"source", "torch_entry", "torch_stripped_prefix", "torch_module"};
    for (size_t r = 0; r < sizeof reserved / sizeof *reserved; r++)
        if (strcmp(key, reserved[r]) == 0) return 1;
    return 0;
}

/* The keys the reader itself sets, from what is said about the file ("source") and what it found
 * in it: whatever an archive's metadata entry says of them is dropped, so they tell the truth. */
static void drop_reserved_meta(dg_st_file *f) {
    int kept = 0;
    for (int i = 0; i < f->n_meta; i++) {
        if (dg_pt_reader_key(f->meta_keys[i])) {
            free(f->meta_keys[i]);
            free(f->meta_values[i]);
        } else {
            f->meta_keys[kept] = f->meta_keys[i];
            f->meta_values[kept++] = f->meta_values[i];
        }
    }
    f->n_meta = kept;
}

static int add_meta(dg_st_file *f, const char *key, const char *value) {
    char **k = realloc(f->meta_keys, sizeof *k * (size_t)(f->n_meta + 1));
    if (!k) return -1;
    f->meta_keys = k;
    char **v = realloc(f->meta_values, sizeof *v * (size_t)(f->n_meta + 1));
    if (!v) return -1;
    f->meta_values = v;
    f->meta_keys[f->n_meta] = strdup(key);
    f->meta_values[f->n_meta] = strdup(value);
    if (!f->meta_keys[f->n_meta] || !f->meta_values[f->n_meta]) {
        free(f->meta_keys[f->n_meta]);
        free(f->meta_values[f->n_meta]);
        return -1;
    }
    f->n_meta++;
    return 0;
}

/* Copies of tensors, stride-0 ones written out whole, may outgrow the file this much (tied
 * weights and expanded tensors are small multiples) before the file is refused as a bomb. */
#define EXPAND_LIMIT(file_bytes) (8 * (file_bytes) + ((size_t)64 << 20))

/* The tensors of sd into f. A contiguous tensor alone on its storage is read where it lies in the
 * file's bytes; the others (views, tied weights sharing a storage) are copied contiguous into
 * room added after them, so that no two tensors overlap. */
static int fill_tensors(dg_st_file *f, const value *sd, const value *entry, const char *module, int torchscript,
                        char *err, size_t err_len) {
    size_t n = tensor_entries(sd), total = 0, prefixed = 0;
    for (size_t i = 0; i + 1 < sd->n; i += 2) {
        const value *k = sd->items[i], *t = sd->items[i + 1];
        if (t->kind == V_OPAQUE) {
            dg_err_set(err, err_len, f->path, "entry '%s' of the state dict is an object of class %s, which dnnguard "
                       "does not read", k->kind == V_STR ? dg_err_safe(k->s).s : "?", dg_err_safe(t->s).s);
            return -1;
        }
        if (t->kind != V_TENSOR) continue;
        if (!utf8_string(k)) {
            dg_err_set(err, err_len, f->path, "a tensor whose key is not a non-empty UTF-8 string");
            return -1;
        }
        prefixed += strncmp(k->s, "module.", 7) == 0 && k->len > 7;
    }
    const size_t strip = n && prefixed == n ? 7 : 0; /* DataParallel's "module." on every name */
    if (n > (size_t)INT32_MAX / 2) {
        dg_err_set(err, err_len, f->path, "%zu tensors: too many", n);
        return -1;
    }
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) goto oom;
    for (size_t i = 0; i + 1 < sd->n; i += 2)
        if (sd->items[i + 1]->kind == V_TENSOR) sd->items[i + 1]->view->storage->uses++;
    const size_t file_bytes = f->size;
    for (size_t i = 0; i + 1 < sd->n; i += 2) {
        const value *k = sd->items[i], *t = sd->items[i + 1];
        if (t->kind != V_TENSOR) continue;
        dg_st_tensor *o = &f->tensors[f->n_tensors];
        if (tensor_fits(f, k->s, t->view, &o->numel, err, err_len) != 0) return -1;
        const value *st = t->view->storage;
        size_t bytes = o->numel * dg_st_dtype_size(st->dtype);
        if (o->numel && st->uses == 1 && contiguous(t->view)) { /* where it lies */
            o->begin = st->file_offset + (size_t)t->view->offset * dg_st_dtype_size(st->dtype);
            o->end = o->begin + bytes;
        } else if (bytes > EXPAND_LIMIT(file_bytes) - total) {
            dg_err_set(err, err_len, f->path, "its copied tensors would take more than %zu bytes, 8 times the file and "
                       "64 MiB: refused as a decompression bomb", EXPAND_LIMIT(file_bytes));
            return -1;
        } else { /* copied after the file's bytes */
            o->begin = file_bytes + total;
            o->end = o->begin + bytes;
            total += bytes;
        }
        o->name = strdup(k->s + strip);
        if (!o->name) goto oom;
        f->n_tensors++;
        o->dtype = st->dtype;
        o->ndim = t->view->ndim;
        memcpy(o->shape, t->view->size, sizeof o->shape);
    }
    if (total) {
        uint8_t *grown = realloc(f->bytes, file_bytes + total); /* storages at their file offsets */
        if (!grown) goto oom;
        f->bytes = grown;
        f->size = file_bytes + total;
        size_t at = 0;
        for (size_t i = 0; i + 1 < sd->n; i += 2) {
            const value *t = sd->items[i + 1];
            if (t->kind != V_TENSOR) continue;
            const dg_st_tensor *o = &f->tensors[at++];
            if (o->begin >= file_bytes)
                gather(t->view, o->numel, grown + t->view->storage->file_offset, grown + o->begin);
        }
    }
    f->data_start = 0;
    if (add_meta(f, "source", torchscript ? "torch.jit.save" : "torch.save") != 0 ||
        (entry && add_meta(f, "torch_entry", entry->s) != 0) || (module && add_meta(f, "torch_module", module) != 0) ||
        (strip && add_meta(f, "torch_stripped_prefix", "module.") != 0))
        goto oom;
    return 0;
oom:
    dg_err_set(err, err_len, f->path, "out of memory");
    return -1;
}

int dg_pt_fill(dg_st_file *f, char *err, size_t err_len) {
    if (legacy(f->bytes, f->size)) {
        dg_err_set(err, err_len, f->path, "a PyTorch file in the legacy format (before PyTorch 1.6, or "
                   "_use_new_zipfile_serialization=False): load it and torch.save it again");
        return -1;
    }
    zip_dir z;
    vm m = {0};
    int rc = -1;
    if (zip_read(f, &z, err, err_len) != 0) goto done;
    const zip_entry *pkl = z.pkl, *meta = zip_find(&z, DG_PT_META_ENTRY);
    if (pkl->method != 0 || (meta && meta->method != 0)) {
        dg_err_set(err, err_len, f->path, "its %s is compressed; torch.save stores its entries as they are",
                   pkl->method != 0 ? "data.pkl" : DG_PT_META_ENTRY);
        goto done;
    }
    if (meta && dg_st_metadata_text(f, (const char *)meta->data, meta->size, DG_PT_META_ENTRY, err, err_len) != 0)
        goto done;
    drop_reserved_meta(f);
    m.f = f;
    m.z = &z;
    m.p = pkl->data;
    m.len = pkl->size;
    m.err = err;
    m.err_len = err_len;
    m.budget = pkl->size > (SIZE_MAX - ((size_t)16 << 20)) / SPEND_PER_BYTE ? SIZE_MAX
                                                                        : SPEND_PER_BYTE * pkl->size + ((size_t)16 << 20);
    m.none.kind = V_NONE;
    m.yes.kind = m.no.kind = V_BOOL;
    m.yes.i = 1;
    m.empty.kind = V_TUPLE;
    value *root = run(&m);
    m.after_stop = 1;
    const value *entry = NULL;
    const char *module = NULL;
    const value *sd = root ? state_dict(&m, root, &entry, &module) : NULL;
    if (sd) rc = fill_tensors(f, sd, entry, module, z.torchscript, err, err_len);
done:
    for (value *v = m.made, *next; v; v = next) {
        next = v->next_made;
        free(v->s);
        free(v->items);
        free(v->view);
        free(v->sorted);
        free(v);
    }
    free(m.stack);
    free(m.marks);
    free(m.memo);
    free(m.storages);
    for (size_t i = 0; i < m.n_classes; i++) free(m.classes[i].attrs);
    for (size_t i = 0; i < m.n_files; i++) free(m.files[i].lines);
    free(m.classes);
    free(m.class_slots);
    free(m.files);
    free(z.e);
    return rc;
}
