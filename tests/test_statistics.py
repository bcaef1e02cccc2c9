"""The registry of per-layer statistics (filterdb/statistics.py): it names every array of the
passes' parts and of the gathered results, their combine rules and their memory; a statistic
registered at run time (its math, a Python hook, one entry) flows through the passes, the parts,
the gathers and the memory estimates, equal to plain numpy whatever the sharding or threads."""

import numpy as np
import pytest

from filterdb import exactsum, memory
from filterdb import statistics as registry
from filterdb.accumulate import coefficient_range, gather_parts, run_shard, shard_totals
from filterdb.db import open_db
from filterdb.histogram import uniform_edges
from filterdb.passes import PassSettings, make_pass, pass_dims
from filterdb.pca import global_pca
from filterdb.results import Plan, save_npz
from filterdb.shape import FilterShape
from filterdb.synth import write_synth_db

BINS = 24


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("stats") / "db.h5"
    write_synth_db(path, n_models=6, kernel=FilterShape(3))
    db = open_db(path)
    lay = db.layers
    codes = lay["model"].astype("category").cat.codes.to_numpy(np.int64)  # one cell per model
    plan = Plan(
        lay["row_start"].to_numpy(np.int64),
        lay["row_end"].to_numpy(np.int64),
        codes,
        lay["out_channels"].to_numpy(np.float64),
        int(codes.max()) + 1,
        db.key,
        db.width,
    )
    with __import__("h5py").File(path) as f:
        rows = f[db.key][:].reshape(-1, 9)
    return str(path), db, plan, rows


def _settings(**kw):
    base = dict(
        block_rows=1 << 12,  # several blocks per shard
        threads=1,
        precision="float64",
        nonfinite="error",
        quality_eps=0.01,
        quality_eps_grid=(0.001, 0.1),
        orthogonality=True,
        fine_bins=0,
        density_pairs=[],
        density_bins=32,
        density_extent=(-3.3, 3.3),
        fixed_range=None,
        progress=False,
        bypass_cache=False,
    )
    base.update(kw)
    return PassSettings(**base)


def _chain(small_db, settings, shards):
    path, db, plan, _ = small_db
    out, parts = {}, {}

    def run(kind, **kw):
        parts[kind] = [
            run_shard(path, db.key, plan, kind, shard=j, shards=shards, settings=settings, **kw) for j in range(shards)
        ]
        return gather_parts(parts[kind], plan.n_layers, plan.n_cells)

    out["sums"] = run("sums")
    p = global_pca(out["sums"])
    out["range"] = run("range", basis=(p.mean, p.components))
    edges = uniform_edges(*coefficient_range(out["range"]["cmin"], out["range"]["cmax"]), BINS)
    out["hist"] = run("hist", basis=(p.mean, p.components), edges=edges)
    return out, parts


OPTIONS = {
    "defaults": {},
    "no quality": {"quality_eps": None},
    "fixed range": {"fixed_range": (-2.0, 2.0)},
    "fine cells": {"fine_bins": 16},
    "densities": {"density_pairs": [(0, 1), (2, 3)]},
}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_parts_and_results_hold_what_the_registry_declares(small_db, name):
    settings = _settings(**OPTIONS[name])
    out, parts = _chain(small_db, settings, shards=2)
    plan = small_db[2]
    L, d, N = plan.n_layers, 9, exactsum.N_LIMBS
    q = settings.quality_eps is not None
    # written out by hand (not from the registry): the arrays and shapes of each result file
    want = {
        "sums": {"n": (L,), "sum": (L, d), "outer": (L, d, d), "nonfinite": (L,), "count": ()}
        | {"sum_limbs": (d, N), "outer_limbs": (d, d, N)},
        "range": {"cmin": (L, d), "cmax": (L, d), "coef_min": (), "coef_max": ()},
        "hist": {"counts": (L, d, BINS), "edges": (BINS + 1,)},
    }
    if q:
        want["sums"] |= {f"quality_{f}": (L,) for f in registry.quality.FIELDS}
        want["sums"] |= {"quality_n_sparse_grid": (L, 3), "quality_eps_grid": (3,)}
    if settings.fixed_range:
        want["hist"] |= {"fixed_counts": (L, d, BINS), "fixed_outside": (L, d), "fixed_edges": (BINS + 1,)}
    if settings.fine_bins:
        want["hist"] |= {"cell_edges": (17,), "cell_counts": (plan.n_cells, d, 16)}
    if settings.density_pairs:
        want["hist"] |= {"density": (2, 32, 32), "density_pairs": (2, 2), "density_edges": (33,)}
    for kind in ("sums", "range", "hist"):
        assert {k: v.shape for k, v in out[kind].items()} == want[kind], kind
        dims = pass_dims(settings, d, BINS if kind == "hist" else 0)
        declared = [a for a in registry.outputs(kind, dims)]
        for a in declared:
            if a.name in out[kind]:
                assert out[kind][a.name].dtype == np.dtype(a.dtype), a.name
        # the gathered file holds the declared outputs but the cell ids (its records are placed by them)
        assert set(out[kind]) == {a.name for a in declared if a.name != "cell"}
        for part in parts[kind]:  # a part: its layers, then the declared outputs under their part names
            assert list(part)[0] == "layer"
            assert list(part)[1:] == [a.part_name for a in declared]
    # the totals a later pass reads: the sums and range parts' whole-shard outputs only
    assert set(shard_totals(parts["sums"][0])) == {"total__count", "total__sum_limbs", "total__outer_limbs"} | (
        {"total__quality_eps_grid"} if q else set()
    )
    assert set(shard_totals(parts["range"][0])) == {"min__coef_min", "max__coef_max"}


