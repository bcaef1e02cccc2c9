"""PyTorch files read without torch and without executing anything from the pickle.

Containers:

* zip (torch >= 1.6, and TorchScript archives): ``<prefix>/data.pkl`` (pickle whose persistent ids
  are ``('storage', storage_type, key, location, numel)``) and the raw little-endian storages
  ``<prefix>/data/<key>``;
* legacy (torch < 1.6, ``_use_new_zipfile_serialization=False``): a stream of pickles (magic
  number, protocol version, system info, the object with persistent ids
  ``('storage', storage_type, root_key, location, numel, view)`` and, for whole-model pickles,
  ``('module', class, source_file, source)``, then the list of storage keys), then each storage
  as an int64 element count followed by its raw bytes.

Tensors: every rebuild function that torch's own ``weights_only=True`` loader accepts is mapped to a
local stand-in that builds numpy arrays: ``torch._utils._rebuild_tensor`` (torch <= 0.3),
``_rebuild_tensor_v2``, ``_rebuild_tensor_v3`` (untyped storage + dtype), ``_rebuild_parameter``,
``_rebuild_parameter_with_state``, ``torch.nn.parameter.Parameter`` (torch <= 0.3),
``torch._tensor._rebuild_from_type_v2`` and ``_rebuild_qtensor`` (per-tensor and per-channel affine
quantisation, dequantised to float32: ``(q - zero_point) * scale``). Storage types: the typed
``torch.*Storage`` / ``torch.cuda.*Storage`` classes (Float, Double, Half, BFloat16, Long, Int,
Short, Char, Byte, Bool, QInt8, QUInt8, QInt32) and ``torch.UntypedStorage``; BFloat16 becomes
float32.

Plain values of checkpoints: ``collections.OrderedDict`` / ``defaultdict``, builtin containers,
``torch.Size``, ``torch`` dtypes, numpy scalars and numeric numpy arrays (built from their raw
bytes by local stand-ins for ``numpy.dtype``, ``numpy.core.multiarray.scalar`` / ``_reconstruct``
and ``numpy.core.numeric._frombuffer``; object arrays are not read), so bare pickles of numpy
weights (2016-2018 conversions) are read too.

Whole-model pickles (``torch.save(model)``, and the ``data.pkl`` of TorchScript archives): any other
class (``vdsr.Net``, ``torch.nn.modules.conv.Conv2d``, ``argparse.Namespace``, ...) becomes an inert
:class:`Placeholder` that only records its constructor arguments and its state (``BUILD`` /
``__setstate__``, list and dict items); nothing of the class is imported or run. Placeholders that
look like ``nn.Module`` s (state with ``_parameters`` / ``_buffers`` / ``_modules``) are flattened to
a state dict with dotted names in module order (own parameters, own persistent buffers, then the
children), as ``Module.state_dict()`` would list them.

Refused (:class:`UnsafeFileError`, naming the global, before anything is called): globals of
modules that run code or touch the system (``os``, ``posix``, ``subprocess``, ``builtins`` other
than plain containers, ``sys``, ``importlib``, ``pickle``, ``socket``, ...) and loaders such as
``torch.load``, ``torch.hub.*``, ``torch.jit.*``, ``numpy.load``. The guarantee does not rest on this
list: placeholders are never called, so a global missing from it is still not executed.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import io
import math
import os
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from .base import IngestError, UnsafeFileError, dequantize

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

#: numpy dtype of the stored elements for each torch dtype name (bfloat16 is read as its bits)
ELEMENT_DTYPES = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
    "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "int16": np.dtype("<i2"),
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "bool": np.dtype("?"),
    "uint16": np.dtype("<u2"),
    "uint32": np.dtype("<u4"),
    "uint64": np.dtype("<u8"),
    "complex64": np.dtype("<c8"),
    "complex128": np.dtype("<c16"),
    "qint8": np.dtype("i1"),
    "quint8": np.dtype("u1"),
    "qint32": np.dtype("<i4"),
}
DTYPE_ALIASES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "long": "int64",
    "int": "int32",
    "short": "int16",
    "cfloat": "complex64",
    "cdouble": "complex128",
}
#: typed storage class -> torch dtype name (None: untyped, bytes)
STORAGE_TYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "QInt8Storage": "qint8",
    "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32",
    "UntypedStorage": None,
}
QSCHEMES = (
    "per_tensor_affine",
    "per_channel_affine",
    "per_channel_affine_float_qparams",
    "per_tensor_symmetric",
    "per_channel_symmetric",
)


class StorageType:
    """Stand-in for a ``torch.*Storage`` class named in a persistent id."""

    def __init__(self, name: str):
        self.name = name
        self.dtype_name = STORAGE_TYPES[name]
        self.itemsize = 1 if self.dtype_name is None else ELEMENT_DTYPES[self.dtype_name].itemsize


class TorchDtype:
    """Stand-in for a ``torch.<dtype>`` global (argument of ``_rebuild_tensor_v3``)."""

    def __init__(self, name: str):
        self.name = DTYPE_ALIASES.get(name, name)


class QScheme:
    """Stand-in for a ``torch.per_*`` quantisation scheme global."""

    def __init__(self, name: str):
        self.name = name


class TensorClass:
    """Stand-in for ``torch.Tensor`` (an argument of ``_rebuild_from_type_v2``)."""


class LazyStorage:
    """A storage whose bytes are filled in after unpickling (``raw``: uint8 array)."""

    def __init__(self, stype: StorageType, key: str, numel: int):
        self.stype, self.key, self.numel = stype, str(key), int(numel)
        self.raw: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return self.numel * self.stype.itemsize


class StorageView:
    """A legacy storage view (torch < 0.4): ``size`` elements of ``root`` from ``offset``."""

    def __init__(self, root: LazyStorage, offset: int, size: int):
        self.root, self.offset, self.size = root, int(offset), int(size)
        self.stype, self.key = root.stype, f"{root.key}[{offset}:{offset + size}]"

    @property
    def raw(self):
        r = self.root.raw
        if r is None:
            return None
        it = self.stype.itemsize
        return r[self.offset * it : (self.offset + self.size) * it]


class LazyTensor:
    """A tensor view (offset, size, stride in elements) into a storage, read after unpickling."""

    def __init__(self, storage, offset, size, stride, dtype_name: str | None = None):
        if not isinstance(storage, (LazyStorage, StorageView)):
            raise UnsafeFileError("tensor rebuilt from something that is not a storage")
        self.storage, self.offset = storage, int(offset)
        self.size, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
        if any(s < 0 for s in self.size):
            raise IngestError(f"tensor of storage {storage.key} has a negative size {self.size}")
        self.dtype_name = dtype_name or storage.stype.dtype_name
        if self.dtype_name is None:
            raise IngestError(f"tensor over the untyped storage {storage.key} without a dtype")
        if self.dtype_name not in ELEMENT_DTYPES:
            raise IngestError(f"tensor dtype {self.dtype_name} is not supported")

    def __setstate__(self, state):  # torch <= 0.3 Parameter: BUILD (requires_grad, volatile, hooks)
        pass

    def materialise(self) -> np.ndarray:
        """The tensor as a numpy array of shape ``size`` (bfloat16 -> float32)."""
        raw = self.storage.raw
        if raw is None:
            raise IngestError(f"storage {self.storage.key} has no data")
        el = ELEMENT_DTYPES[self.dtype_name]
        data = raw[: raw.size // el.itemsize * el.itemsize].view(el)
        n = math.prod(self.size)
        if n == 0:
            return np.zeros(self.size, data.dtype)
        if n > 64 * max(data.size, 1):
            raise IngestError(f"tensor of {n} elements over a storage of {data.size}")
        if len(self.stride) != len(self.size):
            raise IngestError(f"tensor of storage {self.storage.key}: size and stride differ in length")
        last = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride))
        if self.offset < 0 or last >= data.size or any(st < 0 for st in self.stride):
            raise IngestError(f"tensor view outside its storage {self.storage.key}")
        arr = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[st * data.itemsize for st in self.stride]
        )
        arr = np.array(arr)  # copy
        if self.dtype_name == "bfloat16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr


class LazyQTensor:
    """A quantised tensor: its integer values and the quantiser parameters, dequantised on reading."""

    def __init__(self, values: LazyTensor, params):
        self.values, self.params = values, params

    def __setstate__(self, state):
        pass

    def materialise(self) -> np.ndarray:
        """``(q - zero_point) * scale`` as float32 (per tensor, or per channel along ``axis``)."""
        q = self.values.materialise()
        p = tuple(self.params) if isinstance(self.params, (tuple, list)) else ()
        scheme = p[0].name if p and isinstance(p[0], QScheme) else None
        if scheme in ("per_tensor_affine", "per_tensor_symmetric") and len(p) >= 3:
            return dequantize(q, float(p[1]), float(p[2]))
        if (
            scheme in ("per_channel_affine", "per_channel_affine_float_qparams", "per_channel_symmetric")
            and len(p) >= 4
        ):
            scales, zps = _materialise(p[1]), _materialise(p[2])
            try:
                return dequantize(q, scales, zps, axis=int(p[3]))
            except (ValueError, TypeError) as exc:
                raise IngestError(f"quantised tensor: {exc}") from None
        raise IngestError(f"quantised tensor with unsupported quantiser {scheme or str(p[:1])[:40]}")


def _rebuild_tensor(storage, storage_offset, size, stride):
    return LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, dtype=None, metadata=None
):
    if not isinstance(dtype, TorchDtype):
        raise UnsafeFileError("_rebuild_tensor_v3 without a torch dtype")
    return LazyTensor(storage, storage_offset, size, stride, dtype.name)


def _rebuild_qtensor(storage, storage_offset, size, stride, quantizer_params, requires_grad=False, backward_hooks=None):
    return LazyQTensor(LazyTensor(storage, storage_offset, size, stride), quantizer_params)


def _check_tensor(data):
    if not isinstance(data, (LazyTensor, LazyQTensor)):
        raise UnsafeFileError("parameter rebuilt from something that is not a tensor")
    return data


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return _check_tensor(data)


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    return _check_tensor(data)


def _parameter(data=None, requires_grad=True):  # torch <= 0.3: REDUCE Parameter (data,), BUILD state
    return _check_tensor(data)


REBUILD = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_qtensor"): _rebuild_qtensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch.nn.parameter", "Parameter"): _parameter,
}
_REBUILD_FUNCS = set(REBUILD.values())


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in _REBUILD_FUNCS:
        raise UnsafeFileError("_rebuild_from_type_v2 of something that is not a tensor-rebuild function")
    return func(*args)


def _codecs_encode(obj, encoding="utf-8", errors="strict"):  # bytes in protocol-2 pickles
    if not isinstance(obj, str) or str(encoding).lower().replace("-", "") not in ("latin1", "utf8", "ascii"):
        raise UnsafeFileError("_codecs.encode of something other than a string")
    return obj.encode(encoding, errors)


class NumpyDtype:
    """Stand-in for ``numpy.dtype(code, align, copy)`` + its BUILD state (byte order)."""

    def __init__(self, code, align=False, copy=False):
        code = code.decode("latin1") if isinstance(code, bytes) else code
        if not isinstance(code, str) or len(code) > 4 or not code[:1].isalpha():
            raise IngestError(f"numpy dtype {str(code)[:20]!r} is not a plain numeric dtype")
        try:
            self.dtype = np.dtype(code)
        except TypeError:
            raise IngestError(f"unknown numpy dtype {code!r}") from None
        if self.dtype.kind not in "biufc":  # object / structured / string arrays are not read
            raise IngestError(f"numpy dtype {code!r} is not a plain numeric dtype")

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.dtype = self.dtype.newbyteorder(state[1]) if state[1] != "|" else self.dtype


class NumpyArray:
    """Stand-in for ``numpy.core.multiarray._reconstruct(ndarray, shape, typecode)`` + its BUILD
    state ``(version, shape, dtype, is_fortran, raw bytes)``: a numeric array built from the bytes."""

    def __init__(self, cls=None, shape=(0,), typecode=b"b"):
        if cls is not NumpyNdarray:
            raise UnsafeFileError("numpy _reconstruct of something other than numpy.ndarray")
        self.array: np.ndarray | None = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise IngestError("malformed numpy array state")
        _, shape, dt, fortran, raw = state
        self.array = _numpy_array(raw, dt, shape, "F" if fortran else "C")


class NumpyNdarray:
    """Stand-in for the ``numpy.ndarray`` class (an argument of ``_reconstruct``)."""


def _numpy_array(raw, dtype, shape, order="C") -> np.ndarray:
    if not isinstance(dtype, NumpyDtype):
        raise UnsafeFileError("numpy array of an unsupported dtype")
    raw = raw.encode("latin1") if isinstance(raw, str) else raw
    if not isinstance(raw, (bytes, bytearray)):
        raise IngestError("numpy array without raw data")
    shape = tuple(int(s) for s in shape)
    if len(raw) != int(np.prod(shape)) * dtype.dtype.itemsize:
        raise IngestError("numpy array data of the wrong size")
    return np.frombuffer(bytes(raw), dtype=dtype.dtype).reshape(shape, order=order).copy()


def _numpy_frombuffer(buf, dtype, shape, order="C"):  # numpy's protocol-5 array pickles
    return _numpy_array(buf, dtype, shape, order)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, NumpyDtype) or not isinstance(data, (bytes, str)):
        raise UnsafeFileError("numpy scalar of an unsupported dtype")
    raw = data.encode("latin1") if isinstance(data, str) else data
    if len(raw) != dtype.dtype.itemsize:
        raise IngestError("numpy scalar of the wrong size")
    return np.frombuffer(raw, dtype=dtype.dtype)[0].item()


class _DefaultDict(dict):
    """``collections.defaultdict`` without its factory (never called)."""

    def __init__(self, factory=None, *args):
        super().__init__(*args)


def _reconstructor(cls, base, state=None):  # copyreg._reconstructor (protocol 0/1 objects)
    if isinstance(cls, type) and issubclass(cls, Placeholder):
        return cls.__new__(cls)
    if cls in (OrderedDict, dict, list, set) and base is cls:
        return cls()
    raise UnsafeFileError("copyreg._reconstructor of something that is not a plain class")


SAFE = {
    **REBUILD,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): TensorClass,
    ("torch", "Size"): tuple,
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "defaultdict"): _DefaultDict,
    ("_codecs", "encode"): _codecs_encode,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("numpy", "dtype"): NumpyDtype,
    ("numpy", "ndarray"): NumpyNdarray,
    ("numpy.core.multiarray", "_reconstruct"): NumpyArray,
    ("numpy._core.multiarray", "_reconstruct"): NumpyArray,
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    **{
        ("builtins", n): getattr(builtins, n)
        for n in (
            "set",
            "frozenset",
            "list",
            "dict",
            "tuple",
            "int",
            "float",
            "complex",
            "str",
            "bytes",
            "bytearray",
            "bool",
            "slice",
            "range",
            "object",
        )
    },
}

#: modules whose globals are refused outright (code execution, processes, files, network, loaders)
DENY_MODULES = {
    "os",
    "posix",
    "nt",
    "posixpath",
    "ntpath",
    "subprocess",
    "_posixsubprocess",
    "sys",
    "builtins",
    "shutil",
    "socket",
    "importlib",
    "runpy",
    "code",
    "codeop",
    "pty",
    "ctypes",
    "cffi",
    "pickle",
    "_pickle",
    "cPickle",
    "marshal",
    "webbrowser",
    "commands",
    "platform",
    "multiprocessing",
    "threading",
    "_thread",
    "signal",
    "asyncio",
    "urllib",
    "urllib2",
    "http",
    "httplib",
    "ftplib",
    "smtplib",
    "telnetlib",
    "requests",
    "pip",
    "setuptools",
    "distutils",
    "timeit",
    "pdb",
    "bdb",
    "trace",
    "profile",
    "cProfile",
    "inspect",
    "gc",
    "io",
    "_io",
    "tempfile",
    "glob",
    "fcntl",
    "resource",
    "select",
    "selectors",
    "ssl",
    "operator",
    "_operator",
    "zipimport",
    "pkgutil",
    "site",
    "sysconfig",
    "dill",
    "cloudpickle",
    "joblib",
    "yaml",
    "shelve",
    "dbm",
    "sqlite3",
    "exec",
    "eval",
}
DENY_PREFIXES = (
    "torch.hub",
    "torch.jit",
    "torch.ops",
    "torch.classes",
    "torch.package",
    "torch.serialization",
    "torch.utils.cpp_extension",
    "torch.distributed",
    "torch.multiprocessing",
    "torch.storage",
    "torch._dynamo",
    "torch.fx",
    "numpy.testing",
    "numpy.distutils",
    "numpy.f2py",
    "numpy.lib.npyio",
    "numpy.ctypeslib",
)
DENY_NAMES = {
    ("torch", "load"),
    ("torch", "save"),
    ("torch", "compile"),
    ("numpy", "load"),
    ("numpy", "loadtxt"),
    ("numpy", "fromfile"),
    ("numpy", "genfromtxt"),
    ("numpy", "memmap"),
}


def _unsafe(module: str, name: str) -> bool:
    top = module.split(".")[0]
    if top in DENY_MODULES or (module, name) in DENY_NAMES or name in ("eval", "exec", "system", "__import__"):
        return True
    if any(module == p or module.startswith(p + ".") for p in DENY_PREFIXES):
        return True
    if module == "types" and name != "SimpleNamespace":  # FunctionType, CodeType, ...
        return True
    return (
        top == "torch"
        and module.startswith("torch._C")
        and any(s in name.lower() for s in ("load", "import", "compile"))
    )


class Placeholder:
    """An inert stand-in for a pickled instance of a class that is not imported.

    Records the constructor arguments (``_fdb_args``), the state set by ``BUILD``
    (``_fdb_state``: the instance dict, or ``{"__state__": state}`` when it is not a dict) and
    list / dict items (``_fdb_items``, ``_fdb_mapping``). Nothing else happens.
    """

    _fdb_global = "?"

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        d = self.__dict__
        d["_fdb_args"], d["_fdb_state"], d["_fdb_items"], d["_fdb_mapping"] = args, {}, [], {}
        return self

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        st = self.__dict__["_fdb_state"]
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            for s in state:
                st.update(s or {})
        elif isinstance(state, dict):
            st.update(state)
        else:
            st["__state__"] = state

    def __setitem__(self, key, value):
        self.__dict__["_fdb_mapping"][key] = value

    def append(self, x):
        self.__dict__["_fdb_items"].append(x)

    def extend(self, xs):
        self.__dict__["_fdb_items"].extend(xs)

    def add(self, x):
        self.__dict__["_fdb_items"].append(x)

    def __repr__(self):
        return f"<placeholder {self._fdb_global}>"

    def is_module(self) -> bool:
        """True when the recorded state looks like an ``nn.Module``'s ``__dict__``."""
        st = self.__dict__["_fdb_state"]
        return any(isinstance(st.get(k), dict) for k in ("_parameters", "_modules")) or self.is_script_module()

    def is_script_module(self) -> bool:
        """True for a TorchScript module (class ``__torch__.*``: tensors and submodules are attributes)."""
        return self._fdb_global.startswith("__torch__.")


