/* host/atomic_file.h — writing a file so that a reader sees the old one or the whole new one,
 * never half of one: the bytes go to "<path>.tmp.<pid>.<k>" (mode 0644, created exclusively),
 * are fsynced and renamed over path, and the folder is fsynced so that the rename lasts. Also the
 * checks that an output can be written at all, made before long work instead of after it. */
#ifndef DG_ATOMIC_FILE_H
#define DG_ATOMIC_FILE_H

#include <stddef.h>

/* One piece of the file: len bytes at data (data may be NULL when len is 0). */
typedef struct {
    const void *data;
    size_t len;
} dg_chunk;

/* Write the chunks, in order, as path. 0, or -1 with err "<path>: <what failed>: <why>" and no
 * temporary file left behind. Safe to call from several threads at once. */
int dg_write_atomic(const char *path, const dg_chunk *chunks, size_t n, char *err, size_t err_len);

/* Whether path could be written by dg_write_atomic, found out before long work instead of after it:
 * a temporary file beside it is created and removed. 0, or -1 with err "<path>: <why>" (a missing or
 * unwritable folder, or a folder where the file should be). */
int dg_check_writable(const char *path, char *err, size_t err_len);
/* The same for a file opened with fopen(path, "w" or "a") rather than replaced by a rename: a regular
 * file that is there must open for writing (it is not truncated by the check), a FIFO or device
 * (/dev/stdout) must be writable by access(), which leaves it unopened; one that is not there is
 * tried as above. */
int dg_check_openable(const char *path, char *err, size_t err_len);

/* 1 when paths a and b name one file: the same text, both there with one device and inode (links,
 * "./x" and "x"), or, before they exist, the same name in the same resolved folder; 0 otherwise. For
 * refusing an output that would replace an input or another output. */
int dg_same_file(const char *a, const char *b);

/* An output folder: made (mode 0700) unless it is there. 0, or -1 with err "<path>: <why>" when it
 * cannot be made, is a file, or cannot be written in — said before the work, not after it. */
int dg_make_folder(const char *path, char *err, size_t err_len);

#endif
