"""Compiled inner loops (numba) for the coefficient passes, with exact numpy equivalents.

Filters are rows of ``d`` values (``d = k * k`` for k x k filters: 9, 25, 49, ...); every kernel
takes ``d`` from its arrays' shapes (rows ``(n, d)``, sums ``(layers, d)``, outer products
``(layers, d, d)``, mean ``(d,)``, components ``(c, d)`` with ``c <= d``), so one compiled function
serves every width. The loops over the ``d`` values (or the ``d (d + 1) / 2`` products of a pair)
are the outer ones; the inner loops run over a batch of rows, which is what vectorises.

Why numba: the range and histogram passes compute ``c * d`` multiply-adds (81 for 3x3 filters)
and a bin search per filter; numpy needs ~20 full-length temporaries for that and ran at ~600
ns/filter for 3x3 filters, far above the cost of reading the row (~5 ns). The kernels do the same
IEEE operations in the same order as the numpy reference (:func:`filterdb.scaling.coefficients`,
:func:`filterdb.histogram.bin_index`; no fastmath, so no reassociation or FMA contraction), so
results are bit-identical with or without numba (tested). Without numba installed the numpy
reference is used. ``error_model="numpy"``: division follows IEEE (no Python ZeroDivisionError
check), which lets the division loops vectorise (no kernel divides by zero: a zero peak is
replaced by 1).
"""

from __future__ import annotations

import math

import numpy as np

from . import histogram, scaling
from .scaling import PRECISIONS, half_bits  # noqa: F401 (the kernels' load: PRECISIONS codes)

try:  # pragma: no cover - exercised by whichever branch is installed
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def _scale(w, out):
        d = w.shape[1]
        for r in range(w.shape[0]):
            peak = 0.0
            for j in range(d):
                a = abs(np.float64(w[r, j]))
                if a > peak:
                    peak = a
            if peak == 0.0:
                peak = 1.0
            for j in range(d):
                out[r, j] = np.float64(w[r, j]) / peak

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def _coefficients(scaled, mean, comps, out):
        n, d = scaled.shape
        k = comps.shape[0]
        dv = np.empty(d)
        for r in range(n):
            for j in range(d):
                dv[j] = scaled[r, j] - mean[j]
            for i in range(k):
                acc = dv[0] * comps[i, 0]
                for j in range(1, d):
                    acc += dv[j] * comps[i, j]
                out[r, i] = acc

    @numba.njit(cache=True, nogil=True, error_model="numpy")
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


def layer_moments(w: np.ndarray, eps: float) -> tuple[float, int, int, np.ndarray, np.ndarray]:
    """One pass over a layer's unscaled filters: ``(absmax, n_sparse, n_clean, G_all, G_clean)``.

    A filter is sparse when its peak ``max |w|`` is below ``eps * absmax`` (all filters of an
    all-zero layer are sparse); ``G`` are the d x d scatter matrices (``d = k * k`` values per
    filter, 9 for 3x3 filters) of the filters centred on their own mean (all filters / non-sparse
    filters). Needs numba (the numpy reference is :func:`filterdb.quality.layer_quality`).

    Parameters
    ----------
    w : array_like
        The layer's unscaled filters, ``(n, d)`` rows or ``(..., k, k)`` filters (reshaped to
        ``(n, k * k)``, :func:`filterdb.scaling.filter_rows`); read as float64.
    eps : float
        Relative sparsity threshold (fraction of the layer's ``absmax``).

    Returns
    -------
    absmax : float
        Largest ``|w|`` of the layer (0.0 for an all-zero or empty layer).
    n_sparse : int
        Number of sparse filters.
    n_clean : int
        Number of non-sparse filters (``n_sparse + n_clean == n``).
    G_all : (d, d) float64 ndarray
        Symmetric scatter matrix ``sum (x - mean)(x - mean)^T`` over all filters.
    G_clean : (d, d) float64 ndarray
        The same over the non-sparse filters, centred on their own mean (zeros if there are none).
    """
    w = half_bits(np.ascontiguousarray(scaling.filter_rows(w)))
    d = w.shape[1]
    one = np.zeros(1, np.int64)
    ls, le = one, np.array([w.shape[0]], np.int64)
    i1 = [np.zeros(1, np.int64) for _ in range(5)]  # n, nonfinite, first_bad, n_sparse, n_clean
    absmax = np.zeros(1)
    g = np.zeros((2, 1, d, d))
    sums_block(
        w, ls, le, one, False, 2, i1[0], np.zeros((1, d)), np.zeros((1, d, d)), i1[1], i1[2],
        True, float(eps), absmax, i1[3], i1[4], g[0], g[1], np.zeros(0), np.zeros((1, 0), np.int64),
    )  # fmt: skip
    return float(absmax[0]), int(i1[3][0]), int(i1[4][0]), g[0, 0], g[1, 0]


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def _column_range(values, lo, hi):
        for r in range(values.shape[0]):
            for c in range(values.shape[1]):
                v = values[r, c]
                if v < lo[c]:
                    lo[c] = v
                if v > hi[c]:
                    hi[c] = v


