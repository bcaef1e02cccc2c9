"""The reproduction table (filterdb.paper, rule paper_comparison; docs/method.md §10).

* Release detection reads only the meta and the filter dataset's header: a file with the published
  v1.0 layout and counts (an unwritten float64 ``(1464797156, 3, 3)`` dataset, which HDF5 leaves
  unallocated) is v1.0; small DBs, other counts and mixed layouts are not.
* The comparison on a DB built to hit some published values (model counts of groups) and miss
  others, with the release forced, against a plain recomputation of every quantity from the run's
  output files (numpy / pandas here, not the module's code).
* The rule on generated DBs says "not applicable" and "not the study's data", in the table and in
  the report caption.
"""

import math
import shutil
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from filterdb import paper
from filterdb.db import write_db, write_meta
from filterdb.synth import write_synth_db
from tests.conftest import DEFAULT_AXES

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
needs_snakemake = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")
ISSUE_COLUMNS = ["quantity", "release", "axis", "group_a", "group_b", "paper", "this_run", "tol", "verdict", "source"]
V1 = {"n_models": 647, "n_layers": 21436, "n_filters": 1464797156}  # the published v1.0 file (docs/method.md)


def run_workflow(*args, **kwargs):
    from tests.test_workflow import run_workflow as run

    return run(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# (a) release detection


def published_like(path, n_filters=V1["n_filters"], n_models=V1["n_models"], n_layers=V1["n_layers"], dtype="float64"):
    """An HDF5 file in the published v1.0 layout whose filter dataset is never written (HDF5
    allocates no chunk: a few MB on disk) and whose meta has the given counts."""
    with h5py.File(path, "w") as f:
        f.create_dataset("filters", shape=(n_filters, 3, 3), dtype=dtype, chunks=(65536, 3, 3))
    per = np.full(n_layers, n_filters // n_layers, dtype=np.int64)
    per[: n_filters - int(per.sum())] += 1
    end = np.cumsum(per)
    start = end - per
    model = np.repeat(np.arange(n_models), np.diff(np.linspace(0, n_layers, n_models + 1).astype(np.int64)))
    depth = np.concatenate([np.arange(c) for c in np.bincount(model)])
    levels = np.bincount(model)[model]
    meta = pd.DataFrame(
        {
            "model_id": model,
            "conv_depth": depth,
            "conv_depth_norm": depth / np.maximum(levels - 1, 1),
            "filter_ids": [f"{a}:{b - 1}" for a, b in zip(start, end)],
            "model": [f"model_{m:03d}" for m in model],
            "Name": "ResNet-50",
            "Task": "Classification",
            "Visual Category": "natural",
            "Training-Dataset": "ImageNet1k",
            "Pretraining-Dataset": "",
        }
    ).set_index(["model_id", "conv_depth", "conv_depth_norm"])
    write_meta(meta, str(path))
    return path


@pytest.fixture(scope="module")
def published_file(tmp_path_factory):
    return published_like(tmp_path_factory.mktemp("published") / "dataset.h5")


def test_published_v10_layout_and_counts_are_detected_from_meta_and_shape(published_file):
    with h5py.File(published_file, "r") as f:
        assert f["filters"].shape == (V1["n_filters"], 3, 3)
        assert f["filters"].id.get_storage_size() == 0  # no filter stored: nothing to read
    assert published_file.stat().st_size < 50e6
    t = time.perf_counter()
    facts = paper.db_facts(published_file)
    assert time.perf_counter() - t < 30  # reading 1.46 billion rows would take far longer
    assert (facts.n_models, facts.n_layers, facts.n_filters) == (V1["n_models"], V1["n_layers"], V1["n_filters"])
    assert (facts.layout, facts.filter_ids, facts.category_column) == ("v1.0", "strings", "Visual Category")
    assert (facts.dtype, facts.shape) == ("float64", "(N, 3, 3)")
    r = paper.detect_release(facts)
    assert (r.compared_as, r.detected, r.forced) == ("v1.0", "v1.0", False)
    assert "converted copy" not in r.statement() and "not the study's data" not in r.statement()
    # the caption's statement (read in a child process first) says the same
    assert paper.planned_statement(published_file) == r.statement()
    # the published counts the detection uses are the package's values
    assert paper.published_counts("v1.0") == V1
    assert paper.published_counts("v0.1") is None  # not published: v0.1 is told by layout and size


def test_near_misses_of_the_published_file_are_not_detected(tmp_path):
    for kw in ({"n_layers": V1["n_layers"] - 1}, {"n_filters": V1["n_filters"] - 1}, {"n_models": V1["n_models"] - 1}):
        facts = paper.db_facts(published_like(tmp_path / "near.h5", **kw))
        r = paper.detect_release(facts)
        assert r.compared_as is None and r.detected is None, kw
        assert "not the study's data" in r.statement()
        assert f"{facts.n_layers:,} conv layers" in r.statement()
    # a float16 copy (filterdb convert) of the published file is still the study's data, said so
    facts = paper.db_facts(published_like(tmp_path / "f16.h5", dtype="float16"))
    r = paper.detect_release(facts)
    assert r.detected == "v1.0" and "converted copy" in r.statement()


def test_small_and_other_layouts_are_not_a_release(tmp_path):
    for layout in ("v1.0", "v0.1"):
        path = tmp_path / f"{layout}.h5"
        layers = write_synth_db(path, layout=layout, shape3x3=layout == "v0.1", seed=1, n_models=5)
        facts = paper.db_facts(path)
        assert facts.layout == layout
        assert (facts.n_models, facts.n_layers, facts.n_filters) == (
            layers["model_id"].nunique(),
            len(layers),
            int(layers["row_end"].max()),
        )
        r = paper.detect_release(facts)
        assert r.compared_as is None and "not the study's data" in r.statement()
        forced = paper.detect_release(facts, "v1.0")
        assert (forced.compared_as, forced.detected, forced.forced) == ("v1.0", None, True)
        assert "FORCED" in forced.statement() and "not the study's data" in forced.statement()
    big = {"n_models": 400, "n_layers": 9000, "n_filters": 600_000_000, "dtype": "float32", "shape": "(N, 9)"}
    v01 = paper.DBFacts("v0.1", "lists", "Datatype", **big)
    r = paper.detect_release(v01)
    assert r.detected == "v0.1" and "layout and size only" in r.statement()  # its counts are not published
    assert (
        paper.detect_release(paper.DBFacts("v0.1", "lists", "Datatype", **{**big, "n_filters": 1000})).detected is None
    )
    mixed = paper.DBFacts("mixed", "strings", "Datatype", **{**V1, "dtype": "float64", "shape": "(N, 3, 3)"})
    assert paper.detect_release(mixed).detected is None
    # a DB this workflow builds is never the study's data, whatever its counts
    full = paper.DBFacts("v1.0", "strings", "Visual Category", **V1, dtype="float64", shape="(N, 3, 3)")
    assert paper.detect_release(full, origin="the sample DB").compared_as is None
    assert paper.detect_release(full).compared_as == "v1.0"
    with pytest.raises(ValueError, match="paper.release"):
        paper.detect_release(full, "v2.0")


def test_study_axes_are_matched_by_definition_not_name():
    axes = {
        "kind_of_task": {"column": "Task", "fold": {"Segmentation": "Seg"}},
        "visual_category": {"column": "Datatype"},
        "depth": {"column": "conv_depth_norm", "kind": "binned", "bins": 5},
    }
    m = paper.study_axes(axes)
    assert m["task"].name == "kind_of_task"
    assert m["visual_category"].name == "visual_category"
    assert m["depth"].name is None and "5 bins" in m["depth"].reason
    m = paper.study_axes({"task": {"column": "Task"}})
    assert m["task"].name is None and "Segmentation fold" in m["task"].reason
    assert m["visual_category"].name is None
    # labels: through the axis's fold, the v0.1/v1.0 rename and bin edges
    m = paper.study_axes({**axes, "depth": {"column": "conv_depth_norm", "kind": "binned", "bins": 10}})
    assert paper.match_group(m["task"], "Segmentation", ["Seg", "Classification"])[0] == "Seg"
    assert paper.match_group(m["visual_category"], "formula", ["fractals", "natural"])[0] == "fractals"
    assert paper.match_group(m["visual_category"], "fractals", ["formula"])[0] == "formula"
    g, note = paper.match_group(m["depth"], "(0.0, 0.1]", ["[0.0, 0.1]", "(0.9, 1.0]"])
    assert g == "[0.0, 0.1]" and "first conv level" in note
    assert paper.match_group(m["depth"], "(0.9, 1.0]", ["[0.0, 0.1]", "(0.9, 1.0]"]) == ("(0.9, 1.0]", "")
    assert paper.match_group(m["visual_category"], "plants", ["natural"])[0] is None


def test_values_are_package_data_with_sources():
    v = paper.published_values()
    assert list(v.columns) == ["quantity", "release", "axis", "group_a", "group_b", "value", "tol", "source"]
    assert set(v["release"]) == {"v0.1", "v1.0"}
    assert (v["source"].str.len() > 0).all()
    for q in v["quantity"]:
        paper._family(q)  # every quantity is one the comparison knows
    for col in ("value", "tol"):
        assert np.isfinite(v[col].astype(float)).all()
    evr = v[v["quantity"].str.match(r"evr_\d")]
    assert len(evr) == 9 and evr["source"].str.startswith("independent recomputation").all()
    assert math.isclose(evr["value"].astype(float).sum(), 1.0, abs_tol=1e-7)
    assert len(v[(v["release"] == "v1.0") & v["quantity"].str.startswith("pca_mean_")]) == 9


# ---------------------------------------------------------------------------------------------
# (b) the comparison on a DB made to hit some published values and miss others

# Model counts per group: Classification, GAN-Generator, natural, handwriting, faces and the total
# (647) are the published ones; Segmentation (27, published 28) and every other number are not.
TASKS = [("Classification", 555), ("Semantic Segmentation", 14), ("Instance Segmentation", 13)]
TASKS += [("GAN-Generator", 24), ("Face Detection", 21), ("GAN-Discriminator", 20)]
CATEGORIES = [("natural", 557), ("handwriting", 36), ("faces", 16), ("plants", 8), ("fractals", 6)]
CATEGORIES += [("textures", 12), ("medical mri", 6), ("medical ct", 6)]
FILTERS_PER_LAYER = 6


def crafted_layers():
    tasks = [t for t, n in TASKS for _ in range(n)]
    cats = [c for c, n in CATEGORIES for _ in range(n)]
    assert len(tasks) == len(cats) == 647
    rng = np.random.default_rng(5)
    cats = list(rng.permutation(cats))
    rows = []
    for m in range(647):
        for depth in (0, 1):  # two conv levels: depth bins [0.0, 0.1] and (0.9, 1.0]
            start = (2 * m + depth) * FILTERS_PER_LAYER
            rows.append(
                {
                    "model_id": m,
                    "conv_depth": depth,
                    "conv_depth_norm": float(depth),
                    "row_start": start,
                    "row_end": start + FILTERS_PER_LAYER,
                    "model": f"crafted_{m:03d}",
                    "Name": ["ResNet-18", "VGG11", "UNet"][m % 3],
                    "Task": tasks[m],
                    "Visual Category": cats[m],
                    "Training-Dataset": ["ImageNet1k", "CIFAR-10"][m % 2],
                    "Pretraining-Dataset": "" if m % 4 else "ImageNet1k",
                }
            )
    return pd.DataFrame(rows)


def crafted_filters(layers):
    rng = np.random.default_rng(9)
    cats = sorted({c for c, _ in CATEGORIES})
    out = []
    for _, row in layers.iterrows():
        k = cats.index(row["Visual Category"])
        w = rng.standard_normal((FILTERS_PER_LAYER, 9)) * (0.2 + 0.1 * k)
        w[:, k % 9] += 1.0 + row["conv_depth"]  # category- and depth-dependent shape
        out.append(w.astype(np.float32))
    return out


@pytest.fixture(scope="module")
def crafted_run(tmp_path_factory):
    """The workflow on the crafted DB: once with paper.release auto, once forced to v1.0."""
    tmp = tmp_path_factory.mktemp("paper")
    db = tmp / "crafted.h5"
    layers = crafted_layers()
    write_db(db, crafted_filters(layers), layers)
    target = [str(tmp / "res/paper/comparison.tsv")]
    res = run_workflow(tmp, db, tmp / "res", targets=target)
    assert res.returncode == 0, res.stderr[-3000:]
    auto = paper.read_comparison(tmp / "res/paper/comparison.tsv")
    auto.attrs["log"] = (tmp / "res/logs/paper_comparison.log").read_text()
    res = run_workflow(tmp, db, tmp / "res", "paper={release: v1.0}", targets=target)
    assert res.returncode == 0, res.stderr[-3000:]
    forced = paper.read_comparison(tmp / "res/paper/comparison.tsv")
    return tmp, db, auto, forced


def config_defaults():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def plain_values(res):
    """Every quantity recomputed here from the output files, keyed (quantity, axis, group_a, group_b)
    (an upper max by (quantity, axis)), with the label maps of this DB written out by hand; plus each
    axis's groups and the pair attaining its upper max."""
    res = Path(res)
    basis = pd.read_csv(res / "pca/basis.tsv", sep="\t")
    evr = basis["explained_variance_ratio"].to_numpy()
    mean = pd.read_csv(res / "pca/mean.tsv", sep="\t").iloc[0].to_numpy()
    with np.load(res / "stats/sums.npz") as z:
        n, s, outer = float(z["n"].sum()), z["sum"].sum(axis=0), z["outer"].sum(axis=0)
    out = {("pixel_cov_center", "pca", "", ""): (outer[4, 4] - s[4] * s[4] / n) / (n - 1)}
    for k in range(1, 10):
        out[(f"evr_{k}", "pca", "", "")] = evr[k - 1]
        out[(f"cum_evr_{k}", "pca", "", "")] = evr[:k].sum()
        out[(f"pca_mean_w{k - 1}", "pca", "", "")] = mean[k - 1]
    label = {"formula": "fractals", "(0.0, 0.1]": "[0.0, 0.1]"}  # Segmentation: the fold's own label
    groups, pairs = {}, {}
    for axis in ("task", "visual_category", "depth"):
        d = pd.read_csv(res / f"drift/{axis}.tsv", sep="\t", keep_default_na=False).set_index("group")
        groups[axis] = set(d.index)
        i, j = np.triu_indices(len(d), k=1)
        up = d.to_numpy()[i, j]
        out[("upper_mean", axis, "", "")] = up.mean()
        out[("upper_median", axis, "", "")] = np.median(up)
        out[("upper_max", axis)] = up.max()
        pairs[axis] = {d.index[i[up.argmax()]], d.index[j[up.argmax()]]}
        names = list(d.index) + list(label)
        for a in names:
            if label.get(a, a) in d.index:
                out[("group_mean", axis, a, "")] = d[label.get(a, a)].mean()
                for b in names:
                    if label.get(b, b) in d.index:
                        out[("pair", axis, a, b)] = d.loc[label.get(a, a), label.get(b, b)]
        g = pd.read_csv(res / f"groups/{axis}.tsv", sep="\t", keep_default_na=False).set_index("group")
        for a in names:
            if label.get(a, a) in g.index:
                out[("n_models", axis, a, "")] = g.loc[label.get(a, a), "n_models"]
    sub = pd.read_csv(res / "pca/subsets/visual_category.tsv", sep="\t", keep_default_na=False)
    for a in sub["group"].unique().tolist() + list(label):
        t = sub[sub["group"] == label.get(a, a)].set_index("component")
        for k in (1, 2) if len(t) else ():
            out[(f"subset_evr_{k}", "visual_category", a, "")] = t.loc[f"c{k - 1}", "explained_variance_ratio"]
    summary = pd.read_csv(res / "dataset/summary.tsv", sep="\t", keep_default_na=False)
    total = summary[summary["axis"] == "(all)"].iloc[0]
    for q in ("n_models", "n_layers", "n_filters"):
        out[(q, "all", "", "")] = total[q]
    return out, groups, pairs, label


def expected_rows(table, res, compared_as):
    """(this_run, verdict) expected for each row of ``table``, computed here."""
    values, groups, pairs, label = plain_values(res)
    out = []
    for r in table.to_dict("records"):
        q, axis, a, b = r["quantity"], r["axis"], r["group_a"], r["group_b"]
        pair_ok = True
        if q == "upper_max":
            value = values.get((q, axis))
            if a:
                wanted = {label.get(a, a), label.get(b, b)}
                value = value if wanted <= groups[axis] else None  # a group of the published pair is missing
                pair_ok = pairs[axis] == wanted
        else:
            value = values.get((q, axis, a, b))
        if value is None or r["release"] != compared_as:
            verdict = "not applicable"
        else:
            ok = abs(float(value) - float(r["paper"])) <= float(r["tol"]) * (1 + 1e-12) + 1e-15 and pair_ok
            verdict = "within tolerance" if ok else "outside tolerance"
        out.append((value, verdict))
    return out


def check_against_plain(table, res, compared_as):
    expected = expected_rows(table, res, compared_as)
    for r, (value, verdict) in zip(table.to_dict("records"), expected):
        where = (r["quantity"], r["axis"], r["group_a"], r["group_b"], r["note"])
        if value is None:
            assert r["this_run"] == "", where
        else:
            assert math.isclose(float(r["this_run"]), float(value), rel_tol=1e-9, abs_tol=1e-12), (where, value)
        assert r["verdict"] == verdict, (where, value)


def test_table_columns_and_published_values(crafted_run):
    _, _, auto, forced = crafted_run
    v = paper.published_values()
    for t in (auto, forced):
        assert list(t.columns[:10]) == ISSUE_COLUMNS
        assert list(t.columns[10:]) == ["departures", "note"]
        for col_t, col_v in (("paper", "value"), ("tol", "tol"), ("source", "source"), ("release", "release")):
            assert t[col_t].tolist() == v[col_v].tolist()
        assert t[["quantity", "axis", "group_a", "group_b"]].values.tolist() == (
            v[["quantity", "axis", "group_a", "group_b"]].values.tolist()
        )


def test_auto_on_a_crafted_db_is_not_applicable_everywhere(crafted_run):
    tmp, _, auto, _ = crafted_run
    assert (auto["verdict"] == "not applicable").all()
    assert auto["note"].str.startswith("not the study's data: not a published release (v1.0 layout, 647 models").all()
    check_against_plain(auto, tmp / "res", compared_as=None)  # this_run still filled, as a courtesy
    assert "These numbers are not the study's data" in auto.attrs["log"]


def test_forced_v10_verdicts_match_a_plain_computation(crafted_run):
    tmp, _, _, forced = crafted_run
    check_against_plain(forced, tmp / "res", compared_as="v1.0")
    v1 = forced[forced["release"] == "v1.0"]
    assert (forced.loc[forced["release"] == "v0.1", "verdict"] == "not applicable").all()
    assert (
        v1["note"].str.startswith("forced by config paper.release = v1.0").sum()
        == (v1["verdict"] != "not applicable").sum()
    )
    # the crafted hits and misses
    by = {(r["quantity"], r["axis"], r["group_a"]): r["verdict"] for r in v1.to_dict("records")}
    for g in ("Classification", "GAN-Generator"):
        assert by[("n_models", "task", g)] == "within tolerance"
    for g in ("natural", "handwriting", "faces"):
        assert by[("n_models", "visual_category", g)] == "within tolerance"
    assert by[("n_models", "all", "")] == "within tolerance"
    assert by[("n_models", "task", "Segmentation")] == "outside tolerance"  # 27 folded from two labels
    assert by[("n_layers", "all", "")] == by[("n_filters", "all", "")] == "outside tolerance"
    assert by[("group_mean", "task", "GAN-Discriminator")] != "not applicable"
    depth_max = v1[(v1["quantity"] == "upper_max") & (v1["axis"] == "depth")].iloc[0]
    assert "attained by the published pair" in depth_max["note"]  # [0.0, 0.1] - (0.9, 1.0]: the only pair


def test_forced_v01_uses_the_release_spellings(crafted_run):
    """v0.1's 'formula' is 'fractals' here and its first depth bin '(0.0, 0.1]' is '[0.0, 0.1]'."""
    tmp, db, _, _ = crafted_run
    release = paper.detect_release(paper.db_facts(db), "v0.1")
    cfg = config_defaults()
    table = paper.comparison(
        release,
        paper.RunOutputs.under(tmp / "res", DEFAULT_AXES),
        DEFAULT_AXES,
        {"precision": cfg["stream"]["precision"], "histogram": cfg["histogram"]},
    )
    check_against_plain(table, tmp / "res", compared_as="v0.1")
    sub = table[table["quantity"] == "subset_evr_1"].iloc[0]
    assert sub["verdict"] != "not applicable" and "'fractals'" in sub["note"]
    depth = table[(table["quantity"] == "upper_max") & (table["axis"] == "depth") & (table["release"] == "v0.1")]
    assert "is this run's [0.0, 0.1]" in depth.iloc[0]["note"]


def test_departures_are_listed_next_to_the_rows_they_affect(crafted_run):
    tmp, db, _, _ = crafted_run
    axes = {**DEFAULT_AXES, "task": {**DEFAULT_AXES["task"], "min_models": 2}}
    table = paper.comparison(
        paper.detect_release(paper.db_facts(db), "v1.0"),
        paper.RunOutputs.under(tmp / "res", DEFAULT_AXES),
        axes,
        {"precision": "float32", "histogram": {"bins": 70, "floor": "probability", "eps": 2.0**-23}},
    )
    q = table["quantity"]
    drift = q.isin(["upper_mean", "upper_median", "upper_max", "pair", "group_mean"]) & (table["this_run"] != "")
    pca = q.str.match(r"(cum_)?evr_|pca_mean_|pixel_cov|subset_evr") & (table["this_run"] != "")
    counts = q.str.startswith("n_")
    assert (
        table.loc[pca | drift, "departures"]
        .str.contains("stream.precision=float32 (study: float16)", regex=False)
        .all()
    )
    assert table.loc[drift, "departures"].str.contains("histogram.floor='probability'", regex=False).all()
    assert not table.loc[pca, "departures"].str.contains("histogram", regex=False).any()
    assert (table.loc[counts, "departures"] == "").all()
    task_drift = drift & (table["axis"] == "task")
    assert table.loc[task_drift, "departures"].str.contains("drops groups", regex=False).all()
    assert not table.loc[drift & ~task_drift, "departures"].str.contains("drops groups", regex=False).any()


# ---------------------------------------------------------------------------------------------
# (c) the rule on a DB the workflow generates, and its report caption


@needs_snakemake
def test_rule_on_a_generated_db_says_not_the_studys_data(tmp_path):
    res = tmp_path / "res"
    db = res / "synthetic/synthetic.h5"  # the workflow's own synthetic DB (rule synthetic_db)
    target = [str(res / "paper/comparison.tsv")]
    out = run_workflow(tmp_path, db, res, targets=target)
    assert out.returncode == 0, out.stderr[-3000:]
    table = paper.read_comparison(res / "paper/comparison.tsv")
    assert (table["verdict"] == "not applicable").all()
    assert table["note"].str.startswith("not the study's data: a synthetic DB this workflow generates").all()
    assert (table["this_run"] != "").sum() > 30  # the values are there for reference
    html = tmp_path / "report.html"
    out = run_workflow(tmp_path, db, res, targets=[*target, "--report", str(html)])
    assert out.returncode == 0, out.stderr[-3000:]
    text = html.read_text()
    assert "Reproduction" in text
    assert "These numbers are not the study&#x27;s data" in text or "These numbers are not the study's data" in text
    # planned again on the built DB: the same statement, so nothing reruns
    out = subprocess.run(
        [SNAKEMAKE, *target, "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile"]
        + [str(ROOT / "config.yaml"), "--config", f"dataset={db}", f"results={res}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and "Nothing to be done" in out.stdout + out.stderr, out.stdout[-2000:]
