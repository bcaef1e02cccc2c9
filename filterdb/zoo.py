"""The zoo's structure: model x model drift, clustering, embedding, nearest models (docs/method.md §11).

Every model is the union of its conv layers, so its coefficient histograms are sums of its layers'
histograms (``stats/hist.npz``; :func:`model_counts`): no filter is read again. From them:

* :func:`drift_matrix`: the M x M matrix of the drift D of §4 between every pair of models
  (weights: the global explained variance ratios, the study's D, or 1/d each: :func:`component_weights`;
  histograms over the run's shared range or over a fixed range: :func:`model_histograms`);
* :func:`cluster`: a hierarchical clustering of the models (scipy, average linkage by default) and its
  leaf order (:func:`leaf_order`), the heatmap's order;
* :func:`classical_mds`: a 2-D embedding (classical, Torgerson, MDS of D read as squared
  dissimilarities) with the share of negative eigenvalues as a measure of how far D is from Euclidean;
* :func:`nearest_models`: each model's k nearest other models.

Models are identified by the layer table's ``model`` column (``model_id`` when there is none or it has
empty cells) and listed in name order (:func:`model_names`): the rows of ``models/drift.tsv`` and the
index of :func:`model_labels`, the label of each model on an axis (for the axis tests of §11).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import divergence
from .axes import Axis, layer_labels

#: Linkage methods that work on any dissimilarity (scipy's Lance-Williams updates need no geometry).
LINKAGES = ("average", "complete", "single", "weighted")
#: scipy's methods that assume Euclidean distances (D is not): refused.
EUCLIDEAN_LINKAGES = ("ward", "centroid", "median")
WEIGHTS = ("evr", "equal")
MIN_MODELS = 3
#: Rows of the drift matrix processed at a time (the blocks of :func:`drift_matrix`, :func:`nearest_models`).
CHUNK = 1024
#: ``optimal_ordering: auto`` reorders the leaves up to this many models (its cost grows with M³:
#: ~0.4 s at 650 models, 15 s at 2,000, 6 min at 5,000 on 2 cores).
OPTIMAL_ORDERING_MAX = 2000
#: Up to this many models the MDS takes every eigenvector at once; above, the leading ones by Lanczos.
DENSE_MDS_MAX = 500


@functools.cache
def _defaults() -> dict:
    """The schema's defaults of ``models`` (the schema owns every default)."""
    from .settings import schema_defaults

    return schema_defaults()["models"]


def _default(key: str):
    return field(default_factory=lambda: _defaults()[key])


@dataclass(frozen=True)
class ZooSettings:
    """Settings of the model x model analysis (config ``models``; defaults = the schema's).

    Attributes
    ----------
    weights : str
        ``evr`` (the study's D) or ``equal`` (1/d per coefficient, 1/9 for 3x3).
    range : str or sequence of 2 floats
        ``auto`` (the run's shared range, the study's) or ``[lo, hi]`` (a fixed range).
    linkage : str
        One of :data:`LINKAGES`.
    optimal_ordering : bool or str
        scipy's optimal leaf ordering of the dendrogram (``auto``: up to :data:`OPTIMAL_ORDERING_MAX`
        models).
    nearest : int
        Nearest models listed per model.
    """

    weights: str = _default("weights")
    range: object = _default("range")
    linkage: str = _default("linkage")
    optimal_ordering: object = _default("optimal_ordering")
    nearest: int = _default("nearest")

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> ZooSettings:
        """From config ``models`` (unknown keys such as ``enabled``, ``axes`` ignored)."""
        cfg = dict(cfg or {})
        keys = ("weights", "range", "linkage", "optimal_ordering", "nearest")
        return cls(**{k: cfg[k] for k in keys if k in cfg})


# ---------------------------------------------------------------------------------------------
# Models and their labels


