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

/* Appends p[0..n) to out at *o, printable ASCII kept (not the backslash), other bytes as \xNN. */
static void put_safe(dg_safe_name *out, size_t *o, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
            out->s[(*o)++] = (char)p[i];
        } else {
            snprintf(out->s + *o, 5, "\\x%02x", p[i]);
            *o += 4;
        }
    }
}

dg_safe_name dg_err_safe(const char *name) {
    dg_safe_name out;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(name ? name : "(null)");
    size_t n = strlen((const char *)p);
    put_safe(&out, &o, p, n < 80 ? n : 80);
    if (n > 80) memcpy(out.s + o, "...", 3), o += 3;
    out.s[o] = 0;
    return out;
}

dg_safe_name dg_err_safe_path(const char *path) {
    dg_safe_name out;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)(path ? path : "(null)");
    size_t n = strlen((const char *)p);
    if (n <= 80) {
        put_safe(&out, &o, p, n);
    } else {
        put_safe(&out, &o, p, 20);
        memcpy(out.s + o, "...", 3), o += 3;
        put_safe(&out, &o, p + n - 60, 60);
    }
    out.s[o] = 0;
    return out;
}
