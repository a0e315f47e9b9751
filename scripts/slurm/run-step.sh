#!/usr/bin/env bash
# scripts/slurm/run-step.sh — one dnnguard command inside a Slurm batch job, as every script here
# runs it: as a job step over the job's tasks (srun --mpi=pmix), with --dist chosen for the commands
# that take it (train, attack finetune, fp issue, infip extract|verify|calibrate) when there are
# several tasks, and, for training (train, attack finetune), --resume
# and self-requeue: when the step stops with exit 3 after SIGUSR1 (the --signal=USR1@120 warning
# before the time limit; a B:USR1 to this shell is passed on to the step), the job is put back in
# the queue and its next run continues from the checkpoint. After SIGTERM (scancel, or a preemption,
# which Slurm requeues itself when PreemptMode=REQUEUE) the checkpoint is written but the job is
# not requeued here: a cancelled job must stay cancelled.
#   run-step.sh COMMAND [ARGS...]          e.g. run-step.sh train --net lenet5 ... --out m.safetensors
# Environment: DNNGUARD      the binary (default: dnnguard on PATH, else build/dnnguard of this repo)
#              DG_DIST       auto (default) | none | mpi | nccl: auto is none for one task, nccl with
#                            --backend cuda, mpi otherwise (a --dist among ARGS wins)
#              DG_SRUN_MPI   srun's --mpi plugin (default pmix; `srun --mpi=list` shows them)
#              DG_MAX_REQUEUES  how often a job may requeue itself (default 20)
# Outside a job (no SLURM_JOB_ID) the command runs directly, once. Exit: the command's.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: run-step.sh COMMAND [ARGS...]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dnnguard=${DNNGUARD:-$(command -v dnnguard || echo "$here/../../build/dnnguard")}
tasks=${SLURM_NTASKS:-1}
args=("$@")

has() { local a; for a in "${args[@]}"; do [ "$a" = "$1" ] && return 0; done; return 1; }
resumable=0
takes_dist=0
case "$1 ${2:-}" in
  "train "*|"attack finetune") resumable=1 takes_dist=1 ;;
  "fp issue"|"infip extract"|"infip verify"|"infip calibrate") takes_dist=1 ;;
esac
if [ $takes_dist = 1 ] && ! has --dist; then
  dist=${DG_DIST:-auto}
  if [ "$dist" = auto ]; then
    dist=none
    if [ "$tasks" -gt 1 ]; then
      dist=mpi
      for ((i = 0; i + 1 < ${#args[@]}; i++)); do
        [ "${args[i]}" = --backend ] && [ "${args[i + 1]}" = cuda ] && [ $resumable = 1 ] && dist=nccl
      done
    fi
  fi
  args+=(--dist "$dist")
fi
[ $resumable = 1 ] && ! has --resume && args+=(--resume)

if [ -z "${SLURM_JOB_ID:-}" ]; then
  exec "$dnnguard" "${args[@]}"
fi
# --kill-on-bad-exit: a rank that fails alone takes the step down instead of leaving the others
# waiting in a collective (dnnguard's ranks otherwise end together; docs/distributed.md)
# (srun no longer inherits sbatch's --cpus-per-task since Slurm 22.05: pass it on)
srun --mpi="${DG_SRUN_MPI:-pmix}" --kill-on-bad-exit=1 --ntasks="$tasks" \
  ${SLURM_CPUS_PER_TASK:+--cpus-per-task="$SLURM_CPUS_PER_TASK"} "$dnnguard" "${args[@]}" &
step=$!
# SIGTERM to this batch shell (preemption, scancel) must not kill it before the ranks, which get
# the signal too, have written their checkpoint: note it and keep waiting for the step
terminated=0
trap 'terminated=1; echo "run-step: SIGTERM: waiting for dnnguard to checkpoint" >&2' TERM
trap 'echo "run-step: SIGUSR1 to the batch shell: passing it to the step" >&2; kill -USR1 "$step" 2>/dev/null' USR1
rc=0
wait "$step" || rc=$?
while kill -0 "$step" 2>/dev/null; do
  rc=0
  wait "$step" || rc=$?
done
if [ "$rc" = 3 ] && [ $resumable = 1 ]; then
  restarts=${SLURM_RESTART_COUNT:-0}
  if [ $terminated = 1 ]; then
    echo "run-step: checkpoint written after SIGTERM (scancel or preemption): not requeueing job $SLURM_JOB_ID;" \
      "a new job (or Slurm's own requeue) resumes from it" >&2
  elif [ "$restarts" -lt "${DG_MAX_REQUEUES:-20}" ]; then
    if scontrol requeue "$SLURM_JOB_ID"; then
      echo "run-step: checkpoint written; requeued job $SLURM_JOB_ID (restart $((restarts + 1)))" >&2
    else
      echo "run-step: checkpoint written, but scontrol requeue $SLURM_JOB_ID failed: resubmit to resume" >&2
    fi
  else
    echo "run-step: stopped with a checkpoint, but job $SLURM_JOB_ID already restarted $restarts times" >&2
  fi
fi
exit "$rc"
