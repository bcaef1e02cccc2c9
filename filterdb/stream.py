"""Reading a filter DB's rows in blocks of whole layers, with the next block read while the current
one is computed.

Shards and blocks
    A shard is a contiguous run of whole layers with about the same number of filters
    (:func:`plan_shards`); a block is a run of whole consecutive layers of at most ``block_rows``
    rows (a larger layer is a block by itself, :func:`plan_blocks`). A layer is never split, so every
    per-layer statistic is computed the same way whatever the sharding.

Reading
    :class:`BlockReader` reads blocks in a background thread, one ahead of the consumer, so that
    reading overlaps computing (the compiled kernels release the GIL). For an uncompressed
    little-endian float16, float32 or float64 dataset (the published v1.0 file is float64, every DB
    this project writes float32, ``filterdb convert`` writes float16) it maps or reads the bytes
    of the rows straight from the file (contiguous layout, or chunked layout with the chunk
    addresses from HDF5's chunk index), which releases the GIL and skips HDF5's per-call overhead;
    any other dataset (compressed, big-endian) is read through h5py. The passes take the rows as
    stored (``raw=True``) and the kernels convert each value in their loop
    (:data:`filterdb.kernels.PRECISIONS`).
"""

from __future__ import annotations

import errno
import os
import queue
import re
import sys
import threading
from collections.abc import Iterator

import numpy as np

from .schema import schema_default
from .shape import STUDY, FilterShape

_ALIGN = 4096  # O_DIRECT offsets, lengths and buffers: multiples of the largest usual block size
_DIRECT_PIECES = 4  # O_DIRECT requests in flight per reader
ROW_BYTES = STUDY.row_bytes(4)  # a float32 3x3 row; a reader's own is ``BlockReader.row_bytes``
#: Stored dtypes read straight from the file (little-endian float16/32/64).
DIRECT_DTYPES = ("<f2", "<f4", "<f8")
#: The dtype of a raw block by the stored itemsize (numba has no float16: its rows are handed over
#: as their uint16 bit patterns).
ROW_DTYPES = {2: np.dtype(np.uint16), 4: np.dtype(np.float32), 8: np.dtype(np.float64)}


# ---------------------------------------------------------------------------------------------
# Planning


def plan_shards(n_filters: np.ndarray, shards: int) -> list[tuple[int, int]]:
    """Split layers ``0..L-1`` into ``shards`` contiguous layer ranges of about equal filter count.

    Parameters
    ----------
    n_filters : (L,) int
        Filters per layer, in row order.
    shards : int
        Number of shards (>= 1); shards may be empty when there are more shards than layers.

    Returns
    -------
    list of (first_layer, end_layer)
        Shard ``k`` gets the layers whose first row falls in ``[k*T/shards, (k+1)*T/shards)``.
    """
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    n = np.asarray(n_filters, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(n)[:-1]]) if n.size else np.zeros(0, np.int64)
    total = int(n.sum())
    bounds = [int(np.searchsorted(starts * shards, k * total, side="left")) for k in range(shards)] + [n.size]
    bounds[0] = 0
    return [(bounds[k], bounds[k + 1]) for k in range(shards)]


def parse_scatteritem(item: str) -> tuple[int, int]:
    """Snakemake's scatter item ``"3-of-8"`` as ``(2, 8)``: zero-based shard index and shard count.

    Parameters
    ----------
    item : str
        ``"K-of-N"`` with K one-based (converted with ``str``).

    Returns
    -------
    index, count : int
        ``K - 1`` and ``N`` (not range-checked).

    Raises
    ------
    ValueError
        If ``item`` is not of the form ``"K-of-N"``.

    Examples
    --------
    >>> parse_scatteritem("3-of-8")
    (2, 8)
    """
    m = re.fullmatch(r"(\d+)-of-(\d+)", str(item))
    if not m:
        raise ValueError(f"bad scatter item {item!r}, expected 'K-of-N'")
    return int(m.group(1)) - 1, int(m.group(2))


