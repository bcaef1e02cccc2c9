"""Streamed per-layer sufficient statistics, sharded and gathered.

One pass reads a shard's filter rows in blocks of whole layers and feeds each layer to a set of
*accumulators*. Every accumulator keeps one entry per layer (first array axis = layer), so the
gathered result is independent of how the rows were sharded: a layer is always processed whole, by
the same code, and gathering concatenates per-layer entries in layer order. Group statistics are
sums of their layers' entries, taken later without re-reading filters.

Passes (each reads the rows once):

1. ``sums``  — count, sum and outer-product sum of the peak-scaled filters (float64), plus
   the per-layer quality metrics on unscaled weights when enabled.
2. ``range`` — per-layer min/max of each PCA coefficient under the global basis.
3. ``hist``  — per-layer ``9 x bins`` coefficient histograms over the shared range.

Gathered files (``{results}/stats/``), documented in the README:

* ``layers.tsv``  — the layer table (:func:`filterdb.db.layer_table`): ``layer``, ``row_start``,
  ``row_end``, ``n_filters``, ``model_id``, ``conv_depth``, ``conv_depth_norm``, meta columns.
* ``sums.npz``    — ``n`` (L,), ``sum`` (L, 9), ``outer`` (L, 9, 9).
* ``range.npz``   — ``cmin`` (L, 9), ``cmax`` (L, 9).
* ``hist.npz``    — ``counts`` (L, 9, bins) int64, ``edges`` (bins + 1,).
"""

from __future__ import annotations

import re
import sys
import time
from typing import Callable, Iterator

import h5py
import numpy as np
import pandas as pd

from .db import read_rows

DEFAULT_BLOCK_ROWS = 1 << 20


# ---------------------------------------------------------------------------------------------
# Shards


def plan_shards(n_filters: np.ndarray, shards: int) -> list[tuple[int, int]]:
    """Split layers ``0..L-1`` into ``shards`` contiguous layer ranges of about equal filter count.

    Shard ``k`` gets the layers whose first row (cumulative count) falls in
    ``[k*T/shards, (k+1)*T/shards)``; ranges may be empty when there are more shards than layers.
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
    """``"3-of-8"`` → (2, 8): zero-based shard index and shard count."""
    m = re.fullmatch(r"(\d+)-of-(\d+)", str(item))
    if not m:
        raise ValueError(f"bad scatter item {item!r}, expected 'K-of-N'")
    k, n = int(m.group(1)), int(m.group(2))
    return k - 1, n


def layer_blocks(layers: pd.DataFrame, block_rows: int = DEFAULT_BLOCK_ROWS) -> Iterator[tuple[int, int, list[int]]]:
    """Group consecutive layers into read blocks ``(row_a, row_b, positions)`` of at most
    ``block_rows`` rows (a larger layer is a block by itself)."""
    s = layers["row_start"].to_numpy()
    e = layers["row_end"].to_numpy()
    pos: list[int] = []
    a = b = 0
    for i in range(len(layers)):
        if pos and e[i] - a > block_rows:
            yield a, b, pos
            pos = []
        if not pos:
            a = int(s[i])
        pos.append(i)
        b = int(e[i])
    if pos:
        yield a, b, pos


def iter_layers(path: str, key: str, layers: pd.DataFrame, block_rows: int = DEFAULT_BLOCK_ROWS,
                progress: bool = True, desc: str = "layers") -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(position, weights (n, 9) float32)`` for each layer of ``layers``, reading only
    their rows, block by block."""
    total = int(layers["n_filters"].sum())
    bar = _progress(total, desc) if progress else None
    s = layers["row_start"].to_numpy()
    e = layers["row_end"].to_numpy()
    with h5py.File(path, "r") as f:
        ds = f[key]
        for a, b, positions in layer_blocks(layers, block_rows):
            block = read_rows(ds, a, b)
            for i in positions:
                yield i, block[s[i] - a:e[i] - a]
            if bar is not None:
                bar.update(int(sum(e[i] - s[i] for i in positions)))
    if bar is not None:
        bar.close()


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="filters", unit_scale=True, file=sys.stderr,
                mininterval=5.0, smoothing=0.1)


# ---------------------------------------------------------------------------------------------
# Accumulators: one entry per layer (first axis); arrays named "total__*" are summed over shards.


class SumsAccumulator:
    """Count, sum and outer-product sum of the peak-scaled filters of each layer (float64)."""

    needs_coefficients = False

    def __init__(self, n_layers: int):
        self.n = np.zeros(n_layers, np.int64)
        self.sum = np.zeros((n_layers, 9))
        self.outer = np.zeros((n_layers, 9, 9))

    def add(self, i: int, w: np.ndarray, scaled: np.ndarray, coef: np.ndarray | None, row: pd.Series) -> None:
        self.n[i] = scaled.shape[0]
        self.sum[i] = scaled.sum(axis=0)
        self.outer[i] = scaled.T @ scaled

    def arrays(self) -> dict[str, np.ndarray]:
        return {"n": self.n, "sum": self.sum, "outer": self.outer}


class RangeAccumulator:
    """Per-layer min and max of each PCA coefficient."""

    needs_coefficients = True

    def __init__(self, n_layers: int):
        self.cmin = np.full((n_layers, 9), np.inf)
        self.cmax = np.full((n_layers, 9), -np.inf)

    def add(self, i, w, scaled, coef, row) -> None:
        from .kernels import column_range

        self.cmin[i], self.cmax[i] = column_range(coef)

    def arrays(self):
        return {"cmin": self.cmin, "cmax": self.cmax}


