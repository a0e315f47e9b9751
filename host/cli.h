/* host/cli.h — what every subcommand shares: declarative option parsing (--name value), backend
 * choice, and the exit-code convention (0 success/yes, 1 a negative verdict, 2 bad input, 3 stopped
 * by a signal after a checkpoint, 4 a device, library or rank failure at run time). */
#ifndef DG_CLI_H
#define DG_CLI_H

#include <stdint.h>
#include <stdio.h>
#include "../kernels/backend.h"

enum { DG_EXIT_OK = 0, DG_EXIT_NO = 1, DG_EXIT_BAD_INPUT = 2, DG_EXIT_STOPPED = 3, DG_EXIT_FAILED = 4 };

/* DG_OPT_DOUBLE for values compared with doubles (thresholds, chances): a float would round them.
 * DG_OPT_DIR: a folder, as DG_OPT_STR less its trailing slashes ("refs/" is "refs", so that the
 * paths made in it read "refs/key-0.png"; "/" stays), cut in argv's own string. */
typedef enum { DG_OPT_STR, DG_OPT_DIR, DG_OPT_INT, DG_OPT_FLOAT, DG_OPT_DOUBLE, DG_OPT_U64, DG_OPT_FLAG } dg_opt_type;

typedef struct dg_opt {
    const char *name; /* without the leading "--" */
    dg_opt_type type;
    void *dst;        /* const char ** (STR, DIR), int *, float *, uint64_t *, int * (flag: set to 1) */
    const char *help;
} dg_opt;

/* Parse argv[0..argc) against opts; prints one line and returns -1 on an unknown option, a
 * missing value or a malformed number. "--help" prints the options and returns 1. */
int dg_cli_parse(const char *command, int argc, char **argv, const dg_opt *opts, int n_opts);
/* Whether "--name" is among argv[0..argc) (after dg_cli_parse accepted them): for options whose
 * default cannot tell "not given" apart, such as one that means nothing with another's value. */
int dg_cli_given(int argc, char **argv, const char *name);

/* "cpu", "cuda" or "auto" (CUDA when compiled in and a device is present). NULL + message when
 * the backend cannot be had. */
const dg_backend *dg_cli_backend(const char *name);

/* Applies --precision ("fp32" or "tf32"; NULL is fp32) and --deterministic to be, the table
 * dg_cli_backend returned. TF32 needs the CUDA backend: the CPU computes in FP32 only, so asking
 * it for TF32 is refused rather than ignored. --deterministic holds on the CPU anyway (no atomics;
 * fixed reduction orders at a given thread count). 0, or -1 with the message printed. */
int dg_cli_backend_modes(const char *command, const dg_backend *be, const char *precision, int deterministic);

/* The device behind be and its memory as far as this process used it: name ("host CPU", or the GPU
 * as "NVIDIA H100 ... (sm_90, 132 SMs, 79.1 GiB)"); peak_bytes, the most the backend allocated at
 * once so far (arenas, workspaces, scratch); footprint_bytes, device memory in use beyond the empty
 * context (handles, library workspaces and loaded kernels too). Both -1 on the CPU backend, whose
 * memory is the process's resident set. */
typedef struct dg_cli_device_info {
    const char *name;
    long long peak_bytes, footprint_bytes;
} dg_cli_device_info;
dg_cli_device_info dg_cli_device(const dg_backend *be);

/* Writes s as a JSON string literal (quoted, escaped; a byte that is not UTF-8 as U+FFFD). */
void dg_json_string(FILE *out, const char *s);
/* The length of the UTF-8 character at p (1–4), or 0 when the bytes there are not one. */
size_t dg_utf8_length(const unsigned char *p);
/* in as UTF-8 text for a record (a path in JSON or metadata): each byte that is not UTF-8 becomes
 * U+FFFD. 0, or −1 when out (cap bytes) cannot hold it all (out then holds a cut, terminated text). */
int dg_utf8_clean(const char *in, char *out, size_t cap);

/* A number as JSON text: v with `decimals` digits after the point (dg_json_fixed, "%.*f") or
 * `digits` significant ones (dg_json_sig, "%.*g"), or null when v is NaN or infinite, which JSON
 * cannot write (a model with NaN weights still gets parsable output). Print .s with "%s". */
typedef struct {
    char s[352]; /* room for DBL_MAX in full */
} dg_json_num;
dg_json_num dg_json_fixed(double v, int decimals);
dg_json_num dg_json_sig(double v, int digits);
/* v exactly: the shortest text that reads back as the same double (a verdict's figures) */
dg_json_num dg_json_exact(double v);

/* Seconds on the monotonic clock (for durations). */
double dg_now_s(void);

/* Prints "dnnguard: <message>" on stderr, as one line (control characters escaped); while held, keeps
 * it instead. */
void dg_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Holding: the lines of dg_cli_error are kept, not printed, until dg_cli_error_release, which prints
 * them (each as "dnnguard: <prefix><message>") when say is set, else drops them, and ends holding.
 * Several ranks that fail alike hold their lines so that one rank says them (host/dist.h). */
void dg_cli_error_hold(void);
void dg_cli_error_release(int say, const char *prefix);
/* A warning line, "dnnguard: warning: <message>", on stderr; a rank other than the first of a job
 * (dg_cli_warnings_from_this_rank(0), host/dist.c) says none: every rank would say the same. */
void dg_cli_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dg_cli_warnings_from_this_rank(int say);

#endif
