/* host/cmd_selftest.c — `dnnguard selftest [--backend cuda] [--precision fp32|tf32] [--json FILE]`:
 * every op of the table on the CPU reference and the chosen backend, compared (see selftest.h);
 * prints a table, writes JSON, exits 0 when all agree, 1 otherwise, 2 when the backend is
 * unavailable or the options are bad. Includes no CUDA header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "selftest.h"

#ifdef DNNGUARD_HAVE_CUDA
#include "../kernels/cuda/shapes.h" /* plain C: the CUDA backend's switches */
#endif

/* The options --help does not list: --inject-error OP perturbs one output element of OP on the
 * tested backend, --inject-stray OP writes the word just past OP's first output instead; both show
 * that the harness catches a wrong result or a stray write (tests/test_selftest.sh). */
static const char *take_hidden(int *argc, char **argv, int *stray, int *bad) {
    const char *inject = NULL;
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        int is_error = strcmp(argv[i], "--inject-error") == 0, is_stray = strcmp(argv[i], "--inject-stray") == 0;
        if (is_error || is_stray) {
            if (i + 1 >= *argc || inject || strncmp(argv[i + 1], "--", 2) == 0) { /* not "--only" as the op */
                dg_cli_error("selftest: %s needs an op name (and only one injection per run)", argv[i]);
                *bad = 1;
                return NULL;
            }
            inject = argv[++i];
            *stray = is_stray;
            continue;
        }
        argv[out++] = argv[i];
    }
    *argc = out;
    return inject;
}

static int known_op(const char *name) {
    for (const char *const *op = dg_selftest_op_names(); *op; op++)
        if (strcmp(*op, name) == 0) return 1;
    return 0;
}

int dg_cmd_selftest(int argc, char **argv) {
    int bad = 0, stray = 0;
    const char *inject = take_hidden(&argc, argv, &stray, &bad);
    if (bad) return DG_EXIT_BAD_INPUT;
    const char *backend = "auto", *precision = "fp32", *json = NULL, *only = NULL;
    int reps = 3, no_nets = 0, deterministic = 0;
    uint64_t seed = 1;
    const dg_opt opts[] = {
        {"backend", DG_OPT_STR, &backend, "backend under test: cuda | cpu | auto (default auto); the CPU is the reference"},
        {"precision", DG_OPT_STR, &precision, "fp32 (tolerance 1e-6) | tf32 (1e-3 for conv, linear and nets)"},
        {"deterministic", DG_OPT_FLAG, &deterministic, "only deterministic cuDNN algorithms"},
        {"json", DG_OPT_STR, &json, "also write the report as JSON to this file"},
        {"only", DG_OPT_STR, &only, "run only this op's cases (conv_fwd, bn_bwd, net_step, ...)"},
        {"reps", DG_OPT_INT, &reps, "timed repetitions per case after the checked run (default 3)"},
        {"no-nets", DG_OPT_FLAG, &no_nets, "skip the whole-net training steps (lenet5, resnet18-cifar)"},
        {"seed", DG_OPT_U64, &seed, "seed of the test inputs (default 1)"},
    };
    int rc = dg_cli_parse("selftest", argc, argv, opts, (int)(sizeof opts / sizeof *opts));
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (reps < 0 || reps > 1000) {
        dg_cli_error("selftest: --reps must be between 0 and 1000");
        return DG_EXIT_BAD_INPUT;
    }
    if (only && !known_op(only)) {
        dg_cli_error("selftest: --only: unknown op '%s'", only);
        return DG_EXIT_BAD_INPUT;
    }
    if (inject && !known_op(inject)) {
        dg_cli_error("selftest: --inject-%s: unknown op '%s'", stray ? "stray" : "error", inject);
        return DG_EXIT_BAD_INPUT;
    }
    if (inject && stray && !dg_selftest_op_guarded(inject)) {
        dg_cli_error("selftest: --inject-stray %s: that op places no guard words (use --inject-error)", inject);
        return DG_EXIT_BAD_INPUT;
    }
    const dg_backend *test = dg_cli_backend(backend);
    /* the modes as train takes them: TF32 on the CPU is refused, not tested at TF32's looser bound */
    if (!test || dg_cli_backend_modes("selftest", test, precision, deterministic) != 0) return DG_EXIT_BAD_INPUT;
    const int tf32 = strcmp(precision, "tf32") == 0;
    const dg_backend *ref = dg_backend_cpu();
    const char *device = "host CPU";
#ifdef DNNGUARD_HAVE_CUDA
    if (test != ref) device = dg_cuda_device_name();
#endif

    dg_selftest_opts o = {.ref = ref, .test = test, .tf32 = tf32, .reps = reps, .nets = !no_nets, .only = only,
                          .inject = inject, .inject_stray = stray, .seed = seed};
    /* --json goes to a temporary name, renamed at the end so a reader never sees half a file; opened
     * first, so an unwritable path is said before the run rather than after it */
    char *tmp = NULL;
    FILE *f = NULL;
    if (json) {
        size_t len = strlen(json) + 8;
        if ((tmp = malloc(len))) {
            snprintf(tmp, len, "%s.tmp", json);
            f = fopen(tmp, "w");
        }
        if (!f) {
            dg_cli_error("selftest: %s: cannot write", json);
            free(tmp);
            return DG_EXIT_BAD_INPUT;
        }
    }
    printf("dnnguard selftest: %s (%s) against the %s reference, %s%s, seed %llu\n", test->name, device, ref->name,
           tf32 ? "tf32" : "fp32", deterministic ? ", deterministic" : "", (unsigned long long)seed);
    printf("error = ||a-b||^2/||b||^2 over each output (b: reference); pass: error <= tolerance, guards intact, "
           "inputs unchanged\n");
    fflush(stdout);
    dg_selftest_report report;
    if (dg_selftest_run(&o, &report) != 0) {
        dg_selftest_report_free(&report);
        if (f) fclose(f), remove(tmp);
        free(tmp);
        return DG_EXIT_BAD_INPUT;
    }
    dg_selftest_print(stdout, &o, &report);
    rc = report.failed ? DG_EXIT_NO : DG_EXIT_OK;
    if (f) {
        dg_selftest_write_json(f, &o, device, &report);
        int werr = ferror(f);
        if (fclose(f) != 0 || werr || rename(tmp, json) != 0) {
            dg_cli_error("selftest: %s: write failed", json);
            remove(tmp);
            rc = DG_EXIT_BAD_INPUT;
        }
    }
    free(tmp);
    dg_selftest_report_free(&report);
    return rc;
}