class HistogramAccumulator:
    """Per-layer ``9 x bins`` histograms of the coefficients over fixed edges (numpy convention)."""

    needs_coefficients = True

    def __init__(self, n_layers: int, edges: np.ndarray):
        self.edges = np.asarray(edges, dtype=np.float64)
        self.counts = np.zeros((n_layers, 9, self.edges.size - 1), np.int64)

    def add(self, i, w, scaled, coef, row) -> None:
        from .kernels import histogram_columns

        self.counts[i] = histogram_columns(coef, self.edges)

    def arrays(self):
        return {"counts": self.counts, "total__edges": self.edges}


class CellHistogramAccumulator:
    """Fine ``9 x fine_bins`` coefficient histograms per *cell* (one model's layers in one depth
    bin), summed over shards (``total__cell_counts``). Every model-level axis group and every depth
    group is a union of cells, so ridge plots (KDE from binned data) need no re-read; the cells
    depend only on the model ids and the depth binning."""

    needs_coefficients = True

    def __init__(self, n_layers: int, cell_of_layer: np.ndarray, n_cells: int, edges: np.ndarray):
        self.cell = np.asarray(cell_of_layer, dtype=np.intp)
        self.edges = np.asarray(edges, dtype=np.float64)
        self.counts = np.zeros((n_cells, 9, self.edges.size - 1), np.int64)

    def add(self, i, w, scaled, coef, row) -> None:
        from .kernels import histogram_columns

        self.counts[self.cell[i]] += histogram_columns(coef, self.edges)

    def arrays(self):
        return {"total__cell_counts": self.counts, "total__cell_edges": self.edges}


class DensityAccumulator:
    """2-D histograms of coefficient pairs over a fixed square (analysis.md §7), summed over shards
    (``total__density``: pairs x bins x bins, first index = first coefficient of the pair)."""

    needs_coefficients = True

    def __init__(self, n_layers: int, pairs: list[tuple[int, int]], bins: int = 512,
                 extent: tuple[float, float] = (-3.3, 3.3)):
        self.pairs = [tuple(int(v) for v in p) for p in pairs]
        self.bins = int(bins)
        self.extent = (float(extent[0]), float(extent[1]))
        self.density = np.zeros((len(self.pairs), self.bins, self.bins), np.float64)

    def add(self, i, w, scaled, coef, row) -> None:
        from fast_histogram import histogram2d

        r = [self.extent, self.extent]
        for k, (a, b) in enumerate(self.pairs):
            self.density[k] += histogram2d(coef[:, a], coef[:, b], bins=self.bins, range=r)

    def arrays(self):
        edges = np.linspace(self.extent[0], self.extent[1], self.bins + 1)
        return {"total__density": self.density, "total__density_pairs": np.array(self.pairs, np.int64).reshape(-1, 2),
                "total__density_edges": edges}


def run_pass(path: str, key: str, layers: pd.DataFrame, accumulators: list,
             basis: tuple[np.ndarray, np.ndarray] | None = None, block_rows: int = DEFAULT_BLOCK_ROWS,
             progress: bool = True, desc: str = "pass") -> dict[str, np.ndarray]:
    """Stream the rows of ``layers`` once, feeding every accumulator; return their arrays plus
    ``layer`` (the global layer numbers covered)."""
    from .kernels import coefficients, scale_filters  # numba: imported only by the passes

    need_coef = any(getattr(a, "needs_coefficients", False) for a in accumulators)
    if need_coef and basis is None:
        raise ValueError("coefficient accumulators need the PCA basis (mean, components)")
    t0 = time.perf_counter()
    for i, w in iter_layers(path, key, layers, block_rows, progress, desc):
        scaled = scale_filters(w)
        coef = coefficients(scaled, basis[0], basis[1]) if need_coef else None
        row = layers.iloc[i]
        for acc in accumulators:
            acc.add(i, w, scaled, coef, row)
    out = {"layer": layers["layer"].to_numpy(np.int64)}
    for acc in accumulators:
        for name, arr in acc.arrays().items():
            if name in out:
                raise ValueError(f"two accumulators write {name!r}")
            out[name] = arr
    print(f"{desc}: {len(layers)} layers, {int(layers['n_filters'].sum())} filters in "
          f"{time.perf_counter() - t0:.2f} s", file=sys.stderr)
    return out




def gather(parts: list[dict[str, np.ndarray]], n_layers: int) -> dict[str, np.ndarray]:
    """Combine shard results: per-layer arrays are placed by their ``layer`` number (every layer
    must appear exactly once); ``total__*`` arrays are summed (or checked equal, for edges)."""
    layer = np.concatenate([p["layer"] for p in parts]) if parts else np.zeros(0, np.int64)
    if layer.size != n_layers or not np.array_equal(np.sort(layer), np.arange(n_layers)):
        raise ValueError(f"shards cover {layer.size} layer entries, expected each of {n_layers} layers once")
    order = np.argsort(layer, kind="stable")
    out: dict[str, np.ndarray] = {}
    for name in parts[0]:
        if name == "layer":
            continue
        if name.startswith("total__"):
            if name.endswith("edges") or name.endswith("pairs"):
                out[name[7:]] = parts[0][name]
            else:
                out[name[7:]] = np.sum([p[name] for p in parts], axis=0)
        else:
            out[name] = np.concatenate([p[name] for p in parts])[order]
    return out






def coefficient_range(cmin: np.ndarray, cmax: np.ndarray) -> tuple[float, float]:
    """The shared range ``[min, max]`` over all 9 coefficients of all layers."""
    return float(np.min(cmin)), float(np.max(cmax))
