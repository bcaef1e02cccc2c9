"""Which reader a file needs (by content, then by extension), and precise reasons for files that
are not model files this tool reads (compressed data, archives, web pages, Git LFS pointers, empty,
truncated or corrupt containers)."""

from __future__ import annotations

import os
import re
import struct
import zipfile

from .base import IngestError, ModelFile

FORMATS = ("onnx", "torch", "safetensors", "keras", "tflite")


EXPECTED = "expected ONNX, PyTorch, safetensors, Keras HDF5 / .keras or TFLite"
NOT_READ = "not a model format this tool reads"

#: (magic bytes at offset 0, reason) of common non-model containers
FOREIGN_MAGIC = [
    (b"\x1f\x8b", f"gzip-compressed data, {NOT_READ} (decompress it first)"),
    (b"BZh", f"bzip2-compressed data, {NOT_READ} (decompress it first)"),
    (b"\xfd7zXZ\x00", f"xz-compressed data, {NOT_READ} (decompress it first)"),
    (b"\x28\xb5\x2f\xfd", f"zstd-compressed data, {NOT_READ} (decompress it first)"),
    (b"7z\xbc\xaf\x27\x1c", f"7-Zip archive, {NOT_READ} (extract the model file first)"),
    (b"Rar!\x1a\x07", f"RAR archive, {NOT_READ} (extract the model file first)"),
    (b"\x93NUMPY", f"numpy .npy array, {NOT_READ}"),
]


def _foreign(head: bytes) -> str | None:
    """Reason why ``head`` (the first 512 bytes) is not a model file, or None."""
    for magic, reason in FOREIGN_MAGIC:
        if head.startswith(magic):
            return reason
    if len(head) >= 262 and head[257:262] == b"ustar":
        return f"tar archive, {NOT_READ} (extract the model file first)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"version https://git-lfs.github.com/spec"):
        return "Git LFS pointer file, not the model weights (fetch the LFS object, e.g. `git lfs pull`)"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) and b"<html" in text:
        return "HTML page, not a model file (the download returned a web page, e.g. a login or error page)"
    return None


def _is_torch_tar(path: str) -> bool:
    """A tar written by ``torch.save`` before 0.1.10 (members ``sys_info``, ``pickle``, ``storages``)."""
    import tarfile

    try:
        with tarfile.open(path) as t:
            names = set(t.getnames())
    except (tarfile.TarError, OSError, EOFError):
        return False
    return {"sys_info", "pickle", "storages"} <= names


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(b < 9 or 13 < b < 32 for b in head)


def _hdf5_error(exc: Exception) -> str:
    m = re.search(r"truncated file: eof = (\d+), sblock->base_addr = \d+, stored_eof = (\d+)", str(exc))
    if m:
        return f"truncated HDF5 file ({m[1]} of {m[2]} bytes)"
    return "corrupt HDF5 file (h5py cannot open it)"


def detect_format(path: str) -> str:
    """Which reader ``path`` needs.

    Parameters
    ----------
    path : str
        A model file.

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    IngestError
        One line naming the file and why it cannot be read (missing, a directory, empty, compressed,
        an archive or web page, truncated or corrupt container, unrecognised content).
    """
    if not os.path.exists(path):
        raise IngestError(f"{path}: no such file")
    if os.path.isdir(path):
        raise IngestError(f"{path}: is a directory, expected a model file")
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise IngestError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not head:
        raise IngestError(f"{path}: empty file (0 bytes), expected a model file")
    reason = _foreign(head)
    if reason and reason.startswith("tar archive") and _is_torch_tar(path):
        reason = "PyTorch tar file (torch < 0.1.10, early 2017), an old layout this tool does not read"
    if reason:
        raise IngestError(f"{path}: {reason}")
    ext = os.path.splitext(path)[1].lower()
    if head[4:8] == b"TFL3":
        return "tflite"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if ("filters" in f or "filter" in f) and "meta" in f:
                    raise IngestError(f"{path}: is a filter DB, not a model file")
        except OSError as exc:
            raise IngestError(f"{path}: {_hdf5_error(exc)}") from None
        return "keras"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        if not zipfile.is_zipfile(path):
            raise IngestError(f"{path}: truncated or corrupt zip archive (no end-of-central-directory record)")
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError) as exc:
            raise IngestError(f"{path}: corrupt zip archive ({exc})") from None
        if any(n.endswith("data.pkl") and n.count("/") == 1 for n in names):
            return "torch"
        if "model.weights.h5" in names:
            return "keras"
        first = f"; first member: {names[0]}" if names else "; it is empty"
        raise IngestError(
            f"{path}: zip archive that is neither a PyTorch file (<name>/data.pkl) nor a .keras "
            f"model (model.weights.h5){first}"
        )
    if head[:1] == b"\x80":
        return "torch"  # legacy torch file or a bare pickle: the restricted unpickler decides
    if len(head) >= 9 and head[8:9] == b"{":
        n = struct.unpack("<Q", head[:8])[0]
        if 0 < n < 100_000_000:
            return "safetensors"
    if ext == ".onnx" or ext == ".ort":
        return "onnx"
    if _is_text(head):
        raise IngestError(f"{path}: unsupported or unrecognised model format (a text file; {EXPECTED})")
    if ext in (".pt", ".pth", ".pkl", ".bin", ".ckpt", ".tar"):
        raise IngestError(f"{path}: not a PyTorch file (neither a zip archive nor a pickle; {EXPECTED})")
    # ONNX has no magic number: try it last for unknown extensions
    if head[:1] in (b"\x08", b"\x12", b"\x1a", b"\x22", b"\x3a"):
        return "onnx"
    raise IngestError(f"{path}: unsupported or unrecognised model format ({EXPECTED})")


def read_model_file(path: str | os.PathLike, fmt: str | None = None) -> ModelFile:
    """Read the convolutions of a model file of any supported format.

    Parameters
    ----------
    path : str or PathLike
        The model file.
    fmt : str, optional
        One of :data:`FORMATS` (default: :func:`detect_format`).

    Returns
    -------
    ModelFile
        The file's 4-D convs (``(out, in/groups, kh, kw)`` float32) and model-level facts.

    Raises
    ------
    IngestError
        One line naming the file and the reason (:class:`UnsafeFileError` for pickles that would
        need code to run).
    """
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
            with zipfile.ZipFile(path) as z:
                if any(n.split("/", 1)[-1] == "constants.pkl" or "/code/" in n for n in z.namelist()):
                    kind = "torchscript-zip"
        elif is_legacy_torch(head):
            obj, kind = read_torch_legacy(path), "torch-legacy"
        elif head[:1] == b"\x80":
            obj, kind = read_raw_pickle(path), "pickle"
        else:
            raise IngestError(f"{path}: not a PyTorch file (neither zip nor pickle)")
        m = state_dict_model(obj, path, fmt="pytorch")
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
