"""`filterdb compare`: checkpoints written here (ONNX and safetensors: a model, copies of it with growing
Gaussian perturbations of its 3x3 weights and an identical copy) against a reference analysed by
filterdb.pipeline on a generated DB; every number against a plain numpy recomputation."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from filterdb import compare, inspect, pipeline
from filterdb.axes import axes_from_config
from filterdb.synth import write_synth_db
from tests.conftest import DEFAULT_AXES, study_scale
from tests.test_ingest_safetensors import write_safetensors
from tests.test_inspect import write_results

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(16, 3), (32, 16), (32, 32)]  # (out, in) of the three 3x3 convs
NAMES = ["features.0.weight", "features.3.weight", "features.6.weight"]
EPS = float(np.finfo(np.float32).eps)  # histogram.eps
# the sheet, deliberately not in epoch order: (model, sigma, format, epoch); sigma 0 = identical copy
CHECKPOINTS = [
    ("p0.2", 0.2, "onnx", 2),
    ("copy", 0.0, "safetensors", 0),
    ("p1.0", 1.0, "onnx", 4),
    ("base", None, "onnx", 0),
    ("p0.05", 0.05, "safetensors", 1),
    ("p0.5", 0.5, "safetensors", 3),
]


# ---------------------------------------------------------------------------------------------
# Writers


def base_weights(seed=0):
    """Trained-looking kernels: random mixtures of a blob and two edge detectors plus a little noise
    (so that noise added to them changes the shape distribution)."""
    rng = np.random.default_rng(seed)
    blob = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 4
    dx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 2
    basis = np.stack([blob, dx, dx.T])  # (3, 3, 3)
    out = []
    for o, i in SHAPES:
        mix = rng.standard_normal((o, i, 3))
        w = np.einsum("oik,kab->oiab", mix, basis) + 0.05 * rng.standard_normal((o, i, 3, 3))
        out.append((0.1 * w).astype(np.float32))
    return out


def perturbed(ws, sigma, seed):
    """Layer 0 unchanged; every other layer plus sigma * its std * N(0, 1)."""
    rng = np.random.default_rng(seed)
    out = [ws[0].copy()]
    for w in ws[1:]:
        out.append((w + sigma * w.std() * rng.standard_normal(w.shape)).astype(np.float32))
    return out


def write_onnx(path, ws, names=NAMES):
    """A chain conv - relu - conv - relu - ..., each Conv node named after its layer."""
    nodes, inits, x = [], [], "X"
    for k, (w, name) in enumerate(zip(ws, names)):
        nodes.append(helper.make_node("Conv", [x, f"W{k}"], [f"c{k}"], name=name, pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{k}"], [f"r{k}"]))
        inits.append(numpy_helper.from_array(w, f"W{k}"))
        x = f"r{k}"
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, ws[0].shape[1], 8, 8])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)],
        initializer=inits,
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def write_st(path, ws, names=NAMES):
    write_safetensors(path, {n: ("F32", w.astype("<f4").tobytes(), w.shape) for n, w in zip(names, ws)})


def write_model(path, ws, fmt, names=NAMES):
    (write_onnx if fmt == "onnx" else write_st)(path, ws, names)


def write_sheet(path, rows, columns=("model", "path", "Name", "Task", "epoch")):
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, sep="\t", index=False)
    return str(path)


# ---------------------------------------------------------------------------------------------
# Plain recomputation


def plain_hist(w, ref):
    """(9, bins) counts of the scaled (float16, the default) coefficients over the reference's edges."""
    c = (study_scale(w) - ref.mean) @ ref.components.T
    return np.stack([np.histogram(c[:, i], bins=ref.edges)[0] for i in range(9)])