def test_the_passes_allocate_the_bytes_the_estimates_count(small_db):
    _, _, plan, _ = small_db
    settings = _settings(fixed_range=(-1.0, 1.0), fine_bins=8, density_pairs=[(0, 1)])
    mean, comps = np.zeros(9), np.eye(9)
    edges = np.linspace(-1, 1, BINS + 1)
    lo, hi = 3, 11
    for kind in ("sums", "range", "hist"):
        pas = make_pass(kind, plan, lo, hi, settings, basis=(mean, comps), edges=edges)
        got = sum(a.nbytes for a in pas.acc.values()) // (hi - lo)
        d = 9
        by_hand = {  # what each pass's per-layer accumulators take for 3x3 filters
            "sums": 8 * (1 + d + d * d) + 8 * 2 + 8 * (4 + 2 * d * d) + 8 * 3,
            "range": 8 * 2 * d,
            "hist": 4 * d * BINS + 4 * d * BINS + 8 * d,
        }[kind]
        assert got == by_hand == registry.layer_bytes(kind, pas.dims), kind
    # a shard job's estimate grows by exactly its layers' accumulators
    dims = pass_dims(settings, 9, BINS)
    kw = dict(block_rows=1 << 12, row_bytes=36)
    a = memory.estimate_mem_mb("shard_range", plan, dims, **kw)
    big = registry.Dims(**{**dims.__dict__, "d": 9000})  # range accumulators: 16 bytes per coefficient per layer
    b = memory.estimate_mem_mb("shard_range", plan, big, **kw)
    extra = plan.n_layers * 16 * (9000 - 9) / 1e6 * memory.MARGIN
    assert abs((b - a) - extra) <= 2 + 3 * (1 << 12) * 36 / 1e6  # rounding of each; the read buffers do not change


def _abs_block(values, starts, ends, pos, acc):
    # the math of the example statistic: per layer the sum of |w| of each filter value
    for j, p in enumerate(pos):
        acc["abs_sum"][p] += np.abs(values[starts[j] : ends[j]]).sum(axis=0, dtype=np.float64)


ABS = registry.Statistic(
    "abs_sum",
    "sums",
    accumulators=(registry.Array("abs_sum", "float64", ("d",)),),
    outputs=(registry.Array("abs_sum", "float64", ("d",)),),
    block=_abs_block,
    doc="per layer the sum of |w| of each filter value (an example statistic of the tests)",
)


@pytest.fixture
def with_abs_sum():
    registry.register(ABS)
    try:
        yield ABS
    finally:
        registry.unregister("abs_sum")
    assert "abs_sum" not in {s.name for s in registry.statistics()}


