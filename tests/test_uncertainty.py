"""Drift uncertainty: calibrated permutation p-values, bootstrap intervals, determinism."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from filterdb import divergence, pipeline, plots, uncertainty
from filterdb.axes import axes_from_config, layer_labels
from tests.conftest import DEFAULT_AXES

EDGES = np.linspace(-3.0, 3.0, 71)


def generated_units(rng, n_models, n_groups, shift=None, bins=70):
    """Per-model histograms (models, 9, bins) drawn from ONE distribution with model-level
    variation; ``shift = (groups, amount)`` moves the listed groups' coefficient distributions."""
    x = np.linspace(-3, 3, bins)
    group = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, n_models - n_groups)])
    counts = np.empty((n_models, 9, bins), np.int64)
    for m in range(n_models):
        mu = rng.normal(0, 0.15, 9)
        if shift is not None and group[m] in shift[0]:
            mu = mu + shift[1]
        for c in range(9):
            dens = np.exp(-0.5 * ((x - mu[c]) / (0.6 + 0.1 * c)) ** 2)
            counts[m, c] = rng.multinomial(int(rng.integers(40, 400)), dens / dens.sum())
    return counts, group


def test_null_p_values_are_uniform():
    """All groups share one distribution: the share of p < 0.05 is within binomial bounds."""
    rng = np.random.default_rng(5)
    evr = np.sort(rng.dirichlet(np.ones(9)))[::-1]
    ps, axis_ps = [], []
    for k in range(10):
        counts, group = generated_units(rng, 60, 8)
        r = uncertainty.axis_uncertainty(
            counts, group, list(range(8)), evr, EDGES, bootstrap_replicates=0, permutations=199, seed=k
        )
        pairs = r.null[r.null["group_a"] != uncertainty.AXIS_ROW]
        ps.append(pairs["p"].to_numpy())
        axis_ps.append(r.null["p"].iloc[-1])
    p = np.concatenate(ps)
    n = p.size  # 280 pairs (correlated within a data set: wide bounds)
    lo, hi = binom.ppf(1e-4, n, 0.05), binom.ppf(1 - 1e-4, n, 0.05)
    assert lo <= np.sum(p < 0.05) <= hi, (np.sum(p < 0.05), lo, hi)
    assert 0.3 < np.mean(p) < 0.7  # roughly uniform, not piled up at either end
    assert np.sum(np.array(axis_ps) < 0.05) <= 3


def test_planted_shift_is_detected():
    rng = np.random.default_rng(1)
    evr = np.sort(rng.dirichlet(np.ones(9)))[::-1]
    counts, group = generated_units(rng, 60, 6, shift=({0}, 0.5))
    r = uncertainty.axis_uncertainty(
        counts, group, list(range(6)), evr, EDGES, bootstrap_replicates=400, permutations=400, seed=0
    )
    null = r.null.set_index(["group_a", "group_b"])
    ci = r.ci.set_index(["group_a", "group_b"])
    shifted = [(a, b) for a, b in null.index if "0" in (a, b) and a != uncertainty.AXIS_ROW]
    for key in shifted:
        assert null.loc[key, "p"] < 0.01, key
        assert bool(null.loc[key, "significant"]), key
        assert ci.loc[key, "lo"] > null.loc[key, "null_mean"], key  # the interval excludes the null expectation
        assert ci.loc[key, "lo"] <= ci.loc[key, "D"] <= ci.loc[key, "hi"] or ci.loc[key, "D"] < ci.loc[key, "hi"]
    assert null.loc[(uncertainty.AXIS_ROW, uncertainty.AXIS_ROW), "p"] < 0.01
    others = [k for k in null.index if k not in shifted and k[0] != uncertainty.AXIS_ROW]
    assert np.mean(null.loc[others, "p"] < 0.05) < 0.3
    # the debiased D is D minus the expected D of random splits of that size
    np.testing.assert_allclose(null["D_debiased"], null["D"] - null["null_mean"])