def plain_drift(h1, h2, evr, edges):
    """D of the study: densities, empty bins floored at eps, renormalised, evr-weighted symmetric KL."""
    width = np.diff(edges)

    def dist(h):
        v = h / width / h.sum(axis=1, keepdims=True)
        v[v == 0] = EPS
        return v / v.sum(axis=1, keepdims=True)

    p, q = dist(np.asarray(h1, float)), dist(np.asarray(h2, float))
    return float(sum(evr[i] * np.sum((p[i] - q[i]) * (np.log(p[i]) - np.log(q[i]))) for i in range(9)))


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A generated DB analysed by filterdb.pipeline, its results written as the workflow writes them."""
    tmp = tmp_path_factory.mktemp("compare_ref")
    db = tmp / "dataset.h5"
    write_synth_db(db, layout="v1.0", seed=7, n_models=6)
    a = pipeline.analyse(str(db), axes_from_config(DEFAULT_AXES), quality={"eps": 0.01})
    res = tmp / "results"
    write_results(a, res)
    return res, a


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, reference):
    _, a = reference
    tmp = tmp_path_factory.mktemp("ckpt")
    name = str(a.db.layers["Name"].iloc[0])  # an architecture of the reference: `member` of its group
    base = base_weights()
    weights, rows = {}, []
    for k, (model, sigma, fmt, epoch) in enumerate(CHECKPOINTS):
        ws = base if sigma is None else (perturbed(base, sigma, seed=100 + k) if sigma else [w.copy() for w in base])
        f = f"{model}.{'onnx' if fmt == 'onnx' else 'safetensors'}"
        write_model(tmp / f, ws, fmt)
        weights[model] = ws
        rows.append([model, f, name, "Classification", epoch])
    return tmp, write_sheet(tmp / "models.tsv", rows), weights, name


@pytest.fixture(scope="module")
def result(reference, checkpoints):
    res, _ = reference
    _, sheet, _, _ = checkpoints
    ref = inspect.load_reference(res)
    c = compare.compare(sheet, ref, axes_from_config(DEFAULT_AXES), order="epoch", log=lambda s: None, progress=False)
    return ref, c


def sheet_models():
    return [m for m, *_ in CHECKPOINTS]


# ---------------------------------------------------------------------------------------------
# Numbers against the plain computation


def test_model_drift_matrix(result, checkpoints):
    ref, c = result
    _, _, weights, _ = checkpoints
    names = sheet_models()
    assert c.names == names  # sheet order
    hist = {m: sum(plain_hist(w.reshape(-1, 9), ref) for w in weights[m]) for m in names}
    plain = np.array([[plain_drift(hist[a], hist[b], ref.evr, ref.edges) for b in names] for a in names])
    np.testing.assert_allclose(c.drift, plain, rtol=1e-12, atol=1e-15)
    k = {m: i for i, m in enumerate(names)}
    assert c.drift[k["base"], k["copy"]] == 0.0  # an identical copy (in the other format): exactly 0
    along = [c.drift[k["base"], k[m]] for m in ("copy", "p0.05", "p0.2", "p0.5", "p1.0")]
    assert all(x < y for x, y in zip(along, along[1:])), along  # grows with the perturbation
    # the per-model table: filters, the outside count of the plain histograms, the formats
    n = {m: sum(w.shape[0] * w.shape[1] for w in weights[m]) for m in names}
    assert list(c.models["n_filters"]) == [n[m] for m in names]
    assert list(c.models["format"]) == [f for _, _, f, _ in CHECKPOINTS]
    outside = [9 * n[m] - int(hist[m].sum()) for m in names]
    assert list(c.models["coefficients_outside_range"]) == outside


def test_layer_drift(result, checkpoints):
    ref, c = result
    _, _, weights, _ = checkpoints
    ld = c.layer_drift
    names = sheet_models()
    assert len(ld) == 3 * len(names) * (len(names) - 1) // 2 and set(ld["match"]) == {"name"}
    assert len(c.unmatched) == 0
    assert (ld.loc[ld["layer_a"] == 0, "drift"] == 0.0).all()  # the unperturbed layer: 0 exactly
    for r in ld.itertuples():
        ha = plain_hist(weights[r.model_a][r.layer_a].reshape(-1, 9), ref)
        hb = plain_hist(weights[r.model_b][r.layer_b].reshape(-1, 9), ref)
        assert r.layer_name_a == NAMES[r.layer_a] and r.layer_b == r.layer_a
        np.testing.assert_allclose(r.drift, plain_drift(ha, hb, ref.evr, ref.edges), rtol=1e-12, atol=1e-15)
    base_vs = ld[(ld["model_a"] == "p0.2") & (ld["model_b"] == "copy") & (ld["layer_a"] > 0)]
    assert (base_vs["drift"] > 0).all()


def test_depth_drift(result, checkpoints):
    """Three conv levels: conv_depth_norm 0, 0.5, 1 fall in the first, fifth and last decile; the
    other bins are empty (NaN)."""
    ref, c = result
    _, _, weights, _ = checkpoints
    dd = c.depth_drift
    labels = list(pd.cut([0.0, 0.5, 1.0], bins=np.linspace(0, 1, 11), include_lowest=True).astype(str))
    labels = [lab.replace("(-0.001", "[0.0") for lab in labels]
    pair = dd[(dd["model_a"] == "base") & (dd["model_b"] == "p0.05")]
    assert len(pair) == 10
    full = pair[pair["drift"].notna()]
    assert list(full["depth_bin"]) == labels
    for k, r in enumerate(full.itertuples()):
        ha = plain_hist(weights["base"][k].reshape(-1, 9), ref)
        hb = plain_hist(weights["p0.05"][k].reshape(-1, 9), ref)
        np.testing.assert_allclose(r.drift, plain_drift(ha, hb, ref.evr, ref.edges), rtol=1e-12, atol=1e-15)
        assert r.n_filters_a == weights["base"][k].shape[0] * weights["base"][k].shape[1]


def test_reference_groups(result, reference, checkpoints):
    """Drift to each architecture group of the reference: its layers' histograms summed, plainly."""
    ref, c = result
    _, a = reference
    _, _, weights, name = checkpoints
    g = c.groups[(c.groups["model"] == "p0.5") & (c.groups["axis"] == "architecture")]
    h = sum(plain_hist(w.reshape(-1, 9), ref) for w in weights["p0.5"])
    counts = a.hist["counts"]
    archs = a.db.layers["Name"].astype(str).str.strip().to_numpy()
    assert set(g["group"]) == set(archs)
    for r in g.itertuples():
        gh = counts[archs == r.group].sum(axis=0)
        np.testing.assert_allclose(r.drift, plain_drift(h, gh, ref.evr, ref.edges), rtol=1e-12, atol=1e-15)
        assert r.member == (r.group == name)
    assert list(g["drift"]) == sorted(g["drift"]) and list(g["rank"]) == list(range(1, len(g) + 1))
    assert set(c.groups["axis"]) == set(DEFAULT_AXES) - {"training_dataset"} | {"training_dataset"}


