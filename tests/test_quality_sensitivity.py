"""Issue 21 part 4: the sparsity eps grid of the sums pass, the sensitivity table of the quality
flags, the optional cvpr_reanalysis degeneration rule and the fixed-range histograms of the hist
pass, each against a plain numpy/pandas computation written here (docs/method.md §4, §9)."""

import math
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from filterdb import pipeline, quality_tables
from filterdb.accumulate import eps_grid, fixed_range
from filterdb.axes import axes_from_config
from filterdb.synth import write_synth_db
from tests.conftest import DEFAULT_AXES, study_scale

GRID = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1]
AXES = axes_from_config({"task": DEFAULT_AXES["task"]})


def thr(n):
    """The authors' random-layer entropy fit, restated (docs/method.md §9)."""
    n = np.asarray(n, np.float64)
    return 1.2618047 / (1 + np.exp(-0.88767525 * (np.log2(np.maximum(n, 1)) - 2.30436435))) - 0.31050834


@pytest.fixture(scope="module")
def edge_db(tmp_path_factory):
    """A generated DB with an all-zero layer, a layer of nearly-dead filters (float16 flushes the
    smallest to zero), weights on the sparsity thresholds' edges and two NaN rows (policy drop)."""
    path = tmp_path_factory.mktemp("sens") / "dataset.h5"
    layers = write_synth_db(path, layout="v1.0", seed=7, n_models=6)
    with h5py.File(path, "r+") as f:
        x = f["filters"]
        a, b = int(layers["row_start"][1]), int(layers["row_end"][1])
        x[a:b] = 0.0  # an all-zero layer: every filter sparse at every eps
        a, b = int(layers["row_start"][2]), int(layers["row_end"][2])
        w = x[a:b] * np.float32(1e-3)  # small filters, around eps * max
        w[0] = 0.0
        w[0, 4] = 1.0  # max |w| = 1, so eps * max is exact for a dyadic eps
        w[1, 2], w[2, 7] = 2.0**-6, -(2.0**-6)  # peaks exactly on 2^-6 * max: not sparse (|w| < t)
        w[3, 0] = 2.0**-6 - 2.0**-17  # the float16 just below: sparse
        w[4, 1] = 2.0**-3
        w[5:9] = np.float32(1e-9)  # below float16's smallest subnormal: flushed to zero
        x[a:b] = w
        x[int(layers["row_start"][3]) + 2, 4] = np.nan
        x[int(layers["row_start"][4]) + 1, 0] = np.inf
    return str(path), layers


def plain_sparse_counts(path, layers, grid):
    """Per layer and eps: the filters whose 9 |w| all lie below eps * max|w| of the layer, on the
    float16-rounded weights (the default precision), rows holding NaN/Inf left out."""
    with h5py.File(path, "r") as f:
        x = f["filters"][...].reshape(-1, 9)
    with np.errstate(over="ignore"):
        x = x.astype(np.float16).astype(np.float64)
    out = np.zeros((len(layers), len(grid)), np.int64)
    for i, (a, b) in enumerate(zip(layers["row_start"], layers["row_end"])):
        w = x[a:b]
        w = w[np.isfinite(w).all(axis=1)]
        if not len(w):
            continue
        peak = np.abs(w).max(axis=1)
        top = peak.max()
        for j, e in enumerate(grid):
            out[i, j] = len(w) if top == 0 else int(np.sum(np.all(np.abs(w) < e * top, axis=1)))
    return out


def plain_peaks(path, layers, i):
    with h5py.File(path, "r") as f:
        w = f["filters"][int(layers["row_start"][i]) : int(layers["row_end"][i])].reshape(-1, 9)
    return np.abs(w.astype(np.float16).astype(np.float64)).max(axis=1)


