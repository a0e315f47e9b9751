/* host/error.c — see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

void dg_err_set(char *err, size_t err_len, const char *file, const char *fmt, ...) {
    if (!err || err_len == 0) return;
    int used = snprintf(err, err_len, "%s: ", file ? file : "(null)");
    if (used < 0) used = 0;
    if ((size_t)used >= err_len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + used, err_len - (size_t)used, fmt, ap);
    va_end(ap);
}
