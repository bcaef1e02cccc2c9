"""The streamed statistics against plain in-memory re-computations of the same math."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy

from filterdb import divergence, pipeline
from filterdb.axes import axes_from_config, layer_labels
from tests.conftest import DEFAULT_AXES, load_all, study_scale

EPS32 = np.finfo(np.float32).eps


def plain_scale(x):
    """Peak scaling in the default precision: the study's float16 cells (conftest.study_scale)."""
    return study_scale(x)


def plain_pca(xs):
    mean = xs.mean(axis=0)
    cov = np.cov(xs, rowvar=False)  # ddof=1
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    return mean, vals[order], vecs[:, order].T


def layer_rows(meta):
    """(start, end) per meta row from filter_ids in either layout."""
    out = []
    for v in meta["filter_ids"]:
        if isinstance(v, str):
            a, b = v.split(":")
            out.append((int(a), int(b) + 1))
        else:
            out.append((int(v[0]), int(v[-1]) + 1))
    return out


def plain_labels(meta):
    """Group label per meta row for each default axis, straight from the meta columns."""
    cat = meta["Visual Category"] if "Visual Category" in meta else meta["Datatype"]
    task = meta["Task"].map(lambda t: "Segmentation" if "Segmentation" in t else t)
    depth = pd.cut(meta["conv_depth_norm"], bins=np.linspace(0, 1, 11), include_lowest=True)
    pre = meta["Pretraining-Dataset"].map(lambda v: "yes" if isinstance(v, str) and v.strip() else "no")
    return {
        "visual_category": cat.astype(str),
        "task": task,
        "depth": depth,
        "architecture": meta["Name"],
        "training_dataset": meta["Training-Dataset"],
        "pretrained": pre,
    }


@pytest.fixture(scope="module")
def analysed(synth_db):
    layout, path, _ = synth_db
    return layout, path, pipeline.analyse(path, axes_from_config(DEFAULT_AXES), shards=1)


def test_pca_equals_in_memory(analysed):
    _, path, a = analysed
    x, _ = load_all(path)
    mean, vals, vecs = plain_pca(plain_scale(x))
    np.testing.assert_allclose(a.pca.mean, mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.pca.explained_variance, vals, rtol=1e-9)
    np.testing.assert_allclose(a.pca.explained_variance_ratio, vals / vals.sum(), rtol=1e-9)
    for k in range(9):
        v = vecs[k] * np.sign(vecs[k][np.argmax(np.abs(vecs[k]))])  # documented sign convention
        np.testing.assert_allclose(a.pca.components[k], v, rtol=1e-9, atol=1e-9)
        assert a.pca.components[k][np.argmax(np.abs(a.pca.components[k]))] > 0


def test_drift_equals_plain_recomputation(analysed):
    _, path, a = analysed
    x, meta = load_all(path)
    xs = plain_scale(x)
    mean, vals, vecs = plain_pca(xs)
    vecs = np.array([v * np.sign(v[np.argmax(np.abs(v))]) for v in vecs])
    coef = (xs - mean) @ vecs.T
    lo, hi = coef.min(), coef.max()
    assert a.range == pytest.approx((lo, hi), rel=1e-12, abs=1e-12)
    evr = vals / vals.sum()
    rows = layer_rows(meta)
    labels = plain_labels(meta)
    for axis, lab in labels.items():
        table = a.drift[axis]
        groups = list(table["group"])
        lab = lab.astype(str).map(lambda s: s.replace("(-0.001, 0.1]", "[0.0, 0.1]"))
        assert sorted(groups) == sorted(set(lab)), axis
        dists = {}
        for g in groups:
            idx = np.concatenate([np.arange(*rows[i]) for i in np.flatnonzero(lab.to_numpy() == g)])
            p = []
            for c in range(9):
                # the study: the density is floored, not counts / n (docs/method.md §4)
                v, _ = np.histogram(coef[idx, c], range=(lo, hi), bins=70, density=True)
                v[v == 0] = EPS32
                p.append(v / v.sum())
            dists[g] = p
        for g in groups:
            for h in groups:
                want = sum(
                    evr[c] * (entropy(dists[g][c], dists[h][c]) + entropy(dists[h][c], dists[g][c])) for c in range(9)
                )
                got = table.set_index("group").loc[g, h]
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12), (axis, g, h)
        d = table.set_index("group")[groups].to_numpy()
        assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)
        if axis != "depth":  # the study's order: ascending mean drift
            assert np.all(np.diff(d.mean(axis=1)) >= -1e-15)
        else:
            assert groups == sorted(groups, key=lambda s: float(s.strip("[(").split(",")[0]))


