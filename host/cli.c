/* host/cli.c — option parsing and backend choice shared by the subcommands (see cli.h). */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_fields.h"
#ifdef DNNGUARD_HAVE_CUDA
#include "../kernels/cuda/shapes.h" /* dg_backend_cuda, the mode switches, memory counts */
#endif

/* The lines dg_cli_error holds (dg_cli_error_hold), one after another, each ended by '\n'. Only the
 * main thread holds: the ranks' set-up, before the loader or any other thread starts. */
static struct {
    int on;
    char *text;
    size_t len;
} held;

/* Appends the message, made one line, to out (a growing buffer; left as it was when memory runs out). */
static void append_line(char **out, size_t *len, const char *line) {
    size_t room = strlen(line) * 4 + 2; /* each byte at most "\xNN" */
    char *grown = realloc(*out, *len + room);
    if (!grown) return;
    *out = grown;
    char *w = grown + *len;
    /* one line whatever a path holds: a newline or another control character in a file name is
     * written as an escape, not as a line break */
    for (const unsigned char *p = (const unsigned char *)line; *p; p++) {
        if (*p == '\n') w += sprintf(w, "\\n");
        else if (*p < 0x20 && *p != '\t') w += sprintf(w, "\\x%02x", *p);
        else *w++ = (char)*p;
    }
    *w++ = '\n';
    *w = 0;
    *len = (size_t)(w - grown);
}

/* The message of fmt: in small (1024 bytes) when it fits, else in a buffer of its own; cut to small
 * when memory runs out. The caller frees what is not small. */
static char *format_message(char *small, const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    char *line = small;
    int n = vsnprintf(small, 1024, fmt, ap);
    if (n >= 1024 && (line = malloc((size_t)n + 1)) != NULL) vsnprintf(line, (size_t)n + 1, fmt, again);
    va_end(again);
    return line ? line : small;
}

/* "dnnguard: <label><message>" on stderr, the message made one line. */
static void say_line(const char *label, const char *line) {
    char *one = NULL;
    size_t one_len = 0;
    append_line(&one, &one_len, line);
    fprintf(stderr, "dnnguard: %s%s", label, one ? one : "(out of memory writing a message)\n");
    free(one);
}

void dg_cli_error(const char *fmt, ...) {
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    char *line = format_message(small, fmt, ap);
    va_end(ap);
    size_t len_before = held.len;
    if (held.on) append_line(&held.text, &held.len, line);
    if (!held.on || held.len == len_before) say_line("", line); /* not held, or no memory to hold it */
    if (line != small) free(line);
}

static int warnings_said = 1;

void dg_cli_warnings_from_this_rank(int say) { warnings_said = say; }

void dg_cli_warning(const char *fmt, ...) {
    if (!warnings_said) return;
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    char *line = format_message(small, fmt, ap);
    va_end(ap);
    say_line("warning: ", line);
    if (line != small) free(line);
}

void dg_cli_error_hold(void) { held.on = 1; }

void dg_cli_error_release(int say, const char *prefix) {
    for (char *at = held.text; say && at && *at;) {
        char *end = strchr(at, '\n');
        fprintf(stderr, "dnnguard: %s%.*s\n", prefix ? prefix : "", (int)(end - at), at);
        at = end + 1;
    }
    free(held.text);
    held.text = NULL;
    held.len = 0;
    held.on = 0;
}

dg_json_num dg_json_fixed(double v, int decimals) {
    dg_json_num n;
    if (isfinite(v)) snprintf(n.s, sizeof n.s, "%.*f", decimals, v);
    else snprintf(n.s, sizeof n.s, "null");
    return n;
}

dg_json_num dg_json_sig(double v, int digits) {
    dg_json_num n;
    if (isfinite(v)) snprintf(n.s, sizeof n.s, "%.*g", digits, v);
    else snprintf(n.s, sizeof n.s, "null");
    return n;
}

dg_json_num dg_json_exact(double v) {
    dg_json_num n;
    dg_json_double_text(v, n.s, sizeof n.s);
    return n;
}

size_t dg_utf8_length(const unsigned char *p) {
    if (p[0] < 0x80) return 1;
    size_t n = p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    /* no overlong forms, no surrogates, nothing past U+10FFFF */
    if ((n == 3 && p[0] == 0xe0 && p[1] < 0xa0) || (n == 3 && p[0] == 0xed && p[1] >= 0xa0) ||
        (n == 4 && p[0] == 0xf0 && p[1] < 0x90) || (n == 4 && p[0] == 0xf4 && p[1] >= 0x90))
        return 0;
    return n;
}

int dg_utf8_clean(const char *in, char *out, size_t cap) {
    size_t at = 0;
    const unsigned char *q = (const unsigned char *)in;
    while (*q && at + 4 < cap) {
        size_t len = dg_utf8_length(q);
        memcpy(out + at, len ? (const char *)q : "\xef\xbf\xbd", len ? len : 3);
        at += len ? len : 3;
        q += len ? len : 1;
    }
    if (cap) out[at] = 0;
    return *q ? -1 : 0;
}

void dg_json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = dg_utf8_length(p);
        if (n == 0) fputs("\\ufffd", out); /* a byte that is not UTF-8 (a path's): JSON text must be */
        else if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
        else if (*p < 0x20) fprintf(out, "\\u%04x", *p);
        else fwrite(p, 1, n, out);
        p += n ? n : 1;
    }
    fputc('"', out);
}

