/* host/input_file.h — opening a file a user hands us (a model, a manifest, a key, a data set): a
 * regular file only. A FIFO would block the open for ever and a device might never end, so the
 * path is looked at before it is opened (and the open file again, in case it was replaced). */
#ifndef DG_INPUT_FILE_H
#define DG_INPUT_FILE_H

#include <stdio.h>

#define DG_NOT_REGULAR (-2)

/* A read-only descriptor of path when it is a regular file; −1 with errno when it cannot be opened,
 * DG_NOT_REGULAR when it is a FIFO, a device, a socket or a folder. */
int dg_open_regular(const char *path);

/* The same as a stdio stream ("rb"): NULL with *why "not a regular file" or strerror's text. */
FILE *dg_fopen_regular(const char *path, const char **why);

#endif