def lane_block_rows(block_rows: int, lanes: int) -> int:
    """Rows per read block of each of ``lanes`` lanes: ``block_rows`` shared out (at least 65,536
    rows), so a job's read buffers take about the same memory whatever its threads."""
    return block_rows if lanes <= 1 else max(block_rows // lanes, min(block_rows, 1 << 16))


def plan_blocks(
    row_start: np.ndarray, row_end: np.ndarray, block_rows: int | None = None, breaks=()
) -> list[tuple[int, int, int, int]]:
    """Group consecutive layers into read blocks.

    Parameters
    ----------
    row_start, row_end : (L,) int
        Row range of each layer (``row_end`` exclusive), in row order.
    block_rows : int, optional
        Most rows per block; a layer with more rows is a block by itself. None: the config
        default of ``stream.block_rows`` (the schema's).
    breaks : sequence of int, optional
        Rows where the file's bytes stop following each other (:meth:`BlockReader.breaks`): no
        block reaches across one except a layer that does, which is then a block by itself (so
        that every other block can be mapped from the file in one piece).

    Returns
    -------
    list of (row_a, row_b, first_layer, end_layer)
        Rows ``[row_a, row_b)`` hold layers ``first_layer .. end_layer - 1``.
    """
    from bisect import bisect_right

    if block_rows is None:
        block_rows = int(schema_default("stream.block_rows"))
    s = np.asarray(row_start, dtype=np.int64).tolist()
    e = np.asarray(row_end, dtype=np.int64).tolist()
    br = sorted(int(r) for r in breaks)

    def across(a: int, b: int) -> bool:  # a break strictly inside rows [a, b)
        j = bisect_right(br, a)
        return j < len(br) and br[j] < b

    out = []
    first = 0
    for i in range(len(s)):
        if i > first and (e[i] - s[first] > block_rows or (br and across(s[first], e[i]))):
            out.append((s[first], e[i - 1], first, i))
            first = i
        if br and i == first and across(s[i], e[i]):  # the layer itself reaches across a break
            out.append((s[i], e[i], i, i + 1))
            first = i + 1
    if len(s) > first:
        out.append((s[first], e[-1], first, len(s)))
    return out


# ---------------------------------------------------------------------------------------------
# Reading


def _direct_spans(ds) -> tuple[str, object] | None:
    """How to read rows of ``ds`` straight from the file, or None (then h5py reads them).

    Returns ``("contiguous", offset)`` or ``("chunked", (chunk_rows, offsets))`` where
    ``offsets[k]`` is the file offset of chunk ``k`` (-1 when not allocated).
    """
    if (
        ds.dtype.str not in DIRECT_DTYPES
        or ds.compression is not None
        or ds.shuffle
        or ds.fletcher32
        or ds.scaleoffset is not None
        or ds.external
    ):
        return None
    if ds.id.get_create_plist().get_nfilters():
        return None
    if ds.chunks is None:
        off = ds.id.get_offset()
        return None if off is None else ("contiguous", int(off))
    if tuple(ds.chunks[1:]) != tuple(ds.shape[1:]):
        return None
    rows = int(ds.chunks[0])
    n_chunks = -(-int(ds.shape[0]) // rows) if ds.shape[0] else 0
    offsets = np.full(n_chunks, -1, np.int64)

    def visit(info):
        offsets[info.chunk_offset[0] // rows] = info.byte_offset

    try:
        ds.id.chunk_iter(visit)
    except Exception:  # older HDF5 without chunk iteration: one query per chunk
        try:
            for k in range(ds.id.get_num_chunks()):
                info = ds.id.get_chunk_info(k)
                offsets[info.chunk_offset[0] // rows] = info.byte_offset
        except Exception:
            return None
    return "chunked", (rows, offsets)


class BlockReader:
    """Read row blocks ``[a, b)`` of a DB's filter dataset as ``(b - a, d)`` arrays (``d = k²``
    values per filter, :attr:`width`, from the dataset's shape).

    With ``raw=True`` the rows come as stored (float32 or float64; float16 as uint16 bit
    patterns): the pass kernels convert each value as ``precision`` says. Otherwise they come as
    float32, the values the kernels start from (:func:`filterdb.scaling.values`).

    Parameters
    ----------
    path : str
        The HDF5 file.
    key : str
        The filter dataset (``filters`` or ``filter``).
    precision : {"float32", "float16", "float64"}
        How the kernels load a value (:data:`filterdb.kernels.PRECISIONS`); with ``raw=False``
        the float32 rows returned are rounded the same way (float16: straight from the stored
        value, as the study's ``astype(np.float16)``).
    direct : bool
        Read uncompressed little-endian float16/32/64 data straight from the file (default);
        False forces h5py.
    bypass_cache : bool
        With direct reads: read with ``O_DIRECT`` (Linux), past the page cache, into an aligned
        buffer. For a DB larger than memory, where every pass reads the disk anyway: a buffered
        read costs a core in the kernel (copying through the page cache, ~0.75 ns per byte here),
        which the passes' compute then cannot overlap; ``O_DIRECT`` costs almost none. Falls back
        to buffered reads where the file system refuses ``O_DIRECT``.
    map_blocks : bool
        :meth:`blocks` maps the file's pages (read-only views, no copy) for float32 rows that are
        one run of bytes in the file, when the page cache is not bypassed (environment
        ``FILTERDB_READ=pread``: never). False: always copy into the reader's buffers.
    raw : bool
        Return rows as stored (the passes) instead of converted to float32.

    Examples
    --------
    >>> with BlockReader("dataset.h5", "filters") as rd:          # doctest: +SKIP
    ...     for (a, b), x in rd.blocks([(0, 1000), (1000, 5000)]):
    ...         ...
    """

    def __init__(
        self,
        path: str,
        key: str,
        precision: str = "float32",
        direct: bool = True,
        bypass_cache: bool = False,
        map_blocks: bool = True,
        raw: bool = False,
    ):
        import h5py

        from .scaling import PRECISIONS

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.path, self.key, self.precision, self.raw = str(path), key, precision, raw
        self._prec = PRECISIONS[precision]
        self._h5 = h5py.File(self.path, "r")
        self._ds = self._h5[key]
        self.n_rows = int(self._ds.shape[0])
        self._dtype = self._ds.dtype.name
        if self._ds.dtype.kind != "f" or self._ds.dtype.itemsize not in (2, 4, 8):
            raise ValueError(f"{self.path}: dataset {key!r} has dtype {self._ds.dtype}, expected float16/32/64")
        #: dtype of a raw block: the stored one in native order (float16 as uint16 bit patterns)
        self.row_dtype = ROW_DTYPES[self._ds.dtype.itemsize]
        #: values per filter (``k²``) and the filters' shape, from the dataset's shape
        self.shape = FilterShape.of_dataset(self._ds.shape)
        self.width = self.shape.size
        self.row_bytes = self.shape.row_bytes(self.row_dtype.itemsize)
        self._spans = _direct_spans(self._ds) if direct else None
        self._fd = os.open(self.path, os.O_RDONLY) if self._spans else None
        self._dfd = None  # O_DIRECT descriptor
        self._bounce = None  # its page-aligned buffer (anonymous mmap)
        self._pool = None  # threads keeping several O_DIRECT requests in flight
        if self._fd is not None and bypass_cache and hasattr(os, "O_DIRECT"):
            try:
                self._dfd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
            except OSError:  # e.g. tmpfs: buffered reads
                self._dfd = None
        self._odirect = self._dfd is not None
        # blocks() maps the file's pages instead of copying them when it can (see _mapped)
        self._map = (
            map_blocks
            and self._fd is not None
            and not self._odirect
            and (raw or (precision == "float32" and self._dtype == "float32"))
            and os.environ.get("FILTERDB_READ", "").lower() != "pread"
        )
        self.mapped = 0  # blocks mapped so far
        self.bytes_read = 0

    @property
    def mode(self) -> str:
        """``contiguous``, ``chunked`` (read straight from the file, ``+O_DIRECT`` past the page
        cache) or ``h5py``."""
        if not self._spans:
            return "h5py"
        return self._spans[0] + ("+O_DIRECT" if self._odirect else "+mmap" if self.mapped else "")

    @property
    def dtype(self) -> str:
        """The stored dtype of the dataset (``float16``, ``float32`` or ``float64``)."""
        return self._dtype

    def close(self) -> None:
        """Close the file descriptor (direct reads) and the HDF5 file.

        Returns
        -------
        None
        """
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._dfd is not None:
            os.close(self._dfd)
            self._dfd = None
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._bounce is not None:
            self._bounce.close()
            self._bounce = None
        self._h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _pread(self, buf: memoryview, offset: int) -> None:
        if self._dfd is not None:
            try:
                return self._pread_uncached(buf, offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                os.close(self._dfd)  # alignment refused by this file system: buffered from now on
                self._dfd = None
                self._odirect = False
        got = 0
        while got < len(buf):
            k = os.preadv(self._fd, [buf[got:]], offset + got)
            if k <= 0:
                raise OSError(f"{self.path}: unexpected end of file at byte {offset + got}")
            got += k

    def _pread_uncached(self, buf: memoryview, offset: int) -> None:
        """``O_DIRECT`` read of the aligned pages holding ``[offset, offset + len(buf))`` into the
        bounce buffer, then one copy of the wanted bytes."""
        import mmap

        start = offset - offset % _ALIGN
        end = -(-(offset + len(buf)) // _ALIGN) * _ALIGN
        need = end - start
        if self._bounce is None or len(self._bounce) < need:
            if self._bounce is not None:
                self._bounce.close()
            self._bounce = mmap.mmap(-1, need)  # page-aligned
        want = offset - start + len(buf)
        with memoryview(self._bounce) as mv:
            # several requests in flight (O_DIRECT has no read-ahead): aligned pieces read at once
            step = max(_ALIGN, -(-need // _DIRECT_PIECES // _ALIGN) * _ALIGN)
            pieces = [(p, min(p + step, need)) for p in range(0, want, step)]
            if len(pieces) > 1:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(_DIRECT_PIECES, thread_name_prefix="filterdb-odirect")
                list(self._pool.map(lambda pq: self._read_piece(mv, start, *pq, want), pieces))
            else:
                self._read_piece(mv, start, 0, need, want)
            buf[:] = mv[offset - start : want]

    def _read_piece(self, mv: memoryview, start: int, p: int, q: int, want: int) -> None:
        """Bytes ``[p, q)`` of the bounce buffer from file offset ``start + p`` (stops at ``want``:
        a short read at the end of the file)."""
        got = p
        while got < min(q, want):
            k = os.preadv(self._dfd, [mv[got:q]], start + got)
            if k <= 0:
                raise OSError(f"{self.path}: unexpected end of file at byte {start + got}")
            got += k

    def breaks(self) -> list[int]:
        """Rows at which the file's bytes stop following each other (chunks not stored in
        order, or not allocated), when blocks are mapped (:meth:`blocks`); else none. Planning
        blocks around them (:func:`plan_blocks`) lets every block but a layer reaching across
        one be mapped in one piece.

        Returns
        -------
        list of int
        """
        if not self._map or self._spans[0] != "chunked":
            return []
        rows, offsets = self._spans[1]
        if offsets.size < 2:
            return []
        jump = (offsets[1:] != offsets[:-1] + rows * self.row_bytes) | (offsets[1:] < 0) | (offsets[:-1] < 0)
        return ((np.flatnonzero(jump) + 1) * rows).tolist()

    def _file_range(self, a: int, b: int) -> int | None:
        """File offset of rows ``[a, b)`` when they are one contiguous run of bytes in the file
        (a contiguous dataset, or allocated chunks that follow each other), else None."""
        kind, info = self._spans
        rb = self.row_bytes
        if kind == "contiguous":
            return info + a * rb
        rows, offsets = info
        k0, k1 = a // rows, (b - 1) // rows
        offs = offsets[k0 : k1 + 1]
        if (offs < 0).any() or (k1 > k0 and not np.all(np.diff(offs) == rows * rb)):
            return None
        return int(offs[0]) + (a - k0 * rows) * rb

    def _will_need(self, a: int, b: int, off: int | None = None) -> None:
        """Ask the kernel to read rows ``[a, b)`` into the page cache now, in large requests
        (``POSIX_FADV_WILLNEED``; a mapping's faults read around each page, far slower from disk
        than a sequential read); nothing for rows that are not one run of bytes."""
        off = self._file_range(a, b) if off is None and b > a else off
        if off is not None and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._fd, off, (b - a) * self.row_bytes, os.POSIX_FADV_WILLNEED)

    def _mapped(self, a: int, b: int) -> np.ndarray | None:
        """Rows ``[a, b)`` as a read-only view of the file's pages (``mmap``, pages mapped at
        once: ``MAP_POPULATE``), or None when they are not one contiguous run of bytes.

        A warm read then costs no copy: ``os.preadv`` copies every byte out of the page cache, and
        with one reader per compute thread that copy took a good part of the cores (it ran at half
        the speed of a lone copy beside the kernels). The map is released when the last view of
        it goes: a job holds a few blocks' pages mapped at a time, as many as its read buffers."""
        import mmap

        off = self._file_range(a, b)
        if off is None:
            return None
        start = off - off % mmap.ALLOCATIONGRANULARITY
        n = (b - a) * self.row_bytes
        self._will_need(a, b, off)
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mm = mmap.mmap(self._fd, off + n - start, flags=flags, prot=mmap.PROT_READ, offset=start)
        self.mapped += 1
        self.bytes_read += n
        x = np.frombuffer(mm, self.row_dtype, count=(b - a) * self.width, offset=off - start).reshape(b - a, self.width)
        return x if self.raw else self._convert(x)

    def _convert(self, x: np.ndarray) -> np.ndarray:
        from .scaling import values

        return values(x, self._prec)

    def _block(self, a: int, b: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``[a, b)`` for :meth:`blocks`: mapped when they can be, else read (into ``out``)."""
        x = self._mapped(a, b) if self._map and b > a else None
        return self.read(a, b, out) if x is None else x

    def read(self, a: int, b: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``[a, b)`` (written into ``out`` when given).

        Parameters
        ----------
        a, b : int
            Row range, ``b`` exclusive (``0 <= a <= b <= n_rows``).
        out : ndarray, optional
            C-contiguous buffer of dtype :attr:`row_dtype` and shape ``(>= b - a, d)``; its first
            ``b - a`` rows are filled. None: a new array.

        Returns
        -------
        (b - a, d) ndarray
            ``raw``: the rows as stored (:attr:`row_dtype`; a view of ``out`` when given);
            otherwise as float32 (:func:`filterdb.scaling.values`). Unallocated chunks read as 0.
        """
        out = np.empty((b - a, self.width), self.row_dtype) if out is None else out[: b - a]
        if b > a:
            if self._spans is None:
                self._read_h5py(a, b, out)
            else:
                self._read_direct(a, b, out)
        self.bytes_read += (b - a) * self.row_bytes
        return out if self.raw else self._convert(out)

    def _read_h5py(self, a: int, b: int, out: np.ndarray) -> None:
        block = np.asarray(self._ds[a:b]).reshape(b - a, self.width)
        out[...] = np.ascontiguousarray(block, np.float16).view(np.uint16) if block.dtype.itemsize == 2 else block

    def _read_direct(self, a: int, b: int, out: np.ndarray) -> None:
        mv = memoryview(out.reshape(-1).view(np.uint8))
        kind, info = self._spans
        rb = self.row_bytes
        if kind == "contiguous":
            self._pread(mv, info + a * rb)
            return
        rows, offsets = info
        r = a
        while r < b:
            k = r // rows
            c_end = min((k + 1) * rows, b)
            # merge chunks that follow each other in the file into one read
            k2 = k
            while c_end < b and offsets[k2 + 1] == offsets[k2] + rows * rb and offsets[k2] >= 0:
                k2 += 1
                c_end = min((k2 + 1) * rows, b)
            if offsets[k] < 0:  # never written: HDF5's fill value (0)
                out[r - a : c_end - a] = 0.0
            else:
                self._pread(mv[(r - a) * rb : (c_end - a) * rb], int(offsets[k]) + (r - k * rows) * rb)
            r = c_end

    def blocks(self, spans: list[tuple[int, int]], prefetch: int = 1) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
        """Yield ``((a, b), rows)`` for each span, reading up to ``prefetch`` spans ahead in a thread.

        Parameters
        ----------
        spans : list of (int, int)
            Row ranges ``[a, b)`` to read, in order (e.g. the first two fields of
            :func:`plan_blocks`).
        prefetch : int
            Spans read ahead in a background thread; below 1 (or fewer than 2 spans) reads in the
            calling thread.

        Yields
        ------
        (a, b) : (int, int)
            The span.
        rows : (b - a, d) float32 ndarray
            Its rows, as :meth:`read`, or (float32 rows that are one run of bytes in the file,
            page cache not bypassed) a read-only view of the file's mapped pages. With prefetching
            a copied block is a view of a reused buffer: it stays valid only until the next block
            is requested (copy it to keep it).

        Raises
        ------
        Exception
            Any error of the reading thread is raised in the consumer.
        """
        if prefetch < 1 or len(spans) < 2:
            for a, b in spans:
                yield (a, b), self._block(a, b)
            return
        q: queue.Queue = queue.Queue(maxsize=prefetch)
        stop = threading.Event()
        # prefetch + 2 buffers rotate: one being filled, up to `prefetch` queued, one in use. A
        # buffer is refilled only after the consumer asked for the block after it (generator), so
        # the rows it was given stay valid until it asks for the next block.
        rows = max(b - a for a, b in spans)
        buffers = [np.empty((rows, self.width), self.row_dtype) for _ in range(prefetch + 2)]  # untouched while mapping

        def produce():
            try:
                for i, (a, b) in enumerate(spans):
                    if stop.is_set():
                        return
                    if self._map and i + 1 < len(spans):  # the disk reads the next block meanwhile
                        self._will_need(*spans[i + 1])
                    q.put(((a, b), self._block(a, b, buffers[i % len(buffers)])))
                q.put(None)
            except BaseException as exc:  # hand the error to the consumer
                q.put(exc)

        t = threading.Thread(target=produce, name="filterdb-reader", daemon=True)
        t.start()
        try:
            while True:
                item = q.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while t.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    t.join(0.01)


def page_cache_fits(path: str) -> bool:
    """Whether the file fits in this machine's memory (``MemTotal``; True where unknown): if not,
    every pass reads it from disk and bypassing the page cache (``O_DIRECT``) saves the kernel's
    copy through it."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return os.path.getsize(path) <= int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return True


def drop_file_cache(path: str) -> bool:
    """Ask the kernel to drop the file's pages from the page cache (the next read comes from disk).

    Returns False where ``posix_fadvise`` is not available.

    Parameters
    ----------
    path : str
        The file (flushed with ``fdatasync`` first where available).

    Returns
    -------
    bool
        True if the advice was given (the kernel may still keep pages), False if not supported.
    """
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fdatasync(fd) if hasattr(os, "fdatasync") else None
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def progress(total: int, desc: str):
    """A tqdm bar on stderr (the rule's log), updated at most every 5 s.

    Parameters
    ----------
    total : int
        Number of filters to process.
    desc : str
        Label of the bar.

    Returns
    -------
    tqdm.tqdm
        Advance it with ``update(n_filters)``; close it (or use it as a context manager) when done.
    """
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit="filters", unit_scale=True, file=sys.stderr, mininterval=5.0, smoothing=0.1
    )
