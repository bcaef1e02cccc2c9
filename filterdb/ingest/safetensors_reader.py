"""safetensors files, parsed directly (8-byte header length, JSON header, raw little-endian data).

safetensors does not keep the state dict's order (writers sort tensors by dtype and name), so the
"weight order" of the convs is the natural sort of the tensor names (``layer2`` before ``layer10``).
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np

from .base import IngestError, ModelFile, natural_key
from .statedict import state_dict_model

DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
    "U16": "<u2",
    "U32": "<u4",
    "U64": "<u8",
}


def read_safetensors_dict(path: str) -> tuple[dict, dict]:
    """The tensors and metadata of a safetensors file.

    Parameters
    ----------
    path : str
        The file.

    Returns
    -------
    (dict, dict)
        ``name -> ndarray`` (in natural name order; BF16 as float32; dtypes without a numpy
        equivalent left out) and the ``__metadata__`` strings.

    Raises
    ------
    IngestError
        Too short, implausible header length, header not JSON, tensor size not matching its shape.
    """
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise IngestError(f"{path}: too short for safetensors")
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000:
            raise IngestError(f"{path}: safetensors header length {n} is implausible")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise IngestError(f"{path}: safetensors header is not JSON") from None
        data = f.read()
    meta = header.pop("__metadata__", None) or {}
    out = {}
    if not isinstance(header, dict):
        raise IngestError(f"{path}: safetensors header is not a JSON object")
    for name, info in sorted(header.items(), key=lambda kv: natural_key(kv[0])):
        if not isinstance(info, dict):
            raise IngestError(f"{path}: tensor {name}: malformed safetensors header entry")
        dt = info.get("dtype")
        if dt not in DTYPES:
            continue  # e.g. F8 types: not conv weights we can use
        offs, shape = info.get("data_offsets"), info.get("shape")
        if not (
            isinstance(offs, list)
            and len(offs) == 2
            and all(isinstance(x, int) for x in offs)
            and isinstance(shape, list)
            and all(isinstance(x, int) and x >= 0 for x in shape)
        ):
            raise IngestError(f"{path}: tensor {name}: malformed safetensors header entry (shape / data_offsets)")
        a, b = offs
        if not 0 <= a <= b <= len(data):
            raise IngestError(
                f"{path}: tensor {name}: data_offsets {offs} outside the {len(data)} data bytes (truncated file?)"
            )
        shape = tuple(shape)
        item = np.dtype(DTYPES[dt]).itemsize
        if b - a != math.prod(shape) * item:
            raise IngestError(f"{path}: tensor {name} has {(b - a) / item:g} elements, shape {shape}")
        arr = np.frombuffer(data[a:b], dtype=DTYPES[dt])
        arr = arr.reshape(shape)
        if dt == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr
    return out, meta


def read_safetensors(path: str) -> ModelFile:
    """Read the convolutions of a safetensors file (a flat state dict, see :mod:`.statedict`).

    Parameters
    ----------
    path : str
        The file.

    Returns
    -------
    ModelFile
        Its 4-D ``*weight`` / ``*kernel`` tensors as ``(out, in/groups, kh, kw)`` float32, in name order.
    """
    sd, meta = read_safetensors_dict(path)
    producer = ", ".join(f"{k}={v}" for k, v in meta.items() if k in ("format", "framework", "producer"))
    return state_dict_model(sd, path, fmt="safetensors", producer=producer)