@pytest.mark.parametrize("shards,threads,block_rows", [(1, 1, 1 << 20), (3, 2, 50), (7, 1, 200)])
def test_eps_grid_counts_equal_plain(edge_db, shards, threads, block_rows):
    path, layers = edge_db
    ties = [2.0**-6, 2.0**-3]  # thresholds some peaks of layer 2 lie exactly on
    a = pipeline.analyse(
        path,
        AXES,
        shards=shards,
        threads=threads,
        block_rows=block_rows,
        quality={"eps": 0.01, "eps_grid": [0.1, *GRID, 0.05, *ties]},  # unsorted, repeats: stored sorted, once
        nonfinite="drop",
    )
    grid = a.sums["quality_eps_grid"]
    assert grid.tolist() == sorted(GRID + ties)
    got = a.sums["quality_n_sparse_grid"]
    want = plain_sparse_counts(path, a.db.layers, grid)
    assert got.dtype == np.int64 and np.array_equal(got, want)
    assert np.array_equal(got[:, list(grid).index(0.01)], a.sums["quality_n_sparse"])  # the configured eps
    j = list(grid).index(2.0**-6)
    assert want[2, j] - want[2, j - 1] >= 1  # the filter just below 2^-6 counts ...
    peaks = plain_peaks(path, a.db.layers, 2)
    assert np.sum(peaks == 2.0**-6) == 2 and want[2, j] == np.sum(peaks < 2.0**-6)  # ... those on it do not
    assert (np.diff(got, axis=1) >= 0).all()  # more filters sparse as eps grows
    assert (got[1] == a.db.layers["n_filters"][1]).all()  # the all-zero layer
    assert got[2, 0] >= 4  # the flushed filters: zero in float16, sparse at every eps


def test_eps_grid_always_holds_eps_and_checks_values():
    assert eps_grid(0.03, GRID).tolist() == sorted(GRID + [0.03])
    assert eps_grid(0.01, ()).tolist() == [0.01]
    for bad in (0.0, -0.1, float("inf"), "x", True, float("nan")):
        with pytest.raises(ValueError, match="quality.sensitivity.eps"):
            eps_grid(0.01, [bad])


# ---- the sensitivity table against a plain sweep ------------------------------------------------


def random_layer_table(seed=0, L=90, models=11):
    """A layer table with spread metrics, NaNs and empty layers, and a monotone eps grid."""
    r = np.random.default_rng(seed)
    n = r.integers(0, 300, L)
    n[:3] = 0
    grid = np.sort(r.integers(0, 300, (L, len(GRID))), axis=1)
    grid = np.minimum(grid, n[:, None])
    sparsity = np.where(n > 0, grid[:, GRID.index(0.01)] / np.maximum(n, 1), np.nan)
    e = r.uniform(0.2, 1.2, L)
    e[r.random(L) < 0.08] = np.nan
    table = pd.DataFrame(
        {
            "model_id": r.integers(0, models, L),
            "n_filters": n,
            "sparsity": sparsity,
            "variance_entropy_norm": e,
        }
    )
    return table, grid


def plain_model_flags(table, flag_col, metric_col, cross, share):
    """Per model (plain pandas): share of its layers with the flag >= share, or its filter-weighted
    mean of the metric (NaN layers left out) crossing the layer threshold."""
    out = []
    for _, g in table.groupby("model_id", sort=True):
        ok = g[metric_col].notna() & (g["n_filters"] > 0)
        m = np.average(g.loc[ok, metric_col], weights=g.loc[ok, "n_filters"]) if ok.any() else math.nan
        out.append(bool(g[flag_col].mean() >= share or cross(m)))
    return np.array(out)