def test_probability_floor_option(analysed):
    """``histogram.floor: probability`` floors counts / n; it differs where a group has empty bins."""
    _, path, a = analysed
    axis = axes_from_config(DEFAULT_AXES)[0]
    evr = a.pca.explained_variance_ratio
    _, dens = pipeline.axis_result(a.db.layers, a.hist["counts"], evr, axis, edges=a.hist["edges"])
    pd.testing.assert_frame_equal(dens, a.drift[axis.name])
    _, prob = pipeline.axis_result(a.db.layers, a.hist["counts"], evr, axis, floor="probability")
    x, meta = load_all(path)
    gc = divergence.group_counts(a.hist["counts"], layer_labels(a.db.layers, axis), list(prob["group"]))
    q = gc / gc.sum(axis=-1, keepdims=True)
    q[q == 0] = EPS32
    q = q / q.sum(axis=-1, keepdims=True)
    want = np.array(
        [
            [
                sum(evr[c] * (entropy(q[i, c], q[j, c]) + entropy(q[j, c], q[i, c])) for c in range(9))
                for j in range(len(gc))
            ]
            for i in range(len(gc))
        ]
    )
    np.testing.assert_allclose(prob.iloc[:, 1:].to_numpy(np.float64), want, rtol=1e-9, atol=1e-12)
    if (a.hist["counts"] == 0).any():
        assert not np.allclose(
            prob.iloc[:, 1:].to_numpy(np.float64),
            dens.set_index("group").loc[prob["group"], list(prob["group"])].to_numpy(),
            rtol=1e-6,
        )
    with pytest.raises(ValueError, match="floor"):
        pipeline.axis_result(a.db.layers, a.hist["counts"], evr, axis, floor="counts")


def test_group_counts(analysed):
    _, path, a = analysed
    _, meta = load_all(path)
    rows = layer_rows(meta)
    n = np.array([b - s for s, b in rows])
    for axis, lab in plain_labels(meta).items():
        g = a.groups[axis].set_index("group")
        lab = lab.astype(str).map(lambda s: s.replace("(-0.001, 0.1]", "[0.0, 0.1]"))
        for name, row in g.iterrows():
            sel = lab.to_numpy() == name
            assert row["n_filters"] == n[sel].sum()
            assert row["n_layers"] == sel.sum()
            assert row["n_models"] == meta.loc[sel, "model_id"].nunique()


def test_labels_and_group_counts_equal_a_plain_loop():
    """layer_labels labels each distinct value once and group_counts sums each group's layers in
    one pass: the same as labelling every layer and summing a mask per group, for empty values of
    every kind, folds, relabels, the present kind and unhashable values (lists)."""
    from filterdb.axes import Axis, _empty

    def plain(values, axis):
        out = []
        for v in values:
            if axis.kind == "present":
                out.append("no" if _empty(v) else "yes")
            elif _empty(v):
                out.append(np.nan)
            else:
                lab = str(v).strip()
                lab = next((f for k, f in axis.fold.items() if k in lab), lab)
                out.append(axis.relabel.get(lab, lab))
        return out

    def same(a, b):
        return len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b))

    rng = np.random.default_rng(0)
    pool = ["Classification", " Classification ", "Semantic Segmentation", "Instance Segmentation", "", "nan",
            "None", "[]", None, np.nan, "GAN", "ImageNet", 3, 2.5]  # fmt: skip
    layers = pd.DataFrame({"c": pd.Series([pool[i] for i in rng.integers(0, len(pool), 500)], dtype=object)})
    counts = rng.integers(0, 1000, (500, 9, 7))
    for axis in [
        Axis("a", "c", "categorical", fold={"Segmentation": "Segmentation"}, relabel={"GAN": "Generative"}),
        Axis("b", "c", "present"),
    ]:
        got = layer_labels(layers, axis)
        assert same(got.tolist(), plain(layers["c"], axis)), axis.name
        groups = sorted({v for v in got if v == v})[::-1] + ["absent"]
        lab = got.to_numpy(dtype=object)
        want = np.array([counts[lab == g].sum(axis=0) for g in groups])
        for chunk in (4096, 7, 1):
            assert np.array_equal(divergence.group_counts(counts, got, groups, chunk), want), (axis.name, chunk)
    lists = pd.DataFrame({"c": pd.Series([["x"], [], "y", ["x"], None], dtype=object)})
    for kind in ("categorical", "present"):
        axis = Axis("l", "c", kind)
        assert same(layer_labels(lists, axis).tolist(), plain(lists["c"], axis)), kind


