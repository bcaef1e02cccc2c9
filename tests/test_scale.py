"""Scale: the block kernels against plain numpy, results independent of shards/threads/blocks,
bounded gather memory, the direct reader against h5py."""

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from filterdb import kernels, pipeline, scaling
from filterdb.accumulate import PassSettings, run_shard
from filterdb.axes import axes_from_config
from filterdb.histogram import uniform_edges
from filterdb.stream import BlockReader, plan_blocks
from filterdb.synth import write_synth_db
from tests.conftest import DEFAULT_AXES, study_scale

pytestmark = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")
ROOT = Path(__file__).resolve().parents[1]


def layered(rng, sizes):
    x = np.concatenate([rng.standard_normal((n, 9)).astype(np.float32) * rng.uniform(0.01, 2) for n in sizes])
    e = np.cumsum(sizes)
    s = e - np.asarray(sizes)
    return x, s.astype(np.int64), e.astype(np.int64)


def reference_sums(sc, lanes=kernels.BATCH):
    """Plain numpy: row r of the layer goes to partial sum r % lanes (batch after batch), then the
    partial sums are added in lane order: the kernel's documented summation order."""
    l1 = np.zeros((lanes, 9))
    l2 = np.zeros((lanes, 9, 9))
    for b0 in range(0, sc.shape[0], lanes):
        rows = sc[b0 : b0 + lanes]
        l1[: len(rows)] += rows
        l2[: len(rows)] += rows[:, :, None] * rows[:, None, :]
    s1, s2 = np.zeros(9), np.zeros((9, 9))
    for r in range(lanes):
        s1 += l1[r]
        s2 += l2[r]
    return s1, s2


def test_sums_block_equals_numpy():
    rng = np.random.default_rng(0)
    x, ls, le = layered(rng, [1, 7, 64, 65, 300, 0, 129])
    x[3] = 0.0  # an all-zero filter: divided by 1
    k = ls.size
    n, s1, s2 = np.zeros(k, np.int64), np.zeros((k, 9)), np.zeros((k, 9, 9))
    z = (np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 9, 9)), np.zeros((0, 9, 9)))
    kernels.sums_block(
        x, ls, le, np.arange(k), False, 0, n, s1, s2, np.zeros(k, np.int64), np.zeros(k, np.int64), False, 0.01, *z,
        np.zeros(0), np.zeros((0, 0), np.int64),
    )  # fmt: skip
    for j in range(k):
        sc = scaling.scale_filters(x[ls[j] : le[j]])
        r1, r2 = reference_sums(sc)
        assert n[j] == le[j] - ls[j]
        assert np.array_equal(s1[j], r1)
        assert np.array_equal(s2[j], r2)
        np.testing.assert_allclose(s2[j], sc.T @ sc, rtol=1e-12, atol=1e-12)


