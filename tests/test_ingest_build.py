"""`filterdb build`: models sheet -> DB in the published v1.0 layout; skipped models; append;
sources from pinned archives (local cache, no network); the real sample (downloads from the
package registry; FILTERDB_OFFLINE=1 skips it)."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from torch_writer import write_torch_zip

from filterdb.cli import main
from filterdb.db import open_db, read_meta
from filterdb.ingest.build import build
from filterdb.ingest.fetch import extract_member, fetch_archive, parse_source

ROOT = Path(__file__).resolve().parents[1]
COLS = [
    "model",
    "path",
    "Name",
    "Task",
    "Visual Category",
    "Training-Dataset",
    "Pretraining-Dataset",
    "licence",
    "note",
]


def _w(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _onnx_model(path, seed=0):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w1, w2 = _w(4, 2, 3, 3, seed=seed), _w(3, 4, 3, 3, seed=seed + 1)
    nodes = [
        helper.make_node("Conv", ["X", "W1"], ["a"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["a", "s", "b", "m", "v"], ["bn"]),
        helper.make_node("Conv", ["bn", "W2"], ["y"], name="c2", pads=[1, 1, 1, 1]),
    ]
    ones = np.ones(4, np.float32)
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[
            numpy_helper.from_array(v, k)
            for k, v in {"W1": w1, "W2": w2, "s": ones, "b": ones * 0, "m": ones * 0, "v": ones}.items()
        ],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return w1, w2


def _sheet(tmp_path, rows, name="models.tsv"):
    df = pd.DataFrame(rows, columns=COLS).fillna("")
    p = tmp_path / name
    df.to_csv(p, sep="\t", index=False)
    return str(p)


def _row(model, path, task="Classification", cat="natural", note=""):
    return [model, path, "Toy", task, cat, "Toyset", "", "MIT", note]


@pytest.fixture
def models(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    w = {}
    w["onnx"] = _onnx_model(d / "a.onnx", seed=1)
    sd = OrderedDict([("conv.weight", _w(2, 3, 3, 3, seed=5)), ("head.weight", _w(5, 2, 1, 1, seed=6))])
    write_torch_zip(d / "b.pt", sd)
    w["torch"] = (sd["conv.weight"],)
    (d / "c.txt").write_text("not a model")
    write_torch_zip(d / "d.pt", OrderedDict([("lin.weight", _w(3, 4))]))  # no 4-D conv
    sd5 = OrderedDict([("pw.weight", _w(3, 4, 1, 1))])
    write_torch_zip(d / "e.pt", sd5)  # only 1x1
    return d, w


def test_build_sheet_layout_and_skipped(tmp_path, models, capsys):
    d, w = models
    sheet = _sheet(
        tmp_path,
        [
            _row("a", "m/a.onnx", note="first"),
            _row("bad", "m/c.txt"),
            _row("b", "m/b.pt", task="Semantic Segmentation", cat="medical"),
            _row("nolayer", "m/d.pt"),
            _row("pw", "m/e.pt"),
            _row("gone", "m/missing.onnx"),
        ],
    )
    out = tmp_path / "db.h5"
    assert main(["build", sheet, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipped bad: " in err and "c.txt: unsupported or unrecognised model format" in err
    assert "skipped nolayer:" in err and "no 3x3 conv (no 4-D conv found)" in err
    assert "skipped pw:" in err and "no 3x3 conv (conv kernels: 1x1)" in err
    assert "missing.onnx: no such file" in err
    skipped = pd.read_csv(tmp_path / "db.skipped.tsv", sep="\t")
    assert list(skipped["model"]) == ["bad", "nolayer", "pw", "gone"]
    assert list(skipped.columns) == ["model", "file", "reason"]
    # published v1.0 layout
    with h5py.File(out, "r") as f:
        assert f["filters"].dtype == np.float32 and f["filters"].shape == (8 + 12 + 6, 9)
        x = f["filters"][...]
    meta = read_meta(out)
    assert list(meta.index.names) == ["model_id", "conv_depth", "conv_depth_norm"]
    assert list(meta["filter_ids"]) == ["0:7", "8:19", "20:25"]
    np.testing.assert_array_equal(x[:8], w["onnx"][0].reshape(-1, 9))
    np.testing.assert_array_equal(x[8:20], w["onnx"][1].reshape(-1, 9))
    np.testing.assert_array_equal(x[20:], w["torch"][0].reshape(-1, 9))
    m = meta.reset_index()
    assert list(m["model_id"]) == [0, 0, 1] and list(m["conv_depth"]) == [0, 1, 0]
    assert list(m["conv_depth_norm"]) == [0.0, 1.0, 0.0]
    assert list(m["model"]) == ["a", "a", "b"] and list(m["note"]) == ["first", "first", ""]
    assert list(m["format"]) == ["onnx", "onnx", "pytorch"]
    assert list(m["depth_source"]) == ["graph", "graph", "weight_order"]
    assert list(m["bn_folded"]) == [False, False, True]
    assert list(m["in_channels"]) == [2, 4, 3] and list(m["out_channels"]) == [4, 3, 2]
    assert list(m["(3, 3) filters"]) == [20, 20, 6] and list(m["(1, 1) filters"]) == [0, 0, 10]
    assert m["3x3_filter_share"].iloc[2] == pytest.approx(6 / 16)
    assert m["content_sha256"].iloc[0] == hashlib.sha256((d / "a.onnx").read_bytes()).hexdigest()
    for c in [
        "Name",
        "Task",
        "Visual Category",
        "Training-Dataset",
        "Pretraining-Dataset",
        "licence",
        "layer_name",
        "groups",
        "total_filters",
        "producer",
        "file",
    ]:
        assert c in m.columns
    db = open_db(out)  # the project's reader accepts it
    assert db.n_rows == 26


def test_append_skips_duplicates_and_continues_ids(tmp_path, models, capsys):
    d, _ = models
    out = tmp_path / "db.h5"
    assert main(["build", _sheet(tmp_path, [_row("a", "m/a.onnx")], "s1.tsv"), "-o", str(out)]) == 0
    with h5py.File(out, "r") as f:
        first = f["filters"][...]
    shutil.copy(d / "b.pt", d / "b_copy.pt")
    sheet2 = _sheet(
        tmp_path,
        [
            _row("a", "m/b.pt"),  # same id, other file
            _row("a2", "m/a.onnx"),  # same content
            _row("b", "m/b.pt"),
            _row("b-again", "m/b_copy.pt"),
        ],
        "s2.tsv",
    )
    assert main(["build", sheet2, "-o", str(out), "--append", "--skipped", str(tmp_path / "sk.tsv")]) == 0
    err = capsys.readouterr().err
    assert "skipped a: m/b.pt: already in the DB (same model id)" in err.replace(str(d), "m")
    assert "skipped a2:" in err and "same content sha256" in err
    assert "skipped b-again:" in err
    meta = read_meta(out).reset_index()
    assert list(meta["model"]) == ["a", "a", "b"] and list(meta["model_id"]) == [0, 0, 1]
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["filters"][: len(first)], first)  # old rows untouched
        assert f["filters"].shape[0] == len(first) + 6
    assert len(pd.read_csv(tmp_path / "sk.tsv", sep="\t")) == 3
    # nothing new: DB unchanged, exit 0 (the DB holds models)
    assert main(["build", sheet2, "-o", str(out), "--append"]) == 0
    assert len(read_meta(out)) == 3


def test_nothing_built_is_an_error_and_leaves_no_db(tmp_path, models):
    sheet = _sheet(tmp_path, [_row("bad", "m/c.txt")])
    out = tmp_path / "db.h5"
    assert main(["build", sheet, "-o", str(out)]) == 1
    assert not out.exists() and not Path(str(out) + ".partial").exists()
    assert (tmp_path / "db.skipped.tsv").exists()


def test_sheet_errors(tmp_path):
    p = tmp_path / "s.tsv"
    p.write_text("model\tpath\nx\ta.onnx\nx\tb.onnx\n")
    assert main(["build", str(p), "-o", str(tmp_path / "o.h5")]) == 1
    with pytest.raises(ValueError, match="model id 'x' appears more than once"):
        build(str(p), str(tmp_path / "o.h5"))
    p.write_text("name\tpath\nx\ta.onnx\n")
    with pytest.raises(ValueError, match="has no 'model' column"):
        build(str(p), str(tmp_path / "o.h5"))


def test_source_rows_from_cached_archives(tmp_path, models):
    """`source` rows: wheel (zip) and sdist (tar.gz) archives found in the cache by sha256."""
    d, w = models
    cache = tmp_path / "cache"
    (cache / "archives").mkdir(parents=True)
    whl = cache / "archives" / "toy_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.write(d / "a.onnx", "toy_pkg/models/a.onnx")
    sdist = cache / "archives" / "toy-sdist-2.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as t:
        t.add(d / "b.pt", "toy-sdist-2.0/weights/b.pt")
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (whl, sdist)}
    rows = [
        ["w", f"pypi:toy-pkg==1.0#sha256={sha[whl]}", "toy_pkg/models/a.onnx", "Toy", "Classification", "x"],
        ["s", f"pypi:toy-sdist==2.0#sha256={sha[sdist]}", "toy-sdist-2.0/weights/b.pt", "Toy", "Classification", "y"],
        ["bad-sha", "pypi:toy-pkg==1.0#sha256=" + "0" * 64, "toy_pkg/models/a.onnx", "Toy", "Classification", "x"],
        ["no-member", f"pypi:toy-pkg==1.0#sha256={sha[whl]}", "toy_pkg/nope.onnx", "Toy", "Classification", "x"],
    ]
    sheet = tmp_path / "src.tsv"
    pd.DataFrame(rows, columns=["model", "source", "member", "Name", "Task", "Visual Category"]).to_csv(
        sheet, sep="\t", index=False
    )
    res = build(str(sheet), str(tmp_path / "db.h5"), cache=str(cache), download=False, log=lambda m: None)
    assert res.built == ["w", "s"]
    reasons = {s["model"]: s["reason"] for s in res.skipped}
    assert "not in" in reasons["bad-sha"] and "downloading is off" in reasons["bad-sha"]
    assert "has no member toy_pkg/nope.onnx" in reasons["no-member"]
    meta = read_meta(tmp_path / "db.h5").reset_index()
    assert set(meta["source"]) == {rows[0][1], rows[1][1]} and "Training-Dataset" in meta.columns


def test_fetch_helpers(tmp_path):
    s = parse_source(
        "pypi:mediapipe==0.10.21#sha256=" + "a" * 64, "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
    )
    assert (s.name, s.version, s.sha256) == ("mediapipe", "0.10.21", "a" * 64)
    from filterdb.ingest.fetch import _pip_flags

    flags = _pip_flags(s)
    assert flags[:2] == ["--only-binary", ":all:"] and "manylinux_2_28_x86_64" in flags and "3.11" in flags
    assert _pip_flags(parse_source("pypi:deepCR==0.3.1", "deepCR-0.3.1.tar.gz")) == ["--no-binary", ":all:"]
    with pytest.raises(ValueError, match="expected 'pypi:NAME==VERSION"):
        parse_source("http://example.com/x.whl")
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("pkg/x.bin", b"abc")
    assert Path(extract_member(str(z), "pkg/x.bin", str(tmp_path / "out"))).read_bytes() == b"abc"
    with pytest.raises(ValueError, match="relative path"):
        extract_member(str(z), "../etc/passwd", str(tmp_path / "out"))
    with pytest.raises(ValueError, match="archive not in"):
        fetch_archive(s, str(tmp_path / "empty"), download=False)


@pytest.mark.network
@pytest.mark.skipif(os.environ.get("FILTERDB_OFFLINE") == "1", reason="FILTERDB_OFFLINE=1: no registry downloads")
def test_real_sample_sheet(tmp_path):
    cache = os.environ.get("FILTERDB_CACHE") or str(ROOT / "resources" / "archives")
    out = tmp_path / "sample.h5"
    res = build(str(ROOT / "config" / "sample_models.tsv"), str(out), cache=cache, log=print)
    assert not res.skipped, res.skipped
    layers = open_db(out).layers
    tasks = layers["Task"].where(~layers["Task"].str.contains("Segmentation"), "Segmentation")
    assert layers["Visual Category"].nunique() >= 4 and tasks.nunique() >= 4
    per_model = layers.groupby("model")["n_filters"].sum()
    assert per_model["facenet-mtcnn-pnet"] == 702 and per_model["facenet-mtcnn-onet"] == 6240
    assert per_model["fer-mini-xception"] == 1328 and per_model["rapidocr-ppocrv4-det"] == 11904
    assert per_model["basic-pitch-nmp"] == 33 and per_model["mediapipe-facemesh"] > 0


def test_batched_writes_match_single_write(tmp_path, models):
    """Writing in batches (flush_rows) gives the same DB; kernel-count columns are filled with 0."""
    sheet = _sheet(tmp_path, [_row("a", "m/a.onnx"), _row("b", "m/b.pt")])
    one, many = tmp_path / "one.h5", tmp_path / "many.h5"
    build(sheet, str(one), log=lambda m: None)
    build(sheet, str(many), log=lambda m: None, flush_rows=1)
    with h5py.File(one, "r") as f1, h5py.File(many, "r") as f2:
        np.testing.assert_array_equal(f1["filters"][...], f2["filters"][...])
    m1, m2 = read_meta(one), read_meta(many)
    assert list(m2["filter_ids"]) == list(m1["filter_ids"])
    assert list(m2["(1, 1) filters"]) == [0, 0, 10] and m2["(1, 1) filters"].dtype == np.int64
    assert not Path(str(many) + ".building").exists()


def test_train_digits_script_one_epoch(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("onnx")
    import runpy

    mod = runpy.run_path(str(ROOT / "workflow" / "scripts" / "train_digits.py"), run_name="train_digits")
    model, sheet = tmp_path / "d" / "digits.onnx", tmp_path / "d" / "models.tsv"
    mod["run"](str(model), str(sheet), epochs=1, seed=1, log=lambda m: None)
    res = build(str(sheet), str(tmp_path / "digits.h5"), log=lambda m: None)
    assert res.built == ["digits-cnn-seed1"] and res.n_filters == 8 + 128
    meta = read_meta(tmp_path / "digits.h5").reset_index()
    assert list(meta["conv_depth_norm"]) == [0.0, 1.0] and meta["Visual Category"].iloc[0] == "handwritten digits"


def test_train_digits_onnx_is_what_onnx_helper_writes(tmp_path):
    """The training script writes its ONNX file from onnx's protobuf messages directly (no start-up
    of the onnx package): the same bytes as onnx.helper / numpy_helper / onnx.save build from the
    same weights, and a model onnx.checker accepts."""
    onnx = pytest.importorskip("onnx")
    import runpy

    from onnx import TensorProto, helper, numpy_helper

    mod = runpy.run_path(str(ROOT / "workflow" / "scripts" / "train_digits.py"), run_name="train_digits")
    rng = np.random.default_rng(3)
    shapes = {"w1": (8, 1, 3, 3), "b1": (8,), "w2": (16, 8, 3, 3), "b2": (16,), "w3": (10, 16), "b3": (10,)}
    params = {k: rng.normal(size=s) for k, s in shapes.items()}
    meta = {"test_accuracy": "0.9500", "seed": 4, "epochs": 2}
    mine = tmp_path / "mine.onnx"
    mod["write_onnx"](params, str(mine), meta)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["h1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2", "b2"], ["h2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h2"], ["a2"]),
        helper.make_node("GlobalAveragePool", ["a2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["gf"]),
        helper.make_node("Gemm", ["gf", "w3", "b3"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in params.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="filterdb train_digits.py (numpy)"
    )
    for k, val in meta.items():
        model.metadata_props.add(key=k, value=str(val))
    onnx.save(model, str(tmp_path / "theirs.onnx"))
    assert mine.read_bytes() == (tmp_path / "theirs.onnx").read_bytes()
    onnx.checker.check_model(onnx.load(str(mine)))


def test_train_digits_conv_gradients():
    """The training script's 3x3 convolution and its gradients against plain loops, and its
    patches bit for bit against numpy's sliding windows (the layout the trained sample was made with)."""
    import runpy

    mod = runpy.run_path(str(ROOT / "workflow" / "scripts" / "train_digits.py"), run_name="train_digits")
    rng = np.random.default_rng(0)
    n, c, h, w, o = 3, 2, 5, 4, 3
    x, wt, b = rng.normal(size=(n, c, h, w)), rng.normal(size=(o, c, 3, 3)), rng.normal(size=o)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))
    assert np.array_equal(mod["_patches"](x), win.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * 9))
    y, p = mod["_conv"](x, wt, b)
    ref = np.zeros((n, o, h, w))
    for i in range(3):
        for j in range(3):
            ref += np.einsum("ncyx,oc->noyx", xp[:, :, i : i + h, j : j + w], wt[:, :, i, j])
    np.testing.assert_allclose(y, ref + b[None, :, None, None], rtol=1e-12, atol=1e-12)
    dy = rng.normal(size=(n, o, h, w))
    dx, dw, db = mod["_conv_back"](dy, p, wt, x.shape)
    dxp = np.zeros_like(xp)
    want_dw = np.zeros_like(wt)
    for i in range(3):
        for j in range(3):
            want_dw[:, :, i, j] = np.einsum("noyx,ncyx->oc", dy, xp[:, :, i : i + h, j : j + w])
            dxp[:, :, i : i + h, j : j + w] += np.einsum("noyx,oc->ncyx", dy, wt[:, :, i, j])
    np.testing.assert_allclose(dw, want_dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(dx, dxp[:, :, 1:-1, 1:-1], rtol=1e-12, atol=1e-12)
    none, dw1, _ = mod["_conv_back"](dy, p, wt, x.shape, need_dx=False)
    assert none is None and np.array_equal(dw1, dw)


@pytest.mark.parametrize("where", ["reader", "writer"])
def test_interrupted_append_leaves_db_unchanged(tmp_path, models, monkeypatch, where):
    """Ctrl-C while reading the 3rd new model (2 already appended), or a write error inside the
    append: the previous DB keeps its exact bytes, no temporary file is left, a rerun works."""
    import filterdb.db as dbmod
    import filterdb.ingest.build as b

    d, _ = models
    out = tmp_path / "db.h5"
    build(_sheet(tmp_path, [_row("a", "m/a.onnx")], "s1.tsv"), str(out), log=lambda m: None)
    before = out.read_bytes()
    new = [_w(2, 2, 3, 3, seed=50 + k) for k in range(3)]
    for k, wk in enumerate(new):
        write_torch_zip(d / f"n{k}.pt", OrderedDict([("c.weight", wk)]))
    sheet2 = _sheet(tmp_path, [_row(f"n{k}", f"m/n{k}.pt") for k in range(3)], "s2.tsv")
    calls = []
    if where == "reader":
        real = b.read_model_file

        def flaky(path, *a, **k):
            calls.append(path)
            if len(calls) == 3:
                raise KeyboardInterrupt  # not a per-model error: stops the run
            return real(path, *a, **k)

        monkeypatch.setattr(b, "read_model_file", flaky)
    else:

        def disk_full(*a, **k):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(dbmod, "write_meta", disk_full)  # after the filter rows were appended
    with pytest.raises(KeyboardInterrupt if where == "reader" else OSError):
        build(sheet2, str(out), append=True, flush_rows=1, log=lambda m: None)
    assert out.read_bytes() == before
    assert not Path(str(out) + ".appending").exists()
    if where == "reader":
        assert len(calls) == 3
    assert list(read_meta(out)["model"]) == ["a", "a"]
    monkeypatch.undo()
    res = build(sheet2, str(out), append=True, log=lambda m: None)
    assert res.built == ["n0", "n1", "n2"] and res.db_models == 4
    with h5py.File(out, "r") as f:
        x = f["filters"][...]
    np.testing.assert_array_equal(x[20:], np.concatenate([wk.reshape(-1, 9) for wk in new]))


def test_killed_append_leaves_db_unchanged(tmp_path, models):
    """A real SIGKILL of `filterdb build --append` while it writes (its working copy
    ``<db>.appending`` exists): the DB keeps its exact bytes and stays readable, and the same
    command run again completes the append and leaves no copy behind."""
    d, _ = models
    out = tmp_path / "db.h5"
    build(_sheet(tmp_path, [_row("a", "m/a.onnx")], "s1.tsv"), str(out), log=lambda m: None)
    before = out.read_bytes()
    with h5py.File(out, "r") as f:
        old_rows = f["filters"][...]
    # 8 models of 16,384 filters: the copy, append and meta writes take a few hundred ms
    new = [_w(128, 128, 3, 3, seed=70 + k) for k in range(8)]
    for k, wk in enumerate(new):
        write_torch_zip(d / f"big{k}.pt", OrderedDict([("c.weight", wk)]))
    sheet2 = _sheet(tmp_path, [_row(f"big{k}", f"m/big{k}.pt") for k in range(8)], "s2.tsv")
    cmd = [sys.executable, "-m", "filterdb.cli", "build", sheet2, "-o", str(out), "--append", "-q"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    copy = Path(str(out) + ".appending")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, start_new_session=True, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not copy.exists():
            assert proc.poll() is None, f"build ended before writing: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "the working copy never appeared"
            time.sleep(0.001)
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert copy.exists()  # killed mid-way: the copy was neither renamed nor removed
    assert out.read_bytes() == before
    assert list(read_meta(out)["model"]) == ["a", "a"]
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["filters"][...], old_rows)
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert not copy.exists()
    meta = read_meta(out)
    assert list(meta["model"]) == ["a", "a"] + [f"big{k}" for k in range(8)]
    with h5py.File(out, "r") as f:
        x = f["filters"][...]
    np.testing.assert_array_equal(x[: len(old_rows)], old_rows)
    np.testing.assert_array_equal(x[len(old_rows) :], np.concatenate([wk.reshape(-1, 9) for wk in new]))


def test_merge_and_fetch_sheets(tmp_path, models):
    """The workflow glue: sheets merged with paths re-anchored; source rows fetched from the cache."""
    from filterdb.ingest.fetch import fetch_sheet
    from filterdb.ingest.sheet import merge_sheets

    d, w = models
    (tmp_path / "sub").mkdir()
    s1 = _sheet(tmp_path, [_row("a", "m/a.onnx")], "s1.tsv")
    s2 = _sheet(tmp_path / "sub", [_row("b", "../m/b.pt", note="x")], "s2.tsv")
    (tmp_path / "out").mkdir()
    merged = merge_sheets([s1, s2], tmp_path / "out" / "all.tsv")
    assert list(merged["path"]) == ["../m/a.onnx", "../m/b.pt"]
    res = build(str(tmp_path / "out" / "all.tsv"), str(tmp_path / "out" / "db.h5"), log=lambda m: None)
    assert res.built == ["a", "b"]
    with pytest.raises(ValueError, match="model id 'a' appears more than once"):
        merge_sheets([s1, s1], tmp_path / "out" / "dup.tsv")
    archives = tmp_path / "archives"
    archives.mkdir()
    whl = archives / "toy_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.write(d / "b.pt", "toy_pkg/b.pt")
    sha = hashlib.sha256(whl.read_bytes()).hexdigest()
    src = tmp_path / "src.tsv"
    pd.DataFrame(
        [
            ["w", "", f"pypi:toy-pkg==1.0#sha256={sha}", "toy_pkg/b.pt"],
            ["gone", "", "pypi:toy-pkg==9.9", "toy_pkg/b.pt"],
            ["local", "m/a.onnx", "", ""],
        ],
        columns=["model", "path", "source", "member"],
    ).to_csv(src, sep="\t", index=False)
    logs = []
    df, failed = fetch_sheet(
        str(src),
        str(tmp_path / "out" / "fetched.tsv"),
        archives=str(archives),
        members=str(tmp_path / "members"),
        download=False,
        log=logs.append,
    )
    assert [f[0] for f in failed] == ["gone"] and "downloading is off" in failed[0][1]
    assert list(df["path"]) == ["../members/toy_pkg-1.0-py3-none-any/toy_pkg/b.pt", "", "../m/a.onnx"]
    assert (tmp_path / "members" / "toy_pkg-1.0-py3-none-any" / "toy_pkg" / "b.pt").read_bytes() == (
        d / "b.pt"
    ).read_bytes()
    assert "2 of 3 model files ready" in logs[-1]