@pytest.mark.parametrize("shards, threads", [(1, 1), (3, 1), (2, 2)])
def test_a_statistic_added_with_one_entry_flows_through_passes_and_gathers(small_db, with_abs_sum, shards, threads):
    path, db, plan, rows = small_db
    settings = _settings(threads=threads)
    parts = [run_shard(path, db.key, plan, "sums", shard=j, shards=shards, settings=settings) for j in range(shards)]
    for part in parts:
        assert list(part)[-1] == "abs_sum" and part["abs_sum"].shape == (part["layer"].size, 9)
    g = gather_parts(parts, plan.n_layers)
    want = np.stack(
        [np.abs(rows[a:b].astype(np.float64)).sum(axis=0) for a, b in zip(plan.row_start, plan.row_end, strict=True)]
    )
    np.testing.assert_allclose(g["abs_sum"], want, rtol=1e-12, atol=0)
    # per layer the same rows in the same order: the same bits whatever the shards and threads
    one = gather_parts([run_shard(path, db.key, plan, "sums", settings=_settings())], plan.n_layers)
    assert g["abs_sum"].tobytes() == one["abs_sum"].tobytes()
    # the rest of the part is unchanged by the new statistic
    for k in ("n", "sum", "outer", "quality_sparsity"):
        assert np.array_equal(g[k], one[k], equal_nan=True)
    # and the memory estimate counts its 8 bytes per value per layer
    dims = pass_dims(settings, 9)
    assert registry.layer_bytes("sums", dims) == 8 * (1 + 9 + 81) + 16 + 8 * (4 + 162) + 8 * 3 + 8 * 9


def test_the_registry_refuses_inconsistent_entries():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(registry.Statistic("moments", "sums"))
    with pytest.raises(ValueError, match="output 'n' belongs to another statistic"):
        registry.register(registry.Statistic("again", "sums", outputs=(registry.Array("n", "int64"),)))
    with pytest.raises(ValueError, match="accumulator 'sum' is declared otherwise"):
        registry.register(registry.Statistic("other", "sums", accumulators=(registry.Array("sum", "float32"),)))
    with pytest.raises(ValueError, match="pass 'pixels' is not one of"):
        registry.Statistic("x", "pixels")
    with pytest.raises(ValueError, match="combines by 'mean'"):
        registry.Statistic("x", "sums", outputs=(registry.Array("x", "float64", (), "mean"),))
    with pytest.raises(ValueError, match="condition 'sometimes'"):
        registry.Statistic("x", "sums", when="sometimes")
    assert [s.name for s in registry.statistics()][:4] == ["moments", "nonfinite", "exact_totals", "quality"]


def test_a_statistic_whose_finish_breaks_its_declaration_stops_the_pass(small_db):
    path, db, plan, _ = small_db
    bad = registry.Statistic(
        "bad_dtype",
        "range",
        outputs=(registry.Array("bad_dtype", "float64", ("d",)),),
        finish=lambda acc, ctx: {"bad_dtype": np.zeros((ctx.hi - ctx.lo, 9), np.float32)},
    )
    registry.register(bad)
    try:
        with pytest.raises(RuntimeError, match="bad_dtype is float32, declared float64"):
            run_shard(path, db.key, plan, "range", settings=_settings(), basis=(np.zeros(9), np.eye(9)))
    finally:
        registry.unregister("bad_dtype")


def test_a_part_with_an_unknown_array_is_refused_in_one_line(small_db, tmp_path):
    path, db, plan, _ = small_db
    part = run_shard(path, db.key, plan, "range", settings=_settings(), basis=(np.zeros(9), np.eye(9)))
    f = tmp_path / "part.npz"
    save_npz(f, {**part, "mystery": np.zeros(plan.n_layers)})
    with pytest.raises(ValueError, match=r"part\.npz: 'mystery' is not a statistic of this filterdb") as e:
        gather_parts([str(f)], plan.n_layers)
    assert "\n" not in str(e.value)
    save_npz(f, {**part, "total__coef_min": np.zeros(())})  # a whole-shard name of no statistic
    with pytest.raises(ValueError, match="'total__coef_min' is not a statistic"):
        gather_parts([str(f)], plan.n_layers)


def test_the_method_doc_lists_every_output_of_the_registry():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "method.md").read_text()
    for row in registry.table():
        keys = ("statistic", "pass", "when", "array", "dtype", "shape", "combine", "result")
        line = "| " + " | ".join(row[k] for k in keys) + " |"
        assert line in text, line


def test_the_readme_output_contract_names_every_gathered_array():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| `")}
    for a in registry.outputs():
        if a.combine == "cells":  # records: gathered into cell_hist.npy
            continue
        (stat,) = [s for s in registry.statistics() if a in s.outputs]
        row = rows[f"`{stat.result}.npz`"]
        named = f"`{a.name}`" in row or (a.name.startswith("quality_") and "`quality_*`" in row)
        assert named, (stat.result, a.name)
