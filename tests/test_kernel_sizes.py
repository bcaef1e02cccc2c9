"""Filters of other odd kernel sizes (5x5, 7x7): the shape named once (filterdb.shape), the DB
reader, and the passes, PCA, histograms, quality and drift on k x k DBs against plain numpy
computations of the same math (docs/method.md §13)."""

import h5py
import numpy as np
import pandas as pd
import pytest

from filterdb import divergence, quality
from filterdb.accumulate import PassSettings, coefficient_range, gather_parts, run_shard
from filterdb.db import open_db
from filterdb.histogram import uniform_edges
from filterdb.pca import global_pca
from filterdb.results import Plan
from filterdb.shape import STUDY, FilterShape
from filterdb.synth import synth_filters, write_synth_db


def test_shape_names_and_parsing():
    s = FilterShape.parse("5x5")
    assert (s.side, s.size, s.label) == (5, 25, "5x5")
    assert s.pixels == [f"w{i}" for i in range(25)] and s.components[-1] == "c24"
    assert FilterShape.parse(" 7 X 7 ") == FilterShape(7) and FilterShape.of_width(49) == FilterShape(7)
    assert STUDY == FilterShape.of_width(9) == FilterShape.of_dataset((10, 3, 3)) == FilterShape.of_dataset((4, 9))
    assert FilterShape.of_dataset((0, 5, 5)).size == 25 and s.row_bytes(8) == 200
    for bad in ["1x1", "4x4", "3x5", "5", "x", "0x0", "9x9x9"]:
        with pytest.raises(ValueError, match="kernel size"):
            FilterShape.parse(bad)
    for bad in [1, 4, 16, 10, 0]:
        with pytest.raises(ValueError, match="values per filter"):
            FilterShape.of_width(bad)
    for bad in [(3, 4, 4), (3, 1, 1), (3, 3, 5), (3, 16), (3,), (3, 3, 3, 3)]:
        with pytest.raises(ValueError, match="expected"):
            FilterShape.of_dataset(bad)
    for bad in [2, 1, True, 3.0]:
        with pytest.raises(ValueError):
            FilterShape(bad)


@pytest.mark.parametrize("k, stored", [(5, "kk"), (5, "flat"), (7, "kk")])
def test_open_db_reads_the_kernel_size(tmp_path, k, stored):
    path = tmp_path / "db.h5"
    layers = write_synth_db(path, shape3x3=stored == "kk", kernel=FilterShape(k), n_models=4)
    db = open_db(path)
    assert db.shape == FilterShape(k) and db.width == k * k and db.n_rows == int(layers["row_end"].max())
    with h5py.File(path) as f:
        assert f["filters"].shape == ((db.n_rows, k, k) if stored == "kk" else (db.n_rows, k * k))


def test_a_plan_for_another_width_is_refused(tmp_path):
    path = tmp_path / "db.h5"
    write_synth_db(path, kernel=FilterShape(5), n_models=3)
    db = open_db(path)
    plan = _plan(db, width=9)
    with pytest.raises(ValueError, match="holds 5x5 filters"):
        run_shard(str(path), db.key, plan, "sums", settings=_settings("float64"))


def _plan(db, width=None) -> Plan:
    lay = db.layers
    return Plan(
        lay["row_start"].to_numpy(np.int64),
        lay["row_end"].to_numpy(np.int64),
        np.full(len(lay), -1, np.int64),
        lay["out_channels"].to_numpy(np.float64) if "out_channels" in lay else np.full(len(lay), np.nan),
        0,
        db.key,
        db.width if width is None else width,
    )


def _settings(precision, **kw):
    base = dict(
        block_rows=1 << 20,
        threads=1,
        precision=precision,
        nonfinite="error",
        quality_eps=0.01,
        quality_eps_grid=(),
        orthogonality=True,
        fine_bins=0,
        density_pairs=[],
        density_bins=64,
        density_extent=(-3.3, 3.3),
        fixed_range=None,
        progress=False,
        bypass_cache=False,
    )
    base.update(kw)
    return PassSettings(**base)


def _run(path, db, plan, settings, shards, bins=40):
    def run(kind, **kw):
        parts = [
            run_shard(str(path), db.key, plan, kind, shard=j, shards=shards, settings=settings, **kw)
            for j in range(shards)
        ]
        return gather_parts(parts, plan.n_layers)

    sums = run("sums")
    p = global_pca(sums)
    rng = run("range", basis=(p.mean, p.components))
    edges = uniform_edges(*coefficient_range(rng["cmin"], rng["cmax"]), bins)
    hist = run("hist", basis=(p.mean, p.components), edges=edges)
    return sums, p, edges, hist


