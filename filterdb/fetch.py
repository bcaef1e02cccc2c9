"""The published CNN-Filter-DB file, once Snakemake's storage plugin has downloaded it: checked and
decompressed as a stream.

The download itself is Snakemake's, through the same storage plugin (snakemake-storage-plugin-http)
that reads a ``dataset`` given as a URL: rule ``published_db`` lists the archive as a storage input,
so Snakemake fetches it into ``.snakemake/storage/http/<host>/<path>`` (checking the free disk for
it first) before the job starts. :func:`prepare` then takes that local file to ``path``::

    md5           of the whole archive (a copy left truncated by a killed download fails here)
    disk check    shutil.disk_usage(folder of path) >= the decompressed size, read from the xz index
    decompress    -> <path>.partial   (lzma, fixed-size chunks: memory does not grow with the file)
    fsync, rename -> <path>

An archive whose name does not end in ``.xz`` is copied to ``<path>.partial`` and renamed. Nothing
is written under ``path`` itself until the file is complete and checked, so a file named ``path``
is always whole. The peak disk use is the archive plus the decompressed file (the published v1.0
file: ~32 GB + 105.5 GB).

The xz format (https://tukaani.org/xz/xz-file-format.txt) ends every stream with a footer that
gives the size of its index, and the index lists the uncompressed size of every block:
:func:`xz_uncompressed_size` reads those few kilobytes only, so the disk check knows the
decompressed size before anything is written.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import struct
import sys
import urllib.parse
import zlib
from collections.abc import Callable
from pathlib import Path

#: The published CNN-Filter-DB v1.0 (CVPR 2022), Zenodo record 10.5281/zenodo.6371680.
ZENODO_URL = "https://zenodo.org/records/6371680/files/dataset.h5.xz?download=1"


#: MD5 of that download as reported by a user (secondhand): check it against the Zenodo record.
ZENODO_MD5_SECONDHAND = "11d0ca3f9c3f7b6e0f73d389db35105a"


#: Largest xz index accepted (the v1.0 file's is a few kB; the format allows 16 GiB).
MAX_INDEX_BYTES = 1 << 28


_MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")


_XZ_MAGIC = b"\xfd7zXZ\x00"


class FetchError(OSError):
    """A download that cannot be completed or checked; the message is one line."""


def human_bytes(n: float) -> str:
    """A byte count in decimal units with three significant digits at least (``32.4 GB``).

    Parameters
    ----------
    n : int or float
        Bytes.

    Returns
    -------
    str

    Examples
    --------
    >>> human_bytes(105_488_156_386)
    '105.5 GB'
    """
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def is_xz(url: str) -> bool:
    """True when the path of ``url`` (query and fragment ignored) ends in ``.xz``.

    Examples
    --------
    >>> is_xz("https://zenodo.org/records/6371680/files/dataset.h5.xz?download=1")
    True
    """
    return urllib.parse.urlsplit(url).path.lower().endswith(".xz")


def md5_file(path, chunk: int = 1 << 20, progress=None, desc: str = "md5") -> str:
    """Hex md5 of a file's bytes, read ``chunk`` bytes at a time.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    chunk : int
        Bytes read at a time.
    progress : file-like or None
        Where the tqdm bar goes (None: no bar).
    desc : str
        Label of the bar.

    Returns
    -------
    str
        32 lowercase hex digits.
    """
    return _hash_prefix(path, os.path.getsize(path), chunk, progress, desc).hexdigest()


def _hash_prefix(path, n: int, chunk: int, progress, desc: str):
    """md5 object over the first ``n`` bytes of ``path``."""
    h = hashlib.md5()
    with open(path, "rb") as f, _bar(progress, n, desc) as bar:
        left = n
        while left:
            block = f.read(min(chunk, left))
            if not block:
                raise FetchError(f"{path}: ended after {n - left} of {n} bytes while hashing")
            h.update(block)
            bar.update(len(block))
            left -= len(block)
    return h


def _bar(progress, total: int | None, desc: str, initial: int = 0):
    """A tqdm bar counting bytes, on ``progress`` (disabled when None), updated every 5 s at most."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1000,
        file=progress,
        disable=progress is None,
        mininterval=5.0,
        ascii=True,
    )


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """An xz multibyte integer at ``buf[pos:]``: (value, position after it)."""
    value = 0
    for i in range(9):
        if pos + i >= len(buf):
            raise ValueError("xz index: truncated integer")
        b = buf[pos + i]
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return value, pos + i + 1
    raise ValueError("xz index: integer longer than 9 bytes")


