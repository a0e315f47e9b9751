/* host/cmd_train.c — `dnnguard train`, `dnnguard attack finetune` (the same loop started from a
 * given model, without a watermark) and the training options `attack overwrite` shares:
 * options → dg_train (host/train.c). */
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "dist.h"
#include "session.h"
#include "train.h"

#define MAX_OPTS 64

int dg_train_parse(const char *command, int argc, char **argv, dg_train_opts *o, int from_model, const char **model,
                   const dg_opt *extra, int n_extra) {
    o->command = command;
    const dg_opt start_train[] = {
        {"init", DG_OPT_STR, &o->init, "start from these weights instead of a fresh initialisation"},
        {"wm", DG_OPT_STR, &o->wm, "watermark key (dnnguard wm keygen): embed it while training"},
        {"wm-lambda", DG_OPT_FLOAT, &o->wm_lambda, "weight λ of the watermark regularizer (default 0.01)"},
    };
    const dg_opt start_model[] = {{"model", DG_OPT_STR, model, "the model to start from (safetensors or torch.save .pt)"}};
    const dg_opt common[] = {
        {"net", DG_OPT_STR, &o->net, "net name (lenet5, wrn-D-K, vgg16-cifar, vgg16, resnet18-cifar, resnet18)"},
        {"data", DG_OPT_STR, &o->data, "mnist:DIR | fashion-mnist[:DIR] | cifar10:DIR | folder[-rgb|-grey]:DIR | synthetic:C,H,W,K[,N]"},
        {"normalize", DG_OPT_STR, &o->normalize, DG_NORMALIZE_HELP "; recorded in --out's metadata"},
        {"out", DG_OPT_STR, &o->out, "weights file to write (safetensors; torch.save for .pt/.pth)"},
        {"epochs", DG_OPT_INT, &o->epochs, "epochs (default 10)"},
        {"batch", DG_OPT_INT, &o->batch, "batch size (default 128)"},
        {"opt", DG_OPT_STR, &o->opt, "sgd | adam | adamw (default sgd)"},
        {"lr", DG_OPT_DOUBLE, &o->lr, "learning rate (default 0.1)"},
        {"momentum", DG_OPT_DOUBLE, &o->momentum, "SGD momentum (default 0.9)"},
        {"nesterov", DG_OPT_FLAG, &o->nesterov, "Nesterov momentum"},
        {"wd", DG_OPT_DOUBLE, &o->weight_decay, "weight decay: L2 as torch.optim.SGD/Adam, decoupled as AdamW (default 0)"},
        {"beta1", DG_OPT_DOUBLE, &o->beta1, "Adam β1 (default 0.9)"},
        {"beta2", DG_OPT_DOUBLE, &o->beta2, "Adam β2 (default 0.999)"},
        {"clip-grad-norm", DG_OPT_FLOAT, &o->clip_grad_norm,
         "clip the gradients' total L2 norm to this, as torch.nn.utils.clip_grad_norm_ (default 0: off)"},
        {"label-smoothing", DG_OPT_FLOAT, &o->label_smoothing,
         "ε in [0, 1): targets (1 − ε)·onehot + ε/classes, as torch's label_smoothing (default 0)"},
        {"schedule", DG_OPT_STR, &o->schedule, "const | step | multistep | cosine (default const)"},
        {"gamma", DG_OPT_DOUBLE, &o->gamma, "decay factor of step/multistep (default 0.1)"},
        {"step-size", DG_OPT_INT, &o->step_size, "epochs between decays of the step schedule (default 30)"},
        {"milestones", DG_OPT_STR, &o->milestones, "epochs of the multistep decays, e.g. 60,120,160"},
        {"warmup-epochs", DG_OPT_INT, &o->warmup_epochs,
         "ramp the rate linearly over the first W epochs, step by step, up to the schedule's (default 0)"},
        {"augment", DG_OPT_INT, &o->augment, "1/0: pad-4 random crop + flip (default: on for cifar10)"},
        {"subset", DG_OPT_INT, &o->subset, "train on N images drawn from the seed (default 0: all)"},
        {"split", DG_OPT_STR, &o->split, "train | test: the split trained on (default train; evaluation is always on test)"},
        {"backend", DG_OPT_STR, &o->backend, "cpu | cuda | auto (default auto)"},
        {"precision", DG_OPT_STR, &o->precision, "fp32 | tf32 (tensor-core math; CUDA only) (default fp32)"},
        {"deterministic", DG_OPT_FLAG, &o->deterministic, "only deterministic cuDNN algorithms (CUDA; the CPU always is)"},
        {"stop-after", DG_OPT_INT, &o->stop_after, "behave as on SIGUSR1 after N steps (preemption drill)"},
        {"seed", DG_OPT_U64, &o->seed, "seed of initialisation, order, augmentation, dropout (default 1)"},
        {"eval-every", DG_OPT_INT, &o->eval_every, "evaluate on the test split every N epochs (0: never)"},
        {"log", DG_OPT_STR, &o->log, "JSON lines, one per epoch"},
        {"checkpoint", DG_OPT_STR, &o->checkpoint, "checkpoint file (default OUT with .ckpt.safetensors)"},
        {"ckpt-every", DG_OPT_INT, &o->ckpt_every, "also checkpoint every N steps (checkpoints are written every epoch)"},
        {"resume", DG_OPT_FLAG, &o->resume, "continue from the checkpoint when it exists"},
        {"save-epochs", DG_OPT_STR, &o->save_epochs,
         "also write the weights after these epochs (e.g. 20,50) as OUT.epochN.safetensors (.pt for a .pt OUT)"},
    };
    dg_opt opts[MAX_OPTS];
    int n = 0;
    const dg_opt *start = from_model ? start_model : start_train;
    int n_start = from_model ? (int)(sizeof start_model / sizeof *start_model)
                             : (int)(sizeof start_train / sizeof *start_train);
    for (int i = 0; i < n_start; i++) opts[n++] = start[i];
    for (size_t i = 0; i < sizeof common / sizeof *common; i++) opts[n++] = common[i];
    for (int i = 0; i < n_extra && n < MAX_OPTS; i++) opts[n++] = extra[i];
    int rc = dg_cli_parse(command, argc, argv, opts, n);
    if (rc != 0) return rc;
    /* an option the rest of the command makes meaningless is a mistake the user wants to hear of (an
     * unknown --opt or --schedule is said as such first) */
    if (dg_train_check_names(o) != 0) return -1;
    const int multistep = strcmp(o->schedule, "multistep") == 0, step = strcmp(o->schedule, "step") == 0;
    const int sgd = strcmp(o->opt, "sgd") == 0;
    const struct {
        const char *option;
        int meaningless;
        const char *needs;
    } unused[] = {
        {"milestones", !multistep, "--schedule multistep"},
        {"step-size", !step, "--schedule step"},
        {"gamma", !step && !multistep, "--schedule step or multistep"},
        {"momentum", !sgd, "--opt sgd"},
        {"beta1", sgd, "--opt adam or adamw"},
        {"beta2", sgd, "--opt adam or adamw"},
        {"wm-lambda", !from_model && !o->wm, "--wm KEY"},
    };
    for (size_t i = 0; i < sizeof unused / sizeof *unused; i++)
        if (unused[i].meaningless && dg_cli_given(argc, argv, unused[i].option)) {
            dg_cli_error("%s: --%s means something only with %s", command, unused[i].option, unused[i].needs);
            return -1;
        }
    if (from_model) {
        if (!*model) {
            dg_cli_error("%s: --model FILE is required", command);
            return -1;
        }
        o->init = *model;
    }
    return 0;
}