def test_shards_and_blocks_do_not_change_results(synth_db):
    _, path, _ = synth_db
    axes = axes_from_config(DEFAULT_AXES)
    one = pipeline.analyse(path, axes, shards=1)
    many = pipeline.analyse(path, axes, shards=7, block_rows=100)
    more = pipeline.analyse(path, axes, shards=500)  # more shards than layers: empty shards
    for other in (many, more):
        for k in ("n", "sum", "outer"):
            assert np.array_equal(one.sums[k], other.sums[k])
        assert np.array_equal(one.pca.components, other.pca.components)
        assert one.range == other.range
        assert np.array_equal(one.hist["counts"], other.hist["counts"])
        for axis in one.drift:
            pd.testing.assert_frame_equal(one.drift[axis], other.drift[axis], check_exact=True)


def test_min_group_size_filters_groups(synth_db):
    _, path, _ = synth_db
    cfg = {"task": {"column": "Task", "min_models": 3}}
    a = pipeline.analyse(path, axes_from_config(cfg))
    _, meta = load_all(path)
    per_task = meta.groupby("Task")["model_id"].nunique()
    assert set(a.groups["task"]["group"]) == set(per_task[per_task >= 3].index)


def test_library_entry_point_takes_the_workflow_config(synth_db):
    """pipeline.analyse with a config mapping (filled from the schema) sets what the workflow sets:
    histogram bins and floor, quality.orthogonality, stream.bypass_page_cache; the drift equals a
    plain recomputation with those settings."""
    _, path, _ = synth_db
    cfg = {
        "axes": {"task": DEFAULT_AXES["task"]},
        "histogram": {"bins": 40, "floor": "probability", "fine_bins": 0},
        "quality": {"orthogonality": False},
        "stream": {"bypass_page_cache": False},
    }
    a = pipeline.analyse(path, config=cfg)
    x, meta = load_all(path)
    xs = plain_scale(x)
    mean, vals, vecs = plain_pca(xs)
    vecs = np.array([v * np.sign(v[np.argmax(np.abs(v))]) for v in vecs])
    coef = (xs - mean) @ vecs.T
    lo, hi = coef.min(), coef.max()
    evr = vals / vals.sum()
    assert a.hist["counts"].shape[-1] == 40 and "cell_counts" not in a.hist
    rows = layer_rows(meta)
    lab = plain_labels(meta)["task"].to_numpy()
    groups = list(a.drift["task"]["group"])
    assert sorted(groups) == sorted(set(lab))
    q = {}
    for g in groups:
        idx = np.concatenate([np.arange(*rows[i]) for i in np.flatnonzero(lab == g)])
        p = np.array([np.histogram(coef[idx, c], range=(lo, hi), bins=40)[0] / idx.size for c in range(9)])
        p[p == 0] = EPS32  # the probability floor: counts / n floored, not the density
        q[g] = p / p.sum(axis=1, keepdims=True)
    want = [
        [sum(evr[c] * (entropy(q[g][c], q[h][c]) + entropy(q[h][c], q[g][c])) for c in range(9)) for h in groups]
        for g in groups
    ]
    got = a.drift["task"].set_index("group").loc[groups, groups].to_numpy(np.float64)
    np.testing.assert_allclose(got, np.array(want), rtol=1e-9, atol=1e-12)
    # quality on by default (the schema), orthogonality off as configured: NaN in every layer
    assert np.isnan(a.sums["quality_orthogonality"]).all()
    assert np.isfinite(a.sums["quality_sparsity"]).all()
    on = pipeline.analyse(
        path, config={**cfg, "quality": {"orthogonality": True}, "stream": {"bypass_page_cache": True}}
    )
    assert np.isfinite(on.sums["quality_orthogonality"]).any()
    pd.testing.assert_frame_equal(on.drift["task"], a.drift["task"], check_exact=True)
    # the keyword arguments of older callers set the same config keys
    old = pipeline.analyse(path, axes_from_config(cfg["axes"]), bins=40, fine_bins=0)
    assert np.array_equal(old.hist["counts"], a.hist["counts"])
    with pytest.raises(ValueError, match="histogram/floor"):
        pipeline.analyse(path, config={**cfg, "histogram": {"floor": "counts"}})
