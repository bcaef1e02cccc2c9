#!/usr/bin/env bash
# Install filterdb and everything its workflow and tests need, from this repository's own files.
#   bash install.sh          the package, the workflow (Snakemake) and the figure/format extras
#   bash install.sh --test   also the test tools and Debian's chromium (for the report browser test)
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install -q uv
extras="all"
if [[ "${1:-}" == "--test" ]]; then
  extras="all,test"
  # Debian packages for the report's browser test (chromium) and the one-node SLURM test.
  need=()
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld slurmd slurm-client munge)
  if ((${#need[@]})) && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # Without a reachable controller, `scontrol` (which Snakemake's SLURM plugin runs at every start)
  # waits ~10 s, or a minute in configless mode: give this test machine a config that fails at once.
  # tests/cluster/slurm-up.sh replaces it while its one-node cluster runs. A real config is kept.
  if [[ $(id -u) -eq 0 && -d /etc/slurm && ! -e /etc/slurm/slurm.conf ]]; then
    bash tests/cluster/slurm-down.sh --config-only
  fi
fi
python3 -m uv pip install --system -q -e ".[${extras}]"
# Bytecode for every installed module and for filterdb: uv does not write it, and where
# PYTHONDONTWRITEBYTECODE is set Python never caches it, so every Snakemake start and every job
# would compile pandas, Snakemake, ... from source again (~2 s each on a 2-core machine).
python3 -m compileall -q -j 0 $(python3 -c 'import sysconfig as s; print(*sorted({s.get_paths()["purelib"], s.get_paths()["platlib"]}))') filterdb >/dev/null 2>&1 || true
# The pass kernels compiled ahead of time for this CPU: saves each shard job ~1.4 s of numba start-up
# (without it, or on another CPU, numba's JIT compiles the same kernels: same results, slower start).
python3 -m filterdb.compiled build >/dev/null || echo "note: ahead-of-time kernels not built; numba's JIT is used" >&2
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
