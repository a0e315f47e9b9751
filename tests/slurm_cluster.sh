#!/usr/bin/env bash
# tests/slurm_cluster.sh — a real one-node Slurm cluster on localhost for the tests, without
# systemd: munged --force, slurmctld -D and slurmd -D in the background, with a munge key, a
# generated slurm.conf, state, spool, logs and sockets all under one folder.
#   tests/slurm_cluster.sh start DIR   start the daemons; prints "export SLURM_CONF=DIR/slurm.conf"
#   tests/slurm_cluster.sh stop DIR    cancel every job still there, stop every daemon that start
#                                      began (by the pids it wrote), and end what of the jobs is left
#                                      (slurmstepd and job processes outlive slurmd by design)
# Needs root (slurmd starts jobs as their users) and Debian's slurm-wlm and munge. Test helper only.
set -euo pipefail
cmd=${1:?start|stop}
dir=$(realpath -m "${2:?folder}")

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() { # seconds, command...: poll until the command succeeds
  local until=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $until ] || return 1
    sleep 0.2
  done
}

# The processes this cluster's jobs left: slurmstepd and the jobs' own, known by the SLURM_CONF in
# their environment (slurmd passes its own on, sbatch the submitter's) and, for job processes, a
# SLURM_JOB_ID. Never this script or its callers, which have no SLURM_JOB_ID.
leftovers() {
  local env_file pid
  for env_file in /proc/[0-9]*/environ; do
    pid=${env_file#/proc/} pid=${pid%/environ}
    [ "$pid" != $$ ] || continue
    { tr '\0' '\n' <"$env_file"; } 2>/dev/null | grep -qx "SLURM_CONF=$dir/slurm.conf" || continue
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmstepd ] ||
      { tr '\0' '\n' <"$env_file"; } 2>/dev/null | grep -q '^SLURM_JOB_ID=' || continue
    echo "$pid"
  done
}

stop() {
  local name pid ids left
  if [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    ids=$(SLURM_CONF="$dir/slurm.conf" squeue -h -o %i 2>/dev/null || true)
    if [ -n "$ids" ]; then
      # shellcheck disable=SC2086 # one id per word
      SLURM_CONF="$dir/slurm.conf" scancel $ids 2>/dev/null || true
      wait_for 45 sh -c "[ -z \"\$(SLURM_CONF='$dir/slurm.conf' squeue -h -o %i)\" ]" ||
        echo "slurm_cluster.sh: jobs still in the queue 45 s after scancel" >&2
    fi
  fi
  for name in slurmd slurmctld munged; do
    [ -f "$dir/$name.pid" ] || continue
    pid=$(cat "$dir/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  done
  left=$(leftovers)
  if [ -n "$left" ]; then
    echo "slurm_cluster.sh: ending what the jobs left: ${left//$'\n'/ }" >&2
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
  fi
}

start() {
  mkdir -p "$dir"/{munge,state,spool,log,jobs}
  chmod 700 "$dir/munge"
  # munge: a fresh key, its own socket; --force because the test folder is not /etc/munge
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 600 "$dir/munge/munge.key"
  local sock="$dir/munge/munge.socket"
  munged --force --foreground --socket="$sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/munged.seed" \
    --log-file="$dir/log/munged.log" >"$dir/log/munged.out" 2>&1 &
  echo $! >"$dir/munged.pid"
  wait_for 20 test -S "$sock" || { echo "munged did not start: $(tail -3 "$dir/log/munged.log" 2>/dev/null)" >&2; return 1; }

  local node ctld_port slurmd_port
  node=$(hostname -s)
  ctld_port=$(free_port)
  slurmd_port=$(free_port)
  # the node as slurmd sees the hardware (CPUs, sockets, cores, memory), under its own name
  local hw
  hw=$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]* //')
  cat >"$dir/slurm.conf" <<CONF
ClusterName=dnnguard-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$sock,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/state/slurmctld.pid
SlurmdPidFile=$dir/spool/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
# a test cluster: look at pending jobs every 2 s (default 60), so requeued and dependent jobs start at once
SchedulerParameters=sched_interval=2,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
InactiveLimit=0
KillWait=30
MinJobAge=3600
SlurmctldTimeout=300
SlurmdTimeout=300
NodeName=$node NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -D -f "$SLURM_CONF" >"$dir/log/slurmctld.out" 2>&1 &
  echo $! >"$dir/slurmctld.pid"
  wait_for 30 scontrol ping || { echo "slurmctld did not start: $(tail -5 "$dir/log/slurmctld.log")" >&2; return 1; }
  slurmd -D -f "$SLURM_CONF" >"$dir/log/slurmd.out" 2>&1 &
  echo $! >"$dir/slurmd.pid"
  wait_for 60 sh -c "sinfo -h -N -o %t | grep -qE '^(idle|mix|alloc)'" ||
    { echo "slurmd did not register: $(tail -5 "$dir/log/slurmd.log")" >&2; return 1; }
  echo "export SLURM_CONF=$SLURM_CONF"
}

case "$cmd" in
  start) start || { stop; exit 1; } ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