def test_deterministic_and_batch_independent():
    rng = np.random.default_rng(2)
    counts, group = generated_units(rng, 30, 4)
    evr = rng.dirichlet(np.ones(9))
    a = uncertainty.bootstrap(counts, group, 4, evr, 50, seed=[3, 1], edges=EDGES, batch=7)
    b = uncertainty.bootstrap(counts, group, 4, evr, 50, seed=[3, 1], edges=EDGES, batch=50)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    c = uncertainty.permutation_null(counts, group, 4, evr, 50, seed=3, edges=EDGES, batch=9)
    d = uncertainty.permutation_null(counts, group, 4, evr, 50, seed=3, edges=EDGES, batch=100)
    np.testing.assert_allclose(c, d, rtol=1e-12, atol=1e-15)
    r1 = uncertainty.axis_uncertainty(
        counts, group, list("abcd"), evr, EDGES, bootstrap_replicates=100, permutations=100, seed=4
    )
    r2 = uncertainty.axis_uncertainty(
        counts, group, list("abcd"), evr, EDGES, bootstrap_replicates=100, permutations=100, seed=4
    )
    pd.testing.assert_frame_equal(r1.ci, r2.ci)
    pd.testing.assert_frame_equal(r1.null, r2.null)
    r3 = uncertainty.axis_uncertainty(
        counts, group, list("abcd"), evr, EDGES, bootstrap_replicates=100, permutations=100, seed=5
    )
    assert not r1.ci["lo"].equals(r3.ci["lo"])


def test_replicates_are_resampled_drift_matrices():
    """One bootstrap / permutation replicate equals the drift matrix of its resampled groups."""
    rng = np.random.default_rng(3)
    counts, group = generated_units(rng, 20, 3)
    evr = rng.dirichlet(np.ones(9))
    perm = uncertainty.permutation_null(counts, group, 3, evr, 1, seed=8, edges=EDGES)[0]
    shuffled = np.random.default_rng(8).permuted(np.broadcast_to(group, (1, group.size)), axis=1)[0]
    gc = np.stack([counts[shuffled == g].sum(axis=0) for g in range(3)])
    np.testing.assert_allclose(perm, divergence.drift_matrix(gc, evr, edges=EDGES), rtol=1e-9, atol=1e-13)
    ones = uncertainty.bootstrap(counts, group, 3, evr, 3, seed=0, edges=EDGES)
    assert ones.shape == (3, 3, 3) and np.all(ones >= -1e-12)