def model_key(layers: pd.DataFrame) -> tuple[pd.Series, str]:
    """The model of each layer, as text, and the column it comes from.

    ``model`` when the layer table has that column and no layer leaves it empty, else ``model_id``.

    Parameters
    ----------
    layers : pandas.DataFrame
        The layer table (``stats/layers.tsv``).

    Returns
    -------
    key : pandas.Series of str, aligned with ``layers``
    column : str
        ``"model"`` or ``"model_id"``.
    """
    if "model" in layers.columns:
        v = layers["model"]
        if not (v.isna().any() or (v.astype(str).str.strip() == "").any()):
            return v.astype(str), "model"
    return layers["model_id"].astype(str), "model_id"


def model_names(layers: pd.DataFrame) -> list[str]:
    """The models of the analysis in their documented order: the distinct values of
    :func:`model_key`'s column, sorted (numerically for a numeric column, else as text), leaving out
    models whose layers hold no filter (no distribution)."""
    key, col = model_key(layers)
    n = pd.Series(layers["n_filters"].to_numpy(), index=key.to_numpy()).groupby(level=0).sum()
    values = pd.unique(layers[col])
    try:
        values = sorted(values)
    except TypeError:  # mixed types: as text
        values = sorted(values, key=str)
    names = list(dict.fromkeys(str(v) for v in values))
    return [m for m in names if n.get(m, 0) > 0]


def model_table(layers: pd.DataFrame) -> pd.DataFrame:
    """Per model of :func:`model_names` (in that order): ``model``, ``n_layers``, ``n_filters``."""
    key, _ = model_key(layers)
    names = model_names(layers)
    g = pd.DataFrame({"model": key.to_numpy(), "n_filters": layers["n_filters"].to_numpy()}).groupby("model")
    tab = g.agg(n_layers=("n_filters", "size"), n_filters=("n_filters", "sum")).reindex(names)
    return tab.reset_index()


def model_labels(layers: pd.DataFrame, axis: Axis) -> pd.Series:
    """The label of each model on ``axis``: the one label all of the model's layers carry.

    A model-level label exists on categorical and present axes when every layer of the model
    carries the same label; a model whose layers carry different labels, or some none, gets NaN.
    Binned axes (depth) group layers, not models: every model gets NaN there.

    Parameters
    ----------
    layers : pandas.DataFrame
        The layer table, with the axis's column.
    axis : filterdb.axes.Axis

    Returns
    -------
    pandas.Series
        object dtype, indexed by :func:`model_names` (the rows of ``models/drift.tsv``; index name
        ``model``); NaN where a model has none or mixed labels.
    """
    names = model_names(layers)
    index = pd.Index(names, name="model", dtype=object)
    if axis.kind == "binned":
        return pd.Series(np.nan, index=index, dtype=object, name=axis.name)
    key, _ = model_key(layers)
    lab = layer_labels(layers, axis)
    df = pd.DataFrame({"model": key.to_numpy(), "label": lab.to_numpy(), "none": lab.isna().to_numpy()})
    g = df.groupby("model", sort=False)
    single = (g["label"].nunique() == 1) & ~g["none"].any()
    first = g["label"].first()
    out = first.where(single).reindex(names)
    out = out.astype(object).where(out.notna(), np.nan)
    return pd.Series(out.to_numpy(), index=index, dtype=object, name=axis.name)


def label_axes(axes: Mapping[str, Mapping]) -> list[str]:
    """The configured axes that can label a model (every kind but ``binned``), in config order."""
    return [name for name, cfg in axes.items() if dict(cfg).get("kind", "categorical") != "binned"]


# ---------------------------------------------------------------------------------------------
# Histograms and the drift matrix


