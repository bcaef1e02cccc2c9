#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (no systemd) for the workflow tests.
# Needs root and Debian's slurmctld slurmd slurm-client munge (installed by `install.sh --test`).
# Usage: slurm-up.sh STATE_DIR    (stop with slurm-down.sh STATE_DIR)
set -euo pipefail
state=$(realpath -m "$1")
mkdir -p "$state"/{spool,ctld,log,run} /etc/slurm /run/munge
chown munge:munge /run/munge
[[ -s /etc/munge/munge.key ]] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
# keep a config that is not ours (slurm-down.sh puts it back)
if [[ -s /etc/slurm/slurm.conf ]] && ! grep -q '^# filterdb' /etc/slurm/slurm.conf; then
  cp /etc/slurm/slurm.conf "$state/slurm.conf.orig"
fi
cpus=$(nproc)
mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
cat > /etc/slurm/slurm.conf <<CONF
# filterdb one-node test cluster (tests/cluster/slurm-up.sh)
ClusterName=filterdb
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
SchedulerType=sched/backfill
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
JobAcctGatherType=jobacct_gather/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
/usr/sbin/slurmctld
/usr/sbin/slurmd -N localhost
for _ in $(seq 1 50); do
  sinfo -h -o %T 2>/dev/null | grep -qE '^idle' && exit 0
  sleep 0.2
done
echo "slurm-up: the node did not become idle: $(sinfo 2>&1 | tr '\n' ' ')" >&2
exit 1
