"""Coefficient distributions and the drift D (analysis.md §4).

For groups g, h and coefficient i, ``P_g,i`` is the 70-bin histogram of c_i over the shared range.
The study (``np.histogram(x, range=r, bins=70, density=True)``) floors the **density**
``v = counts / (n * bin_width)``: bins where ``v == 0`` get float32 eps (1.1920929e-07), then ``v``
is renormalised (float64). That is the default (``floor="density"``); ``floor="probability"``
floors ``counts / n`` instead (with bin width w the density floor is worth ``eps * w`` in
probability, so the two differ wherever a group has empty bins). ``KLsym(P, Q) = KL(P||Q) + KL(Q||P)`` (natural log) and
``D(g, h) = sum_i evr_i * KLsym(P_g,i, P_h,i)`` with evr the global explained variance ratio.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EPS = float(np.finfo(np.float32).eps)
FLOORS = ("density", "probability")


def probabilities(counts: np.ndarray, eps: float = EPS, floor: str = "density",
                  edges: np.ndarray | None = None) -> np.ndarray:
    """Counts ``(..., bins)`` → distributions with the eps floor on empty bins, renormalised.

    ``floor="density"`` (the study) floors ``counts / width / n`` (``np.histogram(density=True)``;
    needs ``edges``), ``floor="probability"`` floors ``counts / n``."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum(axis=-1, keepdims=True)
    if floor == "density":
        if edges is None:
            raise ValueError("floor 'density' needs the bin edges")
        w = np.diff(np.asarray(edges, dtype=np.float64))
        p = np.divide(c / w, total, out=np.zeros_like(c), where=total > 0)
    elif floor == "probability":
        p = np.divide(c, total, out=np.zeros_like(c), where=total > 0)
    else:
        raise ValueError(f"histogram floor {floor!r} is not one of {', '.join(FLOORS)}")
    p[p == 0] = eps
    return p / p.sum(axis=-1, keepdims=True)


def kl_sym(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Symmetric KL over the last axis (natural log); inputs strictly positive, normalised."""
    lr = np.log(p) - np.log(q)
    return np.sum((p - q) * lr, axis=-1)


def drift_matrix(group_counts: np.ndarray, evr: np.ndarray, eps: float = EPS, floor: str = "density",
                 edges: np.ndarray | None = None) -> np.ndarray:
    """``D`` for groups with histograms ``group_counts`` of shape ``(G, 9, bins)``."""
    p = probabilities(group_counts, eps, floor, edges)  # (G, 9, B)
    logp = np.log(p)
    g = p.shape[0]
    d = np.zeros((g, g))
    w = np.asarray(evr, dtype=np.float64)
    for a in range(g):
        for b in range(a + 1, g):
            kl = np.sum((p[a] - p[b]) * (logp[a] - logp[b]), axis=-1)  # (9,)
            d[a, b] = d[b, a] = float(np.dot(w, kl))
    return d


def group_counts(layer_counts: np.ndarray, labels: pd.Series, groups: list) -> np.ndarray:
    """Sum layer histograms ``(L, 9, bins)`` into group histograms ``(G, 9, bins)``, in layer order."""
    lab = labels.to_numpy(dtype=object)
    out = np.zeros((len(groups),) + layer_counts.shape[1:], dtype=np.int64)
    for k, g in enumerate(groups):
        idx = np.flatnonzero(lab == g)
        if idx.size:
            out[k] = layer_counts[idx].sum(axis=0)
    return out


def order_by_mean_drift(d: np.ndarray, groups: list) -> np.ndarray:
    """Permutation sorting groups by ascending mean drift (ties: by label), as in the study."""
    mean = d.mean(axis=1) if len(groups) else np.zeros(0)
    return np.array(sorted(range(len(groups)), key=lambda k: (mean[k], str(groups[k]))), dtype=int)


def drift_table(d: np.ndarray, groups: list) -> pd.DataFrame:
    """``drift/{axis}.tsv``: first column ``group``, then one column per group, same order."""
    df = pd.DataFrame(d, columns=[str(g) for g in groups])
    df.insert(0, "group", [str(g) for g in groups])
    return df


def upper_triangle(d: np.ndarray) -> np.ndarray:
    """The k=1 upper-triangle values (what the study's drift box plot shows)."""
    return d[np.triu_indices(d.shape[0], k=1)]