@pytest.mark.parametrize("k", [5, 7])
def test_passes_on_kxk_filters_match_plain_numpy(tmp_path, k):
    """float64 arithmetic: the passes' PCA, coefficient histograms, per-layer quality and the drift of
    an axis equal plain numpy computations on the filters read back with h5py; 1 and 3 shards give
    the same bytes."""
    shape = FilterShape(k)
    path = tmp_path / "db.h5"
    layers = write_synth_db(path, shape3x3=True, kernel=shape, n_models=6, seed=3)
    db = open_db(path)
    plan = _plan(db)
    d = shape.size
    with h5py.File(path) as f:
        x = np.asarray(f["filters"], np.float64).reshape(-1, d)
    # rows of each layer, in the layer table's order
    w = [x[a:b] for a, b in zip(layers["row_start"], layers["row_end"])]
    allw = np.concatenate(w)
    peak = np.abs(allw).max(axis=1, keepdims=True)
    scaled = allw / np.where(peak > 0, peak, 1.0)

    s = _settings("float64")
    sums, p, edges, hist = _run(path, db, plan, s, shards=1)
    sums3, p3, edges3, hist3 = _run(path, db, plan, s, shards=3)
    for name in ("n", "sum", "outer", "quality_variance_entropy", "quality_orthogonality"):
        assert np.array_equal(sums[name], sums3[name], equal_nan=True), name
    assert np.array_equal(p.components, p3.components) and np.array_equal(hist["counts"], hist3["counts"])

    # PCA in d dimensions: numpy's covariance of the peak-scaled filters, eigenvectors up to sign
    cov = np.cov(scaled, rowvar=False, ddof=1)
    np.testing.assert_allclose(p.covariance, cov, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p.mean, scaled.mean(axis=0), rtol=0, atol=1e-13)
    ev, vec = np.linalg.eigh(cov)
    ev, vec = ev[::-1], vec[:, ::-1]
    np.testing.assert_allclose(p.explained_variance, np.clip(ev, 0, None), rtol=1e-10, atol=1e-14)
    assert p.components.shape == (d, d)
    lead = np.abs(vec.T[:3])  # well separated leading components: equal up to sign
    np.testing.assert_allclose(np.abs(p.components[:3]), lead, atol=1e-8)
    for c in p.components:  # the sign convention: the largest |loading| is positive
        assert c[np.argmax(np.abs(c))] > 0

    # coefficient histograms per layer: numpy's histogram of the projected filters
    coef = (scaled - p.mean) @ p.components.T
    assert np.isclose(edges[0], coef.min(), rtol=0, atol=1e-12) and np.isclose(edges[-1], coef.max(), atol=1e-12)
    starts = np.concatenate([[0], np.cumsum([len(v) for v in w])])
    assert hist["counts"].shape == (len(w), d, len(edges) - 1)
    for j in range(len(w)):
        c = coef[starts[j] : starts[j + 1]]
        want = np.stack([np.histogram(c[:, i], bins=edges)[0] for i in range(d)])
        # a coefficient within rounding of an edge may fall in the neighbouring bin (BLAS vs. the
        # passes' fixed order of additions): compare the totals and allow single moves
        assert int(hist["counts"][j].sum()) == want.sum() == c.size
        assert np.abs(hist["counts"][j].astype(np.int64) - want).sum() <= 2 * max(1, c.size // 10_000)

    # quality per layer: the numpy reference implementation
    for j, wj in enumerate(w):
        ref = quality.layer_quality(wj, layers["out_channels"].iloc[j] if "out_channels" in layers else None, 0.01)
        for f in ("n_filters", "n_sparse", "sparsity", "variance_entropy", "variance_entropy_clean", "absmax"):
            np.testing.assert_allclose(sums[f"quality_{f}"][j], ref[f], rtol=1e-9, atol=1e-12, err_msg=f)
        assert np.isnan(sums["quality_variance_entropy_norm"][j]) and np.isnan(ref["variance_entropy_norm"])
        assert sums["quality_notes"][j] & quality.NOTE_NO_FIT and ref["notes"] & quality.NOTE_NO_FIT
        assert ref["variance_entropy"] <= np.log10(d) + 1e-12

    # drift between the visual categories: D = sum_i evr_i KL_i over the d coefficients, by hand
    labels = layers["Visual Category"].to_numpy()
    names = sorted(set(labels))
    gc = divergence.group_counts(hist["counts"], pd.Series(labels), names)
    D = divergence.drift_matrix(gc, p.explained_variance_ratio, divergence.EPS, "density", edges)
    widths = np.diff(edges)
    for a in range(len(names)):
        for b in range(len(names)):
            pa, pb = (gc[g].astype(np.float64) / widths / gc[g].sum(axis=1, keepdims=True) for g in (a, b))
            pa[pa == 0] = divergence.EPS  # the study's floor of empty bins, on densities
            pb[pb == 0] = divergence.EPS
            pa /= pa.sum(axis=1, keepdims=True)
            pb /= pb.sum(axis=1, keepdims=True)
            kl = np.sum((pa - pb) * (np.log(pa) - np.log(pb)), axis=1)
            np.testing.assert_allclose(D[a, b], np.sum(p.explained_variance_ratio * kl), rtol=1e-9, atol=1e-12)


def test_synthetic_kxk_filters_are_k_by_k_patterns():
    row = pd.Series({"row_start": 0, "row_end": 50, "model_id": 2, "conv_depth_norm": 0.5})
    w3 = synth_filters(row, 0)
    w5 = synth_filters(row, 0, FilterShape(5))
    assert w3.shape == (50, 9) and w5.shape == (50, 25) and w5.dtype == np.float32


def test_a_kxk_db_is_never_compared_with_the_papers(tmp_path):
    from filterdb import paper

    path = tmp_path / "db5.h5"
    write_synth_db(path, kernel=FilterShape(5), n_models=3)
    facts = paper.db_facts(path)
    assert (facts.kernel, facts.shape) == ("5x5", "(N, 25)")  # stored as rows of 25 values
    rel = paper.detect_release(facts)
    assert rel.compared_as is None and rel.detected is None
    assert "its filters are 5x5; the studies' (and their published files') are 3x3" in rel.statement()
    for forced in ("v1.0", "v0.1"):
        with pytest.raises(ValueError, match=f"paper.release {forced}: the DB holds 5x5 filters") as e:
            paper.detect_release(facts, forced)
        assert "\n" not in str(e.value)
    # a 3x3 DB of the same shape of meta is read as 3x3 and may be forced
    path3 = tmp_path / "db3.h5"
    write_synth_db(path3, n_models=3)
    f3 = paper.db_facts(path3)
    assert f3.kernel == "3x3" and paper.detect_release(f3, "v1.0").forced
