"""End to end: the Snakemake workflow on small generated DBs, checked against the library."""

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
SNAKEMAKE = shutil.which("snakemake")
pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")


CONTRACT = ["pca/basis.tsv", "pca/mean.tsv", "pca/range.tsv", "stats/hist.npz"] + [
    f"{kind}/{axis}.tsv" for kind in ("drift", "groups") for axis in DEFAULT_AXES
]


def run_workflow(tmp, dataset, results, *extra, targets=None):
    """Run the workflow; by default only the contract files (figures have their own tests)."""
    targets = [str(Path(results) / t) for t in CONTRACT] if targets is None else targets
    cmd = [
        SNAKEMAKE,
        *targets,
        "--cores",
        "2",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp),
        "--configfile",
        str(ROOT / "config.yaml"),
        "--config",
        f"dataset={dataset}",
        f"results={results}",
        *extra,
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wf")
    db = tmp / "dataset.h5"
    write_synth_db(db, layout="v0.1", seed=11, n_models=10)
    res = run_workflow(tmp, db, tmp / "res", "--set-scatter", "shards=3", targets=with_cells(tmp / "res"))
    assert res.returncode == 0, res.stderr[-3000:]
    return tmp, db


def with_cells(results):
    """The contract files and the fine cell histograms (a job of their own, beside the drift)."""
    return [str(Path(results) / t) for t in [*CONTRACT, "stats/cell_hist.npy"]]


def test_contract_files_match_library(workflow_run):
    tmp, db = workflow_run
    res = tmp / "res"
    a = pipeline.analyse(str(db), axes_from_config(DEFAULT_AXES))
    basis = pd.read_csv(res / "pca/basis.tsv", sep="\t")
    assert list(basis.columns) == ["component", "explained_variance", "explained_variance_ratio"] + [
        f"w{i}" for i in range(9)
    ]
    assert list(basis["component"]) == [f"c{i}" for i in range(9)]
    np.testing.assert_allclose(basis[[f"w{i}" for i in range(9)]].to_numpy(), a.pca.components, rtol=0, atol=1e-15)
    np.testing.assert_allclose(basis["explained_variance_ratio"], a.pca.explained_variance_ratio, rtol=1e-15)
    mean = pd.read_csv(res / "pca/mean.tsv", sep="\t")
    np.testing.assert_allclose(mean.to_numpy()[0], a.pca.mean, rtol=1e-15)
    rng = pd.read_csv(res / "pca/range.tsv", sep="\t")
    assert (rng["min"][0], rng["max"][0]) == a.range
    for axis in DEFAULT_AXES:
        d = pd.read_csv(res / f"drift/{axis}.tsv", sep="\t")
        assert list(d.columns[1:]) == list(d["group"].astype(str))
        np.testing.assert_allclose(d.iloc[:, 1:].to_numpy(), a.drift[axis].iloc[:, 1:].to_numpy(), rtol=1e-14)
        g = pd.read_csv(res / f"groups/{axis}.tsv", sep="\t")
        assert list(g.columns) == ["group", "n_models", "n_layers", "n_filters"]
        assert g["n_filters"].sum() == a.db.n_rows  # every filter in exactly one group
    with np.load(res / "stats/sums.npz") as z:
        assert np.array_equal(z["outer"], a.sums["outer"])
    with np.load(res / "stats/hist.npz") as z:
        assert np.array_equal(z["counts"], a.hist["counts"])


