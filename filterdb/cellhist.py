"""The fine per-cell histograms' files: the hist pass's records and the gathered ``cell_hist.npy``.

A cell is one (model, depth bin) of the grids (docs/method.md §7). The hist pass closes a cell's
``(d, fine_bins)`` uint32 histogram once its last layer in the shard is processed and appends it
as a record to its shard's records file (ids kept in file order: ``part__cell``), or, when one job
runs the whole pass, writes it straight into its place in ``cell_hist.npy`` (:class:`CellHistFile`).
The gather adds the records by cell id into the ``(n_cells, d, fine_bins)`` ``.npy``, a window of
cells at a time, so its memory does not grow with the cells or the shards.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from .shape import STUDY


def _write_all(fd: int, arrays: list[np.ndarray], offset: int | None) -> None:
    """Write the contiguous ``arrays`` one after the other (``os.pwritev`` at ``offset``, or
    ``os.writev`` at the file position when None), from their memory, whatever the number of
    buffers per call allows and however short a write comes back."""
    views = [memoryview(a).cast("B") for a in arrays]
    step = max(1, min(getattr(os, "IOV_MAX", 1024), 1024))
    while views:
        batch = views[:step]
        k = os.writev(fd, batch) if offset is None else os.pwritev(fd, batch, offset)
        if offset is not None:
            offset += k
        while views and k >= len(views[0]):  # drop what was written
            k -= len(views[0])
            views.pop(0)
        if k:
            views[0] = views[0][k:]


class CellSink:
    """The file receiving closed fine cell histograms (records of ``(d, fine_bins)`` uint32) and
    their cell ids in file order; shared by the lanes of a pass (one lock)."""

    def __init__(self, path):
        self.fh = open(path, "wb")
        self.ids: list[np.ndarray] = []
        self.lock = threading.Lock()

    def put(self, ids: np.ndarray, pool: np.ndarray, slots: np.ndarray) -> None:
        """Append the records ``pool[slots]`` (cells ``ids``), written from the pool (no copy)."""
        with self.lock:
            self.fh.flush()
            _write_all(self.fh.fileno(), [pool[int(j)] for j in slots], None)
            self.ids.append(ids)

    def close(self) -> None:
        self.fh.close()


class CellHistFile:
    """A sink for the hist pass's closed cells that writes each record straight into its place in a
    ``(n_cells, d, fine_bins)`` uint32 ``.npy`` (cells never closed stay 0): no records file and no
    gather when one job runs the whole pass. A cell closed twice (by two lanes) is added to what
    is there. Shared by the lanes (one lock); the caller closes it."""

    def __init__(self, path, n_cells: int, fine_bins: int, width: int = STUDY.size):
        self.fh = open(path, "wb+")
        np.lib.format.write_array_header_1_0(
            self.fh, {"descr": np.dtype(np.uint32).str, "fortran_order": False, "shape": (n_cells, width, fine_bins)}
        )
        self.fh.flush()
        self.base = self.fh.tell()
        self.rec = int(width) * fine_bins * 4
        self.fh.truncate(self.base + n_cells * self.rec)  # zeros (a sparse file until written)
        self.fd = self.fh.fileno()
        self.written = np.zeros(n_cells, bool)
        self.ids: list[np.ndarray] = []
        self.lock = threading.Lock()

    def put(self, ids: np.ndarray, pool: np.ndarray, slots: np.ndarray) -> None:
        """Write the records ``pool[slots]`` of cells ``ids`` into their places, straight from the
        pool (one write per run of consecutive new cells, no copy)."""
        ids = np.asarray(ids, np.int64)
        slots = np.asarray(slots, np.int64)
        with self.lock:
            self.ids.append(ids)
            order = np.argsort(ids, kind="stable")
            ids, slots = ids[order], slots[order]
            fresh = ~self.written[ids]
            cut = np.flatnonzero((np.diff(ids) != 1) | (fresh[1:] != fresh[:-1])) + 1
            for run in np.split(np.arange(ids.size), cut):
                if not run.size:
                    continue
                if fresh[run[0]]:
                    off = self.base + int(ids[run[0]]) * self.rec
                    _write_all(self.fd, [pool[int(slots[j])] for j in run], off)
                    continue
                for j in run:  # closed before by another lane: add
                    off = self.base + int(ids[j]) * self.rec
                    old = np.frombuffer(os.pread(self.fd, self.rec, off), np.uint32)
                    os.pwrite(self.fd, (old + pool[int(slots[j])].reshape(-1)).tobytes(), off)
            self.written[ids] = True

    def close(self) -> None:
        self.fh.close()


def add_records(buf: np.ndarray, c0: int, c1: int, records, fine_bins: int) -> None:
    """Add every record whose cell lies in ``[c0, c1)`` into ``buf`` (cells ``c0..c1-1``). A part
    may hold a cell more than once (one record per lane of its job): those are added one by one."""
    width = buf.shape[1]
    rec_bytes = width * fine_bins * 4
    for ids, mem, src in records:
        sel = np.flatnonzero((ids >= c0) & (ids < c1))
        if not sel.size:
            continue
        if mem is not None:
            _add_into(buf, ids[sel] - c0, mem[sel])
            continue
        with open(src, "rb") as fh:
            # runs of consecutive records: one read each
            cuts = np.flatnonzero(np.diff(sel) != 1) + 1
            for run in np.split(sel, cuts):
                fh.seek(int(run[0]) * rec_bytes)
                data = np.fromfile(fh, np.uint32, count=run.size * width * fine_bins)
                data = data.reshape(run.size, width, fine_bins)
                _add_into(buf, ids[run] - c0, data)


def _add_into(buf: np.ndarray, rows: np.ndarray, data: np.ndarray) -> None:
    """``buf[rows] += data``, also when ``rows`` repeats a row."""
    if np.unique(rows).size == rows.size:
        buf[rows] += data
    else:
        np.add.at(buf, rows, data)


def write_cell_hist(path, n_cells: int, fine_bins: int, records, window: int, width: int) -> None:
    """Write the ``(n_cells, width, fine_bins)`` uint32 ``.npy`` window by window (file writes, no
    memory map: the job's memory is one window)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.dtype(np.uint32).str, "fortran_order": False, "shape": (n_cells, width, fine_bins)}
        )
        for c0 in range(0, n_cells, window):
            c1 = min(n_cells, c0 + window)
            buf = np.zeros((c1 - c0, width, fine_bins), np.uint32)
            add_records(buf, c0, c1, records, fine_bins)
            buf.tofile(fh)