def test_range_and_hist_blocks_bit_identical_to_numpy():
    from fast_histogram import histogram2d

    rng = np.random.default_rng(1)
    x, ls, le = layered(rng, [5, 64, 200, 1000, 3])
    k = ls.size
    mean = rng.normal(0, 0.05, 9)
    comps = np.linalg.qr(rng.standard_normal((9, 9)))[0].T
    cmin, cmax = np.full((k, 9), np.inf), np.full((k, 9), -np.inf)
    kernels.range_block(x, ls, le, np.arange(k), False, 0, mean, comps, cmin, cmax)
    coef = [scaling.coefficients(scaling.scale_filters(x[a:b]), mean, comps) for a, b in zip(ls, le)]
    for j in range(k):
        assert np.array_equal(cmin[j], coef[j].min(0)) and np.array_equal(cmax[j], coef[j].max(0))
    lo, hi = float(cmin.min()), float(cmax.max())
    edges = uniform_edges(lo, hi, 70)
    fedges = np.linspace(lo, hi, 1025)
    cell = np.array([0, 1, 0, 2, -1], np.int64)
    counts = np.zeros((k, 9, 70), np.uint32)
    fcounts = np.zeros((3, 9, 1024), np.uint32)
    pairs = np.array([[0, 1], [2, 5]], np.int64)
    dens = np.zeros((2, 64, 64), np.uint32)
    xedges = uniform_edges(-0.5, 0.7, 70)  # a fixed range that cuts off values on both sides
    xcounts, xout = np.zeros((k, 9, 70), np.uint32), np.zeros((k, 9), np.int64)
    kernels.hist_block(
        x, ls, le, np.arange(k), False, 0, mean, comps, edges, counts, cell, fedges, fcounts, pairs, -1.5, 1.5, 64,
        dens, xedges, xcounts, xout,
    )  # fmt: skip
    ref_f = np.zeros((3, 9, 1024), np.int64)
    ref_d = np.zeros((2, 64, 64))
    for j in range(k):
        for i in range(9):
            assert np.array_equal(counts[j, i], np.histogram(coef[j][:, i], bins=70, range=(lo, hi))[0])
            assert np.array_equal(xcounts[j, i], np.histogram(coef[j][:, i], bins=70, range=(-0.5, 0.7))[0])
            assert xout[j, i] == np.count_nonzero((coef[j][:, i] < -0.5) | (coef[j][:, i] > 0.7))
            if cell[j] >= 0:
                ref_f[cell[j], i] += np.histogram(coef[j][:, i], bins=fedges)[0]
        for q, (a, b) in enumerate(pairs):
            ref_d[q] += histogram2d(coef[j][:, a], coef[j][:, b], bins=64, range=[(-1.5, 1.5), (-1.5, 1.5)])
    assert np.array_equal(fcounts, ref_f)
    assert np.array_equal(dens, ref_d)


def test_hist_block_values_on_bin_edges():
    """Coefficients exactly on interior edges and on both ends fall where np.histogram puts them."""
    edges = uniform_edges(-1.0, 1.0, 20)
    vals = np.concatenate([edges, edges[1:-1] + 1e-17, np.nextafter(edges[1:], -2), [-1.0, 1.0, 0.0]])
    x = np.zeros((vals.size, 9), np.float32)
    x[:, 0] = vals.astype(np.float32)
    x[:, 1] = 1.0  # peak 1: scaled values are the stored values
    x[:, 0] = np.where(np.abs(x[:, 0]) > 1, 1.0, x[:, 0])
    ls, le = np.array([0], np.int64), np.array([vals.size], np.int64)
    counts = np.zeros((1, 9, 20), np.uint32)
    xcounts, xout = np.zeros((1, 9, 20), np.uint32), np.zeros((1, 9), np.int64)
    kernels.hist_block(
        x,
        ls,
        le,
        np.zeros(1, np.int64),
        False,
        0,
        np.zeros(9),
        np.eye(9),
        edges,
        counts,
        np.array([-1], np.int64),
        np.zeros(1),
        np.zeros((0, 9, 0), np.uint32),
        np.zeros((0, 2), np.int64),
        -1.0,
        1.0,
        4,
        np.zeros((0, 4, 4), np.uint32),
        edges,  # the same edges as a fixed range: the same counts, nothing outside
        xcounts,
        xout,
    )
    sc = scaling.scale_filters(x)
    for i in range(9):
        assert np.array_equal(counts[0, i], np.histogram(sc[:, i], bins=edges)[0])
    assert np.array_equal(xcounts, counts) and not xout.any()


@pytest.fixture(scope="module")
def many_layers_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("scale") / "db.h5"
    layers = write_synth_db(path, seed=5, n_models=30, layers_per_model=(2, 6))
    return str(path), layers