def module_state_dict(mod: Placeholder) -> OrderedDict:
    """The state dict of a placeholder ``nn.Module`` tree.

    Parameters
    ----------
    mod : Placeholder
        A module placeholder (:meth:`Placeholder.is_module`).

    Returns
    -------
    OrderedDict
        ``dotted name -> tensor`` (still lazy) in ``state_dict()`` order: own parameters, own
        persistent buffers, then the children recursively; ``None`` entries are left out.
        TorchScript modules (``__torch__.*``): tensor attributes and submodules in attribute order.
    """
    out: OrderedDict = OrderedDict()
    seen: set[int] = set()

    def walk(m: Placeholder, prefix: str):
        if id(m) in seen:
            return
        seen.add(id(m))
        st = m.__dict__["_fdb_state"]
        if m.is_script_module():  # attributes in the scripted class's order
            for k, v in st.items():
                if isinstance(v, (LazyTensor, LazyQTensor)):
                    out[prefix + str(k)] = v
                elif isinstance(v, Placeholder) and v.is_script_module():
                    walk(v, f"{prefix}{k}.")
            return
        skip = st.get("_non_persistent_buffers_set") or ()
        for key in ("_parameters", "_buffers"):
            d = st.get(key)
            if isinstance(d, dict):
                for k, v in d.items():
                    if v is not None and not (key == "_buffers" and k in skip):
                        out[prefix + str(k)] = v
        mods = st.get("_modules")
        if isinstance(mods, dict):
            for k, sub in mods.items():
                if isinstance(sub, Placeholder):
                    walk(sub, f"{prefix}{k}.")

    walk(mod, "")
    return out


