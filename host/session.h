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
    int classes;
    int correct[1000], count[1000];
} dg_eval_result;

/* Evaluate (batch norm with running statistics, dropout off) the first `limit` images of ds
 * (all when limit ≤ 0). */
int dg_evaluate(dg_net *net, const dg_dataset *ds, int limit, dg_eval_result *r);
/* The same, also writing each image's predicted class (in data set order) to predictions[n]. */
int dg_evaluate_predictions(dg_net *net, const dg_dataset *ds, int limit, dg_eval_result *r, int *predictions);

/* argmax of each row of host logits/probabilities [n, k] */
void dg_argmax_rows(const float *rows, int n, int k, int *out);

#endif