def test_quality_plain(result, checkpoints):
    """Sparsity and variance entropy of each layer on the float16-rounded weights (the default)."""
    _, c = result
    _, _, weights, _ = checkpoints
    ql = c.quality_layers
    for m in sheet_models():
        rows = ql[ql["model"] == m]
        assert list(rows["layer"]) == [0, 1, 2] and list(rows["layer_name"]) == NAMES
        for r, w in zip(rows.itertuples(), weights[m]):
            x = w.reshape(-1, 9).astype(np.float16).astype(np.float64)
            sparse = np.all(np.abs(x) < 0.01 * np.abs(x).max(), axis=1).mean()
            s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
            p = s**2 / np.sum(s**2)
            p = p[p > 0]
            assert r.sparsity == pytest.approx(sparse, abs=1e-12)
            assert r.variance_entropy == pytest.approx(-np.sum(p * np.log10(p)), abs=1e-9)
    qm = c.quality_models
    assert list(qm["model"]) == sheet_models()  # sheet order
    np.testing.assert_allclose(
        qm["sparsity"],
        [
            np.average(ql[ql["model"] == m]["sparsity"], weights=ql[ql["model"] == m]["n_filters"])
            for m in sheet_models()
        ],
    )


def test_trajectory(result, checkpoints):
    """Ordered by epoch (the tie of base and copy at epoch 0 in sheet order: copy first): drift to the
    first checkpoint and to the previous one, whole model and per layer, as defined."""
    ref, c = result
    _, _, weights, _ = checkpoints
    t = c.trajectory
    order = ["copy", "base", "p0.05", "p0.2", "p0.5", "p1.0"]
    epochs = {m: e for m, _, _, e in CHECKPOINTS}
    mrow = t[t["scope"] == "model"]
    assert list(mrow["model"]) == order and list(mrow["step"]) == list(range(6))
    assert list(mrow["order"]) == [epochs[m] for m in order]

    def hist(m, layer=None):
        ws = weights[m] if layer is None else [weights[m][layer]]
        return sum(plain_hist(w.reshape(-1, 9), ref) for w in ws)

    for s, m in enumerate(order):
        r = mrow.iloc[s]
        assert r["drift_to_first"] == pytest.approx(plain_drift(hist(m), hist(order[0]), ref.evr, ref.edges), rel=1e-12)
        if s == 0:
            assert np.isnan(r["drift_to_previous"]) and r["drift_to_first"] == 0
        else:
            want = plain_drift(hist(m), hist(order[s - 1]), ref.evr, ref.edges)
            assert r["drift_to_previous"] == pytest.approx(want, rel=1e-12)
        lrow = t[(t["scope"] == "layer") & (t["model"] == m)]
        assert list(lrow["layer"]) == [0, 1, 2]
        for j, lr in enumerate(lrow.itertuples()):
            want = plain_drift(hist(m, j), hist(order[0], j), ref.evr, ref.edges)
            assert lr.drift_to_first == pytest.approx(want, rel=1e-12, abs=1e-15)
            if s:
                want = plain_drift(hist(m, j), hist(order[s - 1], j), ref.evr, ref.edges)
                assert lr.drift_to_previous == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert (t.loc[(t["scope"] == "layer") & (t["layer"] == 0), "drift_to_first"] == 0).all()
    # the figure's arrays: layers x checkpoints of drift to the first
    arr = compare.trajectory_arrays(t)
    assert arr["layer_to_first"].shape == (3, 6) and arr["layers"][1] == f"1 {NAMES[1]}"
    np.testing.assert_array_equal(arr["to_first"], mrow["drift_to_first"].to_numpy())


