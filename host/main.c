/* host/main.c — the dnnguard command line: dispatches to the subcommands in host/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "build_info.h"
#include "cli.h"
#include "commands.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", dg_cmd_train, "train a net on a data set and write its weights (safetensors)"},
    {"eval", dg_cmd_eval, "accuracy, loss and per-class accuracy of weights on a data split (JSON)"},
    {"info", dg_cmd_info, "tensors of a weight file, or the parameters of a named net"},
    {"grad", dg_cmd_grad, "one batch's loss and every gradient, for checking against another framework"},
    {"wm", dg_cmd_wm, "watermark: keygen (a key from a clean model) | verify (extract and compare, JSON)"},
    {"fp", dg_cmd_fp, "users' fingerprints: issue (C&W examples at a class and confidence) | auth (JSON)"},
    {"predict", dg_cmd_predict, "the control layer: the model's answers with a fingerprint that authenticates, random ones without"},
    {"infip", dg_cmd_infip, "InFIP: extract (DTD relevance fingerprints of key images) | verify (ASSIM, JSON) | calibrate"},
    {"ssim", dg_cmd_ssim, "SSIM of two PNG images (global or 11x11 Gaussian), JSON"},
    {"attack", dg_cmd_attack, "removal attacks on a model: prune | finetune | permute | forge | overwrite"},
    {"selftest", dg_cmd_selftest, "every op on the CPU and on a backend (--backend cuda), compared; exit 0 if all agree"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: dnnguard COMMAND [options]   (dnnguard COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-8s %s\n", "version", "the version and what this binary was built with (also --version; --json)");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return DG_EXIT_BAD_INPUT;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return DG_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        int json = argc == 3 && strcmp(argv[2], "--json") == 0;
        if (argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
            printf("usage: dnnguard version [--json]   what this binary was built with and finds\n");
            return DG_EXIT_OK;
        }
        if (argc > 2 && !json) {
            dg_cli_error("version: the only option is --json");
            return DG_EXIT_BAD_INPUT;
        }
        dg_build_info(stdout, json);
        return DG_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
    dg_cli_error("unknown command '%s' (dnnguard --help lists them)", argv[1]);
    return DG_EXIT_BAD_INPUT;
}
