/* host/selftest.h — the backend selftest: every op of the table, forward and backward, run on a
 * reference backend (the CPU) and a backend under test from the same inputs and compared, plus one
 * whole training step of real nets. Reaches devices only through the op table; no CUDA header. */
#ifndef DG_SELFTEST_H
#define DG_SELFTEST_H

#include <stdint.h>
#include <stdio.h>

#include "../kernels/backend.h"

/* The comparison: normalised error e = ||a − b||² / ||b||², squared L2 norms over every element of
 * an output, b from the reference, a from the backend under test (||a||² itself when b is all
 * zeros; NaN or inf when either side produced one). A case passes when, for every output,
 * e ≤ tolerance (integer outputs such as max-pool indices must match exactly), every guard word
 * around every output and workspace is untouched, and every input is unchanged. */
#define DG_SELFTEST_TOL_FP32 1e-6
#define DG_SELFTEST_TOL_TF32 1e-3 /* for the ops that TF32 affects: convolutions, linear, nets */

typedef struct dg_selftest_opts {
    const dg_backend *ref;  /* the reference: dg_backend_cpu() */
    const dg_backend *test; /* the backend under test (the CPU itself is allowed: errors must be 0) */
    int tf32;               /* the tested backend runs TF32: looser tolerance for conv/linear/nets */
    int reps;               /* timed repetitions after the checked run (0: report the checked run) */
    int nets;               /* also one training step of lenet5 and resnet18-cifar */
    const char *only;       /* run only this op's cases (NULL: every op) */
    const char *inject;     /* perturb one output element of this op on the tested backend (NULL: none) */
    int inject_stray;       /* instead, write one word just past that op's first output (a guard) */
    uint64_t seed;          /* inputs are drawn from it */
} dg_selftest_opts;

typedef struct dg_selftest_row {
    char op[32];     /* the op-table entry ("conv_fwd"), or "alloc", or "net_step" */
    char shape[96];  /* which case */
    int pass;
    double error;    /* the worst normalised error over the outputs */
    double tol;
    int guards_ok;   /* guards intact and inputs unchanged, on both backends; −1: none placed (alloc, the nets) */
    char worst[48];  /* the output with the worst error, or what broke */
    char note[200];  /* extra detail (net steps: the per-component errors) */
    double ms_ref, ms_test;
} dg_selftest_row;

typedef struct dg_selftest_report {
    dg_selftest_row *rows;
    int n_rows, cap_rows;
    int failed;
} dg_selftest_report;

/* Run every case (or opts->only's). 0 when the run completed (the rows say what passed), -1 when it
 * could not run (out of memory, a net that cannot be built), with a message on stderr. */
int dg_selftest_run(const dg_selftest_opts *opts, dg_selftest_report *report);
void dg_selftest_report_free(dg_selftest_report *report);

/* The op names the selftest has cases for (a NULL-terminated list), for --only / --inject-error. */
const char *const *dg_selftest_op_names(void);
/* Whether op's cases place guard words around their buffers (alloc and the whole nets do not). */
int dg_selftest_op_guarded(const char *op);

/* The report as a table (one row per case) and as JSON (the same rows plus the run's settings). */
void dg_selftest_print(FILE *out, const dg_selftest_opts *opts, const dg_selftest_report *report);
void dg_selftest_write_json(FILE *out, const dg_selftest_opts *opts, const char *device,
                            const dg_selftest_report *report);

#endif
