"""Which meta-parameter explains the model-to-model distances (filterdb.distance_tests): PERMANOVA and
the nearest-neighbour label agreement against direct computations, the permutation p-values against a
plain loop with the same generator, a planted category effect found, shuffled labels calibrated."""

import itertools
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from filterdb import distance_tests as dt
from filterdb import divergence, pipeline, plots, results, zoo
from filterdb.axes import axes_from_config, layer_labels
from filterdb.db import write_db_streaming
from filterdb.synth import synth_layers
from tests.conftest import DEFAULT_AXES

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# Plain references


def direct_permanova(d2, labels):
    """Anderson (2001) by loops over the pairs: (SS_T, SS_W, pseudo-F, R²)."""
    n = len(labels)
    groups = sorted(set(labels))
    ss_t = sum(d2[i][j] for i in range(n) for j in range(i + 1, n)) / n
    ss_w = 0.0
    for g in groups:
        members = [i for i in range(n) if labels[i] == g]
        ss_w += sum(d2[i][j] for i in members for j in members if i < j) / len(members)
    k = len(groups)
    f = ((ss_t - ss_w) / (k - 1)) / (ss_w / (n - k)) if n > k else float("nan")
    return ss_t, ss_w, f, 1 - ss_w / ss_t


def plain_nn(d, labels):
    """Share of models whose nearest other model has the same label (ties: the share among the tied)."""
    n = len(labels)
    total = 0.0
    for i in range(n):
        others = [j for j in range(n) if j != i]
        best = min(d[i][j] for j in others)
        near = [j for j in others if d[i][j] == best]
        total += sum(labels[j] == labels[i] for j in near) / len(near)
    return total / n


def random_drift(rng, n, euclidean=True):
    """A symmetric, zero-diagonal, non-negative matrix: squared Euclidean distances of random points,
    or arbitrary non-negative entries (not embeddable)."""
    if euclidean:
        x = rng.normal(size=(n, 4))
        d = ((x[:, None] - x[None]) ** 2).sum(-1)
    else:
        d = rng.exponential(size=(n, n))
        d = d + d.T
    np.fill_diagonal(d, 0.0)
    return d


LABEL_SETS = [
    list("aaaabbbbcccc"),  # balanced
    list("aaaaaaabbccd"),  # unbalanced, one singleton
    list("abababababab"),  # two groups
    list("aabcdefghijk"),  # mostly singletons
    list("aaaaabbbbbbb"),
]


@pytest.mark.parametrize("euclidean", [True, False])
@pytest.mark.parametrize("distance", ["sqrt", "drift"])
def test_permanova_matches_direct_implementation(euclidean, distance):
    rng = np.random.default_rng(7)
    for labels in LABEL_SETS:
        d = random_drift(rng, len(labels), euclidean)
        d2 = d if distance == "sqrt" else d**2  # δ = sqrt(D): δ² = D; δ = D: δ² = D²
        ss_t, ss_w, f, r2 = direct_permanova(d2.tolist(), labels)
        t = dt.grouping_stats(d, labels, 0, distance=distance)
        assert t.ss_t == pytest.approx(ss_t, rel=1e-13)
        assert t.ss_w == pytest.approx(ss_w, rel=1e-13)
        assert t.pseudo_F == pytest.approx(f, rel=1e-12)
        assert t.R2 == pytest.approx(r2, rel=1e-12)
        sizes = pd.Series(labels).value_counts()
        assert (t.n_models, t.n_groups, t.n_singletons) == (len(labels), len(sizes), int((sizes == 1).sum()))
        assert t.R2_expected == pytest.approx((len(sizes) - 1) / (len(labels) - 1), rel=1e-15)
        assert np.isnan(t.p) and np.isnan(t.nn_p) and t.permutations == 0


