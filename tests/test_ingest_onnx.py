"""ONNX reader: plain, grouped, Identity/Constant-fed, DequantizeLinear and ConvInteger weights,
and the longest-path conv_depth of a branchy graph."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from filterdb.ingest import read_model_file, read_model_layers  # noqa: E402


def _save(tmp_path, nodes, inits, name="m.onnx", inp="X", cin=2):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(inp, TensorProto.FLOAT, [1, cin, 8, 8])],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="unit-test")
    p = tmp_path / name
    onnx.save(model, str(p))
    return str(p)


def _w(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_branchy_graph_longest_path_depth(tmp_path):
    # X -> A(3x3) -> Relu -> B(3x3) --\
    # X -> C(1x1) -------------------- Add -> D(3x3)
    wa, wb, wc, wd = _w(4, 2, 3, 3, seed=1), _w(4, 4, 3, 3, seed=2), _w(4, 2, 1, 1, seed=3), _w(3, 4, 3, 3, seed=4)
    nodes = [
        helper.make_node("Conv", ["X", "WA"], ["a"], name="A", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Conv", ["r", "WB"], ["b"], name="B", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["X", "WC"], ["c"], name="C"),
        helper.make_node("Add", ["b", "c"], ["s"]),
        helper.make_node("Conv", ["s", "WD"], ["d"], name="D", pads=[1, 1, 1, 1]),
    ]
    p = _save(tmp_path, nodes, {"WA": wa, "WB": wb, "WC": wc, "WD": wd})
    m = read_model_file(p)
    assert m.format == "onnx" and m.depth_source == "graph" and m.producer.startswith("unit-test")
    assert [c.name for c in m.convs] == ["A", "B", "C", "D"]
    assert [c.depth for c in m.convs] == [1, 3, 1, 5]
    weights, meta = read_model_layers(p)
    assert list(meta["layer_name"]) == ["A", "B", "D"]  # C is 1x1: counted for levels, not a row
    assert list(meta["conv_depth"]) == [0, 1, 2]
    assert list(meta["conv_depth_norm"]) == [0.0, 0.5, 1.0]
    np.testing.assert_array_equal(weights[0], wa.reshape(-1, 9))
    np.testing.assert_array_equal(weights[2], wd.reshape(-1, 9))
    assert meta["(3, 3) filters"].iloc[0] == 8 + 16 + 12 and meta["(1, 1) filters"].iloc[0] == 8
    assert meta["total_filters"].iloc[0] == 44
    assert meta["3x3_filter_share"].iloc[0] == pytest.approx(36 / 44)
    assert meta["op_set"].iloc[0] == 13 and meta["bn_folded"].iloc[0]


def test_grouped_identity_and_constant_weights(tmp_path):
    wg = _w(4, 1, 3, 3, seed=5)  # depthwise: group = 4
    wk = _w(2, 4, 3, 3, seed=6)
    nodes = [
        helper.make_node("Conv", ["X", "WGi"], ["a"], name="dw", group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Identity", ["WG"], ["WGi"]),
        helper.make_node("Constant", [], ["WK"], value=numpy_helper.from_array(wk, "wk")),
        helper.make_node("Conv", ["a", "WK"], ["b"], name="k", pads=[1, 1, 1, 1]),
    ]
    # topological order does not matter for the reader
    p = _save(tmp_path, nodes, {"WG": wg}, cin=4)
    w, meta = read_model_layers(p)
    assert list(meta["groups"]) == [4, 1]
    assert list(meta["in_channels"]) == [4, 4] and list(meta["out_channels"]) == [4, 2]
    np.testing.assert_array_equal(w[0], wg.reshape(4, 9))
    np.testing.assert_array_equal(w[1], wk.reshape(8, 9))
    assert list(meta["conv_depth"]) == [0, 1]


def test_dequantize_linear_per_channel_and_per_tensor(tmp_path):
    q = np.random.default_rng(7).integers(-128, 127, size=(2, 2, 3, 3)).astype(np.int8)
    scale = np.array([0.5, 0.25], np.float32)
    zp = np.array([1, -2], np.int8)
    q2 = np.random.default_rng(8).integers(0, 255, size=(3, 2, 3, 3)).astype(np.uint8)
    nodes = [
        helper.make_node("DequantizeLinear", ["Q", "S", "Z"], ["W"], axis=0),
        helper.make_node("Conv", ["X", "W"], ["a"], name="pc", pads=[1, 1, 1, 1]),
        helper.make_node("DequantizeLinear", ["Q2", "S2", "Z2"], ["W2"]),
        helper.make_node("Conv", ["a", "W2"], ["b"], name="pt", pads=[1, 1, 1, 1]),
    ]
    p = _save(
        tmp_path,
        nodes,
        {"Q": q, "S": scale, "Z": zp, "Q2": q2, "S2": np.array(0.1, np.float32), "Z2": np.array(128, np.uint8)},
    )
    w, meta = read_model_layers(p)
    want = (q.astype(np.float64) - zp.reshape(-1, 1, 1, 1)) * scale.reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(w[0], want.reshape(-1, 9), rtol=1e-6)
    np.testing.assert_allclose(w[1], ((q2.astype(np.float64) - 128) * 0.1).reshape(-1, 9), rtol=1e-5, atol=1e-6)
    assert list(meta["conv_depth"]) == [0, 1]  # the DequantizeLinear nodes add no depth


def test_conv_integer_with_scale_initialiser(tmp_path):
    q = np.random.default_rng(9).integers(0, 255, size=(2, 2, 3, 3)).astype(np.uint8)
    nodes = [
        helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["Xq"]),
        helper.make_node("ConvInteger", ["Xq", "w_quantized", "xz", "w_zero_point"], ["y"], name="ci"),
        helper.make_node("Cast", ["y"], ["yf"], to=TensorProto.FLOAT),
    ]
    p = _save(
        tmp_path,
        nodes,
        {
            "w_quantized": q,
            "w_scale": np.array(0.02, np.float32),
            "w_zero_point": np.array(120, np.uint8),
            "xs": np.array(0.1, np.float32),
            "xz": np.array(0, np.uint8),
        },
    )
    w, meta = read_model_layers(p)
    np.testing.assert_allclose(w[0], ((q.astype(np.float64) - 120) * 0.02).reshape(-1, 9), rtol=1e-5, atol=1e-6)
    assert meta["op"].iloc[0] == "ConvInteger"


def test_conv_integer_without_scale_is_an_error(tmp_path):
    q = np.zeros((2, 2, 3, 3), np.uint8)
    nodes = [
        helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["Xq"]),
        helper.make_node("ConvInteger", ["Xq", "wq"], ["y"], name="ci"),
    ]
    p = _save(tmp_path, nodes, {"wq": q, "xs": np.array(0.1, np.float32), "xz": np.array(0, np.uint8)})
    with pytest.raises(ValueError, match=r"m\.onnx: ConvInteger node ci has no scale"):
        read_model_file(p)


def test_single_level_model_norm_is_zero(tmp_path):
    nodes = [helper.make_node("Conv", ["X", "W"], ["a"], name="only")]
    p = _save(tmp_path, nodes, {"W": _w(3, 2, 3, 3)})
    _, meta = read_model_layers(p)
    assert list(meta["conv_depth"]) == [0] and list(meta["conv_depth_norm"]) == [0.0]


def test_not_onnx(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"\x08\x07garbage" * 5)
    with pytest.raises(
        ValueError, match=r"junk\.onnx: corrupt or truncated ONNX file \(not a valid onnx\.ModelProto protobuf\)"
    ):
        read_model_file(str(p))


# The reader decodes tensors and attributes itself (filterdb.onnx_proto, without the onnx
# package's start-up): against onnx's own numpy_helper / helper, type by type, both storages.
_TYPE_VALUES = {
    TensorProto.FLOAT: np.array([[1.5, -2.25], [3e-8, np.inf]], np.float32),
    TensorProto.DOUBLE: np.array([1.0 / 3, -7.0], np.float64),
    TensorProto.FLOAT16: np.array([0.1, -65504, 6e-8], np.float16),
    TensorProto.INT8: np.array([-128, 0, 127], np.int8),
    TensorProto.UINT8: np.array([0, 200, 255], np.uint8),
    TensorProto.INT16: np.array([-32768, 5, 32767], np.int16),
    TensorProto.UINT16: np.array([0, 40000, 65535], np.uint16),
    TensorProto.INT32: np.array([-(2**31), 3, 2**31 - 1], np.int32),
    TensorProto.INT64: np.array([-(2**63), 3, 2**63 - 1], np.int64),
    TensorProto.UINT32: np.array([0, 2**32 - 1], np.uint32),
    TensorProto.UINT64: np.array([0, 2**64 - 1], np.uint64),
    TensorProto.BOOL: np.array([True, False, True]),
    TensorProto.COMPLEX64: np.array([1 + 2j, -3.5j], np.complex64),
    TensorProto.COMPLEX128: np.array([1 / 3 + 2j, -3.5j], np.complex128),
}


@pytest.mark.parametrize("code", sorted(_TYPE_VALUES))
@pytest.mark.parametrize("raw", [True, False])
def test_tensor_array_equals_onnx_numpy_helper(code, raw):
    from filterdb.onnx_proto import tensor_array

    v = _TYPE_VALUES[code]
    t = helper.make_tensor("t", code, v.shape, v.tobytes() if raw else v.ravel().tolist(), raw=raw)
    assert t.HasField("raw_data") == raw
    want, got = numpy_helper.to_array(t), tensor_array(t)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("raw", [True, False])
def test_tensor_array_bfloat16_is_its_float32_values(raw):
    from filterdb.onnx_proto import tensor_array

    v = np.array([1.0, -2.5, 3.140625, 2.0**-100, np.inf], np.float32)
    bits = (v.view(np.uint32) >> 16).astype(np.uint16)  # exactly representable: truncation is exact
    t = TensorProto(name="b", data_type=TensorProto.BFLOAT16, dims=[5])
    if raw:
        t.raw_data = bits.tobytes()
    else:
        t.int32_data.extend(bits.astype(np.int32).tolist())
    got = tensor_array(t)
    assert got.dtype == np.float32 and np.array_equal(got, v)
    assert np.array_equal(got, numpy_helper.to_array(t).astype(np.float32))


def test_tensor_array_other_types_and_bad_sizes():
    from filterdb.onnx_proto import tensor_array

    t8 = helper.make_tensor("f8", TensorProto.FLOAT8E4M3FN, [3], [0.5, -2.0, 448.0])
    assert np.array_equal(tensor_array(t8).astype(np.float32), [0.5, -2.0, 448.0])  # via onnx itself
    short = TensorProto(name="s", data_type=TensorProto.FLOAT, dims=[2, 3], float_data=[1.0, 2.0])
    with pytest.raises(ValueError, match="'s': 2 values for its shape \\[2, 3\\]"):
        tensor_array(short)


def test_attribute_value_equals_onnx_helper():
    from filterdb.onnx_proto import attribute_value

    t = numpy_helper.from_array(np.arange(3, dtype=np.float32), "c")
    for name, value in [("i", 3), ("f", 0.5), ("s", "same"), ("ints", [1, 2]), ("floats", [0.5, 1.5]), ("t", t)]:
        a = helper.make_attribute(name, value)
        assert attribute_value(a) == helper.get_attribute_value(a)
    ref = onnx.AttributeProto(name="r", ref_attr_name="outer", type=onnx.AttributeProto.INT)
    with pytest.raises(ValueError, match="reference attribute"):
        attribute_value(ref)


def test_reading_onnx_does_not_start_the_onnx_package(tmp_path):
    """read_onnx loads onnx's generated messages alone (no onnx/__init__, no ml_dtypes), and a later
    `import onnx` in the same process reuses them (one registration of onnx-ml.proto)."""
    import subprocess
    import sys

    p = _save(tmp_path, [helper.make_node("Conv", ["X", "W"], ["Y"], pads=[1, 1, 1, 1])], {"W": _w(4, 2, 3, 3)})
    code = (
        "import sys\n"
        "from filterdb.ingest.onnx_reader import read_onnx\n"
        f"m = read_onnx({p!r})\n"
        "assert 'onnx' not in sys.modules and 'ml_dtypes' not in sys.modules, sorted(sys.modules)\n"
        "import onnx\n"
        "assert onnx.ModelProto is sys.modules['onnx.onnx_ml_pb2'].ModelProto\n"
        "assert onnx.load(" + repr(p) + ").graph.node[0].op_type == 'Conv'\n"
        "print(m.convs[0].weight.shape)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(4, 2, 3, 3)"


@pytest.mark.parametrize("where", ["initializer", "constant"])
def test_external_data_is_refused_and_never_read(tmp_path, where):
    """A model whose weight keeps its data in another file (ONNX external data) is refused with one
    line naming the tensor and the file; the other file is never opened (here it does not exist,
    and the message is the same)."""
    from onnx.external_data_helper import set_external_data

    w = numpy_helper.from_array(_w(4, 2, 3, 3), "W")
    set_external_data(w, location="weights.bin")
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    if where == "initializer":
        nodes, inits = [helper.make_node("Conv", ["X", "W"], ["Y"])], [w]
    else:
        nodes = [helper.make_node("Constant", [], ["W"], value=w), helper.make_node("Conv", ["X", "W"], ["Y"])]
        inits = []
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    p = tmp_path / "m.onnx"
    p.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
    from filterdb.ingest import IngestError

    with pytest.raises(IngestError) as exc:
        read_model_file(str(p))
    msg = str(exc.value)
    assert msg.startswith(f"{p}: tensor 'W' keeps its data in the external file 'weights.bin'") and "\n" not in msg
    assert msg.endswith("; refusing to read other files through it")
    assert not (tmp_path / "weights.bin").exists()
