"""Figures and binned KDEs: numbers against plain re-computation, byte-identical renders."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("colorcet")
KDEpy = pytest.importorskip("KDEpy")

from filterdb import kde, pipeline, plots  # noqa: E402
from filterdb.axes import Axis, axes_from_config, layer_labels  # noqa: E402
from filterdb.synth import write_synth_db  # noqa: E402
from tests.conftest import DEFAULT_AXES, load_all, study_scale  # noqa: E402

# Binned KDE (1024 bins over the shared range) vs KDEpy FFTKDE(bw="silverman") on the raw points.
# Measured: samples of 20k points (normal, Laplace, bimodal): bandwidth within 0.3 %, curves within
# 0.1 % of their maximum. Test DB (groups of 32..1024 filters): bandwidth within 1.7 % (binned
# quartiles are exact to one bin width, which matters for small groups), curves within 0.5 % of
# their maximum with the same bandwidth and 0.6 % with each its own. Tolerances below: ~2-3x that.
BW_RTOL = 1e-2  # relative bandwidth error (or the one-bin quartile bound, for small groups)
CURVE_TOL = 5e-3  # max |binned - raw| / max(raw), large samples
CURVE_TOL_SMALL_GROUPS = 1e-2  # same, test DB, same bandwidth
CURVE_TOL_SMALL_GROUPS_OWN_BW = 2e-2  # same, test DB, each its own bandwidth


def raw_kde(x, grid):
    from KDEpy import FFTKDE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = FFTKDE(kernel="gaussian", bw="silverman").fit(x)
        return k.evaluate(grid), k.bw


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    """A DB small enough to hold in memory, analysed with fine histograms."""
    path = tmp_path_factory.mktemp("plots_db") / "dataset.h5"
    write_synth_db(path, layout="v1.0", seed=5, n_models=8)
    a = pipeline.analyse(
        str(path),
        axes_from_config(DEFAULT_AXES),
        fine_bins=1024,
        density={"pairs": [[0, 1]], "bins": 128, "extent": [-3.3, 3.3]},
    )
    x, _ = load_all(path)
    coef = (study_scale(x) - a.pca.mean) @ a.pca.components.T  # the default precision's scaling
    return a, coef


@pytest.mark.parametrize("axis", ["task", "depth"])
def test_binned_kde_matches_fftkde_on_raw_points(small_db, axis):
    a, coef = small_db
    layers = a.db.layers
    ax = Axis.from_config(axis, DEFAULT_AXES[axis])
    labels = layer_labels(layers, ax)
    groups = list(a.groups[axis]["group"])
    cell_of_layer, cells = pipeline.cell_table(layers, 10)
    counts = kde.group_cell_counts(labels, cell_of_layer, a.hist["cell_counts"], groups)
    edges = a.hist["cell_edges"]
    grid, dens, bws = kde.group_kdes(counts, edges)
    row_label = np.repeat(labels.to_numpy(dtype=object), layers["n_filters"].to_numpy())
    h = edges[1] - edges[0]
    worst = {"bw": 0.0, "curve_same_bw": 0.0, "curve": 0.0}
    for g, name in enumerate(groups):
        xg = coef[row_label == name]
        n = xg.shape[0]
        assert counts[g].sum() == n * 9  # every filter of the group, each coefficient
        for i in range(9):
            # the group's fine histogram is the histogram of its raw coefficients
            ref = np.histogram(xg[:, i], edges)[0]
            assert np.abs(counts[g, i] - ref).sum() <= 2  # (a point exactly on an edge may move)
            y_raw, bw_raw = raw_kde(xg[:, i], grid)
            # bandwidth: within 1 %, or within what one bin of error on each quartile gives
            # (binned quartiles are exact to a bin width; matters only for groups of < ~1000 filters)
            quartile_bound = 2 * h / kde.IQR_NORMAL * (3 * n / 4) ** -0.2
            assert abs(bws[g, i] - bw_raw) <= max(BW_RTOL * bw_raw, quartile_bound), (name, i, n)
            worst["bw"] = max(worst["bw"], abs(bws[g, i] - bw_raw) / bw_raw)
            # curves: the binning alone (same bandwidth), then everything (each its own bandwidth)
            y_same = kde.binned_kde(counts[g, i], edges, bw_raw, grid)[1]
            worst["curve_same_bw"] = max(worst["curve_same_bw"], np.abs(y_same - y_raw).max() / y_raw.max())
            worst["curve"] = max(worst["curve"], np.abs(dens[g, i] - y_raw).max() / y_raw.max())
    print(axis, worst)
    assert worst["curve_same_bw"] < CURVE_TOL_SMALL_GROUPS, worst
    assert worst["curve"] < CURVE_TOL_SMALL_GROUPS_OWN_BW, worst


@pytest.mark.parametrize("dist", ["normal", "laplace", "bimodal"])
def test_binned_silverman_and_percentiles(dist):
    rng = np.random.default_rng(0)
    n = 20000
    x = {
        "normal": rng.normal(0.1, 0.5, n),
        "laplace": rng.laplace(0, 0.3, n),
        "bimodal": np.r_[rng.normal(-1, 0.2, n // 2), rng.normal(0.8, 0.4, n // 2)],
    }[dist]
    edges = np.linspace(x.min(), x.max(), 1025)
    counts = np.histogram(x, edges)[0]
    h = edges[1] - edges[0]
    for q in (5, 25, 50, 75, 95):
        assert abs(kde.binned_percentile(counts, edges, q) - np.percentile(x, q)) <= h
    bw_raw = KDEpy.bw_selection.silvermans_rule(x.reshape(-1, 1))
    assert kde.silverman_bandwidth(x) == pytest.approx(bw_raw, rel=1e-12)
    assert kde.silverman_bandwidth_binned(counts, edges) == pytest.approx(bw_raw, rel=BW_RTOL)
    grid, y, bw = kde.binned_kde(counts, edges)
    assert np.trapezoid(y, grid) == pytest.approx(1.0, abs=1e-3)
    y_raw, _ = raw_kde(x, grid)
    assert np.abs(y - y_raw).max() / y_raw.max() < CURVE_TOL


def test_group_cell_counts_rejects_axis_splitting_a_cell():
    labels = pd.Series(["a", "b", "a"])
    cell_counts = np.ones((2, 9, 4), np.int64)
    with pytest.raises(ValueError, match="not a union"):
        kde.group_cell_counts(labels, np.array([0, 0, 1]), cell_counts, ["a", "b"])
    cell_counts = np.arange(3 * 9 * 4).reshape(3, 9, 4)
    out = kde.group_cell_counts(pd.Series(["a", np.nan, "b"]), np.array([0, 1, 2]), cell_counts, ["b", "a"])
    assert np.array_equal(out, cell_counts[[2, 0]])


# ---------------------------------------------------------------------------------------------
# Figures


def _figures(small_db):
    a, _ = small_db
    p = a.pca
    d = a.drift["task"]
    groups = list(d["group"])
    dm = d.iloc[:, 1:].to_numpy()
    counts = np.stack([a.hist["cell_counts"][:3].sum(axis=0), a.hist["cell_counts"][3:6].sum(axis=0)])
    grid, dens, _ = kde.group_kdes(counts, a.hist["cell_edges"])
    return {
        "cumulative_variance": plots.cumulative_variance(p.explained_variance_ratio),
        "covariance": plots.pixel_covariance(p.covariance),
        "eigenimages": plots.eigenimages(p.components, p.explained_variance_ratio),
        "subset": plots.eigenimage_grid(["x", "y"], [p.components, None], [p.explained_variance_ratio, None], [10, 1]),
        "ridge": plots.ridge_plot(grid, dens, ["a", "b"], a.range),
        "drift": plots.drift_heatmap(dm, groups),
        "box": plots.drift_boxplot({"task": dm[np.triu_indices(len(dm), 1)], "none": np.zeros(0)}),
        "density": plots.density_image(a.hist["density"][0], a.hist["density_edges"], (0, 1)),
    }


def test_renders_are_byte_identical(small_db, tmp_path):
    first = _figures(small_db)
    second = _figures(small_db)
    for name in first:
        for ext in ("svg", "png"):
            p1, p2 = tmp_path / f"{name}_1.{ext}", tmp_path / f"{name}_2.{ext}"
            plots.save(first[name], p1)
            plots.save(second[name], p2)
            b = p1.read_bytes()
            assert b == p2.read_bytes(), f"{name}.{ext} differs between two renders"
            assert b"Date" not in b and (ext == "png" or b"<dc:date>" not in b)
            if ext == "png":
                assert b"Software" not in b and b"Matplotlib version" not in b


def _more_figures(small_db):
    """Figure kinds of the workflow beyond _figures: shared colour scale, legend, equal aspect on
    data limits, a many-group rasterised ridge plot."""
    d = small_db[0].drift["task"]
    dm = d.iloc[:, 1:].to_numpy()
    rng = np.random.default_rng(3)
    coords = rng.normal(size=(12, 2))
    x = np.linspace(-3, 3, 300)
    dens = np.exp(-((x[None, None, :] - rng.normal(size=(14, 9, 1))) ** 2))
    return {
        "combined": plots.drift_combined([("Task", list(d["group"]), dm), ("Other", ["p", "q"], np.eye(2)[::-1])]),
        "embedding": plots.models_embedding(coords, list("aabbbccddeef"), [f"m{k}" for k in range(12)], legend_max=3),
        "ridge_many": plots.ridge_plot(x, dens, [f"group {k}" for k in range(14)], (-3, 3)),
    }


def test_save_equals_plain_savefig(small_db, tmp_path):
    """plots.save skips the invisible first drawing of savefig (layout only): every figure kind,
    SVG then PNG as the workflow saves them, has the bytes of plain ``Figure.savefig``."""
    import matplotlib

    def plain(fig, path):
        ext = path.suffix[1:]
        kw = {"format": ext, "metadata": plots.SVG_METADATA if ext == "svg" else plots.PNG_METADATA}
        if ext == "png":
            kw["dpi"] = plots.STYLE["savefig.dpi"]
        with matplotlib.rc_context(plots.STYLE):
            fig.savefig(path, **kw)

    fast, slow = {**_figures(small_db), **_more_figures(small_db)}, {**_figures(small_db), **_more_figures(small_db)}
    hits = []
    real = plots._drawing_disabled
    plots._drawing_disabled = lambda r: hits.append(real(r)) or hits[-1]
    try:
        for name in fast:
            for ext in ("svg", "png"):
                p1, p2 = tmp_path / f"{name}_fast.{ext}", tmp_path / f"{name}_plain.{ext}"
                plots.save(fast[name], p1)
                plain(slow[name], p2)
                assert p1.read_bytes() == p2.read_bytes(), f"{name}.{ext}"
    finally:
        plots._drawing_disabled = real
    assert sum(hits) == 2 * len(fast)  # the shortcut was taken: one disabled draw per save
    assert "draw" not in fast["ridge"].__dict__  # the figure is left as it was


def test_save_is_atomic(tmp_path):
    """A save that fails half-way leaves neither the figure nor a temporary file."""
    fig = plots.cumulative_variance(np.full(9, 1 / 9))
    plots.save(fig, tmp_path / "ok.svg")
    assert [p.name for p in tmp_path.iterdir()] == ["ok.svg"]

    def broken(path, **kw):
        Path(path).write_text("<svg")
        raise OSError(28, "No space left on device")

    fig.savefig = broken
    for name in ("f.svg", "f.png"):
        with pytest.raises(OSError):
            plots.save(fig, tmp_path / name)
    assert [p.name for p in tmp_path.iterdir()] == ["ok.svg"]


def test_figure_contents(small_db):
    a, _ = small_db
    figs = _figures(small_db)
    eig = figs["eigenimages"]
    titles = [ax.get_title() for ax in eig.axes if ax.get_title()]
    assert len(titles) == 9 and titles[0].startswith("c0 ")
    ims = [ax.images[0] for ax in eig.axes if ax.images]
    assert all(im.get_cmap().name == "seismic" and im.get_clim() == (-1, 1) for im in ims)
    # density: divided by max, LogNorm 1e-5..1, empty cells in the lowest colour
    im = [ax for ax in figs["density"].axes if ax.images][0].images[0]
    arr = np.asarray(im.get_array())
    c = a.hist["density"][0]
    assert arr.max() == 1.0 and arr.min() == plots.DENSITY_VMIN
    assert np.all(arr.T[c == 0] == plots.DENSITY_VMIN)
    assert im.norm.vmin == 1e-5 and im.norm.vmax == 1.0 and type(im.norm).__name__ == "LogNorm"
    assert im.get_cmap().name.startswith("cet_fire")
    # drift heatmap annotated when small, not when large
    assert len(figs["drift"].axes[0].texts) == len(a.drift["task"]) ** 2
    big = np.random.default_rng(0).uniform(size=(14, 14))
    assert len(plots.drift_heatmap(big, [str(k) for k in range(14)]).axes[0].texts) == 0


def test_ridge_plot_many_groups_has_every_label():
    rng = np.random.default_rng(2)
    G = 18
    edges = np.linspace(-2, 2, 257)
    counts = np.stack(
        [[np.histogram(rng.normal(0, 0.3 + 0.02 * g, 500), edges)[0] for _ in range(9)] for g in range(G)]
    )
    grid, dens, _ = kde.group_kdes(counts, edges)
    names = [f"group number {g}" for g in range(G)]
    fig = plots.ridge_plot(grid, dens, names, (-2, 2))
    assert len(fig.axes) == 9
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == names
    assert all(ax.get_xlim() == (-2, 2) for ax in fig.axes)
    assert fig.get_size_inches()[1] >= 0.3 * G


# -- per-group results of an axis (filterdb.subsets), as the figure jobs compute them


@pytest.mark.parametrize("axis", ["visual_category", "task", "depth", "pretrained"])
def test_subset_pcas_match_in_memory_pca(synth_db, axis):
    """The subset PCA from per-layer sums is the PCA of the group's peak-scaled filters."""
    from filterdb import pca
    from filterdb.subsets import SUBSET_COLUMNS, subset_pcas

    _, path, _ = synth_db
    a = pipeline.analyse(path, axes_from_config(DEFAULT_AXES))
    layers = a.db.layers
    ax = Axis.from_config(axis, DEFAULT_AXES[axis])
    groups = list(a.groups[axis]["group"])
    s = subset_pcas(layers, a.sums, ax, groups)
    assert s.groups == [str(g) for g in groups]
    assert list(s.table.columns) == SUBSET_COLUMNS
    x = study_scale(load_all(path)[0])  # the default precision's scaling
    row_label = np.repeat(layer_labels(layers, ax).to_numpy(dtype=object), layers["n_filters"].to_numpy())
    for k, g in enumerate(s.groups):
        xg = x[row_label == g]
        assert s.n[k] == len(xg) == a.groups[axis]["n_filters"].iloc[k]
        if len(xg) < 2:
            assert s.components[k] is None and g not in set(s.table["group"])
            continue
        cov = np.cov(xg, rowvar=False, ddof=1)
        evals, evecs = np.linalg.eigh(cov)
        order = np.argsort(evals)[::-1]
        evals = np.clip(evals[order], 0, None)
        ref = pca.orient(evecs[:, order].T)
        np.testing.assert_allclose(s.explained_variance_ratio[k], evals / evals.sum(), rtol=0, atol=1e-12)
        # components of (near-)equal eigenvalues are not unique: compare the well-separated ones
        gap = np.abs(np.diff(evals)) > 1e-6 * evals[0]
        sep = np.r_[gap[0], gap[:-1] & gap[1:], gap[-1]]
        np.testing.assert_allclose(s.components[k][sep], ref[sep], rtol=0, atol=1e-8)
        rows = s.table[s.table["group"] == g]
        assert list(rows["component"]) == [f"c{i}" for i in range(9)] and (rows["n_filters"] == len(xg)).all()
        np.testing.assert_array_equal(rows[[f"w{i}" for i in range(9)]].to_numpy(), s.components[k])