def test_one_shard_gives_identical_files(workflow_run):
    """Every file of the run (TSVs byte for byte, npz/npy array by array) is the same for 3 shards
    and 1 shard; logs and benchmarks (timings) and the per-shard totals aside."""
    from filterdb.results import load_npz

    tmp, db = workflow_run
    res = run_workflow(tmp, db, tmp / "res1", "--set-scatter", "shards=1", targets=with_cells(tmp / "res1"))
    assert res.returncode == 0, res.stderr[-3000:]

    def files(root):
        return sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file()
            and p.relative_to(root).parts[0] not in ("logs", "benchmarks")
            and p.relative_to(root).parts[:2] != ("stats", "totals")  # one file per shard
        )

    # the one-job path's memory request (estimated from the DB's size) covers what it used
    from filterdb.memory import estimate_single_job_mb
    from filterdb.passes import PassSettings, pass_dims
    from filterdb.settings import Settings, load_config

    settings = Settings.from_config(load_config(ROOT / "config.yaml"), filled=True)
    dims = pass_dims(PassSettings.from_settings(settings), 9, settings.bins)
    assert (dims.fine, dims.pairs, dims.quality) == (1024, 1, True)  # the run's fine and 2-D histograms, quality

    log = (tmp / "res1/logs/analyse.log").read_text()
    peak = float(log.split("peak memory of this job: ")[1].split()[0])
    from filterdb.db import count_layers

    assert count_layers(db) == len(pd.read_hdf(db, "meta"))
    for layers in (count_layers(db), None):  # counted, or assumed from the size
        ask = estimate_single_job_mb(
            Path(db).stat().st_size // 36,
            dims,
            block_rows=settings.stream["block_rows"],
            row_bytes=36,
            layers=layers,
            threads=2,
        )
        assert peak * 1.048576 <= ask, (peak, ask, layers)  # MiB -> MB

    three, one = files(tmp / "res"), files(tmp / "res1")
    assert three == one
    assert set(CONTRACT) < set(three) and {"stats/sums.npz", "stats/cell_hist.npy", "stats/layers.tsv"} < set(three)
    for rel in three:
        a, b = tmp / "res" / rel, tmp / "res1" / rel
        if rel.endswith(".npz"):
            x, y = load_npz(a), load_npz(b)
            assert sorted(x) == sorted(y), rel
            for k in x:
                assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k], equal_nan=x[k].dtype.kind == "f"), k
        elif rel.endswith(".npy"):
            x, y = np.load(a), np.load(b)
            assert x.dtype == y.dtype and np.array_equal(x, y), rel
        else:
            assert a.read_bytes() == b.read_bytes(), rel


def test_bad_dataset_fails_with_one_clear_line(tmp_path):
    db = tmp_path / "bad.h5"
    layers = write_synth_db(db, layout="v1.0", seed=1, n_models=2)
    meta = pd.read_hdf(db, "meta").drop(columns=["Name"])
    meta.to_hdf(db, key="meta", mode="a")
    res = run_workflow(tmp_path, db, tmp_path / "res")
    assert res.returncode != 0
    # a small DB: one shard, the one-job path (rule analyse)
    line = f"filterdb error in rule analyse: {db}: meta lacks column 'Name', needed by the configured axes"
    assert line in res.stdout + res.stderr
    assert not (tmp_path / "res/stats/layers.tsv").exists()


def test_figures_are_one_job_per_axis_or_per_kind(workflow_run):
    """The figures of one axis are one job per axis (fig_axis: a cluster runs the axes side by
    side), the figures of no single axis one job (fig_global); the drift tables one job per axis."""
    tmp, db = workflow_run
    res = run_workflow(tmp, db, tmp / "res", "--dry-run", "--quiet", "rules", targets=[])
    assert res.returncode == 0, res.stderr[-3000:]
    counts = dict(line.split() for line in res.stdout.splitlines() if line.startswith(("fig_", "drift ")))
    n = str(len(DEFAULT_AXES))
    assert counts == {"fig_axis": n, "drift": n, "fig_global": "1"}