def test_outside_range_counted_and_dropped(reference, checkpoints):
    """A reference range narrower than the coefficients: the values outside are counted, not binned."""
    res, _ = reference
    tmp, _, weights, _ = checkpoints
    ref = inspect.load_reference(res)
    narrow = inspect.Reference(**{**ref.__dict__, "edges": np.linspace(-0.4, 0.4, 71), "range": (-0.4, 0.4)})
    m = inspect.read_model(tmp / "p0.5.safetensors")
    p = inspect.project_model(m, narrow, 0.01, "float16")
    for k, w in enumerate(weights["p0.5"]):
        coef = (study_scale(w.reshape(-1, 9)) - ref.mean) @ ref.components.T
        assert p.outside[k] == np.count_nonzero((coef < -0.4) | (coef > 0.4)) > 0
        np.testing.assert_array_equal(p.counts[k], plain_hist(w.reshape(-1, 9), narrow))


# ---------------------------------------------------------------------------------------------
# Layer matching


def _meta(names):
    return pd.DataFrame({"layer_name": names})


def test_match_layers_rules():
    m = compare.match_layers(_meta(["b", "c"]), _meta(["a", "b", "c"]))
    assert (m.how, m.pairs, m.only_a, m.only_b) == ("name", [(0, 1), (1, 2)], [], [0])
    m = compare.match_layers(_meta(["a", "b", "c"]), _meta(["b", "c"]))  # a name of the first missing
    assert (m.how, m.pairs, m.only_a, m.only_b) == ("position", [(0, 0), (1, 1)], [2], [])
    m = compare.match_layers(_meta(["x", "x"]), _meta(["x", "y", "z"]))  # duplicate names
    assert (m.how, m.pairs, m.only_b) == ("position", [(0, 0), (1, 1)], [2])
    m = compare.match_layers(pd.DataFrame(index=range(3)), pd.DataFrame(index=range(2)))  # no names
    assert (m.how, m.pairs, m.only_a) == ("position", [(0, 0), (1, 1)], [2])
    m = compare.match_layers(_meta(["a", ""]), _meta(["a", "b"]))  # a layer without a name
    assert m.how == "position"


