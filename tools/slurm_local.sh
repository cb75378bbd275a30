#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for tests and for trying the slurm profile:
#   sudo bash tools/slurm_local.sh start   # installs Debian's slurm-wlm + munge if missing
#   sudo bash tools/slurm_local.sh stop
# Runs as root; state under /var/spool/vsr-slurm. Debian 12 ships SLURM 22.05: fine for
# snakemake-executor-plugin-slurm >= 2.7.1 when status is read with squeue (no accounting).
set -euo pipefail
what=${1:-start}
S=/var/spool/vsr-slurm
host=$(hostname -s)
if [ "$what" = stop ]; then
  for p in slurmd slurmctld munged; do
    [ -f "$S/$p.pid" ] && kill "$(cat "$S/$p.pid")" 2>/dev/null || true
  done
  pkill -x slurmstepd 2>/dev/null || true
  exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null; }
fi
mkdir -p "$S/ctld" "$S/d" /var/log/slurm /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
  head -c 1024 /dev/urandom > /etc/munge/munge.key
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  cp /run/munge/munged.pid "$S/munged.pid"
fi
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=vsr
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$S/ctld
SlurmdSpoolDir=$S/d
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do
  if timeout 5 sinfo -h -o %t 2>/dev/null | grep -qx idle; then
    echo "slurm: node $host idle (partition debug, $cpus CPUs, ${mem} MB)"
    exit 0
  fi
  sleep 1
done
echo "slurm: node $host did not come up; see /var/log/slurm/" >&2
exit 1
