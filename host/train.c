/* host/train.c — the training loop behind `dnnguard train` (see train.h). The state that makes a
 * run resumable bit for bit is: parameters and running statistics, optimizer buffers, the global
 * step, and the position in the epoch; everything random is a function of (seed, epoch, step). */
#include "train.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/math/optim.h"
#include "../kernels/math/rng.h"
#include "atomic_file.h"
#include "cli.h"
#include "dist_train.h"
#include "json_fields.h"
#include "loader.h"
#include "model_io.h"
#include "session.h"
#include "torch_pt.h"
#include "watermark.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

void dg_train_defaults(dg_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->command = "train";
    o->opt = "sgd";
    o->schedule = "const";
    o->backend = "auto";
    o->precision = "fp32";
    o->epochs = 10;
    o->batch = 128;
    o->lr = 0.1;
    o->momentum = 0.9;
    o->gamma = 0.1;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->adam_eps = 1e-8;
    o->step_size = 30;
    o->eval_every = 1;
    o->augment = -1;
    o->seed = 1;
    o->split = "train";
    o->wm_lambda = 0.01f;
}

static int parse_milestones(const char *text, int *out, int cap) {
    int n = 0;
    while (text && *text) {
        char *end;
        errno = 0;
        long v = *text >= '0' && *text <= '9' ? strtol(text, &end, 10) : -1; /* digits only: no sign, no space */
        if (v < 0 || errno || v > 100000000L || n == cap) return -1; /* an epoch number fits an int */
        out[n++] = (int)v;
        if (*end && (*end != ',' || !end[1])) return -1; /* a separator, not junk or a trailing comma */
        text = *end == ',' ? end + 1 : end;
    }
    return n;
}

double dg_train_lr(const dg_train_opts *o, int epoch) {
    double lr = o->lr;
    if (strcmp(o->schedule, "step") == 0) return lr * pow(o->gamma, epoch / (o->step_size > 0 ? o->step_size : 1));
    if (strcmp(o->schedule, "multistep") == 0) {
        int m[32], n = parse_milestones(o->milestones, m, 32), passed = 0;
        for (int i = 0; i < n; i++) passed += epoch >= m[i];
        return lr * pow(o->gamma, passed);
    }
    if (strcmp(o->schedule, "cosine") == 0) return lr * 0.5 * (1.0 + cos(M_PI * epoch / o->epochs));
    return lr;
}

/* Linear warm-up (Goyal et al., "Accurate, large minibatch SGD"): the scheduled rate times t / (W·S) at
 * global step t = 1 .. W·S, S steps per epoch; torch's LambdaLR(lambda t: min(1, (t + 1) / (W·S)))
 * stepped after every optimizer step. */
static double warmed_up_lr(const dg_train_opts *o, double lr, long step_number, int steps_per_epoch) {
    long span = (long)o->warmup_epochs * steps_per_epoch;
    return step_number < span ? lr * (double)step_number / (double)span : lr;
}

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) { stop_signal = sig; }

/* Optimizer state: host copies are only made when checkpointing. */
typedef struct optim_state {
    int adam;       /* Adam or AdamW: two buffers */
    int decoupled;  /* AdamW */
    float *a, *b;      /* device: momentum buffer | Adam exp_avg, exp_avg_sq (b NULL for SGD) */
    long global_step;  /* optimizer steps taken */
} optim_state;

/* Optimizer buffers as torch.optim names them: checkpoints hold "optim.<kind>.<parameter>". */
static int optim_buffers(const optim_state *s) { return s->adam ? 2 : 1; }
static const char *optim_kind(const optim_state *s, int k) {
    return s->adam ? (k ? "exp_avg_sq" : "exp_avg") : "momentum_buffer";
}

/* clip_grad_norm_: the trainable parameters' gradients scaled to a total norm of at most max_norm. The
 * running statistics' slots of the gradient arena stay zero, so the whole arena is one reduction (one
 * device round trip, not one per parameter) and one scale. */
static void clip_gradients(dg_net *net, float max_norm) {
    const dg_backend *be = net->be;
    const float coef = dg_clip_coef(be->sum_squares(net->n_param_floats, net->grad_arena), max_norm);
    if (coef >= 1.0f) return; /* torch multiplies by 1 then: no bit changes */
    be->scale(net->n_param_floats, coef, net->grad_arena);
}

static void optim_step(dg_net *net, const dg_train_opts *o, optim_state *s, double lr) {
    const dg_backend *be = net->be;
    s->global_step++;
    if (o->clip_grad_norm > 0.0f) clip_gradients(net, o->clip_grad_norm);
    for (int i = 0; i < net->n_params; i++) {
        const dg_param *p = &net->params[i];
        if (p->role == DG_PARAM_RUNNING) continue;
        float *w = net->param_arena + p->offset, *g = net->grad_arena + p->offset;
        if (s->adam)
            be->adam_step(p->numel, w, g, s->a + p->offset, s->b + p->offset, lr, o->beta1, o->beta2, (float)o->adam_eps,
                          o->weight_decay, s->decoupled, (int)s->global_step);
        else
            be->sgd_step(p->numel, w, g, s->a + p->offset, (float)lr, (float)o->momentum, (float)o->weight_decay,
                         o->nesterov, s->global_step == 1);
    }
}

/* Running sums of one epoch, kept in checkpoints so a resumed epoch reports the same figures. */
typedef struct epoch_sums {
    double loss_sum;
    double wm_sum;     /* the watermark regularizer, summed over steps (not images) */
    long correct, seen;
} epoch_sums;

/* OUT with `tag` before its extension: "m.safetensors" → "m.<tag>.safetensors", and with
 * same_format a torch.save name keeps its own ("m.pt" → "m.<tag>.pt"); any other name gets
 * ".<tag>.safetensors" appended (checkpoints: "m.pt" → "m.pt.ckpt.safetensors"). */
static char *derive_path(const char *out, const char *tag, int same_format) {
    size_t n = strlen(out), cap = n + strlen(tag) + 32;
    const char *ext = same_format && dg_pt_path(out) ? strrchr(out, '.') : ".safetensors";
    size_t le = strlen(ext);
    char *path = malloc(cap);
    if (!path) return NULL;
    if (n > le && strcmp(out + n - le, ext) == 0)
        snprintf(path, cap, "%.*s.%s%s", (int)(n - le), out, tag, ext);
    else
        snprintf(path, cap, "%s.%s.safetensors", out, tag);
    return path;
}
static char *derive_checkpoint_path(const char *out) { return derive_path(out, "ckpt", 0); }

