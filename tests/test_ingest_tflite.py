"""TFLite reader on a flatbuffer assembled in the test (``flatbuffers`` Builder, schema field
numbers of tflite's schema.fbs): float32 CONV_2D, per-channel int8 DEPTHWISE_CONV_2D, fp16 weights
behind DEQUANTIZE, a sparse (CSR) fp16 weight behind DENSIFY + DEQUANTIZE."""

import numpy as np
import pytest

flatbuffers = pytest.importorskip("flatbuffers")

from filterdb.ingest import read_model_file, read_model_layers  # noqa: E402

FLOAT32, FLOAT16, INT8 = 0, 1, 9
CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE, DENSIFY = 3, 4, 6, 124


def _vec(b, items, kind):
    if kind == "offset":
        b.StartVector(4, len(items), 4)
        for o in reversed(items):
            b.PrependUOffsetTRelative(o)
    else:
        size, prep = {"i32": (4, b.PrependInt32), "f32": (4, b.PrependFloat32), "i64": (8, b.PrependInt64)}[kind]
        b.StartVector(size, len(items), size)
        for x in reversed(items):
            prep(x)
    return b.EndVector()


class TFLiteWriter:
    def __init__(self):
        self.tensors, self.buffers, self.ops = [], [b""], []  # buffer 0 is the empty sentinel

    def tensor(self, name, shape, ttype=FLOAT32, data=None, quant=None, sparsity=None):
        buf = 0
        if data is not None:
            self.buffers.append(bytes(data))
            buf = len(self.buffers) - 1
        self.tensors.append(dict(name=name, shape=shape, type=ttype, buffer=buf, quant=quant, sparsity=sparsity))
        return len(self.tensors) - 1

    def op(self, code, inputs, outputs):
        self.ops.append((code, inputs, outputs))

    def finish(self, inputs, outputs) -> bytes:
        b = flatbuffers.Builder(4096)
        codes = sorted({c for c, _, _ in self.ops})
        oc_offs = []
        for c in codes:
            b.StartObject(4)
            b.PrependInt8Slot(0, min(c, 127), 0)
            b.PrependInt32Slot(3, c, 0)
            oc_offs.append(b.EndObject())
        t_offs = []
        for t in self.tensors:
            name = b.CreateString(t["name"])
            shape = _vec(b, t["shape"], "i32")
            q = sp = None
            if t["quant"]:
                scale, zp, axis = t["quant"]
                s_off, z_off = _vec(b, list(scale), "f32"), _vec(b, list(zp), "i64")
                b.StartObject(7)
                b.PrependUOffsetTRelativeSlot(2, s_off, 0)
                b.PrependUOffsetTRelativeSlot(3, z_off, 0)
                b.PrependInt32Slot(6, axis, 0)
                q = b.EndObject()
            if t["sparsity"]:
                sp = self._sparsity(b, *t["sparsity"])
            b.StartObject(8)
            b.PrependUOffsetTRelativeSlot(0, shape, 0)
            b.PrependInt8Slot(1, t["type"], 0)
            b.PrependUint32Slot(2, t["buffer"], 0)
            b.PrependUOffsetTRelativeSlot(3, name, 0)
            if q is not None:
                b.PrependUOffsetTRelativeSlot(4, q, 0)
            if sp is not None:
                b.PrependUOffsetTRelativeSlot(6, sp, 0)
            t_offs.append(b.EndObject())
        op_offs = []
        for c, ins, outs in self.ops:
            i_off, o_off = _vec(b, ins, "i32"), _vec(b, outs, "i32")
            b.StartObject(5)
            b.PrependUint32Slot(0, codes.index(c), 0)
            b.PrependUOffsetTRelativeSlot(1, i_off, 0)
            b.PrependUOffsetTRelativeSlot(2, o_off, 0)
            op_offs.append(b.EndObject())
        tv, iv, ov, opv = (
            _vec(b, t_offs, "offset"),
            _vec(b, inputs, "i32"),
            _vec(b, outputs, "i32"),
            _vec(b, op_offs, "offset"),
        )
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(0, tv, 0)
        b.PrependUOffsetTRelativeSlot(1, iv, 0)
        b.PrependUOffsetTRelativeSlot(2, ov, 0)
        b.PrependUOffsetTRelativeSlot(3, opv, 0)
        sg = b.EndObject()
        buf_offs = []
        for data in self.buffers:
            d = b.CreateByteVector(data) if data else None
            b.StartObject(3)
            if d is not None:
                b.PrependUOffsetTRelativeSlot(0, d, 0)
            buf_offs.append(b.EndObject())
        ocv, sgv, bv = _vec(b, oc_offs, "offset"), _vec(b, [sg], "offset"), _vec(b, buf_offs, "offset")
        desc = b.CreateString("unit-test")
        b.StartObject(8)
        b.PrependUint32Slot(0, 3, 0)
        b.PrependUOffsetTRelativeSlot(1, ocv, 0)
        b.PrependUOffsetTRelativeSlot(2, sgv, 0)
        b.PrependUOffsetTRelativeSlot(3, desc, 0)
        b.PrependUOffsetTRelativeSlot(4, bv, 0)
        b.Finish(b.EndObject(), file_identifier=b"TFL3")
        return bytes(b.Output())

    @staticmethod
    def _sparsity(b, order, dims, block_map=()):
        """dims: list of ("dense", size) or ("csr", segments, indices) (int32 index vectors)."""
        d_offs = []
        for d in dims:
            if d[0] == "dense":
                b.StartObject(6)
                b.PrependInt8Slot(0, 0, 0)
                b.PrependInt32Slot(1, d[1], 0)
            else:
                vecs = []
                for arr in (d[1], d[2]):
                    v = _vec(b, list(arr), "i32")
                    b.StartObject(1)
                    b.PrependUOffsetTRelativeSlot(0, v, 0)
                    vecs.append(b.EndObject())
                b.StartObject(6)
                b.PrependInt8Slot(0, 1, 0)
                b.PrependUint8Slot(2, 1, 0)  # Int32Vector
                b.PrependUOffsetTRelativeSlot(3, vecs[0], 0)
                b.PrependUint8Slot(4, 1, 0)
                b.PrependUOffsetTRelativeSlot(5, vecs[1], 0)
            d_offs.append(b.EndObject())
        ov, dv = _vec(b, order, "i32"), _vec(b, d_offs, "offset")
        bv = _vec(b, list(block_map), "i32") if block_map else None
        b.StartObject(3)
        b.PrependUOffsetTRelativeSlot(0, ov, 0)
        if bv is not None:
            b.PrependUOffsetTRelativeSlot(1, bv, 0)
        b.PrependUOffsetTRelativeSlot(2, dv, 0)
        return b.EndObject()


