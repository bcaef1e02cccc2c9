"""The workflow on a real (one-node) SLURM cluster through snakemake-executor-plugin-slurm.

Starts slurmctld/slurmd with tests/cluster/slurm-up.sh (needs root and Debian's slurm packages,
which `install.sh --test` installs); skipped where they are absent.
"""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from filterdb import pipeline
from filterdb.axes import axes_from_config
from filterdb.synth import write_synth_db
from tests.conftest import DEFAULT_AXES

ROOT = Path(__file__).resolve().parents[1]
HAVE = all(shutil.which(t) for t in ("slurmctld", "slurmd", "sbatch", "munged", "snakemake"))
pytestmark = pytest.mark.skipif(not HAVE or os.geteuid() != 0, reason="needs root and Debian's slurm packages")


@pytest.fixture
def cluster(tmp_path):
    state = tmp_path / "slurm"
    up = subprocess.run(
        ["bash", str(ROOT / "tests/cluster/slurm-up.sh"), str(state)], capture_output=True, text=True, timeout=120
    )
    assert up.returncode == 0, up.stderr
    yield state
    subprocess.run(["bash", str(ROOT / "tests/cluster/slurm-down.sh"), str(state)], timeout=60)


def test_workflow_on_slurm(cluster, tmp_path):
    db = tmp_path / "dataset.h5"
    write_synth_db(db, layout="v1.0", seed=5, n_models=6)
    res = tmp_path / "res"
    cmd = [
        "timeout",
        "-s",
        "INT",
        "900",
        "snakemake",
        "--profile",
        str(ROOT / "profiles/slurm-local"),
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(ROOT / "config.yaml"),
        "--config",
        f"dataset={db}",
        f"results={res}",
        "--",
        "all",
    ]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1000)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert "slurm" in (run.stdout + run.stderr).lower()
    a = pipeline.analyse(str(db), axes_from_config(DEFAULT_AXES))
    for axis in DEFAULT_AXES:
        d = pd.read_csv(res / f"drift/{axis}.tsv", sep="\t")
        assert list(d["group"].astype(str)) == list(a.drift[axis]["group"])
        np.testing.assert_allclose(d.iloc[:, 1:].to_numpy(), a.drift[axis].iloc[:, 1:].to_numpy(), rtol=1e-14)