/* the --save-epochs snapshot of epoch e (1-based): OUT.epochE.safetensors (or .pt); NULL when out of memory */
static char *snapshot_path(const dg_train_opts *o, int e) {
    char tag[32];
    snprintf(tag, sizeof tag, "epoch%d", e);
    return derive_path(o->out, tag, 1);
}

/* whether epoch e (1-based) is in the --save-epochs list */
static int save_after(const dg_train_opts *o, int e) {
    int m[64], n = o->save_epochs ? parse_milestones(o->save_epochs, m, 64) : 0;
    for (int i = 0; i < n; i++)
        if (m[i] == e) return 1;
    return 0;
}

/* What a checkpoint records of the watermark being embedded, so a resume with another key (or
 * none) is refused: "none", or layer/filter/digits/λ. */
static void wm_signature(const dg_train_opts *o, const dg_wm_key *key, char *out, size_t len) {
    if (!o->wm) {
        snprintf(out, len, "none");
        return;
    }
    char digits[DG_WM_MAX_DIGITS + 1];
    for (int k = 0; k < key->n; k++) digits[k] = (char)('0' + key->digits[k]);
    digits[key->n] = 0;
    snprintf(out, len, "%s/%d/%.64s%s/%.9g", key->layer, key->filter, digits, key->n > 64 ? "..." : "",
             (double)o->wm_lambda);
}

/* The configuration a checkpoint records and a resume must match (the rest of a run's options are
 * taken from its command): key, this run's value, and what a checkpoint written before the key was
 * recorded stands for (NULL: it must be there). */
enum { RUN_CONFIG_N = 11 };
/* What this run records in its checkpoints besides the options: the watermark's signature, the
 * recipe (below) and the input normalisation as text. */
struct recipe;
typedef struct run_texts {
    const char *wm;
    const struct recipe *recipe;
    const char *normalize;
} run_texts;
typedef struct run_config {
    const char *key[RUN_CONFIG_N], *value[RUN_CONFIG_N], *before[RUN_CONFIG_N];
    char seed[32], batch[32], smoothing[32], subset[32];
    char data[3 * 4096 + 8]; /* the data spec as UTF-8: metadata is text, a folder's name may not be */
} run_config;

static void run_config_of(const dg_train_opts *o, const run_texts *t, run_config *c) {
    snprintf(c->seed, sizeof c->seed, "%llu", (unsigned long long)o->seed);
    snprintf(c->batch, sizeof c->batch, "%d", o->batch);
    snprintf(c->smoothing, sizeof c->smoothing, "%.9g", (double)o->label_smoothing);
    snprintf(c->subset, sizeof c->subset, "%d", o->subset);
    dg_utf8_clean(o->data ? o->data : "", c->data, sizeof c->data);
    const char *pairs[RUN_CONFIG_N][3] = {
        {"format", "dnnguard-checkpoint-1", NULL}, {"net", o->net, NULL}, {"data", o->data ? c->data : NULL, NULL},
        {"split", o->split, NULL}, {"opt", o->opt, NULL}, {"wm", t->wm, NULL}, {"seed", c->seed, NULL},
        {"batch", c->batch, NULL}, {"label_smoothing", c->smoothing, "0"}, {"subset", c->subset, "0"},
        /* before --normalize, every run had the data set's own */
        {"normalize", t->normalize, !o->normalize || strcmp(o->normalize, "data") == 0 ? t->normalize : NULL}};
    for (int i = 0; i < RUN_CONFIG_N; i++) {
        c->key[i] = pairs[i][0];
        c->value[i] = pairs[i][1];
        c->before[i] = pairs[i][2];
    }
}

/* The recipe a checkpoint records besides its configuration: what a resume may change (a longer
 * cosine run, a lower rate after a divergence are how runs are continued) but should say, since the
 * result is then not the uninterrupted run's. One metadata key per hyperparameter ("recipe.lr"); a
 * value the optimizer or schedule does not use is "-", so changing it is no difference. */
enum { RECIPE_N = 16 };
typedef struct recipe {
    const char *key[RECIPE_N];
    char value[RECIPE_N][64];
} recipe;

static void recipe_of(const dg_train_opts *o, int augment, recipe *r) {
    static const char *const keys[RECIPE_N] = {
        "recipe.lr", "recipe.schedule", "recipe.gamma", "recipe.step_size", "recipe.milestones", "recipe.epochs",
        "recipe.warmup_epochs", "recipe.momentum", "recipe.nesterov", "recipe.wd", "recipe.beta1", "recipe.beta2",
        "recipe.adam_eps", "recipe.clip_grad_norm", "recipe.augment", "recipe.precision"};
    for (int i = 0; i < RECIPE_N; i++) {
        r->key[i] = keys[i];
        snprintf(r->value[i], sizeof r->value[i], "-");
    }
    int sgd = strcmp(o->opt, "sgd") == 0, step = strcmp(o->schedule, "step") == 0,
        multistep = strcmp(o->schedule, "multistep") == 0;
    char(*v)[64] = r->value;
    dg_json_double_text(o->lr, v[0], sizeof v[0]);
    snprintf(v[1], sizeof v[1], "%s", o->schedule);
    if (step || multistep) dg_json_double_text(o->gamma, v[2], sizeof v[2]);
    if (step) snprintf(v[3], sizeof v[3], "%d", o->step_size);
    if (multistep) { /* as numbers: "060,120" is "60,120" */
        int m[32], n = parse_milestones(o->milestones, m, 32);
        size_t used = 0;
        for (int i = 0; i < n && used < sizeof v[4]; i++)
            used += (size_t)snprintf(v[4] + used, sizeof v[4] - used, i ? ",%d" : "%d", m[i]);
    }
    if (strcmp(o->schedule, "cosine") == 0) snprintf(v[5], sizeof v[5], "%d", o->epochs);
    snprintf(v[6], sizeof v[6], "%d", o->warmup_epochs);
    if (sgd) {
        dg_json_double_text(o->momentum, v[7], sizeof v[7]);
        snprintf(v[8], sizeof v[8], "%d", o->nesterov ? 1 : 0);
    } else {
        dg_json_double_text(o->beta1, v[10], sizeof v[10]);
        dg_json_double_text(o->beta2, v[11], sizeof v[11]);
        dg_json_double_text(o->adam_eps, v[12], sizeof v[12]);
    }
    dg_json_double_text(o->weight_decay, v[9], sizeof v[9]);
    dg_json_float_text(o->clip_grad_norm, v[13], sizeof v[13]);
    snprintf(v[14], sizeof v[14], "%d", augment);
    snprintf(v[15], sizeof v[15], "%.60s", o->precision);
}

