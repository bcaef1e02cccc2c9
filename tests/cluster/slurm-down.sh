#!/usr/bin/env bash
# Stop the daemons started by slurm-up.sh, by their PID files only.
state=$(realpath -m "$1")
for f in "$state"/run/slurmd.pid "$state"/run/slurmctld.pid; do
  [[ -s $f ]] && kill "$(cat "$f")" 2>/dev/null || true
done