def _fix_name(module: str, name: str) -> tuple[str, str]:
    """Python 2 names (``__builtin__``, ``copy_reg``, ...) as Python 3 would import them."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler for PyTorch files: tensors become :class:`LazyTensor` s, other classes inert
    :class:`Placeholder` s; globals that could run code are refused (see the module docstring).

    Built on the pure-Python unpickler (the pickles read here hold metadata only, the tensor bytes
    are read separately), whose errors on corrupt input are ordinary exceptions.

    ``plain=True``: no global at all is allowed (header pickles of legacy files).
    """

    def __init__(self, file, *, legacy: bool = False, plain: bool = False):
        super().__init__(file, encoding="latin1")
        self.legacy, self.plain = legacy, plain
        self.storages: dict[str, LazyStorage] = {}
        self.classes: dict[tuple[str, str], type] = {}

    def find_class(self, module, name):
        module, name = _fix_name(str(module), str(name))
        if self.plain:
            raise UnsafeFileError(f"pickle refers to {module}.{name} in a header that must hold plain values")
        fn = SAFE.get((module, name))
        if fn is not None:
            return fn
        if module in ("torch", "torch.cuda") and name in STORAGE_TYPES:
            return StorageType(name)
        if module == "torch" and (name in ELEMENT_DTYPES or name in DTYPE_ALIASES):
            return TorchDtype(name)
        if module == "torch" and name in QSCHEMES:
            return QScheme(name)
        if _unsafe(module, name):
            raise UnsafeFileError(
                f"pickle refers to {module}.{name}, which could run code "
                "(only tensors, containers and inert stand-ins of model classes are read; "
                "nothing was executed)"
            )
        cls = self.classes.get((module, name))
        if cls is None:
            cls = self.classes[(module, name)] = type(
                name.rsplit(".", 1)[-1] or "Placeholder",
                (Placeholder,),
                {"_fdb_global": f"{module}.{name}", "__module__": __name__},
            )
        return cls

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "module":  # legacy whole-model class
            if isinstance(pid[1], type) and issubclass(pid[1], Placeholder):
                return pid[1]
            raise UnsafeFileError("malformed module persistent id")
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise IngestError(f"unsupported persistent id {str(pid)[:60]!r}")
        if len(pid) < 5 or not isinstance(pid[1], StorageType):
            raise UnsafeFileError("malformed storage persistent id")
        _, stype, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) > 5 else None
        key = str(key)
        st = self.storages.get(key)
        if st is None:
            st = self.storages[key] = LazyStorage(stype, key, numel)
        if view is not None:
            if not (isinstance(view, tuple) and len(view) == 3):
                raise IngestError("malformed legacy storage view")
            vkey, voff, vsize = view
            vkey = f"view:{vkey}"
            v = self.storages.get(vkey)
            if v is None:
                v = self.storages[vkey] = StorageView(st, voff, vsize)
            return v
        return st