def xz_uncompressed_size(read_at: Callable[[int, int], bytes], size: int) -> int:
    """Uncompressed size of an .xz file, from the index of each of its streams (no decompression).

    Walks the streams from the end: stream padding (null bytes in fours), the 12-byte stream footer
    (its backward size gives the index size), the index (its records list each block's unpadded
    and uncompressed size; CRC32 checked), then the stream header before the blocks.

    Parameters
    ----------
    read_at : callable
        ``read_at(offset, n)`` returns the ``n`` bytes of the file at ``offset``.
    size : int
        Size of the .xz file in bytes.

    Returns
    -------
    int
        Total uncompressed bytes of all streams.

    Raises
    ------
    ValueError
        When the bytes are not a valid xz file.

    Examples
    --------
    >>> import lzma
    >>> data = lzma.compress(b"x" * 1000) + lzma.compress(b"y" * 24)
    >>> xz_uncompressed_size(lambda off, n: data[off : off + n], len(data))
    1024
    """
    total = 0
    end = size
    while end > 0:
        if end < 24:
            raise ValueError(f"not an xz file ({end} bytes before the first stream's footer)")
        footer = read_at(end - 12, 12)
        if footer[8:] == b"\0\0\0\0":  # stream padding
            end -= 4
            continue
        if footer[10:] != b"YZ":
            raise ValueError("not an xz file (no stream footer at its end)")
        crc, backward = struct.unpack("<II", footer[:8])
        if zlib.crc32(footer[4:10]) != crc:
            raise ValueError("xz stream footer: CRC32 mismatch")
        index_size = (backward + 1) * 4
        if index_size > MAX_INDEX_BYTES or index_size > end - 24:
            raise ValueError(f"xz stream footer: index of {index_size} bytes does not fit")
        index = read_at(end - 12 - index_size, index_size)
        if index[0] != 0 or zlib.crc32(index[:-4]) != struct.unpack("<I", index[-4:])[0]:
            raise ValueError("xz index: bad indicator or CRC32")
        n_records, pos = _varint(index, 1)
        blocks = 0
        for _ in range(n_records):
            unpadded, pos = _varint(index, pos)
            uncompressed, pos = _varint(index, pos)
            blocks += (unpadded + 3) // 4 * 4
            total += uncompressed
        start = end - 12 - index_size - blocks - 12
        if start < 0 or read_at(start, 6) != _XZ_MAGIC:
            raise ValueError("xz stream: no stream header where its index says")
        end = start
    return total


def check_disk(folder, need: int, detail: str) -> None:
    """Raise unless ``folder``'s file system has ``need`` bytes free.

    Parameters
    ----------
    folder : str or os.PathLike
        Where the files go (``shutil.disk_usage`` of it).
    need : int
        Bytes needed at the peak.
    detail : str
        What ``need`` is made of, for the message.

    Raises
    ------
    FetchError
        One line: how much is needed (and of what), how much is free, where.
    """
    free = shutil.disk_usage(folder).free
    if free < need:
        raise FetchError(
            f"not enough free disk space in {folder}: {human_bytes(need)} needed at the peak ({detail}), "
            f"{human_bytes(free)} free"
        )


