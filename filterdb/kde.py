"""Gaussian KDEs of coefficients from binned data (docs/method.md §6).

The study plotted ``KDEpy.FFTKDE(kernel="gaussian", bw="silverman").fit(c).evaluate()`` on the raw
coefficients. At scale the raw coefficients are never held; the workflow keeps fine histograms
(``histogram.fine_bins`` bins over the shared coefficient range) per (model, depth bin) cell, and a
group's KDE is computed here from its summed fine histogram:

* **Bandwidth.** KDEpy's ``"silverman"`` *ignores* weights (it warns and uses the unweighted data
  points), so it cannot be given bin centres with counts. :func:`silverman_bandwidth_binned`
  computes the same rule from the histogram: ``bw = min(sigma, IQR / 1.3489795003921634) *
  (3 n / 4) ** (-1/5)`` with ``sigma`` the ddof-1 standard deviation of the bin centres weighted by
  counts (less Sheppard's ``h**2 / 12`` for binning with bin width ``h``) and ``IQR`` the distance
  between the 75th and 25th percentiles in numpy's "linear" convention (rank ``q (n - 1)`` among
  the sorted points), the points of a bin taken as evenly spread over it.
  :func:`silverman_bandwidth` is KDEpy's rule on raw points, for reference.
* **Density.** ``FFTKDE(kernel="gaussian", bw=bw).fit(centres, weights=counts)`` evaluated on an
  equidistant grid made of the bin centres, extended on both sides by the kernel's practical support
  (so no mass is lost at the ends). Because every bin centre is a grid point, KDEpy's linear binning
  puts each bin's count on its own grid point: the result is the histogram convolved with the
  Gaussian kernel. On raw points the same grid gives KDEpy's usual result; the two differ by the
  binning (order ``(h / bw) ** 2``), see ``tests/test_plots.py`` for the measured tolerance.
* **No SciPy import.** :func:`fftkde_on_grid` is KDEpy's ``FFTKDE(kernel="gaussian", bw).fit(z,
  weights).evaluate(grid)`` step by step (its linear binning, its Gaussian weights out to its
  practical support found with SciPy's Brent root finder, ``np.convolve`` where SciPy's
  ``convolve(method="auto")`` picks the direct method), so the densities are KDEpy's to the last
  bit (``tests/test_kde.py``) without importing ``scipy.signal``, ``scipy.optimize`` and
  ``scipy.stats`` (~0.7 s per ridge-plot job). The cases SciPy would convolve by FFT (very wide
  kernels) are handed to KDEpy itself.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

IQR_NORMAL = 1.3489795003921634  # scipy.stats.norm.ppf(.75) - scipy.stats.norm.ppf(.25), as KDEpy
GAUSS_SUPPORT = 4.073159992998083  # KDEpy's practical support of the Gaussian kernel for bw = 1


def silverman_bandwidth(x: np.ndarray) -> float:
    """Silverman's rule on raw points, as ``KDEpy.bw_selection.silvermans_rule`` (regular case).

    ``bw = min(sigma, IQR / 1.3489795003921634) * (3 n / 4) ** (-1/5)`` with ``sigma`` the ddof-1
    standard deviation.

    Parameters
    ----------
    x : array_like
        The points, any shape (flattened); converted to float64.

    Returns
    -------
    float
        The bandwidth, in the units of ``x``; 1.0 when there are fewer than 2 points or the spread
        is 0.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    if n < 2:
        return 1.0
    sigma = np.std(x, ddof=1)
    iqr = (np.percentile(x, 75) - np.percentile(x, 25)) / IQR_NORMAL
    s = min(sigma, iqr)
    return float(s * (n * 3 / 4.0) ** (-1 / 5)) if s > 0 else 1.0