def _load(file, *, legacy=False, plain=False):
    up = RestrictedUnpickler(file, legacy=legacy, plain=plain)
    try:
        obj = up.load()
    except (UnsafeFileError, IngestError):
        raise
    except RecursionError:
        raise IngestError("pickle nested too deeply") from None
    except EOFError:
        raise IngestError("truncated pickle (the data ends inside the pickle)") from None
    except MemoryError:
        raise IngestError("corrupt pickle (a length field asks for more memory than there is)") from None
    except Exception as exc:
        if "truncated" in str(exc):
            raise IngestError("truncated pickle (the data ends inside the pickle)") from None
        raise IngestError(f"corrupt pickle ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    return obj, {k: v for k, v in up.storages.items() if isinstance(v, LazyStorage)}


def _safe_plain(file):
    """A pickle that must hold only plain values (no globals at all)."""
    obj, _ = _load(file, plain=True)
    return obj


def read_torch_zip(path: str):
    """Read a zip-container PyTorch file (torch >= 1.6).

    Parameters
    ----------
    path : str
        The file.

    Returns
    -------
    object
        The unpickled object with tensors as numpy arrays and placeholder modules flattened to
        ``OrderedDict`` state dicts.
    """
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError) as exc:
        raise IngestError(f"{path}: corrupt or truncated zip archive ({exc})") from None
    with z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise IngestError(f"{path}: zip archive without <prefix>/data.pkl: not a PyTorch file")
        prefix = pkl[0][: -len("data.pkl")]
        try:
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
                if len(raw) < st.nbytes:
                    raise IngestError(f"{path}: storage record {rec} is truncated")
                st.raw = np.frombuffer(raw, dtype=np.uint8)[: st.nbytes]
        except IngestError:
            raise
        except (
            zipfile.BadZipFile,
            EOFError,
            OSError,
            NotImplementedError,
            RuntimeError,
            zlib.error,
            ValueError,
        ) as exc:
            raise IngestError(f"{path}: corrupt zip archive ({exc.__class__.__name__}: {exc})") from None
    return _finish(path, obj)