def decompress_xz(src, dst, chunk: int = 1 << 20, progress=None) -> int:
    """Decompress an .xz file (all its streams) into ``dst``, ``chunk`` bytes at a time, then fsync.

    Memory stays bounded: ``lzma.LZMAFile.read(chunk)`` never returns more than ``chunk`` bytes and
    reads its input in small blocks.

    Parameters
    ----------
    src, dst : str or os.PathLike
        The compressed file and the file written (truncated first).
    chunk : int
        Bytes decompressed and written at a time.
    progress : file-like or None
        Where the tqdm bar (compressed bytes read) goes.

    Returns
    -------
    int
        Bytes written.

    Raises
    ------
    FetchError
        When ``src`` is not valid xz data (or ends early).
    """
    written = 0
    size = os.path.getsize(src)
    with (
        open(src, "rb", buffering=chunk) as raw,
        lzma.LZMAFile(raw, "rb") as zf,
        open(dst, "wb") as out,
        _bar(progress, size, "decompress") as bar,
    ):
        try:
            while block := zf.read(chunk):
                out.write(block)
                written += len(block)
                bar.update(raw.tell() - bar.n)
        except (lzma.LZMAError, EOFError) as exc:
            raise FetchError(f"{src}: not valid xz data after {written} decompressed bytes ({exc})") from exc
        out.flush()
        os.fsync(out.fileno())
    return written


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify(archive, url: str, md5: str, out, chunk: int = 1 << 20, progress="stderr", log=print) -> Path:
    """Check the md5 of a downloaded archive and put it at ``out`` (a hard link, else a copy; through
    ``<out>.partial``, so ``out`` is only ever the whole, checked file).

    Parameters
    ----------
    archive : str or os.PathLike
        The local file (Snakemake's copy of the storage input, or a local archive).
    url : str
        Where it came from (for the messages).
    md5 : str
        Expected md5 (32 hex digits).
    out : str or os.PathLike
        Where the checked archive goes.
    chunk, progress, log
        Bytes hashed at a time; where the tqdm bar goes (``"stderr"``: ``sys.stderr`` at call
        time); ``log(line)``.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    FetchError
        One line: a malformed md5 argument, or a wrong md5 (both sums, the URL and the local file:
        a copy left truncated by a killed download is found here; delete it to download again).
    """
    if not isinstance(md5, str) or not _MD5_RE.match(md5):
        raise FetchError(f"md5 {md5!r} for {url}: expected 32 hex digits")
    md5 = md5.lower()
    progress = sys.stderr if progress == "stderr" else progress
    archive, out = Path(archive), Path(out)
    size = archive.stat().st_size
    got = md5_file(archive, chunk, progress, "md5")
    if got != md5:
        raise FetchError(
            f"md5 mismatch for {url}: expected {md5}, got {got} ({archive}, {human_bytes(size)}: delete it to "
            "download again)"
        )
    log(f"md5 {got} as expected ({archive}, {human_bytes(size)})")
    folder = out.parent if str(out.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        try:
            os.link(archive, partial)
        except OSError:
            check_disk(folder, size, f"a copy of the {human_bytes(size)} download")
            shutil.copyfile(archive, partial)
        os.replace(partial, out)
        _fsync_dir(folder)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return out


def unpack(archive, path, chunk: int = 1 << 20, progress="stderr", log=print) -> Path:
    """Decompress a checked archive (``.xz``) to ``path``, or copy it there (any other name).

    The free disk is checked first against the decompressed size (from the xz index); the data goes
    to ``<path>.partial``, is fsynced and renamed, so a file named ``path`` is always whole.

    Parameters
    ----------
    archive : str or os.PathLike
        The checked archive (rule published_download's output).
    path : str or os.PathLike
        The DB written.
    chunk, progress, log
        As :func:`verify`.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    FetchError
        One line: too little free disk (needed and free), an invalid .xz file.
    """
    progress = sys.stderr if progress == "stderr" else progress
    archive, path = Path(archive), Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    size = archive.stat().st_size
    out_partial = path.with_name(path.name + ".partial")
    try:
        if archive.name.lower().endswith(".xz"):
            with open(archive, "rb") as f:

                def read_at(offset: int, n: int) -> bytes:
                    f.seek(offset)
                    return f.read(n)

                try:
                    expected = xz_uncompressed_size(read_at, size)
                except ValueError as exc:
                    raise FetchError(f"{archive}: {exc}") from exc
            check_disk(folder, expected, f"decompressed {human_bytes(expected)} beside the {human_bytes(size)} archive")
            log(f"decompressing {archive} ({human_bytes(size)}) to {path} ({human_bytes(expected)})")
            written = decompress_xz(archive, out_partial, chunk, progress)
            if written != expected:
                raise FetchError(f"{archive}: decompressed to {written} bytes, its xz index says {expected}")
        else:
            check_disk(folder, size, f"a copy of the {human_bytes(size)} download")
            shutil.copyfile(archive, out_partial)
            with open(out_partial, "rb+") as out:
                os.fsync(out.fileno())
            written = size
        os.replace(out_partial, path)
        _fsync_dir(folder)
    except BaseException:
        out_partial.unlink(missing_ok=True)
        raise
    log(f"wrote {path} ({human_bytes(written)})")
    return path