def test_identical_for_any_shards_threads_blocks(many_layers_db):
    path, layers = many_layers_db
    axes = axes_from_config(DEFAULT_AXES)
    kw = dict(
        quality={"eps": 0.01, "eps_grid": [0.001, 0.002, 0.005, 0.02, 0.05, 0.1, 0.3]},
        fine_bins=256,
        density={"pairs": [[0, 1]], "bins": 64, "extent": (-3.3, 3.3)},
        fixed_range=[-1.0, 0.8],  # cuts off some coefficients: fixed_outside is exercised too
    )
    ref = pipeline.analyse(path, axes, shards=1, **kw)
    assert ref.sums["quality_n_sparse_grid"].shape == (len(layers), 8) and ref.sums["quality_n_sparse_grid"].any()
    assert ref.hist["fixed_counts"].any() and ref.hist["fixed_outside"].any()
    assert len(layers) < 256  # more shards than layers: empty shards
    runs = [
        dict(shards=4),
        dict(shards=64),
        dict(shards=256),
        dict(shards=3, threads=2, block_rows=50),
        dict(shards=1, threads=2),
    ]
    for r in runs:
        a = pipeline.analyse(path, axes, **r, **kw)
        for name in ("sums", "hist"):
            ra, rb = getattr(ref, name), getattr(a, name)
            assert sorted(ra) == sorted(rb), r
            for key in ra:
                assert np.array_equal(ra[key], rb[key], equal_nan=True), (r, name, key)
        assert a.range == ref.range
        for ax in axes:
            assert ref.drift[ax.name].equals(a.drift[ax.name]), (r, ax.name)


def test_float16_precision_equals_in_memory(many_layers_db):
    """precision: float16 = the study's notebook: astype(np.float16) on load, the peak scaling in
    float16 arithmetic, then float64 (tests/test_float16.py has the edge cases)."""
    from tests.conftest import load_all

    path, layers = many_layers_db
    a = pipeline.analyse(path, axes_from_config(DEFAULT_AXES), precision="float16")
    x, _ = load_all(path)
    d16 = x.astype(np.float16)
    peak = np.abs(d16).max(axis=1)
    peak[peak == 0] = 1
    sc = (d16 / peak[:, None]).astype(np.float64)
    mean = sc.mean(0)
    cov = (sc - mean).T @ (sc - mean) / (sc.shape[0] - 1)
    np.testing.assert_allclose(a.pca.mean, mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.pca.covariance, cov, rtol=0, atol=1e-12)


def test_nonfinite_error_names_row_and_drop_counts(tmp_path):
    from filterdb.accumulate import NonFiniteError

    path = tmp_path / "nan.h5"
    write_synth_db(path, seed=1, n_models=3)
    with h5py.File(path, "r+") as f:
        f["filters"][17, 4] = np.nan
        f["filters"][40, 0] = np.inf
    axes = axes_from_config({"task": DEFAULT_AXES["task"]})
    with pytest.raises(NonFiniteError, match=r"filter row 17 \(model synthetic_000"):
        pipeline.analyse(str(path), axes)
    a = pipeline.analyse(str(path), axes, nonfinite="drop", quality={"eps": 0.01})
    assert int(a.sums["nonfinite"].sum()) == 2
    with h5py.File(path, "r") as f:
        x = f["filters"][...].reshape(-1, 9)
    keep = np.isfinite(x).all(axis=1)
    sc = study_scale(x[keep])  # the default precision
    assert int(a.sums["n"].sum()) == keep.sum()
    np.testing.assert_allclose(a.sums["sum"].sum(0), sc.sum(0), rtol=1e-12)
    assert int(a.hist["counts"].sum()) == 9 * keep.sum()