def read_torch_legacy(path: str):
    """Read a legacy PyTorch file (torch < 1.6 or ``_use_new_zipfile_serialization=False``).

    Parameters
    ----------
    path : str
        The file.

    Returns
    -------
    object
        As :func:`read_torch_zip`.
    """
    size = os.path.getsize(path)
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
        if not isinstance(keys, (list, tuple)):
            raise IngestError(f"{path}: corrupt legacy PyTorch file (no storage key list)")
        for key in keys:
            st = storages.get(str(key))
            if st is None:
                raise IngestError(f"{path}: storage {key} listed but not used")
            head = f.read(8)
            if len(head) != 8:
                raise IngestError(f"{path}: truncated legacy PyTorch file (storage {key} ends early)")
            (numel,) = struct.unpack("<q", head)
            nbytes = numel * st.stype.itemsize
            raw = f.read(nbytes) if 0 <= nbytes <= size - f.tell() else b""
            if numel < 0 or len(raw) != nbytes:
                raise IngestError(f"{path}: truncated legacy PyTorch file (storage {key} ends early)")
            st.raw = np.frombuffer(raw, dtype=np.uint8)
    return _finish(path, obj)


def read_raw_pickle(path: str):
    """A bare pickle (not a torch file), read with the same restrictions.

    Parameters
    ----------
    path : str
        The file.

    Returns
    -------
    object
        The unpickled object (no tensor storages allowed).
    """
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
    except RecursionError:
        raise IngestError(f"{path}: object nested too deeply") from None


