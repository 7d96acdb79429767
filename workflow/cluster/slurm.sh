#!/usr/bin/env bash
# A throwaway single-node SLURM cluster on this machine, for trying the SLURM profile without a real
# cluster (tests/test_cluster.py runs the pipeline on it). Needs root and Debian's packages:
#   apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
#
#   bash workflow/cluster/slurm.sh start STATE_DIR   # munged, slurmctld, slurmd; prints name=pid lines
#   bash workflow/cluster/slurm.sh stop STATE_DIR    # stops each daemon it started, by its PID file
#
# Every file (config, munge key and socket, spool, logs, PID files) lives under STATE_DIR, except one
# symlink, /etc/slurm/slurm.conf -> STATE_DIR/slurm.conf: the executor plugin's job step runs `srun`
# with every SLURM_* variable removed, SLURM_CONF included, so srun must find the config at its
# built-in path. `start` refuses to replace a slurm.conf that is not its own, except a link left
# by an interrupted run of this script (the target's directory has its run/ and munge/, and its
# slurmctld is gone), whose remaining daemons it stops first; `stop` removes the link.
# Daemons are stopped only when their PID file names a live process of that name.
#
# No accounting (slurmdbd): `sacct` has nothing to report here, so Snakemake must poll with
# `--slurm-status-command squeue`. MinJobAge keeps finished jobs visible to squeue for 10 minutes,
# longer than the plugin's longest wait between polls (180 s); below 3 x its first wait, the plugin
# goes back to sacct (it says so at info level), which would never see the jobs finish.
# The node offers 64 GB whatever this machine has (SlurmdParameters=config_overrides: no check against
# the hardware), so the profile's memory requests fit; nothing enforces them here (TaskPlugin=task/none).
set -euo pipefail

usage() { echo "usage: $0 start|stop STATE_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
state=$(mkdir -p "$2" && cd "$2" && pwd)
conf="$state/slurm.conf"

start() {
  for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge" >&2; exit 1; }
  done
  if running slurmctld "$state"; then
    echo "a cluster is already running from $state: stop it first ($0 stop $state)" >&2; exit 1
  fi
  local other other_state
  other=$(readlink /etc/slurm/slurm.conf || true)
  other_state=
  if [ -n "$other" ]; then  # a relative target is relative to /etc/slurm
    other_state=$(cd /etc/slurm && dirname "$(readlink -m "$other")")
  fi
  if [ -n "$other" ] && [ "$other" != "$conf" ] && [ -d "$other_state/run" ] && [ -d "$other_state/munge" ] \
      && ! running slurmctld "$other_state"; then
    # A link to a state directory of this script's layout, left by a cluster that was killed (an
    # interrupted run): stop what is left of it, then remove the link (`stop` removes it only when
    # it names that directory's slurm.conf by the same path). Any other link is refused below.
    echo "/etc/slurm/slurm.conf links to $other, whose slurmctld is not running: stopping what is left of that cluster" >&2
    bash "$0" stop "$other_state" >&2
    if [ "$(readlink /etc/slurm/slurm.conf)" = "$other" ]; then rm -f /etc/slurm/slurm.conf; fi
  fi
  if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$conf" ]; then
    echo "/etc/slurm/slurm.conf exists and is not this cluster's: stop that cluster first (or move the file)" >&2; exit 1
  fi
  mkdir -p "$state"/{munge,ctld,spool,run,log}
  # munged wants every directory above its socket searchable by everyone
  chmod 755 "$state" "$state/munge"
  local dir=$state
  while [ "$dir" != / ]; do
    dir=$(dirname "$dir")
    [ "$(( $(stat -c %a "$dir") % 10 & 1 ))" = 1 ] || { echo "$dir is not searchable by everyone, which munged requires: choose a STATE_DIR elsewhere (e.g. under /tmp)" >&2; exit 1; }
  done
  if [ ! -s "$state/munge/munge.key" ]; then
    head -c 1024 /dev/urandom > "$state/munge/munge.key"
    chmod 600 "$state/munge/munge.key"
  fi
  local host cpus
  host=$(hostname -s)
  cpus=$(nproc)
  cat > "$conf" <<EOF
ClusterName=optbias
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge/munge.socket.2
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=600
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=64000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  mkdir -p /etc/slurm
  ln -sfn "$conf" /etc/slurm/slurm.conf
  trap 'echo "start failed: stopping what was started" >&2; stop' ERR
  munged --socket="$state/munge/munge.socket.2" --key-file="$state/munge/munge.key" \
         --pid-file="$state/run/munged.pid" --log-file="$state/log/munged.log" --seed-file="$state/munge/munged.seed"
  slurmctld -f "$conf"
  slurmd -f "$conf"
  for _ in $(seq 1 60); do  # at most about a minute when sinfo answers at once
    if SLURM_CONF=$conf timeout 5 sinfo -h -o %t 2>/dev/null | grep -qx idle; then
      for daemon in munged slurmctld slurmd; do echo "$daemon=$(cat "$state/run/$daemon.pid")"; done
      return 0
    fi
    sleep 0.5
  done
  echo "the node did not become idle; see $state/log/slurmctld.log and slurmd.log" >&2
  stop
  exit 1
}

running() {  # daemon state_dir: whether the PID file names a live process of that name (not a reused PID)
  local file="$2/run/$1.pid"
  [ -s "$file" ] && [ "$(cat "/proc/$(cat "$file")/comm" 2>/dev/null)" = "$1" ]
}

stop_daemon() {  # name: TERM by PID file, KILL after 15 s
  local file="$state/run/$1.pid" pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if running "$1" "$state"; then
    kill -TERM "$pid"
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    echo "stopped $1 ($pid)"
  fi
  rm -f "$file"
}

stop() {
  if running slurmctld "$state"; then  # cancel what is left, so its job steps end with slurmd
    SLURM_CONF=$conf timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
  fi
  stop_daemon slurmd
  stop_daemon slurmctld
  stop_daemon munged
  if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$conf" ]; then rm -f /etc/slurm/slurm.conf; fi
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
