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


# ---------------------------------------------------------------------------------------------
# Block kernels: one call per read block, looping over the block's layers inside the compiled
# code (no per-layer Python). A layer is given by its row range ``[ls[k], le[k])`` in the block
# and its position ``lp[k]`` in the per-layer output arrays. Every per-filter operation is the
# one of the reference functions above, in the same order, so each layer's results are
# bit-identical however the rows are split into blocks, shards or threads.


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True, inline="always")
    def _row_scale(x, r, s):
        """Peak-scale row r of x into s (float64); returns False when the row holds NaN/Inf."""
        peak = 0.0
        finite = True
        for j in range(9):
            v = np.float64(x[r, j])
            if not (v - v == 0.0):
                finite = False
            a = abs(v)
            if a > peak:
                peak = a
        if peak == 0.0:
            peak = 1.0
        for j in range(9):
            s[j] = np.float64(x[r, j]) / peak
        return finite

    @numba.njit(cache=True, nogil=True, inline="always")
    def _row_coef(s, mean, comps, d, c):
        for j in range(9):
            d[j] = s[j] - mean[j]
        for i in range(9):
            acc = d[0] * comps[i, 0]
            for j in range(1, 9):
                acc += d[j] * comps[i, j]
            c[i] = acc

    @numba.njit(cache=True, nogil=True, inline="always")
    def _bin(v, first, last, denom, bins, edges):
        """numpy's uniform-bin index of v (-1 when outside [first, last])."""
        if not (v >= first and v <= last):
            return -1
        ind = int(((v - first) / denom) * bins)
        if ind == bins:
            ind -= 1
        if v < edges[ind]:
            ind -= 1
        if ind != bins - 1 and v >= edges[ind + 1]:
            ind += 1
        return ind

    @numba.njit(cache=True, nogil=True)
    def sums_block(x, ls, le, lp, drop, n, s1, s2, nonfinite, first_bad):
        """Per layer: count, sum and upper-triangle outer-product sum of the peak-scaled filters,
        accumulated row by row in float64; rows with NaN/Inf are counted (``nonfinite``, first
        such row in ``first_bad``) and, with ``drop``, left out."""
        s = np.empty(9)
        for k in range(ls.shape[0]):
            p = lp[k]
            cnt = 0
            for r in range(ls[k], le[k]):
                if not _row_scale(x, r, s):
                    if nonfinite[p] == 0:
                        first_bad[p] = r
                    nonfinite[p] += 1
                    if drop:
                        continue
                cnt += 1
                for a in range(9):
                    s1[p, a] += s[a]
                    for b in range(a, 9):
                        s2[p, a, b] += s[a] * s[b]
            n[p] += cnt
            for a in range(9):
                for b in range(a + 1, 9):
                    s2[p, b, a] = s2[p, a, b]

    @numba.njit(cache=True, nogil=True)
    def range_block(x, ls, le, lp, drop, mean, comps, cmin, cmax):
        """Per layer: min and max of each PCA coefficient."""
        s = np.empty(9)
        d = np.empty(9)
        c = np.empty(9)
        for k in range(ls.shape[0]):
            p = lp[k]
            for r in range(ls[k], le[k]):
                if not _row_scale(x, r, s) and drop:
                    continue
                _row_coef(s, mean, comps, d, c)
                for i in range(9):
                    if c[i] < cmin[p, i]:
                        cmin[p, i] = c[i]
                    if c[i] > cmax[p, i]:
                        cmax[p, i] = c[i]

    @numba.njit(cache=True, nogil=True)
    def hist_block(x, ls, le, lp, drop, mean, comps, edges, counts, lcell, fedges, fcounts,
                   pairs, dlo, dhi, dbins, dens):
        """Per layer: coarse coefficient histograms ``counts[p, i, :]`` over ``edges``; per cell
        (``lcell[k]``, -1 = none): fine histograms over ``fedges``; and the 2-D histograms of the
        coefficient ``pairs`` over ``[dlo, dhi)^2`` with ``dbins`` bins (fast-histogram's rule:
        ``int((v - lo) * (bins / (hi - lo)))``, right edge excluded)."""
        s = np.empty(9)
        d = np.empty(9)
        c = np.empty(9)
        bins = edges.shape[0] - 1
        first = edges[0]
        last = edges[bins]
        denom = last - first
        fbins = fedges.shape[0] - 1
        ffirst = fedges[0] if fbins > 0 else 0.0
        flast = fedges[fbins] if fbins > 0 else 0.0
        fdenom = flast - ffirst
        norm = dbins / (dhi - dlo)
        npairs = pairs.shape[0]
        for k in range(ls.shape[0]):
            p = lp[k]
            cell = lcell[k]
            for r in range(ls[k], le[k]):
                if not _row_scale(x, r, s) and drop:
                    continue
                _row_coef(s, mean, comps, d, c)
                for i in range(9):
                    b = _bin(c[i], first, last, denom, bins, edges)
                    if b >= 0:
                        counts[p, i, b] += 1
                    if cell >= 0:
                        fb = _bin(c[i], ffirst, flast, fdenom, fbins, fedges)
                        if fb >= 0:
                            fcounts[cell, i, fb] += 1
                for q in range(npairs):
                    tx = c[pairs[q, 0]]
                    ty = c[pairs[q, 1]]
                    if tx >= dlo and tx < dhi and ty >= dlo and ty < dhi:
                        ix = int((tx - dlo) * norm)
                        iy = int((ty - dlo) * norm)
                        dens[q, ix, iy] += 1

    @numba.njit(cache=True, nogil=True)
    def moments_block(x, ls, le, lp, drop, eps, absmax, n_sparse, n_clean, g_all, g_clean):
        """Per layer, on the unscaled filters: peak |w| of the layer, the number of sparse filters
        (peak < eps * layer peak) and the centred 9x9 scatter matrices of all and of the non-sparse
        filters (as :func:`layer_moments`, layer by layer)."""
        for k in range(ls.shape[0]):
            a0 = ls[k]
            m = le[k] - a0
            if m == 0:
                continue
            p = lp[k]
            bad = 0
            if drop:
                for r in range(a0, le[k]):
                    for j in range(9):
                        v = np.float64(x[r, j])
                        if not (v - v == 0.0):
                            bad += 1
                            break
            if bad == 0:
                am, ns, nc = _layer_moments(x[a0:le[k]], eps, g_all[p], g_clean[p])
            else:  # leave the rows holding NaN/Inf out
                w = np.empty((m - bad, 9), x.dtype)
                nn = 0
                for r in range(a0, le[k]):
                    ok = True
                    for j in range(9):
                        v = np.float64(x[r, j])
                        if not (v - v == 0.0):
                            ok = False
                    if ok:
                        for j in range(9):
                            w[nn, j] = x[r, j]
                        nn += 1
                am, ns, nc = _layer_moments(w, eps, g_all[p], g_clean[p])
            absmax[p] = am
            n_sparse[p] = ns
            n_clean[p] = nc
            for a in range(9):
                for b in range(a + 1, 9):
                    g_all[p, b, a] = g_all[p, a, b]
                    g_clean[p, b, a] = g_clean[p, a, b]
