/* tests/tool_safetensors.c — a driver for test_safetensors_torch.py: dump | copy | tof32 through
 * host/safetensors.c, so PyTorch-written files can be read by the C reader and the other way round. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "host/safetensors.h"

static void hex(FILE *o, const char *s) { if (!*s) fputc('-', o); for (; *s; s++) fprintf(o, "%02x", (unsigned char)*s); }

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    char err[4096];
    dg_st_file f;
    if (dg_st_open(argv[2], &f, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 1; }
    int rc = 0;
    if (strcmp(argv[1], "dump") == 0) {
        FILE *o = fopen(argv[3], "w");
        for (int m = 0; m < f.n_meta; m++) { fputs("M ", o); hex(o, f.meta_keys[m]); fputc(' ', o); hex(o, f.meta_values[m]); fputc('\n', o); }
        for (int i = 0; i < f.n_tensors; i++) {
            const dg_st_tensor *t = &f.tensors[i];
            float *v = malloc(t->numel ? t->numel * 4 : 1);
            if (dg_st_read_f32(&f, i, v, t->numel, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); rc = 1; free(v); break; }
            fputs("T ", o); hex(o, t->name);
            fprintf(o, " %s %d", dg_st_dtype_name(t->dtype), t->ndim);
            for (int d = 0; d < t->ndim; d++) fprintf(o, " %lld", (long long)t->shape[d]);
            fprintf(o, " %zu %zu %zu\n", t->numel, t->begin, t->end);
            for (size_t k = 0; k < t->numel; k++) { unsigned u; memcpy(&u, &v[k], 4); fprintf(o, "%08x%c", u, k + 1 == t->numel ? '\n' : ' '); }
            if (!t->numel) fputc('\n', o);
            free(v);
        }
        fclose(o);
    } else {
        int f32 = strcmp(argv[1], "tof32") == 0;
        dg_st_entry *e = calloc((size_t)f.n_tensors + 1, sizeof *e);
        float **bufs = calloc((size_t)f.n_tensors + 1, sizeof *bufs);
        for (int i = 0; i < f.n_tensors; i++) {
            const dg_st_tensor *t = &f.tensors[i];
            e[i].name = t->name;
            e[i].ndim = t->ndim;
            memcpy(e[i].shape, t->shape, sizeof t->shape);
            if (f32) {
                bufs[i] = malloc(t->numel ? t->numel * 4 : 1);
                if (dg_st_read_f32(&f, i, bufs[i], t->numel, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 1; }
                e[i].dtype = DG_ST_F32;
                e[i].data = bufs[i];
            } else {
                e[i].dtype = t->dtype;
                e[i].data = f.bytes + f.data_start + t->begin;
            }
        }
        const char **mk = calloc((size_t)f.n_meta + 1, sizeof *mk), **mv = calloc((size_t)f.n_meta + 1, sizeof *mv);
        for (int m = 0; m < f.n_meta; m++) { mk[m] = f.meta_keys[m]; mv[m] = f.meta_values[m]; }
        mk[f.n_meta] = "written_by"; mv[f.n_meta] = "dnnguard";
        if (dg_st_write(argv[3], e, f.n_tensors, mk, mv, f.n_meta + 1, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); rc = 1; }
        for (int i = 0; i < f.n_tensors; i++) free(bufs[i]);
        free(bufs); free(e); free(mk); free(mv);
    }
    dg_st_close(&f);
    return rc;
}