def test_other_histogram_bins_rerun_only_the_hist_pass(workflow_run):
    """The later passes read the earlier ones' small totals files (kept), not their temporary
    parts: changing the histogram bins reruns the hist pass and what follows, not sums or range."""
    tmp, db = workflow_run
    cfg = tmp / "bins60.yaml"
    text = (ROOT / "config.yaml").read_text()
    assert "\n  bins: 70\n" in text
    cfg.write_text(text.replace("\n  bins: 70\n", "\n  bins: 60\n"))
    res = tmp / "res"
    cmd = [SNAKEMAKE, *with_cells(res), "-n", "--cores", "2", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp)]
    cmd += ["--configfile", str(cfg), "--set-scatter", "shards=3", "--config", f"dataset={db}", f"results={res}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    table = r.stdout.split("Job stats:", 1)[1].split("total", 1)[0]
    jobs = {line.split()[0]: int(line.split()[1]) for line in table.splitlines()[3:] if line.strip()}
    assert jobs.get("shard_hist") == 3 and "drift" in jobs, jobs
    assert not {"layer_table", "shard_sums", "shard_range", "gather_sums", "gather_range"} & set(jobs), jobs
    assert set(jobs) <= {"shard_hist", "gather_hist", "gather_cells", "drift"}, jobs


def dry_run_jobs(tmp, db, res, *extra):
    """{rule: job count} of a dry run for the contract files."""
    r = run_workflow(tmp, db, res, "-n", *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    table = r.stdout.split("Job stats:", 1)[1].split("total", 1)[0]
    return {line.split()[0]: int(line.split()[1]) for line in table.splitlines()[3:] if line.strip()}


def test_small_db_runs_as_one_job_unless_sharded(workflow_run):
    """Any DB gets one shard by default (stream.single_job_filters: auto), and one shard is one job
    (rule analyse) up to the drift tables; an integer limit below the DB's filters, 0, or
    --set-scatter shards=N > 1 give the per-step rules."""
    import os

    tmp, db = workflow_run
    res = tmp / "res-dry"
    one = dry_run_jobs(tmp, db, res)
    assert set(one) in ({"analyse", "drift", "all"}, {"analyse", "drift"}), one
    assert one["analyse"] == 1 and one["drift"] == len(DEFAULT_AXES), one  # the drift tables: one job per axis
    cores = max(1, os.cpu_count() or 1)
    steps = {"layer_table", "shard_sums", "shard_range", "shard_hist", "gather_hist", "drift"}

    def limit(n):
        cfg = tmp / f"single-{n}.yaml"
        text = (ROOT / "config.yaml").read_text()
        assert "\n  single_job_filters: auto " in text
        cfg.write_text(text.replace("\n  single_job_filters: auto ", f"\n  single_job_filters: {n} "))
        return ("--configfile", str(cfg))

    for extra in (limit(0), ("--set-scatter", "shards=2")):
        jobs = dry_run_jobs(tmp, db, res, *extra)
        assert steps <= set(jobs) and "analyse" not in jobs, (extra, jobs)
        n = 2 if extra[0] == "--set-scatter" else cores
        assert jobs["shard_sums"] == n, (extra, jobs)
    # an integer limit compares the DB's filter count (its dataset's rows)
    import h5py

    with h5py.File(db, "r") as f:
        small = int(f["filter" if "filter" in f else "filters"].shape[0])
    assert "analyse" in dry_run_jobs(tmp, db, res, *limit(small))
    assert "analyse" not in dry_run_jobs(tmp, db, res, *limit(small - 1))


def test_auto_threads_follow_the_filters_of_a_shard(workflow_run):
    """stream.threads auto: the analyse job of a DB smaller than one block of stream.block_rows
    gets one thread (its second core runs another job); with blocks of a third of its rows, both
    cores (--cores 2); each shard job of --set-scatter shards=2, one core each."""
    import re

    import h5py

    tmp, db = workflow_run
    with h5py.File(db, "r") as f:
        n = int(f["filter" if "filter" in f else "filters"].shape[0])

    def threads(block_rows=None, *extra):
        # a --config entry right after run_workflow's own (one --config option for all of them)
        config = [f"stream={{block_rows: {block_rows}}}"] if block_rows else []
        r = run_workflow(tmp, db, tmp / "res-threads", *config, "-n", *extra)
        assert r.returncode == 0, r.stdout[-3000:]
        out = {}
        for block in r.stdout.split("\n\n"):
            m = re.search(r"^(?:local)?rule (\w+):", block, re.M)
            if m and m.group(1) in ("analyse", "shard_sums"):
                t = re.search(r"^\s+threads: (\d+)", block, re.M)
                out.setdefault(m.group(1), set()).add(int(t.group(1)) if t else 1)
        return out

    third = -(-n // 3)
    assert threads() == {"analyse": {1}}
    assert threads(third) == {"analyse": {2}}
    assert threads(third, "--set-scatter", "shards=2") == {"shard_sums": {1}}  # 2 cores / 2 shards


def test_one_job_path_without_fine_histograms_or_quality(tmp_path):
    """Rule analyse with histogram.fine_bins: 0 and quality off: the drift tables equal the
    library's, and no cell histograms are made."""
    import re

    db = tmp_path / "db.h5"
    write_synth_db(db, layout="v1.0", seed=3, n_models=6)
    text = (ROOT / "config.yaml").read_text()
    assert "\n  fine_bins: 1024\n" in text
    text = text.replace("\n  fine_bins: 1024\n", "\n  fine_bins: 0\n")
    text, n = re.subn(r"(\nquality:\n(?:[ #].*\n)*?  enabled: )true", r"\1false", text, count=1)
    assert n == 1
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    res = tmp_path / "res"
    run = run_workflow(tmp_path, db, res, "--configfile", str(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "hist 1/1: " in (res / "logs/analyse.log").read_text()
    assert not (res / "stats/cell_hist.npy").exists()
    assert not [p for p in res.rglob("shards/**/*") if p.is_file()]  # the temporary part is gone
    a = pipeline.analyse(str(db), axes_from_config(DEFAULT_AXES))
    for axis in DEFAULT_AXES:
        d = pd.read_csv(res / f"drift/{axis}.tsv", sep="\t")
        np.testing.assert_allclose(d.iloc[:, 1:].to_numpy(), a.drift[axis].iloc[:, 1:].to_numpy(), rtol=1e-14)
    with np.load(res / "stats/sums.npz") as z:
        assert not any(k.startswith("quality_") for k in z.files)
