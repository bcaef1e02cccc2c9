"""Histograms with numpy's bin convention, vectorised over many (layer, coefficient) cells."""

from __future__ import annotations

import numpy as np


def uniform_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """The edges ``np.histogram(a, bins, range=(lo, hi))`` uses."""
    if hi == lo:  # numpy widens a degenerate range by 0.5 on each side
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1, endpoint=True, dtype=np.float64)


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value exactly as ``np.histogram`` with uniform bins assigns it.

    Values outside ``[edges[0], edges[-1]]`` get -1. The last bin includes the right edge.
    """
    a = np.asarray(values, dtype=np.float64)
    bins = edges.size - 1
    first, last = edges[0], edges[-1]
    keep = (a >= first) & (a <= last)
    idx = np.full(a.shape, -1, dtype=np.intp)
    v = a[keep]
    f = ((v - first) / (last - first)) * bins
    ind = f.astype(np.intp)
    ind[ind == bins] -= 1
    ind[v < edges[ind]] -= 1
    inc = (v >= edges[ind + 1]) & (ind != bins - 1)
    ind[inc] += 1
    idx[keep] = ind
    return idx


def histogram_cells(values: np.ndarray, cell: np.ndarray, n_cells: int, edges: np.ndarray) -> np.ndarray:
    """Counts ``(n_cells, bins)`` of ``values`` falling in ``cell`` (same shape as values)."""
    bins = edges.size - 1
    idx = bin_index(values, edges)
    ok = idx >= 0
    flat = np.asarray(cell, dtype=np.intp)[ok] * bins + idx[ok]
    return np.bincount(flat, minlength=n_cells * bins).reshape(n_cells, bins).astype(np.int64)