@pytest.mark.parametrize("n_groups", [3, 20])
def test_within_ss_of_a_batch_matches_direct(n_groups):
    rng = np.random.default_rng(3)
    n = 40
    d = random_drift(rng, n, euclidean=False)
    codes = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, n - n_groups)])
    sizes = np.bincount(codes, minlength=n_groups)
    batch = codes[np.stack([rng.permutation(n) for _ in range(7)])]
    got = dt.within_ss(d, batch, sizes)
    for k in range(batch.shape[0]):
        assert got[k] == pytest.approx(direct_permanova(d.tolist(), list(batch[k]))[1], rel=1e-13)


def plain_p_values(d, labels, permutations, seed, distance="sqrt"):
    """The permutation p-values by a plain loop: the k-th ``rng.permutation(N)`` gives model i the
    label of model π(i); F and nn computed directly each time; ties within the documented TOL."""
    labels = list(labels)
    d2 = (d if distance == "sqrt" else d**2).tolist()
    f_obs = direct_permanova(d2, labels)[2]
    nn_obs = plain_nn(d.tolist(), labels)
    rng = np.random.default_rng(seed)
    f_count = nn_count = 0
    for _ in range(permutations):
        perm = rng.permutation(len(labels))
        lab = [labels[j] for j in perm]
        f_count += direct_permanova(d2, lab)[2] >= f_obs * (1 - dt.TOL)
        nn_count += plain_nn(d.tolist(), lab) >= nn_obs - dt.TOL
    return (1 + f_count) / (1 + permutations), (1 + nn_count) / (1 + permutations)


@pytest.mark.parametrize("labels", LABEL_SETS[:3])
def test_p_values_match_a_plain_permutation_loop(labels, monkeypatch):
    rng = np.random.default_rng(11)
    d = random_drift(rng, len(labels))
    d[:4, :4] *= 0.2  # the first models closer together: not all p-values near 0.5
    p, nn_p = plain_p_values(d, labels, 199, seed=[5, 9])
    t = dt.grouping_stats(d, labels, 199, seed=[5, 9])
    assert (t.p, t.nn_p) == (p, nn_p)
    monkeypatch.setattr(dt, "BATCH_ELEMENTS", 3 * len(labels))  # batches of 1 permutation
    t1 = dt.grouping_stats(d, labels, 199, seed=[5, 9])
    assert (t1.p, t1.nn_p) == (p, nn_p)  # the batch size does not change the draws


def test_nn_agreement_against_plain_computation_with_ties():
    rng = np.random.default_rng(2)
    for trial in range(6):
        n = 15
        d = random_drift(rng, n, euclidean=trial % 2 == 0)
        if trial >= 3:  # integer distances: many models have several nearest neighbours
            d = np.round(d)
            np.fill_diagonal(d, 0.0)
        labels = list(rng.choice(list("xyz"), n))
        got = dt.nn_agreement(dt.nearest_neighbours(d), dt._codes(labels)[0])[0]
        assert got == pytest.approx(plain_nn(d.tolist(), labels), rel=1e-14)