/* One warning line naming each hyperparameter the resumed run changes ("lr 0.1 → 0.01"); nothing for
 * a checkpoint written before recipes were recorded. */
static void warn_recipe_change(const char *path, const dg_st_file *f, const recipe *now) {
    if (!dg_st_meta(f, now->key[0])) return;
    char changes[1024] = "";
    size_t used = 0;
    for (int i = 0; i < RECIPE_N; i++) {
        const char *was = dg_st_meta(f, now->key[i]);
        if (!was) was = "?";
        if (strcmp(was, now->value[i]) != 0 && used < sizeof changes)
            used += (size_t)snprintf(changes + used, sizeof changes - used, "%s%s %.64s → %s", used ? ", " : "",
                                     now->key[i] + strlen("recipe."), was, now->value[i]);
    }
    if (used)
        fprintf(stderr, "dnnguard: resuming %s with another recipe than it was written with (%s): the result is not "
                "the uninterrupted run's\n", path, changes);
}

static int save_checkpoint(const dg_net *net, const dg_train_opts *o, const optim_state *s, const char *path,
                           int epoch, int step_in_epoch, const epoch_sums *sums, const run_texts *t) {
    char err[512];
    int n_buffers = optim_buffers(s);
    size_t floats = net->n_param_floats;
    float *host = malloc(sizeof(float) * (floats ? floats : 1) * (size_t)n_buffers);
    dg_extra_tensor *extras = calloc((size_t)net->n_params * (size_t)n_buffers, sizeof *extras);
    if (!host || !extras) {
        free(host);
        free(extras);
        dg_cli_error("%s: out of memory while checkpointing", path);
        return -1;
    }
    net->be->download(host, s->a, sizeof(float) * floats);
    if (s->adam) net->be->download(host + floats, s->b, sizeof(float) * floats);
    int n_extras = 0;
    for (int k = 0; k < n_buffers; k++) {
        const char *kind = optim_kind(s, k);
        for (int i = 0; i < net->n_params; i++) {
            const dg_param *p = &net->params[i];
            if (p->role == DG_PARAM_RUNNING) continue;
            dg_extra_tensor *e = &extras[n_extras++];
            snprintf(e->name, sizeof e->name, "optim.%s.%s", kind, p->name);
            e->ndim = p->ndim;
            for (int d = 0; d < p->ndim; d++) e->shape[d] = p->shape[d];
            e->data = host + (size_t)k * floats + p->offset;
        }
    }
    run_config c;
    run_config_of(o, t, &c);
    char v_epoch[32], v_step[32], v_global[32], v_loss[64], v_wm[64], v_correct[32], v_seen[32];
    snprintf(v_epoch, sizeof v_epoch, "%d", epoch);
    snprintf(v_step, sizeof v_step, "%d", step_in_epoch);
    snprintf(v_global, sizeof v_global, "%ld", s->global_step);
    snprintf(v_loss, sizeof v_loss, "%.17g", sums->loss_sum);
    snprintf(v_wm, sizeof v_wm, "%.17g", sums->wm_sum);
    snprintf(v_correct, sizeof v_correct, "%ld", sums->correct);
    snprintf(v_seen, sizeof v_seen, "%ld", sums->seen);
    enum { POSITION_N = 7, META_N = POSITION_N + RUN_CONFIG_N + RECIPE_N };
    const char *keys[META_N] = {"epoch", "step_in_epoch", "global_step", "epoch_loss_sum", "epoch_wm_sum",
                                "epoch_correct", "epoch_seen"};
    const char *values[META_N] = {v_epoch, v_step, v_global, v_loss, v_wm, v_correct, v_seen};
    for (int i = 0; i < RUN_CONFIG_N; i++) keys[POSITION_N + i] = c.key[i], values[POSITION_N + i] = c.value[i];
    for (int i = 0; i < RECIPE_N; i++) {
        keys[POSITION_N + RUN_CONFIG_N + i] = t->recipe->key[i];
        values[POSITION_N + RUN_CONFIG_N + i] = t->recipe->value[i];
    }
    int rc = dg_model_save(net, path, extras, n_extras, keys, values, META_N, err, sizeof err);
    if (rc != 0) dg_cli_error("%s", err);
    free(host);
    free(extras);
    return rc;
}

/* A resumed run redoes the epochs after its checkpoint's done_epochs, and logs them again: lines of
 * those epochs that end the log were written by a run that then failed to checkpoint the epoch (a
 * full disk, a failed snapshot) or was killed between the two, and are cut, as is a last line left
 * half-written. Regular files only (a FIFO or /dev/stdout is not rewritten). Said when it cuts. */
static void trim_log(const char *path, int done_epochs) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return;
    FILE *f = fopen(path, "rb");
    char *text = f ? malloc((size_t)st.st_size + 1) : NULL;
    size_t len = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    if (f) fclose(f);
    if (!text || len != (size_t)st.st_size) {
        free(text);
        return;
    }
    text[len] = 0;
    size_t keep = len;
    int lines = 0;
    if (text[keep - 1] != '\n') { /* a half-written line */
        while (keep > 0 && text[keep - 1] != '\n') keep--;
        lines++;
    }
    while (keep > 0) { /* the last whole line is text[start, keep) */
        size_t start = keep - 1;
        while (start > 0 && text[start - 1] != '\n') start--;
        int epoch;
        if (sscanf(text + start, "{\"epoch\": %d,", &epoch) != 1 || epoch <= done_epochs) break;
        keep = start;
        lines++;
    }
    free(text);
    if (lines && truncate(path, (off_t)keep) == 0)
        fprintf(stderr, "dnnguard: %s: cut %d line%s of epochs after the checkpoint's %d (the run that wrote them "
                "did not checkpoint them); they are logged again\n", path, lines, lines == 1 ? "" : "s", done_epochs);
}

