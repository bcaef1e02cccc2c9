"""TFLite models, parsed with a minimal flatbuffer reader (no tensorflow / tflite package).

Read: ``CONV_2D`` (filter ``(out, kh, kw, in/groups)`` -> transpose (0, 3, 1, 2)) and
``DEPTHWISE_CONV_2D`` (filter ``(1, kh, kw, in * mult)`` -> ``(out, 1, kh, kw)``) of the first
subgraph. A filter is a constant tensor (buffer data) or the output of ``DEQUANTIZE`` / ``DENSIFY`` of one
(fp16 -> float32, int8/uint8 -> ``(q - zero_point) * scale``); int8/uint8 filters read directly by
the conv are dequantised with their quantisation parameters (per tensor, or per channel along
``quantized_dimension``). Sparse constant tensors (``sparsity`` with dense/CSR dimension metadata
and block maps) are densified. ``TRANSPOSE_CONV`` is not read.

Graph depth: longest path (in operators) from a subgraph input; tensors that depend only on
constants add nothing. TFLite graphs carry no BatchNorm op: ``bn_folded`` is True.
"""

from __future__ import annotations

import struct

import numpy as np

from .base import Conv, IngestError, ModelFile, dequantize
from .depth import graph_depths

CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE, DENSIFY = 3, 4, 6, 124
TENSOR_DTYPES = {
    0: "<f4",
    1: "<f2",
    2: "<i4",
    3: "u1",
    4: "<i8",
    6: "?",
    7: "<i2",
    9: "i1",
    10: "<f8",
    12: "<u8",
    15: "<u4",
    16: "<u2",
}
QUANTISED = {3, 7, 9}


class Table:
    """A flatbuffer table at ``pos`` of ``buf`` (little-endian)."""

    __slots__ = ("buf", "pos", "vt", "vlen")

    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        self.vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vlen = struct.unpack_from("<H", buf, self.vt)[0]

    def _off(self, field: int) -> int:
        o = 4 + 2 * field
        return struct.unpack_from("<H", self.buf, self.vt + o)[0] if o < self.vlen else 0

    def scalar(self, field: int, fmt: str, default=0):
        """Scalar field ``field`` (struct format ``fmt``), or ``default`` when absent."""
        o = self._off(field)
        return struct.unpack_from("<" + fmt, self.buf, self.pos + o)[0] if o else default

    def table(self, field: int):
        """Sub-table field ``field`` (:class:`Table`), or None when absent."""
        o = self._off(field)
        if not o:
            return None
        p = self.pos + o
        return Table(self.buf, p + struct.unpack_from("<I", self.buf, p)[0])

    def _vec(self, field: int):
        o = self._off(field)
        if not o:
            return None, 0
        p = self.pos + o
        p += struct.unpack_from("<I", self.buf, p)[0]
        return p + 4, struct.unpack_from("<I", self.buf, p)[0]

    def vector(self, field: int, dtype: str) -> np.ndarray:
        """Vector field ``field`` of scalars of numpy ``dtype`` (empty when absent)."""
        start, n = self._vec(field)
        if start is None:
            return np.zeros(0, dtype)
        return np.frombuffer(self.buf, dtype=dtype, count=n, offset=start)

    def tables(self, field: int) -> list[Table]:
        """Vector field ``field`` of tables (empty when absent)."""
        start, n = self._vec(field)
        if start is None:
            return []
        out = []
        for i in range(n):
            p = start + 4 * i
            out.append(Table(self.buf, p + struct.unpack_from("<I", self.buf, p)[0]))
        return out

    def string(self, field: int) -> str:
        """String field ``field`` ("" when absent)."""
        start, n = self._vec(field)
        return "" if start is None else bytes(self.buf[start : start + n]).decode("utf-8", "replace")


