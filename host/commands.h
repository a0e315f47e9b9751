/* host/commands.h — the subcommands of the dnnguard binary; each takes the arguments after its
 * name and returns the process exit code (see cli.h). */
#ifndef DG_COMMANDS_H
#define DG_COMMANDS_H

int dg_cmd_train(int argc, char **argv);
int dg_cmd_eval(int argc, char **argv);
int dg_cmd_info(int argc, char **argv);
int dg_cmd_grad(int argc, char **argv);
int dg_cmd_selftest(int argc, char **argv);
int dg_cmd_wm(int argc, char **argv);                /* wm keygen | verify */
int dg_cmd_attack(int argc, char **argv);            /* attack prune | finetune | permute */
int dg_cmd_attack_finetune(int argc, char **argv);   /* attack finetune (host/cmd_train.c) */
int dg_cmd_fp(int argc, char **argv);                /* fp issue | auth | eval */
int dg_cmd_fp_eval(int argc, char **argv);           /* fp eval (host/cmd_fp_eval.c) */
int dg_cmd_attack_forge(int argc, char **argv);      /* attack forge (host/cmd_forge.c) */
int dg_cmd_predict(int argc, char **argv);           /* the control layer */
int dg_cmd_ssim(int argc, char **argv);              /* SSIM of two PNGs (host/cmd_ssim.c) */
int dg_cmd_infip(int argc, char **argv);             /* infip extract | verify | calibrate (host/cmd_infip.c) */
int dg_cmd_attack_overwrite(int argc, char **argv);  /* attack overwrite (host/cmd_overwrite.c) */

#endif
