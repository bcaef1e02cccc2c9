"""Coefficient distributions and the drift D (docs/method.md §4).

For groups g, h and coefficient i, ``P_g,i`` is the 70-bin histogram of c_i over the shared range.
The study (``np.histogram(x, range=r, bins=70, density=True)``) floors the **density**
``v = counts / (n * bin_width)``: every bin where ``v == 0`` gets float32 eps (1.1920929e-07),
then ``v`` is divided by its sum (float64). That is the default here (``floor="density"``);
``floor="probability"`` floors ``counts / n`` instead (an earlier reading of the method; with bin
width w the density floor is worth ``eps * w`` in probability, so the two differ wherever a group
has empty bins).

``KLsym(P, Q) = KL(P||Q) + KL(Q||P) = sum_b (p_b - q_b) (log p_b - log q_b)`` (natural log) and
``D(g, h) = sum_i evr_i * KLsym(P_g,i, P_h,i)`` with evr the global explained variance ratio.
:func:`drift` is the one definition of D; :func:`drift_matrix` and :func:`filterdb.inspect`
call it. :func:`drift_matrices` is the same D in expanded (Gram) form, for many matrices at once
(bootstrap and permutation replicates), checked against :func:`drift` in the tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .schema import schema_default

FLOORS = ("density", "probability")


def default_eps() -> float:
    """The config default of ``histogram.eps`` (the schema's; the study: float32 eps,
    1.1920929e-07). Keyword ``eps=None`` of this module's functions means this value."""
    return float(schema_default("histogram.eps"))


def default_floor() -> str:
    """The config default of ``histogram.floor`` (the schema's; the study: ``"density"``)."""
    return str(schema_default("histogram.floor"))


def __getattr__(name: str):
    # EPS: the schema's histogram.eps, read when asked for (not repeated here)
    if name == "EPS":
        return default_eps()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def bin_widths(edges: np.ndarray) -> np.ndarray:
    """Widths of the bins, as ``np.histogram(..., density=True)`` takes them.

    Parameters
    ----------
    edges : (bins + 1,) array_like

    Returns
    -------
    (bins,) float64 ndarray, ``np.diff(edges)``
    """
    return np.diff(np.asarray(edges, dtype=np.float64))


def probabilities(
    counts: np.ndarray, eps: float | None = None, floor: str | None = None, edges: np.ndarray | None = None
) -> np.ndarray:
    """Histogram counts → floored, renormalised distributions (docs/method.md §4).

    Parameters
    ----------
    counts : (..., bins) array_like
        Histogram counts over the last axis.
    eps : float, optional
        The floor given to empty bins; None: :func:`default_eps` (config ``histogram.eps``; the
        study: float32 eps).
    floor : {"density", "probability"}, optional
        None: :func:`default_floor` (config ``histogram.floor``). ``"density"`` (the study):
        ``v = counts / width / n`` as ``np.histogram(density=True)`` returns it,
        ``v[v == 0] = eps``, ``v / v.sum()``. ``"probability"``: the same on ``counts / n``.
    edges : (bins + 1,) array_like, optional
        Bin edges; required for ``floor="density"``.

    Returns
    -------
    (..., bins) float64 ndarray, strictly positive, each vector summing to 1 (an all-zero count
    vector gives the uniform distribution).
    """
    eps = default_eps() if eps is None else eps
    floor = default_floor() if floor is None else floor
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum(axis=-1, keepdims=True)
    if floor == "density":
        if edges is None:
            raise ValueError("floor 'density' needs the bin edges")
        w = bin_widths(edges)
        if w.shape != c.shape[-1:]:
            raise ValueError(f"{w.size} bin widths for histograms of {c.shape[-1]} bins")
        v = np.divide(c / w, total, out=np.zeros_like(c), where=total > 0)  # numpy: n / db / n.sum()
    elif floor == "probability":
        v = np.divide(c, total, out=np.zeros_like(c), where=total > 0)
    else:
        raise ValueError(f"histogram floor {floor!r} is not one of {', '.join(FLOORS)}")
    v[v == 0] = eps
    return v / v.sum(axis=-1, keepdims=True)


