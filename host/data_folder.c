/* host/data_folder.c — folder:DIR, an ImageFolder tree of PNG files (see data_folder.h): the walk,
 * its order, the decoding into one NCHW uint8 buffer and the training split's statistics. */
#include "data_folder.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "png.h"
#include "safetensors.h" /* dg_st_utf8_check */

#define FOLDER_MAX_SIDE 4096
#define FOLDER_MAX_BYTES ((size_t)1 << 33) /* n·c·h·w as held, like the synthetic set's bound */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ImageFolder's extensions, compared in lower case; 1 for .png, 2 for another one, 0 for none */
static int image_kind(const char *name) {
    static const char *const other[] = {".jpg", ".jpeg", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
    size_t n = strlen(name);
    char tail[6] = {0};
    size_t t = n < 5 ? n : 5;
    for (size_t i = 0; i < t; i++) tail[i] = (char)tolower((unsigned char)name[n - t + i]);
    if (t >= 4 && strcmp(tail + t - 4, ".png") == 0) return 1;
    for (size_t k = 0; k < sizeof other / sizeof *other; k++) {
        size_t e = strlen(other[k]);
        if (t >= e && strcmp(tail + t - e, other[k]) == 0) return 2;
    }
    return 0;
}

/* The names in a folder except . and .. (unsorted); -1 with err when it cannot be read. */
static int list_names(const char *path, char ***names, int *count, char *err, size_t err_len) {
    *names = NULL;
    *count = 0;
    DIR *dir = opendir(path);
    if (!dir) {
        dg_err_set(err, err_len, dg_err_safe_path(path).s, "%s", strerror(errno));
        return -1;
    }
    int cap = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (*count == cap) {
            int ncap = cap ? 2 * cap : 64;
            char **nn = ncap < (1 << 26) ? realloc(*names, sizeof(char *) * (size_t)ncap) : NULL;
            if (!nn) goto oom;
            *names = nn;
            cap = ncap;
        }
        if (!((*names)[*count] = strdup(e->d_name))) goto oom;
        (*count)++;
        errno = 0;
    }
    if (errno) {
        dg_err_set(err, err_len, dg_err_safe_path(path).s, "%s", strerror(errno));
        goto fail;
    }
    closedir(dir);
    return 0;
oom:
    dg_err_set(err, err_len, dg_err_safe_path(path).s, "out of memory listing the folder");
fail:
    closedir(dir);
    dg_folder_names_free(*names, *count);
    *names = NULL;
    *count = 0;
    return -1;
}

/* Names must be UTF-8: Python's sorted(), which orders ImageFolder's classes and files, compares
 * code points, and for UTF-8 byte order is code-point order; for other bytes it is not. */
static int utf8_name(const char *folder, const char *name, char *err, size_t err_len) {
    if (dg_st_utf8_check((const unsigned char *)name, strlen(name)) == strlen(name)) return 0;
    char *p = join(folder, name);
    dg_err_set(err, err_len, dg_err_safe_path(p ? p : folder).s,
               "a name that is not UTF-8 (Python would sort it elsewhere, so ImageFolder's order is not knowable): "
               "rename it");
    free(p);
    return -1;
}