def column_range(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column minimum and maximum (``values.min(0)``, ``values.max(0)``; exact).

    Falls back to numpy when numba is missing, ``values`` has no rows, or holds NaN (so a column
    with NaN gets NaN bounds, and zero rows raise ``ValueError`` as numpy does).

    Parameters
    ----------
    values : (n, k) array_like
        Values, e.g. PCA coefficients; converted to float64.

    Returns
    -------
    lo, hi : (k,) float64 ndarray
        Minimum and maximum of each column.

    Examples
    --------
    >>> [a.tolist() for a in column_range(np.array([[1.0, -2.0], [3.0, 0.5]]))]
    [[1.0, -2.0], [3.0, 0.5]]
    """
    v = np.ascontiguousarray(values, dtype=np.float64)
    if not HAVE_NUMBA or v.shape[0] == 0 or np.isnan(v).any():
        return v.min(axis=0), v.max(axis=0)
    lo = np.full(v.shape[1], np.inf)
    hi = np.full(v.shape[1], -np.inf)
    _column_range(v, lo, hi)
    return lo, hi


def scale_filters(w: np.ndarray) -> np.ndarray:
    """Same as :func:`filterdb.scaling.scale_filters`, compiled when numba is available.

    Parameters
    ----------
    w : array_like
        Filter weights, ``(n, d)`` rows or ``(..., k, k)`` filters (reshaped to ``(n, k * k)``,
        :func:`filterdb.scaling.filter_rows`).

    Returns
    -------
    (n, d) float64 ndarray
        Each row divided by its own ``max |w|`` (all-zero rows stay zero); values in [-1, 1].
    """
    if not HAVE_NUMBA:
        return scaling.scale_filters(w)
    w = np.ascontiguousarray(scaling.filter_rows(w))
    out = np.empty(w.shape, np.float64)
    _scale(w, out)
    return out


def coefficients(scaled: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Same as :func:`filterdb.scaling.coefficients`, compiled when numba is available.

    Parameters
    ----------
    scaled : (n, d) array_like
        Peak-scaled filters (``d = k * k`` values each); converted to float64.
    mean : (d,) array_like
        PCA mean filter.
    components : (k, d) array_like
        PCA components as rows, ``1 <= k <= d``.

    Returns
    -------
    (n, k) float64 ndarray
        ``out[r, i] = (scaled[r] - mean) . components[i]``, bit-identical to the numpy reference.

    Raises
    ------
    ValueError
        If ``scaled`` is not 2-D or the widths of ``scaled``, ``mean`` and ``components`` differ.
    """
    if not HAVE_NUMBA:
        return scaling.coefficients(scaled, mean, components)
    s = np.ascontiguousarray(scaled, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scaled filters: expected (n, d) rows, got shape {s.shape}")
    scaling.check_basis(s.shape[1], mean, components)
    c = np.ascontiguousarray(components, dtype=np.float64)
    out = np.empty((s.shape[0], c.shape[0]))
    _coefficients(s, np.ascontiguousarray(mean, dtype=np.float64), c, out)
    return out


def histogram_columns(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts ``(columns, bins)`` of each column of ``values`` over ``edges`` (numpy convention).

    Values outside ``[edges[0], edges[-1]]`` and NaN are not counted; the last bin includes the
    right edge (as :func:`filterdb.histogram.bin_index`).

    Parameters
    ----------
    values : (n, k) array_like
        Values, one histogram per column; converted to float64.
    edges : (bins + 1,) array_like
        Uniform bin edges (:func:`filterdb.histogram.uniform_edges`).

    Returns
    -------
    (k, bins) int64 ndarray
        Counts of each column in each bin.

    Examples
    --------
    >>> histogram_columns(np.array([[0.1], [0.9], [1.0], [2.0]]), np.array([0.0, 0.5, 1.0])).tolist()
    [[1, 2]]
    """
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
# and its position ``lp[k]`` in the per-layer output arrays. Rows are processed in batches of
# ``BATCH`` stored column-wise, so that scaling and projection vectorise across rows (SIMD) while
# every value is computed with the same IEEE operations, in the same order, as the reference
# functions above: results are bit-identical however the rows are split into blocks, batches,
# shards or threads (tested).
#
# Histogram bins: the estimate ``int((v - first) * (bins / (last - first)))`` is within one bin of
# the true bin and is then corrected against the edges exactly as numpy does, so the bin is the one
# numpy's ``histogram`` assigns (the correction step, not the estimate, decides).

BATCH = 64
#: Rows per chunk of the eps grid's comparisons (their peaks stay in L1 across the thresholds).
GRID_CHUNK = 512
#: Within this fraction of a bin from an edge, the bin estimate is checked against the edges.
NEAR = 1e-6
#: The row width the block kernels are also compiled for with the width as a constant: 3x3 filters,
#: the common case (their loops over a row's values then unroll, as in the 3x3-only kernels; the
#: variant reading the width from the arrays ran float32 3x3 rows 3-17% slower, float16 ones
#: within noise, benchmarks/bench_kernels.py). Other widths run that variant; both do the same
#: operations in the same order (bit-identical, tested).
WIDTH = 9

if HAVE_NUMBA:
    from numba.extending import overload

    def _to_f64(v):  # the kernels' load of one stored value (compiled by the overload below)
        return np.float64(v)

    @overload(_to_f64)
    def _to_f64_impl(v):
        if isinstance(v, numba.types.Integer):  # float16 bit pattern

            def from_half(v):
                h = np.int64(v)
                e = (h >> 10) & 0x1F
                m = h & 0x3FF
                # subnormal (e = 0): m * 2**-24; normal: (1024 + m) * 2**(e - 25)
                a = math.ldexp(np.float64(m + (1024 if e > 0 else 0)), max(e, 1) - 25)
                if e == 31:
                    a = np.inf if m == 0 else np.nan
                return -a if h & 0x8000 else a

            return from_half
        return lambda v: np.float64(v)

    def _load_rows(x, b0, nb, T, d):  # rows b0..b0+nb-1 of x (d values) into T[j, r] as float64
        raise NotImplementedError

    @overload(_load_rows, inline="always")  # inlined: a constant width d unrolls its loops
    def _load_rows_impl(x, b0, nb, T, d):
        if isinstance(x.dtype, numba.types.Integer):  # float16 bit patterns

            def from_half(x, b0, nb, T, d):
                # the float64 bits built from the half's: sign, exponent re-biased (15 -> 1023; 31:
                # inf/NaN), mantissa shifted up; zero and subnormal halves (exponent 0) are m * 2**-24
                Ti = T.view(np.int64)
                for r in range(nb):
                    for j in range(d):
                        h = np.int64(x[b0 + r, j])
                        e = (h >> 10) & 0x1F
                        ex = 2047 if e == 31 else e + 1008
                        ex = 0 if e == 0 else ex
                        Ti[j, r] = ((h & 0x8000) << 48) | (ex << 52) | ((h & 0x3FF) << 42)
                for j in range(d):
                    for r in range(nb):
                        b = Ti[j, r]
                        if (b & 0x7FF0000000000000) == 0:
                            v = np.float64((b >> 42) & 0x3FF) * 5.9604644775390625e-08
                            T[j, r] = -v if b < 0 else v

            return from_half

        def from_float(x, b0, nb, T, d):
            for r in range(nb):
                for j in range(d):
                    T[j, r] = np.float64(x[b0 + r, j])

        return from_float

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def half_to_float32(x, out):
        """``out = x`` for float16 rows given as their uint16 bit patterns (exact; numpy's own
        conversion takes ~2 ns per value here, this one well under 1)."""
        ou = out.view(np.uint32)
        for r in range(x.shape[0]):
            for j in range(x.shape[1]):
                h = np.int64(x[r, j])
                e = (h >> 10) & 0x1F
                m = h & 0x3FF
                if e == 0:
                    v = np.float32(np.float64(m) * 5.9604644775390625e-08)
                    out[r, j] = -v if h & 0x8000 else v
                else:
                    ex = 255 if e == 31 else e + 112
                    ou[r, j] = np.uint32(((h & 0x8000) << 16) | (ex << 23) | (m << 13))

    @numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
    def _round16(T, nb, Cb, d):
        """``T[j, r]`` (``r < nb``) rounded to the nearest float16 value, ties to even (numpy's
        ``astype(np.float16)`` exactly: subnormals, overflow to inf, NaN kept, signed zeros):
        adding and taking away ``2**(e + 42)`` (``e`` the value's binary exponent, at least -14)
        leaves it rounded, by the FPU's round-to-nearest-even, to a multiple of its float16 ulp.
        ``Cb`` is an int64 scratch array of T's shape, ``d`` the rows of T to round."""
        Ti = T.view(np.int64)
        Cf = Cb.view(np.float64)
        for j in range(d):
            for r in range(nb):
                e = ((Ti[j, r] >> 52) & 0x7FF) - 1023
                e = e if e > -14 else -14
                e = e if e < 16 else 16
                Cb[j, r] = (e + 42 + 1023) << 52
        for j in range(d):
            for r in range(nb):
                v = T[j, r]
                a = abs(v)
                c = Cf[j, r]
                y = (a + c) - c
                y = np.inf if a >= 65520.0 else y
                y = a if a != a else y
                T[j, r] = math.copysign(y, v)

    @numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
    def _r16(v):
        """One value rounded as :func:`_round16` rounds (for the few values read one by one)."""
        a = abs(v)
        if a >= 65520.0:
            return math.copysign(np.inf, v)
        if a != a:
            return v
        _, e = math.frexp(a)  # a in [2**(e-1), 2**e): float16 ulp 2**(e-11), at least 2**-24
        c = math.ldexp(1.0, max(e, -13) + 41)
        return math.copysign((a + c) - c, v)

    @numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
    def _load(x, i, j, prec):
        """Stored value ``x[i, j]`` as the arithmetic starts from it (``prec``: see PRECISIONS)."""
        v = _to_f64(x[i, j])
        if prec == 0:
            return np.float64(np.float32(v))
        if prec == 1:
            return _r16(v)
        return v


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
    def _batch_scale(x, b0, nb, pk, ok, T, S, prec, Cb, d):
        """Peak-scale rows b0..b0+nb-1 of x into S[j, r] (float64, via the column-wise copy T of
        the loaded values, so that the loops over r vectorise); ok[r] = row is finite. ``prec``
        (PRECISIONS): 0 rounds the stored values to float32, 2 keeps them; 1 rounds them to
        float16 and each quotient is taken in float32 and rounded to float16 (numpy's float16
        division, as the study's notebook divides). T, S and Cb are (d, >= nb), ``d`` the width
        of x (given: a constant in the kernels compiled for one width)."""
        _load_rows(x, b0, nb, T, d)
        if prec == 0:
            for j in range(d):
                for r in range(nb):
                    T[j, r] = np.float64(np.float32(T[j, r]))
        elif prec == 1:
            _round16(T, nb, Cb, d)
        for r in range(nb):
            pk[r] = 0.0
            ok[r] = True
        for j in range(d):
            for r in range(nb):
                v = T[j, r]
                a = abs(v)
                pk[r] = a if a > pk[r] else pk[r]
                ok[r] = ok[r] and (v - v == 0.0)
        for r in range(nb):
            if pk[r] == 0.0:
                pk[r] = 1.0
        if prec == 1:
            for j in range(d):
                for r in range(nb):
                    S[j, r] = np.float64(np.float32(T[j, r]) / np.float32(pk[r]))
            _round16(S, nb, Cb, d)
            return
        for j in range(d):
            for r in range(nb):
                S[j, r] = T[j, r] / pk[r]

    @numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
    def _batch_coef(nb, S, mean, comps, D, C, c, d):
        """C[i, r] = sum_j (S[j, r] - mean[j]) * comps[i, j], summed over j in order (comps: (c, d);
        S, D: (d, >= nb); C: (c, >= nb))."""
        for j in range(d):
            m = mean[j]
            for r in range(nb):
                D[j, r] = S[j, r] - m
        for i in range(c):
            c0 = comps[i, 0]
            for r in range(nb):
                C[i, r] = D[0, r] * c0
            for j in range(1, d):
                cij = comps[i, j]
                for r in range(nb):
                    C[i, r] += D[j, r] * cij

    @numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
    def _bins(nb, nc, C, first, last, inv, bins, edges, B):
        """B[i, r] = bin of C[i, r] over the uniform ``edges`` as numpy assigns it (-1 outside
        ``[first, last]``): the estimate for the whole batch first (no branches: it vectorises),
        then numpy's correction for the rare values within ``NEAR`` of an edge. C, B: (nc, >= nb)."""
        near = 0
        for i in range(nc):
            for r in range(nb):
                v = C[i, r]
                inr = v >= first and v <= last
                f = (v - first) * inv if inr else 0.5
                b = np.int64(f)
                fr = f - b
                near += 1 if (fr < NEAR or fr > 1.0 - NEAR or b >= bins) else 0
                B[i, r] = b if inr else -1
        if near:
            for i in range(nc):
                for r in range(nb):
                    b = B[i, r]
                    if b < 0:
                        continue
                    v = C[i, r]
                    f = (v - first) * inv
                    fr = f - b
                    if fr < NEAR or fr > 1.0 - NEAR or b >= bins:
                        if b >= bins:
                            b = bins - 1
                        if v < edges[b]:
                            b -= 1
                        elif b != bins - 1 and v >= edges[b + 1]:
                            b += 1
                        B[i, r] = b

    @numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
    def _batch_bins(nb, C, first, last, inv, bins, edges, B):
        """:func:`_bins` for all the rows of C."""
        _bins(nb, C.shape[0], C, first, last, inv, bins, edges, B)

    @numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
    def _lanes_add(V, nb, L1, L2, d):
        """Per lane r: ``L1[:, r] += V[:, r]``, ``L2[ab, r] += V[a, r] V[b, r]`` (upper triangle;
        L1: (d, BATCH), L2: (d (d + 1) / 2, BATCH))."""
        for a in range(d):
            for r in range(nb):
                L1[a, r] += V[a, r]
        ab = 0
        for a in range(d):
            for b in range(a, d):
                for r in range(nb):
                    L2[ab, r] += V[a, r] * V[b, r]
                ab += 1

    @numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
    def _lanes_total(L1, L2, v1, v2, d):
        """The lane partial sums added in lane order: ``v1`` (d,), ``v2`` (d (d + 1) / 2,) upper
        triangle."""
        ab = 0
        for a in range(d):
            t = 0.0
            for r in range(BATCH):
                t += L1[a, r]
            v1[a] = t
            for _b in range(a, d):
                t = 0.0
                for r in range(BATCH):
                    t += L2[ab, r]
                v2[ab] = t
                ab += 1

    def _sums_kernel(width):
        """The loop of :func:`sums_block`, compiled for rows of ``width`` values (a constant: the
        loops over a row's values unroll), or of any width (``width = 0``: from the arrays)."""

        @numba.njit(cache=True, nogil=True, error_model="numpy")
        def kernel(
            x,
            ls,
            le,
            lp,
            drop,
            prec,
            n,
            s1,
            s2,
            nonfinite,
            first_bad,
            quality,
            eps,
            absmax,
            n_sparse,
            n_clean,
            g_all,
            g_clean,
            eps_grid,
            n_sparse_grid,
        ):
            d = width if width > 0 else x.shape[1]
            dd = d * (d + 1) // 2
            pk = np.empty(BATCH)
            ok = np.empty(BATCH, np.bool_)
            Cb = np.empty((d, BATCH), np.int64)
            T = np.empty((d, BATCH))
            S = np.empty((d, BATCH))
            D = np.empty((d, BATCH))
            L1 = np.empty((d, BATCH))  # one partial sum per lane r (vectorises), added up per layer
            L2 = np.empty((dd, BATCH))
            Q1 = np.empty((d, BATCH))  # the same for the shifted unscaled filters (quality)
            Q2 = np.empty((dd, BATCH))
            raw = np.empty(BATCH)
            inc = np.empty(BATCH)
            c = np.empty(d)
            q1 = np.empty(d)
            q2 = np.empty(dd)
            v1 = np.empty(d)
            v2 = np.empty(dd)
            longest = 0
            if quality:
                for k in range(ls.shape[0]):
                    longest = max(longest, le[k] - ls[k])
            peaks = np.empty(longest)  # each row's peak |x| of the current layer
            tg = np.empty(eps_grid.shape[0])  # the eps grid's thresholds of the current layer
            cg = np.zeros(eps_grid.shape[0], np.int64)
            p1 = np.empty(d)
            p2 = np.empty(dd)
            for k in range(ls.shape[0]):
                p = lp[k]
                cnt = 0
                bad = 0
                L1[:] = 0.0
                L2[:] = 0.0
                Q1[:] = 0.0
                Q2[:] = 0.0
                am = 0.0
                if le[k] > ls[k]:
                    for j in range(d):
                        v = _load(x, ls[k], j, prec)
                        c[j] = v if v - v == 0.0 else 0.0
                for b0 in range(ls[k], le[k], BATCH):
                    nb = min(BATCH, le[k] - b0)
                    _batch_scale(x, b0, nb, pk, ok, T, S, prec, Cb, d)
                    for r in range(nb):
                        inc[r] = 1.0
                        if not ok[r]:
                            if bad == 0:
                                first_bad[p] = b0 + r - ls[k]
                            bad += 1
                            if drop:
                                for j in range(d):
                                    S[j, r] = 0.0
                                inc[r] = 0.0
                                continue
                        cnt += 1
                    _lanes_add(S, nb, L1, L2, d)
                    if quality:
                        for r in range(nb):
                            raw[r] = 0.0
                        for j in range(d):
                            cj = c[j]
                            for r in range(nb):
                                t = T[j, r]
                                av = abs(t)
                                raw[r] = av if av > raw[r] else raw[r]
                                D[j, r] = t - cj if inc[r] > 0.0 else 0.0
                        for r in range(nb):
                            # a row holding NaN/Inf is never sparse: its peak is kept as inf
                            peaks[b0 - ls[k] + r] = raw[r] if ok[r] else np.inf
                            if inc[r] > 0.0 and raw[r] > am:
                                am = raw[r]
                        _lanes_add(D, nb, Q1, Q2, d)
                n[p] = cnt
                nonfinite[p] = bad
                _lanes_total(L1, L2, v1, v2, d)
                ab = 0
                for a in range(d):
                    s1[p, a] = v1[a]
                    for b in range(a, d):
                        s2[p, a, b] = v2[ab]
                        s2[p, b, a] = v2[ab]
                        ab += 1
                if quality and le[k] > ls[k]:
                    thr = np.inf if am == 0.0 else eps * am
                    _lanes_total(Q1, Q2, q1, q2, d)
                    p1[:] = 0.0
                    p2[:] = 0.0
                    # the sparse rows, from the peaks of the loop above (NaN/Inf rows never are sparse):
                    # usually few, added one by one
                    ns = 0
                    for r in range(le[k] - ls[k]):
                        if peaks[r] < thr:
                            fin = True
                            for a in range(d):
                                v = _load(x, ls[k] + r, a, prec)
                                D[a, 0] = v - c[a]
                                fin = fin and (v - v == 0.0)
                            if not fin:  # a NaN is not a peak: such a row is not sparse
                                continue
                            ns += 1
                            ab = 0
                            for a in range(d):
                                p1[a] += D[a, 0]
                                for b in range(a, d):
                                    p2[ab] += D[a, 0] * D[b, 0]
                                    ab += 1
                    nc = cnt - ns
                    ab = 0
                    for a in range(d):
                        for b in range(a, d):
                            ga = q2[ab] - q1[a] * q1[b] / cnt if cnt > 0 else 0.0
                            ca = q1[a] - p1[a]
                            cb = q1[b] - p1[b]
                            gc = (q2[ab] - p2[ab]) - ca * cb / nc if nc > 0 else 0.0
                            g_all[p, a, b] = ga
                            g_all[p, b, a] = ga
                            g_clean[p, a, b] = gc
                            g_clean[p, b, a] = gc
                            ab += 1
                    absmax[p] = am
                    n_sparse[p] = ns
                    n_clean[p] = nc
                    # the sensitivity sweep of eps: one comparison per row and threshold, over chunks of
                    # rows that stay in L1; the loop over a chunk's view vectorises (~0.5 ns per row for
                    # 7 thresholds; indexing the whole buffer or a conditional increment did not: ~4 ns)
                    nr = le[k] - ls[k]
                    ne = eps_grid.shape[0]
                    for e in range(ne):
                        tg[e] = np.inf if am == 0.0 else eps_grid[e] * am
                        cg[e] = 0
                    for c0 in range(0, nr, GRID_CHUNK):
                        seg = peaks[c0 : min(nr, c0 + GRID_CHUNK)]
                        for e in range(ne):
                            te = tg[e]
                            ce = np.int64(0)
                            for r in range(seg.shape[0]):
                                ce += np.int64(seg[r] < te)
                            cg[e] += ce
                    for e in range(ne):
                        n_sparse_grid[p, e] = cg[e]

        return kernel

    _sums_fixed = _sums_kernel(WIDTH)
    _sums_any = _sums_kernel(0)

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def sums_block(
        x,
        ls,
        le,
        lp,
        drop,
        prec,
        n,
        s1,
        s2,
        nonfinite,
        first_bad,
        quality,
        eps,
        absmax,
        n_sparse,
        n_clean,
        g_all,
        g_clean,
        eps_grid,
        n_sparse_grid,
    ):
        """Per layer: count, sum and outer-product sum of the peak-scaled filters (float64; row r of
        every batch is added to partial sum r, and the ``BATCH`` partial sums are added in order at
        the end of the layer: a fixed order per layer); rows with NaN/Inf are counted (``nonfinite``,
        first one in ``first_bad``) and, with ``drop``, left out.

        With ``quality``, the moments of :func:`layer_moments` on the unscaled filters in the same
        loop: sums of ``x - c`` and their outer products, ``c`` the layer's first row (a shift that
        keeps the one-pass scatter as accurate as a two-pass one), and each row's peak ``|x|``;
        at the end of the layer the kept peaks give the sparse rows (peak below ``eps * absmax``),
        whose sums are taken out of the clean filters' ones (only those rows are read again).
        For each threshold ``eps_grid[e]`` of the sensitivity sweep, ``n_sparse_grid[p, e]`` counts
        the rows whose peak is below ``eps_grid[e] * absmax`` (one comparison per row and
        threshold on the kept peaks; a row holding NaN/Inf never counts, its peak is kept as inf;
        an empty ``eps_grid`` counts nothing). Every value is loaded as ``prec`` says
        (:data:`PRECISIONS`).

        Rows ``x`` are (rows, d); ``s1`` is (layers, d), ``s2`` (layers, d, d) and, with
        ``quality``, ``g_all`` and ``g_clean`` are (layers, d, d) (ValueError otherwise)."""
        d = x.shape[1]
        if d < 1 or s1.shape[1] != d or s2.shape[1] != d or s2.shape[2] != d:
            raise ValueError("sums_block: s1 must be (layers, d) and s2 (layers, d, d), d = x.shape[1] >= 1")
        if quality and (g_all.shape[1] != d or g_all.shape[2] != d or g_clean.shape[1] != d or g_clean.shape[2] != d):
            raise ValueError("sums_block: g_all and g_clean must be (layers, d, d), d = x.shape[1]")
        if d == WIDTH:  # the same loop, the width a constant
            _sums_fixed(
                x, ls, le, lp, drop, prec, n, s1, s2, nonfinite, first_bad, quality, eps, absmax, n_sparse,
                n_clean, g_all, g_clean, eps_grid, n_sparse_grid,
            )  # fmt: skip
        else:
            _sums_any(
                x, ls, le, lp, drop, prec, n, s1, s2, nonfinite, first_bad, quality, eps, absmax, n_sparse,
                n_clean, g_all, g_clean, eps_grid, n_sparse_grid,
            )  # fmt: skip

    def _range_kernel(width):
        """The loop of :func:`range_block`, compiled for rows of ``width`` values (a constant: the
        loops over a row's values unroll), or of any width (``width = 0``: from the arrays)."""

        @numba.njit(cache=True, nogil=True, error_model="numpy")
        def kernel(x, ls, le, lp, drop, prec, mean, comps, cmin, cmax):
            d = width if width > 0 else x.shape[1]
            nc = width if width > 0 else comps.shape[0]
            Cb = np.empty((d, BATCH), np.int64)
            pk = np.empty(BATCH)
            ok = np.empty(BATCH, np.bool_)
            T = np.empty((d, BATCH))
            S = np.empty((d, BATCH))
            D = np.empty((d, BATCH))
            C = np.empty((nc, BATCH))
            for k in range(ls.shape[0]):
                p = lp[k]
                for b0 in range(ls[k], le[k], BATCH):
                    nb = min(BATCH, le[k] - b0)
                    _batch_scale(x, b0, nb, pk, ok, T, S, prec, Cb, d)
                    _batch_coef(nb, S, mean, comps, D, C, nc, d)
                    for i in range(nc):
                        lo = cmin[p, i]
                        hi = cmax[p, i]
                        for r in range(nb):
                            if drop and not ok[r]:
                                continue
                            v = C[i, r]
                            if v < lo:
                                lo = v
                            if v > hi:
                                hi = v
                        cmin[p, i] = lo
                        cmax[p, i] = hi

        return kernel

    _range_fixed = _range_kernel(WIDTH)
    _range_any = _range_kernel(0)

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def range_block(x, ls, le, lp, drop, prec, mean, comps, cmin, cmax):
        """Per layer: min and max of each PCA coefficient (rows ``x`` (rows, d), ``mean`` (d,),
        ``comps`` (c, d) with ``1 <= c <= d``, ``cmin`` and ``cmax`` (layers, c); ValueError
        otherwise)."""
        d = x.shape[1]
        nc = comps.shape[0]
        if d < 1 or comps.shape[1] != d or mean.shape[0] != d or nc < 1 or nc > d:
            raise ValueError("range_block: mean must be (d,) and comps (c, d) with 1 <= c <= d, d = x.shape[1]")
        if cmin.shape[1] != nc or cmax.shape[1] != nc:
            raise ValueError("range_block: cmin and cmax must be (layers, c), c = comps.shape[0]")
        if d == WIDTH and nc == WIDTH:
            _range_fixed(x, ls, le, lp, drop, prec, mean, comps, cmin, cmax)
        else:
            _range_any(x, ls, le, lp, drop, prec, mean, comps, cmin, cmax)

    def _hist_kernel(width):
        """The loop of :func:`hist_block`, compiled for rows of ``width`` values (a constant: the
        loops over a row's values unroll), or of any width (``width = 0``: from the arrays)."""

        @numba.njit(cache=True, nogil=True, error_model="numpy")
        def kernel(
            x,
            ls,
            le,
            lp,
            drop,
            prec,
            mean,
            comps,
            edges,
            counts,
            lcell,
            fedges,
            fcounts,
            pairs,
            dlo,
            dhi,
            dbins,
            dens,
            xedges,
            xcounts,
            xout,
        ):
            d = width if width > 0 else x.shape[1]
            nc = width if width > 0 else comps.shape[0]
            bins = edges.shape[0] - 1
            fbins = fedges.shape[0] - 1
            xbins = xedges.shape[0] - 1
            npairs = pairs.shape[0]
            Cb = np.empty((d, BATCH), np.int64)
            pk = np.empty(BATCH)
            ok = np.empty(BATCH, np.bool_)
            T = np.empty((d, BATCH))
            S = np.empty((d, BATCH))
            D = np.empty((d, BATCH))
            C = np.empty((nc, BATCH))
            B = np.empty((nc, BATCH), np.int64)
            FB = np.empty((nc, BATCH), np.int64)
            DX = np.empty(BATCH, np.int64)
            DY = np.empty(BATCH, np.int64)
            first = edges[0]
            last = edges[bins]
            inv = bins / (last - first)
            ffirst = fedges[0]
            flast = fedges[fbins]
            finv = fbins / (flast - ffirst) if fbins > 0 else 0.0
            norm = dbins / (dhi - dlo)
            XB = np.empty((nc, BATCH), np.int64)
            xfirst = xedges[0]
            xlast = xedges[xbins]
            xinv = xbins / (xlast - xfirst) if xbins > 0 else 0.0
            for k in range(ls.shape[0]):
                p = lp[k]
                cell = lcell[k]
                for b0 in range(ls[k], le[k], BATCH):
                    nb = min(BATCH, le[k] - b0)
                    _batch_scale(x, b0, nb, pk, ok, T, S, prec, Cb, d)
                    _batch_coef(nb, S, mean, comps, D, C, nc, d)
                    _bins(nb, nc, C, first, last, inv, bins, edges, B)
                    if cell >= 0:
                        _bins(nb, nc, C, ffirst, flast, finv, fbins, fedges, FB)
                    if xbins > 0:
                        _bins(nb, nc, C, xfirst, xlast, xinv, xbins, xedges, XB)
                    # row-major over the batch: consecutive increments go to different histograms,
                    # so they do not wait on each other (store-to-load forwarding)
                    for r in range(nb):
                        if drop and not ok[r]:
                            continue
                        for i in range(nc):
                            b = B[i, r]
                            if b >= 0:
                                counts[p, i, b] += 1
                        if cell >= 0:
                            for i in range(nc):
                                b = FB[i, r]
                                if b >= 0:
                                    fcounts[cell, i, b] += 1
                        if xbins > 0:
                            for i in range(nc):
                                b = XB[i, r]
                                if b >= 0:
                                    xcounts[p, i, b] += 1
                                elif C[i, r] < xfirst or C[i, r] > xlast:  # outside (NaN is neither)
                                    xout[p, i] += 1
                    for q in range(npairs):
                        # the 2-D bins of the batch first (branch-free), then the increments
                        qx = pairs[q, 0]
                        qy = pairs[q, 1]
                        for r in range(nb):
                            tx = C[qx, r]
                            ty = C[qy, r]
                            inr = tx >= dlo and tx < dhi and ty >= dlo and ty < dhi
                            ix = np.int64((tx - dlo) * norm if inr else 0.0)
                            iy = np.int64((ty - dlo) * norm if inr else 0.0)
                            # (rounding can give dbins just below the right edge: not counted)
                            DX[r] = ix if (inr and ix < dbins and iy < dbins) else -1
                            DY[r] = iy
                        for r in range(nb):
                            ix = DX[r]
                            if ix >= 0 and not (drop and not ok[r]):
                                dens[q, ix, DY[r]] += 1

        return kernel

    _hist_fixed = _hist_kernel(WIDTH)
    _hist_any = _hist_kernel(0)

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def hist_block(
        x,
        ls,
        le,
        lp,
        drop,
        prec,
        mean,
        comps,
        edges,
        counts,
        lcell,
        fedges,
        fcounts,
        pairs,
        dlo,
        dhi,
        dbins,
        dens,
        xedges,
        xcounts,
        xout,
    ):
        """Per layer: coarse coefficient histograms ``counts[p, i, :]`` over ``edges``; per cell
        (``lcell[k]``, -1 = none): fine histograms over ``fedges``; and the 2-D histograms of the
        coefficient ``pairs`` over ``[dlo, dhi)^2`` with ``dbins`` bins (fast-histogram's rule:
        ``int((v - lo) * (bins / (hi - lo)))``, right edge excluded). With ``xedges`` of more
        than one edge, per layer also the histograms ``xcounts[p, i, :]`` over that fixed range
        (numpy's rule, as ``counts``) and the values outside it, ``xout[p, i]`` (not binned).

        Rows ``x`` are (rows, d), ``mean`` (d,), ``comps`` (c, d) with ``1 <= c <= d``; ``counts``
        is (layers, c, bins), ``fcounts`` (cells, c, fine bins), ``xcounts`` (layers, c, fixed bins)
        and ``xout`` (layers, c) when used, ``dens`` (pairs, dbins, dbins), ``pairs`` index
        coefficients below c (ValueError otherwise)."""
        d = x.shape[1]
        nc = comps.shape[0]
        bins = edges.shape[0] - 1
        fbins = fedges.shape[0] - 1
        xbins = xedges.shape[0] - 1
        npairs = pairs.shape[0]
        if d < 1 or comps.shape[1] != d or mean.shape[0] != d or nc < 1 or nc > d:
            raise ValueError("hist_block: mean must be (d,) and comps (c, d) with 1 <= c <= d, d = x.shape[1]")
        if counts.shape[1] != nc or counts.shape[2] != bins:
            raise ValueError("hist_block: counts must be (layers, c, bins), c = comps.shape[0], bins = edges.size - 1")
        if fcounts.shape[0] > 0 and (fcounts.shape[1] != nc or fcounts.shape[2] != fbins):
            raise ValueError("hist_block: fcounts must be (cells, c, fine bins), c = comps.shape[0]")
        if xbins > 0 and (xcounts.shape[1] != nc or xcounts.shape[2] != xbins or xout.shape[1] != nc):
            raise ValueError("hist_block: xcounts must be (layers, c, fixed bins) and xout (layers, c)")
        for q in range(npairs):
            if min(pairs[q, 0], pairs[q, 1]) < 0 or max(pairs[q, 0], pairs[q, 1]) >= nc:
                raise ValueError("hist_block: pairs must index coefficients 0 .. c - 1, c = comps.shape[0]")
        if npairs > 0 and (dens.shape[0] < npairs or dens.shape[1] != dbins or dens.shape[2] != dbins):
            raise ValueError("hist_block: dens must be (pairs, dbins, dbins)")
        if d == WIDTH and nc == WIDTH:  # the same loop, the width a constant
            _hist_fixed(
                x, ls, le, lp, drop, prec, mean, comps, edges, counts, lcell, fedges, fcounts, pairs, dlo, dhi,
                dbins, dens, xedges, xcounts, xout,
            )  # fmt: skip
        else:
            _hist_any(
                x, ls, le, lp, drop, prec, mean, comps, edges, counts, lcell, fedges, fcounts, pairs, dlo, dhi,
                dbins, dens, xedges, xcounts, xout,
            )  # fmt: skip


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def ortho_block(g, inv, a0, total):
        """Orthogonality's sum for rows ``a0 .. a0 + R - 1`` of each layer's Gram ``g`` (G, R, C)
        float32: ``total[k] += sum_ab |g_ab| inv_a inv_b`` with each diagonal term ``t`` replaced
        by ``|t - 1|`` (``inv``: (G, C) inverse row norms, 0 for a zero row). The products are
        added into 8 partial sums by column (``b mod 8``), themselves added in order: a fixed order
        per layer whatever batch it is in or wherever its memory lies (numpy's ``sum`` is not)."""
        G, R, C = g.shape
        acc = np.empty(8)
        c8 = C - C % 8
        for k in range(G):
            for q in range(8):
                acc[q] = 0.0
            for r in range(R):
                ia = inv[k, a0 + r]
                for c0 in range(0, c8, 8):
                    for q in range(8):
                        acc[q] += abs(np.float64(g[k, r, c0 + q])) * ia * inv[k, c0 + q]
                for c in range(c8, C):
                    acc[c - c8] += abs(np.float64(g[k, r, c])) * ia * inv[k, c]
            t = 0.0
            for q in range(8):
                t += acc[q]
            for r in range(R):
                a = a0 + r
                d = abs(np.float64(g[k, r, a])) * inv[k, a] * inv[k, a]
                t += abs(d - 1.0) - d
            total[k] += t


if HAVE_NUMBA:

    @numba.njit(cache=True, nogil=True, error_model="numpy")
    def _limbs(flat, out, limb_bits, shift, pieces):
        """Add the limbs (filterdb.exactsum) of every value of column c of ``flat`` to ``out[c]``."""
        mask = (1 << limb_bits) - 1
        for r in range(flat.shape[0]):
            for c in range(flat.shape[1]):
                v = flat[r, c]
                if v == 0.0:
                    continue
                fr, e = math.frexp(v)
                mant = np.int64(math.ldexp(fr, 53))
                sign = 1
                if mant < 0:
                    sign = -1
                    mant = -mant
                q = np.int64(e) - 53 + shift
                base = q // limb_bits
                off = q - base * limb_bits
                for j in range(pieces):
                    out[c, base + j] += sign * (((mant >> (limb_bits * j)) & mask) << off)
