"""PCA from additive sums (docs/method.md §2, §3).

For a set of scaled filters with count ``n``, sum ``s`` (d,) and outer-product sum ``S`` (d, d)
(``d = k²`` values per filter, :mod:`filterdb.shape`; the study: 9):
``mean = s / n`` and ``cov = (S - n mean mean^T) / (n - 1)`` (ddof 1, as sklearn's PCA).
Components are the eigenvectors of ``cov`` by decreasing eigenvalue.

Sign convention: each component is flipped so that its loading of largest magnitude is positive
(on exact ties in magnitude, the first such pixel in row-major order decides).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import exactsum
from .shape import STUDY, FilterShape

#: The column names of a 3x3 filter's values and PCA coefficients (``FilterShape.pixels`` /
#: ``.components`` for any other shape).
PIXELS = STUDY.pixels
COMPONENTS = STUDY.components


@dataclass
class PCA:
    n: int
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (d, d), row k = component k, in pixel order w0..w{d-1}
    explained_variance: np.ndarray  # (d,)
    explained_variance_ratio: np.ndarray  # (d,)
    covariance: np.ndarray  # (d, d)

    @property
    def shape(self) -> FilterShape:
        """The filters' k x k shape (from the width of the mean)."""
        return FilterShape.of_width(self.mean.size)


def orient(components: np.ndarray) -> np.ndarray:
    """Apply the sign convention: the largest-magnitude loading of each component is positive.

    On exact ties in magnitude, the first such loading (``np.argmax``) decides. The input is not
    modified.

    Parameters
    ----------
    components : (k, d) array_like
        Components as rows, in pixel order w0..w{d-1}.

    Returns
    -------
    (k, d) float64 ndarray
        A copy with each row multiplied by -1 where its largest-magnitude loading is negative.

    Examples
    --------
    >>> orient(np.array([[0.6, -0.8, 0.0]])).tolist()
    [[-0.6, 0.8, -0.0]]
    """
    comps = np.array(components, dtype=np.float64, copy=True)
    for k in range(comps.shape[0]):
        j = int(np.argmax(np.abs(comps[k])))
        if comps[k, j] < 0:
            comps[k] = -comps[k]
    return comps


def covariance_from_sums(n: int, s: np.ndarray, outer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and ddof-1 covariance from count, sum and outer-product sum.

    ``mean = s / n`` and ``cov = (S - s mean^T) / (n - 1)``, symmetrised as ``(cov + cov^T) / 2``.

    Parameters
    ----------
    n : int
        Number of filters summarised; must be at least 2.
    s : (d,) array_like
        Sum of the scaled filters.
    outer : (d, d) array_like
        Sum of the outer products ``x x^T`` of the scaled filters.

    Returns
    -------
    mean : (d,) float64 ndarray
    cov : (d, d) float64 ndarray
        Symmetric covariance with ddof 1.

    Raises
    ------
    ValueError
        If ``n < 2``.
    """
    if n < 2:
        raise ValueError(f"PCA needs at least 2 filters, got {n}")
    s = np.asarray(s, dtype=np.float64)
    mean = s / n
    cov = (np.asarray(outer, dtype=np.float64) - np.outer(s, mean)) / (n - 1)
    cov = (cov + cov.T) / 2.0
    return mean, cov


def pca_from_sums(n: int, s: np.ndarray, outer: np.ndarray) -> PCA:
    """Exact PCA of the filters summarised by ``(n, s, outer)``.

    Eigen-decomposition of the ddof-1 covariance (:func:`covariance_from_sums`); eigenvalues in
    decreasing order, negative round-off clipped to 0; components oriented with :func:`orient`.

    Parameters
    ----------
    n : int
        Number of filters summarised; must be at least 2.
    s : (d,) array_like
        Sum of the scaled filters.
    outer : (d, d) array_like
        Sum of the outer products of the scaled filters.

    Returns
    -------
    PCA
        ``mean`` (d,), ``components`` (d, d) with row k = component k, ``explained_variance`` (d,),
        ``explained_variance_ratio`` (d,) (all zeros if the total variance is 0) and
        ``covariance`` (d, d), all float64.

    Raises
    ------
    ValueError
        If ``n < 2``.
    """
    mean, cov = covariance_from_sums(int(n), s, outer)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals = np.clip(evals[order], 0.0, None)
    comps = orient(evecs[:, order].T)
    total = evals.sum()
    ratio = evals / total if total > 0 else np.zeros_like(evals)
    return PCA(int(n), mean, comps, evals, ratio, cov)


def pca_from_limbs(count: int, sum_limbs: np.ndarray, outer_limbs: np.ndarray) -> PCA:
    """PCA from exact sums held as limbs (:mod:`filterdb.exactsum`), rounded once.

    Parameters
    ----------
    count : int
        Number of filters.
    sum_limbs : (d, N_LIMBS) int64
    outer_limbs : (d, d, N_LIMBS) int64

    Returns
    -------
    PCA
        :func:`pca_from_sums` of the correctly rounded sums.
    """
    return pca_from_sums(int(count), exactsum.round_limbs(sum_limbs), exactsum.round_limbs(outer_limbs))


def global_pca(sums) -> PCA:
    """The global PCA of the gathered sums (``stats/sums.npz`` or the dict of an in-process run).

    Built from the exact sums over all filters (``count``, ``sum_limbs``, ``outer_limbs``), so it
    is the same number for any sharding and in every job that forms it.

    Parameters
    ----------
    sums : mapping
        Gathered sums-pass arrays.

    Returns
    -------
    PCA
    """
    return pca_from_limbs(int(sums["count"]), sums["sum_limbs"], sums["outer_limbs"])


def pca_of_layers(n: np.ndarray, sums: np.ndarray, outers: np.ndarray, mask: np.ndarray | None = None) -> PCA:
    """PCA of a union of layers (subset PCA): sums restricted to ``mask`` (all layers if None).

    Layers are summed in their stored order, so the result does not depend on sharding.

    Parameters
    ----------
    n : (L,) array_like of int
        Filter count of each layer.
    sums : (L, d) ndarray
        Sum of the scaled filters of each layer.
    outers : (L, d, d) ndarray
        Outer-product sum of the scaled filters of each layer.
    mask : (L,) bool ndarray or index array, optional
        Layers to include; None means all layers.

    Returns
    -------
    PCA
        As :func:`pca_from_sums` on the summed counts and sums.

    Raises
    ------
    ValueError
        If the selected layers hold fewer than 2 filters.
    """
    if mask is not None:
        n, sums, outers = n[mask], sums[mask], outers[mask]
    return pca_from_sums(int(np.sum(n)), np.sum(sums, axis=0), np.sum(outers, axis=0))
