"""The zoo's structure (filterdb.zoo, rule models): model x model drift, clustering, embedding and
nearest models, against plain recomputations (numpy, scipy) and through Snakemake."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import dendrogram, leaves_list, linkage
from scipy.spatial.distance import squareform
from scipy.stats import entropy

from filterdb import pipeline, plots, results, zoo
from filterdb.axes import Axis, axes_from_config
from filterdb.synth import write_synth_db
from tests.conftest import DEFAULT_AXES, load_all, study_scale

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
EPS32 = np.finfo(np.float32).eps


# ---------------------------------------------------------------------------------------------
# Plain references


def plain_coefficients(path):
    """The scaled filters' PCA coefficients (study float16 scaling, centred, components with their
    largest loading positive), the explained variance ratios and the model of every filter row."""
    x, meta = load_all(path)
    xs = study_scale(x)
    mean = xs.mean(axis=0)
    vals, vecs = np.linalg.eigh(np.cov(xs, rowvar=False))
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order].T
    vecs = np.array([v * np.sign(v[np.argmax(np.abs(v))]) for v in vecs])
    model = np.empty(len(xs), dtype=object)
    for _, row in meta.iterrows():
        v = row["filter_ids"]
        a, b = (int(v.split(":")[0]), int(v.split(":")[1]) + 1) if isinstance(v, str) else (int(v[0]), int(v[-1]) + 1)
        model[a:b] = row["model"]
    return (xs - mean) @ vecs.T, vals / vals.sum(), model


def plain_model_drift(coef, model, weights, lo, hi, bins=70):
    """Per model (name order) the density-floored histograms of its filters' coefficients over
    [lo, hi], and D between every pair by the definition (scipy's KL)."""
    names = sorted(set(model))
    dist = {}
    for m in names:
        sel = coef[model == m]
        p = []
        for c in range(9):
            v, _ = np.histogram(sel[:, c], range=(lo, hi), bins=bins, density=True)
            v = np.nan_to_num(v)  # a model with no value in range: all zero
            v[v == 0] = EPS32
            p.append(v / v.sum())
        dist[m] = p
    d = np.array(
        [
            [
                sum(weights[c] * (entropy(dist[a][c], dist[b][c]) + entropy(dist[b][c], dist[a][c])) for c in range(9))
                for b in names
            ]
            for a in names
        ]
    )
    return names, d


@pytest.fixture(scope="module")
def analysed(synth_db):
    layout, path, _ = synth_db
    a = pipeline.analyse(path, axes_from_config(DEFAULT_AXES), shards=1)
    coef, evr, model = plain_coefficients(path)
    return path, a, coef, evr, model


# ---------------------------------------------------------------------------------------------
# The drift matrix


def test_model_drift_equals_plain_recomputation(analysed):
    _, a, coef, evr, model = analysed
    z = zoo.analyse(a.db.layers, a.hist, a.pca.explained_variance_ratio)
    names, want = plain_model_drift(coef, model, evr, coef.min(), coef.max())
    assert z.names == names
    np.testing.assert_allclose(z.d, want, rtol=1e-9, atol=1e-12)
    assert np.array_equal(z.d, z.d.T) and np.all(np.diag(z.d) == 0)
    assert z.summary["n_models"] == len(names) and z.summary["model_column"] == "model"
    assert z.summary["D_max"] == pytest.approx(want.max(), rel=1e-9)


def test_equal_weights_variant_equals_plain_formula(analysed):
    _, a, coef, _, model = analysed
    s = zoo.ZooSettings(weights="equal")
    z = zoo.analyse(a.db.layers, a.hist, a.pca.explained_variance_ratio, s)
    _, want = plain_model_drift(coef, model, np.full(9, 1 / 9), coef.min(), coef.max())
    np.testing.assert_allclose(z.d, want, rtol=1e-9, atol=1e-12)


def test_fixed_range_variant_uses_the_fixed_histograms(analysed):
    """models.range [lo, hi]: hist.npz fixed_counts (built here in memory, per layer, with numpy)."""
    _, a, coef, _, model = analysed
    lo, hi = -1.5, 1.0  # narrower than the data: some values fall outside and are not counted
    edges = np.linspace(lo, hi, 71)
    layers = a.db.layers
    fixed = np.zeros((len(layers), 9, 70), np.uint32)
    for k, row in enumerate(layers.itertuples()):
        for c in range(9):
            fixed[k, c] = np.histogram(coef[row.row_start : row.row_end, c], bins=edges)[0]
    hist = {**a.hist, "fixed_counts": fixed, "fixed_edges": edges}
    s = zoo.ZooSettings(weights="equal", range=[lo, hi])
    z = zoo.analyse(layers, hist, a.pca.explained_variance_ratio, s)
    _, want = plain_model_drift(coef, model, np.full(9, 1 / 9), lo, hi)
    np.testing.assert_allclose(z.d, want, rtol=1e-9, atol=1e-12)
    outside = np.mean((coef < lo) | (coef > hi))
    assert z.summary["outside_range_share"] == pytest.approx(outside, rel=1e-12)
    assert (z.summary["range"], z.summary["range_lo"], z.summary["range_hi"]) == ("fixed", lo, hi)
    with pytest.raises(ValueError, match=r"^stats/hist.npz has no fixed_counts: config models/range is \[-1.5, 1\]"):
        zoo.analyse(layers, a.hist, a.pca.explained_variance_ratio, s)
    with pytest.raises(ValueError, match=r"fixed_edges span \[-1.5, 1\], config models/range is \[-3, 3\]"):
        zoo.analyse(layers, hist, a.pca.explained_variance_ratio, zoo.ZooSettings(range=[-3, 3]))
    with pytest.raises(ValueError, match="lo < hi"):
        zoo.model_histograms(hist, [1, 1])


def test_blocked_matrix_equals_the_definition_for_any_chunk():
    rng = np.random.default_rng(4)
    counts = rng.poisson(rng.uniform(0, 20, size=(11, 9, 30)))
    counts[rng.random(counts.shape) < 0.3] = 0
    edges = np.linspace(-2, 2, 31)
    from filterdb import divergence

    p = divergence.probabilities(counts, edges=edges)
    w = rng.dirichlet(np.ones(9))
    want = np.array(
        [[np.sum(w * np.sum((p[a] - p[b]) * np.log(p[a] / p[b]), axis=1)) for b in range(11)] for a in range(11)]
    )
    for chunk in (1, 3, 4, 11, 100):
        got = zoo.drift_matrix(p, w, chunk=chunk)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
        assert np.array_equal(got, got.T) and np.all(np.diag(got) == 0) and np.all(got >= 0)


# ---------------------------------------------------------------------------------------------
# Clustering, embedding, nearest models


def random_drift(m, seed=0):
    """A symmetric, non-Euclidean dissimilarity with a zero diagonal."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, 3))
    d = ((x[:, None] - x[None]) ** 2).sum(-1) + rng.uniform(0, 0.5, (m, m))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0)
    return d


@pytest.mark.parametrize("method", zoo.LINKAGES)
@pytest.mark.parametrize("optimal", [True, False, "auto"])
def test_clustering_equals_scipy(method, optimal):
    d = random_drift(17, seed=1)
    z = zoo.cluster(d, method, optimal)
    want = linkage(squareform(d, checks=False), method=method, optimal_ordering=optimal in (True, "auto"))
    assert np.array_equal(z, want)
    assert np.array_equal(zoo.leaf_order(z), leaves_list(want))
    t = zoo.linkage_frame(z)
    assert list(t.columns) == ["step", "cluster", "left", "right", "height", "n_models"]
    assert list(t["cluster"]) == list(range(17, 33))
    assert np.array_equal(zoo.linkage_from_frame(t), want)
    # the dendrogram's links as scipy draws them (leaf k at 5 + 10 k, here at k)
    ref = dendrogram(want, no_plot=True)
    assert ref["leaves"] == list(leaves_list(want))
    got = zoo.dendrogram_lines(z, zoo.leaf_order(z))
    drawn = {
        tuple(np.round(np.c_[(np.array(i) - 5) / 10, dd], 9).ravel()) for i, dd in zip(ref["icoord"], ref["dcoord"])
    }
    assert {tuple(np.round(s, 9).ravel()) for s in got} == drawn


def test_euclidean_linkages_are_refused_with_one_line():
    for method in zoo.EUCLIDEAN_LINKAGES:
        with pytest.raises(ValueError, match=rf"^config models/linkage: '{method}' assumes Euclidean distances") as e:
            zoo.cluster(random_drift(5), method)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="is not one of average, complete, single, weighted"):
        zoo.cluster(random_drift(5), "upgma")


@pytest.mark.parametrize("m", [23, zoo.DENSE_MDS_MAX + 20])  # every eigenvector at once; Lanczos
def test_mds_is_the_double_centred_eigendecomposition(m):
    d = random_drift(m, seed=2)
    coords, w = zoo.classical_mds(d)
    j = np.eye(m) - np.ones((m, m)) / m
    b = -0.5 * j @ d @ j
    vals, vecs = np.linalg.eigh(b)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    np.testing.assert_allclose(w, vals, rtol=1e-12, atol=1e-12 * np.abs(vals).max())
    for k in range(2):
        v = vecs[:, k] * np.sign(vecs[np.argmax(np.abs(vecs[:, k])), k])  # the documented sign
        np.testing.assert_allclose(coords[:, k], v * np.sqrt(vals[k]), rtol=0, atol=1e-9)
        assert coords[np.argmax(np.abs(coords[:, k])), k] > 0
    neg = -vals[vals < -1e-10].sum()
    shares = zoo.spectrum_shares(w)
    assert shares["negative_share"] == pytest.approx(neg / np.abs(vals).sum(), rel=1e-9)
    assert shares["shown_share"] == pytest.approx(vals[:2].sum() / vals[vals > 1e-10].sum(), rel=1e-9)


def test_mds_of_squared_euclidean_distances_recovers_the_points():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(15, 2)) * [3.0, 1.0]
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    coords, w = zoo.classical_mds(d)
    got = ((coords[:, None] - coords[None]) ** 2).sum(-1)
    np.testing.assert_allclose(got, d, rtol=1e-9, atol=1e-9)
    assert zoo.spectrum_shares(w)["negative_share"] == 0.0
    assert zoo.spectrum_shares(w)["shown_share"] == pytest.approx(1.0, rel=1e-12)


def test_nearest_models_equal_a_plain_loop():
    d = random_drift(9, seed=5)
    d[2, 7] = d[7, 2] = d[2, 4] = d[4, 2] = 0.01  # a tie: broken by name order
    names = [f"m{k}" for k in range(9)]
    t = zoo.nearest_models(d, names, k=3, chunk=4)
    assert list(t.columns) == ["model", "rank", "neighbour", "drift"]
    for a in range(9):
        want = sorted((d[a, b], b) for b in range(9) if b != a)[:3]
        got = t[t["model"] == names[a]]
        assert list(got["rank"]) == [1, 2, 3]
        assert list(got["neighbour"]) == [names[b] for _, b in want]
        assert list(got["drift"]) == [v for v, _ in want]
    assert t[t["model"] == "m2"]["neighbour"].tolist()[:2] == ["m4", "m7"]
    assert len(zoo.nearest_models(d[:3, :3], names[:3], k=5)) == 3 * 2  # at most M - 1 neighbours


# ---------------------------------------------------------------------------------------------
# Models, labels, when the analysis runs


def toy_layers():
    return pd.DataFrame(
        {
            "model_id": [0, 0, 1, 1, 2, 3, 3, 4],
            "model": ["b", "b", "a", "a", "c", "d", "d", "e"],
            "n_filters": [4, 4, 2, 0, 3, 5, 5, 0],
            "Task": ["x", "x", "x", "y", "y", "z", None, "z"],
            "Pretraining-Dataset": ["", "", "I", "I", "", "I", "", ""],
            "conv_depth_norm": [0.0, 1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0],
        }
    )


def test_model_labels_single_mixed_none_and_binned():
    layers = toy_layers()
    assert zoo.model_names(layers) == ["a", "b", "c", "d"]  # e holds no filter
    task = zoo.model_labels(layers, Axis(name="task", column="Task"))
    assert list(task.index) == ["a", "b", "c", "d"] and task.index.name == "model"
    assert task["b"] == "x" and task["c"] == "y"
    assert pd.isna(task["a"]) and pd.isna(task["d"])  # mixed labels; a layer without one
    pre = zoo.model_labels(layers, Axis(name="pretrained", column="Pretraining-Dataset", kind="present"))
    assert pre[["a", "b", "c"]].tolist() == ["yes", "no", "no"] and pd.isna(pre["d"])  # d: yes and no
    depth = zoo.model_labels(layers, Axis(name="depth", column="conv_depth_norm", kind="binned"))
    assert list(depth.index) == ["a", "b", "c", "d"] and depth.isna().all()
    assert zoo.label_axes(DEFAULT_AXES) == [a for a in DEFAULT_AXES if a != "depth"]


def test_model_id_names_when_model_column_is_incomplete():
    layers = toy_layers()
    layers.loc[2, "model"] = ""
    key, col = zoo.model_key(layers)
    assert col == "model_id" and zoo.model_names(layers) == ["0", "1", "2", "3"]
    layers = pd.DataFrame({"model_id": [10, 2, 2, 33], "n_filters": [1, 1, 1, 1]})
    assert zoo.model_names(layers) == ["2", "10", "33"]  # numeric ids in numeric order


def test_fewer_than_three_models_is_one_line(analysed):
    _, a, _, _, _ = analysed
    layers = a.db.layers
    two = layers["model"].isin(sorted(layers["model"].unique())[:2]).to_numpy()
    hist = {"counts": a.hist["counts"][two], "edges": a.hist["edges"]}
    with pytest.raises(ValueError, match="needs at least 3 models with filters, the DB has 2"):
        zoo.analyse(layers[two].reset_index(drop=True), hist, a.pca.explained_variance_ratio)


def test_count_models_and_the_auto_decision(synth_db, tmp_path):
    _, path, layers = synth_db
    assert zoo.count_models(path) == pd.read_hdf(path, "meta").reset_index()["model_id"].nunique()
    assert zoo.count_models(tmp_path / "missing.h5") is None
    assert zoo.decide("auto", 2, 5000)[0] is False
    assert zoo.decide("auto", 3, 5000)[0] is True
    assert zoo.decide("auto", 5001, 5000)[0] is False
    assert zoo.decide("auto", None, 5000)[0] is True  # not known yet: the job checks
    assert zoo.decide(True, 2, 5000)[0] is True and zoo.decide(False, 100, 5000)[0] is False
    tables = zoo.empty_frames(["task"], "2 models")
    assert all(len(t) == 0 for k, t in tables.items() if k != "summary")
    assert list(tables["embedding"].columns)[-1] == "task"


def test_defaults_are_the_schemas_and_config_yaml_keeps_them():
    import yaml

    from filterdb.settings import schema_defaults

    d = schema_defaults()["models"]
    s = zoo.ZooSettings()
    assert (s.weights, s.range, s.linkage, s.optimal_ordering, s.nearest) == (
        d["weights"],
        d["range"],
        d["linkage"],
        d["optimal_ordering"],
        d["nearest"],
    )
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())["models"]
    assert {k: v for k, v in cfg.items() if k != "axes"} == {k: v for k, v in d.items() if k != "axes"}
    assert zoo.ZooSettings.from_config({"weights": "equal", "enabled": True}) == zoo.ZooSettings(weights="equal")


def test_heatmap_block_means_equal_a_plain_loop():
    d = random_drift(23, seed=7)
    got = plots.block_means(d, 10)  # k = 3: blocks 0-2, 3-5, ..., 21-22
    starts = list(range(0, 23, 3))
    want = np.array([[d[a : a + 3, b : b + 3].mean() for b in starts] for a in starts])
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert plots.block_means(d, 23) is not None and np.array_equal(plots.block_means(d, 23), d)


def test_figures_are_reproducible(tmp_path):
    d = random_drift(12, seed=6)
    z = zoo.cluster(d)
    o = zoo.leaf_order(z)
    names = [f"model-{k}" for k in range(12)]
    coords, _ = zoo.classical_mds(d)
    labels = ["a"] * 5 + ["b"] * 4 + [None, "c", np.nan]
    for k in range(2):
        plots.save_all(
            plots.models_heatmap(d[np.ix_(o, o)], [names[i] for i in o], zoo.dendrogram_lines(z, o)),
            [tmp_path / f"h{k}.svg"],
        )
        plots.save_all(plots.models_embedding(coords, labels, names, legend_max=2), [tmp_path / f"e{k}.svg"])
    assert (tmp_path / "h0.svg").read_bytes() == (tmp_path / "h1.svg").read_bytes()
    assert (tmp_path / "e0.svg").read_bytes() == (tmp_path / "e1.svg").read_bytes()
    fig = plots.models_embedding(coords, labels, names, legend_max=2)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["a (5)", "b (4)", "other: 1 groups (1)", "no single label (2)"]


# ---------------------------------------------------------------------------------------------
# Through Snakemake

pytestmark_wf = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")
TABLES = ["drift", "linkage", "order", "embedding", "nearest", "summary"]


def zoo_files(res):
    label = [a for a in DEFAULT_AXES if a != "depth"]
    figs = ["models_heatmap"] + [f"models_embedding_{a}" for a in label]
    return [f"{res}/models/{t}.tsv" for t in TABLES] + [f"{res}/figures/{f}.{e}" for f in figs for e in ("svg", "png")]


def snakemake(tmp, *args, configs=()):
    """Snakemake in ``tmp`` with config.yaml and ``configs`` (later files override keys)."""
    cmd = [
        SNAKEMAKE,
        *args,
        "--cores",
        "2",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp),
        "--configfile",
        str(ROOT / "config.yaml"),
        *map(str, configs),
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    if SNAKEMAKE is None:
        pytest.skip("snakemake not installed")
    tmp = tmp_path_factory.mktemp("zoo_wf")
    db = tmp / "dataset.h5"
    write_synth_db(db, layout="v1.0", seed=9, n_models=9)
    res = snakemake(tmp, *zoo_files("res"), "--config", f"dataset={db}", "results=res")
    assert res.returncode == 0, res.stderr[-3000:]
    return tmp, db


@pytestmark_wf
def test_workflow_writes_the_zoo_tables_as_the_library(workflow_run):
    tmp, _ = workflow_run
    res = tmp / "res"
    for f in zoo_files(res):
        assert Path(f).stat().st_size > 0, f
    layers = results.read_layers(res / "stats/layers.tsv")
    z = zoo.analyse(layers, results.load_npz(res / "stats/hist.npz"), results.read_evr(res / "pca/basis.tsv"))
    names, d = zoo.read_drift(res / "models/drift.tsv")
    assert names == z.names and np.array_equal(d, z.d)
    t = pd.read_csv(res / "models/drift.tsv", sep="\t")
    assert t.columns[0] == "model" and list(t.columns[1:]) == names
    assert np.array_equal(zoo.linkage_from_frame(pd.read_csv(res / "models/linkage.tsv", sep="\t")), z.linkage)
    order = pd.read_csv(res / "models/order.tsv", sep="\t")
    assert list(order["row"]) == list(z.order) and list(order["model"]) == [names[k] for k in z.order]
    emb = pd.read_csv(res / "models/embedding.tsv", sep="\t")
    np.testing.assert_array_equal(emb[["x", "y"]].to_numpy(), z.coords)
    assert list(emb.columns) == ["model", "x", "y", "n_layers", "n_filters"] + [a for a in DEFAULT_AXES if a != "depth"]
    pd.testing.assert_frame_equal(pd.read_csv(res / "models/nearest.tsv", sep="\t"), z.nearest, check_dtype=False)
    summary = pd.read_csv(res / "models/summary.tsv", sep="\t").set_index("quantity")["value"]
    assert float(summary["cophenetic_correlation"]) == z.summary["cophenetic_correlation"]
    assert "binned axes depth: layer properties, not model labels" in (res / "logs/models.log").read_text()
    assert (res / "benchmarks/models.tsv").exists()


@pytestmark_wf
def test_workflow_figures_are_reproducible_and_in_the_report(workflow_run):
    tmp, db = workflow_run
    figs = {f: Path(f).read_bytes() for f in zoo_files(tmp / "res") if f.endswith((".svg", ".png"))}
    res = snakemake(tmp, *zoo_files("res"), "--forcerun", "models", "--config", f"dataset={db}", "results=res")
    assert res.returncode == 0, res.stderr[-3000:]
    for f, b in figs.items():
        assert Path(f).read_bytes() == b, f
    html = tmp / "report.html"
    res = snakemake(tmp, *zoo_files("res"), "--report", str(html), "--config", f"dataset={db}", "results=res")
    assert res.returncode == 0, res.stderr[-3000:]
    text = html.read_text()
    assert '"Models"' in text
    for f in ("models_heatmap.svg", "models_embedding_task.svg", "drift.tsv", "linkage.tsv", "nearest.tsv"):
        assert f in text, f


@pytestmark_wf
def test_workflow_fixed_range_and_equal_weights(workflow_run):
    """models.range [-3, 3], weights equal: the hist pass counts the fixed range (hist.npz
    fixed_counts) and the matrix equals the plain per-model recomputation."""
    tmp, db = workflow_run
    extra = tmp / "models_fixed.yaml"
    extra.write_text("models:\n  range: [-3, 3]\n  weights: equal\n")
    res = snakemake(tmp, *zoo_files("resf"), "--config", f"dataset={db}", "results=resf", configs=[extra])
    assert res.returncode == 0, res.stderr[-3000:]
    coef, _, model = plain_coefficients(db)
    names, want = plain_model_drift(coef, model, np.full(9, 1 / 9), -3.0, 3.0)
    got_names, got = zoo.read_drift(tmp / "resf/models/drift.tsv")
    assert got_names == names
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    summary = pd.read_csv(tmp / "resf/models/summary.tsv", sep="\t").set_index("quantity")["value"]
    assert (summary["weights"], summary["range"], float(summary["range_lo"])) == ("equal", "fixed", -3.0)


@pytestmark_wf
def test_enabled_false_gives_no_models_targets(workflow_run):
    tmp, db = workflow_run
    for enabled, expect in (("false", False), ("auto", True), ("true", True)):
        extra = tmp / f"models_{enabled}.yaml"
        extra.write_text(f"models:\n  enabled: {enabled}\n")  # --config would pass the value as text
        res = snakemake(tmp, "-n", "--forceall", "--config", f"dataset={db}", "results=res", configs=[extra])
        assert res.returncode == 0, res.stderr[-3000:]
        assert ("res/models/drift.tsv" in res.stdout + res.stderr) is expect, enabled


@pytestmark_wf
def test_auto_is_off_below_three_models(tmp_path):
    db = tmp_path / "two.h5"
    write_synth_db(db, layout="v1.0", seed=1, n_models=2)
    res = snakemake(tmp_path, "-n", "--config", f"dataset={db}", "results=res")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "res/models/drift.tsv" not in res.stdout + res.stderr


@pytestmark_wf
def test_bad_linkage_is_one_line(tmp_path):
    db = tmp_path / "db.h5"
    write_synth_db(db, layout="v1.0", seed=1, n_models=4)
    res = snakemake(tmp_path, "-n", "--config", f"dataset={db}", "results=res", "models={'linkage': 'ward'}")
    assert res.returncode != 0
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if "models/linkage" in ln]
    assert len(lines) == 1, res.stderr[-2000:]
    assert "'ward' is not one of ['average', 'complete', 'single', 'weighted']" in lines[0]