def test_tflite_conv_depthwise_int8_fp16_sparse(tmp_path):
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)  # CONV_2D (out, kh, kw, in)
    q2 = rng.integers(-127, 127, size=(1, 3, 3, 4)).astype(np.int8)  # DEPTHWISE (1, kh, kw, out)
    s2 = np.array([0.5, 0.25, 0.125, 1.0], np.float32)
    w3 = rng.standard_normal((2, 3, 3, 4)).astype(np.float16)
    w4 = np.zeros((3, 1, 1, 2), np.float16)  # sparse 1x1: rows 0 and 2 have entries
    w4[0, 0, 0, 1], w4[2, 0, 0, 0], w4[2, 0, 0, 1] = 1.5, -2.0, 0.25
    t = TFLiteWriter()
    x = t.tensor("x", [1, 8, 8, 2])
    tw1 = t.tensor("w1", list(w1.shape), FLOAT32, w1.tobytes())
    y1 = t.tensor("y1", [1, 8, 8, 4])
    tq2 = t.tensor("q2", list(q2.shape), INT8, q2.tobytes(), quant=(s2, [0, 0, 0, 0], 3))
    y2 = t.tensor("y2", [1, 8, 8, 4])
    th3 = t.tensor("h3", list(w3.shape), FLOAT16, w3.tobytes())
    tw3 = t.tensor("w3", list(w3.shape))
    y3 = t.tensor("y3", [1, 8, 8, 2])
    # CSR over dim 0 (dense, 3 rows) x dim 3 (sparse); dims 1, 2 dense of size 1
    vals = np.array([1.5, -2.0, 0.25], np.float16)
    sp = ([0, 1, 2, 3], [("dense", 3), ("dense", 1), ("dense", 1), ("csr", [0, 1, 1, 3], [1, 0, 1])])
    ts4 = t.tensor("s4", list(w4.shape), FLOAT16, vals.tobytes(), sparsity=sp)
    td4 = t.tensor("d4", list(w4.shape), FLOAT16)
    tw4 = t.tensor("w4", list(w4.shape))
    y4 = t.tensor("y4", [1, 8, 8, 3])
    t.op(CONV_2D, [x, tw1, -1], [y1])
    t.op(DEPTHWISE_CONV_2D, [y1, tq2, -1], [y2])
    t.op(DEQUANTIZE, [th3], [tw3])
    t.op(CONV_2D, [y2, tw3, -1], [y3])
    t.op(DENSIFY, [ts4], [td4])
    t.op(DEQUANTIZE, [td4], [tw4])
    t.op(CONV_2D, [y3, tw4, -1], [y4])
    p = tmp_path / "m.tflite"
    p.write_bytes(t.finish([x], [y4]))

    m = read_model_file(str(p))
    assert m.format == "tflite" and m.depth_source == "graph" and m.producer == "unit-test"
    assert [c.depth for c in m.convs] == [1, 2, 3, 4]
    np.testing.assert_array_equal(m.convs[3].weight[:, :, 0, 0], w4[:, 0, 0, :].astype(np.float32))
    w, meta = read_model_layers(str(p))
    assert list(meta["op"]) == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    np.testing.assert_array_equal(w[0], np.transpose(w1, (0, 3, 1, 2)).reshape(-1, 9))
    want2 = (q2.astype(np.float64) * s2).transpose(3, 0, 1, 2).reshape(-1, 9)
    np.testing.assert_allclose(w[1], want2, rtol=1e-6)
    np.testing.assert_array_equal(w[2], np.transpose(w3.astype(np.float32), (0, 3, 1, 2)).reshape(-1, 9))
    assert list(meta["groups"]) == [1, 4, 1] and list(meta["in_channels"]) == [2, 4, 4]
    assert list(meta["conv_depth"]) == [0, 1, 2]
    assert list(meta["conv_depth_norm"]) == pytest.approx([0, 1 / 3, 2 / 3])
    assert meta["(1, 1) filters"].iloc[0] == 6 and meta["(3, 3) filters"].iloc[0] == 8 + 4 + 8