/* A count in checkpoint metadata: decimal digits only (atol read "1x" as 1), at most max; −1 otherwise. */
static long parse_count(const char *text, long max) {
    if (!text || text[0] < '0' || text[0] > '9') return -1;
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    return *end || errno || v > max ? -1 : v;
}

/* A sum in checkpoint metadata: a whole finite number; NAN otherwise. */
static double parse_sum(const char *text) {
    char *end;
    double v = text ? strtod(text, &end) : NAN;
    return text && end != text && !*end && isfinite(v) ? v : NAN;
}

/* Restore parameters, optimizer buffers and position from a checkpoint written by this run's
 * configuration; a checkpoint of another net, data set, split, subset, optimizer, watermark key, seed, batch,
 * label smoothing or normalisation is refused (the subset changes the data order). */
static int load_checkpoint(dg_net *net, const dg_train_opts *o, optim_state *s, const char *path, int steps,
                           int *epoch, int *step_in_epoch, epoch_sums *sums, const run_texts *t) {
    char err[512];
    dg_st_file f;
    if (dg_st_open(path, &f, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        return -1;
    }
    int rc = -1;
    run_config c;
    run_config_of(o, t, &c);
    for (int i = 0; i < RUN_CONFIG_N; i++) {
        const char *have = dg_st_meta(&f, c.key[i]);
        if (!have) have = c.before[i];
        if (!have || strcmp(have, c.value[i]) != 0) {
            dg_cli_error("%s: checkpoint has %s '%s' but this run has '%s'", path, c.key[i], have ? have : "(none)",
                         c.value[i]);
            goto done;
        }
    }
    const char *e = dg_st_meta(&f, "epoch"), *st = dg_st_meta(&f, "step_in_epoch"), *g = dg_st_meta(&f, "global_step");
    const char *wms = dg_st_meta(&f, "epoch_wm_sum");
    const char *ls = dg_st_meta(&f, "epoch_loss_sum"), *ec = dg_st_meta(&f, "epoch_correct"),
               *es = dg_st_meta(&f, "epoch_seen");
    if (!e || !st || !g || !ls || !wms || !ec || !es) {
        dg_cli_error("%s: checkpoint metadata is incomplete", path);
        goto done;
    }
    /* the position must be one this run's data order reaches: global_step = epoch · steps + step, the
     * step within the epoch, and the step count within Adam's int */
    long ep = parse_count(e, INT_MAX), sp = parse_count(st, INT_MAX), gs = parse_count(g, INT_MAX);
    if (ep < 0 || sp < 0 || gs < 0 || sp > steps || gs != ep * (long)steps + sp) {
        dg_cli_error("%s: checkpoint position epoch '%.20s', step_in_epoch '%.20s', global_step '%.20s' is not one of "
                     "this run's (%d step%s per epoch)", path, e, st, g, steps, steps == 1 ? "" : "s");
        goto done;
    }
    *epoch = (int)ep, *step_in_epoch = (int)sp, s->global_step = gs;
    sums->loss_sum = parse_sum(ls);
    sums->wm_sum = parse_sum(wms);
    sums->correct = parse_count(ec, LONG_MAX);
    sums->seen = parse_count(es, LONG_MAX);
    if (isnan(sums->loss_sum) || isnan(sums->wm_sum) || sums->seen < 0 || sums->correct < 0 ||
        sums->correct > sums->seen) {
        dg_cli_error("%s: checkpoint's epoch sums (loss '%.20s', correct '%.20s' of seen '%.20s') are not counts and "
                     "finite sums", path, ls, ec, es);
        goto done;
    }
    if (dg_model_load_file(net, &f, NULL, err, sizeof err) != 0) {
        dg_cli_error("%s", err);
        goto done;
    }
    if (!o->dist || dg_dist_is_root(o->dist)) warn_recipe_change(path, &f, t->recipe);
    size_t floats = net->n_param_floats;
    float *host = calloc(floats ? floats : 1, sizeof(float));
    if (!host) goto done;
    for (int k = 0; k < optim_buffers(s); k++) {
        const char *kind = optim_kind(s, k);
        for (int i = 0; i < net->n_params; i++) {
            const dg_param *p = &net->params[i];
            if (p->role == DG_PARAM_RUNNING) continue;
            char name[DG_NAME_MAX + 32];
            snprintf(name, sizeof name, "optim.%s.%s", kind, p->name);
            int t = dg_st_find(&f, name);
            if (t < 0) {
                dg_cli_error("%s: checkpoint lacks optimizer tensor '%s'", path, name);
                free(host);
                goto done;
            }
            if (dg_st_read_f32(&f, t, host + p->offset, p->numel, err, sizeof err) != 0) {
                dg_cli_error("%s", err);
                free(host);
                goto done;
            }
        }
        net->be->upload(k ? s->b : s->a, host, sizeof(float) * floats);
    }
    free(host);
    rc = 0;
done:
    dg_st_close(&f);
    return rc;
}

int dg_train_check_names(const dg_train_opts *o) {
    if (strcmp(o->opt, "sgd") != 0 && strcmp(o->opt, "adam") != 0 && strcmp(o->opt, "adamw") != 0) {
        dg_cli_error("%s: --opt must be sgd, adam or adamw, not '%s'", o->command, o->opt);
        return -1;
    }
    const char *schedules[] = {"const", "step", "multistep", "cosine"};
    int known = 0;
    for (int i = 0; i < 4; i++) known |= strcmp(o->schedule, schedules[i]) == 0;
    if (!known) {
        dg_cli_error("%s: --schedule must be const, step, multistep or cosine, not '%s'", o->command, o->schedule);
        return -1;
    }
    return 0;
}

static int check_opts(const dg_train_opts *o) {
    if (!o->out) {
        dg_cli_error("%s: --out FILE is required", o->command);
        return -1;
    }
    /* the parser has refused NaN and infinities; the optimizers' doubles must also survive the float
     * their kernels compute in (1e-46 is 0 there, 1e39 infinite); then each option's own range */
    const struct { const char *name; double v; } as_typed[] = {
        {"lr", o->lr}, {"momentum", o->momentum}, {"wd", o->weight_decay}, {"gamma", o->gamma},
        {"beta1", o->beta1}, {"beta2", o->beta2}};
    for (size_t i = 0; i < sizeof as_typed / sizeof *as_typed; i++) {
        float f = (float)as_typed[i].v;
        if (as_typed[i].v != 0.0 && (f == 0.0f || !isfinite(f))) {
            dg_cli_error("%s: --%s: '%g' is out of range of float, in which the optimizer computes", o->command,
                         as_typed[i].name, as_typed[i].v);
            return -1;
        }
    }
    if (o->epochs < 1 || o->batch < 1 || !(o->lr > 0.0f) || o->weight_decay < 0.0f) {
        dg_cli_error("%s: --epochs and --batch must be ≥ 1, --lr > 0, --wd ≥ 0", o->command);
        return -1;
    }
    if (!(o->momentum >= 0.0f && o->momentum < 1.0f) || !(o->beta1 >= 0.0f && o->beta1 < 1.0f) ||
        !(o->beta2 >= 0.0f && o->beta2 < 1.0f)) {
        dg_cli_error("%s: --momentum, --beta1 and --beta2 must be in [0, 1)", o->command);
        return -1;
    }
    if (o->nesterov && (strcmp(o->opt, "sgd") != 0 || o->momentum == 0.0f)) {
        dg_cli_error("%s: --nesterov needs --opt sgd with a --momentum above 0 (as torch.optim.SGD)", o->command);
        return -1;
    }
    if (!(o->gamma > 0.0f) || o->step_size < 1) {
        dg_cli_error("%s: --gamma must be > 0 and --step-size ≥ 1", o->command);
        return -1;
    }
    if (o->augment < -1 || o->augment > 1) {
        dg_cli_error("%s: --augment must be 0 (off) or 1 (on), not %d", o->command, o->augment);
        return -1;
    }
    if (o->subset < 0 || o->warmup_epochs < 0 || o->warmup_epochs > o->epochs || o->eval_every < 0 ||
        o->ckpt_every < 0 || o->stop_after < 0 || o->wm_lambda < 0.0f) {
        dg_cli_error("%s: --subset, --eval-every, --ckpt-every, --stop-after and --wm-lambda must be ≥ 0, "
                     "--warmup-epochs from 0 to --epochs", o->command);
        return -1;
    }
    if (!(o->label_smoothing >= 0.0f && o->label_smoothing < 1.0f)) {
        dg_cli_error("%s: --label-smoothing must be in [0, 1)", o->command);
        return -1;
    }
    if (!(o->clip_grad_norm >= 0.0f) || isinf(o->clip_grad_norm)) {
        dg_cli_error("%s: --clip-grad-norm must be a finite number ≥ 0 (0: no clipping)", o->command);
        return -1;
    }
    if (strcmp(o->split, "train") != 0 && strcmp(o->split, "test") != 0) {
        dg_cli_error("%s: --split must be train or test, not '%s'", o->command, o->split);
        return -1;
    }
    if (dg_train_check_names(o) != 0) return -1;
    int m[64];
    if (strcmp(o->schedule, "multistep") == 0 && (!o->milestones || parse_milestones(o->milestones, m, 32) <= 0)) {
        dg_cli_error("%s: --schedule multistep needs --milestones E1,E2,... (epochs)", o->command);
        return -1;
    }
    int n_save = o->save_epochs ? parse_milestones(o->save_epochs, m, 64) : 0;
    for (int i = 0; i < n_save; i++)
        if (m[i] < 1 || m[i] > o->epochs) n_save = -1;
    if (n_save < 0 || (o->save_epochs && n_save == 0)) {
        dg_cli_error("%s: --save-epochs must list epochs from 1 to --epochs (%d), e.g. 20,50", o->command, o->epochs);
        return -1;
    }
    return 0;
}

/* 1 (said in one line) when a --save-epochs snapshot, OUT.epochN.safetensors, is another file of the
 * run: a name such as --checkpoint m.epoch2.safetensors would have the snapshot overwrite the
 * checkpoint (so no resume), the log, the starting weights or the key. */
static int snapshot_clashes(const dg_train_opts *o, const char *ckpt) {
    int m[64], n = o->save_epochs ? parse_milestones(o->save_epochs, m, 64) : 0;
    for (int i = 0; i < n; i++) {
        char *snap = snapshot_path(o, m[i]);
        if (!snap) {
            dg_cli_error("%s: out of memory", o->command);
            return 1;
        }
        const char *what = dg_same_file(snap, ckpt) ? "the checkpoint"
                           : dg_same_file(snap, o->log) ? "the --log file"
                           : dg_same_file(snap, o->init) ? "the --init file"
                           : dg_same_file(snap, o->wm) ? "the --wm key"
                           : NULL;
        if (what) dg_cli_error("%s: the --save-epochs snapshot %s would overwrite %s; choose other names",
                               o->command, snap, what);
        free(snap);
        if (what) return 1;
    }
    return 0;
}

/* 1 (said in one line) when --out, the checkpoint, --log or a snapshot cannot be written. */
static int outputs_unwritable(const dg_train_opts *o) {
    char err[512];
    char *ckpt = o->checkpoint ? strdup(o->checkpoint) : derive_checkpoint_path(o->out);
    if (!ckpt) {
        dg_cli_error("%s: out of memory", o->command);
        return 1;
    }
    int bad = 1;
    /* one file for two outputs (the weights would overwrite the checkpoint, so no resume, or the log);
     * nor may an output overwrite the secret key, or the starting weights before the run has ended
     * (--out = --init replaces them with the result, atomically, as an in-place fine-tune would) */
    int clash = dg_same_file(o->out, o->wm) || dg_same_file(ckpt, o->wm) || dg_same_file(o->log, o->wm) ||
                dg_same_file(ckpt, o->init) || dg_same_file(o->log, o->init);
    if (dg_same_file(o->out, ckpt) || dg_same_file(o->out, o->log) || dg_same_file(ckpt, o->log))
        dg_cli_error("%s: --out, the checkpoint (%s) and --log must be three files", o->command, ckpt);
    else if (clash)
        dg_cli_error("%s: the checkpoint (%s) and --log may not be the --init file, nor any output the --wm key",
                     o->command,
                     ckpt);
    else if (dg_check_writable(o->out, err, sizeof err) != 0 || dg_check_writable(ckpt, err, sizeof err) != 0 ||
             (o->log && dg_check_openable(o->log, err, sizeof err) != 0))
        dg_cli_error("%s: %s", o->command, err);
    else
        bad = snapshot_clashes(o, ckpt);
    free(ckpt);
    return bad;
}

/* The dropout stream of one step on one rank: rank 0's is the one-process run's, the others' are
 * derived from it (each rank drops its own images' units). */

/* Every rank starts from rank 0's parameters and optimizer buffers (the same file or seed gives
 * the same values anyway; this makes it so whatever each rank read). */
static void share_start(dg_dist *d, const dg_net *net, const optim_state *s) {
    dg_dist_broadcast_device(d, net->be, net->param_arena, net->n_param_floats);
    dg_dist_broadcast_device(d, net->be, s->a, net->n_param_floats);
    if (s->b) dg_dist_broadcast_device(d, net->be, s->b, net->n_param_floats);
}

int dg_train(const dg_train_opts *o) {
    dg_dist single;
    dg_dist_single(&single);
    dg_dist *dist = o->dist ? o->dist : &single;
    const int root = dg_dist_is_root(dist);
    /* the set-up up to share_start: a rank that fails in it takes part in the next agreement point
     * (dg_dist_fail), so that every rank stops alike with one line (host/dist.h) */
    if (check_opts(o) != 0) return dg_dist_fail(dist);
    /* from the start: a preemption while the data loads is taken at the first step (checkpoint,
     * exit 3) instead of killing the process with nothing saved */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    const dg_backend *be = dg_cli_backend(o->backend);
    if (!be || dg_cli_backend_modes("train", be, o->precision, o->deterministic) != 0) return dg_dist_fail(dist);
    if (dg_dist_agree(dist, 0) != 0 || dg_dist_connect_device(dist, be) != 0) return DG_EXIT_BAD_INPUT;
    /* rank 0's outputs are tried now, not found unwritable after the epochs; every rank stops with it */
    if (dg_dist_agree(dist, root && outputs_unwritable(o)) != 0) return DG_EXIT_BAD_INPUT;
    dg_dataset train = {0}, test = {0};
    int on_train_split = strcmp(o->split, "train") == 0;
    dg_norm norm; /* the test split takes the training split's (dg_data_load_test) */
    if (dg_session_norm(o->command, o->normalize, &norm) != 0 ||
        dg_session_data(o->data, on_train_split, &norm, &train) != 0)
        return dg_dist_fail(dist);
    char norm_text[256]; /* recorded with the weights: what a user of them must feed them */
    dg_norm_format(train.mean, train.std, train.c, norm_text, sizeof norm_text);
    const char *meta_keys[] = {DG_META_NORMALIZE}, *meta_values[] = {norm_text};
    char err[512];
    if ((o->subset > 0 && dg_data_subset(&train, o->subset, o->seed, err, sizeof err) != 0) ||
        (o->extra && dg_data_append(&train, o->extra, err, sizeof err) != 0)) {
        dg_cli_error("%s", err);
        dg_data_free(&train);
        return dg_dist_fail(dist);
    }
    int have_test = o->eval_every > 0 && dg_data_load_test(o->data, &train, &test, err, sizeof err) == 0;
    if (o->eval_every > 0 && !have_test && root) /* training goes on; the missing figures are said */
        fprintf(stderr, "dnnguard: train: no test accuracy (the test split does not load: %s)\n", err);
    if (have_test && o->eval_limit > 0 && o->eval_limit < test.n) test.n = o->eval_limit; /* the first N */
    int rc = DG_EXIT_BAD_INPUT;
    /* activations for this rank's share of a global batch, at most ⌈batch / ranks⌉ images and at
     * most the training set's (a --batch above it is one step of all of them) */
    int rank_batch = dg_session_batch((o->batch + dist->size - 1) / dist->size, 0, &train);
    dg_net *net = dg_session_net(o->net, &train, be, rank_batch, NULL);
    dg_loader *loader = NULL;
    char *ckpt_path = o->checkpoint ? strdup(o->checkpoint) : derive_checkpoint_path(o->out);
    FILE *log = NULL;
    float *probs = NULL;
    int *pred = NULL;
    optim_state s = {.adam = strncmp(o->opt, "adam", 4) == 0, .decoupled = strcmp(o->opt, "adamw") == 0};
    dg_wm_key *key = NULL;
    dg_wm_embed wm = {0};
    dg_dist_grads grads = {0};
    char wm_sig[256];
    dg_eval_result result = {0}; /* here, before the first goto done: done frees it */
    int settled = 0; /* whether the set-up is over (host/dist.h): a rank that fails before takes part in its end */
    if (!net || !ckpt_path) goto done;

    /* initial weights: --init FILE, else PyTorch-style init from the seed */
    if (o->init) {
        if (dg_session_load(net, o->init, train.mean, train.std) != 0) goto done; /* (warns of another --normalize) */
        if (dg_model_require_finite(net, o->init, "training from it", err, sizeof err) != 0) {
            dg_cli_error("%s", err); /* NaN weights would be reported as a NaN loss, blaming --lr */
            goto done;
        }
    } else {
        float *host = malloc(sizeof(float) * (net->n_param_floats ? net->n_param_floats : 1));
        if (!host) goto done;
        dg_net_init_host(net, o->seed, host);
        be->upload(net->param_arena, host, sizeof(float) * net->n_param_floats);
        free(host);
    }
    if (o->wm) {
        key = malloc(sizeof *key);
        if (!key || dg_wm_key_read(o->wm, key, err, sizeof err) != 0 ||
            dg_wm_embed_init(&wm, key, o->wm_lambda, net, err, sizeof err) != 0) {
            if (key) dg_cli_error("%s", err);
            else dg_cli_error("%s: out of memory", o->command);
            goto done;
        }
    }
    wm_signature(o, key, wm_sig, sizeof wm_sig);
    s.a = be->alloc(sizeof(float) * net->n_param_floats);
    s.b = s.adam ? be->alloc(sizeof(float) * net->n_param_floats) : NULL;
    probs = malloc(sizeof(float) * (size_t)rank_batch * net->classes);
    pred = malloc(sizeof(int) * (size_t)rank_batch);
    int augment = o->augment >= 0 ? o->augment : strncmp(o->data, "cifar10:", 8) == 0;
    recipe run_recipe;
    recipe_of(o, augment, &run_recipe);
    const run_texts texts = {wm_sig, &run_recipe, norm_text};
    loader = dg_loader_new(&train, o->batch, o->seed, 1, augment);
    if (!s.a || (s.adam && !s.b) || !probs || !pred || !loader ||
        dg_dist_grads_init(&grads, dist, net, key ? dg_net_find_param(net, key->layer) : -1) != 0) {
        dg_cli_error("%s: out of memory", o->command);
        goto done;
    }
    dg_loader_shard(loader, dist->rank, dist->size);

    int start_epoch = 0, start_step = 0;
    epoch_sums sums = {0};
    if (o->resume) {
        struct stat st;
        if (stat(ckpt_path, &st) == 0) {
            if (load_checkpoint(net, o, &s, ckpt_path, dg_loader_steps(loader), &start_epoch, &start_step, &sums,
                                &texts) != 0)
                goto done;
            if (start_epoch > o->epochs || (start_epoch == o->epochs && start_step > 0)) {
                /* its weights are not those of a shorter run: they have seen the later epochs */
                dg_cli_error("%s: the checkpoint is past --epochs %d (%d epochs and %d steps done)", ckpt_path,
                             o->epochs, start_epoch, start_step);
                goto done;
            }
            if (root && start_epoch == o->epochs)
                fprintf(stderr, "dnnguard: %s holds all %d epochs: its weights are the result\n", ckpt_path,
                        o->epochs);
            else if (root)
                fprintf(stderr, "dnnguard: resuming from %s at epoch %d, step %d\n", ckpt_path, start_epoch + 1,
                        start_step);
        } else if (root) {
            fprintf(stderr, "dnnguard: no checkpoint at %s yet, starting from the beginning\n", ckpt_path);
        }
    }
    if (o->log && root) { /* rank 0 writes the log, the checkpoints and the weights */
        if (start_epoch || start_step) trim_log(o->log, start_epoch);
        log = fopen(o->log, start_epoch || start_step ? "a" : "w");
        if (!log) {
            dg_cli_error("%s: cannot open the log for writing", o->log);
            goto done;
        }
    }
    settled = 1;
    if (dg_dist_end_setup(dist, 0) != 0) goto done;
    share_start(dist, net, &s);
    int tty = root && isatty(STDERR_FILENO);
    size_t per = (size_t)train.c * train.h * train.w;
    int steps = dg_loader_steps(loader);
    uint64_t dropout_stream = dg_rng_stream(o->seed, 0xd50ull);
    for (int epoch = start_epoch; epoch < o->epochs; epoch++) {
        const double lr = dg_train_lr(o, epoch);
        /* the last step's rate, which the log reports (a run resumed after the epoch's last step runs none) */
        double step_lr = warmed_up_lr(o, lr, s.global_step, steps);
        int first = epoch == start_epoch ? start_step : 0;
        if (first == 0) memset(&sums, 0, sizeof sums);
        dg_loader_begin(loader, epoch, first);
        double t0 = dg_now_s(), last_print = 0.0;
        long images_timed = 0;
        const float *x;
        const int32_t *labels;
        for (int step = first; step < steps;) {
            /* n: this rank's share of the step's global batch of n_global images (maybe none) */
            int n = dg_loader_next(loader, &x, &labels), n_global = dg_loader_batch_images(loader, step);
            if (n > 0) {
                be->upload(net->nodes[0].y, x, sizeof(float) * per * (size_t)n);
                be->upload(net->labels, labels, sizeof(int32_t) * (size_t)n);
            }
            /* one seed for every rank, the masks keyed by global position (net.h): N ranks draw the
             * one-process masks */
            int share_lo, share_hi;
            dg_dist_share(n_global, dist->rank, dist->size, &share_lo, &share_hi);
            net->dropout_seed = dg_rng_stream(dropout_stream, (uint64_t)s.global_step);
            net->dropout_first = share_lo;
            dg_net_zero_grad(net);
            double loss = 0.0; /* the mean over this rank's images */
            if (n > 0) {
                dg_net_forward(net, net->nodes[0].y, n, DG_MODE_TRAIN);
                /* dlogits scaled by 1/n_global: the ranks' gradients sum to the global batch's mean */
                loss = dg_net_loss_sum(net, n, 1.0f / (float)n_global, o->label_smoothing) / n;
            }
            dg_dist_grads_begin(&grads);
            if (n > 0) dg_net_backward(net, n, NULL);
            double wm_reg = 0.0;
            if (key) { /* each rank adds the gradient of its share of the key's positions */
                int lo, hi;
                dg_dist_share(key->n, dist->rank, dist->size, &lo, &hi);
                wm_reg = dg_wm_embed_step_part(&wm, be, lo, hi - lo);
            }
            dg_dist_grads_finish(&grads);
            step_lr = warmed_up_lr(o, lr, s.global_step + 1, steps);
            optim_step(net, o, &s, step_lr);
            int correct = 0;
            if (n > 0) {
                be->download(probs, net->probs, sizeof(float) * (size_t)n * net->classes);
                dg_argmax_rows(probs, n, net->classes, pred);
                for (int i = 0; i < n; i++) correct += pred[i] == labels[i];
            }
            if (o->stop_after > 0 && s.global_step == o->stop_after) stop_signal = SIGUSR1;
            /* the step's figures and whether any rank was signalled, summed over the ranks: every
             * rank then decides alike to stop here (one small reduction per step) */
            double step_sums[5] = {loss * n, correct, n, wm_reg, stop_signal != 0};
            dg_dist_sum_f64(dist, step_sums, 5);
            sums.loss_sum += step_sums[0];
            sums.correct += (long)step_sums[1];
            sums.seen += (long)step_sums[2];
            sums.wm_sum += step_sums[3];
            int stop = step_sums[4] > 0;
            images_timed += n_global;
            step++;
            double step_loss = step_sums[2] > 0 ? step_sums[0] / step_sums[2] : 0.0;
            if (!isfinite(step_loss)) { /* a sum over the ranks: every rank stops here alike, rank 0 says why */
                if (root)
                    dg_cli_error("%s: the loss is %g at epoch %d step %d; lower --lr", o->command, step_loss,
                                 epoch + 1, step);
                dg_dist_fail(dist);
                goto done;
            }
            double t = dg_now_s();
            if (tty && t - last_print > 0.25) {
                fprintf(stderr, "\repoch %d/%d  step %d/%d  loss %.4f  acc %.2f%%  %.0f img/s   ", epoch + 1,
                        o->epochs, step, steps, sums.loss_sum / sums.seen, 100.0 * sums.correct / sums.seen,
                        images_timed / (t - t0));
                last_print = t;
            }
            int want_ckpt = o->ckpt_every > 0 && s.global_step % o->ckpt_every == 0 && step < steps;
            if (stop || want_ckpt) {
                /* the ranks agree on rank 0's write: none goes on, or leaves, before it is complete */
                int unsaved = root && save_checkpoint(net, o, &s, ckpt_path, epoch, step, &sums, &texts) != 0;
                if (dg_dist_agree(dist, unsaved) != 0) goto done;
                if (stop) {
                    if (tty) fputc('\n', stderr);
                    if (root) {
                        char what[64];
                        if (stop_signal) snprintf(what, sizeof what, "signal %d", (int)stop_signal);
                        else snprintf(what, sizeof what, "a signal to another rank");
                        fprintf(stderr, "dnnguard: %s: checkpoint written to %s (epoch %d, step %d); "
                                "continue with --resume\n", what, ckpt_path, epoch + 1, step);
                    }
                    rc = DG_EXIT_STOPPED;
                    goto done;
                }
            }
        }
        double seconds = dg_now_s() - t0;
        if (tty) fputc('\r', stderr);
        int evaluate = have_test && ((epoch + 1) % o->eval_every == 0 || epoch + 1 == o->epochs);
        if (evaluate && dg_dist_evaluate(dist, net, &test, &result) != 0) goto done;
        char line[512];
        int len = snprintf(line, sizeof line,
                           "{\"epoch\": %d, \"step\": %ld, \"lr\": %.6g, \"train_loss\": %s, \"train_acc\": %.6f, "
                           "\"images_per_s\": %.1f, \"seconds\": %.3f",
                           epoch + 1, s.global_step, step_lr, dg_json_fixed(sums.loss_sum / sums.seen, 6).s,
                           (double)sums.correct / sums.seen, images_timed / seconds, seconds);
        if (evaluate)
            len += snprintf(line + len, sizeof line - (size_t)len, ", \"test_loss\": %s, \"test_acc\": %.6f",
                            dg_json_fixed(result.loss, 6).s, result.accuracy);
        if (evaluate && o->eval_limit > 0)
            len += snprintf(line + len, sizeof line - (size_t)len, ", \"test_images\": %d", test.n);
        if (key) { /* the regularizer's mean over the epoch's steps; digits extracting right at its end */
            int matches;
            dg_wm_embed_step(&wm, be, 0, &matches);
            len += snprintf(line + len, sizeof line - (size_t)len,
                            ", \"wm_reg\": %s, \"wm_match\": %d, \"wm_digits\": %d",
                            dg_json_sig(sums.wm_sum / (steps > 0 ? steps : 1), 6).s, matches, key->n);
        }
        if (dist->kind != DG_DIST_NONE) /* the gradient reductions of the steps run in this epoch */
            len += snprintf(line + len, sizeof line - (size_t)len, ", \"ranks\": %d, \"allreduce_ms_per_step\": %.3f",
                            dist->size, dg_dist_take_reduce_ms(dist) / (steps - first > 0 ? steps - first : 1));
        snprintf(line + len, sizeof line - (size_t)len, "}");
        if (root) fprintf(stderr, "%s\n", line);
        if (log) {
            fprintf(log, "%s\n", line);
            fflush(log);
        }
        /* the snapshot (OUT.epochN.safetensors, or .pt) before the checkpoint: one that fails leaves the
         * checkpoint before this epoch, so --resume redoes the epoch and writes it (after, it was lost) */
        int unsaved = 0;
        if (root && save_after(o, epoch + 1)) {
            char *snap = snapshot_path(o, epoch + 1);
            if (!snap || dg_model_save(net, snap, NULL, 0, meta_keys, meta_values, 1, err, sizeof err) != 0) {
                if (snap) dg_cli_error("%s", err);
                else dg_cli_error("%s: out of memory", o->command);
                unsaved = 1;
            }
            free(snap);
        }
        epoch_sums cleared = {0};
        unsaved = unsaved || (root && save_checkpoint(net, o, &s, ckpt_path, epoch + 1, 0, &cleared, &texts) != 0);
        if (dg_dist_agree(dist, unsaved) != 0) goto done; /* rank 0's writes, heard by every rank */
    }
    /* a run resumed after its last epoch evaluated nothing: its result line has the test figures all the same */
    if (have_test && start_epoch == o->epochs && dg_dist_evaluate(dist, net, &test, &result) != 0) goto done;
    int unsaved = root && dg_model_save(net, o->out, NULL, 0, meta_keys, meta_values, 1, err, sizeof err) != 0;
    if (unsaved) dg_cli_error("%s", err);
    if (dg_dist_agree(dist, unsaved) != 0) goto done; /* every rank ends as rank 0's write did */
    if (!root) {
        rc = DG_EXIT_OK;
        goto done;
    }
    if (!o->quiet) {
        printf("{\"out\": ");
        dg_json_string(stdout, o->out);
        printf(", \"net\": ");
        dg_json_string(stdout, o->net);
        printf(", \"epochs\": %d, \"steps\": %ld", o->epochs, s.global_step);
        if (have_test && result.images)
            printf(", \"test_acc\": %.6f, \"test_loss\": %s", result.accuracy, dg_json_fixed(result.loss, 6).s);
        printf(", \"backend\": \"%s\", \"precision\": \"%s\"", be->name, o->precision);
        dg_cli_device_info dev = dg_cli_device(be);
        if (dev.peak_bytes >= 0) printf(", \"device_peak_mib\": %.1f", (double)dev.peak_bytes / (1 << 20));
        printf("}\n");
    }
    rc = DG_EXIT_OK;
done:
    if (!settled) dg_dist_fail(dist);
    dg_eval_result_free(&result);
    dg_dist_grads_free(&grads);
    if (key) dg_wm_embed_free(&wm, be);
    free(key);
    if (log) fclose(log);
    dg_loader_free(loader);
    if (net) {
        be->free(s.a);
        be->free(s.b);
    }
    dg_net_free(net);
    dg_data_free(&train);
    if (have_test) dg_data_free(&test);
    free(ckpt_path);
    free(probs);
    free(pred);
    return rc;
}