def test_adjust_pvalues():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(uncertainty.adjust_pvalues(p, "holm"), [0.04, 0.09, 0.09, 0.5])
    np.testing.assert_allclose(uncertainty.adjust_pvalues(p, "bh"), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    with pytest.raises(ValueError):
        uncertainty.adjust_pvalues(p, "bonferroni")


def test_axes_of_a_db(synth_db):
    """Per configured axis: one row per pair in drift-matrix order; D equals the drift file's."""
    _, path, _ = synth_db
    a = pipeline.analyse(path, axes_from_config(DEFAULT_AXES))
    evr = a.pca.explained_variance_ratio
    for axis in axes_from_config(DEFAULT_AXES):
        r = uncertainty.uncertainty_of_axis(
            a.db.layers, a.hist["counts"], a.hist["edges"], evr, axis, bootstrap_replicates=20, permutations=20, seed=0
        )
        d = a.drift[axis.name].set_index("group")
        names = list(d.index)
        assert list(r.ci.columns) == ["group_a", "group_b", "D", "lo", "hi", "B", "level"]
        ia, ib = np.triu_indices(len(names), k=1)
        assert list(r.ci["group_a"]) == [names[k] for k in ia] and list(r.ci["group_b"]) == [names[k] for k in ib]
        np.testing.assert_allclose(r.ci["D"], d.to_numpy()[ia, ib], rtol=1e-12)
        uc, ug, um = uncertainty.units(a.db.layers, a.hist["counts"], layer_labels(a.db.layers, axis), names)
        assert uc.sum() == a.hist["counts"][layer_labels(a.db.layers, axis).isin(names).to_numpy()].sum()
        if axis.name != "depth":  # one unit per model
            assert len(np.unique(um)) == len(um)


def test_dense_and_sparse_sums_agree(monkeypatch):
    rng = np.random.default_rng(4)
    counts, group = generated_units(rng, 40, 5)
    evr = rng.dirichlet(np.ones(9))
    dense = uncertainty.permutation_null(counts, group, 5, evr, 30, seed=1, edges=EDGES)
    monkeypatch.setattr(uncertainty, "DENSE_GROUPS", 0)
    sparse = uncertainty.permutation_null(counts, group, 5, evr, 30, seed=1, edges=EDGES)
    np.testing.assert_array_equal(dense, sparse)


def test_significance_heatmap_hatches_non_significant_pairs():
    from matplotlib.patches import Rectangle

    rng = np.random.default_rng(1)
    counts, group = generated_units(rng, 40, 4, shift=({0}, 0.6))
    r = uncertainty.axis_uncertainty(
        counts, group, list("abcd"), np.ones(9) / 9, EDGES, bootstrap_replicates=0, permutations=300, seed=0
    )
    fig = plots.significance_heatmap(r, "t")
    hatched = [p for p in fig.axes[0].patches if isinstance(p, Rectangle) and p.get_hatch()]
    pairs = r.null[r.null["group_a"] != uncertainty.AXIS_ROW]
    assert len(hatched) == 2 * int((~pairs["significant"]).sum())


def test_triangle_and_memory_bound_do_not_change_results(monkeypatch):
    rng = np.random.default_rng(6)
    counts, group = generated_units(rng, 30, 5)
    evr = rng.dirichlet(np.ones(9))
    ia, ib = np.triu_indices(5, k=1)
    for fn in (uncertainty.bootstrap, uncertainty.permutation_null):
        full = fn(counts, group, 5, evr, 40, seed=2, edges=EDGES)
        monkeypatch.setattr(uncertainty, "BATCH_ELEMENTS", 3 * 5 * 9 * 70)  # 3 replicates per batch
        tri = fn(counts, group, 5, evr, 40, seed=2, edges=EDGES, triangle=True)
        monkeypatch.undo()
        np.testing.assert_allclose(tri, full[:, ia, ib], rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# Equal-size subsamples


def plain_equal_size(counts, group, n_groups, evr, replicates, seed):
    """:func:`uncertainty.equal_size_drift` written out: the documented draws, then a loop over
    replicates and pairs summing the chosen units and taking :func:`divergence.drift`."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(group == g) for g in range(n_groups)]
    ranks = [rng.permuted(np.broadcast_to(np.arange(m.size), (replicates, m.size)), axis=1) for m in members]
    pairs = list(zip(*np.triu_indices(n_groups, k=1)))
    out = np.empty((replicates, len(pairs)))
    for i in range(replicates):
        for k, (a, b) in enumerate(pairs):
            m = min(members[a].size, members[b].size)
            chosen = [members[g][ranks[g][i] < m] for g in (a, b)]
            assert chosen[0].size == chosen[1].size == m
            pa, pb = (divergence.probabilities(counts[c].sum(axis=0), edges=EDGES) for c in chosen)
            out[i, k] = divergence.drift(pa, pb, evr)
    return out


def test_equal_size_matches_a_plain_loop(monkeypatch):
    rng = np.random.default_rng(7)
    counts, group = generated_units(rng, 36, 5)
    group[group == 4] = 1  # unequal group sizes, one of them tiny
    group[:2] = 4
    evr = rng.dirichlet(np.ones(9))
    assert len(set(np.bincount(group))) > 2
    want = plain_equal_size(counts, group, 5, evr, 25, seed=[4, 2])
    got = uncertainty.equal_size_drift(counts, group, 5, evr, 25, seed=[4, 2], edges=EDGES)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    # batches, the memory bound and the sparse sums do not change the values
    monkeypatch.setattr(uncertainty, "BATCH_ELEMENTS", 2 * 9 * 9 * 70)
    monkeypatch.setattr(uncertainty, "DENSE_GROUPS", 0)
    again = uncertainty.equal_size_drift(counts, group, 5, evr, 25, seed=[4, 2], edges=EDGES, batch=4)
    np.testing.assert_allclose(again, got, rtol=1e-12, atol=1e-15)
    # the table: mean and standard deviation over replicates; the axis row over the pairs' mean
    monkeypatch.undo()
    r = uncertainty.axis_uncertainty(
        counts, group, list("abcde"), evr, EDGES, bootstrap_replicates=0, permutations=0, seed=4, equal_size=25
    )
    n = np.bincount(group)
    ia, ib = np.triu_indices(5, k=1)
    null = r.null
    np.testing.assert_array_equal(null["n_equal"].iloc[:-1].to_numpy(int), np.minimum(n[ia], n[ib]))
    assert pd.isna(null["n_equal"].iloc[-1]) and (null["R_equal"] == 25).all()
    np.testing.assert_allclose(null["D_equal"].iloc[:-1], want.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(null["D_equal_sd"].iloc[:-1], want.std(axis=0), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(null["D_equal"].iloc[-1], want.mean(), rtol=1e-12)
    np.testing.assert_allclose(null["D_equal_sd"].iloc[-1], want.mean(axis=1).std(), rtol=1e-9)
    # off: the table is as before (no equal-size columns)
    off = uncertainty.axis_uncertainty(
        counts, group, list("abcde"), evr, EDGES, bootstrap_replicates=0, permutations=0, seed=4
    )
    pd.testing.assert_frame_equal(off.null, null.drop(columns=["n_equal", "D_equal", "D_equal_sd", "R_equal"]))


def test_equal_size_of_equal_groups_is_the_plain_d():
    """Groups of equal unit counts: every subsample is the whole group, so D_equal = D."""
    rng = np.random.default_rng(8)
    counts, _ = generated_units(rng, 24, 4)
    group = np.repeat(np.arange(4), 6)
    evr = rng.dirichlet(np.ones(9))
    r = uncertainty.axis_uncertainty(
        counts, group, list("abcd"), evr, EDGES, bootstrap_replicates=0, permutations=0, equal_size=10
    )
    d = divergence.drift_matrix(np.stack([counts[group == g].sum(axis=0) for g in range(4)]), evr, edges=EDGES)
    ia, ib = np.triu_indices(4, k=1)
    np.testing.assert_allclose(r.null["D_equal"].iloc[:-1], d[ia, ib], rtol=1e-12)
    np.testing.assert_allclose(r.null["D_equal"], r.null["D"], rtol=1e-12)
    assert np.all(r.null["D_equal_sd"] < 1e-12 * r.null["D"])


def random_split_d(counts, a, b, m, replicates, rng, evr):
    """Expected D of two disjoint random m-unit subsets of the pooled units ``a`` and ``b``."""
    pool = np.concatenate([a, b])
    out = []
    for _ in range(replicates):
        pick = rng.permutation(pool)
        pa, pb = (divergence.probabilities(counts[s].sum(axis=0), edges=EDGES) for s in (pick[:m], pick[m : 2 * m]))
        out.append(divergence.drift(pa, pb, evr))
    return np.mean(out), np.std(out)


@pytest.mark.parametrize("shift", [None, 0.5])
def test_equal_size_planted_shift_and_same_distribution(shift):
    """A small group (5 models) against a large one (40): with one distribution the equal-size D is
    the D of two random 5-model subsets of the pooled models; with group 0 shifted it stays far
    above that."""
    rng = np.random.default_rng(9)
    counts, _ = generated_units(rng, 45, 2, shift=None if shift is None else ({0}, shift))
    group = np.r_[np.zeros(5, int), np.ones(40, int)]
    if shift is not None:  # regenerate so that the first five models are the shifted group
        counts, g0 = generated_units(rng, 200, 2, shift=({0}, shift))
        counts = np.concatenate([counts[g0 == 0][:5], counts[g0 == 1][:40]])
    evr = np.sort(rng.dirichlet(np.ones(9)))[::-1]
    r = uncertainty.axis_uncertainty(
        counts, group, [0, 1], evr, EDGES, bootstrap_replicates=0, permutations=0, equal_size=200, seed=1
    )
    row = r.null.iloc[0]
    assert row["n_equal"] == 5
    null_eq, null_sd = random_split_d(counts, np.arange(5), np.arange(5, 45), 5, 300, np.random.default_rng(2), evr)
    if shift is None:
        assert abs(row["D_equal"] - null_eq) < 0.25 * null_eq, (row["D_equal"], null_eq)
        assert row["D_equal"] > row["D"]  # two 5-model samples: more sample-size bias than 5 vs 40
    else:
        assert row["D_equal"] > null_eq + 5 * null_sd, (row["D_equal"], null_eq, null_sd)
        assert row["D_equal"] > 0.8 * row["D"]


# ---------------------------------------------------------------------------------------------
# Bootstrap interval of an axis's mean D and the box plot's error bars


def box_bars(fig):
    """(x, lo, hi) of every error bar of a drift box plot, from the drawn line segments."""
    from matplotlib.container import ErrorbarContainer

    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    if not bars:
        return np.zeros((0, 3))
    assert len(bars) == 1
    segs = bars[0].lines[2][0].get_segments()
    return np.array([[s[0, 0], s[:, 1].min(), s[:, 1].max()] for s in segs])


def test_box_plot_bars_are_the_bootstrap_intervals_of_the_mean_d(tmp_path):
    rng = np.random.default_rng(10)
    evr = rng.dirichlet(np.ones(9))
    data = {"a": generated_units(rng, 30, 4, shift=({0}, 0.4)), "b": generated_units(rng, 20, 3), "c": None}
    values, intervals, want = {}, {}, {}
    for k, (name, unit) in enumerate(data.items()):
        if unit is None:  # an axis without pairs: an empty slot, no bar
            values[name], intervals[name] = np.zeros(0), (np.nan, np.nan)
            continue
        counts, group = unit
        g = group.max() + 1
        r = uncertainty.axis_uncertainty(
            counts, group, list(range(g)), evr, EDGES, bootstrap_replicates=200, permutations=0, level=0.9, seed=k
        )
        # independently: the bootstrap's full matrices, the mean of each upper triangle, percentiles
        mats = uncertainty.bootstrap(counts, group, g, evr, 200, seed=[k, 0], edges=EDGES)
        means = np.array([m[np.triu_indices(g, 1)].mean() for m in mats])
        want[name] = np.percentile(means, [5, 95])
        np.testing.assert_allclose(r.mean_ci, want[name], rtol=1e-12)
        assert want[name][0] < want[name][1]
        values[name], intervals[name] = r.ci["D"].to_numpy(), r.mean_ci
    fig = plots.drift_boxplot(values, intervals=intervals, interval_label="mean D: 90% bootstrap interval")
    bars = box_bars(fig)
    np.testing.assert_allclose(bars[:, 0], [1 + plots.INTERVAL_OFFSET, 2 + plots.INTERVAL_OFFSET])
    np.testing.assert_allclose(bars[:, 1:], [want["a"], want["b"]], rtol=1e-12)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["mean D: 90% bootstrap interval"]
    # without intervals (or none finite): the study's figure, byte for byte
    plain = {}
    for key, iv in {"none": None, "nan": {"a": (np.nan, np.nan)}, "empty": {}}.items():
        f = plots.drift_boxplot(values, intervals=iv)
        assert len(box_bars(f)) == 0 and f.axes[0].get_legend() is None
        plots.save(f, tmp_path / f"{key}.svg")
        plain[key] = (tmp_path / f"{key}.svg").read_bytes()
    plots.save(plots.drift_boxplot(values), tmp_path / "default.svg")
    assert all(b == (tmp_path / "default.svg").read_bytes() for b in plain.values())
    plots.save(fig, tmp_path / "bars.svg")
    assert (tmp_path / "bars.svg").read_bytes() != plain["none"]