def test_matching_by_name_and_by_position(reference, tmp_path):
    """`trunc` holds the base's layers 1 and 2 under their names: matched by name to the base (drift
    0); `renamed` is the base under other names: matched by position (drift 0 to the base, and to
    `trunc` layer k with base layer k)."""
    res, _ = reference
    base = base_weights(seed=3)
    write_onnx(tmp_path / "base.onnx", base)
    write_st(tmp_path / "trunc.safetensors", base[1:], NAMES[1:])
    write_st(tmp_path / "renamed.safetensors", base, ["conv_a.weight", "conv_b.weight", "conv_c.weight"])
    sheet = write_sheet(
        tmp_path / "m.tsv",
        [
            ["trunc", "trunc.safetensors", "", "", 0],
            ["base", "base.onnx", "", "", 1],
            ["renamed", "renamed.safetensors", "", "", 2],
        ],
    )
    ref = inspect.load_reference(res)
    c = compare.compare(sheet, ref, axes_from_config(DEFAULT_AXES), log=lambda s: None, progress=False)
    ld = c.layer_drift
    tb = ld[(ld["model_a"] == "trunc") & (ld["model_b"] == "base")]
    assert set(tb["match"]) == {"name"} and list(zip(tb["layer_a"], tb["layer_b"])) == [(0, 1), (1, 2)]
    assert (tb["drift"] == 0).all()
    br = ld[(ld["model_a"] == "base") & (ld["model_b"] == "renamed")]
    assert set(br["match"]) == {"position"} and list(br["layer_b"]) == [0, 1, 2] and (br["drift"] == 0).all()
    tr = ld[(ld["model_a"] == "trunc") & (ld["model_b"] == "renamed")]
    assert set(tr["match"]) == {"position"} and list(zip(tr["layer_a"], tr["layer_b"])) == [(0, 0), (1, 1)]
    for r in tr.itertuples():  # trunc's layer k is base layer k + 1; renamed's layer k is base layer k
        want = plain_drift(
            plain_hist(base[r.layer_a + 1].reshape(-1, 9), ref),
            plain_hist(base[r.layer_b].reshape(-1, 9), ref),
            ref.evr,
            ref.edges,
        )
        assert r.drift == pytest.approx(want, rel=1e-12)
    u = c.unmatched
    assert set(zip(u["model_a"], u["model_b"], u["model"], u["layer"])) == {
        ("trunc", "base", "base", 0),
        ("trunc", "renamed", "renamed", 2),
    }
    assert c.drift[1, 2] == 0.0


# ---------------------------------------------------------------------------------------------
# The command line and the workflow


FILES = [
    "drift.tsv",
    "models.tsv",
    "layer_drift.tsv",
    "unmatched_layers.tsv",
    "depth_drift.tsv",
    "groups.tsv",
    "quality_layers.tsv",
    "quality_models.tsv",
    "summary.json",
    "drift_heatmap.svg",
    "drift_heatmap.png",
]
TRAJECTORY = ["trajectory.tsv", "trajectory.svg", "trajectory.png"]


