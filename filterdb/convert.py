"""Rewrite a filter DB with its filters stored in another dtype (``filterdb convert``).

The published v1.0 DB stores its 1,464,797,156 filters as float64 (105 GB); the study analyses
them in float16 (its notebook rounds them with ``filters.astype(np.float16)`` on load), which a
26 GB float16 copy holds exactly. :func:`convert` writes such a copy in the published layout:

* **Values.** Each block of rows is read from HDF5 in its stored dtype and converted with one
  numpy cast, ``np.asarray(block, dtype=target)``: float64 -> float16 is a single correctly
  rounded step (round to nearest, ties to even), never float64 -> float32 -> float16, whose
  double rounding differs just above a float16 tie (:func:`filterdb.db.read_rows`, which goes
  through float32, is not used for the data). NaN and ±inf of the source are carried as they are;
  a finite value that the target cannot hold (beyond ±65504 for float16: it would become ±inf)
  is refused, naming its row, unless ``allow_overflow``.
* **Layout.** The same dataset name (``filters`` or ``filter``) and shape (``(N, 9)``,
  ``(N, 3, 3)``, or ``(N, K, K)`` for a DB of K x K filters, whose ``filterdb_kernel_size``
  attribute is carried over); the ``meta`` table read with :func:`filterdb.db.read_meta` and stored with
  :func:`filterdb.db.write_meta` (it reads back equal); storage chunked and uncompressed, resizable
  along the rows, as :func:`filterdb.db.write_db_streaming` writes it, so that ``filterdb build
  --append`` works on the copy and filterdb's direct readers (:mod:`filterdb.stream`: raw
  ``preadv`` / ``mmap`` of the chunks) can read it: they need uncompressed, unfiltered chunks.
  Only the filter dataset and the meta table are copied.
* **Safety.** The source is validated with :func:`filterdb.db.open_db` (no code from the file
  runs, no other file is read) before any row is read; the copy is checked the same way, and its
  layer table compared with the source's, before it is given its name.
* **Atomic.** Written as ``OUT + ".partial"`` and renamed onto ``OUT`` at the end (after an
  ``fsync``). On any error, ``KeyboardInterrupt`` or ``SystemExit`` the partial file is removed
  and ``OUT`` is untouched (an existing ``OUT``, replaced with ``force``, stays as it was). A
  stale ``.partial`` left by a killed process (SIGKILL) is overwritten by the next run.
* **Provenance** as plain HDF5 attributes of the filter dataset (text and integers, never
  pickles): ``filterdb_converted_from`` (the source's file name), ``filterdb_source_dtype``,
  ``filterdb_source_size`` (bytes), ``filterdb_source_mtime`` (ISO 8601, UTC),
  ``filterdb_source_sha256`` (only when computed, see below), ``filterdb_convert_version``
  (filterdb's version) and ``filterdb_overflowed_values`` (values that became ±inf: 0 unless
  ``allow_overflow``).

The SHA-256 of the source. The rows are read through HDF5, not as the file's bytes, so the file's
hash needs a second, sequential read of the whole file. For the published DB that is another
105 GB read, as long as the conversion's own read. So by default (``checksum=None``) it is
computed for sources under :data:`CHECKSUM_AUTO_BYTES` (1 GiB: seconds) and skipped above;
``checksum=True`` (``--checksum``) forces it, ``False`` (``--no-checksum``) skips it. Size and
modification time are always recorded, and they are checked again after the last row is read: a
source that changed during the conversion is an error.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import sys
import time
from dataclasses import dataclass

import h5py
import numpy as np

from .db import DBError, open_db, read_meta, write_meta

#: Target dtypes ``convert`` writes.
DTYPES = ("float16", "float32", "float64")
#: Rows per block: 4 Mi rows (a float64 block is 302 MB, its float16 copy 75 MB, a mask 38 MB: the
#: command peaks at ~0.5 GB); a multiple of :data:`CHUNK_ROWS`.
BLOCK_ROWS = 1 << 22
#: HDF5 chunk length of the output in rows (as :func:`filterdb.db.write_db`).
CHUNK_ROWS = 65536
#: ``checksum=None``: compute the source's SHA-256 when the file is smaller than this.
CHECKSUM_AUTO_BYTES = 1 << 30
ATTR_PREFIX = "filterdb_"


class ConvertError(ValueError):
    """A conversion that is refused or failed (message is one line)."""


@dataclass
class ConvertResult:
    """What :func:`convert` did."""

    source: str
    output: str
    key: str
    shape: tuple[int, ...]
    source_dtype: str
    dtype: str
    bytes_in: int  # size of the source file
    bytes_out: int  # size of the written file
    seconds: float
    sha256: str | None  # of the source file, when computed
    overflowed: int  # finite values that became ±inf (allow_overflow)

    @property
    def rows(self) -> int:
        return int(self.shape[0])

    def summary(self) -> str:
        """The one-line summary ``filterdb convert`` prints."""
        return (
            f"{self.output}: {self.rows:,} filters ('{self.key}' {self.shape}) {self.source_dtype} -> {self.dtype}, "
            f"{self.bytes_in:,} -> {self.bytes_out:,} bytes ({_gb(self.bytes_in)} -> {_gb(self.bytes_out)}) "
            f"in {self.seconds:.1f} s"
            + (f"; source sha256 {self.sha256}" if self.sha256 else "")
            + (f"; {self.overflowed:,} values overflowed to inf" if self.overflowed else "")
        )


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.2f} MB"


def target_dtype(dtype) -> np.dtype:
    """The little-endian float dtype for ``dtype`` (``"float16"``, ``"float32"``, ``"float64"``,
    or a numpy dtype of these), or a :class:`ConvertError`."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f" or dt.name not in DTYPES:
        raise ConvertError(f"unsupported target dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    return dt.newbyteorder("<")


def convert_block(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``block`` (as stored) in ``dtype``: one numpy cast, no intermediate dtype (overflow to ±inf
    is not warned about here: :func:`convert` checks it)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(block, dtype=dtype)


def _overflow(block: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Flat positions in ``out`` of values that are ±inf there but finite in ``block``."""
    inf = np.isinf(out)
    if not inf.any():
        return np.empty(0, np.int64)
    return np.flatnonzero(inf & np.isfinite(block))


def _plain_text(text: str) -> str:
    """``text`` for a string attribute: PyTables unpickles any string attribute ending in ``"."``
    (:mod:`filterdb.h5safe`), so a final ``"."`` is stored as ``"%2E"``."""
    return text[:-1] + "%2E" if text.endswith(".") else text


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("filterdb")
    except metadata.PackageNotFoundError:
        return "unknown"


def _stat_id(st: os.stat_result) -> tuple[int, int]:
    return int(st.st_size), int(st.st_mtime_ns)


def _mtime_text(st: os.stat_result) -> str:
    return datetime.datetime.fromtimestamp(st.st_mtime, datetime.UTC).isoformat()


def file_sha256(path: str, progress: bool = False, bufsize: int = 8 << 20) -> str:
    """SHA-256 of a file's bytes, read sequentially (a tqdm bar in bytes on stderr with ``progress``)."""
    from tqdm import tqdm

    h = hashlib.sha256()
    buf = bytearray(bufsize)
    view = memoryview(buf)
    with (
        open(path, "rb", buffering=0) as fh,
        tqdm(
            total=os.path.getsize(path),
            unit="B",
            unit_scale=True,
            desc="sha256",
            file=sys.stderr,
            disable=not progress,
        ) as bar,
    ):
        while n := fh.readinto(buf):
            h.update(view[:n])
            bar.update(n)
    return h.hexdigest()


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_paths(src: str, out: str, force: bool) -> None:
    if _same_file(src, out):
        raise ConvertError(f"{out}: the output is the source DB; choose another output file")
    tmp = out + ".partial"
    if _same_file(src, tmp):
        raise ConvertError(f"{tmp}: the output's temporary file would be the source DB; choose another output file")
    if os.path.isdir(out):
        raise ConvertError(f"{out}: is a directory; expected an output file name")
    if os.path.lexists(out) and not force:
        raise ConvertError(f"{out}: exists; use --force to replace it")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise ConvertError(f"{out}: folder {parent} does not exist")


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder
        pass
    finally:
        os.close(fd)


def convert(
    source: str | os.PathLike,
    output: str | os.PathLike,
    dtype="float16",
    *,
    block_rows: int = BLOCK_ROWS,
    force: bool = False,
    checksum: bool | None = None,
    allow_overflow: bool = False,
    progress: bool = False,
    log=None,
) -> ConvertResult:
    """Write ``output``: the DB ``source`` with its filters stored as ``dtype`` (see the module's
    docstring for the layout, the rounding, atomicity and the provenance attributes).

    Parameters
    ----------
    source : str or os.PathLike
        A filter DB in the published layout (any float dtype); opened with
        :func:`filterdb.db.open_db`.
    output : str or os.PathLike
        The file to write (through ``output + ".partial"``); must not be ``source``.
    dtype : {"float16", "float32", "float64"}
        Stored dtype of the output's filters.
    block_rows : int
        Rows read, converted and written at a time (bounds memory: a block of the source's dtype,
        its converted copy and a few boolean masks).
    force : bool
        Replace an existing ``output`` (only once the new file is complete).
    checksum : bool, optional
        Compute the SHA-256 of the source file's bytes (a second, sequential read of it). None:
        only for sources under :data:`CHECKSUM_AUTO_BYTES`.
    allow_overflow : bool
        Store finite values beyond the target's range as ±inf instead of refusing them.
    progress : bool
        tqdm bars on stderr (rows converted; bytes hashed).
    log : callable, optional
        ``log(line)`` for progress notes (e.g. that the checksum is skipped).

    Returns
    -------
    ConvertResult

    Raises
    ------
    ConvertError
        Unsupported ``dtype`` or ``block_rows``, ``output`` is ``source`` or exists (without
        ``force``), overflow (without ``allow_overflow``), the source changed during the
        conversion, or a row block could not be read.
    filterdb.db.DBError
        ``source`` is not a filter DB in the published layout (one line saying why).
    """
    t0 = time.perf_counter()
    src, out = os.fspath(source), os.fspath(output)
    target = target_dtype(dtype)
    if isinstance(block_rows, bool) or not isinstance(block_rows, int | np.integer) or block_rows < 1:
        raise ConvertError(f"block_rows must be a positive integer, got {block_rows!r}")
    block_rows = int(block_rows)
    log = log or (lambda line: None)
    if not os.path.exists(src):
        raise DBError(f"{src}: no such file")
    _check_paths(src, out, force)

    db = open_db(src)  # the safe reader: validates the whole structure before any row is read
    meta = read_meta(src)
    st = os.stat(src)
    if checksum is None:
        checksum = st.st_size < CHECKSUM_AUTO_BYTES
        if not checksum:
            log(
                f"{src}: {_gb(st.st_size)}: its SHA-256 is not computed (a second full read); "
                f"size and modification time are recorded (--checksum computes it)"
            )
    sha = file_sha256(src, progress) if checksum else None

    tmp = out + ".partial"
    overflowed = 0
    try:
        with h5py.File(src, "r") as fs, h5py.File(tmp, "w") as fo:
            ds = fs[db.key]  # checked by open_db: a plain dataset of this file
            shape = tuple(int(s) for s in ds.shape)
            n = shape[0]
            source_dtype = ds.dtype.name
            narrowing = target.itemsize < ds.dtype.itemsize
            do = fo.create_dataset(
                db.key,
                shape=shape,
                maxshape=(None,) + shape[1:],
                dtype=target,
                chunks=(min(max(n, 1), CHUNK_ROWS),) + shape[1:],
            )
            from tqdm import tqdm

            with tqdm(
                total=n,
                unit="rows",
                unit_scale=True,
                desc=f"{source_dtype} -> {target.name}",
                file=sys.stderr,
                disable=not progress,
            ) as bar:
                for a in range(0, n, block_rows):
                    b = min(a + block_rows, n)
                    try:
                        block = ds[a:b]
                    except Exception as exc:
                        raise ConvertError(
                            f"{src}: cannot read filter rows {a}..{b - 1} ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})"
                        ) from None
                    conv = convert_block(block, target)
                    if narrowing:
                        bad = _overflow(block, conv)
                        if bad.size and not allow_overflow:
                            row, col = divmod(int(bad[0]), int(np.prod(shape[1:], dtype=np.int64)))
                            value = float(block.reshape(-1)[bad[0]])
                            raise ConvertError(
                                f"{src}: row {a + row} (pixel {col}) holds {value!r}, beyond "
                                f"{target.name}'s largest value {float(np.finfo(target).max):g}: it would become "
                                f"{'-' if value < 0 else ''}inf ({bad.size} such values in rows {a}..{b - 1}); "
                                f"--allow-overflow stores them as inf"
                            )
                        overflowed += int(bad.size)
                    do[a:b] = conv
                    bar.update(b - a)
                    del block, conv  # before the next block is read: one block in memory at a time
            attrs = {
                "converted_from": _plain_text(os.path.basename(os.path.abspath(src))),
                "source_dtype": source_dtype,
                "source_size": np.int64(st.st_size),
                "source_mtime": _mtime_text(st),
                "convert_version": _plain_text(_version()),
                "overflowed_values": np.int64(overflowed),
            }
            if sha:
                attrs["source_sha256"] = sha
            if ATTR_PREFIX + "kernel_size" in ds.attrs:  # K of a DB of K x K filters (filterdb build --kernel)
                attrs["kernel_size"] = np.int64(ds.attrs[ATTR_PREFIX + "kernel_size"])
            for k, v in attrs.items():
                do.attrs[ATTR_PREFIX + k] = v
        if _stat_id(os.stat(src)) != _stat_id(st):
            raise ConvertError(f"{src}: the source changed while it was converted (size or modification time)")
        write_meta(meta, tmp)
        check = open_db(tmp)  # what every reader of the copy will see
        if not check.layers.equals(db.layers) or check.n_rows != db.n_rows or check.key != db.key:
            raise ConvertError(f"{tmp}: the written DB does not read back with the source's layers")
        _fsync(tmp)
        os.replace(tmp, out)
        _fsync_dir(out)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
    return ConvertResult(
        source=src,
        output=out,
        key=db.key,
        shape=shape,
        source_dtype=source_dtype,
        dtype=target.name,
        bytes_in=int(st.st_size),
        bytes_out=int(os.path.getsize(out)),
        seconds=time.perf_counter() - t0,
        sha256=sha,
        overflowed=overflowed,
    )