def _densify(values: np.ndarray, shape: tuple, sp: Table) -> np.ndarray:
    """Dense array from a TFLite sparse tensor (SparsityParameters: traversal_order,
    block_map, dim_metadata with DENSE / SPARSE_CSR dimensions)."""
    order = [int(x) for x in sp.vector(0, "<i4")]
    block_map = [int(x) for x in sp.vector(1, "<i4")]
    dims = sp.tables(2)
    n = len(shape)
    meta = []
    for d in dims:
        fmt = d.scalar(0, "b")
        if fmt == 0:
            meta.append((0, d.scalar(1, "i"), None, None))
        else:

            def arr(type_field, val_field):
                t = d.scalar(type_field, "B")
                tab = d.table(val_field)
                dt = {1: "<i4", 2: "<u2", 3: "u1"}.get(t)
                if tab is None or dt is None:
                    raise ValueError("bad sparse index vector")
                return tab.vector(0, dt).astype(np.int64)

            meta.append((1, 0, arr(2, 3), arr(4, 5)))
    # size of each block dim (dims n..n+k-1) = dense_size of its traversal level
    level_of = {dim: lvl for lvl, dim in enumerate(order)}
    block_size = {block_map[j]: meta[level_of[n + j]][1] for j in range(len(block_map))}
    dense = np.zeros(int(np.prod(shape)), values.dtype)
    strides = np.cumprod((list(shape[1:]) + [1])[::-1])[::-1]
    # The traversal, level by level for all stored values at once (depth-first order = the order of
    # `values`): `cols[lvl]` the index of each value at traversal level lvl, `prev` its position
    # in the last level (a dense level's segment number, a sparse level's index-vector entry).
    cols: list[np.ndarray] = []
    prev = np.zeros(1, np.int64)
    for fmt, size, segs, inds in meta[: len(order)]:
        if fmt == 0:
            new = np.tile(np.arange(size, dtype=np.int64), prev.size)
            cols = [np.repeat(c, size) for c in cols]
            prev = np.repeat(prev, size) * size + new
        else:
            starts, cnt = segs[prev], segs[prev + 1] - segs[prev]
            first = np.cumsum(cnt) - cnt  # where each segment starts in the new level
            pos = np.arange(int(cnt.sum()), dtype=np.int64) - np.repeat(first - starts, cnt)
            cols = [np.repeat(c, cnt) for c in cols]
            new, prev = inds[pos], pos
        cols.append(new)
    full = [0] * (n + len(block_map))
    for lvl, dim in enumerate(order):
        full[dim] = cols[lvl]
    flat = np.zeros(prev.size, np.int64)
    for d in range(n):
        i = full[d]
        if d in block_size:
            i = i * block_size[d] + full[n + block_map.index(d)]
        flat += i * int(strides[d])
    if flat.size > values.size:
        raise IndexError(f"sparse tensor: {flat.size} indexed values, {values.size} stored")
    dense[flat] = values[: flat.size]
    return dense.reshape(shape)


def read_tflite(path: str) -> ModelFile:
    """Read the convolutions of a TFLite flatbuffer (first subgraph).

    Parameters
    ----------
    path : str
        The ``.tflite`` file.

    Returns
    -------
    ModelFile
        ``CONV_2D`` kernels ``(out, kh, kw, in/groups)`` as ``(out, in/groups, kh, kw)`` and
        ``DEPTHWISE_CONV_2D`` kernels ``(1, kh, kw, in * mult)`` as ``(in * mult, 1, kh, kw)``
        (``groups = in``), float32
        (quantised and sparse weights dequantised / densified), with graph depths.

    Raises
    ------
    IngestError
        No ``TFL3`` identifier, a corrupt or truncated flatbuffer, unsupported tensor types.
    """
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise IngestError(f"{path}: no TFL3 identifier: not a TFLite flatbuffer")
    try:
        return _read(path, buf)
    except IngestError:
        raise
    except (struct.error, IndexError):
        raise IngestError(
            f"{path}: corrupt or truncated TFLite flatbuffer (an offset points outside the {len(buf)}-byte file)"
        ) from None
    except (ValueError, KeyError) as exc:
        raise IngestError(f"{path}: corrupt TFLite flatbuffer ({exc.__class__.__name__}: {exc})") from None


