"""Histograms with numpy's bin convention, vectorised over many (layer, coefficient) cells."""

from __future__ import annotations

import numpy as np


def uniform_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """The edges ``np.histogram(a, bins, range=(lo, hi))`` uses.

    Parameters
    ----------
    lo, hi : float
        Range of the histogram. If ``hi == lo`` the range is widened to ``(lo - 0.5, hi + 0.5)``,
        as numpy does.
    bins : int
        Number of bins.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(bins + 1,)``, evenly spaced from ``lo`` to ``hi`` inclusive.

    Examples
    --------
    >>> uniform_edges(0.0, 1.0, 4)
    array([0.  , 0.25, 0.5 , 0.75, 1.  ])
    """
    if hi == lo:  # numpy widens a degenerate range by 0.5 on each side
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1, endpoint=True, dtype=np.float64)


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value exactly as ``np.histogram`` with uniform bins assigns it.

    Values outside ``[edges[0], edges[-1]]`` get -1. The last bin includes the right edge.

    Parameters
    ----------
    values : array_like
        Values to bin, any shape; converted to float64. NaN values compare false and get -1.
    edges : numpy.ndarray
        Uniform bin edges, shape ``(bins + 1,)``, as returned by :func:`uniform_edges`.

    Returns
    -------
    numpy.ndarray
        ``intp`` array of the same shape as ``values``: the bin index in ``[0, bins - 1]``, or -1 for
        values outside the edges (or NaN).

    Examples
    --------
    >>> bin_index(np.array([0.0, 0.3, 1.0, 2.0]), uniform_edges(0.0, 1.0, 4)).tolist()
    [0, 1, 3, -1]
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
    """Counts ``(n_cells, bins)`` of ``values`` falling in ``cell`` (same shape as values).

    Values outside the edges (see :func:`bin_index`) are not counted.

    Parameters
    ----------
    values : array_like
        Values to histogram, any shape; converted to float64.
    cell : array_like
        Integer cell index in ``[0, n_cells)`` of each value (e.g. a flattened (layer, coefficient)
        index); same shape as ``values``.
    n_cells : int
        Number of cells (rows of the result).
    edges : numpy.ndarray
        Uniform bin edges, shape ``(bins + 1,)``, as returned by :func:`uniform_edges`.

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(n_cells, bins)``: counts per cell and bin.
    """
    bins = edges.size - 1
    idx = bin_index(values, edges)
    ok = idx >= 0
    flat = np.asarray(cell, dtype=np.intp)[ok] * bins + idx[ok]
    return np.bincount(flat, minlength=n_cells * bins).reshape(n_cells, bins).astype(np.int64)
