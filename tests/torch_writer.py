"""Write PyTorch files without torch (test helper).

A protocol-2 pickle is emitted opcode by opcode for a small value language: ``dict`` /
``OrderedDict``, ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None``, numpy arrays
(written as tensors: ``torch._utils._rebuild_tensor_v2`` of a storage persistent id) and:

* :class:`Tensor`: an array with an explicit rebuild function (``v1`` = ``_rebuild_tensor`` of torch
  <= 0.3, ``v2``, ``v3`` = untyped storage + dtype), parameter wrapper (``_rebuild_parameter``,
  ``_rebuild_parameter_with_state``, the torch <= 0.3 ``Parameter`` REDUCE + BUILD,
  ``_rebuild_from_type_v2``), storage module (``torch`` / ``torch.cuda``) and dtype name (``bfloat16``
  from uint16 bits);
* :class:`TensorView`: a tensor as an offset/strided view of a storage;
* :class:`QTensor`: ``_rebuild_qtensor`` with per-tensor or per-channel affine parameters;
* :class:`Obj`: an instance of a class (GLOBAL, NEWOBJ, BUILD state), as ``torch.save(model)``
  writes ``nn.Module`` s; ``module_pid=True`` references the class through the legacy
  ``('module', class, source_file, source)`` persistent id;
* :class:`Reduce`: ``GLOBAL`` + args + ``REDUCE`` (any callable, e.g. a malicious ``os.system``);
* :class:`Global`: a bare ``GLOBAL`` (a function stored as an attribute).

:func:`write_torch_zip` writes the zip layout of ``torch.save`` (``archive/data.pkl``,
``archive/data/<key>``, ``archive/version``, ``archive/byteorder``); :func:`write_torch_legacy` the
pre-1.6 stream (magic number, protocol version, sys info, object, storage keys, storages).
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections import OrderedDict

import numpy as np

from filterdb.ingest.torch_reader import LEGACY_MAGIC

STORAGE_OF = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("int16"): "ShortStorage",
    np.dtype("int8"): "CharStorage",
    np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
}
DTYPE_NAME_OF = {
    np.dtype("float32"): "float32",
    np.dtype("float64"): "float64",
    np.dtype("float16"): "float16",
    np.dtype("int64"): "int64",
    np.dtype("int32"): "int32",
    np.dtype("int16"): "int16",
    np.dtype("int8"): "int8",
    np.dtype("uint8"): "uint8",
    np.dtype("bool"): "bool",
    np.dtype("uint16"): "uint16",
}
STORAGE_OF_NAME = {
    "bfloat16": "BFloat16Storage",
    "qint8": "QInt8Storage",
    "quint8": "QUInt8Storage",
    "qint32": "QInt32Storage",
}


class TensorView:
    """A tensor as an explicit view (offset, shape, strides in elements) into a 1-D storage."""

    def __init__(self, storage: np.ndarray, offset: int, shape, stride):
        self.storage, self.offset, self.shape, self.stride = (
            np.ascontiguousarray(storage).ravel(),
            offset,
            shape,
            stride,
        )


class Tensor:
    """An array written with a chosen rebuild function / parameter wrapper / storage type.

    ``dtype_name="bfloat16"``: ``a`` holds the uint16 bits, written as a BFloat16 storage.
    """

    def __init__(self, a, rebuild="v2", param=None, storage_module="torch", dtype_name=None):
        self.a, self.rebuild, self.param, self.storage_module = np.asarray(a), rebuild, param, storage_module
        self.dtype_name = dtype_name or DTYPE_NAME_OF[self.a.dtype]


class QTensor:
    """A quantised tensor: integer values ``q`` (int8 -> qint8, uint8 -> quint8, int32 -> qint32)
    with a per-tensor (scalar ``scale``) or per-channel (array ``scale``, ``axis``) affine quantiser."""

    def __init__(self, q, scale, zero_point, axis=0, float_qparams=False):
        self.q, self.scale, self.zero_point, self.axis = np.asarray(q), scale, zero_point, axis
        self.float_qparams = float_qparams


class Obj:
    """An object of class ``module.name`` created by NEWOBJ with ``args`` and given ``state`` by BUILD."""

    def __init__(self, module, name, state=None, args=(), module_pid=False):
        self.module, self.name, self.state, self.args, self.module_pid = module, name, state, args, module_pid


class Reduce:
    """``module.name(*args)`` as GLOBAL + args tuple + REDUCE."""

    def __init__(self, module, name, args=()):
        self.module, self.name, self.args = module, name, args


class Global:
    """A bare GLOBAL reference (never called)."""

    def __init__(self, module, name):
        self.module, self.name = module, name


def module(cls_module, cls_name, params=(), buffers=(), children=(), extra=None, module_pid=False):
    """An ``nn.Module`` as ``torch.save(model)`` pickles it: NEWOBJ of its class, BUILD of its ``__dict__``
    (``training``, ``_parameters``, ``_buffers``, ``_modules``, hooks, ...)."""
    state = OrderedDict(
        [
            ("training", True),
            ("_parameters", OrderedDict(params)),
            ("_buffers", OrderedDict(buffers)),
            ("_non_persistent_buffers_set", Reduce("builtins", "set", ([],))),
            ("_backward_hooks", OrderedDict()),
            ("_forward_hooks", OrderedDict()),
            ("_forward_pre_hooks", OrderedDict()),
            ("_state_dict_hooks", OrderedDict()),
            ("_load_state_dict_pre_hooks", OrderedDict()),
            ("_modules", OrderedDict(children)),
        ]
    )
    state.update(extra or {})
    return Obj(cls_module, cls_name, state, module_pid=module_pid)


class _Emitter:
    def __init__(self, legacy: bool):
        self.out = io.BytesIO()
        self.legacy = legacy
        self.storages: list[tuple[str, bytes, int]] = []  # key, raw bytes, numel (as in the pid)

    def w(self, b: bytes):
        self.out.write(b)

    def glob(self, module: str, name: str):
        self.w(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def value(self, v):
        if isinstance(v, np.ndarray):
            return self.tensor(Tensor(v))
        if isinstance(v, Tensor):
            return self.tensor(v)
        if isinstance(v, TensorView):
            return self.tensor(Tensor(v.storage), v.offset, v.shape, v.stride)
        if isinstance(v, QTensor):
            return self.qtensor(v)
        if isinstance(v, Obj):
            if v.module_pid:  # legacy: ('module', class, source_file, source)
                self.w(b"(")
                self.value("module")
                self.glob(v.module, v.name)
                self.value(f"/home/user/{v.module.replace('.', '/')}.py")
                self.value(f"class {v.name}(nn.Module):\n    pass\n")
                self.w(b"tQ")
            else:
                self.glob(v.module, v.name)
            self.value(tuple(v.args))
            self.w(b"\x81")  # NEWOBJ
            if v.state is not None:
                self.value(v.state)
                self.w(b"b")  # BUILD
            return None
        if isinstance(v, Reduce):
            self.glob(v.module, v.name)
            self.value(tuple(v.args))
            return self.w(b"R")
        if isinstance(v, Global):
            return self.glob(v.module, v.name)
        if v is None:
            return self.w(b"N")
        if isinstance(v, bool):
            return self.w(b"\x88" if v else b"\x89")
        if isinstance(v, int):
            if -(2**31) <= v < 2**31:
                return self.w(b"J" + struct.pack("<i", v))
            raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
            return self.w(b"\x8a" + bytes([len(raw)]) + raw)
        if isinstance(v, float):
            return self.w(b"G" + struct.pack(">d", v))
        if isinstance(v, str):
            b = v.encode("utf-8")
            return self.w(b"X" + struct.pack("<I", len(b)) + b)
        if isinstance(v, tuple):
            self.w(b"(")
            for x in v:
                self.value(x)
            return self.w(b"t")
        if isinstance(v, list):
            self.w(b"](")
            for x in v:
                self.value(x)
            return self.w(b"e")
        if isinstance(v, dict):
            if isinstance(v, OrderedDict):
                self.glob("collections", "OrderedDict")
                self.w(b")R")
            else:
                self.w(b"}")
            if v:
                self.w(b"(")
                for k, x in v.items():
                    self.value(k)
                    self.value(x)
                self.w(b"u")
            return None
        raise TypeError(f"cannot emit {type(v).__name__}")

    def _storage_pid(self, a: np.ndarray, stype_module: str, stype: str, numel: int):
        key = str(len(self.storages))
        self.storages.append((key, a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes(), numel))
        # persistent id: ('storage', storage type, key, location, numel[, view metadata])
        self.w(b"(")
        self.value("storage")
        self.glob(stype_module, stype)
        self.value(key)
        self.value("cuda:0" if stype_module == "torch.cuda" else "cpu")
        self.value(int(numel))
        if self.legacy:
            self.w(b"N")
        self.w(b"tQ")

    def _tensor_args(self, t: Tensor, offset, shape, stride):
        """The argument items (no parentheses) of the tensor's rebuild function."""
        a = np.ascontiguousarray(t.a)
        if t.rebuild == "v3":
            self._storage_pid(a, "torch", "UntypedStorage", a.nbytes)
        else:
            stype = STORAGE_OF_NAME.get(t.dtype_name) or STORAGE_OF[a.dtype]
            self._storage_pid(a, t.storage_module, stype, a.size)
        self.value(int(offset))
        self.value(tuple(int(s) for s in (a.shape if shape is None else shape)))
        if stride is None:
            stride = tuple(int(s // a.itemsize) for s in a.strides) if a.size else tuple(0 for _ in a.shape)
        self.value(tuple(int(s) for s in stride))
        if t.rebuild in ("v2", "v3"):
            self.value(False)
            self.value(OrderedDict())
        if t.rebuild == "v3":
            self.glob("torch", t.dtype_name)

    def _rebuild_fn(self, t: Tensor):
        self.glob(
            "torch._utils", {"v1": "_rebuild_tensor", "v2": "_rebuild_tensor_v2", "v3": "_rebuild_tensor_v3"}[t.rebuild]
        )

    def tensor(self, t: Tensor, offset: int = 0, shape=None, stride=None):
        if t.param == "from_type_v2":  # _rebuild_from_type_v2(func, type, args, state)
            self.glob("torch._tensor", "_rebuild_from_type_v2")
            self.w(b"(")
            self._rebuild_fn(t)
            self.glob("torch.nn.parameter", "Parameter")
            self.w(b"(")
            self._tensor_args(t, offset, shape, stride)
            self.w(b"t")
            self.value({"note": "state of a tensor subclass"})
            self.w(b"tR")
            return
        if t.param in ("parameter", "parameter_with_state"):
            self.glob(
                "torch._utils", "_rebuild_parameter" + ("_with_state" if t.param == "parameter_with_state" else "")
            )
            self.w(b"(")
        elif t.param == "legacy_parameter":
            self.glob("torch.nn.parameter", "Parameter")
            self.w(b"(")
        self._rebuild_fn(t)
        self.w(b"(")
        self._tensor_args(t, offset, shape, stride)
        self.w(b"tR")
        if t.param in ("parameter", "parameter_with_state"):
            self.value(True)
            self.value(OrderedDict())
            if t.param == "parameter_with_state":
                self.value({"_is_param_state": 1})
            self.w(b"tR")
        elif t.param == "legacy_parameter":
            self.w(b"tR")
            self.value((True, False, OrderedDict()))  # Variable state: requires_grad, volatile, hooks
            self.w(b"b")

    def qtensor(self, t: QTensor):
        qname = {np.dtype("int8"): "qint8", np.dtype("uint8"): "quint8", np.dtype("int32"): "qint32"}[t.q.dtype]
        self.glob("torch._utils", "_rebuild_qtensor")
        self.w(b"(")
        q = np.ascontiguousarray(t.q)
        self._storage_pid(q, "torch", STORAGE_OF_NAME[qname], q.size)
        self.value(0)
        self.value(tuple(int(s) for s in q.shape))
        self.value(tuple(int(s // q.itemsize) for s in q.strides))
        self.w(b"(")
        if np.ndim(t.scale) == 0:
            self.glob("torch", "per_tensor_affine")
            self.value(float(t.scale))
            self.value(int(t.zero_point))
        else:
            self.glob("torch", "per_channel_affine_float_qparams" if t.float_qparams else "per_channel_affine")
            self.value(np.asarray(t.scale, np.float64))
            self.value(np.asarray(t.zero_point, np.float32 if t.float_qparams else np.int64))
            self.value(int(t.axis))
        self.w(b"t")
        self.value(False)
        self.value(OrderedDict())
        self.w(b"tR")

    def dump(self, obj) -> bytes:
        self.w(b"\x80\x02")
        self.value(obj)
        self.w(b".")
        return self.out.getvalue()


def _plain_pickle(v) -> bytes:
    e = _Emitter(legacy=True)
    return e.dump(v)


def write_torch_zip(path, obj, prefix: str = "archive") -> None:
    """``obj`` in the zip container of torch >= 1.6."""
    e = _Emitter(legacy=False)
    pkl = e.dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        z.writestr(f"{prefix}/byteorder", "little")
        for key, raw, _ in e.storages:
            z.writestr(f"{prefix}/data/{key}", raw)
        z.writestr(f"{prefix}/version", "3\n")


def write_torch_legacy(path, obj) -> None:
    """``obj`` in the legacy container (torch < 1.6): header pickles, object, keys, raw storages."""
    e = _Emitter(legacy=True)
    pkl = e.dump(obj)
    with open(path, "wb") as f:
        f.write(_plain_pickle(LEGACY_MAGIC))
        f.write(_plain_pickle(1001))
        f.write(
            _plain_pickle(
                {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
            )
        )
        f.write(pkl)
        f.write(_plain_pickle([k for k, _, _ in e.storages]))
        for _, raw, numel in e.storages:
            f.write(struct.pack("<q", numel))
            f.write(raw)
