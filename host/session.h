/* host/session.h — the steps most subcommands share: load a data split, build the named net for
 * its shape, set it up on a backend, load weights; and evaluation over a whole split. Each
 * function prints its own one-line error and returns NULL / -1. */
#ifndef DG_SESSION_H
#define DG_SESSION_H

#include "data.h"
#include "net.h"

/* Build net `name` for data set ds (its shape and class count; ds may be NULL: the net's natural
 * shape), set up on be for batches of `batch`, and load `model` when not NULL. */
dg_net *dg_session_net(const char *name, const dg_dataset *ds, const dg_backend *be, int batch, const char *model);

/* Load split (1 train, 0 test) of spec into ds. 0 or -1 (message printed). */
int dg_session_data(const char *spec, int train, dg_dataset *ds);

typedef struct dg_eval_result {
    int images;
    double loss;             /* mean cross-entropy */
    double accuracy;         /* fraction correct */
    double top5_accuracy;    /* fraction whose label is among the 5 most probable classes (ties count for it) */
    int nonfinite;           /* images whose outputs hold NaN or ±inf: no class, counted wrong */
    int classes;
    int *correct, *count;    /* [classes] per true class, malloc'd: dg_eval_result_free */
} dg_eval_result;

/* Evaluate (batch norm with running statistics, dropout off) the first `limit` images of ds
 * (all when limit ≤ 0). r must be zeroed ({0}) or hold an earlier result, whose arrays are freed
 * first; labels outside 0..classes-1 are refused. */
int dg_evaluate(dg_net *net, const dg_dataset *ds, int limit, dg_eval_result *r);
/* The same, also writing each image's predicted class (in data set order) to predictions[n]: −1 for
 * an image whose outputs are not finite (argmax of NaN would make one up). */
int dg_evaluate_predictions(dg_net *net, const dg_dataset *ds, int limit, dg_eval_result *r, int *predictions);

/* An empty result for `classes` classes, its per-class arrays zeroed (r's earlier arrays freed).
 * 0, or -1 (message printed). */
int dg_eval_result_init(dg_eval_result *r, int classes);
/* Frees the per-class arrays and zeroes r; harmless on a zeroed result. */
void dg_eval_result_free(dg_eval_result *r);

/* argmax of each row of host logits/probabilities [n, k] */
void dg_argmax_rows(const float *rows, int n, int k, int *out);

#endif
