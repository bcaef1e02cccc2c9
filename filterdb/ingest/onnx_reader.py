"""ONNX models: every ``Conv`` (also ``ConvInteger``, ``QLinearConv``, ``com.microsoft`` ``FusedConv``)
whose weight is a constant 4-D tensor ``(out, in/group, kh, kw)``.

The weight is followed back through ``Identity``, ``Cast``, ``Constant``, ``Reshape``-free chains and
``DequantizeLinear`` (``(q - zero_point) * scale``, per tensor or per channel along ``axis``).
``ConvInteger`` weights are dequantised with the ``w_zero_point`` input and the scale initialiser
named ``<w>_scale`` (or ``<w without _quantized>_scale``), as onnxruntime's dynamic quantisation
writes them. ``ConvTranspose`` is not read (as in the published extraction). A model whose tensors
keep their data in other files (ONNX external data) is refused: the reader opens only the file it
is given.
"""

from __future__ import annotations

import numpy as np

from .. import onnx_proto
from .base import Conv, IngestError, ModelFile, dequantize
from .depth import graph_depths

CONV_OPS = {"Conv", "ConvInteger", "QLinearConv", "FusedConv", "NhwcConv"}


def _refuse_external_data(path: str, model, external: int) -> None:
    """One line naming the first tensor whose data is in another file (ONNX "external data": an
    initialiser or a node's tensor attribute), as the Keras reader refuses HDF5 external storage:
    a model file never makes us read another file."""
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors += [a.t for a in node.attribute if a.HasField("t")]
        tensors += [t for a in node.attribute for t in a.tensors]
    ext = [t for t in tensors if t.data_location == external]
    if ext:
        where = next((e.value for e in ext[0].external_data if e.key == "location"), "?")
        more = f" (and {len(ext) - 1} more)" if len(ext) > 1 else ""
        raise IngestError(
            f"{path}: tensor {ext[0].name!r}{more} keeps its data in the external file {where!r} "
            "(save the model as one file: onnx.save(model, path, save_as_external_data=False)); "
            "refusing to read other files through it"
        )


def read_onnx(path: str) -> ModelFile:
    """Read the convolutions of an ONNX model (one file: weights kept as external data are refused).

    Parameters
    ----------
    path : str
        The ``.onnx`` file.

    Returns
    -------
    ModelFile
        Its ``Conv`` / ``ConvInteger`` / ``QLinearConv`` / ... nodes' weights as
        ``(out, in/groups, kh, kw)`` float32 (quantised weights dequantised), with graph depths.

    Raises
    ------
    IngestError
        ``onnx`` missing, corrupt protobuf, a tensor whose data is in another file, a quantised
        conv without its scale.
    """
    try:
        proto = onnx_proto.pb2()  # the messages only: no start-up of the onnx package (ml_dtypes)
    except ImportError:
        raise IngestError(f"{path}: ONNX file, but the 'onnx' package is not installed") from None
    try:
        with open(path, "rb") as fh:
            model = proto.ModelProto.FromString(fh.read())
    except Exception as exc:  # protobuf DecodeError, ...
        if exc.__class__.__name__ == "DecodeError":
            raise IngestError(
                f"{path}: corrupt or truncated ONNX file (not a valid onnx.ModelProto protobuf)"
            ) from None
        raise IngestError(
            f"{path}: cannot parse as ONNX ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if not model.ir_version and not model.graph.node and not model.graph.initializer:
        raise IngestError(f"{path}: not an ONNX model (the protobuf has no ir_version and an empty graph)")
    _refuse_external_data(path, model, proto.TensorProto.EXTERNAL)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {}
    for node in g.node:
        for o in node.output:
            producer[o] = node
    cache: dict[str, np.ndarray | None] = {}

    def attr(node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return onnx_proto.attribute_value(a)
        return default

    def const(name: str, depth: int = 0):
        """Value of a tensor that depends only on initialisers / constants, else None."""
        if not name or depth > 16:
            return None
        if name in cache:
            return cache[name]
        val = None
        if name in inits:
            val = onnx_proto.tensor_array(inits[name])
        elif name in producer:
            node = producer[name]
            op = node.op_type
            if op == "Constant":
                t = attr(node, "value")
                if t is not None:
                    val = onnx_proto.tensor_array(t)
                elif attr(node, "value_float") is not None:
                    val = np.array(attr(node, "value_float"), np.float32)
                elif attr(node, "value_floats") is not None:
                    val = np.array(attr(node, "value_floats"), np.float32)
            elif op == "Identity":
                val = const(node.input[0], depth + 1)
            elif op == "Cast":
                x = const(node.input[0], depth + 1)
                if x is not None:
                    val = x.astype(np.float32) if x.dtype.kind == "f" else x
            elif op == "DequantizeLinear":
                q = const(node.input[0], depth + 1)
                s = const(node.input[1], depth + 1) if len(node.input) > 1 else None
                z = const(node.input[2], depth + 1) if len(node.input) > 2 and node.input[2] else None
                if q is not None and s is not None:
                    val = dequantize(q, s, z, axis=int(attr(node, "axis", 1)) if np.size(s) > 1 else 0)
        cache[name] = val
        return val

    def scale_for(wname: str):
        base = wname[: -len("_quantized")] if wname.endswith("_quantized") else wname
        for cand in (wname + "_scale", base + "_scale"):
            v = const(cand)
            if v is not None:
                return v
        return None

    ops = [n.op_type for n in g.node]
    convs_at: list[tuple[int, Conv]] = []
    for k, node in enumerate(g.node):
        if node.op_type not in CONV_OPS or node.domain not in ("", "ai.onnx", "com.microsoft"):
            continue
        group = int(attr(node, "group", 1) or 1)
        if node.op_type == "QLinearConv":
            q = const(node.input[3])
            s = const(node.input[4])
            z = const(node.input[5]) if len(node.input) > 5 else None
            w = None if q is None or s is None else dequantize(q, s, z, axis=0)
        elif node.op_type == "ConvInteger":
            wname = node.input[1]
            q = const(wname)
            if q is None:
                continue
            z = const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
            s = scale_for(wname)
            if s is None:
                raise IngestError(
                    f"{path}: ConvInteger node {node.name or k} has no scale initialiser "
                    f"'{wname}_scale' for its quantised weight"
                )
            w = dequantize(q, s, z, axis=0)
        else:
            w = const(node.input[1]) if len(node.input) > 1 else None
        if w is None or np.ndim(w) != 4:
            continue  # weight computed at run time, or not a 2-D conv
        w = np.ascontiguousarray(w, dtype=np.float32)
        convs_at.append(
            (
                k,
                Conv(
                    name=node.name or node.output[0],
                    weight=w,
                    groups=group,
                    in_channels=int(w.shape[1]) * group,
                    op=node.op_type,
                ),
            )
        )
    init_names = set(inits)
    inputs = [i.name for i in g.input if i.name not in init_names]
    depths = graph_depths([(list(n.input), list(n.output), 1) for n in g.node], inputs)
    for k, c in convs_at:
        c.depth = depths[k] if depths[k] is not None else 0.0
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    producer_name = " ".join(x for x in (model.producer_name, model.producer_version) if x)
    extra = {
        "op_set": int(opset) if opset is not None else -1,
        "depth": int(max((d for d in depths if d is not None), default=0)),
    }
    return ModelFile(
        path=path,
        format="onnx",
        convs=[c for _, c in convs_at],
        depth_source="graph",
        bn_folded="BatchNormalization" not in ops,
        producer=producer_name,
        extra=extra,
    )