def _read(path: str, buf: bytes) -> ModelFile:
    model = Table(buf, struct.unpack_from("<I", buf, 0)[0])
    opcodes = []
    for oc in model.tables(1):
        dep = oc.scalar(0, "b", 0)
        code = oc.scalar(3, "i", 0)
        opcodes.append(max(int(dep), int(code)))
    subgraphs = model.tables(2)
    if not subgraphs:
        raise IngestError(f"{path}: TFLite model without subgraphs")
    buffers = model.tables(4)
    sg = subgraphs[0]
    tensors = sg.tables(0)
    ops = sg.tables(3)
    graph_inputs = [int(i) for i in sg.vector(1, "<i4")]

    def buffer_bytes(t: Table):
        b = t.scalar(2, "I", 0)
        if b <= 0 or b >= len(buffers):
            return None
        bt = buffers[b]
        data = bt.vector(0, "u1")
        if data.size:
            return data
        off, size = bt.scalar(1, "Q", 0), bt.scalar(2, "Q", 0)
        if off > 1 and size:
            return np.frombuffer(buf, "u1", count=size, offset=off)
        return None

    producer_of = {}
    for k, op in enumerate(ops):
        for o in op.vector(2, "<i4"):
            producer_of[int(o)] = k

    def raw_tensor(i: int):
        """(array as stored, tensor table) of a constant tensor, else (None, table)."""
        t = tensors[i]
        data = buffer_bytes(t)
        if data is None:
            return None, t
        ttype = t.scalar(1, "b", 0)
        dt = TENSOR_DTYPES.get(int(ttype))
        if dt is None:
            raise IngestError(f"{path}: tensor {t.string(3)} has unsupported type {ttype}")
        shape = tuple(int(s) for s in t.vector(0, "<i4"))
        vals = np.frombuffer(data.tobytes(), dtype=dt)
        sp = t.table(6)
        if sp is not None:
            arr = _densify(vals, shape, sp)
        else:
            if vals.size != int(np.prod(shape)):
                raise IngestError(f"{path}: tensor {t.string(3)} has {vals.size} values for shape {shape}")
            arr = vals.reshape(shape)
        return arr, t

    def dequant(arr: np.ndarray, t: Table) -> np.ndarray:
        if t.scalar(1, "b", 0) not in QUANTISED:
            return arr.astype(np.float32)
        q = t.table(4)
        scale = q.vector(2, "<f4") if q is not None else np.zeros(0)
        if scale.size == 0:
            raise IngestError(f"{path}: quantised tensor {t.string(3)} has no scale")
        zp = q.vector(3, "<i8")
        axis = q.scalar(6, "i", 0)
        return dequantize(arr, scale, zp if zp.size else None, axis=axis)

    def weight(i: int, hops: int = 0):
        arr, t = raw_tensor(i)
        if arr is not None:
            return dequant(arr, t)
        k = producer_of.get(i)
        if k is not None and hops < 4 and opcodes[ops[k].scalar(0, "I", 0)] in (DEQUANTIZE, DENSIFY):
            return weight(int(ops[k].vector(1, "<i4")[0]), hops + 1)
        return None

    convs_at = []
    op_names = []
    for k, op in enumerate(ops):
        code = opcodes[op.scalar(0, "I", 0)]
        op_names.append(code)
        if code not in (CONV_2D, DEPTHWISE_CONV_2D):
            continue
        ins = [int(x) for x in op.vector(1, "<i4")]
        w = weight(ins[1])
        if w is None or w.ndim != 4:
            continue
        in_shape = tuple(int(s) for s in tensors[ins[0]].vector(0, "<i4"))
        cin = in_shape[3] if len(in_shape) == 4 and in_shape[3] > 0 else 0
        name = tensors[op.vector(2, "<i4")[0]].string(3) if op.vector(2, "<i4").size else f"op{k}"
        if code == CONV_2D:
            wt = np.transpose(w, (0, 3, 1, 2))
            per_group = wt.shape[1]
            groups = cin // per_group if cin and cin % per_group == 0 else 1
            conv = Conv(
                name=name,
                weight=np.ascontiguousarray(wt, np.float32),
                groups=groups,
                in_channels=per_group * groups,
                op="CONV_2D",
            )
        else:
            wt = np.transpose(w, (3, 0, 1, 2))  # (out, 1, kh, kw)
            cout = wt.shape[0]
            if not cin:
                mult = max(1, op.table(4).scalar(3, "i", 1)) if op.table(4) is not None else 1
                cin = cout // mult
            conv = Conv(
                name=name,
                weight=np.ascontiguousarray(wt, np.float32),
                groups=cin,
                in_channels=cin,
                op="DEPTHWISE_CONV_2D",
                kind="depthwise",
            )
        convs_at.append((k, conv))
    nodes = [([int(x) for x in op.vector(1, "<i4") if x >= 0], [int(x) for x in op.vector(2, "<i4")], 1) for op in ops]
    depths = graph_depths(nodes, graph_inputs)
    for k, c in convs_at:
        c.depth = depths[k] if depths[k] is not None else 0.0
    extra = {
        "depth": int(max((d for d in depths if d is not None), default=0)),
        "tflite_version": int(model.scalar(0, "I", 0)),
    }
    return ModelFile(
        path=path,
        format="tflite",
        convs=[c for _, c in convs_at],
        depth_source="graph",
        bn_folded=True,
        producer=model.string(3),
        extra=extra,
    )
