"""PyTorch files read without torch and without full unpickling.

Both PyTorch formats are read:

* zip (torch >= 1.6): ``<prefix>/data.pkl`` (pickle whose persistent ids are
  ``('storage', storage_type, key, location, numel)``) and the raw little-endian storages
  ``<prefix>/data/<key>``;
* legacy (torch < 1.6): a stream of pickles (magic number, protocol version, system info, the
  object with persistent ids ``('storage', storage_type, key, location, numel, view)``, the list of
  storage keys), then each storage as an int64 element count followed by its raw bytes.

The unpickler (:class:`RestrictedUnpickler`) resolves only ``torch._utils._rebuild_tensor_v2``,
``torch._utils._rebuild_parameter(_with_state)``, ``collections.OrderedDict`` and the
``torch.*Storage`` types, all mapped to local stand-ins that build numpy arrays; any other global
(``os.system``, ``builtins.eval``, a model class, ...) stops the read with :class:`UnsafeFileError`
before it can be called.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np

from .base import IngestError, UnsafeFileError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # converted to float32 after reading
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
    "UntypedStorage": np.dtype("u1"),
}


class StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


class LazyStorage:
    """A storage whose bytes are filled in after unpickling."""

    def __init__(self, stype: StorageType, key: str, numel: int):
        self.stype, self.key, self.numel = stype, str(key), int(numel)
        self.data: np.ndarray | None = None


class LazyTensor:
    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, LazyStorage):
            raise UnsafeFileError("tensor rebuilt from something that is not a storage")
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)

    def materialise(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise IngestError(f"storage {self.storage.key} has no data")
        n = int(np.prod(self.size)) if self.size else 1
        if n == 0:
            return np.zeros(self.size, data.dtype)
        if n > 64 * max(data.size, 1):
            raise IngestError(f"tensor of {n} elements over a storage of {data.size}")
        last = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride))
        if self.offset < 0 or last >= data.size or any(st < 0 for st in self.stride):
            raise IngestError(f"tensor view outside its storage {self.storage.key}")
        arr = np.lib.stride_tricks.as_strided(data[self.offset:], shape=self.size,
                                              strides=[st * data.itemsize for st in self.stride])
        arr = np.array(arr)  # copy
        if self.storage.stype.name == "BFloat16Storage":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for PyTorch state dicts: tensors become :class:`LazyTensor` s; nothing else is
    importable (see the module docstring)."""

    def __init__(self, file, legacy: bool = False):
        super().__init__(file, encoding="latin1")
        self.legacy = legacy
        self.storages: dict[str, LazyStorage] = {}

    def find_class(self, module, name):
        fn = ALLOWED.get((module, name))
        if fn is not None:
            return fn
        if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
            return StorageType(name)
        raise UnsafeFileError(f"pickle refers to {module}.{name}, which is not a tensor-rebuild function "
                              "(only state dicts of tensors are read; the file was not unpickled)")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UnsafeFileError(f"unsupported persistent id {str(pid)[:60]!r} (whole-module pickles are not read)")
        if len(pid) < 5 or not isinstance(pid[1], StorageType):
            raise UnsafeFileError("malformed storage persistent id")
        _, stype, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) > 5 else None
        if view is not None:
            raise IngestError("legacy storage views are not supported")
        key = str(key)
        st = self.storages.get(key)
        if st is None:
            st = self.storages[key] = LazyStorage(stype, key, numel)
        return st


def _load(file, legacy=False):
    up = RestrictedUnpickler(file, legacy=legacy)
    try:
        obj = up.load()
    except (UnsafeFileError, IngestError):
        raise
    except Exception as exc:
        raise IngestError(f"corrupt pickle ({exc.__class__.__name__}: {exc})") from None
    return obj, up.storages


def _safe_plain(file):
    """A pickle that must hold only plain values (no globals at all)."""
    obj, st = _load(file)
    if st:
        raise IngestError("unexpected storage in a header pickle")
    return obj


def read_torch_zip(path: str) -> dict:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise IngestError(f"{path}: zip file without <prefix>/data.pkl: not a PyTorch file")
        prefix = pkl[0][: -len("data.pkl")]
        if f"{prefix}byteorder" in names and z.read(f"{prefix}byteorder").strip() != b"little":
            raise IngestError(f"{path}: big-endian PyTorch file is not supported")
        try:
            obj, storages = _load(io.BytesIO(z.read(pkl[0])))
        except IngestError as exc:
            raise exc.__class__(f"{path}: {exc}") from None
        for key, st in storages.items():
            rec = f"{prefix}data/{key}"
            if rec not in names:
                raise IngestError(f"{path}: storage record {rec} missing")
            raw = z.read(rec)
            need = st.numel * st.stype.dtype.itemsize
            if len(raw) < need:
                raise IngestError(f"{path}: storage record {rec} is truncated")
            st.data = np.frombuffer(raw[:need] if need else raw[:0], dtype=st.stype.dtype)
    return _finish(path, obj)


def read_torch_legacy(path: str) -> dict:
    with open(path, "rb") as f:
        try:
            magic = _safe_plain(f)
        except IngestError as exc:
            raise exc.__class__(f"{path}: {exc}") from None
        if magic != LEGACY_MAGIC:
            raise IngestError(f"{path}: raw pickle, not a PyTorch file (no legacy magic number)")
        try:
            _safe_plain(f)  # protocol version
            sys_info = _safe_plain(f)
            if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
                raise IngestError("big-endian PyTorch file is not supported")
            obj, storages = _load(f, legacy=True)
            keys = _safe_plain(f)
        except IngestError as exc:
            raise exc.__class__(f"{path}: {exc}") from None
        for key in keys:
            st = storages.get(str(key))
            if st is None:
                raise IngestError(f"{path}: storage {key} listed but not used")
            head = f.read(8)
            if len(head) != 8:
                raise IngestError(f"{path}: truncated storage data")
            (numel,) = struct.unpack("<q", head)
            raw = f.read(numel * st.stype.dtype.itemsize)
            if numel < 0 or len(raw) != numel * st.stype.dtype.itemsize:
                raise IngestError(f"{path}: truncated storage data")
            st.data = np.frombuffer(raw, dtype=st.stype.dtype)
    return _finish(path, obj)


def read_raw_pickle(path: str) -> dict:
    """A bare pickle (not a torch file): read with the same restrictions."""
    with open(path, "rb") as f:
        try:
            obj, storages = _load(f)
        except IngestError as exc:
            raise exc.__class__(f"{path}: {exc}") from None
    if storages:
        raise IngestError(f"{path}: pickle refers to tensor storages but is not a PyTorch file")
    return _finish(path, obj)


def _finish(path: str, obj):
    try:
        return _materialise(obj)
    except IngestError as exc:
        raise exc.__class__(f"{path}: {exc}") from None


def _materialise(obj):
    if isinstance(obj, LazyTensor):
        return obj.materialise()
    if isinstance(obj, dict):
        return obj.__class__((k, _materialise(v)) for k, v in obj.items()) if isinstance(obj, OrderedDict) \
            else {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def is_legacy_torch(head: bytes) -> bool:
    """First bytes of a legacy torch file: protocol-2 pickle of the magic number (LONG1 opcode)."""
    return head[:2] == b"\x80\x02" and head[2:4] == b"\x8a\x0a" and head[4:14] == LEGACY_MAGIC.to_bytes(10, "little")