def test_direct_reader_equals_h5py(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.standard_normal((10_000, 9)).astype(np.float32)
    cases = {
        "contig": dict(),
        "chunked": dict(chunks=(999, 9)),
        "gzip": dict(chunks=(512, 9), compression="gzip"),
        "3x3": dict(chunks=(700, 3, 3)),
    }
    for name, kw in cases.items():
        p = tmp_path / f"{name}.h5"
        with h5py.File(p, "w") as f:
            shape = (10_000, 3, 3) if name == "3x3" else (10_000, 9)
            f.create_dataset("filters", data=data.reshape(shape), **kw)
        with BlockReader(str(p), "filters") as rd:
            assert rd.mode == {"contig": "contiguous", "chunked": "chunked", "gzip": "h5py", "3x3": "chunked"}[name]
            spans = [(0, 1), (1, 998), (998, 2001), (2001, 9999), (9999, 10_000)]
            got = np.concatenate([x.copy() for _, x in rd.blocks(spans)])
            assert np.array_equal(got, data), name


def test_plan_blocks_keeps_layers_whole():
    s = np.array([0, 10, 15, 100, 101])
    e = np.array([10, 15, 100, 101, 400])
    blocks = plan_blocks(s, e, block_rows=20)
    assert blocks == [(0, 15, 0, 2), (15, 100, 2, 3), (100, 101, 3, 4), (101, 400, 4, 5)]


def test_plan_blocks_around_file_breaks():
    """With the rows where the file's bytes jump, no block reaches across one, except a layer that
    does, which is then alone; every layer is in exactly one block, in order."""
    rng = np.random.default_rng(4)
    n = rng.integers(1, 40, 300)
    e = np.cumsum(n)
    s = e - n
    breaks = sorted(rng.choice(np.arange(1, int(e[-1])), 25, replace=False).tolist())
    for rows in (10, 64, 1000):
        blocks = plan_blocks(s, e, block_rows=rows, breaks=breaks)
        assert [b[2] for b in blocks] == [0] + [b[3] for b in blocks[:-1]] and blocks[-1][3] == len(s)
        for a, b, first, end in blocks:
            assert (a, b) == (s[first], e[end - 1])
            inside = [r for r in breaks if a < r < b]
            assert not inside or end - first == 1, (a, b, first, end)
            assert b - a <= rows or end - first == 1
    assert plan_blocks(s, e, 64, breaks=[]) == plan_blocks(s, e, 64)


def test_mapped_blocks_equal_h5py(tmp_path, monkeypatch):
    """Blocks are read-only views of the mapped file when their rows are one run of bytes (a
    contiguous dataset; chunks stored in order), and copied otherwise (chunks written out of
    order here: the reader reports those rows as breaks); both equal h5py. FILTERDB_READ=pread
    turns mapping off; the passes give the same arrays either way."""
    x = np.random.default_rng(0).standard_normal((20_000, 9)).astype(np.float32)
    path = tmp_path / "rows.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("contiguous", data=x)
        ds = f.create_dataset("shuffled", shape=x.shape, dtype="f4", chunks=(1000, 9))
        for k in [3, 4, 5, 0, 1, 2, 19, 18] + list(range(6, 18)):  # chunks 3-5, 0-2 and 6-17 in order
            ds[k * 1000 : (k + 1) * 1000] = x[k * 1000 : (k + 1) * 1000]
    spans = [(0, 5), (5, 2999), (2999, 3001), (3001, 6000), (6000, 17_500), (17_500, 20_000)]
    for key in ("contiguous", "shuffled"):
        with BlockReader(str(path), key) as rd:
            breaks = rd.breaks()
            if key == "shuffled":
                assert {3000, 6000, 18_000, 19_000} <= set(breaks) and 1000 not in breaks and 7000 not in breaks
            else:
                assert breaks == []
            got = [(ab, v.copy(), v.flags.writeable) for ab, v in rd.blocks(spans)]
            assert rd.mode.endswith("+mmap")
        for (a, b), v, writeable in got:
            assert np.array_equal(v, x[a:b]), (key, a, b)
            crosses = key == "shuffled" and any(a < r < b for r in breaks)
            assert writeable == crosses, (key, a, b)  # mapped unless the rows cross a break
    monkeypatch.setenv("FILTERDB_READ", "pread")
    with BlockReader(str(path), "shuffled") as rd:
        assert rd.breaks() == []
        assert all(np.array_equal(v, x[a:b]) for (a, b), v in rd.blocks(spans))
        assert rd.mode == "chunked"


def test_passes_mapped_or_copied_give_the_same_arrays(many_layers_db, monkeypatch):
    path, _ = many_layers_db
    plan, _ = pipeline.make_plan(pipeline.open_db(path).layers, 10)
    st = PassSettings(quality_eps=0.01, fine_bins=32, progress=False, threads=2, block_rows=300)
    out = []
    for how in ("", "pread"):
        monkeypatch.setenv("FILTERDB_READ", how)
        s = run_shard(path, "filters", plan, "sums", settings=st)
        h = run_shard(path, "filters", plan, "hist", settings=st, basis=(np.zeros(9), np.eye(9)),
                      edges=uniform_edges(-1.0, 1.0, 70))  # fmt: skip
        out.append({**s, **{f"h_{k}": v for k, v in h.items()}})
    assert sorted(out[0]) == sorted(out[1])
    for k in out[0]:
        assert np.array_equal(out[0][k], out[1][k], equal_nan=True), k


GATHER_SCRIPT = """
import json, sys
import numpy as np
from filterdb.accumulate import gather_parts
parts, n_layers, n_cells, out = json.loads(sys.argv[1])
res = gather_parts(parts, n_layers, n_cells, out)
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0]  # this process's peak (not the parent's)
print(json.dumps({"rss_mb": int(hwm.split()[1]) / 1024,
                  "counts": int(res["counts"].sum())}))
"""


def test_gather_memory_does_not_grow_with_shards(tmp_path):
    """A gather reads parts one at a time: its peak memory is the same for 4 and 128 shards and
    stays near the size of the gathered arrays (the old gather held every part, each with every
    cell's fine histograms: ~35 MB per part here)."""
    path = tmp_path / "db.h5"
    write_synth_db(path, seed=7, n_models=240, layers_per_model=(4, 8), channels=(4, 8))
    layers = pipeline.open_db(str(path)).layers
    plan, cells = pipeline.make_plan(layers, 10)
    a = pipeline.analyse(str(path), axes_from_config({"task": DEFAULT_AXES["task"]}), fine_bins=1024)
    edges = a.hist["edges"]
    st = PassSettings(fine_bins=1024, progress=False)
    cell_mb = plan.n_cells * 9 * 1024 * 4 / 2**20
    assert cell_mb > 25
    peaks = {}
    for shards in (4, 128):
        d = tmp_path / f"s{shards}"
        d.mkdir()
        files = []
        for k in range(shards):
            part = run_shard(
                str(path),
                "filters",
                plan,
                "hist",
                shard=k,
                shards=shards,
                settings=st,
                basis=(a.pca.mean, a.pca.components),
                edges=edges,
            )
            f = d / f"{k}.npz"
            np.savez(f, **part)
            files.append(str(f))
        arg = json.dumps([files, plan.n_layers, plan.n_cells, str(d / "cells.npy")])
        res = subprocess.run(
            [sys.executable, "-c", GATHER_SCRIPT, arg], capture_output=True, text=True, cwd=ROOT, check=True
        )
        out = json.loads(res.stdout.strip().splitlines()[-1])
        assert out["counts"] == 9 * int(layers["n_filters"].sum())
        gathered = np.load(d / "cells.npy")
        np.testing.assert_array_equal(gathered, a.hist["cell_counts"])
        peaks[shards] = out["rss_mb"]
    assert abs(peaks[128] - peaks[4]) < 25, peaks
    assert peaks[128] < 150 + 2 * cell_mb, peaks


def test_cell_histograms_spilled_and_gathered_in_windows(many_layers_db, tmp_path):
    """Shard jobs write closed cells to a file as they go; the gather writes the .npy a window of
    cells at a time: the same array as the in-memory run, for any shards and window size."""
    from filterdb.accumulate import gather_parts
    from filterdb.results import open_cell_hist

    path, _ = many_layers_db
    layers = pipeline.open_db(path).layers
    plan, _ = pipeline.make_plan(layers, 10)
    a = pipeline.analyse(path, axes_from_config({"task": DEFAULT_AXES["task"]}), fine_bins=128)
    st = PassSettings(fine_bins=128, progress=False, block_rows=40)
    basis = (a.pca.mean, a.pca.components)
    for shards, window in ((1, 5), (7, 3), (64, 1000)):
        parts, files = [], []
        for k in range(shards):
            sink = tmp_path / f"{shards}-{k}.cells"
            part = run_shard(
                path,
                "filters",
                plan,
                "hist",
                shard=k,
                shards=shards,
                settings=st,
                basis=basis,
                edges=a.hist["edges"],
                cell_sink=str(sink),
            )
            assert "part__cell_counts" not in part
            f = tmp_path / f"{shards}-{k}.npz"
            np.savez(f, **part)
            parts.append(str(f))
            files.append(str(sink))
        out = tmp_path / f"cells-{shards}.npy"
        g = gather_parts(parts, plan.n_layers, plan.n_cells, str(out), cell_files=files, window_cells=window)
        assert np.array_equal(np.load(out), a.hist["cell_counts"])
        assert np.array_equal(g["counts"], a.hist["counts"])
        rd = open_cell_hist(out)
        assert rd.shape == a.hist["cell_counts"].shape
        for c in (0, plan.n_cells // 2, plan.n_cells - 1):
            assert np.array_equal(rd[c], a.hist["cell_counts"][c])


def test_orthogonality_can_be_switched_off(many_layers_db):
    path, _ = many_layers_db
    layers = pipeline.open_db(path).layers
    plan, _ = pipeline.make_plan(layers, 10)
    on = run_shard(path, "filters", plan, "sums", settings=PassSettings(quality_eps=0.01, progress=False))
    off = run_shard(
        path, "filters", plan, "sums", settings=PassSettings(quality_eps=0.01, orthogonality=False, progress=False)
    )
    assert np.isfinite(on["quality_orthogonality"]).any()
    assert np.isnan(off["quality_orthogonality"]).all()
    for k in on:
        if k != "quality_orthogonality":
            assert np.array_equal(on[k], off[k], equal_nan=True), k


def test_provenance_record(tmp_path):
    """provenance.json fields against plain computations on a DB the test writes."""
    import hashlib
    import os

    import pandas as pd

    from filterdb.provenance import provenance, sample_rows

    path = tmp_path / "db.h5"
    write_synth_db(path, seed=2, n_models=4)
    rec = provenance(str(path), {"histogram": {"bins": 70}}, ROOT)
    assert rec["db"]["size_bytes"] == os.path.getsize(path)
    with h5py.File(path, "r") as f:
        x = f["filters"][...].reshape(-1, 9).astype(np.float32)
    h = hashlib.sha256()
    for a, b in sample_rows(x.shape[0]):
        h.update(x[a:b].tobytes())
    assert rec["db"]["filters_sample_sha256"] == h.hexdigest()
    meta = pd.read_hdf(path, "meta")
    ref = hashlib.sha256(pd.util.hash_pandas_object(meta.astype(str), index=True).to_numpy().tobytes()).hexdigest()
    assert rec["db"]["meta_sha256"] == ref
    assert rec["config"] == {"histogram": {"bins": 70}}
    assert rec["versions"]["numpy"] == np.__version__
    assert "largest magnitude is positive" in rec["sign_convention"]
    # a changed meta table changes the meta hash
    meta.iloc[0, meta.columns.get_loc("Task")] = "changed"
    meta.to_hdf(path, key="meta", mode="a")
    assert provenance(str(path), {}, None)["db"]["meta_sha256"] != ref
    assert sample_rows(10**6, 4, 10) == [(0, 10), (333330, 333340), (666660, 666670), (999990, 1000000)]


def test_lanes_split_cells_and_the_gather_adds_them(many_layers_db, tmp_path):
    """threads > 1: each lane (thread) streams its own layers; a cell whose layers lie in two lanes
    is closed by both (the part holds its id twice) and the gather adds the records, from memory
    and from the job's record file: the same arrays as one thread."""
    from filterdb.accumulate import gather_parts

    path, _ = many_layers_db
    layers = pipeline.open_db(path).layers
    plan, _ = pipeline.make_plan(layers, 10)
    a = pipeline.analyse(path, axes_from_config({"task": DEFAULT_AXES["task"]}), fine_bins=64)
    basis = (a.pca.mean, a.pca.components)
    repeated = 0
    for threads in (2, 3, 7):
        st = PassSettings(fine_bins=64, progress=False, block_rows=40, threads=threads)
        kw = dict(settings=st, basis=basis, edges=a.hist["edges"])
        mem = run_shard(path, "filters", plan, "hist", **kw)
        sink = tmp_path / f"{threads}.cells"
        filed = run_shard(path, "filters", plan, "hist", cell_sink=str(sink), **kw)
        ids = mem["part__cell"]
        repeated += ids.size - np.unique(ids).size
        assert sorted(filed["part__cell"]) == sorted(ids)
        g = gather_parts([mem], plan.n_layers, plan.n_cells)
        assert np.array_equal(g["cell_counts"], a.hist["cell_counts"])
        assert np.array_equal(g["counts"], a.hist["counts"])
        f = tmp_path / f"{threads}.npz"
        np.savez(f, **filed)
        out = tmp_path / f"{threads}.npy"
        gather_parts([str(f)], plan.n_layers, plan.n_cells, str(out), cell_files=[str(sink)], window_cells=4)
        assert np.array_equal(np.load(out), a.hist["cell_counts"])
    assert repeated > 0  # some cell was split between lanes


def test_lanes_give_the_same_sums_and_ranges(many_layers_db):
    """Sums (with quality and orthogonality) and ranges with 1, 2, 5 and 300 lanes (more lanes than
    layers): bit-identical arrays."""
    from filterdb.accumulate import gather_parts

    path, _ = many_layers_db
    plan, _ = pipeline.make_plan(pipeline.open_db(path).layers, 10)
    ref = {}
    for threads in (1, 2, 5, 300):
        st = PassSettings(quality_eps=0.01, progress=False, block_rows=40, threads=threads)
        s = run_shard(path, "filters", plan, "sums", settings=st)
        p = pipeline.global_pca(gather_parts([s], plan.n_layers))
        r = run_shard(path, "filters", plan, "range", settings=st, basis=(p.mean, p.components))
        got = {**{f"s.{k}": v for k, v in s.items()}, **{f"r.{k}": v for k, v in r.items()}}
        ref = ref or got
        assert sorted(got) == sorted(ref)
        for k in ref:
            assert np.array_equal(got[k], ref[k], equal_nan=True), (threads, k)


def test_reads_past_the_page_cache_equal_h5py(tmp_path):
    """bypass_cache (O_DIRECT, into an aligned buffer): the same rows as h5py for contiguous and
    chunked datasets, at unaligned offsets and up to the end of the file; the passes give the
    same arrays as buffered reads."""
    x = np.random.default_rng(0).standard_normal((100_003, 9)).astype(np.float32)
    path = tmp_path / "rows.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("chunked", data=x, chunks=(1000, 9))
        f.create_dataset("contiguous", data=x)
    spans = [(0, 5), (3, 100_003), (999, 1001), (50_000, 100_003), (100_002, 100_003), (7, 7)]
    for key in ("chunked", "contiguous"):
        with BlockReader(str(path), key, bypass_cache=True) as rd:
            assert rd.mode.startswith(key)
            odirect = rd.mode.endswith("+O_DIRECT")
            for a, b in spans:
                assert np.array_equal(rd.read(a, b), x[a:b]), (key, a, b)
            got = list(rd.blocks([(0, 333), (333, 70_000), (70_000, 100_003)]))
            assert all(np.array_equal(v, x[a:b]) for (a, b), v in got)
    if hasattr(__import__("os"), "O_DIRECT"):
        assert odirect  # ext4/xfs here; a file system refusing O_DIRECT would read buffered


def test_passes_past_the_page_cache_give_the_same_arrays(many_layers_db, capsys):
    from filterdb.accumulate import gather_parts

    path, _ = many_layers_db
    plan, _ = pipeline.make_plan(pipeline.open_db(path).layers, 10)
    out = []
    for bypass in (False, True):
        st = PassSettings(quality_eps=0.01, fine_bins=32, progress=False, threads=2, bypass_cache=bypass)
        s = gather_parts([run_shard(path, "filters", plan, "sums", settings=st)], plan.n_layers)
        p = pipeline.global_pca(s)
        edges = uniform_edges(-4.0, 4.0, 70)
        h = run_shard(path, "filters", plan, "hist", settings=st, basis=(p.mean, p.components), edges=edges)
        out.append((s, h))
        assert ("+O_DIRECT" in capsys.readouterr().err) == bypass
    for (s0, h0), (s1, h1) in [out]:
        for a, b in ((s0, s1), (h0, h1)):
            assert sorted(a) == sorted(b)
            for k in a:
                assert np.array_equal(a[k], b[k], equal_nan=True), k


def test_cell_records_survive_short_writes(many_layers_db, tmp_path, monkeypatch):
    """Closed cells are written from the pool with (p)writev; a write that comes back short (the
    system may write fewer bytes than asked) is continued where it stopped, for the in-place
    .npy (one-job path) and the records file of a shard (per-step path)."""
    import os

    from filterdb.accumulate import CellHistFile, gather_parts

    path, _ = many_layers_db
    plan, _ = pipeline.make_plan(pipeline.open_db(path).layers, 10)
    a = pipeline.analyse(path, axes_from_config({"task": DEFAULT_AXES["task"]}), fine_bins=64)
    real_pwritev, real_writev = os.pwritev, os.writev

    def short(fn):
        def call(fd, bufs, *off):
            return fn(fd, [bytes(memoryview(bufs[0]).cast("B")[:1000])], *off)  # at most 1000 bytes

        return call

    monkeypatch.setattr(os, "pwritev", short(real_pwritev))
    monkeypatch.setattr(os, "writev", short(real_writev))
    st = PassSettings(fine_bins=64, progress=False, block_rows=40, threads=2)
    kw = dict(settings=st, basis=(a.pca.mean, a.pca.components), edges=a.hist["edges"])
    sink = CellHistFile(tmp_path / "cells.npy", plan.n_cells, 64)
    run_shard(path, "filters", plan, "hist", cell_sink=sink, **kw)
    sink.close()
    assert np.array_equal(np.load(tmp_path / "cells.npy"), a.hist["cell_counts"])
    part = run_shard(path, "filters", plan, "hist", cell_sink=str(tmp_path / "records.bin"), **kw)
    got = gather_parts([part], plan.n_layers, plan.n_cells, cell_files=[str(tmp_path / "records.bin")])
    assert np.array_equal(got["cell_counts"], a.hist["cell_counts"])


def test_cells_written_in_place_by_lanes(many_layers_db, tmp_path):
    """CellHistFile (the one-job path): each lane writes its closed cells straight into the .npy,
    a cell closed by two lanes is added there: the array equals the one-thread gather."""
    from filterdb.accumulate import CellHistFile

    path, _ = many_layers_db
    plan, _ = pipeline.make_plan(pipeline.open_db(path).layers, 10)
    a = pipeline.analyse(path, axes_from_config({"task": DEFAULT_AXES["task"]}), fine_bins=64)
    for threads in (1, 3, 7):
        st = PassSettings(fine_bins=64, progress=False, block_rows=40, threads=threads)
        out = tmp_path / f"{threads}.npy"
        sink = CellHistFile(out, plan.n_cells, 64)
        part = run_shard(
            path,
            "filters",
            plan,
            "hist",
            settings=st,
            basis=(a.pca.mean, a.pca.components),
            edges=a.hist["edges"],
            cell_sink=sink,
        )
        sink.close()
        ids = part["part__cell"]
        assert threads == 1 or ids.size > np.unique(ids).size  # some cell closed by two lanes
        assert np.array_equal(np.load(out), a.hist["cell_counts"])