def plain_sweep(table, grid, eps, t, sweeps):
    rows = []
    L, M = len(table), table["model_id"].nunique()

    def add(flag, param, v, configured, lf, mf):
        rows.append((flag, param, v, configured, int(lf.sum()), int(mf.sum())))

    for j, v in enumerate(GRID):
        n = table["n_filters"].to_numpy()
        s = np.where(n > 0, grid[:, j] / np.maximum(n, 1), np.nan)
        tab = table.assign(sj=s, f=s >= t["sparse"])
        add(
            "sparse",
            "quality.eps",
            v,
            v == eps,
            tab["f"],
            plain_model_flags(tab, "f", "sj", lambda m: m >= t["sparse"], t["model_share"]),
        )
    tests = {
        "sparse": ("sparsity", lambda x, v: x >= v),
        "low_diversity": ("variance_entropy_norm", lambda x, v: x < v),
        "random_like": ("variance_entropy_norm", lambda x, v: x >= v),
    }
    for flag, (col, test) in tests.items():
        for v in sorted(set(sweeps[flag]) | {t[flag]}):
            tab = table.assign(f=test(table[col], v))
            mf = plain_model_flags(tab, "f", col, lambda m, v=v, test=test: test(m, v), t["model_share"])
            add(flag, f"quality.thresholds.{flag}", v, v == t[flag], tab["f"], mf)
    lf = {f: test(table[col], t[f]) for f, (col, test) in tests.items()}
    deg = lf["sparse"] | lf["low_diversity"] | lf["random_like"]
    for v in sorted(set(sweeps["model_share"]) | {t["model_share"]}):
        mf = np.zeros(M, bool)
        for f, (col, test) in tests.items():
            tab = table.assign(f=lf[f])
            mf |= plain_model_flags(tab, "f", col, lambda m, f=f, test=test: test(m, t[f]), v)
        add("degenerated", "quality.thresholds.model_share", v, v == t["model_share"], deg, mf)
    return (
        pd.DataFrame(
            rows, columns=["flag", "parameter", "value", "configured", "n_layers_flagged", "n_models_flagged"]
        ),
        L,
        M,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sensitivity_table_equals_plain_sweep(seed):
    table, grid = random_layer_table(seed)
    t = {"sparse": 0.35, "low_diversity": 0.55, "random_like": 1.0, "model_share": 0.4}
    sweeps = {
        "sparse": [0.1, 0.5, 0.9],
        "low_diversity": [0.3, 0.7],
        "random_like": [0.9, 1.1],
        "model_share": [0.2, 0.8],
    }
    got = quality_tables.sensitivity_table(table, np.array(GRID), grid, 0.01, {**t, "rule": "cvpr_reanalysis"}, sweeps)
    want, L, M = plain_sweep(table, grid, 0.01, t, sweeps)
    assert list(got.columns) == quality_tables.SENSITIVITY_COLUMNS
    for c in want.columns:
        assert got[c].tolist() == want[c].tolist(), c
    assert (got["n_layers"] == L).all() and (got["n_models"] == M).all()
    np.testing.assert_array_equal(got["share_layers_flagged"], want["n_layers_flagged"] / L)
    np.testing.assert_array_equal(got["share_models_flagged"], want["n_models_flagged"] / M)
    assert got.groupby("parameter", sort=False)["configured"].sum().tolist() == [1] * 5
    assert got["n_models_flagged"].nunique() > 3 and got["n_layers_flagged"].nunique() > 5  # a sweep that moves


def test_sensitivity_configured_rows_equal_the_quality_tables(edge_db):
    """On a real pass: each configured row counts what quality/layers.tsv and models.tsv flag."""
    path, _ = edge_db
    a = pipeline.analyse(path, AXES, quality={"eps": 0.01, "eps_grid": GRID}, nonfinite="drop")
    lt = quality_tables.layer_quality_table(a.db.layers, a.sums, AXES)
    mt = quality_tables.model_quality_table(lt)
    q = quality_tables.quality_arrays(a.sums)
    s = quality_tables.sensitivity_table(lt, q["eps_grid"], q["n_sparse_grid"], 0.01, None, None)
    conf = s[s["configured"]].set_index("parameter")
    for p, flag in [("quality.eps", "sparse"), ("quality.thresholds.sparse", "sparse")]:
        assert conf.loc[p, "n_layers_flagged"] == lt[flag].sum() and conf.loc[p, "n_models_flagged"] == mt[flag].sum()
    for f in ("low_diversity", "random_like"):
        assert conf.loc[f"quality.thresholds.{f}", "n_layers_flagged"] == lt[f].sum()
        assert conf.loc[f"quality.thresholds.{f}", "n_models_flagged"] == mt[f].sum()
    p = "quality.thresholds.model_share"
    assert conf.loc[p, "n_layers_flagged"] == lt["degenerated"].sum()
    assert conf.loc[p, "n_models_flagged"] == mt["degenerated"].sum()
    with pytest.raises(ValueError, match="not in the stored eps grid"):
        quality_tables.sensitivity_table(lt, q["eps_grid"], q["n_sparse_grid"], 0.03)


# ---- the cvpr_reanalysis rule against a plain implementation ------------------------------------


def cvpr_table(seed=0, L=200):
    r = np.random.default_rng(seed)
    n = r.integers(0, 600, L)
    n[:4] = [0, 1, 2, 3]
    t = thr(n)
    h = np.where(r.random(L) < 0.4, t - r.uniform(-0.05, 0.05, L), r.uniform(0.0, 0.96, L))  # near the edge
    h[n < 2] = np.nan
    s = r.choice([0.0, 0.1, 0.14, 0.2, 0.6], L)
    s[n == 0] = np.nan
    table = pd.DataFrame(
        {
            "model_id": r.integers(0, 15, L),
            "model": "",
            "n_filters": n,
            "sparsity": s,
            "variance_entropy": h,
            "variance_entropy_norm": np.where(t > 0, h / np.where(t > 0, t, 1), np.nan),
            "variance_entropy_clean": h,
            "orthogonality": np.nan,
            "task": r.choice(["a", "b", "c"], L),
        }
    )
    table["model"] = "m" + table["model_id"].astype(str)
    return table


def plain_cvpr(table):
    h, n, s = table["variance_entropy"], table["n_filters"], table["sparsity"]
    t = thr(n)
    random = (t > 0) & (h >= t - 0.02)
    low, sparse = h < 0.5, s >= 0.14
    return random.to_numpy(), low.to_numpy(), sparse.to_numpy(), (random | (low & sparse)).to_numpy()


@pytest.mark.parametrize("seed", [0, 1])
def test_cvpr_rule_equals_plain(seed):
    table = cvpr_table(seed)
    rule = {"rule": "cvpr_reanalysis", "model_share": 0.3}
    f = quality_tables.layer_flags(table, rule)
    random, low, sparse, deg = plain_cvpr(table)
    assert np.array_equal(f["random_like"], random) and np.array_equal(f["low_diversity"], low)
    assert np.array_equal(f["sparse"], sparse) and np.array_equal(f["degenerated"], deg)
    assert deg.any() and (~deg).any() and (low & ~sparse).any()  # low diversity alone: not degenerated
    assert not f.iloc[:3]["random_like"].any()  # n <= 2: thr(n) <= 0, the clause never holds
    # the model table: a flag / degenerated when at least model_share of the model's layers are
    mt = quality_tables.model_quality_table(table, rule).set_index("model_id").sort_index()
    g = table.assign(deg=deg, random=random, low=low, sparse=sparse).groupby("model_id")
    np.testing.assert_array_equal(mt["degenerated"], g["deg"].mean() >= 0.3)
    np.testing.assert_array_equal(mt["random_like"], g["random"].mean() >= 0.3)
    np.testing.assert_array_equal(mt["share_degenerated_layers"], g["deg"].mean())
    order = quality_tables.model_quality_table(table, rule)
    assert order["degenerated"].is_monotonic_decreasing
    # the group table
    gt = quality_tables.group_quality_table(table, "task", thresholds=rule).set_index("group")
    np.testing.assert_array_equal(
        gt["share_degenerated_layers"], table.assign(d=deg).groupby("task")["d"].mean().to_numpy()
    )
    # the project rule (default) is unchanged by the rule's presence elsewhere
    assert quality_tables.thresholds_with_defaults(None)["rule"] == "project"
    p = quality_tables.layer_flags(table)
    e = table["variance_entropy_norm"]
    np.testing.assert_array_equal(p["degenerated"], ((table["sparsity"] >= 0.5) | (e < 0.5) | (e >= 1.0)).to_numpy())
    with pytest.raises(ValueError, match="quality.rule"):
        quality_tables.layer_flags(table, {"rule": "nonsense"})


def test_cvpr_rule_in_inspect(tmp_path):
    """filterdb inspect applies the configured rule to the model's layers and to its verdict."""
    from filterdb import inspect

    path = tmp_path / "dataset.h5"
    write_synth_db(path, layout="v1.0", seed=4, n_models=4)
    a = pipeline.analyse(str(path), AXES, quality={"eps": 0.01})
    rule = {"rule": "cvpr_reanalysis"}
    lt = quality_tables.layer_quality_table(a.db.layers, a.sums, AXES, rule)
    ref = inspect.Reference(
        layers=a.db.layers,
        counts=a.hist["counts"],
        edges=a.hist["edges"],
        mean=a.pca.mean,
        components=a.pca.components,
        evr=a.pca.explained_variance_ratio,
        range=a.range,
        precision="float16",
    )
    with h5py.File(path, "r") as f:
        x = f["filters"][...].reshape(-1, 9)
    for model in a.db.layers["model"].unique():
        sel = a.db.layers[a.db.layers["model"] == model]
        m = inspect.ModelLayers(
            name=str(model),
            weights=[x[int(r0) : int(r1)] for r0, r1 in zip(sel["row_start"], sel["row_end"])],
            meta=sel[["conv_depth", "conv_depth_norm", "out_channels"]].reset_index(drop=True),
        )
        r = inspect.inspect_model(m, ref, AXES, eps=0.01, thresholds=rule)
        deg = plain_cvpr(r.layers)[3]
        assert np.array_equal(r.layers["degenerated"], deg)
        assert np.array_equal(deg, lt.loc[lt["model"] == model, "degenerated"])  # as the pass's tables
        assert bool(r.model["degenerated"]) == (deg.mean() >= 0.5)
        assert r.verdict[0].startswith("DEGENERATED" if deg.mean() >= 0.5 else "filters look healthy")


# ---- the fixed-range histograms against numpy.histogram -----------------------------------------


def plain_coefficients(sc, mean, comps):
    """c_i = (x - m) . v_i, the 9 products added from pixel 0 to 8 (docs/method.md §2)."""
    d = sc - mean
    c = np.empty_like(d)
    for i in range(9):
        acc = d[:, 0] * comps[i, 0]
        for j in range(1, 9):
            acc = acc + d[:, j] * comps[i, j]
        c[:, i] = acc
    return c


@pytest.mark.parametrize("rng_", [(-3.0, 3.0), (-0.7, 0.4)])
def test_fixed_range_histograms_equal_numpy(edge_db, rng_):
    path, _ = edge_db
    a = pipeline.analyse(path, AXES, bins=70, fixed_range=list(rng_), nonfinite="drop", shards=2, threads=2)
    lo, hi = rng_
    h = a.hist
    assert h["fixed_counts"].dtype == np.uint32 and h["fixed_counts"].shape == (len(a.db.layers), 9, 70)
    assert np.array_equal(h["fixed_edges"], np.linspace(lo, hi, 71))
    with h5py.File(path, "r") as f:
        x = f["filters"][...].reshape(-1, 9)
    for i, (r0, r1) in enumerate(zip(a.db.layers["row_start"], a.db.layers["row_end"])):
        w = x[r0:r1]
        w = w[np.isfinite(w).all(axis=1)]
        c = plain_coefficients(study_scale(w), a.pca.mean, a.pca.components)
        for k in range(9):
            want, edges = np.histogram(c[:, k], bins=70, range=(lo, hi))
            assert np.array_equal(h["fixed_counts"][i, k], want), (i, k)
            assert h["fixed_outside"][i, k] == np.count_nonzero((c[:, k] < lo) | (c[:, k] > hi))
            assert np.array_equal(h["counts"][i, k], np.histogram(c[:, k], bins=70, range=a.range)[0])
    n = a.sums["n"]
    assert np.array_equal(h["fixed_counts"].sum(axis=2) + h["fixed_outside"], np.repeat(n[:, None], 9, axis=1))
    assert (h["fixed_outside"].sum() > 0) == (rng_ == (-0.7, 0.4))


def test_fixed_range_values_checked():
    assert fixed_range("auto") is None and fixed_range(None) is None
    assert fixed_range([-3, 3]) == (-3.0, 3.0)
    for bad in ([3, -3], [1, 1], [0, float("inf")], [0], "x", [True, 2], ["a", 1]):
        with pytest.raises(ValueError, match="models.range"):
            fixed_range(bad)


# ---- the workflow ----------------------------------------------------------------------------------


@pytest.mark.skipif(__import__("shutil").which("snakemake") is None, reason="snakemake not installed")
def test_workflow_writes_sensitivity_rule_and_fixed_range(tmp_path):
    """The workflow (3 shards, then 1) writes quality/sensitivity.tsv and its figure, applies
    quality.rule to the quality tables and counts the fixed-range histograms of models.range in
    stats/hist.npz: equal to the library's, whatever the shards."""
    from filterdb.results import load_npz, read_tsv
    from tests.test_workflow import run_workflow

    db = tmp_path / "dataset.h5"
    write_synth_db(db, layout="v1.0", seed=2, n_models=5)
    targets = [
        "quality/sensitivity.tsv",
        "figures/quality_sensitivity.svg",
        "figures/quality_sensitivity.png",
        "quality/layers.tsv",
        "quality/models.tsv",
        "quality/by_task.tsv",
        "stats/hist.npz",
        "stats/sums.npz",
    ]
    import yaml

    # numbers in --config dicts stay strings: a config file (the later --configfile replaces the first)
    conf = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    conf.setdefault("models", {})["range"] = [-1.5, 1.5]
    conf["quality"].update(rule="cvpr_reanalysis", eps=0.02)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(conf))
    cfg = ["--configfile", str(tmp_path / "config.yaml")]
    out = {}
    for shards in (3, 1):
        res = tmp_path / f"res{shards}"
        r = run_workflow(
            tmp_path, db, res, *cfg, "--set-scatter", f"shards={shards}", targets=[str(res / t) for t in targets]
        )
        assert r.returncode == 0, r.stderr[-3000:]
        out[shards] = res
    res = out[3]
    a = pipeline.analyse(str(db), AXES, quality={"eps": 0.02, "eps_grid": GRID}, fixed_range=[-1.5, 1.5])
    hist, sums = load_npz(res / "stats/hist.npz"), load_npz(res / "stats/sums.npz")
    for k in ("fixed_counts", "fixed_outside", "fixed_edges"):
        assert np.array_equal(hist[k], a.hist[k]), k
        assert np.array_equal(load_npz(out[1] / "stats/hist.npz")[k], hist[k]), k
    assert hist["fixed_outside"].any()
    assert sums["quality_eps_grid"].tolist() == sorted(GRID)  # 0.02 is already in the default grid
    assert np.array_equal(sums["quality_n_sparse_grid"], a.sums["quality_n_sparse_grid"])
    lt = quality_tables.read_layer_quality_table(res / "quality/layers.tsv")
    assert np.array_equal(lt["degenerated"], plain_cvpr(lt)[3])
    s = read_tsv(res / "quality/sensitivity.tsv")
    q = conf["quality"]
    want = quality_tables.sensitivity_table(
        lt, sums["quality_eps_grid"], sums["quality_n_sparse_grid"], 0.02, q["thresholds"], q["sensitivity"]
    )
    pd.testing.assert_frame_equal(s, want, check_dtype=False)
    assert s.loc[s["configured"], "parameter"].tolist() == [p for _, p, _ in quality_tables.SENSITIVITY]
    assert (res / "figures/quality_sensitivity.svg").read_bytes() == (
        out[1] / "figures/quality_sensitivity.svg"
    ).read_bytes()


@pytest.mark.skipif(__import__("shutil").which("snakemake") is None, reason="snakemake not installed")
def test_workflow_refuses_a_bad_fixed_range(tmp_path):
    """models.range [hi, lo] passes the schema (two numbers) but stops the run at its start with
    one line naming the key, before any job."""
    import yaml

    from tests.test_workflow import run_workflow

    db = tmp_path / "dataset.h5"
    write_synth_db(db, layout="v1.0", seed=2, n_models=3)
    conf = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    conf.setdefault("models", {})["range"] = [3, -3]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(conf))
    r = run_workflow(tmp_path, db, tmp_path / "res", "--configfile", str(tmp_path / "config.yaml"))
    assert r.returncode != 0
    assert "invalid config: models.range: expected auto or [lo, hi], two finite numbers with lo < hi" in r.stderr
    assert not (tmp_path / "res").exists()