def model_histograms(hist: Mapping, range_setting="auto", source: str = "stats/hist.npz"):
    """The per-layer histograms and edges the model analysis uses.

    Parameters
    ----------
    hist : mapping
        The arrays of ``stats/hist.npz``: ``counts`` (L, d, bins) over ``edges``, and, when the run
        counted a fixed range, ``fixed_counts`` (L, d, bins) over ``fixed_edges``.
    range_setting : ``"auto"`` or (lo, hi)
        Config ``models.range``.
    source : str
        The file, for error messages.

    Returns
    -------
    counts : (L, d, bins) array
    edges : (bins + 1,) float64 array

    Raises
    ------
    ValueError
        A fixed range that is not ``lo < hi``, or whose histograms ``hist`` does not hold.
    """
    if isinstance(range_setting, str):
        if range_setting != "auto":
            raise ValueError(f"config models/range: {range_setting!r} is not auto or [lo, hi]")
        return hist["counts"], np.asarray(hist["edges"], np.float64)
    lo, hi = (float(v) for v in range_setting)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"config models/range: [{lo:g}, {hi:g}] is not a range [lo, hi] with lo < hi")
    if "fixed_counts" not in hist or "fixed_edges" not in hist:
        raise ValueError(
            f"{source} has no fixed_counts: config models/range is [{lo:g}, {hi:g}], but the histogram pass "
            "that wrote it did not count that fixed range (rerun it with this configuration)"
        )
    counts, edges = hist["fixed_counts"], np.asarray(hist["fixed_edges"], np.float64)
    if not (np.isclose(edges[0], lo, rtol=1e-12, atol=0) and np.isclose(edges[-1], hi, rtol=1e-12, atol=0)):
        raise ValueError(
            f"{source}: fixed_edges span [{edges[0]:g}, {edges[-1]:g}], config models/range is [{lo:g}, {hi:g}]"
        )
    want = (hist["counts"].shape[0], hist["counts"].shape[1], edges.size - 1)
    if counts.ndim != 3 or counts.shape != want:
        raise ValueError(f"{source}: fixed_counts has shape {counts.shape}, expected {want}")
    return counts, edges


