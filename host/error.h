/* host/error.h — the error-message convention of the file parsers: "<file>: <what is wrong>"
 * written into a caller's buffer, which the CLI prints as one line. */
#ifndef DG_ERROR_H
#define DG_ERROR_H

#include <stddef.h>

/* err = "<file>: " + printf(fmt, ...), truncated to err_len; does nothing when err is NULL. */
void dg_err_set(char *err, size_t err_len, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A name from a hostile file made safe for one line of stderr: printable ASCII kept, other bytes
 * as \xNN, at most ~80 visible characters (.s). */
typedef struct { char s[340]; } dg_safe_name;
dg_safe_name dg_err_safe(const char *name);
/* The same for a path, whose end names the file: past 80 bytes, its first 20 and last 60 with
 * "..." between. */
dg_safe_name dg_err_safe_path(const char *path);

#endif
