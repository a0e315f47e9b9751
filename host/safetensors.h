/* host/safetensors.h — reading and writing the safetensors format (u64 LE header length, JSON
 * header, raw little-endian data): a strict reader for hostile files (which also takes PyTorch's
 * torch.save files, through host/torch_pt.c) and an atomic writer (which also writes them).
 * Host memory only; knows nothing of nets, devices or training. */
#ifndef DG_SAFETENSORS_H
#define DG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { DG_ST_F32, DG_ST_F16, DG_ST_BF16, DG_ST_F64, DG_ST_I64, DG_ST_I32, DG_ST_U8, DG_ST_I8, DG_ST_I16, DG_ST_BOOL } dg_st_dtype;

#define DG_ST_MAX_DIMS 8
/* Headers longer than this are refused as absurd. */
#define DG_ST_MAX_HEADER_BYTES (100u * 1000u * 1000u)

/* One tensor of an open file. numel is 1 for a 0-dim scalar and 0 when any dim is 0;
 * [begin, end) are byte offsets relative to data_start, already checked against the file. */
typedef struct {
    char *name;
    dg_st_dtype dtype;
    int ndim;
    int64_t shape[8];
    size_t numel;
    size_t begin, end;
} dg_st_tensor;

/* An open file: the whole file in memory (bytes[size]), tensors in header order. */
typedef struct {
    char *path;
    uint8_t *bytes;
    size_t size;
    size_t data_start; /* 8 + header length */
    dg_st_tensor *tensors;
    int n_tensors;
    char **meta_keys, **meta_values;
    int n_meta;
    int *by_name; /* private: tensor indices sorted by name, for dg_st_find */
} dg_st_file;

/* Read and validate path. 0 ok; -1 with err = "<path>: <what is wrong>" (and f zeroed, so
 * dg_st_close(f) is harmless either way). Checks: length prefix, header size (≤ 100 MB and within
 * the file), UTF-8 + JSON object, per entry dtype/shape/data_offsets types, known dtype, dims
 * (integers ≥ 0, ≤ 8 of them, numel without overflow), offsets (integers, begin ≤ end ≤ data
 * size, end − begin = numel·dtype size), duplicate names, tensors that overlap, leave a gap
 * between them or end before the data does (the reference reader's InvalidOffset and
 * MetadataIncompleteBuffer; empty tensors too must lie at their place in the sequence), and
 * __metadata__ (an object of strings). JSON whitespace before and after the header's object is
 * accepted, as the reference reader accepts it (its writer pads with spaces).
 * A PyTorch torch.save file (host/torch_pt.h) is read into the same struct, its state dict's
 * tensors with the same duplicate and overlap checks. */
int dg_st_open(const char *path, dg_st_file *f, char *err, size_t err_len);

/* Index of the tensor called name, or -1. */
int dg_st_find(const dg_st_file *f, const char *name);

/* Convert tensor i to float32 into out[numel] (every dtype accepted: integers and BOOL become
 * their values, F64 out of float range becomes ±inf). -1 + err if i is out of range or
 * expect_numel differs from the tensor's numel. */
int dg_st_read_f32(const dg_st_file *f, int i, float *out, size_t expect_numel, char *err, size_t err_len);

/* Metadata value for key, or NULL when absent. */
const char *dg_st_meta(const dg_st_file *f, const char *key);

void dg_st_close(dg_st_file *f);

/* Fill f's metadata, still empty, from len bytes of JSON text: an object of strings, strict UTF-8,
 * no key twice, as the __metadata__ of a safetensors header (what: its name in messages). 0, or -1
 * with err. For readers of other formats (host/torch_pt.c). */
int dg_st_metadata_text(dg_st_file *f, const char *text, size_t len, const char *what, char *err, size_t err_len);

/* Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF): the offset of the first bad
 * byte of s[len], or len when all is well. */
size_t dg_st_utf8_check(const unsigned char *s, size_t len);

/* Bytes per element of a dtype (0 for a value outside the enum); its name in the format ("F32"...). */
size_t dg_st_dtype_size(dg_st_dtype dtype);
const char *dg_st_dtype_name(dg_st_dtype dtype);

/* One tensor to write: data in host memory, little-endian, numel·dtype size bytes (may be NULL
 * when numel is 0). ndim 0 is a scalar. */
typedef struct {
    const char *name;
    dg_st_dtype dtype;
    int ndim;
    int64_t shape[8];
    const void *data;
} dg_st_entry;

/* Write entries (in the given order, offsets contiguous from 0) and n_meta key/value pairs
 * (may be 0) atomically (host/atomic_file.h). The header is padded with spaces to a multiple of
 * 8 bytes, as the reference implementation does. Names and metadata must be valid UTF-8,
 * non-empty names, no duplicates, no tensor called "__metadata__". A path ending in .pt or .pth
 * gets the same tensors and metadata as a torch.save file instead (dg_pt_write).
 * 0 ok; -1 with err = "<path>: <what is wrong>" and no file left behind. */
int dg_st_write(const char *path, const dg_st_entry *entries, int n, const char *const *meta_keys,
                const char *const *meta_values, int n_meta, char *err, size_t err_len);

#endif