def model_counts(layers: pd.DataFrame, counts: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Per model the sum of its layers' histograms.

    Parameters
    ----------
    layers : pandas.DataFrame of L rows
    counts : (L, d, bins) array_like

    Returns
    -------
    names : list of M str (:func:`model_names`)
    model_counts : (M, d, bins) int64 ndarray, in the order of ``names``
    """
    names = model_names(layers)
    key, _ = model_key(layers)
    return names, divergence.group_counts(counts, key, names)


def component_weights(evr: np.ndarray, weights: str = "evr") -> np.ndarray:
    """The d coefficient weights of D: the explained variance ratios (``evr``, the study) or 1/d
    each (``equal``; 1/9 for 3x3 filters)."""
    if weights == "evr":
        return np.asarray(evr, dtype=np.float64)
    if weights == "equal":
        d = np.asarray(evr).size
        return np.full(d, 1.0 / d)
    raise ValueError(f"config models/weights: {weights!r} is not one of {', '.join(WEIGHTS)}")


def drift_matrix(p: np.ndarray, weights: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """D between every pair of M distributions: :func:`filterdb.divergence.drift_matrices` (the
    expanded form, one BLAS product turned into D in place ``chunk`` rows and columns at a time:
    memory O(M² + M·d·bins)), with the values that rounding makes negative set to 0.

    Parameters
    ----------
    p : (M, d, bins) array_like
        Distributions from :func:`filterdb.divergence.probabilities` (strictly positive).
    weights : (d,) array_like
        Coefficient weights (:func:`component_weights`).
    chunk : int

    Returns
    -------
    (M, M) float64 ndarray
    """
    d = divergence.drift_matrices(np.asarray(p, dtype=np.float64), weights, chunk=chunk)
    np.maximum(d, 0.0, out=d)
    return d


def model_drift(
    layers: pd.DataFrame,
    counts: np.ndarray,
    edges: np.ndarray,
    evr: np.ndarray,
    weights: str = "evr",
    eps: float | None = None,
    floor: str | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The model x model drift matrix from the per-layer histograms.

    Returns
    -------
    names : list of M str (:func:`model_names`)
    D : (M, M) float64 ndarray, rows and columns in the order of ``names``
    model_counts : (M, d, bins) int64 ndarray
    """
    names, mc = model_counts(layers, counts)
    p = divergence.probabilities(mc, eps, floor, edges)
    return names, drift_matrix(p, component_weights(evr, weights)), mc


def drift_frame(d: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """``models/drift.tsv``: first column ``model``, then one column per model, same order."""
    df = pd.DataFrame(np.asarray(d), columns=[str(n) for n in names])
    df.insert(0, "model", [str(n) for n in names])
    return df


def read_drift(path) -> tuple[list[str], np.ndarray]:
    """``models/drift.tsv`` back: ``(model names, D (M, M) float64)``; names read as text as written
    (``007`` stays ``007``, an empty name stays empty)."""
    t = pd.read_csv(path, sep="\t", keep_default_na=False, dtype={"model": str})
    if not len(t.columns) or t.columns[0] != "model":
        raise ValueError(f"{path}: expected a first column 'model' (a models/drift.tsv table)")
    return t["model"].tolist(), t.iloc[:, 1:].to_numpy(np.float64)


# ---------------------------------------------------------------------------------------------
# Clustering


def check_linkage(method: str) -> str:
    """``method`` if it is one of :data:`LINKAGES`; else one clear ValueError line."""
    if method in EUCLIDEAN_LINKAGES:
        raise ValueError(
            f"config models/linkage: {method!r} assumes Euclidean distances, which the drift D is not "
            f"(a sum of KL divergences); use one of {', '.join(LINKAGES)}"
        )
    if method not in LINKAGES:
        raise ValueError(f"config models/linkage: {method!r} is not one of {', '.join(LINKAGES)}")
    return method


def condensed(d: np.ndarray) -> np.ndarray:
    """The upper triangle of ``d`` row by row (scipy's condensed form, ``squareform``)."""
    from scipy.spatial.distance import squareform

    return squareform(np.asarray(d, dtype=np.float64), checks=False)


def resolve_ordering(optimal_ordering, n_models: int) -> bool:
    """Config ``models.optimal_ordering``: True, False, or ``auto`` (on up to
    :data:`OPTIMAL_ORDERING_MAX` models)."""
    if isinstance(optimal_ordering, str):
        if optimal_ordering != "auto":
            raise ValueError(f"config models/optimal_ordering: {optimal_ordering!r} is not auto, true or false")
        return n_models <= OPTIMAL_ORDERING_MAX
    return bool(optimal_ordering)


def cluster(d: np.ndarray, method: str = "average", optimal_ordering="auto") -> np.ndarray:
    """Hierarchical clustering of the models: ``scipy.cluster.hierarchy.linkage`` on the condensed
    drift matrix.

    Parameters
    ----------
    d : (M, M) array_like
        The drift matrix (symmetric, zero diagonal).
    method : str
        One of :data:`LINKAGES` (``ward``, ``centroid``, ``median`` are refused: D is not Euclidean).
    optimal_ordering : bool or "auto"
        scipy's optimal leaf ordering (the tree is the same, the order of its leaves changes);
        ``auto``: up to :data:`OPTIMAL_ORDERING_MAX` models (:func:`resolve_ordering`).

    Returns
    -------
    (M - 1, 4) float64 ndarray
        scipy's linkage matrix: merged ids (``< M``: a model, the row of ``d``; ``M + k``: the cluster
        of row k), height, size.
    """
    from scipy.cluster.hierarchy import linkage

    check_linkage(method)
    ordering = resolve_ordering(optimal_ordering, np.shape(d)[0])
    return linkage(condensed(d), method=method, optimal_ordering=ordering)


def leaf_order(z: np.ndarray) -> np.ndarray:
    """The dendrogram's leaves left to right (rows of the drift matrix): ``scipy leaves_list``."""
    from scipy.cluster.hierarchy import leaves_list

    return leaves_list(np.asarray(z, dtype=np.float64)).astype(np.int64)


def linkage_frame(z: np.ndarray) -> pd.DataFrame:
    """``models/linkage.tsv``: one row per merge (scipy's linkage rows): ``step``, ``cluster`` (the
    new id, ``M + step``), ``left``, ``right`` (merged ids: below M a model, the row of
    ``models/drift.tsv``), ``height`` and ``n_models`` (size of the new cluster)."""
    z = np.asarray(z, dtype=np.float64)
    m = z.shape[0] + 1
    return pd.DataFrame(
        {
            "step": np.arange(z.shape[0]),
            "cluster": m + np.arange(z.shape[0]),
            "left": z[:, 0].astype(np.int64),
            "right": z[:, 1].astype(np.int64),
            "height": z[:, 2],
            "n_models": z[:, 3].astype(np.int64),
        }
    )


def linkage_from_frame(t: pd.DataFrame) -> np.ndarray:
    """The scipy linkage matrix back from a :func:`linkage_frame` table."""
    return t[["left", "right", "height", "n_models"]].to_numpy(np.float64)


def order_frame(order: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """``models/order.tsv``: ``position`` (0 = top row of the heatmap), ``model``, ``row`` (its row in
    ``models/drift.tsv``)."""
    order = np.asarray(order, dtype=np.int64)
    return pd.DataFrame({"position": np.arange(order.size), "model": [names[k] for k in order], "row": order})


def dendrogram_lines(z: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The dendrogram as line segments, leaves at positions 0..M-1 in ``order`` (as the heatmap rows).

    Each merge is drawn as scipy's dendrogram draws it: a node sits at the mean position of its two
    children, and its link goes from the left child's height up to the merge height, across, and
    down to the right child's height (a leaf at height 0). Computed without recursion (scipy's
    ``dendrogram`` recurses once per tree level).

    Returns
    -------
    (M - 1, 4, 2) float64 ndarray
        Per merge the 4 points ``(position, height)`` of its link.
    """
    z = np.asarray(z, dtype=np.float64)
    m = z.shape[0] + 1
    pos = np.empty(2 * m - 1)
    height = np.zeros(2 * m - 1)
    pos[np.asarray(order, dtype=np.int64)] = np.arange(m)
    out = np.empty((m - 1, 4, 2))
    for k in range(m - 1):
        a, b, h = int(z[k, 0]), int(z[k, 1]), z[k, 2]
        pos[m + k] = (pos[a] + pos[b]) / 2
        height[m + k] = h
        out[k] = [[pos[a], height[a]], [pos[a], h], [pos[b], h], [pos[b], height[b]]]
    return out


def cophenetic_correlation(z: np.ndarray, d: np.ndarray) -> float:
    """Pearson correlation of the dendrogram's cophenetic heights with D (scipy ``cophenet``)."""
    from scipy.cluster.hierarchy import cophenet

    c, _ = cophenet(np.asarray(z, dtype=np.float64), condensed(d))
    return float(c)


# ---------------------------------------------------------------------------------------------
# Embedding


def _flip_signs(v: np.ndarray) -> np.ndarray:
    """Each column flipped so that its entry of largest magnitude is positive (the first such on a
    tie), as the PCA components of §2."""
    if not v.size:
        return v
    k = np.argmax(np.abs(v), axis=0)
    s = np.sign(v[k, np.arange(v.shape[1])])
    s[s == 0] = 1
    return v * s


def classical_mds(d: np.ndarray, dims: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Classical (Torgerson) MDS of D read as squared dissimilarities.

    ``B = -1/2 J D J`` (``J = I - 11ᵀ/M``, the double centring) is decomposed: every eigenvalue
    (``scipy.linalg.eigh`` / ``eigvalsh``, LAPACK's divide and conquer) and, above
    :data:`DENSE_MDS_MAX` models, the ``dims`` leading eigenvectors by Lanczos iteration
    (``scipy.sparse.linalg.eigsh`` to machine precision, from a fixed start vector). The coordinates
    are ``x_j = sqrt(max(λ_j, 0)) v_j`` for the ``dims`` largest eigenvalues, each eigenvector with
    its entry of largest magnitude positive (the first on a tie).

    Parameters
    ----------
    d : (M, M) array_like
    dims : int

    Returns
    -------
    coords : (M, dims) float64 ndarray
    eigenvalues : (M,) float64 ndarray, descending (negative ones: D is not Euclidean)
    """
    from scipy.linalg import eigh, eigvalsh

    d = np.asarray(d, dtype=np.float64)
    m = d.shape[0]
    r = d.mean(axis=1)
    b = d - r[:, None]
    b -= r[None, :]
    b += r.mean()
    b *= -0.5
    k = min(dims, m)
    if m <= DENSE_MDS_MAX:
        w, v = eigh(b, driver="evd", check_finite=False)
        w, v = w[::-1], v[:, ::-1][:, :k]
    else:  # every eigenvalue (for the shares), the leading eigenvectors by Lanczos iteration
        from scipy.sparse.linalg import eigsh

        w = eigvalsh(b, driver="evd", check_finite=False)[::-1]
        v0 = np.random.default_rng(0).standard_normal(m)  # a fixed start: the same bits every run
        lam, v = eigsh(b, k=k, which="LA", v0=v0, tol=0)
        v = v[:, np.argsort(lam)[::-1]]
    vk = _flip_signs(np.ascontiguousarray(v))
    coords = np.zeros((m, dims))
    coords[:, :k] = vk * np.sqrt(np.maximum(w[:k], 0.0))
    return coords, w


def spectrum_shares(eigenvalues: np.ndarray, dims: int = 2) -> dict:
    """How Euclidean D is and how much the embedding shows.

    Returns
    -------
    dict
        ``negative_share``: Σ|λ| of the negative eigenvalues over Σ|λ| (0 for a Euclidean D; eigenvalues
        above ``-M·ε·max|λ|`` count as 0, rounding); ``shown_share``: the ``dims`` largest positive
        eigenvalues over the sum of the positive ones.
    """
    w = np.asarray(eigenvalues, dtype=np.float64)
    tol = w.size * np.finfo(np.float64).eps * (np.abs(w).max() if w.size else 0.0)
    neg = abs(w[w < -tol].sum())
    pos = w[w > tol].sum()
    total = neg + pos
    shown = np.clip(w[:dims], 0.0, None).sum()
    return {
        "negative_share": float(neg / total) if total > 0 else 0.0,
        "shown_share": float(shown / pos) if pos > 0 else 0.0,
    }


# ---------------------------------------------------------------------------------------------
# Nearest models


def nearest_models(d: np.ndarray, names: Sequence[str], k: int = 5, chunk: int = CHUNK) -> pd.DataFrame:
    """``models/nearest.tsv``: for each model its ``k`` nearest other models by D.

    Ties are broken by the order of ``names`` (a stable sort of each row); a model has
    ``min(k, M - 1)`` neighbours.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``rank`` (1 = nearest), ``neighbour``, ``drift``; models in the order of ``names``.
    """
    d = np.asarray(d, dtype=np.float64)
    m = d.shape[0]
    k = max(0, min(int(k), m - 1))
    idx = np.empty((m, k), np.int64)
    for r0 in range(0, m, chunk):
        rows = np.arange(r0, min(r0 + chunk, m))
        block = d[rows].copy()
        block[np.arange(rows.size), rows] = np.inf
        idx[rows] = np.argsort(block, axis=1, kind="stable")[:, :k]
    names = np.asarray([str(n) for n in names], dtype=object)
    return pd.DataFrame(
        {
            "model": np.repeat(names, k),
            "rank": np.tile(np.arange(1, k + 1), m),
            "neighbour": names[idx.ravel()],
            "drift": d[np.repeat(np.arange(m), k), idx.ravel()],
        }
    )


# ---------------------------------------------------------------------------------------------
# When the analysis runs (config models.enabled)


def count_models(path: str | os.PathLike) -> int | None:
    """The number of distinct ``model_id`` of a DB's meta table, read with the safe meta reader
    :func:`filterdb.db.read_meta` (its size and content checks apply: a hostile meta is refused,
    never read raw); None when the file cannot be read here (the job that reads it reports why)."""
    from .db import read_meta

    try:
        meta = read_meta(path)
    except Exception:  # not readable here: the job that reads the DB reports it in one line
        return None
    if "model_id" in (meta.index.names or []):
        return int(meta.index.get_level_values("model_id").nunique())
    return int(meta["model_id"].nunique()) if "model_id" in meta.columns else None


def decide(enabled, n_models: int | None, max_models: int) -> tuple[bool, str]:
    """Whether the model analysis runs (config ``models.enabled``), and why.

    Parameters
    ----------
    enabled : ``"auto"``, True or False
    n_models : int or None
        The DB's model count (:func:`count_models`); None when it is not known yet (a DB this run
        builds first): ``auto`` then runs and the job checks the count itself.
    max_models : int
        ``models.max_models``: the largest DB ``auto`` runs for.

    Returns
    -------
    (bool, str)
    """
    if enabled is False or enabled == "false":
        return False, "models.enabled is false"
    if enabled is True or enabled == "true":
        return True, "models.enabled is true"
    if n_models is None:
        return True, "models.enabled auto: the DB's model count is not known yet (the job checks it)"
    if n_models < MIN_MODELS:
        return False, f"models.enabled auto: {n_models} models, fewer than {MIN_MODELS}"
    if n_models > max_models:
        return False, f"models.enabled auto: {n_models} models, more than models.max_models = {max_models}"
    return True, f"models.enabled auto: {n_models} models"


# ---------------------------------------------------------------------------------------------
# The whole analysis


@dataclass
class Zoo:
    """The model x model structure of a DB (what ``models/*.tsv`` hold)."""

    names: list  # M models, the rows of D
    d: np.ndarray  # (M, M)
    counts: np.ndarray  # (M, d, bins) model histograms
    edges: np.ndarray  # (bins + 1,)
    linkage: np.ndarray  # (M - 1, 4)
    order: np.ndarray  # (M,) leaf order
    coords: np.ndarray  # (M, 2)
    eigenvalues: np.ndarray  # (M,)
    nearest: pd.DataFrame
    settings: ZooSettings
    summary: dict = field(default_factory=dict)


def analyse(
    layers: pd.DataFrame,
    hist: Mapping,
    evr: np.ndarray,
    settings: ZooSettings | None = None,
    eps: float | None = None,
    floor: str | None = None,
    source: str = "stats/hist.npz",
) -> Zoo:
    """Drift matrix, clustering, embedding and nearest models of the models of ``layers``.

    Parameters
    ----------
    layers : pandas.DataFrame
        The layer table (``stats/layers.tsv``).
    hist : mapping
        ``stats/hist.npz`` (``counts``, ``edges``; ``fixed_counts``, ``fixed_edges`` for a fixed range).
    evr : (d,) array_like
        Global explained variance ratio.
    settings : ZooSettings, optional
    eps, floor
        As :func:`filterdb.divergence.probabilities` (config ``histogram``; None: its default).
    source : str
        Name of the histogram file, for error messages.

    Raises
    ------
    ValueError
        Fewer than 3 models with filters, a refused linkage, a fixed range without its histograms.
    """
    s = settings or ZooSettings()
    eps = divergence.default_eps() if eps is None else eps
    floor = divergence.default_floor() if floor is None else floor
    check_linkage(s.linkage)
    counts, edges = model_histograms(hist, s.range, source)
    names, d, mc = model_drift(layers, counts, edges, evr, s.weights, eps, floor)
    if len(names) < MIN_MODELS:
        raise ValueError(
            f"the model x model analysis needs at least {MIN_MODELS} models with filters, the DB has "
            f"{len(names)} (set models.enabled to auto or false)"
        )
    z = cluster(d, s.linkage, s.optimal_ordering)
    order = leaf_order(z)
    coords, w = classical_mds(d)
    near = nearest_models(d, names, s.nearest)
    shares = spectrum_shares(w)
    n_filters = int(np.sum(layers["n_filters"]))
    inside = int(mc.sum())
    width = int(mc.shape[1])  # coefficients per filter
    upper = divergence.upper_triangle(d)
    summary = {
        "n_models": len(names),
        "model_column": model_key(layers)[1],
        "n_filters": n_filters,
        "weights": s.weights,
        "range": "auto" if isinstance(s.range, str) else "fixed",
        "range_lo": float(edges[0]),
        "range_hi": float(edges[-1]),
        "bins": int(edges.size - 1),
        "floor": floor,
        "eps": float(eps),
        "outside_range_share": 1.0 - inside / (width * n_filters) if n_filters else 0.0,
        "D_mean": float(upper.mean()),
        "D_median": float(np.median(upper)),
        "D_max": float(upper.max()),
        "linkage": s.linkage,
        "optimal_ordering": resolve_ordering(s.optimal_ordering, len(names)),
        "cophenetic_correlation": cophenetic_correlation(z, d),
        "mds_eigenvalue_1": float(w[0]),
        "mds_eigenvalue_2": float(w[1]),
        "mds_shown_share": shares["shown_share"],
        "mds_negative_share": shares["negative_share"],
        "nearest": int(s.nearest),
    }
    return Zoo(names, d, mc, edges, z, order, coords, w, near, s, summary)


def embedding_frame(zoo: Zoo, layers: pd.DataFrame, axes: Mapping[str, Mapping]) -> pd.DataFrame:
    """``models/embedding.tsv``: ``model``, ``x``, ``y``, ``n_layers``, ``n_filters``, then the label of
    the model on every axis of :func:`label_axes` (empty: none or mixed)."""
    tab = model_table(layers).set_index("model").loc[zoo.names]
    out = pd.DataFrame(
        {
            "model": zoo.names,
            "x": zoo.coords[:, 0],
            "y": zoo.coords[:, 1],
            "n_layers": tab["n_layers"].to_numpy(),
            "n_filters": tab["n_filters"].to_numpy(),
        }
    )
    for name in label_axes(axes):
        lab = model_labels(layers, Axis.from_config(name, dict(axes[name])))
        out[name] = lab.reindex(zoo.names).to_numpy()
    return out


def empty_frames(label_axes: Sequence[str], why: str) -> dict[str, pd.DataFrame]:
    """The tables of ``models/`` without rows (``drift``, ``linkage``, ``order``, ``embedding``,
    ``nearest``) and a ``summary`` saying ``why``: what the job writes with ``models.enabled: auto``
    when the DB's model count, unknown when the run was planned, is outside 3 .. ``max_models``."""
    return {
        "drift": drift_frame(np.zeros((0, 0)), []),
        "linkage": linkage_frame(np.zeros((0, 4))),
        "order": order_frame(np.zeros(0, np.int64), []),
        "embedding": pd.DataFrame(columns=["model", "x", "y", "n_layers", "n_filters", *label_axes]),
        "nearest": pd.DataFrame(columns=["model", "rank", "neighbour", "drift"]),
        "summary": summary_frame({"n_models": 0, "note": why}),
    }


def summary_frame(summary: Mapping) -> pd.DataFrame:
    """``models/summary.tsv``: ``quantity``, ``value`` (floats as their shortest round-trip text)."""

    def text(v):
        if isinstance(v, (bool, np.bool_)):
            return "true" if v else "false"
        if isinstance(v, (float, np.floating)):
            return repr(float(v))
        return str(v)

    return pd.DataFrame({"quantity": list(summary), "value": [text(v) for v in summary.values()]})