def run_cli(*args):
    exe = shutil.which("filterdb")
    assert exe, "the filterdb command is not installed"
    return subprocess.run([exe, "compare", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_cli_end_to_end(reference, checkpoints, result, tmp_path):
    res, _ = reference
    _, sheet, _, _ = checkpoints
    _, c = result
    out = tmp_path / "out"
    p = run_cli(sheet, "--reference", res, "--order", "epoch", "-o", out, "-q")
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    for m in sheet_models():
        assert sum(line.startswith(f"model {m}:") for line in lines) == 1
    assert any(line.startswith("compared 6 models") for line in lines)
    assert sorted(f.name for f in out.iterdir()) == sorted(FILES + TRAJECTORY)
    d = pd.read_csv(out / "drift.tsv", sep="\t")
    assert list(d.columns) == ["model"] + sheet_models() and list(d["model"]) == sheet_models()
    np.testing.assert_array_equal(d.iloc[:, 1:].to_numpy(), c.drift)  # round-trip float format
    t = pd.read_csv(out / "trajectory.tsv", sep="\t")
    assert list(t.columns) == compare.TRAJECTORY_COLUMNS
    np.testing.assert_array_equal(t["drift_to_first"].to_numpy(), c.trajectory["drift_to_first"].to_numpy(float))
    s = json.loads((out / "summary.json").read_text())
    assert s["settings"]["precision"] == "float16" and s["settings"]["order"] == "epoch"
    # the figures are byte-reproducible
    before = {f: (out / f).read_bytes() for f in ("drift_heatmap.svg", "trajectory.svg", "trajectory.png")}
    assert run_cli(sheet, "--reference", res, "--order", "epoch", "-o", out, "-q").returncode == 0
    assert all((out / f).read_bytes() == b for f, b in before.items())


def test_cli_errors_one_line_no_output(reference, checkpoints, tmp_path):
    res, _ = reference
    tmp, sheet, _, _ = checkpoints
    rows = pd.read_csv(sheet, sep="\t", dtype=str, keep_default_na=False)
    rows["path"] = [str(tmp / p) for p in rows["path"]]
    bad = rows.copy()
    bad.loc[2, "path"] = str(tmp / "missing.onnx")
    bad_sheet = tmp_path / "bad.tsv"
    bad.to_csv(bad_sheet, sep="\t", index=False)
    out = tmp_path / "o1"
    p = run_cli(bad_sheet, "--reference", res, "-o", out, "-q")
    err = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(err) == 1, p.stderr
    assert f"{bad_sheet}: row 4 (model 'p1.0'): {tmp / 'missing.onnx'}: no such file" in err[0]
    assert not out.exists()
    # a file that is not a model: the row, the file and the reader's reason
    notmodel = tmp_path / "not.onnx"
    notmodel.write_text("hello")
    bad.loc[2, "path"] = str(notmodel)
    bad.to_csv(bad_sheet, sep="\t", index=False)
    p = run_cli(bad_sheet, "--reference", res, "-o", out, "-q")
    err = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(err) == 1 and "row 4 (model 'p1.0')" in err[0] and str(notmodel) in err[0]
    assert not out.exists()
    # --order: a column the sheet lacks, and a value that is not a number
    ok_sheet = tmp_path / "ok.tsv"
    rows.to_csv(ok_sheet, sep="\t", index=False)
    p = run_cli(ok_sheet, "--reference", res, "--order", "step", "-o", out, "-q")
    err = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(err) == 1 and "no column 'step'" in err[0] and str(ok_sheet) in err[0]
    rows.loc[1, "epoch"] = "late"
    rows.to_csv(ok_sheet, sep="\t", index=False)
    p = run_cli(ok_sheet, "--reference", res, "--order", "epoch", "-o", out, "-q")
    err = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(err) == 1 and "row 3 (model 'copy'): epoch 'late' is not a number" in err[0]
    assert not out.exists()


@pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake not installed")
def test_workflow_rule(checkpoints, tmp_path):
    """The rule with compare.sheet (and order) set, against the run's own results: the same numbers as
    the library against those results."""
    from tests.test_workflow import run_workflow

    _, sheet, _, _ = checkpoints
    db = tmp_path / "dataset.h5"
    write_synth_db(db, layout="v1.0", seed=5, n_models=5)
    res = tmp_path / "res"
    targets = [str(res / "compare" / f) for f in FILES + TRAJECTORY]
    p = run_workflow(tmp_path, db, res, f"compare={{sheet: {sheet}, order: epoch}}", targets=targets)
    assert p.returncode == 0, p.stderr[-3000:]
    ref = inspect.load_reference(res)
    c = compare.compare(sheet, ref, axes_from_config(DEFAULT_AXES), order="epoch", log=lambda s: None, progress=False)
    d = pd.read_csv(res / "compare/drift.tsv", sep="\t")
    np.testing.assert_array_equal(d.iloc[:, 1:].to_numpy(), c.drift)
    t = pd.read_csv(res / "compare/trajectory.tsv", sep="\t")
    np.testing.assert_array_equal(t["drift_to_first"].to_numpy(), c.trajectory["drift_to_first"].to_numpy(float))
    log = (res / "logs/compare.log").read_text()
    assert "model base:" in log and "peak memory of this job" in log
    # the report holds the Compare category
    html = tmp_path / "report.html"
    p = run_workflow(
        tmp_path, db, res, f"compare={{sheet: {sheet}, order: epoch}}", "--report", str(html), targets=targets
    )
    assert p.returncode == 0, p.stderr[-3000:]
    text = html.read_text()
    assert '"Compare"' in text and "trajectory.svg" in text


def test_trajectory_figure_shows_the_table(result):
    """The figure's lines and heatmap hold the trajectory's numbers (NaN cells masked)."""
    from filterdb import plots

    _, c = result
    a = compare.trajectory_arrays(c.trajectory)
    grid = a["layer_to_first"].copy()
    grid[2, 3] = np.nan  # a checkpoint without that layer
    fig = plots.training_trajectory(a["order"], a["to_first"], a["to_previous"], a["layers"], grid, order_label="epoch")
    lines, heat = fig.axes[0], fig.axes[1]
    np.testing.assert_array_equal(lines.lines[0].get_ydata(), a["to_first"])
    np.testing.assert_array_equal(lines.lines[1].get_ydata(), a["to_previous"])
    np.testing.assert_array_equal(lines.lines[0].get_xdata(), np.asarray(a["order"], float))
    img = heat.images[0].get_array()
    assert img.mask[2, 3] and img.mask.sum() == 1
    np.testing.assert_array_equal(img.filled(np.nan), grid)
    assert [t.get_text() for t in heat.get_yticklabels()] == a["layers"]
    assert heat.images[0].get_clim() == (0, np.nanmax(grid))
