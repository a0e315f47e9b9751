/* host/train.h — the training loop: data → forward → loss → backward → optimizer step, with
 * learning-rate schedules, checkpoints (on a step interval, per epoch, on SIGTERM/SIGUSR1),
 * exact resume, a TTY progress line and JSON-lines logs; data-parallel over ranks (docs/distributed.md). */
#ifndef DG_TRAIN_H
#define DG_TRAIN_H

#include <stdint.h>
#include "data.h"
#include "dist.h"

typedef struct dg_train_opts {
    const char *command;    /* what messages start with: "train" (default), "attack finetune", ... */
    const char *net, *data, *out, *init, *log, *checkpoint, *backend;
    const char *opt;        /* "sgd" | "adam" */
    const char *schedule;   /* "const" | "step" | "multistep" | "cosine" */
    const char *milestones; /* "60,120,160" for multistep */
    const char *save_epochs; /* "20,50": also write the weights after these epochs, as OUT.epochN.safetensors */
    const char *split;      /* the split trained on: "train" (default) or "test" (fine-tuning attacks) */
    const char *normalize;  /* --normalize text (host/data.h, dg_norm_parse); NULL: the data set's own */
    const char *precision;  /* "fp32" (default) | "tf32": tensor-core math on the CUDA backend */
    int deterministic;      /* only deterministic cuDNN algorithms (the CPU always is) */
    const char *wm;         /* watermark key (JSON) whose regularizer is added to the loss, or NULL */
    float wm_lambda;        /* its weight λ (default 0.01) */
    int epochs, batch, ckpt_every, nesterov, resume, eval_every, subset;
    int stop_after;         /* act as if signalled after this many optimizer steps (tests, preemption drills) */
    int augment;            /* -1: on for CIFAR-10, off otherwise */
    double lr, momentum, weight_decay, gamma, beta1, beta2, adam_eps; /* as typed: torch computes its step's
                                                                         scalars from the Python doubles */
    float label_smoothing; /* ε of the training loss's targets, in [0, 1); evaluation losses use 0 */
    float clip_grad_norm;  /* > 0: gradients scaled to at most this total L2 norm before each step */
    int step_size;
    int warmup_epochs;     /* > 0: the rate ramps linearly from 1/(W·S) of the schedule's to all of it over
                              the first W epochs of S steps, step by step */
    uint64_t seed;
    int quiet;               /* print no result line on stdout (a caller prints its own) */
    int eval_limit;          /* > 0: the per-epoch evaluation takes the first N test images only */
    const dg_dataset *extra; /* examples appended to the training set after --subset (attack
                                overwrite's key images), or NULL; not recorded in checkpoints */
    dg_dist *dist;           /* data parallelism (host/dist.h): --batch is the global batch, each rank
                                trains on its share; NULL: one process */
} dg_train_opts;

void dg_train_defaults(dg_train_opts *o);

/* The learning rate of epoch e (0-based) under o's schedule. */
double dg_train_lr(const dg_train_opts *o, int epoch);

/* The training options on a command line into o (dg_train_defaults first): train's (--init,
 * --wm, --wm-lambda) or, with from_model, an attack's (--model FILE into *model, required, and no
 * watermark), then the shared ones, then n_extra options of the caller's. 0, 1 after --help, −1
 * with the message printed. */
struct dg_opt;
/* 0 when --opt and --schedule are names dg_train knows, else −1 with the message printed. */
int dg_train_check_names(const dg_train_opts *o);
int dg_train_parse(const char *command, int argc, char **argv, dg_train_opts *o, int from_model, const char **model,
                   const struct dg_opt *extra, int n_extra);

/* Run; returns the process exit code (0 done, 2 bad input, 3 stopped by a signal after writing
 * a checkpoint). */
int dg_train(const dg_train_opts *o);

#endif