def test_subset_pcas_default_groups_and_small_groups(synth_db):
    """Without a groups list, the axis' group table decides; a group of < 2 filters has no PCA."""
    from filterdb.subsets import subset_pcas

    _, path, _ = synth_db
    a = pipeline.analyse(path, axes_from_config({"task": DEFAULT_AXES["task"]}))
    ax = Axis.from_config("task", DEFAULT_AXES["task"])
    s = subset_pcas(a.db.layers, a.sums, ax)
    assert sorted(s.groups) == sorted(str(g) for g in a.groups["task"]["group"])
    s = subset_pcas(a.db.layers, a.sums, ax, ["no such group"])
    assert s.n.tolist() == [0] and s.components == [None] and s.table.empty


def test_group_ridges_are_the_kdes_of_the_groups_cells(small_db):
    from filterdb.subsets import RIDGE_COLUMNS, group_ridges

    a, coef = small_db
    layers = a.db.layers
    cell_of_layer, _ = pipeline.cell_table(layers, 10)
    for axis in ("task", "depth", "pretrained"):
        ax = Axis.from_config(axis, DEFAULT_AXES[axis])
        groups = list(a.groups[axis]["group"])
        r = group_ridges(layers, ax, cell_of_layer, a.hist["cell_counts"], a.hist["cell_edges"], groups)
        counts = kde.group_cell_counts(layer_labels(layers, ax), cell_of_layer, a.hist["cell_counts"], groups)
        grid, dens, bw = kde.group_kdes(counts, a.hist["cell_edges"])
        np.testing.assert_array_equal(r.grid, grid)
        np.testing.assert_array_equal(r.density, dens)
        assert list(r.table.columns) == RIDGE_COLUMNS and len(r.table) == 9 * len(groups)
        assert list(r.table["group"][::9]) == [str(g) for g in groups]
        np.testing.assert_array_equal(r.table["bandwidth"].to_numpy(), bw.ravel())
        n = r.table.groupby("group", sort=False)["n"].first()
        assert list(n) == list(a.groups[axis]["n_filters"])  # every filter of the group, per coefficient


def test_fire_colour_map_is_colorcets():
    """filterdb.colormaps carries colorcet's `fire` as data (no colorcet import in the figure jobs):
    the same 256 colours as colorcet's list, the same colour map (every lookup) as the `cet_fire`
    colorcet registers with matplotlib."""
    import colorcet
    import matplotlib

    from filterdb import colormaps

    assert [list(map(float, c)) for c in colorcet.linear_kryw_0_100_c71] == [list(c) for c in colormaps.FIRE]
    theirs, mine = matplotlib.colormaps["cet_fire"], colormaps.fire()
    x = np.linspace(-0.1, 1.1, 4001)
    assert mine.name == "cet_fire" and mine.N == theirs.N == 256
    assert np.array_equal(mine(x), theirs(x)) and np.array_equal(mine(x, bytes=True), theirs(x, bytes=True))
    assert mine(np.nan) == theirs(np.nan)