void dg_folder_names_free(char **names, int count) {
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

int dg_folder_classes(const char *split_dir, char ***names, int *count, char *err, size_t err_len) {
    char **all;
    int n;
    *names = NULL;
    *count = 0;
    if (list_names(split_dir, &all, &n, err, err_len) != 0) return -1;
    int k = 0;
    for (int i = 0; i < n; i++) {
        char *p = join(split_dir, all[i]);
        if (!p) {
            dg_err_set(err, err_len, dg_err_safe_path(split_dir).s, "out of memory");
            for (int j = i; j < n; j++) free(all[j]);
            dg_folder_names_free(all, k);
            return -1;
        }
        int dir = is_dir(p);
        free(p);
        if (dir) all[k++] = all[i];
        else free(all[i]);
    }
    for (int i = 0; i < k; i++)
        if (utf8_name(split_dir, all[i], err, err_len) != 0) {
            dg_folder_names_free(all, k);
            return -1;
        }
    if (k == 0) {
        dg_err_set(err, err_len, dg_err_safe_path(split_dir).s,
                   "no class folders (folder:DIR wants DIR/train/<class>/*.png)");
        free(all);
        return -1;
    }
    if (k > DG_FOLDER_MAX_CLASSES) {
        dg_err_set(err, err_len, dg_err_safe_path(split_dir).s,
                   "%d class folders, more than %d", k, DG_FOLDER_MAX_CLASSES);
        dg_folder_names_free(all, k);
        return -1;
    }
    qsort(all, (size_t)k, sizeof *all, cmp_str);
    *names = all;
    *count = k;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* the walk                                                                                    */

typedef struct {
    char *root;  /* the folder the file is in, as os.walk names it */
    char *name;  /* the file's name in it */
    int label;
} image_file;

typedef struct {
    image_file *v;
    size_t n, cap;
} file_list;

static void file_list_free(file_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i].root), free(l->v[i].name);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* ImageFolder's make_dataset: class by class in sorted order (so by label), and within a class
 * sorted(os.walk(...)), by the folder path as a whole string, then sorted(fnames) by name */
static int cmp_file(const void *a, const void *b) {
    const image_file *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    int c = strcmp(x->root, y->root);
    return c ? c : strcmp(x->name, y->name);
}

/* The folders from the class folder down to the one being read (links followed), to refuse a link
 * back to one of them, which would repeat forever; and a bound on all folders read. */
typedef struct {
    dev_t dev[DG_FOLDER_MAX_DEPTH + 1];
    ino_t ino[DG_FOLDER_MAX_DEPTH + 1];
    long folders_read;
} walk_state;

/* Add one .png file to l; -1 with err. */
static int add_file(file_list *l, const char *root, const char *name, int label, char *err, size_t err_len) {
    if (l->n == l->cap) {
        size_t ncap = l->cap ? 2 * l->cap : 1024;
        image_file *nv = ncap <= (size_t)INT32_MAX ? realloc(l->v, sizeof *nv * ncap) : NULL;
        if (!nv) {
            dg_err_set(err, err_len, dg_err_safe_path(root).s,
                       ncap > (size_t)INT32_MAX ? "too many images" : "out of memory");
            return -1;
        }
        l->v = nv;
        l->cap = ncap;
    }
    image_file f = {strdup(root), strdup(name), label};
    if (!f.root || !f.name) {
        free(f.root), free(f.name);
        dg_err_set(err, err_len, dg_err_safe_path(root).s, "out of memory");
        return -1;
    }
    l->v[l->n++] = f;
    return 0;
}

/* Add the .png files under root (at any depth) with label to l; -1 with err. */
static int walk(const char *root, int label, int depth, walk_state *ws, file_list *l, char *err, size_t err_len) {
    struct stat st;
    const dg_safe_name safe = dg_err_safe_path(root);
    const char *safe_root = safe.s; /* safe lives to the end of the function */
    if (depth > DG_FOLDER_MAX_DEPTH) {
        dg_err_set(err, err_len, safe_root, "more than %d folders deep", DG_FOLDER_MAX_DEPTH);
        return -1;
    }
    if (stat(root, &st) != 0) {
        dg_err_set(err, err_len, safe_root, "%s", strerror(errno));
        return -1;
    }
    for (int up = 0; up < depth; up++)
        if (ws->dev[up] == st.st_dev && ws->ino[up] == st.st_ino) {
            dg_err_set(err, err_len, safe_root, "a link back to a folder above it (a loop)");
            return -1;
        }
    if (++ws->folders_read > DG_FOLDER_MAX_FOLDERS) {
        dg_err_set(err, err_len, safe_root, "more than %d folders below the class folders", DG_FOLDER_MAX_FOLDERS);
        return -1;
    }
    ws->dev[depth] = st.st_dev;
    ws->ino[depth] = st.st_ino;
    char **names;
    int n;
    if (list_names(root, &names, &n, err, err_len) != 0) return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char *p = join(root, names[i]);
        struct stat es;
        if (!p) {
            dg_err_set(err, err_len, safe_root, "out of memory");
            rc = -1;
            break;
        }
        int kind = image_kind(names[i]), found = stat(p, &es) == 0; /* links followed, as os.walk does */
        if (found && S_ISDIR(es.st_mode)) {
            rc = utf8_name(root, names[i], err, err_len);
            if (rc == 0) rc = walk(p, label, depth + 1, ws, l, err, err_len);
        } else if (kind == 2) {
            dg_err_set(err, err_len, dg_err_safe_path(p).s,
                       "only PNG images are read (convert it, or move it out of the folder)");
            rc = -1;
        } else if (kind == 1 && found && !S_ISREG(es.st_mode)) { /* a FIFO would block, /dev/zero never end */
            dg_err_set(err, err_len, dg_err_safe_path(p).s, "not a regular file");
            rc = -1;
        } else if (kind == 1) { /* a broken link is listed too, and then refused by the reader */
            rc = utf8_name(root, names[i], err, err_len);
            if (rc == 0) rc = add_file(l, root, names[i], label, err, err_len);
        }
        free(p);
    }
    dg_folder_names_free(names, n);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* decoding                                                                                    */

/* Widen the first n grey images of d (c = 1) to RGB in place: each plane repeated three times. */
static int widen_to_rgb(dg_dataset *d, size_t n_total, char *err, size_t err_len, const char *path) {
    size_t plane = (size_t)d->h * d->w;
    uint8_t *wide = realloc(d->images, n_total * 3 * plane);
    if (!wide) {
        dg_err_set(err, err_len, dg_err_safe_path(path).s, "out of memory");
        return -1;
    }
    d->images = wide;
    for (size_t i = (size_t)d->n; i-- > 0;)
        for (int ch = 2; ch >= 0; ch--) memmove(wide + (i * 3 + (size_t)ch) * plane, wide + i * plane, plane);
    d->c = 3;
    return 0;
}

/* Decode the files of l into d. want_c: 0 decides from the images (1 unless one is in colour),
 * else 1 or 3; want_h/want_w: 0, or the size every image must have. */
static int decode_all(const file_list *l, int want_c, int want_h, int want_w, dg_dataset *d, char *err,
                      size_t err_len) {
    d->c = want_c ? want_c : 1;
    for (size_t i = 0; i < l->n; i++) {
        char *path = join(l->v[i].root, l->v[i].name);
        dg_image img = {0};
        char perr[600];
        if (!path) {
            dg_err_set(err, err_len, dg_err_safe_path(l->v[i].root).s, "out of memory");
            return -1;
        }
        const dg_safe_name where = dg_err_safe_path(path); /* every message below names the file so */
        int rc = dg_png_read(path, &img, want_c, perr, sizeof perr);
        size_t plen = strlen(path);
        if (rc != 0) { /* "<path>: <problem>", the path made safe for one line */
            dg_err_set(err, err_len, where.s, "%s",
                       strncmp(perr, path, plen) == 0 && perr[plen] == ':' ? perr + plen + 2 : perr);
        } else if (img.stored_bits == 16) { /* PIL clips 16-bit grey at 255 and keeps the high byte of RGB */
            dg_err_set(err, err_len, where.s, "16 bits per sample, which PIL (ImageFolder's reader) and "
                       "dnnguard read differently: save it with 8");
            rc = -1;
        } else if (i == 0 && (img.w > FOLDER_MAX_SIDE || img.h > FOLDER_MAX_SIDE)) {
            dg_err_set(err, err_len, where.s, "%dx%d pixels, more than %d a side", img.w, img.h, FOLDER_MAX_SIDE);
            rc = -1;
        } else if (i == 0 && (want_h ? img.h != want_h || img.w != want_w : 0)) {
            dg_err_set(err, err_len, where.s, "%dx%d pixels (w×h), but the training images are %dx%d", img.w, img.h,
                       want_w, want_h);
            rc = -1;
        } else if (i > 0 && (img.h != d->h || img.w != d->w)) {
            dg_err_set(err, err_len, where.s, "%dx%d pixels (w×h), but the first image (%s) is %dx%d: all images "
                       "must have one size", img.w, img.h, dg_err_safe(l->v[0].name).s, d->w, d->h);
            rc = -1;
        }
        if (rc == 0 && i == 0) {
            d->h = img.h, d->w = img.w;
            size_t per = (size_t)3 * img.h * img.w;
            d->images = l->n <= FOLDER_MAX_BYTES / per ? malloc(l->n * (size_t)d->c * img.h * img.w) : NULL;
            if (!d->images) {
                if (l->n > FOLDER_MAX_BYTES / per)
                    dg_err_set(err, err_len, where.s, "%zu images of this size are more than %zu bytes", l->n,
                               FOLDER_MAX_BYTES);
                else dg_err_set(err, err_len, where.s, "out of memory for %zu images", l->n);
                rc = -1;
            }
        }
        if (rc == 0 && img.channels == 3 && d->c == 1) rc = widen_to_rgb(d, l->n, err, err_len, path);
        if (rc == 0) {
            size_t plane = (size_t)d->h * d->w;
            uint8_t *dst = d->images + i * (size_t)d->c * plane;
            for (int ch = 0; ch < d->c; ch++)
                for (size_t p = 0; p < plane; p++)
                    dst[(size_t)ch * plane + p] = img.pixels[p * (size_t)img.channels + (img.channels == 3 ? ch : 0)];
            d->labels[i] = l->v[i].label;
            d->n = (int)i + 1;
        }
        dg_image_free(&img);
        free(path);
        if (rc != 0) return -1;
    }
    return 0;
}

/* mean and population std per channel of d's pixels on [0, 1] */
static void pixel_stats(const dg_dataset *d, float mean[3], float std[3]) {
    size_t plane = (size_t)d->h * d->w;
    for (int ch = 0; ch < 3; ch++) {
        if (ch >= d->c) {
            mean[ch] = mean[0], std[ch] = std[0];
            continue;
        }
        uint64_t hist[256] = {0};
        for (int i = 0; i < d->n; i++) {
            const uint8_t *p = d->images + ((size_t)i * d->c + (size_t)ch) * plane;
            for (size_t k = 0; k < plane; k++) hist[p[k]]++;
        }
        double count = (double)d->n * (double)plane, s = 0.0, ss = 0.0;
        for (int v = 0; v < 256; v++) s += (double)hist[v] * v;
        double m = s / count;
        for (int v = 0; v < 256; v++) ss += (double)hist[v] * (v - m) * (v - m);
        double sd = sqrt(ss / count) / 255.0;
        mean[ch] = (float)(m / 255.0);
        std[ch] = sd > 1e-6 ? (float)sd : 1.0f;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* one split                                                                                   */

/* Load split_dir with the given classes (labels are indices into them; own = 1 when they are the
 * split's own, so a training class with no image is an error). */
static int load_split(const char *split_dir, char **classes, int n_classes, int own, int want_c, int want_h,
                      int want_w, dg_dataset *d, char *err, size_t err_len) {
    char **names = NULL;
    int n_names = 0, rc = -1;
    file_list l = {0};
    walk_state ws = {.folders_read = 0};
    if (dg_folder_classes(split_dir, &names, &n_names, err, err_len) != 0) return -1;
    for (int k = 0; k < n_names; k++) {
        char **hit = bsearch(&names[k], classes, (size_t)n_classes, sizeof *classes, cmp_str);
        char *p = join(split_dir, names[k]);
        size_t before = l.n;
        if (!p) {
            dg_err_set(err, err_len, dg_err_safe_path(split_dir).s, "out of memory");
            goto done;
        }
        if (!hit) {
            dg_err_set(err, err_len, dg_err_safe_path(p).s, "a class the training split does not have");
            free(p);
            goto done;
        }
        int wrc = walk(p, (int)(hit - classes), 0, &ws, &l, err, err_len);
        if (wrc == 0 && own && l.n == before)
            dg_err_set(err, err_len, dg_err_safe_path(p).s,
                       "no .png image in this class folder (ImageFolder refuses it too)");
        free(p);
        if (wrc != 0 || (own && l.n == before)) goto done;
    }
    if (l.n == 0) {
        dg_err_set(err, err_len, dg_err_safe_path(split_dir).s, "no .png image in any class folder");
        goto done;
    }
    qsort(l.v, l.n, sizeof *l.v, cmp_file);
    d->labels = malloc(sizeof(int32_t) * l.n);
    if (!d->labels) {
        dg_err_set(err, err_len, dg_err_safe_path(split_dir).s, "out of memory");
        goto done;
    }
    d->classes = n_classes;
    rc = decode_all(&l, want_c, want_h, want_w, d, err, err_len);
done:
    file_list_free(&l);
    dg_folder_names_free(names, n_names);
    return rc;
}

int dg_folder_class_names(const char *dir, char ***names, int *count, char *err, size_t err_len) {
    *names = NULL;
    *count = 0;
    char *train_dir = join(dir, "train"), *test_dir = join(dir, "test");
    int rc = -1;
    if (!train_dir || !test_dir) dg_err_set(err, err_len, dg_err_safe_path(dir).s, "out of memory");
    else rc = dg_folder_classes(is_dir(train_dir) ? train_dir : test_dir, names, count, err, err_len);
    free(train_dir), free(test_dir);
    return rc;
}

int dg_folder_load(const char *dir, int train, int channels, const dg_dataset *like, dg_dataset *d, char *err,
                   size_t err_len) {
    memset(d, 0, sizeof *d);
    char *train_dir = join(dir, "train"), *test_dir = join(dir, "test");
    char **classes = NULL;
    int n_classes = 0, rc = -1;
    dg_dataset ref = {0};
    if (!train_dir || !test_dir) {
        dg_err_set(err, err_len, dg_err_safe_path(dir).s, "out of memory");
        goto done;
    }
    if (channels != 0 && channels != 1 && channels != 3) {
        dg_err_set(err, err_len, dg_err_safe_path(dir).s, "%d channels asked (0, 1 or 3)", channels);
        goto done;
    }
    if (!is_dir(dir)) {
        dg_err_set(err, err_len, dg_err_safe_path(dir).s,
                   "not a folder (folder:DIR wants DIR/train/<class>/*.png and DIR/test/...)");
        goto done;
    }
    int have_train = is_dir(train_dir);
    const char *own = train ? train_dir : test_dir;
    if (!is_dir(own)) {
        dg_err_set(err, err_len, dg_err_safe_path(own).s,
                   "no such folder (folder:DIR wants DIR/train/<class>/*.png and DIR/test/...)");
        goto done;
    }
    if (dg_folder_class_names(dir, &classes, &n_classes, err, err_len) != 0) goto done;
    if (train || !have_train) {
        if (load_split(own, classes, n_classes, 1, channels, 0, 0, d, err, err_len) != 0) goto done;
        pixel_stats(d, d->mean, d->std);
    } else if (like) { /* shaped and normalised as the split already loaded, which has training's */
        if (like->classes != n_classes || (channels && like->c != channels)) {
            dg_err_set(err, err_len, dg_err_safe_path(train_dir).s,
                       "the class folders or channels changed since the training split was read");
            goto done;
        }
        if (load_split(test_dir, classes, n_classes, 0, like->c, like->h, like->w, d, err, err_len) != 0) goto done;
        memcpy(d->mean, like->mean, sizeof d->mean);
        memcpy(d->std, like->std, sizeof d->std);
    } else {
        /* the test split is normalised, and shaped, as training saw its images */
        if (load_split(train_dir, classes, n_classes, 1, channels, 0, 0, &ref, err, err_len) != 0) goto done;
        pixel_stats(&ref, d->mean, d->std); /* load_split leaves mean and std alone */
        if (load_split(test_dir, classes, n_classes, 0, ref.c, ref.h, ref.w, d, err, err_len) != 0) goto done;
    }
    snprintf(d->name, sizeof d->name, "%s", channels == 3 ? "folder-rgb" : channels == 1 ? "folder-grey" : "folder");
    rc = 0;
done:
    if (rc != 0) dg_data_free(d);
    dg_data_free(&ref);
    dg_folder_names_free(classes, n_classes);
    free(train_dir), free(test_dir);
    return rc;
}
