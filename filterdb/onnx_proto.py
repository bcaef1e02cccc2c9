"""The ONNX protobuf messages without the ``onnx`` package's start-up, and their values as numpy.

A module of its own below :mod:`filterdb.ingest` (whose package imports pandas): the reader
(``ingest/onnx_reader.py``) and the sample's training script, which writes ONNX, both use it.

Importing ``onnx`` costs ~0.8 s (most of it ``ml_dtypes``' extension registering its dtypes with
numpy), paid by every job that reads or writes an ONNX file (the sample chain does both). The
messages themselves are onnx's generated ``onnx_ml_pb2`` module, which needs only protobuf: it is
loaded here from the installed onnx package under its own name (``onnx.onnx_ml_pb2``), so that a
later ``import onnx`` reuses it rather than registering the same proto file twice.

:func:`tensor_array` and :func:`attribute_value` decode what the readers need, as
``onnx.numpy_helper.to_array`` and ``onnx.helper.get_attribute_value`` do (``tests/test_ingest_onnx.py``
compares them on every data type); data types that need ``ml_dtypes`` (float8, 4-bit) go through
onnx itself, so they cost its import only in the files that hold them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

_PB2 = "onnx.onnx_ml_pb2"


def pb2():
    """onnx's ``onnx_ml_pb2`` module (``ModelProto``, ``TensorProto``, ...), imported once.

    Raises
    ------
    ImportError
        When the onnx package is not installed.
    """
    mod = sys.modules.get(_PB2)
    if mod is not None:
        return mod
    spec = importlib.util.find_spec("onnx")  # a top-level package: located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("No module named 'onnx'")
    path = Path(next(iter(spec.submodule_search_locations))) / "onnx_ml_pb2.py"
    mspec = importlib.util.spec_from_file_location(_PB2, path)
    if mspec is None or not path.is_file():
        raise ImportError(f"the onnx package has no {path.name}")
    mod = importlib.util.module_from_spec(mspec)
    sys.modules[_PB2] = mod
    try:
        mspec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[_PB2]
        raise
    return mod


# TensorProto.DataType -> numpy dtype, for the types numpy has (onnx's own mapping); the values are
# in raw_data (little-endian) or in the repeated field of the type's storage type (_STORAGE).
_TYPES = {
    1: "<f4",  # FLOAT
    2: "u1",  # UINT8
    3: "i1",  # INT8
    4: "<u2",  # UINT16
    5: "<i2",  # INT16
    6: "<i4",  # INT32
    7: "<i8",  # INT64
    9: "?",  # BOOL
    10: "<f2",  # FLOAT16
    11: "<f8",  # DOUBLE
    12: "<u4",  # UINT32
    13: "<u8",  # UINT64
    14: "<c8",  # COMPLEX64
    15: "<c16",  # COMPLEX128
}
# storage field and dtype of the typed values; the types not listed keep theirs in int32_data
_STORAGE = {
    1: ("float_data", "<f4"),
    7: ("int64_data", "<i8"),
    11: ("double_data", "<f8"),
    12: ("uint64_data", "<u8"),
    13: ("uint64_data", "<u8"),
    14: ("float_data", "<f4"),
    15: ("double_data", "<f8"),
}
_BFLOAT16 = 16


def tensor_array(t) -> np.ndarray:
    """The values of a ``TensorProto`` as a numpy array of its shape (``dims``).

    The same values and dtype as ``onnx.numpy_helper.to_array`` for the types numpy has; BFLOAT16
    becomes float32 (its exact values: the 16 bits are the upper half of a float32); the others
    (float8, 4-bit, strings) are handed to onnx itself. Data in another file (external data) is
    not read.

    Raises
    ------
    ValueError
        A segmented tensor, external data, or a number of values that does not match ``dims``.
    """
    if t.HasField("segment"):
        raise ValueError(f"tensor {t.name!r} is stored in segments, which are not supported")
    if t.data_location == 1:  # TensorProto.EXTERNAL
        raise ValueError(f"tensor {t.name!r}: its data is in another file (external data), which is not read")
    dims = tuple(int(d) for d in t.dims)
    code = int(t.data_type)
    if code == _BFLOAT16:
        if t.HasField("raw_data"):
            bits = np.frombuffer(t.raw_data, "<u2")
        else:
            bits = np.array(t.int32_data, np.int32).view(np.uint32).astype(np.uint16)
        return (bits.astype(np.uint32) << 16).view(np.float32).reshape(dims)
    if code not in _TYPES:
        from onnx import numpy_helper  # float8, int4, strings, ...: onnx's conversion (ml_dtypes)

        return numpy_helper.to_array(t)
    dt = np.dtype(_TYPES[code])
    if t.HasField("raw_data"):
        a = np.frombuffer(t.raw_data, dtype=dt)
    elif code in (4, 5, 10):  # UINT16, INT16, FLOAT16: their 16 bits in int32_data
        a = np.array(t.int32_data, np.int32).view(np.uint32).astype(np.uint16).view(dt)
    elif code in (2, 3, 9):  # UINT8, INT8, BOOL: their byte in int32_data
        a = np.array(t.int32_data, np.int32).view(np.uint32).astype(np.uint8).view(dt)
    elif code in (14, 15):  # complex: (real, imaginary) pairs
        field, storage = _STORAGE[code]
        a = np.array(getattr(t, field), dtype=storage).view(dt)
    else:
        field, storage = _STORAGE.get(code, ("int32_data", "<i4"))
        a = np.asarray(getattr(t, field), dtype=storage).astype(dt)
    n = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if a.size != n:
        raise ValueError(f"tensor {t.name!r}: {a.size} values for its shape {list(dims)}")
    return a.reshape(dims)


# AttributeProto.AttributeType -> its field; the repeated kinds come back as lists.
_ATTRS = {1: "f", 2: "i", 3: "s", 4: "t", 5: "g", 11: "sparse_tensor", 13: "tp"}
_LISTS = {6: "floats", 7: "ints", 8: "strings", 9: "tensors", 10: "graphs", 12: "sparse_tensors", 14: "type_protos"}


def attribute_value(a):
    """The value of an ``AttributeProto``, as ``onnx.helper.get_attribute_value``.

    Raises
    ------
    ValueError
        For a reference attribute or an unknown type (as onnx does).
    """
    if a.ref_attr_name:
        raise ValueError(f"Cannot get value of reference attribute: {a}")
    kind = int(a.type)
    if kind in _ATTRS:
        return getattr(a, _ATTRS[kind])
    if kind in _LISTS:
        return list(getattr(a, _LISTS[kind]))
    if kind == 0:  # UNDEFINED
        return None
    raise ValueError(f"Unsupported ONNX attribute: {a}")
