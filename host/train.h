/* host/train.h — the training loop: data → forward → loss → backward → optimizer step, with
 * learning-rate schedules, checkpoints (on a step interval, per epoch, on SIGTERM/SIGUSR1),
 * exact resume, a TTY progress line and JSON-lines logs. */
#ifndef DG_TRAIN_H
#define DG_TRAIN_H

#include <stdint.h>
#include "data.h"

typedef struct dg_train_opts {
    const char *net, *data, *out, *init, *log, *checkpoint, *backend;
    const char *opt;        /* "sgd" | "adam" */
    const char *schedule;   /* "const" | "step" | "multistep" | "cosine" */
    const char *milestones; /* "60,120,160" for multistep */
    const char *split;      /* the split trained on: "train" (default) or "test" (fine-tuning attacks) */
    const char *wm;         /* watermark key (JSON) whose regularizer is added to the loss, or NULL */
    float wm_lambda;        /* its weight λ (default 0.01) */
    int epochs, batch, ckpt_every, nesterov, resume, eval_every, subset;
    int stop_after;         /* act as if signalled after this many optimizer steps (tests, preemption drills) */
    int augment;            /* -1: on for CIFAR-10, off otherwise */
    float lr, momentum, weight_decay, gamma, beta1, beta2, adam_eps;
    int step_size;
    uint64_t seed;
    const dg_dataset *extra; /* examples appended to the training set after --subset (attack
                                overwrite's key images), or NULL; not recorded in checkpoints */
} dg_train_opts;

void dg_train_defaults(dg_train_opts *o);

/* The learning rate of epoch e (0-based) under o's schedule. */
double dg_train_lr(const dg_train_opts *o, int epoch);

/* Run; returns the process exit code (0 done, 2 bad input, 3 stopped by a signal after writing
 * a checkpoint). */
int dg_train(const dg_train_opts *o);

#endif
