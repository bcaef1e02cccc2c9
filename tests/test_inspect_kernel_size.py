"""`filterdb inspect` / `filterdb compare` against a reference of another kernel size: a model file is
read for its convs of the reference's size (the weights checked against a plain numpy reshape of what
synthetic ONNX, TFLite and Keras files hold), a model without such a conv and a reference / model of
another width fail with one line, and (as soon as the pass kernels take 25 values per filter) one
`filterdb inspect` of a 5x5 model against a 5x5 reference run, its quality and histogram totals
against plain numpy."""

import numpy as np
import pandas as pd
import pytest

from filterdb import cli, compare, inspect, pca, pipeline, quality, results
from filterdb.axes import axes_from_config
from filterdb.db import open_db
from filterdb.ingest.build import build
from filterdb.shape import STUDY, FilterShape
from tests.conftest import DEFAULT_AXES, study_scale
from tests.test_ingest_build import _row, _sheet

onnx = pytest.importorskip("onnx")
pytest.importorskip("flatbuffers")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tests.test_ingest_kernel_size import write_keras, write_onnx, write_tflite  # noqa: E402

AXES = {k: v for k, v in DEFAULT_AXES.items() if k != "training_dataset"}
FIVE = FilterShape(5)


def _kernels_do(width: int) -> bool:
    """Whether the scaling the passes use takes filters of ``width`` values (a cheap probe: the
    kernels for widths other than 9 are not all there yet)."""
    from filterdb import kernels, scaling

    x = np.arange(4 * width, dtype=np.float32).reshape(4, width) - width
    try:
        return all(np.shape(f(x)) == (4, width) for f in (scaling.scale_filters, kernels.scale_filters))
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------
# Model files


def write_net(path, seed, sizes=((3, 8, 3), (5, 8, 8), (5, 12, 8), (3, 6, 12))):
    """An ONNX chain of Conv nodes ``c0, c1, ...`` of (kernel size, out, in); returns the weights
    (out, in, k, k) as written."""
    rng = np.random.default_rng(seed)
    ws = [
        (0.1 * rng.standard_normal((o, i, k, k)) + 0.02 * rng.standard_normal()).astype(np.float32) for k, o, i in sizes
    ]
    nodes, x = [], "X"
    for j, w in enumerate(ws):
        pad = w.shape[2] // 2
        nodes.append(helper.make_node("Conv", [x, f"W{j}"], [f"y{j}"], name=f"c{j}", pads=[pad] * 4))
        x = f"y{j}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, sizes[0][2], 16, 16])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(w, f"W{j}") for j, w in enumerate(ws)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return ws


def fake_reference(res, db, shape: FilterShape, bins: int = 8):
    """The files `load_reference` reads for the DB ``db`` (its layer table) of ``shape`` filters: a
    PCA of random rows, empty histograms (for the reading and the errors: no pass runs)."""
    (res / "stats").mkdir(parents=True)
    (res / "pca").mkdir()
    layers = open_db(db).layers
    layers.to_csv(res / "stats/layers.tsv", sep="\t", index=False)
    x = np.random.default_rng(0).standard_normal((200, shape.size))
    p = pca.pca_from_sums(len(x), x.sum(axis=0), x.T @ x)
    results.basis_table(p).to_csv(res / "pca/basis.tsv", sep="\t", index=False, float_format="%.17g")
    results.mean_table(p).to_csv(res / "pca/mean.tsv", sep="\t", index=False, float_format="%.17g")
    results.write_range(res / "pca/range.tsv", -2.0, 2.0)
    counts = np.zeros((len(layers), shape.size, bins), np.int64)
    results.save_npz(res / "stats/hist.npz", {"counts": counts, "edges": np.linspace(-2, 2, bins + 1)})
    return res


@pytest.fixture
def five(tmp_path):
    """A 5x5 DB built from three ONNX models and a (fake) analysed reference of it."""
    rows = []
    for k in range(3):
        write_net(tmp_path / f"m{k}.onnx", seed=k)
        rows.append(_row(f"toy{k}", f"m{k}.onnx", task=["Classification", "Detection"][k % 2]))
    db = tmp_path / "db5.h5"
    build(_sheet(tmp_path, rows), str(db), kernel="5x5", log=lambda m: None)
    return db, fake_reference(tmp_path / "res5", db, FIVE)