def test_not_tflite(tmp_path):
    p = tmp_path / "bad.tflite"
    p.write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 8)
    with pytest.raises(
        ValueError,
        match=r"bad\.tflite: corrupt or truncated TFLite flatbuffer \(an offset points outside the 16-byte file\)",
    ):
        read_model_file(str(p))


def encode_sparse(dense, order, csr_levels, block=None):
    """A TFLite sparse encoding of ``dense``: traversal ``order`` over its dims (and, with ``block``
    = (dim, size), that dim's block dim n), CSR at the traversal levels ``csr_levels``, dense
    elsewhere. Returns (values in traversal order, dim metadata, block_map)."""
    n = dense.ndim
    sizes = list(dense.shape)
    if block:
        d, bs = block
        sizes[d] //= bs
        sizes.append(bs)

    def value(full):
        idx = [full[d] for d in range(n)]
        if block:
            idx[block[0]] = full[block[0]] * block[1] + full[n]
        return dense[tuple(idx)]

    def subtree_nonzero(level, full):  # any non-zero below this prefix
        if level == len(order):
            return value(full) != 0
        return any(subtree_nonzero(level + 1, {**full, order[level]: i}) for i in range(sizes[order[level]]))

    values, segs, inds = [], {lv: [0] for lv in csr_levels}, {lv: [] for lv in csr_levels}

    def walk(level, full):
        if level == len(order):
            values.append(value(full))
            return
        kept = [
            i
            for i in range(sizes[order[level]])
            if level not in csr_levels or subtree_nonzero(level + 1, {**full, order[level]: i})
        ]
        if level in csr_levels:
            inds[level] += kept
            segs[level].append(len(inds[level]))
        for i in kept:
            walk(level + 1, {**full, order[level]: i})

    walk(0, {})
    dims = [
        ("csr", segs[lv], inds[lv]) if lv in csr_levels else ("dense", sizes[order[lv]]) for lv in range(len(order))
    ]
    return np.array(values, dense.dtype), dims, [block[0]] if block else []


@pytest.mark.parametrize(
    "order, csr, block",
    [
        ([0, 1, 2, 3], {3}, None),
        ([0, 1, 2, 3], {1, 3}, None),
        ([3, 0, 1, 2], {1, 2}, None),
        ([0, 3, 1, 2, 4], {1, 3}, (0, 2)),  # out channels in blocks of 2 (block dims are dense)
        ([0, 1, 2, 3, 4], {0, 3}, (0, 2)),
    ],
)
def test_tflite_sparse_tensors_densified(tmp_path, order, csr, block):
    # float32 (out, kh, kw, in) with ~70 % zeros, read back through DENSIFY -> CONV_2D
    rng = np.random.default_rng(len(order) * 10 + len(csr))
    w = (rng.standard_normal((6, 3, 3, 5)) * (rng.random((6, 3, 3, 5)) < 0.3)).astype(np.float32)
    w[1] = 0  # an all-zero output channel: empty CSR segments
    vals, dims, block_map = encode_sparse(w, order, csr, block)
    t = TFLiteWriter()
    x = t.tensor("x", [1, 8, 8, 5])
    ts = t.tensor("s", list(w.shape), FLOAT32, vals.tobytes(), sparsity=(order, dims, block_map))
    td = t.tensor("d", list(w.shape))
    y = t.tensor("y", [1, 8, 8, 6])
    t.op(DENSIFY, [ts], [td])
    t.op(CONV_2D, [x, td, -1], [y])
    p = tmp_path / "sparse.tflite"
    p.write_bytes(t.finish([x], [y]))
    m = read_model_file(str(p))
    np.testing.assert_array_equal(m.convs[0].weight, np.transpose(w, (0, 3, 1, 2)))
