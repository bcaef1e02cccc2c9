"""Download the published CNN-Filter-DB file: resumable, checksummed, decompressed as a stream.

:func:`fetch` brings one file from a URL (``http://``, ``https://`` or ``file://``) to ``path``,
in this order (rule ``published_db``; README "Get the published DB")::

    probe         size of the file; for .xz: its uncompressed size, read from the xz index at its end
    disk check    shutil.disk_usage(folder of path) >= what is still to download + the decompressed size
    download      -> <path>.xz.partial   (resumed with ``Range: bytes=N-`` when a .partial exists)
    md5           of the whole download (a resume first re-hashes the N bytes it keeps)
    rename        -> <path>.xz           (verified: a rerun killed while decompressing reuses it)
    decompress    -> <path>.partial      (lzma, fixed-size chunks: memory does not grow with the file)
    fsync, rename -> <path>              (then <path>.xz is deleted unless keep_compressed)

A URL whose path does not end in ``.xz`` is downloaded to ``<path>.partial``, checked and renamed,
without decompression. Nothing is ever written under ``path`` itself until the file is complete and
checked, so a file named ``path`` is always whole. The peak disk use is the compressed plus the
decompressed file (the published v1.0 file: ~32 GB + 105.5 GB).

Resume: an interrupted download keeps its ``.partial``. The next attempt (a retry within the same
call, or the next run) re-hashes the bytes it has and asks for the rest with ``Range: bytes=N-``; a
``206 Partial Content`` answer starting at byte N is appended, a ``200`` answer means the server
ignores ranges and the download restarts from zero (logged). Connection errors, timeouts, a body
cut short and HTTP 408/429/5xx are retried with exponential backoff (``Retry-After`` honoured);
the retry budget counts attempts in a row that brought no new byte, so a long download over a link
that drops now and then goes on as long as it makes progress. A wrong checksum removes the download
and raises :class:`FetchError` naming both sums and the URL.

HTTP library: ``requests`` (a dependency of Snakemake, and now declared in pyproject.toml). It
gives separate connect and read timeouts, follows redirects keeping the ``Range`` header (Zenodo's
``?download=1`` links redirect), reuses one connection for the probe and the download, verifies TLS
with certifi's certificates and honours the ``*_PROXY`` variables; a body cut short raises
``ChunkedEncodingError`` instead of ending quietly. The stdlib's ``urllib`` would do with more
code (a read timeout per socket operation only, no pooled connection, proxies and redirects by
hand-made handlers) and no gain. ``file://`` URLs are read directly (no HTTP library involved).

The xz format (https://tukaani.org/xz/xz-file-format.txt) ends every stream with a footer that
gives the size of its index, and the index lists the uncompressed size of every block:
:func:`xz_uncompressed_size` reads those few kilobytes only (from the local file, or with range
requests from the server), so the disk check knows the decompressed size before downloading.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import struct
import sys
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: The published CNN-Filter-DB v1.0 (CVPR 2022), Zenodo record 10.5281/zenodo.6371680.
ZENODO_URL = "https://zenodo.org/records/6371680/files/dataset.h5.xz?download=1"
#: MD5 of that download as reported by a user (secondhand): check it against the Zenodo record.
ZENODO_MD5_SECONDHAND = "11d0ca3f9c3f7b6e0f73d389db35105a"

#: Bytes read from the end of an .xz file when probing (its footer and, mostly, its whole index).
TAIL_BYTES = 1 << 16
#: Largest xz index accepted (the v1.0 file's is a few kB; the format allows 16 GiB).
MAX_INDEX_BYTES = 1 << 28
#: HTTP statuses worth retrying.
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
_MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$")
_XZ_MAGIC = b"\xfd7zXZ\x00"


class FetchError(OSError):
    """A download that cannot be completed or checked; the message is one line."""


class _Retry(Exception):
    """A transient failure: try again (after a pause of at least ``wait`` seconds)."""

    def __init__(self, reason: str, wait: float = 0.0):
        super().__init__(reason)
        self.wait = wait


class _NoRange(Exception):
    """The server does not answer range requests with 206."""


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


# ---------------------------------------------------------------------------------------------
# The xz index


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


# ---------------------------------------------------------------------------------------------
# Sources: HTTP(S) and local files


@dataclass
class _Body:
    """An open answer to a download request: the body starts at byte ``start`` of the file."""

    start: int
    total: int | None
    chunks: Iterator[bytes]
    close: Callable[[], None]


@dataclass
class _Probe:
    total: int | None  # size of the file (None: the server did not say)
    ranges: bool  # the server answered a range request with 206
    tail: bytes  # the last bytes of the file (empty when ranges is False)
    etag: str | None


def _parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """``bytes a-b/total`` or ``bytes */total``: (a, b, total), None for each part not given."""
    m = _CONTENT_RANGE_RE.match(value or "")
    if not m:
        return None, None, None
    a, b, total = m.groups()
    return (
        int(a) if a is not None else None,
        int(b) if b is not None else None,
        int(total) if total not in (None, "*") else None,
    )


class _HttpSource:
    def __init__(self, url: str, timeout: float, chunk: int):
        import requests

        self.url = url
        self.timeout = (min(30.0, timeout), timeout)  # (connect, read between bytes)
        self.chunk = chunk
        self.session = requests.Session()
        # identity: a gzip-encoded answer would be decoded by requests and break byte offsets
        self.session.headers.update({"User-Agent": "filterdb-fetch", "Accept-Encoding": "identity"})

    def close(self) -> None:
        self.session.close()

    def _get(self, headers: dict):
        import requests

        try:
            r = self.session.get(self.url, headers=headers, stream=True, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code in RETRY_STATUS:
            wait = r.headers.get("Retry-After", "")
            r.close()
            raise _Retry(f"HTTP {r.status_code} {r.reason}", float(wait) if wait.isdigit() else 0.0)
        if r.status_code >= 400 and r.status_code != 416:
            r.close()
            raise FetchError(f"HTTP {r.status_code} {r.reason} for {self.url}")
        return r

    def probe(self, tail: int) -> _Probe:
        r = self._get({"Range": f"bytes=-{tail}"})
        try:
            etag = r.headers.get("ETag")
            if r.status_code == 416:  # an empty file
                return _Probe(_parse_content_range(r.headers.get("Content-Range"))[2], False, b"", etag)
            if r.status_code == 206:
                _, _, total = _parse_content_range(r.headers.get("Content-Range"))
                return _Probe(total, True, r.content, etag)
            length = r.headers.get("Content-Length")
            return _Probe(int(length) if length and length.isdigit() else None, False, b"", etag)
        finally:
            r.close()

    def read_at(self, offset: int, n: int) -> bytes:
        r = self._get({"Range": f"bytes={offset}-{offset + n - 1}"})
        try:
            if r.status_code != 206 or _parse_content_range(r.headers.get("Content-Range"))[0] != offset:
                raise _NoRange
            data = r.content
        finally:
            r.close()
        if len(data) != n:
            raise _Retry(f"range request for {n} bytes at {offset} gave {len(data)}")
        return data

    def open(self, offset: int) -> _Body:
        import requests

        r = self._get({"Range": f"bytes={offset}-"} if offset else {})
        if r.status_code == 416:  # nothing at or after offset
            _, _, total = _parse_content_range(r.headers.get("Content-Range"))
            r.close()
            return _Body(offset if total == offset else 0, total, iter(()), lambda: None)
        if r.status_code == 206:
            start, _, total = _parse_content_range(r.headers.get("Content-Range"))
            if start is None:
                r.close()
                raise _Retry("206 answer without a Content-Range")
        else:
            start = 0
            length = r.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None

        def chunks():
            try:
                yield from r.iter_content(self.chunk)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                raise _Retry(f"connection lost: {exc}") from exc

        return _Body(start, total, chunks(), r.close)


class _FileSource:
    def __init__(self, url: str, chunk: int):
        parts = urllib.parse.urlsplit(url)
        self.path = urllib.request.url2pathname(parts.path)
        self.chunk = chunk
        if not os.path.isfile(self.path):
            raise FetchError(f"{url}: no such file")

    def close(self) -> None:
        pass

    def probe(self, tail: int) -> _Probe:
        total = os.path.getsize(self.path)
        return _Probe(total, True, self.read_at(max(0, total - tail), min(tail, total)), None)

    def read_at(self, offset: int, n: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(n)

    def open(self, offset: int) -> _Body:
        f = open(self.path, "rb")
        total = os.fstat(f.fileno()).st_size
        f.seek(min(offset, total))

        def chunks():
            yield from iter(lambda: f.read(self.chunk), b"")

        return _Body(min(offset, total), total, chunks(), f.close)


def _source(url: str, timeout: float, chunk: int):
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return _HttpSource(url, timeout, chunk)
    if scheme == "file":
        return _FileSource(url, chunk)
    raise FetchError(f"{url}: unsupported URL scheme {scheme!r} (http, https or file)")


def _tail_reader(src, tail: bytes, size: int) -> Callable[[int, int], bytes]:
    """``read_at`` for :func:`xz_uncompressed_size`: from the probed tail when it holds the bytes,
    else a range request."""
    base = size - len(tail)

    def read_at(offset: int, n: int) -> bytes:
        if offset >= base:
            return tail[offset - base : offset - base + n]
        return src.read_at(offset, n)

    return read_at


# ---------------------------------------------------------------------------------------------
# Disk, download, decompression


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


def _with_retries(step: Callable[[], None], retries: int, backoff: float, log, what: str) -> None:
    """Call ``step()`` until it returns; a :class:`_Retry` it raises waits and tries again.

    A :class:`_Retry` whose attribute ``progress`` is True (the attempt brought new bytes before
    failing) starts the count again, so ``retries`` bounds the failed attempts in a row that
    brought nothing; ``retries=0`` never retries. Any other exception ends it.
    """
    failures = 0
    while True:
        try:
            step()
            return
        except _Retry as exc:
            made_progress = getattr(exc, "progress", False)
            failures = 0 if made_progress else failures + 1
            if retries == 0 or failures > retries:
                tries = "no retry" if retries == 0 else f"{retries + 1} attempts in a row without progress"
                raise FetchError(f"{what}: {exc} ({tries})") from exc
            wait = max(exc.wait, backoff * 2 ** max(0, failures - 1))
            wait = min(wait, 600.0)
            log(f"{what}: {exc}; retrying in {wait:.1f} s")
            time.sleep(wait)


def _download(src, url: str, partial: Path, total: int | None, *, chunk, retries, backoff, log, progress) -> str:
    """Download ``src`` into ``partial``, resuming from its bytes; returns the md5 of the whole file."""
    partial.touch()
    offset = partial.stat().st_size
    if offset and total is not None and offset > total:
        log(f"{partial} holds {offset} bytes, more than the {total} of {url}: starting over")
        offset = 0
        partial.write_bytes(b"")
    if offset:
        log(f"resuming {url} from byte {offset} ({human_bytes(offset)} in {partial}): re-hashing them")
        h = _hash_prefix(partial, offset, chunk, progress, "re-hash")
    else:
        h = hashlib.md5()
    state = {"offset": offset, "h": h, "total": total}

    def attempt() -> None:
        off = state["offset"]
        if state["total"] is not None and off == state["total"]:
            return  # complete (e.g. a previous run finished downloading)
        if partial.exists() and partial.stat().st_size != off:  # changed behind our back: hash it again
            off = partial.stat().st_size
            state["h"] = _hash_prefix(partial, off, chunk, progress, "re-hash")
        body = src.open(off)
        before = off
        try:
            if body.start != off:
                log(
                    f"the server ignored the range request for bytes {off}- (it answered from byte {body.start}): "
                    "no range support, restarting the download from zero"
                )
                off, state["h"] = 0, hashlib.md5()
                with open(partial, "wb"):
                    pass
                before = 0
            if body.total is not None:
                if state["total"] is not None and body.total != state["total"]:
                    log(f"{url} now reports {body.total} bytes (was {state['total']})")
                state["total"] = body.total
            with (
                open(partial, "ab") as f,
                _bar(progress, state["total"], "download", initial=off) as bar,
            ):
                try:
                    for block in body.chunks:
                        f.write(block)
                        state["h"].update(block)
                        off += len(block)
                        bar.update(len(block))
                finally:
                    state["offset"] = off
                    f.flush()
                    os.fsync(f.fileno())
        except _Retry as exc:
            exc.progress = off > before
            raise
        finally:
            body.close()
        if state["total"] is not None and off < state["total"]:
            exc = _Retry(f"the connection ended after byte {off} of {state['total']}")
            exc.progress = off > before
            raise exc
        if state["total"] is not None and off > state["total"]:
            raise FetchError(f"{url}: received {off} bytes, more than the announced {state['total']}")
        state["total"] = off

    _with_retries(attempt, retries, backoff, log, f"download of {url}")
    return state["h"].hexdigest()


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


def _etag_md5(etag: str | None) -> str | None:
    """The md5 a server states in its ETag as ``"md5:HEX"`` (Zenodo does), else None."""
    m = re.fullmatch(r'(?:W/)?"?md5:([0-9a-fA-F]{32})"?', (etag or "").strip())
    return m[1].lower() if m else None


# ---------------------------------------------------------------------------------------------
# The whole fetch


def fetch(
    url: str,
    md5: str,
    path,
    keep_compressed: bool = False,
    log: Callable[[str], None] = print,
    chunk: int = 1 << 20,
    retries: int = 4,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress="stderr",
) -> Path:
    """Download ``url`` to ``path``: free space checked, resumable, md5 verified, .xz decompressed.

    See the module docstring for the order of the steps and the files each leaves.

    Parameters
    ----------
    url : str
        ``http(s)://`` or ``file://`` URL. When its path ends in ``.xz`` the download is decompressed.
    md5 : str
        Expected md5 (32 hex digits) of the bytes downloaded (the compressed file for .xz).
    path : str or os.PathLike
        The final file (the decompressed file for .xz). Its folder is created when missing.
    keep_compressed : bool
        Keep the verified ``<path>.xz`` after decompressing (default: delete it).
    log : callable
        ``log(line)`` for what is done (sizes, resumes, retries).
    chunk : int
        Bytes read, hashed, decompressed and written at a time (bounds memory).
    retries : int
        Failed attempts in a row without a new byte that are retried (connection errors, timeouts,
        HTTP 408/429/5xx, a body cut short) before giving up; the ``.partial`` is kept for a rerun.
        0: no retry at all.
    backoff : float
        Seconds before the first retry, doubled for each further one (at most 600 s).
    timeout : float
        Seconds to wait for the server's next bytes (connecting: at most 30 s).
    progress : file-like, "stderr" or None
        Where the tqdm bars (bytes) go: ``"stderr"`` is ``sys.stderr`` at call time (a rule's log).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    FetchError
        With a one-line message: a wrong md5 (both sums and the URL; the download is removed), too
        little free disk (needed at the peak and free), an HTTP error, a download that kept failing,
        an invalid .xz file.
    """
    if not isinstance(md5, str) or not _MD5_RE.match(md5):
        raise FetchError(f"md5 {md5!r} for {url}: expected 32 hex digits")
    md5 = md5.lower()
    progress = sys.stderr if progress == "stderr" else progress
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    xz = is_xz(url)
    compressed = path.with_name(path.name + ".xz") if xz else None
    partial = path.with_name(path.name + (".xz.partial" if xz else ".partial"))
    out_partial = path.with_name(path.name + ".partial")
    if xz and out_partial.exists():  # left by a run killed while decompressing
        log(f"removing {out_partial} (an unfinished decompression)")
        out_partial.unlink()

    verified = False
    if xz and compressed.exists():
        got = md5_file(compressed, chunk, progress, "md5 of kept download")
        if got == md5:
            log(f"{compressed} is there and its md5 is {md5}: not downloading again")
            verified = True
        else:
            log(f"{compressed} has md5 {got}, not the expected {md5}: removing it")
            compressed.unlink()

    if not verified:
        src = _source(url, timeout, chunk)
        try:
            _fetch_download(src, url, md5, partial, folder, xz, chunk, retries, backoff, log, progress)
        finally:
            src.close()
        if not xz:
            os.replace(partial, path)
            _fsync_dir(folder)
            log(f"wrote {path} ({human_bytes(path.stat().st_size)}, md5 {md5})")
            return path
        os.replace(partial, compressed)
        _fsync_dir(folder)

    size = compressed.stat().st_size
    with open(compressed, "rb") as f:

        def read_at(offset: int, n: int) -> bytes:
            f.seek(offset)
            return f.read(n)

        try:
            expected = xz_uncompressed_size(read_at, size)
        except ValueError as exc:
            raise FetchError(f"{compressed} (from {url}): {exc}") from exc
    check_disk(folder, expected, f"decompressed {human_bytes(expected)} beside the {human_bytes(size)} download")
    log(f"decompressing {compressed} ({human_bytes(size)}) to {path} ({human_bytes(expected)})")
    try:
        written = decompress_xz(compressed, out_partial, chunk, progress)
        if written != expected:
            raise FetchError(f"{compressed}: decompressed to {written} bytes, its xz index says {expected}")
        os.replace(out_partial, path)
        _fsync_dir(folder)
    except BaseException:
        out_partial.unlink(missing_ok=True)
        raise
    if keep_compressed:
        log(f"wrote {path} ({human_bytes(written)}); kept {compressed} (keep_compressed)")
    else:
        compressed.unlink()
        log(f"wrote {path} ({human_bytes(written)}); removed {compressed}")
    return path


def _fetch_download(src, url, md5, partial, folder, xz, chunk, retries, backoff, log, progress) -> None:
    """Probe, check the disk, download into ``partial`` and verify its md5 (removing it if wrong)."""
    probe: _Probe | None = None

    def do_probe() -> None:
        nonlocal probe
        probe = src.probe(TAIL_BYTES)

    _with_retries(do_probe, retries, backoff, log, f"probe of {url}")
    total = probe.total
    have = partial.stat().st_size if partial.exists() else 0
    if total is not None and have > total:
        have = 0
    stated = _etag_md5(probe.etag)
    if stated and stated != md5:
        raise FetchError(
            f"{url}: the server states md5 {stated} (ETag), the configured md5 is {md5}: not downloading; "
            "check the md5 on the record's page"
        )
    if stated:
        log(f"the server states the same md5 (ETag {probe.etag})")

    expected = None
    if xz and probe.ranges and total is not None:

        def read_tail() -> None:
            nonlocal expected
            try:
                expected = xz_uncompressed_size(_tail_reader(src, probe.tail, total), total)
            except _NoRange:
                expected = None

        try:
            _with_retries(read_tail, retries, backoff, log, f"xz index of {url}")
        except ValueError as exc:
            raise FetchError(f"{url}: {exc}") from exc

    if total is None:
        log(f"{url}: the server does not state the file's size; the disk is checked before decompressing")
    else:
        rest = total - have
        parts = [f"download {human_bytes(rest)}" + (f" (of {human_bytes(total)})" if have else "")]
        need = rest
        if expected is not None:
            need += expected
            parts.append(f"decompressed {human_bytes(expected)}")
        check_disk(folder, need, " + ".join(parts))
        log(f"{url}: {human_bytes(total)}" + (f", decompressed {human_bytes(expected)}" if expected else ""))
        if xz and expected is None:
            log("the server answers no range request: the decompressed size is checked after the download")
        free = shutil.disk_usage(folder).free
        log(f"peak disk use in {folder}: {human_bytes(need + have)}, {human_bytes(free)} free")

    got = _download(src, url, partial, total, chunk=chunk, retries=retries, backoff=backoff, log=log, progress=progress)
    if got != md5:
        partial.unlink(missing_ok=True)
        raise FetchError(f"md5 mismatch for {url}: expected {md5}, got {got} (the download was removed)")
    log(f"md5 {got} as expected")
