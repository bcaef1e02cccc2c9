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
    from KDEpy import FFTKDE

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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = FFTKDE(kernel="gaussian", bw=float(bw)).fit(centres[keep], weights=c[keep]).evaluate(grid)
    return grid, np.asarray(y, dtype=np.float64), float(bw)


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
