/* host/cmd_train.c — `dnnguard train` and `dnnguard attack finetune` (the same loop started from
 * a given model, without a watermark): options → dg_train (host/train.c). */
#include "cli.h"
#include "commands.h"
#include "train.h"

/* finetune: the fine-tuning attack's reading of the options (--model is the starting point, no
 * watermark options) */
static int parse_and_train(const char *command, int argc, char **argv, int finetune) {
    dg_train_opts o;
    dg_train_defaults(&o);
    const char *model = NULL;
    const dg_opt opts[] = {
        {finetune ? "model" : "init", DG_OPT_STR, finetune ? &model : &o.init,
         finetune ? "the model to fine-tune (safetensors)" : "start from these weights instead of a fresh initialisation"},
        {"net", DG_OPT_STR, &o.net, "net name (lenet5, wrn-D-K, vgg16-cifar, vgg16, resnet18-cifar, resnet18)"},
        {"data", DG_OPT_STR, &o.data, "mnist:DIR | fashion-mnist[:DIR] | cifar10:DIR | synthetic:C,H,W,K[,N]"},
        {"out", DG_OPT_STR, &o.out, "weights file to write (safetensors)"},
        {"epochs", DG_OPT_INT, &o.epochs, "epochs (default 10)"},
        {"batch", DG_OPT_INT, &o.batch, "batch size (default 128)"},
        {"opt", DG_OPT_STR, &o.opt, "sgd | adam (default sgd)"},
        {"lr", DG_OPT_FLOAT, &o.lr, "learning rate (default 0.1)"},
        {"momentum", DG_OPT_FLOAT, &o.momentum, "SGD momentum (default 0.9)"},
        {"nesterov", DG_OPT_FLAG, &o.nesterov, "Nesterov momentum"},
        {"wd", DG_OPT_FLOAT, &o.weight_decay, "weight decay, L2 as torch.optim (default 0)"},
        {"beta1", DG_OPT_FLOAT, &o.beta1, "Adam β1 (default 0.9)"},
        {"beta2", DG_OPT_FLOAT, &o.beta2, "Adam β2 (default 0.999)"},
        {"schedule", DG_OPT_STR, &o.schedule, "const | step | multistep | cosine (default const)"},
        {"gamma", DG_OPT_FLOAT, &o.gamma, "decay factor of step/multistep (default 0.1)"},
        {"step-size", DG_OPT_INT, &o.step_size, "epochs between decays of the step schedule (default 30)"},
        {"milestones", DG_OPT_STR, &o.milestones, "epochs of the multistep decays, e.g. 60,120,160"},
        {"augment", DG_OPT_INT, &o.augment, "1/0: pad-4 random crop + flip (default: on for cifar10)"},
        {"subset", DG_OPT_INT, &o.subset, "train on N images drawn from the seed"},
        {"split", DG_OPT_STR, &o.split, "train | test: the split trained on (default train; evaluation is always on test)"},
        {"backend", DG_OPT_STR, &o.backend, "cpu | cuda | auto (default auto)"},
        {"stop-after", DG_OPT_INT, &o.stop_after, "behave as on SIGUSR1 after N steps (preemption drill)"},
        /* the attack has no watermark options: they are the table's tail, cut off for it */
        {"wm", DG_OPT_STR, &o.wm, "watermark key (dnnguard wm keygen): embed it while training"},
        {"wm-lambda", DG_OPT_FLOAT, &o.wm_lambda, "weight λ of the watermark regularizer (default 0.01)"},
        {"seed", DG_OPT_U64, &o.seed, "seed of initialisation, order, augmentation, dropout (default 1)"},
        {"eval-every", DG_OPT_INT, &o.eval_every, "evaluate on the test split every N epochs (0: never)"},
        {"log", DG_OPT_STR, &o.log, "JSON lines, one per epoch"},
        {"checkpoint", DG_OPT_STR, &o.checkpoint, "checkpoint file (default OUT with .ckpt.safetensors)"},
        {"ckpt-every", DG_OPT_INT, &o.ckpt_every, "also checkpoint every N steps (checkpoints are written every epoch)"},
        {"resume", DG_OPT_FLAG, &o.resume, "continue from the checkpoint when it exists"},
    };
    int n_opts = (int)(sizeof opts / sizeof *opts) - (finetune ? 2 : 0);
    int rc = dg_cli_parse(command, argc, argv, opts, n_opts);
    if (rc != 0) return rc > 0 ? DG_EXIT_OK : DG_EXIT_BAD_INPUT;
    if (finetune) {
        if (!model) {
            dg_cli_error("attack finetune: --model FILE is required");
            return DG_EXIT_BAD_INPUT;
        }
        o.init = model;
    }
    return dg_train(&o);
}

int dg_cmd_train(int argc, char **argv) { return parse_and_train("train", argc, argv, 0); }

int dg_cmd_attack_finetune(int argc, char **argv) { return parse_and_train("attack finetune", argc, argv, 1); }