def _materialise(obj, memo: dict | None = None):
    """Tensors -> numpy arrays, placeholder modules -> flat state dicts, other placeholders -> the
    dict of their recorded state; containers are rebuilt (shared and cyclic references kept)."""
    memo = {} if memo is None else memo
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, (LazyTensor, LazyQTensor)):
        memo[key] = out = obj.materialise()
        return out
    if isinstance(obj, NumpyArray):
        if obj.array is None:
            raise IngestError("numpy array without its data")
        return obj.array
    if isinstance(obj, Placeholder):
        if obj.is_module():
            memo[key] = out = OrderedDict()
            for k, v in module_state_dict(obj).items():
                out[k] = _materialise(v, memo)
            return out
        st = obj.__dict__["_fdb_state"]
        memo[key] = out = {}
        for k, v in list(st.items()) + list(obj.__dict__["_fdb_mapping"].items()):
            out[k] = _materialise(v, memo)
        return out
    if isinstance(obj, dict):
        memo[key] = out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v, memo)
        return out
    if isinstance(obj, list):
        memo[key] = out = []
        out.extend(_materialise(v, memo) for v in obj)
        return out
    if isinstance(obj, tuple):
        return tuple(_materialise(v, memo) for v in obj)
    return obj


def is_legacy_torch(head: bytes) -> bool:
    """Whether a file starts like a legacy PyTorch file.

    Parameters
    ----------
    head : bytes
        The file's first 14 or more bytes.

    Returns
    -------
    bool
        True for a protocol-2 pickle of the legacy magic number (``LONG1`` opcode).
    """
    return head[:2] == b"\x80\x02" and head[2:4] == b"\x8a\x0a" and head[4:14] == LEGACY_MAGIC.to_bytes(10, "little")