def drift(p: np.ndarray, q: np.ndarray, evr: np.ndarray) -> np.ndarray:
    """The drift ``D`` between histogram sets: THE definition (docs/method.md §4).

    ``D = sum_i evr_i sum_b (p_ib - q_ib) (log p_ib - log q_ib)``, i.e. the evr-weighted
    symmetric KL divergence (natural log) summed over the d coefficients (9 for 3x3 filters).

    Parameters
    ----------
    p, q : (..., d, bins) array_like
        Distributions from :func:`probabilities` (strictly positive); leading axes broadcast, so
        ``p`` of shape (d, bins) against ``q`` of shape (G, d, bins) gives D to each of G sets.
    evr : (d,) array_like
        Explained variance ratio of the global PCA.

    Returns
    -------
    (...) float64 ndarray, the broadcast leading shape.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    kl = np.sum((p - q) * (np.log(p) - np.log(q)), axis=-1)  # (..., d)
    return kl @ np.asarray(evr, dtype=np.float64)


def drift_to(p: np.ndarray, qs: np.ndarray, evr: np.ndarray, chunk: int = 256) -> np.ndarray:
    """:func:`drift` from one set ``p`` (d, bins) to each of ``qs`` (G, d, bins), in chunks of
    ``chunk`` sets (bounded memory). Returns (G,) float64.

    Parameters
    ----------
    p : (d, bins) array_like
        Distributions of one set, from :func:`probabilities` (strictly positive).
    qs : (G, d, bins) array_like
        Distributions of G sets, from :func:`probabilities`.
    evr : (d,) array_like
        Explained variance ratio of the global PCA.
    chunk : int
        Number of sets of ``qs`` processed at a time.

    Returns
    -------
    (G,) float64 ndarray
        ``out[g]`` is :func:`drift` ``(p, qs[g], evr)``.
    """
    qs = np.asarray(qs)
    out = np.empty(qs.shape[0])
    for a in range(0, qs.shape[0], chunk):
        out[a : a + chunk] = drift(p, qs[a : a + chunk], evr)
    return out


def drift_matrix(
    group_counts: np.ndarray,
    evr: np.ndarray,
    eps: float | None = None,
    floor: str | None = None,
    edges: np.ndarray | None = None,
) -> np.ndarray:
    """The drift matrix of one axis.

    Parameters
    ----------
    group_counts : (G, d, bins) array_like
        Group histograms (sums of their layers' histograms).
    evr : (d,) array_like
    eps, floor, edges
        As :func:`probabilities`.

    Returns
    -------
    (G, G) float64 ndarray, symmetric, zero diagonal; row a is :func:`drift` of group a to all.
    """
    p = probabilities(group_counts, eps, floor, edges)  # (G, d, B)
    g = p.shape[0]
    d = np.zeros((g, g))
    for a in range(g):
        d[a, a + 1 :] = drift_to(p[a], p[a + 1 :], evr)
    iu = np.triu_indices(g, k=1)
    d[(iu[1], iu[0])] = d[iu]
    return d


def _gram_to_drift(c: np.ndarray, chunk: int) -> np.ndarray:
    """Turn ``C`` (G, G) into ``D = C[g, g] + C[h, h] - C[g, h] - C[h, g]`` in place, ``chunk``
    rows and columns at a time (no second G x G array); zero diagonal, exactly symmetric."""
    g = c.shape[0]
    s = np.diagonal(c).copy()
    for i0 in range(0, g, chunk):
        i = slice(i0, min(i0 + chunk, g))
        for j0 in range(i0, g, chunk):
            j = slice(j0, min(j0 + chunk, g))
            block = s[i, None] + s[None, j] - (c[i, j] + c[j, i].T)
            c[i, j] = block
            c[j, i] = block.T
    np.fill_diagonal(c, 0.0)
    return c


def drift_matrices(p: np.ndarray, evr: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """:func:`drift` between all pairs of G sets, for many stacks at once (expanded form).

    ``D(g, h) = C[g, g] + C[h, h] - C[g, h] - C[h, g]`` with
    ``C[g, h] = sum_i evr_i sum_b p_g,ib log p_h,ib``: the same number as :func:`drift` (one
    batched matrix product instead of G^2 elementwise passes; equal to rounding, tested).

    Parameters
    ----------
    p : (..., G, d, bins) array_like
        Distributions from :func:`probabilities`.
    evr : (d,) array_like
    chunk : int
        Rows and columns turned from ``C`` into ``D`` at a time (memory: one G x G array per stack).

    Returns
    -------
    (..., G, G) float64 ndarray, symmetric, zero diagonal.
    """
    p = np.asarray(p, dtype=np.float64)
    w = np.asarray(evr, dtype=np.float64)
    shp = p.shape[:-2]
    pw = (p * w[:, None]).reshape(shp + (-1,))
    lp = np.log(p).reshape(shp + (-1,))
    g = p.shape[-3]
    pw2, lp2 = pw.reshape(-1, g, pw.shape[-1]), lp.reshape(-1, g, lp.shape[-1])
    c = np.empty((pw2.shape[0], g, g))
    for k in range(pw2.shape[0]):  # one BLAS gemm per stack (numpy's stacked matmul does not use BLAS)
        np.matmul(pw2[k], lp2[k].T, out=c[k])
        _gram_to_drift(c[k], chunk)
    return c.reshape(shp[:-1] + (g, g))


def group_counts(layer_counts: np.ndarray, labels: pd.Series, groups: list, chunk: int = 4096) -> np.ndarray:
    """Sum per-layer histograms into group histograms.

    Parameters
    ----------
    layer_counts : (L, d, bins) array_like
    labels : pandas.Series of length L
        Group label per layer (NaN: in no group).
    groups : list of G labels
    chunk : int
        Layers summed at a time (the temporaries hold this many layers' histograms).

    Returns
    -------
    (G, d, bins) int64 ndarray, in the order of ``groups``.
    """
    layer_counts = np.asarray(layer_counts)
    out = np.zeros((len(groups),) + layer_counts.shape[1:], dtype=np.int64)
    # the group of each layer (-1: none), then the layers of each group summed in one pass
    pos = {g: k for k, g in enumerate(groups)}
    codes, uniq = pd.factorize(labels, use_na_sentinel=True)
    of = np.array([pos.get(u, -1) for u in uniq] + [-1], np.int64)[codes]
    for c0 in range(0, of.size, chunk):  # a chunk of layers at a time: bounded temporaries
        sel = np.flatnonzero(of[c0 : c0 + chunk] >= 0) + c0
        if not sel.size:
            continue
        order = sel[np.argsort(of[sel], kind="stable")]
        k = of[order]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        out[k[starts]] += np.add.reduceat(layer_counts[order].astype(np.int64), starts, axis=0)
    return out


def order_by_mean_drift(d: np.ndarray, groups: list) -> np.ndarray:
    """Permutation sorting groups by ascending mean drift (ties: by label), as in the study.

    Parameters
    ----------
    d : (G, G) array_like
    groups : list of G labels

    Returns
    -------
    (G,) int ndarray
    """
    mean = d.mean(axis=1) if len(groups) else np.zeros(0)
    return np.array(sorted(range(len(groups)), key=lambda k: (mean[k], str(groups[k]))), dtype=int)


def drift_table(d: np.ndarray, groups: list) -> pd.DataFrame:
    """``drift/{axis}.tsv``: first column ``group``, then one column per group, same order.

    Parameters
    ----------
    d : (G, G) array_like
    groups : list of G labels

    Returns
    -------
    pandas.DataFrame of G rows and G + 1 columns.
    """
    df = pd.DataFrame(d, columns=[str(g) for g in groups])
    df.insert(0, "group", [str(g) for g in groups])
    return df


def upper_triangle(d: np.ndarray) -> np.ndarray:
    """The k=1 upper-triangle values (what the study's drift box plot shows).

    Parameters
    ----------
    d : (G, G) array_like

    Returns
    -------
    (G * (G - 1) / 2,) ndarray
    """
    return d[np.triu_indices(d.shape[0], k=1)]
