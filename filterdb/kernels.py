"""Compiled inner loops (numba) for the coefficient passes, with exact numpy equivalents.

Why numba: the range and histogram passes compute 81 multiply-adds and a bin search per filter;
numpy needs ~20 full-length temporaries for that and ran at ~600 ns/filter, far above the cost of
reading the row (~5 ns). The kernels do the same IEEE operations in the same order as the numpy
reference (:func:`filterdb.scaling.coefficients`, :func:`filterdb.histogram.bin_index`; no
fastmath, so no reassociation or FMA contraction), so results are bit-identical with or without
numba (tested). Without numba installed the numpy reference is used.
"""

from __future__ import annotations

import numpy as np

from . import histogram, scaling

try:  # pragma: no cover - exercised by whichever branch is installed
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True)
    def _scale(w, out):
        for r in range(w.shape[0]):
            peak = 0.0
            for j in range(9):
                a = abs(np.float64(w[r, j]))
                if a > peak:
                    peak = a
            if peak == 0.0:
                peak = 1.0
            for j in range(9):
                out[r, j] = np.float64(w[r, j]) / peak

    @numba.njit(cache=True, nogil=True)
    def _coefficients(scaled, mean, comps, out):
        n = scaled.shape[0]
        k = comps.shape[0]
        d = np.empty(9)
        for r in range(n):
            for j in range(9):
                d[j] = scaled[r, j] - mean[j]
            for i in range(k):
                acc = d[0] * comps[i, 0]
                for j in range(1, 9):
                    acc += d[j] * comps[i, j]
                out[r, i] = acc

    @numba.njit(cache=True, nogil=True)
    def _histogram_columns(values, edges, out):
        """out[c, b] += count of values[:, c] in bin b (numpy's uniform-bin algorithm)."""
        bins = edges.shape[0] - 1
        first = edges[0]
        last = edges[bins]
        denom = last - first
        for r in range(values.shape[0]):
            for c in range(values.shape[1]):
                v = values[r, c]
                if not (v >= first and v <= last):
                    continue
                ind = int(((v - first) / denom) * bins)
                if ind == bins:
                    ind -= 1
                if v < edges[ind]:
                    ind -= 1
                if ind != bins - 1 and v >= edges[ind + 1]:
                    ind += 1
                out[c, ind] += 1


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True)
    def _layer_moments(w, eps, gram_all, gram_clean):
        n = w.shape[0]
        peaks = np.empty(n)
        absmax = 0.0
        for r in range(n):
            p = 0.0
            for j in range(9):
                a = abs(np.float64(w[r, j]))
                if a > p:
                    p = a
            peaks[r] = p
            if p > absmax:
                absmax = p
        thr = np.inf if absmax == 0.0 else eps * absmax
        s_all = np.zeros(9)
        s_clean = np.zeros(9)
        n_clean = 0
        for r in range(n):
            clean = not (peaks[r] < thr)
            if clean:
                n_clean += 1
            for j in range(9):
                v = np.float64(w[r, j])
                s_all[j] += v
                if clean:
                    s_clean[j] += v
        m_all = s_all / max(n, 1)
        m_clean = s_clean / max(n_clean, 1)
        d = np.empty(9)
        for r in range(n):
            clean = not (peaks[r] < thr)
            for j in range(9):
                d[j] = np.float64(w[r, j]) - m_all[j]
            for a in range(9):
                for b in range(a, 9):
                    gram_all[a, b] += d[a] * d[b]
            if clean:
                for j in range(9):
                    d[j] = np.float64(w[r, j]) - m_clean[j]
                for a in range(9):
                    for b in range(a, 9):
                        gram_clean[a, b] += d[a] * d[b]
        return absmax, n - n_clean, n_clean


def layer_moments(w: np.ndarray, eps: float) -> tuple[float, int, int, np.ndarray, np.ndarray]:
    """One pass over a layer's unscaled filters: ``(absmax, n_sparse, n_clean, G_all, G_clean)``.

    A filter is sparse when its peak ``max |w|`` is below ``eps * absmax`` (all filters of an
    all-zero layer are sparse); ``G`` are the 9x9 scatter matrices of the filters centred on their
    own mean (all filters / non-sparse filters). Needs numba (the numpy reference is
    :func:`filterdb.quality.layer_quality`)."""
    w = np.ascontiguousarray(w).reshape(-1, 9)
    g_all = np.zeros((9, 9))
    g_clean = np.zeros((9, 9))
    absmax, n_sparse, n_clean = _layer_moments(w, float(eps), g_all, g_clean)
    iu = np.triu_indices(9, 1)
    for g in (g_all, g_clean):
        g[iu[1], iu[0]] = g[iu]
    return float(absmax), int(n_sparse), int(n_clean), g_all, g_clean


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True)
    def _column_range(values, lo, hi):
        for r in range(values.shape[0]):
            for c in range(values.shape[1]):
                v = values[r, c]
                if v < lo[c]:
                    lo[c] = v
                if v > hi[c]:
                    hi[c] = v


def column_range(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column minimum and maximum (``values.min(0)``, ``values.max(0)``; exact)."""
    v = np.ascontiguousarray(values, dtype=np.float64)
    if not HAVE_NUMBA or v.shape[0] == 0 or np.isnan(v).any():
        return v.min(axis=0), v.max(axis=0)
    lo = np.full(v.shape[1], np.inf)
    hi = np.full(v.shape[1], -np.inf)
    _column_range(v, lo, hi)
    return lo, hi


def scale_filters(w: np.ndarray) -> np.ndarray:
    """Same as :func:`filterdb.scaling.scale_filters`, compiled when numba is available."""
    if not HAVE_NUMBA:
        return scaling.scale_filters(w)
    w = np.ascontiguousarray(w).reshape(-1, 9)
    out = np.empty(w.shape, np.float64)
    _scale(w, out)
    return out


def coefficients(scaled: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Same as :func:`filterdb.scaling.coefficients`, compiled when numba is available."""
    if not HAVE_NUMBA:
        return scaling.coefficients(scaled, mean, components)
    s = np.ascontiguousarray(scaled, dtype=np.float64)
    c = np.ascontiguousarray(components, dtype=np.float64)
    out = np.empty((s.shape[0], c.shape[0]))
    _coefficients(s, np.ascontiguousarray(mean, dtype=np.float64), c, out)
    return out


def histogram_columns(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts ``(columns, bins)`` of each column of ``values`` over ``edges`` (numpy convention)."""
    edges = np.ascontiguousarray(edges, dtype=np.float64)
    v = np.ascontiguousarray(values, dtype=np.float64)
    if not HAVE_NUMBA:
        cell = np.broadcast_to(np.arange(v.shape[1]), v.shape)
        return histogram.histogram_cells(v, cell, v.shape[1], edges)
    out = np.zeros((v.shape[1], edges.size - 1), np.int64)
    _histogram_columns(v, edges, out)
    return out
