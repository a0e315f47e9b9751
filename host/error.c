/* host/error.c — see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

dg_safe_name dg_err_safe(const char *name) {
    dg_safe_name out;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(name ? name : "(null)");
    for (size_t i = 0; p[i]; i++) {
        if (i >= 80) {
            memcpy(out.s + o, "...", 3);
            o += 3;
            break;
        }
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
            out.s[o++] = (char)p[i];
        } else {
            snprintf(out.s + o, 5, "\\x%02x", p[i]);
            o += 4;
        }
    }
    out.s[o] = 0;
    return out;
}
