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

/* Load `model` into net (set up); when mean and std are given (the inputs' normalisation), warn
 * if the file records that it was trained with another --normalize. 0 or -1 (said). */
int dg_session_load(dg_net *net, const char *model, const float *mean, const float *std);

/* The batch that activations are set up for when a command runs the first `limit` (0: all) of ds's n
 * images: batch, or fewer when there are fewer images (no memory for images that are not there). */
int dg_session_batch(int batch, int limit, const dg_dataset *ds);

/* Load split (1 train, 0 test) of spec into ds, normalised by norm (NULL, or not given: the data
 * set's own). 0 or -1 (message printed). */
int dg_session_data(const char *spec, int train, const dg_norm *norm, dg_dataset *ds);

/* --normalize, the same on every command that loads images (host/data.h, dg_norm_parse) */
#define DG_NORMALIZE_HELP                                                                                     \
    "input normalisation the model was trained with: MEAN/STD on [0, 1] pixels, one value or one per "        \
    "channel (0.5/0.5, 0.485,0.456,0.406/0.229,0.224,0.225), imagenet, none (0/1), data (default: the data "  \
    "set's own)"
#define DG_NORMALIZE_OPT(dst) {"normalize", DG_OPT_STR, &(dst), DG_NORMALIZE_HELP}
/* for commands whose reference (registry, InFIP manifest) records the normalisation it was made with */
#define DG_NORMALIZE_RECORDED_OPT(dst)                                                                          \
    {"normalize", DG_OPT_STR, &(dst),                                                                          \
     "input normalisation, as for eval: must be the one the reference records (default: that one)"}

/* text (--normalize; NULL when not given) into norm. 0, or -1 with "<command>: --normalize: ..." printed. */
int dg_session_norm(const char *command, const char *text, dg_norm *norm);

/* For a command checked against a reference (`record`: its file) made with mean/std on ds->c channels:
 * when --normalize was given (given), ds, loaded with it, must be normalised so, else the command is
 * refused (a verification never runs with another normalisation than its reference's); then ds takes
 * the recorded one (its own data set's may differ). 0, or -1 (message printed). */
int dg_session_norm_recorded(const char *command, int given, const char *record, dg_dataset *ds, const float *mean,
                             const float *std);

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
