#!/usr/bin/env bash
# tests/slurm_cluster.sh — a real one-node Slurm cluster on localhost for the tests, without
# systemd: munged --force, slurmctld -D and slurmd -D in the background, with a munge key, a
# generated slurm.conf, state, spool, logs and sockets all under one folder.
#   tests/slurm_cluster.sh start DIR   start the daemons; prints "export SLURM_CONF=DIR/slurm.conf"
#   tests/slurm_cluster.sh stop DIR    stop every daemon that start began (by the pids it wrote)
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

stop() {
  local name pid
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