static int parse_value(const char *command, const dg_opt *o, char *text) {
    char *end = NULL;
    errno = 0;
    /* an empty value is a mistake in a script (an unset variable); strto* would skip leading spaces */
    if (!text[0] || isspace((unsigned char)text[0])) {
        dg_cli_error("%s: --%s: '%s' is not a valid value (empty, or starting with a space)", command, o->name, text);
        return -1;
    }
    switch (o->type) {
    case DG_OPT_STR: *(const char **)o->dst = text; return 0;
    case DG_OPT_DIR: {
        for (size_t n = strlen(text); n > 1 && text[n - 1] == '/'; n--) text[n - 1] = 0;
        *(const char **)o->dst = text;
        return 0;
    }
    case DG_OPT_INT: {
        long v = strtol(text, &end, 10);
        if (errno || end == text || *end || v < -2147483647L || v > 2147483647L) break;
        *(int *)o->dst = (int)v;
        return 0;
    }
    case DG_OPT_U64: {
        if (text[0] == '-') break;
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || end == text || *end) break;
        *(uint64_t *)o->dst = (uint64_t)v;
        return 0;
    }
    case DG_OPT_FLOAT: {
        float v = strtof(text, &end);
        if (errno || end == text || *end || !isfinite(v)) break; /* no option means NaN or ∞ */
        *(float *)o->dst = v;
        return 0;
    }
    case DG_OPT_DOUBLE: {
        double v = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(v)) break;
        *(double *)o->dst = v;
        return 0;
    }
    case DG_OPT_FLAG: return 0;
    }
    if (errno == ERANGE) dg_cli_error("%s: --%s: '%s' is out of range", command, o->name, text);
    else dg_cli_error("%s: --%s: '%s' is not a valid value", command, o->name, text);
    return -1;
}

static void print_help(const char *command, const dg_opt *opts, int n_opts) {
    printf("usage: dnnguard %s [options]\n", command);
    for (int i = 0; i < n_opts; i++)
        printf("  --%-16s %s%s\n", opts[i].name, opts[i].type == DG_OPT_FLAG ? "" : "VALUE  ", opts[i].help);
}

int dg_cli_parse(const char *command, int argc, char **argv, const dg_opt *opts, int n_opts) {
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_help(command, opts, n_opts);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            dg_cli_error("%s: unexpected argument '%s' (see dnnguard %s --help)", command, arg, command);
            return -1;
        }
        const dg_opt *o = NULL;
        for (int k = 0; k < n_opts && !o; k++)
            if (strcmp(arg + 2, opts[k].name) == 0) o = &opts[k];
        if (!o) {
            dg_cli_error("%s: unknown option '%s' (see dnnguard %s --help)", command, arg, command);
            return -1;
        }
        if (o->type == DG_OPT_FLAG) {
            *(int *)o->dst = 1;
            continue;
        }
        if (i + 1 >= argc) {
            dg_cli_error("%s: --%s needs a value", command, o->name);
            return -1;
        }
        if (strncmp(argv[i + 1], "--", 2) == 0) { /* `--out --global`: the option would become a file name */
            dg_cli_error("%s: --%s needs a value, not the option '%s' (a path that starts with -- can be given as "
                         "./%s)", command, o->name, argv[i + 1], argv[i + 1]);
            return -1;
        }
        if (parse_value(command, o, argv[++i]) != 0) return -1;
    }
    return 0;
}

int dg_cli_given(int argc, char **argv, const char *name) {
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i] + 2, name) == 0) return 1;
    return 0;
}

const dg_backend *dg_cli_backend(const char *name) {
    if (!name || strcmp(name, "auto") == 0) {
#ifdef DNNGUARD_HAVE_CUDA
        const dg_backend *cuda = dg_backend_cuda();
        if (cuda) return cuda;
#endif
        return dg_backend_cpu();
    }
    if (strcmp(name, "cpu") == 0) return dg_backend_cpu();
    if (strcmp(name, "cuda") == 0) {
#ifdef DNNGUARD_HAVE_CUDA
        const dg_backend *cuda = dg_backend_cuda();
        if (cuda) return cuda;
        dg_cli_error("--backend cuda: no CUDA device is present on this machine");
#else
        dg_cli_error("--backend cuda: this binary was built without the CUDA backend (cmake -DDNNGUARD_CUDA=ON)");
#endif
        return NULL;
    }
    dg_cli_error("--backend: unknown backend '%s' (cpu, cuda or auto)", name);
    return NULL;
}

int dg_cli_backend_modes(const char *command, const dg_backend *be, const char *precision, int deterministic) {
    int tf32 = 0;
    if (precision && strcmp(precision, "tf32") == 0) tf32 = 1;
    else if (precision && strcmp(precision, "fp32") != 0) {
        dg_cli_error("%s: --precision must be fp32 or tf32, not '%s'", command, precision);
        return -1;
    }
    int cuda = strcmp(be->name, "cuda") == 0;
    if (tf32 && !cuda) {
        dg_cli_error("%s: --precision tf32 needs the CUDA backend; the %s backend computes in FP32 only", command,
                     be->name);
        return -1;
    }
#ifdef DNNGUARD_HAVE_CUDA
    if (cuda) {
        dg_cuda_set_tf32(tf32);
        dg_cuda_set_deterministic(deterministic);
    }
#else
    (void)deterministic;
#endif
    return 0;
}

dg_cli_device_info dg_cli_device(const dg_backend *be) {
    dg_cli_device_info info = {.name = "host CPU", .peak_bytes = -1, .footprint_bytes = -1};
#ifdef DNNGUARD_HAVE_CUDA
    if (strcmp(be->name, "cuda") == 0) {
        size_t peak = 0;
        dg_cuda_memory_stats(NULL, &peak);
        info.name = dg_cuda_device_name();
        info.peak_bytes = (long long)peak;
        info.footprint_bytes = (long long)dg_cuda_device_footprint_bytes();
    }
#else
    (void)be;
#endif
    return info;
}

double dg_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
