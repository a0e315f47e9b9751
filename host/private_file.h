/* host/private_file.h — writing a small secret text file (watermark keys, fingerprint registries):
 * created with mode 0600 under a temporary name beside the target, then renamed over it, so a
 * reader sees the old file or the new one, never half of one, and nobody else can read it. */
#ifndef DG_PRIVATE_FILE_H
#define DG_PRIVATE_FILE_H

#include <stddef.h>

/* 0, or -1 with err "<path>: <problem>" and no temporary file left behind */
int dg_write_private_text(const char *path, const char *text, char *err, size_t err_len);

/* Read a whole small text file (at most max_bytes) into a new NUL-terminated buffer the caller
 * frees; *len gets its length. NULL with err "<path>: <problem>". */
char *dg_read_small_text(const char *path, size_t max_bytes, size_t *len, char *err, size_t err_len);

#endif