def binned_percentile(counts: np.ndarray, edges: np.ndarray, q: float) -> float:
    """Percentile ``q`` (0..100) of the points summarised by ``counts`` over ``edges``.

    numpy's "linear" convention on the sorted points (rank ``q/100 * (n - 1)``); the ``c`` points of
    a bin ``[a, b)`` are taken at ``a + (k + 0.5) (b - a) / c``, k = 0..c-1.

    Parameters
    ----------
    counts : (bins,) array_like
        Number of points in each bin (integer-valued).
    edges : (bins + 1,) array_like
        Bin edges.
    q : float
        Percentile, 0..100.

    Returns
    -------
    float
        The percentile, in the units of ``edges``.

    Raises
    ------
    ValueError
        If the histogram is empty (``counts.sum() <= 0``).

    Examples
    --------
    >>> float(binned_percentile([2], [0.0, 1.0], 50))
    0.5
    """
    c = np.asarray(counts, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    n = c.sum()
    if n <= 0:
        raise ValueError("percentile of an empty histogram")
    cum = np.cumsum(c)

    def at(rank: float) -> float:  # value of the point of 0-based rank `rank` (integer)
        j = int(np.searchsorted(cum, rank, side="right"))
        j = min(j, c.size - 1)
        before = cum[j] - c[j]
        frac = (rank - before + 0.5) / c[j]
        return float(e[j] + (e[j + 1] - e[j]) * frac)

    r = q / 100.0 * (n - 1)
    lo = math.floor(r)
    hi = min(lo + 1, int(n) - 1)
    t = r - lo
    return at(lo) if t == 0 else (1 - t) * at(lo) + t * at(hi)


def silverman_bandwidth_binned(counts: np.ndarray, edges: np.ndarray, sheppard: bool = True) -> float:
    """Silverman's rule (as KDEpy) from a histogram of the points (see module docstring).

    Parameters
    ----------
    counts : (bins,) array_like
        Number of points in each bin.
    edges : (bins + 1,) array_like
        Bin edges.
    sheppard : bool
        Subtract Sheppard's correction ``h**2 / 12`` (``h`` the mean bin width) from the variance.

    Returns
    -------
    float
        The bandwidth, in the units of ``edges``; 1.0 with fewer than 2 points. When the rule gives
        0 (almost constant data), ``max(sigma, h)`` is used in its place.
    """
    c = np.asarray(counts, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    n = c.sum()
    if n < 2:
        return 1.0
    centres = (e[:-1] + e[1:]) / 2
    mean = np.dot(c, centres) / n
    var = np.dot(c, (centres - mean) ** 2) / (n - 1)
    if sheppard:
        var -= np.mean(np.diff(e)) ** 2 / 12.0
    sigma = math.sqrt(max(var, 0.0))
    iqr = (binned_percentile(c, e, 75) - binned_percentile(c, e, 25)) / IQR_NORMAL
    s = min(sigma, iqr)
    if s <= 0:  # (almost) constant data: KDEpy falls back too; keep a visible bump
        s = max(sigma, np.mean(np.diff(e)))
    return float(s * (n * 3 / 4.0) ** (-1 / 5))


def kde_grid(edges: np.ndarray, bw: float) -> np.ndarray:
    """The evaluation grid: the bin centres of ``edges`` extended on both sides by the Gaussian's
    practical support ``4.07 bw`` (whole bin widths), equidistant.

    Parameters
    ----------
    edges : (bins + 1,) array_like
        Uniform bin edges.
    bw : float
        Kernel bandwidth, in the units of ``edges``.

    Returns
    -------
    (bins + 2 pad,) float64 ndarray
        Grid points with spacing ``h = (edges[-1] - edges[0]) / bins``, where
        ``pad = ceil(4.07 bw / h) + 1`` points are added on each side of the ``bins`` centres.
    """
    e = np.asarray(edges, dtype=np.float64)
    h = (e[-1] - e[0]) / (e.size - 1)
    pad = int(math.ceil(GAUSS_SUPPORT * bw / h)) + 1
    k = np.arange(-pad, e.size - 1 + pad)
    return e[0] + h * (k + 0.5)


def binned_kde(
    counts: np.ndarray, edges: np.ndarray, bw: float | None = None, grid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Gaussian KDE (KDEpy FFTKDE) of the points summarised by ``counts`` over ``edges``.

    Returns ``(grid, density, bw)``; the density integrates to 1 over the grid (up to the
    Gaussian's tail beyond 4.07 bw). ``bw`` defaults to :func:`silverman_bandwidth_binned`;
    ``grid`` to :func:`kde_grid` (it must be equidistant and reach beyond the outer bin centres).
    An empty histogram gives a zero density.

    Parameters
    ----------
    counts : (bins,) array_like
        Number of points in each bin.
    edges : (bins + 1,) array_like
        Uniform bin edges.
    bw : float, optional
        Bandwidth; None: :func:`silverman_bandwidth_binned` (1.0 with fewer than 2 points).
    grid : (X,) array_like, optional
        Evaluation grid; None: :func:`kde_grid` ``(edges, bw)``.

    Returns
    -------
    grid : (X,) float64 ndarray
    density : (X,) float64 ndarray
        KDE evaluated on ``grid`` (per unit of the coefficient).
    bw : float
        The bandwidth used.
    """
    c = np.asarray(counts, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    if bw is None:
        bw = silverman_bandwidth_binned(c, e) if c.sum() >= 2 else 1.0
    if grid is None:
        grid = kde_grid(e, bw)
    if c.sum() <= 0:
        return grid, np.zeros_like(grid), float(bw)
    centres = (e[:-1] + e[1:]) / 2
    keep = c > 0
    y = fftkde_on_grid(centres[keep], c[keep], float(bw), grid)
    return grid, np.asarray(y, dtype=np.float64), float(bw)


# KDEpy's Gaussian kernel (kernel_funcs.gaussian, 1-D, norm 2): exp(-u**2 / 2) / GAUSS_NORM / (2 bw),
# GAUSS_NORM = gauss_integral(0) = sqrt(2 pi) * factorial2(0) / 2 and 2 = volume_unit_ball(1, p=2), as
# KDEpy computes them (tests/test_kde.py checks both against KDEpy).
GAUSS_NORM = 1.2533141373155001
UNIT_BALL_1D = 2.0
PRACTICAL_ATOL = 10e-5  # KDEpy Kernel.practical_support: where the kernel falls below this
BRENT_XTOL = 1e-3  # ... found by brentq on [0, 8 bw] with this xtol (then + xtol)
BRENT_RTOL = 4 * np.finfo(float).eps  # scipy.optimize.brentq's default rtol and maxiter
BRENT_MAXITER = 100


def _gaussian_weights(x: np.ndarray, bw) -> np.ndarray:
    """KDEpy's ``gaussian(x, bw=bw)`` (``Kernel.evaluate``, 1-D): the same operations, same order."""
    real_bw = bw / np.sqrt(1)  # Kernel.var = 1
    u = np.abs(x).ravel() / real_bw
    return np.exp(-(u**2) / 2) / GAUSS_NORM / ((real_bw**1) * UNIT_BALL_1D)


def _brentq(f, xa: float, xb: float, xtol: float, rtol: float, maxiter: int) -> float:
    """SciPy's ``brentq`` (scipy/optimize/Zeros/brentq.c), statement by statement, so the root is
    the same double. Raises ``ValueError`` when ``f(xa)`` and ``f(xb)`` have the same sign."""
    xpre, xcur = float(xa), float(xb)
    xblk = fblk = spre = scur = 0.0
    fpre, fcur = float(f(xpre)), float(f(xcur))
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    if math.copysign(1.0, fpre) == math.copysign(1.0, fcur):
        raise ValueError("f(a) and f(b) must have different signs")
    for _ in range(maxiter):
        if fpre != 0 and fcur != 0 and math.copysign(1.0, fpre) != math.copysign(1.0, fcur):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + rtol * abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        if fcur == 0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:  # interpolate
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:  # extrapolate
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2 * abs(stry) < min(abs(spre), 3 * abs(sbis) - delta):  # good short step
                spre, scur = scur, stry
            else:  # bisect
                spre = scur = sbis
        else:  # bisect
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        xcur += scur if abs(scur) > delta else (delta if sbis > 0 else -delta)
        fcur = float(f(xcur))
    return xcur  # not converged (brentq would raise): never for the Gaussian


def gaussian_practical_support(bw: float) -> float:
    """KDEpy's ``gaussian.practical_support(bw)``: where the kernel falls to 1e-4 (Brent, xtol 1e-3),
    plus 1e-3."""

    def f(x):
        return _gaussian_weights(np.asarray_chkfinite([x]), bw)[0] - PRACTICAL_ATOL

    return _brentq(f, 0, 8 * bw, BRENT_XTOL, BRENT_RTOL, BRENT_MAXITER) + BRENT_XTOL


def _fft_would_be_chosen(s1: int, s2: int) -> bool:
    """``scipy.signal.choose_conv_method`` for two 1-D float arrays in mode "same" (its
    ``_fftconv_faster``): True when SciPy would convolve by FFT, or when the kernel is the longer."""
    if s2 > s1:
        return True
    n = s1 + s2 - 1
    fft_ops = 3 * n * np.log(n)
    direct_ops = s1 * s2 - (s2 // 2) * ((s2 + 1) // 2)
    return 3.2646654e-9 * fft_ops < 2.8478277e-10 * direct_ops + -1e-3


def fftkde_on_grid(points: np.ndarray, weights: np.ndarray, bw: float, grid: np.ndarray) -> np.ndarray:
    """``KDEpy.FFTKDE(kernel="gaussian", bw=bw).fit(points, weights=weights).evaluate(grid)``,
    bit for bit, without importing SciPy (see module docstring).

    Parameters
    ----------
    points : (n,) array_like
        Data points, strictly inside ``grid``.
    weights : (n,) array_like
        Their non-negative weights (normalised here, as KDEpy does).
    bw : float
        Bandwidth (> 0).
    grid : (X,) array_like
        Sorted, equidistant evaluation grid.

    Returns
    -------
    (X,) float64 ndarray
        The density on ``grid`` (KDEpy adds float eps to every value; so does this).
    """
    data = np.asarray_chkfinite(points, dtype=float).reshape(-1, 1)
    g = np.asarray_chkfinite(grid, dtype=float).ravel()
    raw = np.asarray(weights, dtype=float)
    w = np.asarray_chkfinite(raw.reshape(-1, 1), dtype=float).ravel()
    w = w / np.sum(w)  # BaseKDE.fit
    num_intervals = g.size - 1
    regular = (
        g.size >= 2
        and bool(np.all(g[1:] > g[:-1]))
        and bw > 0
        and data.size > 0
        and g.min() < data.min()
        and g.max() > data.max()
    )
    if regular:
        min_grid, max_grid = np.min(g), np.max(g)
        dx = (max_grid - min_grid) / num_intervals
        L = np.minimum(np.floor(gaussian_practical_support(bw) / dx), num_intervals + 1)
        regular = not _fft_would_be_chosen(g.size, int(L * 2 + 1))
    if not regular:  # KDEpy's own checks and errors, or SciPy's FFT path: KDEpy itself
        from KDEpy import FFTKDE

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return FFTKDE(kernel="gaussian", bw=bw).fit(data, weights=raw).evaluate(g)
    # linear binning (KDEpy binning.linbin_cython / _cutils.iterate_data_1D_weighted, in its order)
    w = w / np.sum(w)
    t = (data.ravel() - min_grid) / dx
    integral = np.floor(t)
    ftw = (t - integral) * w
    index = np.empty(2 * t.size, dtype=np.intp)
    index[0::2] = integral.astype(np.intp) + 1
    index[1::2] = integral.astype(np.intp)
    add = np.empty(2 * t.size)
    add[0::2] = ftw
    add[1::2] = w - ftw
    binned = np.zeros(num_intervals + 2)
    np.add.at(binned, index, add)
    binned = binned[:-1]
    kernel_grid = np.linspace(-dx * L, dx * L, int(L * 2 + 1))
    kernel = _gaussian_weights(kernel_grid.reshape(-1, 1), bw)
    return np.convolve(binned, kernel, "same").ravel() + np.finfo(float).eps


def group_kdes(counts: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KDEs of every group and coefficient on one shared grid.

    ``counts``: ``(G, d, bins)`` fine histograms. The grid is :func:`kde_grid` for the largest
    bandwidth, so it covers every curve's support. Returns ``(grid (X,), density (G, d, X),
    bw (G, d))``.

    Parameters
    ----------
    counts : (G, d, bins) array_like
        Fine histograms of each group and coefficient.
    edges : (bins + 1,) array_like
        Their shared uniform bin edges.

    Returns
    -------
    grid : (X,) float64 ndarray
        Shared grid (:func:`kde_grid` for the largest bandwidth; for bandwidth 0 when no histogram
        holds 2 points).
    density : (G, d, X) float64 ndarray
        :func:`binned_kde` of each histogram on ``grid`` (zeros for an empty one).
    bw : (G, d) float64 ndarray
        :func:`silverman_bandwidth_binned` of each histogram, 1.0 where it has fewer than 2 points.
    """
    c = np.asarray(counts)
    bws = np.ones(c.shape[:2])
    for g in range(c.shape[0]):
        for i in range(c.shape[1]):
            if c[g, i].sum() >= 2:
                bws[g, i] = silverman_bandwidth_binned(c[g, i], edges)
    has = c.sum(axis=-1) >= 2
    grid = kde_grid(edges, float(bws[has].max()) if has.any() else 0.0)
    dens = np.zeros(c.shape[:2] + grid.shape)
    for g in range(c.shape[0]):
        for i in range(c.shape[1]):
            dens[g, i] = binned_kde(c[g, i], edges, bws[g, i], grid)[1]
    return grid, dens, bws


def group_cell_counts(labels, cell_of_layer: np.ndarray, cell_counts: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Fine histograms ``(G, d, bins)`` of the groups of an axis, summed from their cells.

    ``labels``: group label of each layer (:func:`filterdb.axes.layer_labels`; NaN = no group);
    ``cell_of_layer``: cell of each layer (:func:`filterdb.pipeline.cell_table`). Every group must be
    a union of cells (true for model-level axes and the depth axis with the cells' depth bins);
    a cell whose layers fall in different groups raises ``ValueError``.

    Parameters
    ----------
    labels : array_like
        Group label of each layer (NaN / None = no group).
    cell_of_layer : (L,) array_like of int
        Cell index of each layer, in ``[0, n_cells)``.
    cell_counts : (n_cells, d, bins) ndarray
        Fine histograms of each cell.
    groups : sequence of str
        The groups, in output order; compared with the labels as strings. A group with no cell
        gets zero counts; cells of labels not in ``groups`` are ignored.

    Returns
    -------
    (G, d, bins) int64 ndarray
        ``out[k]`` is the sum of the histograms of the cells of ``groups[k]``.

    Raises
    ------
    ValueError
        If a cell holds layers of different groups (or of a group and no group).
    """
    import pandas as pd

    lab = pd.Series(labels).astype(object).where(pd.Series(labels).notna(), None).to_numpy()
    cell = np.asarray(cell_of_layer, dtype=np.intp)
    n_cells = cell_counts.shape[0]
    owner: list = [None] * n_cells
    seen = np.zeros(n_cells, bool)
    for c, g in zip(cell, lab):
        g = None if g is None else str(g)
        if seen[c] and owner[c] != g:
            raise ValueError(
                f"cell {c} holds layers of groups {owner[c]!r} and {g!r}: this axis is not a union "
                "of (model, depth bin) cells, so its ridge plot cannot come from the fine histograms"
            )
        owner[c], seen[c] = g, True
    index = {str(g): k for k, g in enumerate(groups)}
    out = np.zeros((len(groups),) + cell_counts.shape[1:], dtype=np.int64)
    for c in range(n_cells):
        k = index.get(owner[c]) if owner[c] is not None else None
        if k is not None:
            out[k] += cell_counts[c]
    return out