# ---------------------------------------------------------------------------------------------
# Reading


@pytest.mark.parametrize(
    "fmt, name, writer",
    [("onnx", "m.onnx", write_onnx), ("tflite", "m.tflite", write_tflite), ("keras", "m.h5", write_keras)],
)
@pytest.mark.parametrize("k", [3, 5, 7])
def test_read_model_keeps_the_convs_of_the_kernel_size(tmp_path, fmt, name, writer, k):
    path = tmp_path / name
    convs = writer(path)  # per conv: (size, kernels (n, k, k) in the documented order, kind, groups, name)
    want = [c for c in convs if c[0] == k]
    m = inspect.read_model(path, kernel=FilterShape(k))
    assert m.name == "m" and len(m.weights) == len(want) == len(m.meta)
    for w, c in zip(m.weights, want):
        assert w.dtype == np.float32 and w.shape == (len(c[1]), k * k)
        np.testing.assert_array_equal(w, c[1].reshape(-1, k * k))  # row-major k x k pixels
    assert list(m.meta["layer_name"]) == [c[4] for c in want]
    assert list(m.meta["conv_kind"]) == [c[2] for c in want]
    if k == 3:  # the default reads 3x3, as before
        default = inspect.read_model(path)
        assert len(default.weights) == len(m.weights)
        for a, b in zip(default.weights, m.weights):
            np.testing.assert_array_equal(a, b)


def test_read_model_onnx_weights_are_the_initializers(tmp_path):
    ws = write_net(tmp_path / "net.onnx", seed=3)
    m = inspect.read_model(tmp_path / "net.onnx", kernel=FIVE)
    assert list(m.meta["layer_name"]) == ["c1", "c2"]
    assert list(m.meta["out_channels"]) == [8, 12] and list(m.meta["in_channels"]) == [8, 8]
    for got, w in zip(m.weights, [ws[1], ws[2]]):
        np.testing.assert_array_equal(got, w.reshape(w.shape[0] * w.shape[1], 25))
    three = inspect.read_model(tmp_path / "net.onnx")
    for got, w in zip(three.weights, [ws[0], ws[3]]):
        np.testing.assert_array_equal(got, w.reshape(-1, 9))


def test_reference_shape_from_mean_width(five):
    db, res = five
    ref = inspect.load_reference(res, db=str(db))
    assert ref.shape == FIVE and ref.mean.size == 25 and ref.components.shape == (25, 25)


def test_read_model_without_a_conv_of_the_size(tmp_path):
    p = tmp_path / "m.onnx"
    write_onnx(p)  # 1x1, 3x3, 5x5, 7x7
    with pytest.raises(ValueError) as exc:
        inspect.read_model(p, kernel=FilterShape(9))
    assert str(exc.value) == (
        f"{p}: no 9x9 conv layer, expected at least one to compare with the reference's 9x9 filters "
        "(conv kernels: 1x1, 3x3, 5x5, 7x7)"
    )


def _one_line(capsys):
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1, cap.err
    return lines[0], cap.out


def test_inspect_errors_against_a_5x5_reference(tmp_path, five, capsys):
    db, res = five
    out = tmp_path / "out"
    # a model file with 3x3 convs only
    only3 = tmp_path / "only3.onnx"
    write_net(only3, seed=9, sizes=((3, 4, 2), (3, 4, 4)))
    assert cli.main(["inspect", str(only3), "--results", str(res), "--out", str(out)]) == 1
    line, printed = _one_line(capsys)
    assert line == (
        f"filterdb inspect: {only3}: no 5x5 conv layer, expected at least one to compare with the reference's "
        "5x5 filters (conv kernels: 3x3)"
    )
    assert not printed and not out.exists()
    # a 3x3 DB as the model file, and as the reference's --db
    db3 = tmp_path / "db3.h5"
    build(_sheet(tmp_path, [_row("toy0", "m0.onnx")], name="one.tsv"), str(db3), log=lambda m: None)
    assert open_db(db3).shape == STUDY
    assert cli.main(["inspect", str(db3), "--results", str(res), "--out", str(out)]) == 1
    line, _ = _one_line(capsys)
    assert line == (
        f"filterdb inspect: {db3}: a DB of 3x3 filters (9 values per filter), the reference holds 5x5 filters "
        "(25 values); expected a reference run of the same kernel size"
    )
    assert cli.main(["inspect", str(tmp_path / "m0.onnx"), "--db", str(db3), "--results", str(res)]) == 1
    line, _ = _one_line(capsys)
    assert line == (
        f"filterdb inspect: {db3}: 3x3 filters (9 values per filter), but {res / 'pca/mean.tsv'} has 25 values "
        "(5x5); the results belong to another DB"
    )
    assert not out.exists() and not (res / "inspect").exists()