def test_expectations_are_the_means_over_all_relabellings():
    """nn_expected and R2_expected are exact: the mean over every permutation of the labels."""
    rng = np.random.default_rng(4)
    labels = list("aaabbc")
    d = random_drift(rng, len(labels), euclidean=False)
    d[0, 1] = d[1, 0] = d[0, 2] = d[2, 0] = 0.01  # model 0 has one nearest; ties elsewhere don't matter
    nn_all, r2_all = [], []
    for perm in itertools.permutations(range(len(labels))):
        lab = [labels[j] for j in perm]
        nn_all.append(plain_nn(d.tolist(), lab))
        r2_all.append(direct_permanova(d.tolist(), lab)[3])
    t = dt.grouping_stats(d, labels, 0)
    assert t.nn_expected == pytest.approx(np.mean(nn_all), rel=1e-12)
    assert t.nn_expected == pytest.approx((3 * 2 + 2 * 1) / (6 * 5), rel=1e-15)
    assert t.R2_expected == pytest.approx(np.mean(r2_all), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Edge cases and the table


def test_edge_cases_and_table_order():
    rng = np.random.default_rng(8)
    models = [f"m{k}" for k in range(8)]
    d = random_drift(rng, 8)
    lab = pd.Series(list("aabbccdd"), index=models)
    labels = {
        "two_groups": lab.where(lab.isin(["a", "b"])),  # 4 unlabelled models left out
        "one_group": pd.Series(["a"] * 8, index=models),
        "singletons": pd.Series(list("abcdefgh"), index=models),
        "four": lab,
        "twin": lab.copy(),  # the same partition as "four": same F, ordered by name
        "binned": None,
    }
    columns = {k: f"col_{k}" for k in labels}
    s = dt.AxesTestSettings(permutations=99, seed=1, distance="sqrt", include="all")
    tab = dt.axes_table(models, d, labels, columns, s, notes={"binned": "a layer property"})
    assert list(tab.columns) == dt.COLUMNS
    rows = tab.set_index("axis")
    assert rows.loc["two_groups", "n_models"] == 4 and "4 of 8 models without a label" in rows.loc["two_groups", "note"]
    sub = [0, 1, 2, 3]
    f = direct_permanova(d[np.ix_(sub, sub)].tolist(), list("aabb"))[2]
    assert rows.loc["two_groups", "pseudo_F"] == pytest.approx(f, rel=1e-12)
    assert np.isnan(rows.loc["one_group", "pseudo_F"]) and rows.loc["one_group", "note"] == "fewer than 2 groups"
    assert rows.loc["one_group", "permutations"] == 0
    single = rows.loc["singletons"]
    assert np.isnan(single["pseudo_F"]) and np.isnan(single["p"]) and single["R2"] == 1.0
    assert single["n_singletons"] == 8 and "single model" in single["note"]
    assert single["nn_agreement"] == 0 and single["nn_expected"] == 0
    assert rows.loc["binned", "note"] == "a layer property" and rows.loc["binned", "n_models"] == 0
    assert rows.loc["four", "pseudo_F"] == rows.loc["twin", "pseudo_F"]
    # ranked by pseudo-F (largest first), ties by name, NaN last
    f_rank = tab["pseudo_F"].to_numpy()
    finite = f_rank[np.isfinite(f_rank)]
    assert list(finite) == sorted(finite, reverse=True)
    assert np.isnan(f_rank[len(finite) :]).all()
    order = list(tab["axis"])
    assert order.index("four") + 1 == order.index("twin")
    # an axis's p depends on the seed and its own name, not on the other axes
    alone = dt.axes_table(models, d, {"four": lab}, columns, s)
    assert alone["p"].iloc[0] == rows.loc["four", "p"]
    expect = dt.grouping_stats(d, list(lab), 99, seed=[1, zlib.crc32(b"four")])
    assert rows.loc["four", "p"] == expect.p and rows.loc["four", "nn_p"] == expect.nn_p
    empty = dt.axes_table([], np.zeros((0, 0)), {"four": pd.Series([], dtype=object)}, columns, s).iloc[0]
    assert empty["n_models"] == 0 and np.isnan(empty["pseudo_F"]) and empty["note"] == "the drift matrix has no model"


def test_drift_instead_of_sqrt_changes_the_squares():
    rng = np.random.default_rng(9)
    d = random_drift(rng, 12, euclidean=False)
    labels = LABEL_SETS[1]
    a = dt.grouping_stats(d, labels, 0, distance="drift")
    assert a.pseudo_F == pytest.approx(direct_permanova((d**2).tolist(), labels)[2], rel=1e-12)
    assert a.pseudo_F != pytest.approx(dt.grouping_stats(d, labels, 0).pseudo_F, rel=1e-3)


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.zeros((2, 3)), "expected a square matrix"),
        (np.array([[0.0, 1.0], [2.0, 0.0]]), "not symmetric: entry (0, 1) is 1.0"),
        (np.array([[0.5, 1.0], [1.0, 0.0]]), "diagonal entry (0, 0) is 0.5"),
        (np.array([[0.0, -1.0], [-1.0, 0.0]]), "entry (0, 1) is -1.0, expected a drift value >= 0"),
        (np.array([[0.0, np.nan], [np.nan, 0.0]]), "entry (0, 1) is nan"),
    ],
)
def test_bad_matrices_are_one_line_errors(matrix, message):
    with pytest.raises(ValueError) as exc:
        dt.check_matrix(matrix, where="res/models/drift.tsv")
    text = str(exc.value)
    assert text.startswith("res/models/drift.tsv: ") and message in text and "\n" not in text


