"""Which reader a file needs (by content, then by extension)."""

from __future__ import annotations

import os
import struct
import zipfile

from .base import IngestError, ModelFile

FORMATS = ("onnx", "torch", "safetensors", "keras", "tflite")


def detect_format(path: str) -> str:
    """One of FORMATS, or raise IngestError (unsupported / unreadable)."""
    if not os.path.exists(path):
        raise IngestError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IngestError(f"{path}: is a directory, expected a model file")
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise IngestError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not head:
        raise IngestError(f"{path}: empty file")
    ext = os.path.splitext(path)[1].lower()
    if head[4:8] == b"TFL3":
        return "tflite"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        import h5py

        with h5py.File(path, "r") as f:
            if ("filters" in f or "filter" in f) and "meta" in f:
                raise IngestError(f"{path}: is a filter DB, not a model file")
        return "keras"
    if head[:2] == b"PK" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n.endswith("data.pkl") and n.count("/") == 1 for n in names):
            return "torch"
        if "model.weights.h5" in names:
            return "keras"
        raise IngestError(f"{path}: zip archive that is neither a PyTorch file nor a .keras model")
    if head[:1] == b"\x80":
        return "torch"  # legacy torch file or a bare pickle: the restricted unpickler decides
    if len(head) >= 9 and head[8:9] == b"{":
        n = struct.unpack("<Q", head[:8])[0]
        if 0 < n < 100_000_000:
            return "safetensors"
    if ext == ".onnx" or ext == ".ort":
        return "onnx"
    if ext in (".pt", ".pth", ".pkl", ".bin", ".ckpt"):
        return "torch"
    # ONNX has no magic number: try it last for unknown extensions
    if head[:1] in (b"\x08", b"\x12", b"\x1a", b"\x22", b"\x3a"):
        return "onnx"
    raise IngestError(f"{path}: unsupported or unrecognised model format")


def read_model_file(path: str | os.PathLike, fmt: str | None = None) -> ModelFile:
    """Read the convs of a model file of any supported format (raises IngestError)."""
    path = str(path)
    fmt = fmt or detect_format(path)
    if fmt == "onnx":
        from .onnx_reader import read_onnx

        return read_onnx(path)
    if fmt == "torch":
        from .statedict import state_dict_model
        from .torch_reader import is_legacy_torch, read_raw_pickle, read_torch_legacy, read_torch_zip

        with open(path, "rb") as f:
            head = f.read(16)
        if head[:2] == b"PK":
            obj, kind = read_torch_zip(path), "torch-zip"
        elif is_legacy_torch(head):
            obj, kind = read_torch_legacy(path), "torch-legacy"
        elif head[:1] == b"\x80":
            obj, kind = read_raw_pickle(path), "pickle"
        else:
            raise IngestError(f"{path}: not a PyTorch file (neither zip nor pickle)")
        m = state_dict_model(obj, path, "pytorch")
        m.extra["container"] = kind
        return m
    if fmt == "safetensors":
        from .safetensors_reader import read_safetensors

        return read_safetensors(path)
    if fmt == "keras":
        from .keras_reader import read_keras

        return read_keras(path)
    if fmt == "tflite":
        from .tflite_reader import read_tflite

        return read_tflite(path)
    raise IngestError(f"{path}: unknown format {fmt!r}")