def test_compare_against_a_5x5_reference_names_the_size(tmp_path, five):
    db, res = five
    ref = inspect.load_reference(res, db=str(db))
    write_net(tmp_path / "only3.onnx", seed=9, sizes=((3, 4, 2), (3, 4, 4)))
    sheet = _sheet(tmp_path, [_row("b", "only3.onnx"), _row("a", "m1.onnx")], name="cmp.tsv")
    with pytest.raises(compare.CompareError) as exc:
        compare.compare(sheet, ref, axes_from_config(AXES), log=lambda line: None, progress=False)
    assert str(exc.value) == (
        f"{sheet}: row 2 (model 'b'): {tmp_path / 'only3.onnx'}: no 5x5 conv layer, expected at least one to "
        "compare with the reference's 5x5 filters (conv kernels: 3x3)"
    )


# ---------------------------------------------------------------------------------------------
# End to end (the pass kernels at width k²)


@pytest.mark.parametrize(
    "k",
    [
        3,
        pytest.param(
            5,
            marks=pytest.mark.skipif(
                not _kernels_do(25), reason="the pass kernels cannot yet scale filters of 25 values"
            ),
        ),
    ],
)
def test_inspect_a_kxk_model_against_a_kxk_reference(tmp_path, capsys, k):
    shape = FilterShape(k)
    rows = []
    for j in range(4):
        write_net(tmp_path / f"m{j}.onnx", seed=10 * j)
        rows.append(_row(f"toy{j}", f"m{j}.onnx", task=["Classification", "Detection"][j % 2]))
    db = tmp_path / "db.h5"
    build(_sheet(tmp_path, rows), str(db), kernel=shape.label, log=lambda m: None)
    assert open_db(db).shape == shape
    a = pipeline.analyse(str(db), axes_from_config(AXES), quality={"eps": 0.01})
    res = tmp_path / "results"
    from tests.test_inspect import write_results

    write_results(a, res)
    ws = write_net(tmp_path / "new.onnx", seed=99)  # not in the DB
    mine = [w for w in ws if w.shape[2] == k]
    out = tmp_path / "out"
    assert (
        cli.main(["inspect", str(tmp_path / "new.onnx"), "--db", str(db), "--results", str(res), "--out", str(out)])
        == 0
    )
    n = sum(w.shape[0] * w.shape[1] for w in mine)
    assert f"model new: {len(mine)} {shape.label} conv layers, {n} filters" in capsys.readouterr().out
    kw = cli.inspect_settings(None)
    lt = pd.read_csv(out / "layers.tsv", sep="\t")
    assert len(lt) == len(mine)
    ref = inspect.load_reference(res, db=str(db))
    eps = kw["eps"]
    for j, w in enumerate(mine):  # quality of the weights as loaded in the run's precision (float16)
        rows16 = w.reshape(-1, shape.size).astype(np.float16).astype(np.float64)
        q = quality.layer_quality(rows16, out_channels=w.shape[0], eps=eps)
        for metric in quality.METRICS:
            np.testing.assert_allclose(lt[metric].iloc[j], q[metric], rtol=1e-9, atol=0, equal_nan=True)
    # the coefficient histograms hold every coefficient inside the reference's range, per component
    r = inspect.inspect_model(inspect.read_model(tmp_path / "new.onnx", kernel=shape), ref, **kw)
    x = np.concatenate([w.reshape(-1, shape.size) for w in mine])
    c = (study_scale(x) - ref.mean) @ ref.components.T
    inside = ((c >= ref.edges[0]) & (c <= ref.edges[-1])).sum(axis=0)
    np.testing.assert_array_equal(r.counts.sum(axis=1), inside)
    assert r.outside == c.size - inside.sum()