def test_settings_and_selected_axes():
    assert dt.AxesTestSettings() == dt.AxesTestSettings(permutations=999, seed=0, distance="sqrt", include="all")
    with pytest.raises(ValueError, match="models.axes.distance 'euclid'"):
        dt.AxesTestSettings(distance="euclid")
    assert dt.selected_axes(DEFAULT_AXES) == [a for a in DEFAULT_AXES if a != "depth"]
    assert dt.selected_axes(DEFAULT_AXES, ["depth", "task", "task"]) == ["depth", "task"]
    with pytest.raises(ValueError, match=r"models/axes/include: 'nope' is not an axis"):
        dt.selected_axes(DEFAULT_AXES, ["nope"])


def test_ranking_figure_is_reproducible(tmp_path):
    args = (
        ["task", "visual_category", "depth"],
        [0.4, 0.2, np.nan],
        [0.1, 0.15, np.nan],
        [0.001, 0.3, np.nan],
        [0.6, 0.1, np.nan],
        [0.2, 0.2, np.nan],
        [0.01, 0.9, np.nan],
    )
    for k in range(2):
        fig = plots.model_axes_ranking(*args, pseudo_f=[5.0, 1.1, np.nan], n_groups=[4, 6, 0])
        plots.save_all(fig, [tmp_path / f"a{k}.svg", tmp_path / f"a{k}.png"])
    assert (tmp_path / "a0.svg").read_bytes() == (tmp_path / "a1.svg").read_bytes()
    assert (tmp_path / "a0.png").read_bytes() == (tmp_path / "a1.png").read_bytes()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "F = 5, p = 0.001" in texts and "p = 0.01" in texts and "n/a" in texts
    plots.model_axes_ranking([], [], [], [], [], [], [])  # no axis: still a figure


# ---------------------------------------------------------------------------------------------
# A generated DB with a planted category effect, through the library chain

_GAUSS = np.array([1, 2, 1, 2, 4, 2, 1, 2, 1], float) / 4
_EDGE = np.array([-1, 0, 1, -2, 0, 2, -1, 0, 1], float) / 2
_CENTRE = np.array([-1, -1, -1, -1, 8, -1, -1, -1, -1], float) / 8
PLANTED = "faces"


def planted_filters(row, shift=1.0, seed=0):
    """One layer's filters: every model draws from one mixture with its own small random offsets
    (within-group spread), the models of category PLANTED with a centre-surround part shifted by
    ``shift``."""
    n = int(row["row_end"] - row["row_start"])
    mu = np.random.default_rng([seed, int(row["model_id"])]).normal(0, 0.15, 3)
    rng = np.random.default_rng([seed, 1000 + int(row["row_start"])])
    a = rng.standard_normal((n, 1)) + mu[0]
    b = rng.standard_normal((n, 1)) * 0.7 + mu[1]
    c = rng.standard_normal((n, 1)) * 0.5 + mu[2] + (shift if row["Visual Category"] == PLANTED else 0.0)
    return (a * _GAUSS + b * _EDGE + c * _CENTRE + rng.standard_normal((n, 9)) * 0.3).astype(np.float32)


