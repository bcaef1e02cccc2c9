"""The whole workflow on DBs of 5x5 filters, unchanged (docs/method.md §13): a synthetic DB (every
default target: tables, figures, quality, grids, models, report inputs) and a DB built from the
sample's real models with 5x5 convs (`filterdb build --kernel 5x5`; needs the pinned archives)."""

import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from filterdb import pipeline, plots, quality
from filterdb.shape import FilterShape
from filterdb.synth import write_synth_db
from tests.conftest import DEFAULT_AXES
from tests.test_ingest_kernel_size import real_sheet  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")
K = 5
D = K * K


def _run(tmp, db, results, *targets, extra=()):
    cmd = [SNAKEMAKE, *targets, "--cores", "2", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp)]
    cmd += ["--configfile", str(ROOT / "config.yaml"), "--config", f"dataset={db}", f"results={results}", *extra]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    return r


def _check_tables(res: Path, db: Path):
    """The run's PCA, range and drift tables against the library's in-process analysis of the same
    DB, and the k x k columns."""
    basis = pd.read_csv(res / "pca/basis.tsv", sep="\t")
    pixels = FilterShape(K).pixels
    assert list(basis.columns) == ["component", "explained_variance", "explained_variance_ratio"] + pixels
    assert list(basis["component"]) == [f"c{i}" for i in range(D)]
    a = pipeline.analyse(str(db), config={"quality": {"enabled": False}, "histogram": {"fine_bins": 0}})
    np.testing.assert_allclose(basis[pixels].to_numpy(), a.pca.components, rtol=0, atol=1e-15)
    with h5py.File(db) as f:  # plain numpy: the covariance of the peak-scaled filters (float16 mode)
        x = np.asarray(f["filters"]).reshape(-1, D).astype(np.float16)
    peak = np.abs(x).max(axis=1, keepdims=True)
    peak[peak == 0] = 1
    scaled = (x / peak).astype(np.float64)
    np.testing.assert_allclose(a.pca.covariance, np.cov(scaled, rowvar=False), rtol=0, atol=1e-12)
    rng = pd.read_csv(res / "pca/range.tsv", sep="\t")
    assert (rng["min"][0], rng["max"][0]) == a.range
    for axis, want in a.drift.items():
        got = pd.read_csv(res / f"drift/{axis}.tsv", sep="\t")
        np.testing.assert_allclose(got.iloc[:, 1:].to_numpy(np.float64), want.iloc[:, 1:].to_numpy(np.float64))
    hist = np.load(res / "stats/hist.npz")
    assert hist["counts"].shape[1] == D


def test_synthetic_5x5_db_every_default_target(tmp_path):
    db = tmp_path / "db5.h5"
    layers = write_synth_db(db, shape3x3=True, kernel=FilterShape(K), n_models=8, seed=5)
    res = tmp_path / "res"
    _run(tmp_path, db, res)  # the default target: everything the workflow makes
    _check_tables(res, db)
    # the figures drawn for k x k filters
    for fig in ("pca_eigenimages", "pca_covariance", "eigenimages_task", "filter_grid_task", "ridge_task"):
        assert (res / "figures" / f"{fig}.png").stat().st_size > 0, fig
    grid = pd.read_csv(res / "grids/task.tsv", sep="\t")
    assert [c for c in grid.columns if c.startswith("w")] == FilterShape(K).pixels
    # the headline figure is titled with the DB's kernel size: rebuilt from the tables, same bytes
    from tests.test_kl_combined import STUDY_PANELS, _expected_figure

    title = f"Distribution shifts of trained {K}x{K} convolution filters"
    expected, _ = _expected_figure(res, STUDY_PANELS, title=title)
    plots.save(expected, tmp_path / "expected.svg")
    assert (tmp_path / "expected.svg").read_bytes() == (res / "figures/kl_combined.svg").read_bytes()
    # quality: the layer table's numbers against the numpy reference, the threshold fit marked
    q = pd.read_csv(res / "quality/layers.tsv", sep="\t")
    with h5py.File(db) as f:
        x = np.asarray(f["filters"]).reshape(-1, D)
    assert len(q) == len(layers)
    for j in range(0, len(layers), 7):
        a, b = int(layers["row_start"].iloc[j]), int(layers["row_end"].iloc[j])
        w = x[a:b].astype(np.float16).astype(np.float64)  # the default precision's values
        ref = quality.layer_quality(w, None, 0.01)
        np.testing.assert_allclose(q["sparsity"].iloc[j], ref["sparsity"], rtol=1e-12)
        np.testing.assert_allclose(q["variance_entropy"].iloc[j], ref["variance_entropy"], rtol=1e-9)
        assert np.isnan(q["variance_entropy_norm"].iloc[j])
        assert "3x3 only" in str(q["notes"].iloc[j])


@pytest.mark.network
def test_real_models_5x5_db_through_the_workflow(tmp_path, real_sheet):  # noqa: F811
    from filterdb.ingest.build import build

    sheet, _ = real_sheet
    db = tmp_path / "real5.h5"
    built = build(str(sheet), str(db), kernel=f"{K}x{K}", log=lambda m: None)
    assert len(built.built) >= 5
    res = tmp_path / "res"
    tables = ["pca/basis.tsv", "pca/range.tsv", "quality/layers.tsv"] + [f"drift/{a}.tsv" for a in DEFAULT_AXES]
    targets = [str(res / t) for t in tables]
    _run(tmp_path, db, res, *targets)
    _check_tables(res, db)
    q = pd.read_csv(res / "quality/layers.tsv", sep="\t")
    assert q["n_filters"].sum() == h5py.File(db)["filters"].shape[0]