/* dg_train on the ranks that --dist names (host/dist.h); the exit code is every rank's. */
static int train_on_ranks(const char *command, dg_train_opts *o, const char *dist_name, int argc, char **argv) {
    dg_dist dist;
    if (dg_dist_start(&dist, dist_name, command, 1) != 0 || dg_dist_same_args(&dist, command, argc, argv) != 0)
        return dg_dist_finish(&dist, DG_EXIT_BAD_INPUT);
    o->dist = &dist;
    int rc = dg_train(o);
    o->dist = NULL; /* dist ends here */
    return dg_dist_finish(&dist, rc);
}

#define DIST_OPT(dst)                                                                                           \
    {"dist", DG_OPT_STR, &(dst), "none | mpi | nccl: data-parallel over the ranks that mpirun or srun started "   \
                                 "(--batch is the global batch; docs/distributed.md; default none)"}

int dg_cmd_train(int argc, char **argv) {
    dg_train_opts o;
    dg_train_defaults(&o);
    const char *dist_name = "none";
    const dg_opt extra[] = {DIST_OPT(dist_name)};
    int rc = dg_train_parse("train", argc, argv, &o, 0, NULL, extra, 1);
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    return train_on_ranks("train", &o, dist_name, argc, argv);
}

int dg_cmd_attack_finetune(int argc, char **argv) {
    dg_train_opts o;
    dg_train_defaults(&o);
    const char *model = NULL, *dist_name = "none";
    const dg_opt extra[] = {DIST_OPT(dist_name)};
    int rc = dg_train_parse("attack finetune", argc, argv, &o, 1, &model, extra, 1);
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    return train_on_ranks("attack finetune", &o, dist_name, argc, argv);
}