def model_labels_plain(layers, axis):
    """Each model's label on an axis: its layers' one label, NaN when none or mixed."""
    df = pd.DataFrame({"model": layers["model"].astype(str), "label": layer_labels(layers, axis)}).dropna()
    one = df.groupby("model")["label"].agg(lambda s: s.iloc[0] if s.nunique() == 1 else np.nan)
    return one.reindex(sorted(layers["model"].astype(str).unique()))


def model_drift_plain(layers, counts, edges, evr):
    """The model x model D: each model's histograms (the sum of its layers'), the study's D."""
    models = sorted(layers["model"].astype(str).unique())
    gc = divergence.group_counts(counts, layers["model"].astype(str), models)
    return models, divergence.drift_matrix(gc, evr, edges=edges)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = tmp_path_factory.mktemp("planted") / "planted.h5"
    layers = synth_layers(n_models=36, seed=4)
    write_db_streaming(path, layers, planted_filters)
    axes = axes_from_config(DEFAULT_AXES)
    a = pipeline.analyse(str(path), axes)
    models, d = model_drift_plain(a.db.layers, a.hist["counts"], a.hist["edges"], a.pca.explained_variance_ratio)
    labels = {ax.name: None if ax.kind == "binned" else model_labels_plain(a.db.layers, ax) for ax in axes}
    return models, d, labels, {ax.name: ax.column for ax in axes}


def test_planted_category_ranks_first(planted):
    models, d, labels, columns = planted
    tab = dt.axes_table(models, d, labels, columns)  # the defaults: 999 permutations, δ = sqrt(D)
    top = tab.iloc[0]
    assert top["axis"] == "visual_category" and top["column"] == "Visual Category"
    assert top["p"] < 0.01 and top["pseudo_F"] > tab["pseudo_F"].iloc[1]
    assert top["R2"] > top["R2_expected"]
    assert top["n_models"] == 36 and top["n_groups"] == 6
    assert tab.set_index("axis").loc["depth", "n_models"] == 0  # binned: no model labels
    lab = labels["visual_category"].reindex(models).tolist()
    assert top["pseudo_F"] == pytest.approx(direct_permanova(d.tolist(), lab)[2], rel=1e-12)
    assert top["nn_agreement"] == pytest.approx(plain_nn(d.tolist(), lab), rel=1e-14)


def test_shuffled_labels_give_uniform_p_values(planted):
    models, d, labels, columns = planted
    lab = labels["visual_category"].reindex(models).to_numpy()
    s = dt.AxesTestSettings(permutations=199, seed=0, distance="sqrt", include="all")
    ps, nn_ps = [], []
    for seed in range(50):
        shuffled = pd.Series(np.random.default_rng(100 + seed).permutation(lab), index=models)
        row = dt.axes_table(models, d, {"shuffled": shuffled}, columns, s).iloc[0]
        ps.append(row["p"])
        nn_ps.append(row["nn_p"])
    assert stats.kstest(ps, "uniform").pvalue > 0.01, sorted(ps)
    # nn_p is coarse (few distinct agreement values): not below 0.05 more often than chance allows
    assert np.mean(np.array(nn_ps) < 0.05) <= stats.binom.ppf(0.999, 50, 0.05) / 50


# ---------------------------------------------------------------------------------------------
# The workflow rule


@pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake not installed")
def test_workflow_rule_matches_library(tmp_path):
    from tests.test_workflow import run_workflow

    db = tmp_path / "planted.h5"
    write_db_streaming(db, synth_layers(n_models=20, seed=4), planted_filters)
    res = tmp_path / "res"
    targets = [str(res / "models/axes.tsv"), str(res / "figures/models_axes.svg")]
    text = (ROOT / "config.yaml").read_text()
    for old, new in [
        ("\n    permutations: 999 ", "\n    permutations: 99 "),
        ("\n    include: all ", "\n    include: [task, depth, visual_category] "),
    ]:
        assert old in text
        text = text.replace(old, new)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    out = run_workflow(tmp_path, db, res, "--configfile", str(cfg), targets=targets)
    assert out.returncode == 0, out.stderr[-3000:]
    tab = pd.read_csv(res / "models/axes.tsv", sep="\t")
    assert list(tab.columns) == dt.COLUMNS
    models, d = zoo.read_drift(res / "models/drift.tsv")
    layers = results.read_layers(res / "stats/layers.tsv")
    assert sorted(tab["axis"]) == ["depth", "task", "visual_category"]
    depth = tab.set_index("axis").loc["depth"]
    assert depth["n_models"] == 0 and "binned axis" in depth["note"] and tab["axis"].iloc[-1] == "depth"
    axes = [a for a in axes_from_config(DEFAULT_AXES) if a.name in ("task", "visual_category")]
    for ax in axes:
        lab = model_labels_plain(layers, ax).reindex(models)
        row = tab.set_index("axis").loc[ax.name]
        keep = [k for k, v in enumerate(lab) if isinstance(v, str)]
        sub = [lab.iloc[k] for k in keep]
        assert row["n_models"] == len(keep)
        if len(set(sub)) < 2 or len(set(sub)) == len(sub):
            assert np.isnan(row["pseudo_F"])
            continue
        dd = d[np.ix_(keep, keep)]
        assert row["pseudo_F"] == pytest.approx(direct_permanova(dd.tolist(), sub)[2], rel=1e-9)
        assert row["nn_agreement"] == pytest.approx(plain_nn(dd.tolist(), sub), rel=1e-12)
        assert row["permutations"] == 99
    assert (res / "figures/models_axes.png").exists()
    assert "peak memory" in (res / "logs/model_axes.log").read_text()
    # a matrix from another run: one line naming the file and the model, no table
    t = pd.read_csv(res / "models/drift.tsv", sep="\t", dtype={"model": str})
    t.loc[0, "model"] = "renamed"
    t.to_csv(res / "models/drift.tsv", sep="\t", index=False)
    bad = run_workflow(tmp_path, db, res, "--configfile", str(cfg), targets=targets[:1])
    assert bad.returncode != 0
    line = f"filterdb error in rule model_axes: {res / 'models/drift.tsv'}: model 'renamed' (1 of its 20 models)"
    assert line in bad.stderr, bad.stderr[-3000:]
    assert not (res / "models/axes.tsv").exists()
    t.loc[0, "model"] = models[0]
    t.to_csv(res / "models/drift.tsv", sep="\t", index=False)
    again = run_workflow(tmp_path, db, res, "--configfile", str(cfg), targets=targets)
    assert again.returncode == 0, again.stderr[-3000:]
    assert pd.read_csv(res / "models/axes.tsv", sep="\t").equals(tab)
    # both outputs are report items of category Models, their captions stating the settings
    html = tmp_path / "report.html"
    out = run_workflow(tmp_path, db, res, "--configfile", str(cfg), "--report", str(html), targets=targets)
    assert out.returncode == 0, out.stderr[-3000:]
    text = html.read_text()
    assert '"Models": {' in text and "models_axes.svg" in text and "models/axes.tsv" in text
    assert "come from 99\\npermutations of the labels over the models (seed 0" in text
    assert "delta = sqrt(D)" in text


@pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake not installed")
def test_unknown_axis_in_include_stops_the_run_at_its_start(tmp_path):
    from tests.test_workflow import run_workflow

    text = (ROOT / "config.yaml").read_text()
    assert "\n    include: all " in text
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text.replace("\n    include: all ", "\n    include: [task, nope] "))
    out = run_workflow(tmp_path, tmp_path / "absent.h5", tmp_path / "res", "--configfile", str(cfg), "-n", targets=[])
    assert out.returncode != 0
    said = out.stdout + out.stderr
    assert "config models/axes/include: 'nope' is not an axis of the axes mapping" in said, said[-2000:]
