/* host/model_io.h — moving a net's parameters between safetensors files and the device: strict
 * loading by PyTorch state-dict names (shape checked, any float dtype converted), saving as F32
 * with optional extra tensors (optimizer state, gradients) and string metadata. */
#ifndef DG_MODEL_IO_H
#define DG_MODEL_IO_H

#include <stddef.h>
#include "net.h"
#include "safetensors.h"

/* Tensors of a weight file that are not the net's state and that loading ignores:
 * "*.num_batches_tracked" (PyTorch's batch-norm counter) and "optim.*" (optimizer state). */
int dg_model_ignored_tensor(const char *name);
/* Batch-norm running statistics: state, but not parameters in PyTorch's sense. */
int dg_model_running_stat(const char *name);

/* Load every parameter of net (set up on a backend) from path. Tensors named
 * "*.num_batches_tracked" and "optim.*" are ignored; any other tensor the net lacks, a missing
 * or misshapen one, and a batch norm's running_var that holds a value below zero, are errors. When the names do not match as they are but do once a prefix
 * that every one of them carries is taken off ("model." from Lightning, "backbone." from a
 * wrapper; dg_model_name_prefix), they are read so, and a note on stderr says which prefix; so too
 * when they are the names of another code of the same net (the net's file_aliases).
 * Returns 0, or -1 with err "<path>: <problem>". */
int dg_model_load(dg_net *net, const char *path, char *err, size_t err_len);

/* The metadata key of the input normalisation a model was trained with (dnnguard train's outputs), as
 * --normalize text (dg_norm_format). */
#define DG_META_NORMALIZE "normalize"

/* dg_model_load, also copying the file's metadata value for key into value[cap] ("" when it has
 * none, or one too long for value). */
int dg_model_load_meta(dg_net *net, const char *path, const char *key, char *value, size_t cap, char *err,
                       size_t err_len);

/* How a file's tensor names are read as a net's: less a prefix that every one of them carries,
 * and with the net's file_aliases words (kuangliu's "shortcut" for "downsample") or not. */
typedef struct dg_name_map {
    const char *prefix; /* the prefix's text: the start of one of the file's names ("" when none) */
    size_t strip;       /* its length */
    int aliased;
} dg_name_map;

/* The same from an open file (lets a caller read metadata and optimizer state from one parse),
 * silently; *map (may be NULL) gets how the file's names were read, for dg_model_file_param. */
int dg_model_load_file(dg_net *net, const dg_st_file *f, dg_name_map *map, char *err, size_t err_len);

/* The index of the net's parameter that the file's tensor name is under map, or -1 (an ignored
 * tensor included). */
int dg_model_file_param(const dg_net *net, const dg_name_map *map, const char *name);

/* How map reads names, for messages ("without the prefix 'model.'", "with 'shortcut' for
 * 'downsample', 'linear' for 'fc'"; "" when as they are), into out[cap]. */
void dg_model_map_text(const dg_net *net, const dg_name_map *map, char *out, size_t cap);

/* The length of the k-th shortest prefix ending in '.' that every tensor name of f carries (the
 * ignored ones aside: "a.", then "a.b.", ...), or 0 when there is no k-th; *text (may be NULL)
 * points at a name that begins with it. */
size_t dg_model_name_prefix(const dg_st_file *f, int k, const char **text);

/* One extra tensor to write beside the parameters: host data. */
typedef struct dg_extra_tensor {
    char name[DG_NAME_MAX + 32];
    int ndim;
    int64_t shape[8];
    const float *data;
} dg_extra_tensor;

/* Write the net's parameters (downloaded from the device) plus extras and metadata to path,
 * atomically. Returns 0 or -1 with err. */
int dg_model_save(const dg_net *net, const char *path, const dg_extra_tensor *extras, int n_extras,
                  const char *const *meta_keys, const char *const *meta_values, int n_meta, char *err,
                  size_t err_len);

/* Download the net's parameters into a new host buffer [n_param_floats] (NULL when out of memory). */
float *dg_model_download(const dg_net *net);

/* For the commands that make an owner's secret or reference from a model (wm keygen, fp issue,
 * infip extract) or train from it (train --init), which a NaN or infinite weight would make worthless
 * or break: 0 when every parameter (running statistics included) is finite, else -1 with err
 * "<path>: <tensor>[<index>] is NaN or infinite: ... needs a working model". */
int dg_model_require_finite(const dg_net *net, const char *path, const char *what, char *err, size_t err_len);

/* The SHA-256 of the net's loaded parameter values (running statistics included), in the net's
 * order: one model saved as two files (a checkpoint, a .pt, other metadata) has one digest. 0, or
 * −1 when out of memory. */
int dg_model_digest(const dg_net *net, char hex[65]);

#endif
