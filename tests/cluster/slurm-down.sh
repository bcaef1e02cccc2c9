#!/usr/bin/env bash
# Stop the daemons started by slurm-up.sh (by their PID files only), then put back the config that
# was there before, or else one that makes Slurm's clients fail at once: with a configured but
# stopped controller `scontrol` retries for ~10 s, and Snakemake's SLURM plugin runs it at every
# start. Usage: slurm-down.sh STATE_DIR | --config-only
if [[ ${1:-} != --config-only ]]; then
  state=$(realpath -m "$1")
  for f in "$state"/run/slurmd.pid "$state"/run/slurmctld.pid; do
    [[ -s $f ]] && kill "$(cat "$f")" 2>/dev/null || true
  done
  if [[ -s $state/slurm.conf.orig ]]; then
    cp "$state/slurm.conf.orig" /etc/slurm/slurm.conf
    exit 0
  fi
fi
mkdir -p /etc/slurm
cat > /etc/slurm/slurm.conf <<CONF
# filterdb test machine: no Slurm controller runs here (tests/cluster/slurm-up.sh starts one)
ClusterName=filterdb
SlurmctldHost=localhost
MessageTimeout=1
CONF
