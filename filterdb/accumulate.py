"""The drivers of the streamed passes and the gathering of their per-shard parts.

:func:`run_pass` streams the rows of a pass's layers once, block by block
(:mod:`filterdb.stream`), lane by lane in threads, and hands every block to the pass
(:mod:`filterdb.passes`); :func:`run_rows` does the same over rows held in memory (one model:
``inspect``, ``compare``). A part holds only its shard's layers (the layer as first axis) and the
shard's whole-shard outputs. :func:`gather_parts` streams the parts one at a time into the
gathered arrays, each output combined by its rule in the registry of statistics
(:mod:`filterdb.statistics`): per-layer entries placed by layer number, fine cell histograms added
into a ``.npy`` a window at a time (:mod:`filterdb.cellhist`), sums added exactly, ranges by
minimum / maximum; so its memory does not grow with the number of shards.

The pass classes, their settings and the memory estimates are re-exported here for callers of
earlier versions (:mod:`filterdb.passes`, :mod:`filterdb.memory`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import compiled
from . import statistics as registry
from .cellhist import CellHistFile, add_records, write_cell_hist
from .memory import estimate_mem_mb, estimate_single_job_mb
from .passes import (
    PASSES,
    QUALITY_FIELDS,
    HistPass,
    NonFiniteError,
    PassSettings,
    RangePass,
    SumsPass,
    _Pass,
    eps_grid,
    fixed_range,
    make_pass,
    pass_dims,
)
from .results import Plan, load_part
from .stream import BlockReader, lane_block_rows, plan_blocks, plan_shards, progress

__all__ = [
    "PASSES",
    "QUALITY_FIELDS",
    "CellHistFile",
    "HistPass",
    "NonFiniteError",
    "PassSettings",
    "RangePass",
    "SumsPass",
    "basis_from_parts",
    "coefficient_range",
    "eps_grid",
    "estimate_mem_mb",
    "estimate_single_job_mb",
    "fixed_range",
    "gather_parts",
    "lane_block_rows",
    "make_pass",
    "pass_dims",
    "range_from_parts",
    "run_pass",
    "run_rows",
    "run_shard",
    "shard_totals",
]


def run_pass(path: str, key: str, pas: _Pass, desc: str = "pass", layer_names=None) -> dict[str, np.ndarray]:
    """Stream the rows of the pass's layers once and return its arrays plus ``layer``.

    With ``settings.threads`` > 1 the layers are cut into that many contiguous lanes of about
    equal filter count (:func:`filterdb.stream.plan_shards`); each lane streams its own rows with
    its own reader and kernel thread into its slice of the pass's arrays. Every layer is still
    summed row by row in one thread, so the results do not depend on the threads.

    Parameters
    ----------
    path, key : str
        The DB file and its filter dataset.
    pas : pass object from :func:`make_pass`
    desc : str
        Label of the progress bar and the timing line on stderr.
    layer_names : callable, optional
        ``layer_names(global_layer) -> str`` for error messages.
    """
    plan, lo, hi, s = pas.plan, pas.lo, pas.hi, pas.s
    t0 = time.perf_counter()
    total = int(plan.n_filters[lo:hi].sum())
    bar = progress(total, desc) if s.progress and total else None
    threads = max(1, int(s.threads))
    bounds = [(lo + a, lo + b) for a, b in plan_shards(plan.n_filters[lo:hi], threads) if b > a]
    lanes = [pas.lane(a, b) for a, b in bounds] if len(bounds) > 1 else [pas]
    block_rows = lane_block_rows(s.block_rows, len(lanes))
    lock = threading.Lock()

    def stream(lane: _Pass) -> BlockReader:
        with BlockReader(path, key, precision=s.precision, bypass_cache=s.bypass_cache, raw=True) as rd:
            if rd.width != plan.width:
                raise ValueError(
                    f"{path}: dataset '{key}' holds {rd.shape.label} filters ({rd.width} values), but the layer plan "
                    f"was made for {plan.width} values per filter: rerun the layer table of this DB"
                )
            rs, re_ = plan.row_start[lane.lo : lane.hi], plan.row_end[lane.lo : lane.hi]
            blocks = plan_blocks(rs, re_, block_rows, breaks=rd.breaks())
            read = rd.blocks([(a, b) for a, b, _, _ in blocks])
            for (_, _, first, end), ((a, b), x) in zip(blocks, read):
                lane.begin_block(first, end)
                lane.block(x, a, np.arange(first, end))
                lane.end_block(first, end)
                if bar is not None:
                    with lock:
                        bar.update(b - a)
        return rd

    blas = _blas_limit(1)  # one BLAS thread per compute thread: no oversubscription
    try:
        if len(lanes) == 1:
            rd = stream(pas)
        else:
            with ThreadPoolExecutor(len(lanes), thread_name_prefix="filterdb-lane") as pool:
                rd = list(pool.map(stream, lanes))[0]
            pas.join(lanes)
    finally:
        if blas is not None:
            blas.restore_original_limits()
        if bar is not None:
            bar.close()
    if isinstance(pas, SumsPass):
        pas.check_finite(layer_names)
    out = {"layer": np.arange(lo, hi, dtype=np.int64)}
    out.update(pas.arrays())
    dt = time.perf_counter() - t0
    print(
        f"{desc}: {hi - lo} layers, {total} filters in {dt:.2f} s "
        f"({dt / max(total, 1) * 1e9:.0f} ns/filter, {len(lanes)} thread(s), read: {rd.mode}, "
        f"{rd.dtype} ({rd.row_bytes} B/filter) loaded as {s.precision} in the kernels, "
        f"kernels: {compiled.load().mode})",
        file=sys.stderr,
    )
    return out


def run_rows(rows: np.ndarray, pas: _Pass, layer_names=None) -> dict[str, np.ndarray]:
    """The pass ``pas`` over filter rows held in memory (one model's weights: ``filterdb inspect``
    and ``compare``), block by block as :func:`run_pass` streams them from a DB: the same kernels
    and order of operations, so the numbers equal those of a DB holding these rows.

    Parameters
    ----------
    rows : (N, d) ndarray
        float16, float32 or float64 rows (as a DB would store them), numbered as the pass's plan
        numbers them (``row_start`` / ``row_end``).
    pas : pass object from :func:`make_pass`
    layer_names : callable, optional
        ``layer_names(global_layer) -> str`` for error messages.

    Returns
    -------
    dict of ndarray
        As :func:`run_pass`: ``layer`` and the pass's arrays.
    """
    plan, lo, hi = pas.plan, pas.lo, pas.hi
    x = np.asarray(rows)
    if x.dtype not in (np.float16, np.float32, np.float64):
        raise ValueError(f"filter rows of dtype {x.dtype}: expected float16, float32 or float64")
    x = np.ascontiguousarray(x.reshape(x.shape[0], -1) if x.ndim != 2 else x)
    if x.shape[1] != plan.width:
        raise ValueError(f"filter rows of {x.shape[1]} values, the layer plan has {plan.width} per filter")
    if x.dtype == np.float16:  # the kernels read float16 as its bit patterns
        x = x.view(np.uint16)
    rs, re_ = plan.row_start[lo:hi], plan.row_end[lo:hi]
    for a, b, first, end in plan_blocks(rs, re_, max(1, int(pas.s.block_rows))):
        pas.begin_block(first, end)
        pas.block(x[a:b], a, np.arange(first, end))
        pas.end_block(first, end)
    if isinstance(pas, SumsPass):
        pas.check_finite(layer_names)
    out = {"layer": np.arange(lo, hi, dtype=np.int64)}
    out.update(pas.arrays())
    return out


def _blas_limit(n: int):
    """Limit BLAS (orthogonality's products) to ``n`` threads while a pass runs: a shard job owns
    its cores, and BLAS threads competing with the other jobs made orthogonality several times
    slower. None when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return None
    return threadpool_limits(limits=n, user_api="blas")


def run_shard(
    db_path: str,
    key: str,
    plan: Plan,
    kind: str,
    *,
    shard: int = 0,
    shards: int = 1,
    settings: PassSettings | None = None,
    basis=None,
    edges=None,
    layer_names=None,
    cell_sink=None,
) -> dict[str, np.ndarray]:
    """One pass over the layers of shard ``shard`` of ``shards``: the part's arrays.

    Parameters
    ----------
    db_path, key : str
        The DB and its filter dataset.
    plan : Plan
    kind : {"sums", "range", "hist"}
    shard, shards : int
        Zero-based shard index and shard count (:func:`filterdb.stream.plan_shards`).
    settings : PassSettings
    basis : (mean (d,), components (d, d)), for range and hist
    edges : (bins + 1,) coarse histogram edges, for hist
    layer_names : callable, optional
        ``layer_names(global_layer) -> str`` for error messages.
    cell_sink : str, optional
        hist pass: file for the fine cell histograms (records of ``(d, fine_bins)`` uint32, ids in
        ``part__cell``); None keeps them in memory (``part__cell_counts``).
    """
    settings = settings or PassSettings()
    lo, hi = plan_shards(plan.n_filters, shards)[shard]
    pas = make_pass(kind, plan, lo, hi, settings, basis=basis, edges=edges, cell_sink=cell_sink)
    return run_pass(db_path, key, pas, desc=f"{kind} {shard + 1}/{shards}", layer_names=layer_names)


# ---------------------------------------------------------------------------------------------
# Gathering


def shard_totals(part: dict) -> dict[str, np.ndarray]:
    """The whole-shard outputs of a part (exact sums, minimum / maximum, edges and grids: the
    registry's ``sum`` / ``min`` / ``max`` / ``same`` outputs): the workflow keeps those of the sums
    and range parts in small files of their own (``stats/totals/{pass}/{shard}.npz``), so that
    rerunning a later pass (e.g. other histogram bins) does not need the earlier passes' parts."""
    names = {n for p in PASSES for n in registry.totals(p)}
    return {k: v for k, v in part.items() if k in names}


def gather_parts(
    part_paths: list,
    n_layers: int,
    n_cells: int = 0,
    cell_hist_path=None,
    cell_files: list | None = None,
    window_cells: int = 2048,
    cells: bool = True,
) -> dict[str, np.ndarray]:
    """Combine shard parts, reading them one at a time.

    Each array is combined by its output's rule in the registry of statistics
    (:mod:`filterdb.statistics`): per-layer arrays placed by their ``layer`` numbers (each layer
    exactly once); whole-shard arrays summed, combined by minimum / maximum or checked equal
    (edges, pairs, grids). Fine cell histograms (ids in
    ``part__cell``; records in ``part__cell_counts`` or in the part's file of ``cell_files``) are
    added by cell id: with ``cell_hist_path`` into a ``(n_cells, d, fine_bins)`` uint32 ``.npy``
    written ``window_cells`` cells at a time (memory: one window, whatever the number of cells or
    shards), else into an in-memory array returned as ``cell_counts``.

    Parameters
    ----------
    part_paths : list of str or dict
        ``.npz`` parts (or the dicts of in-process runs).
    n_layers, n_cells : int
    cell_hist_path : str, optional
        Output ``.npy`` of the fine cell histograms (written completely; the caller renames it).
    cell_files : list of (str or None), optional
        Per part, the file holding its fine cell histogram records (hist pass ``cell_sink``).
    cells : bool
        False: leave the fine cell histograms out (rule ``gather_hist``; ``gather_cells`` writes them).

    Returns
    -------
    dict of gathered arrays (the outputs' names: no part prefix).

    Raises
    ------
    ValueError
        On a part holding an array that is not an output of the registry, or layers covered other
        than once.
    """
    out: dict[str, np.ndarray] = {}
    seen = np.zeros(n_layers, np.int64)
    records = []  # per part: (ids, in-memory records or None, records file or None)
    fine_bins = 0
    for j, path in enumerate(part_paths):
        part = load_part(path) if isinstance(path, (str, os.PathLike)) else _MemoryPart(path)
        layer = part["layer"]
        if layer.size and (layer.min() < 0 or layer.max() >= n_layers):
            raise ValueError(f"{path}: layer numbers outside 0..{n_layers - 1}")
        seen[layer] += 1
        whole = layer.size == n_layers and bool((layer == np.arange(n_layers)).all())
        for name in part.files:
            if name == "layer":
                continue
            rule = registry.output(name)
            if rule is None:
                raise ValueError(f"{path}: {name!r} is not a statistic of this filterdb (a part of another version?)")
            if rule.combine == "cells":
                continue
            arr = part[name]
            if rule.combine != "layer":
                registry.combine(out, name, arr, path)
            elif name not in out and whole:
                out[name] = np.asarray(arr)  # one part holding every layer in order: no copy
            else:
                if name not in out:
                    out[name] = np.zeros((n_layers,) + arr.shape[1:], arr.dtype)
                out[name][layer] = arr
        if cells and "part__cell" in part.files:
            ids = np.asarray(part["part__cell"], np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= n_cells):
                raise ValueError(f"{path}: cell ids outside 0..{n_cells - 1}")
            mem = part["part__cell_counts"] if "part__cell_counts" in part.files else None
            src = None if mem is not None else (cell_files[j] if cell_files else None)
            if mem is None and src is None and ids.size:
                raise ValueError(f"{path}: fine cell histograms are in a separate file: pass cell_files")
            records.append((ids, mem, src))
        part.close()
    if not np.all(seen == 1):
        bad = np.flatnonzero(seen != 1)
        raise ValueError(
            f"shards cover layer {int(bad[0])} {int(seen[bad[0]])} times; each of the "
            f"{n_layers} layers must be covered once ({bad.size} layers wrong)"
        )
    if records:
        fine_bins = int(out["cell_edges"].size - 1)
        width = int(out["counts"].shape[1])  # the coefficients per filter (d) of the coarse histograms
        if cell_hist_path is None:
            cells = np.zeros((n_cells, width, fine_bins), np.uint32)
            add_records(cells, 0, n_cells, records, fine_bins)
            out["cell_counts"] = cells
        else:
            write_cell_hist(cell_hist_path, n_cells, fine_bins, records, max(1, int(window_cells)), width)
    return out


class _MemoryPart:
    """A part held in memory (in-process runs), read like a lazily loaded ``.npz``."""

    def __init__(self, arrays):
        self._a = arrays
        self.files = list(arrays)

    def __getitem__(self, name):
        return self._a[name]

    def close(self):
        pass


def _part_totals(part_paths: list, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Only the whole-shard outputs ``names`` (part names) of the parts, combined by their rules
    (each part opened lazily: the per-layer arrays are not read)."""
    out: dict[str, np.ndarray] = {}
    for path in part_paths:
        part = load_part(path) if isinstance(path, (str, os.PathLike)) else _MemoryPart(path)
        for name in names:
            if name not in part.files:
                raise ValueError(f"{path}: no {name!r} in this shard part (made by an older filterdb? rerun the pass)")
            registry.combine(out, name, np.asarray(part[name]), path)
        part.close()
    return out


def basis_from_parts(part_paths: list):
    """The global PCA from the sums parts alone (their exact sums): equal to
    :func:`filterdb.pca.global_pca` of the gathered sums, so a range or hist job need not wait
    for the gather.

    Parameters
    ----------
    part_paths : list of str or dict
        All sums parts.

    Returns
    -------
    filterdb.pca.PCA
    """
    from .pca import pca_from_limbs

    t = _part_totals(part_paths, ("total__count", "total__sum_limbs", "total__outer_limbs"))
    return pca_from_limbs(int(t["count"]), t["sum_limbs"], t["outer_limbs"])


def range_from_parts(part_paths: list) -> tuple[float, float]:
    """The shared coefficient range from the range parts alone (equal to
    :func:`coefficient_range` of the gathered ``cmin``/``cmax``)."""
    t = _part_totals(part_paths, ("min__coef_min", "max__coef_max"))
    return float(t["coef_min"]), float(t["coef_max"])


def coefficient_range(cmin: np.ndarray, cmax: np.ndarray) -> tuple[float, float]:
    """The shared range ``[min, max]`` over all coefficients of all layers."""
    return float(np.min(cmin)), float(np.max(cmax))
