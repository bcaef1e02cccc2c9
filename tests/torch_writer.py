"""Write PyTorch state-dict files without torch (for tests and fixtures).

A protocol-2 pickle is emitted opcode by opcode for a small value language: ``dict`` /
``OrderedDict`` (str keys), ``list``, ``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None`` and
numpy arrays (written as tensors: ``torch._utils._rebuild_tensor_v2`` of a storage persistent id).
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

STORAGE_OF = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage",
              np.dtype("float16"): "HalfStorage", np.dtype("int64"): "LongStorage",
              np.dtype("int32"): "IntStorage", np.dtype("int16"): "ShortStorage", np.dtype("int8"): "CharStorage",
              np.dtype("uint8"): "ByteStorage", np.dtype("bool"): "BoolStorage"}


class TensorView:
    """A tensor as an explicit view (offset, shape, strides in elements) into a 1-D storage."""

    def __init__(self, storage: np.ndarray, offset: int, shape, stride):
        self.storage, self.offset, self.shape, self.stride = np.ascontiguousarray(storage).ravel(), offset, shape, stride


class _Emitter:
    def __init__(self, legacy: bool):
        self.out = io.BytesIO()
        self.legacy = legacy
        self.storages: list[tuple[str, np.ndarray]] = []

    def w(self, b: bytes):
        self.out.write(b)

    def glob(self, module: str, name: str):
        self.w(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def value(self, v):
        if isinstance(v, np.ndarray):
            return self.tensor(v)
        if isinstance(v, TensorView):
            return self.tensor(v.storage, v.offset, v.shape, v.stride)
        if v is None:
            return self.w(b"N")
        if isinstance(v, bool):
            return self.w(b"\x88" if v else b"\x89")
        if isinstance(v, int):
            if -(2 ** 31) <= v < 2 ** 31:
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

    def tensor(self, a: np.ndarray, offset: int = 0, shape=None, stride=None):
        a = np.ascontiguousarray(a)
        st = STORAGE_OF[a.dtype]
        key = str(len(self.storages))
        self.storages.append((key, a.astype(a.dtype.newbyteorder("<"), copy=False)))
        self.glob("torch._utils", "_rebuild_tensor_v2")
        self.w(b"(")
        # persistent id: ('storage', storage type, key, location, numel[, view metadata])
        self.w(b"(")
        self.value("storage")
        self.glob("torch", st)
        self.value(key)
        self.value("cpu")
        self.value(int(a.size))
        if self.legacy:
            self.w(b"N")
        self.w(b"tQ")
        self.value(int(offset))
        self.value(tuple(int(s) for s in (a.shape if shape is None else shape)))
        if stride is None:
            stride = tuple(int(s // a.itemsize) for s in a.strides) if a.size else tuple(0 for _ in a.shape)
        self.value(tuple(int(s) for s in stride))
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
    e = _Emitter(legacy=False)
    pkl = e.dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        z.writestr(f"{prefix}/byteorder", "little")
        for key, a in e.storages:
            z.writestr(f"{prefix}/data/{key}", a.tobytes())
        z.writestr(f"{prefix}/version", "3\n")


def write_torch_legacy(path, obj) -> None:
    e = _Emitter(legacy=True)
    pkl = e.dump(obj)
    with open(path, "wb") as f:
        f.write(_plain_pickle(LEGACY_MAGIC))
        f.write(_plain_pickle(1001))
        f.write(_plain_pickle({"protocol_version": 1001, "little_endian": True,
                               "type_sizes": {"short": 2, "int": 4, "long": 4}}))
        f.write(pkl)
        f.write(_plain_pickle([k for k, _ in e.storages]))
        for _, a in e.storages:
            f.write(struct.pack("<q", a.size))
            f.write(a.tobytes())
