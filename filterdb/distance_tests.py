"""Tests of groupings on a distance matrix: which meta-parameter explains the model-to-model drift
(docs/method.md §11, "Which meta-parameter explains the distances").

One job: given a symmetric model x model drift matrix ``D`` (``{results}/models/drift.tsv``) and,
per axis, each model's label, say how much of the spread of the distances the labels explain.

* **δ from D** (``distance``): PERMANOVA works on squared dissimilarities. ``sqrt`` (default): the
  symmetric KL divergence behaves like a squared distance for close distributions (its second-order
  expansion is a quadratic form in the difference of the distributions), so ``δ = sqrt(D)`` and
  ``δ² = D``: the sums of squares are sums of drift values. ``drift``: ``δ = D``, ``δ² = D²``.
* **PERMANOVA** (Anderson 2001) on the N labelled models of an axis, G groups of ``n_g`` models::

      SS_T = (1/N) Σ_{i<j} δ_ij²           SS_W = Σ_g (1/n_g) Σ_{i<j in g} δ_ij²
      pseudo-F = ((SS_T − SS_W)/(G − 1)) / (SS_W/(N − G))       R² = 1 − SS_W/SS_T

  ``R2_expected = (G − 1)/(N − 1)`` is the exact mean of R² over all relabellings (every pair is
  within a group with the same probability), the level a grouping reaches by chance.
* **Permutations** (the unit is the model): permutation π gives model i the label of model π(i)
  (group sizes kept); ``p = (1 + #{F_π ≥ F}) / (1 + B)``. F is a decreasing function of SS_W at fixed
  SS_T, N and G, so the count is taken on SS_W (``SS_W_π ≤ SS_W + TOL · SS_T``, which also holds for
  F = inf): a relabelling that only swaps models within groups ties with the observed statistic
  however the sums were rounded. The permutations are drawn one after the other with
  ``numpy.random.default_rng([seed, crc32(axis)])`` (``rng.permutation(N)`` B times), so an axis's
  p depends on the seed and its name only, not on the batch size or the other axes.
* **Vectorised**: for a batch of b permutations the label-indicator matrix ``S`` (b·G x N, one 1 per
  model and permutation; sparse) gives ``Y = S δ²`` (b·G x N), the sum of each model's squared
  distances to each group; ``SS_W_π = Σ_i Y[π, L_π(i), i] / (2 n_{L_π(i)})``, i.e.
  ``½ tr(Xᵀ δ² X N⁻¹)`` with X the one-hot labels. The work is N² per permutation whatever G;
  batches hold at most :data:`BATCH_ELEMENTS` values of Y.
* **Nearest-neighbour label agreement**: the share of models whose nearest other model (smallest D
  among the axis's labelled models) has the same label; when several models tie for nearest, each
  counts with weight 1/(number tied). Its expectation under random labels is
  ``Σ_g n_g(n_g − 1) / (N(N − 1))``; ``nn_p`` counts the same permutations
  (``(1 + #{nn_π ≥ nn}) / (1 + B)``).

Excluded, per axis: models without a label (NaN: none, or mixed labels across their layers). An
axis with fewer than 2 groups (or 2 labelled models) gets NaN statistics and a note; groups of a
single model are allowed (``n_singletons``); when every group is a single model (N = G) the
pseudo-F and p are undefined (NaN). PERMANOVA tests the location of the groups, but it is also
sensitive to unequal dispersions (spread) between groups, which can give a small p with equal
centres: no dispersion test (PERMDISP) is made here.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: How δ is formed from D: ``sqrt`` (δ² = D) or ``drift`` (δ = D, δ² = D²).
DISTANCES = ("sqrt", "drift")

#: Columns of ``models/axes.tsv``, in order.
COLUMNS = [
    "axis",
    "column",
    "n_models",
    "n_groups",
    "n_singletons",
    "pseudo_F",
    "R2",
    "R2_expected",
    "p",
    "nn_agreement",
    "nn_expected",
    "nn_p",
    "permutations",
    "note",
]

#: Relative tolerance of the permutation counts: ``SS_W_π ≤ SS_W + TOL · SS_T`` counts as F_π ≥ F,
#: ``nn_π ≥ nn − TOL`` as at least as much agreement (rounding of sums, not a statistical margin).
TOL = 1e-9

#: Bound on the values of one batch's group sums ``Y`` (b · G · N float64; 4e6 = 32 MB).
BATCH_ELEMENTS = 4_000_000

#: An asymmetry or a non-zero diagonal larger than this (relative to the largest |D|) is an error.
SYMMETRY_TOL = 1e-9


# ---------------------------------------------------------------------------------------------
# Settings


@functools.cache
def _defaults() -> dict:
    """The schema's defaults of ``models.axes`` (the schema owns every default)."""
    from .settings import schema_defaults

    return dict(schema_defaults()["models"]["axes"])


def _default(key: str):
    return field(default_factory=lambda: _defaults()[key])


@dataclass(frozen=True)
class AxesTestSettings:
    """Settings of the axis tests (config ``models.axes``; defaults = the schema's).

    Attributes
    ----------
    permutations : int
        B, the label permutations per axis (0: no p-values).
    seed : int
        Seed of the permutations (non-negative); each axis draws from ``[seed, crc32(axis)]``.
    distance : {"sqrt", "drift"}
        δ from D (:func:`squared_distances`).
    include : "all" or list of str
        The axes tested: ``all`` = every configured categorical or present axis, or a list of axis
        names (a binned axis named there gets a row of NaN and a note: it has no model labels).
    """

    permutations: int = _default("permutations")
    seed: int = _default("seed")
    distance: str = _default("distance")
    include: object = _default("include")

    def __post_init__(self):
        if int(self.permutations) < 0:
            raise ValueError(f"models.axes.permutations must be 0 or more, got {self.permutations!r}")
        if int(self.seed) < 0:
            raise ValueError(f"models.axes.seed must be 0 or more, got {self.seed!r}")
        if self.distance not in DISTANCES:
            raise ValueError(f"models.axes.distance {self.distance!r} is not one of {', '.join(DISTANCES)}")


def selected_axes(axes: Mapping[str, Mapping], include="all") -> list[str]:
    """The axes to test, in the configuration's order.

    Parameters
    ----------
    axes : mapping of str to mapping
        The configured axes (``config["axes"]``: name → mapping with ``column`` and ``kind``).
    include : "all" or sequence of str
        ``all``: every axis whose kind is ``categorical`` (the default kind) or ``present``;
        otherwise these names, duplicates removed, in the order given.

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        When a listed name is not a configured axis.
    """
    if include == "all":
        return [a for a, cfg in axes.items() if cfg.get("kind", "categorical") in ("categorical", "present")]
    names = list(dict.fromkeys(include))
    unknown = [a for a in names if a not in axes]
    if unknown:
        raise ValueError(
            f"config models/axes/include: {', '.join(map(repr, unknown))} is not an axis "
            f"of the axes mapping ({', '.join(axes)})"
        )
    return names


# ---------------------------------------------------------------------------------------------
# The matrix


def check_matrix(d: np.ndarray, where: str = "drift matrix", names: Sequence[str] | None = None) -> np.ndarray:
    """The drift matrix as float64, checked: square, finite, symmetric, zero diagonal, no negative
    entry beyond rounding.

    Parameters
    ----------
    d : (N, N) array_like
    where : str
        Names the matrix in the error (e.g. the file).
    names : sequence of str, optional
        The models of the rows: an entry is named by them (``(m1, m2)``), else by its indices.

    Returns
    -------
    (N, N) float64 ndarray, made exactly symmetric (``(d + dᵀ)/2``) with an exact zero diagonal.

    Raises
    ------
    ValueError
        One line naming ``where`` and the first offending entry.
    """
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"{where}: expected a square matrix, got shape {d.shape}")

    def at(i, j) -> str:
        i, j = int(i), int(j)
        return f"entry ({names[i]}, {names[j]})" if names is not None else f"entry ({i}, {j})"

    bad = np.argwhere(~np.isfinite(d))
    if bad.size:
        i, j = bad[0]
        raise ValueError(f"{where}: {at(i, j)} is {float(d[i, j])!r}, expected a finite drift value")
    scale = max(float(np.abs(d).max(initial=0.0)), np.finfo(np.float64).tiny)
    tol = SYMMETRY_TOL * scale
    asym = np.abs(d - d.T)
    if asym.size and asym.max() > tol:
        i, j = np.unravel_index(np.argmax(asym), asym.shape)
        raise ValueError(f"{where}: not symmetric: {at(i, j)} is {float(d[i, j])!r}, {at(j, i)} is {float(d[j, i])!r}")
    diag = np.abs(np.diagonal(d))
    if diag.size and diag.max() > tol:
        i = int(np.argmax(diag))
        raise ValueError(f"{where}: diagonal {at(i, i)} is {float(d[i, i])!r}, expected 0")
    if d.size and d.min() < -tol:
        i, j = np.unravel_index(np.argmin(d), d.shape)
        raise ValueError(f"{where}: {at(i, j)} is {float(d[i, j])!r}, expected a drift value >= 0")
    out = (d + d.T) / 2
    np.fill_diagonal(out, 0.0)
    return out


def squared_distances(d: np.ndarray, distance: str = "sqrt") -> np.ndarray:
    """δ² from the drift D.

    Parameters
    ----------
    d : (N, N) array_like
        Drift values (>= 0 up to rounding).
    distance : {"sqrt", "drift"}
        ``sqrt``: δ = sqrt(D), so δ² = D (negative rounding residues set to 0); ``drift``: δ = D,
        δ² = D².

    Returns
    -------
    (N, N) float64 ndarray
    """
    d = np.asarray(d, dtype=np.float64)
    if distance == "sqrt":
        return np.maximum(d, 0.0)
    if distance == "drift":
        return d * d
    raise ValueError(f"distance {distance!r} is not one of {', '.join(DISTANCES)}")


# ---------------------------------------------------------------------------------------------
# PERMANOVA


def _codes(labels) -> tuple[np.ndarray, np.ndarray]:
    """(group index of each model (N,), group sizes (G,)), groups in sorted label order."""
    _, codes, sizes = np.unique(np.asarray(labels, dtype=str), return_inverse=True, return_counts=True)
    return codes.astype(np.int64).ravel(), sizes.astype(np.int64)


def total_ss(d2: np.ndarray) -> float:
    """``SS_T = (1/N) Σ_{i<j} δ_ij²`` of a squared-distance matrix (N, N)."""
    n = d2.shape[0]
    return float(np.triu(d2, 1).sum() / n) if n else float("nan")


def within_ss(d2: np.ndarray, labels: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``SS_W`` of each labelling in a batch: ``Σ_g (1/n_g) Σ_{i<j in g} δ_ij²``.

    Parameters
    ----------
    d2 : (N, N) array_like
        Squared distances, symmetric, zero diagonal.
    labels : (b, N) int array_like
        Group index (0..G-1) of each model in each labelling.
    sizes : (G,) int array_like
        Group sizes (the same in every labelling: permutations keep them).

    Returns
    -------
    (b,) float64 ndarray
    """
    from scipy import sparse

    labels = np.atleast_2d(np.asarray(labels, dtype=np.int64))
    b, n = labels.shape
    g = len(sizes)
    rows = (np.arange(b)[:, None] * g + labels).ravel()
    s = sparse.csr_matrix((np.ones(b * n), (rows, np.tile(np.arange(n), b))), shape=(b * g, n))
    y = np.asarray(s @ np.asarray(d2, dtype=np.float64))  # (b*G, N): model i's δ² summed over group
    same = y[rows, np.tile(np.arange(n), b)].reshape(b, n)  # Σ over i's own group (its δ²_ii = 0)
    inv = 1.0 / (2.0 * np.asarray(sizes, dtype=np.float64))
    return (same * inv[labels]).sum(axis=1)


def f_and_r2(ss_t: float, ss_w, n: int, g: int) -> tuple[np.ndarray, np.ndarray]:
    """pseudo-F and R² from the sums of squares (NaN where undefined: G < 2, N = G, SS_T = 0).

    Parameters
    ----------
    ss_t : float
    ss_w : float or array_like
    n, g : int
        Models and groups.

    Returns
    -------
    (pseudo_F, R2), each of the shape of ``ss_w`` (F = inf when SS_W = 0 < SS_T and N > G).
    """
    ss_w = np.asarray(ss_w, dtype=np.float64)
    nan = np.full(ss_w.shape, np.nan)
    if g < 2 or n < 2 or not ss_t > 0:
        return nan, nan
    r2 = 1.0 - ss_w / ss_t
    if n == g:
        return nan, r2
    with np.errstate(divide="ignore", invalid="ignore"):
        f = ((ss_t - ss_w) / (g - 1)) / (ss_w / (n - g))
    return f, r2


@dataclass(frozen=True)
class GroupingTest:
    """PERMANOVA and nearest-neighbour agreement of one labelling (see the module docstring)."""

    n_models: int
    n_groups: int
    n_singletons: int
    ss_t: float
    ss_w: float
    pseudo_F: float
    R2: float
    R2_expected: float
    p: float
    nn_agreement: float
    nn_expected: float
    nn_p: float
    permutations: int
    note: str = ""


def nearest_neighbours(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each model's nearest other model(s): the pairs ``(i, j)`` where ``D_ij`` is the smallest of
    row i off the diagonal, with weight ``1 / (number of such j)``.

    Parameters
    ----------
    d : (N, N) array_like, N >= 2

    Returns
    -------
    i, j : int ndarrays of the pairs
    w : float64 ndarray, each row's weights summing to 1
    """
    d = np.array(d, dtype=np.float64)
    np.fill_diagonal(d, np.inf)
    near = d == d.min(axis=1, keepdims=True)
    i, j = np.nonzero(near)
    return i, j, 1.0 / near.sum(axis=1)[i]


def nn_agreement(nn: tuple[np.ndarray, np.ndarray, np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Share of models whose nearest other model has the same label, per labelling.

    Parameters
    ----------
    nn : (i, j, w)
        From :func:`nearest_neighbours`.
    labels : (b, N) or (N,) array_like
        Group index of each model per labelling.

    Returns
    -------
    (b,) float64 ndarray
    """
    i, j, w = nn
    labels = np.atleast_2d(np.asarray(labels))
    n = labels.shape[1]
    return ((labels[:, i] == labels[:, j]) * w).sum(axis=1) / n


def nn_expected(sizes: np.ndarray) -> float:
    """Expected nearest-neighbour agreement under random labels: ``Σ n_g(n_g − 1) / (N(N − 1))``."""
    sizes = np.asarray(sizes, dtype=np.float64)
    n = sizes.sum()
    return float((sizes * (sizes - 1)).sum() / (n * (n - 1))) if n >= 2 else float("nan")


def _batch(n: int, g: int) -> int:
    return max(1, BATCH_ELEMENTS // max(1, n * g))


def grouping_stats(
    d: np.ndarray,
    labels: Sequence,
    permutations: int,
    seed=0,
    distance: str = "sqrt",
    progress: bool = False,
    desc: str = "",
) -> GroupingTest:
    """PERMANOVA and nearest-neighbour label agreement of one labelling of the models.

    Parameters
    ----------
    d : (N, N) array_like
        Drift matrix of the labelled models only (checked by :func:`check_matrix` beforehand).
    labels : sequence of N labels
        Each model's label (compared as text).
    permutations : int
        B (0: p-values NaN).
    seed : int, sequence or numpy Generator
        Passed to ``numpy.random.default_rng``; permutation k is the k-th ``rng.permutation(N)``.
    distance : {"sqrt", "drift"}
        δ from D (:func:`squared_distances`).
    progress : bool
        A tqdm bar over the permutations on stderr.
    desc : str
        The bar's label.

    Returns
    -------
    GroupingTest
    """
    d = np.asarray(d, dtype=np.float64)
    n = d.shape[0]
    codes, sizes = _codes(labels) if n else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    g = len(sizes)
    single = int((sizes == 1).sum())
    nan = float("nan")
    if g < 2:
        why = "no labelled model" if n == 0 else "fewer than 2 groups"
        return GroupingTest(n, g, single, nan, nan, nan, nan, nan, nan, nan, nan, nan, 0, why)
    d2 = squared_distances(d, distance)
    ss_t = total_ss(d2)
    ss_w = float(within_ss(d2, codes[None], sizes)[0])
    f, r2 = (float(v) for v in f_and_r2(ss_t, ss_w, n, g))
    nn = nearest_neighbours(d)
    nn_obs = float(nn_agreement(nn, codes)[0])
    notes = []
    if not ss_t > 0:
        notes.append("all distances are zero")
    elif n == g:
        notes.append("every group is a single model: no within-group distance, pseudo-F undefined")
    count = nn_count = 0
    b = int(permutations)
    if b:
        from tqdm import tqdm

        rng = np.random.default_rng(seed)
        step = _batch(n, g)
        bound = ss_w + TOL * ss_t
        with tqdm(total=b, desc=desc or "permutations", unit="perm", disable=not progress, leave=False) as bar:
            for a in range(0, b, step):
                k = min(step, b - a)
                lab = codes[np.stack([rng.permutation(n) for _ in range(k)])]  # model i takes π(i)'s label
                count += int((within_ss(d2, lab, sizes) <= bound).sum())
                nn_count += int((nn_agreement(nn, lab) >= nn_obs - TOL).sum())
                bar.update(k)
    p = (1 + count) / (1 + b) if b and np.isfinite(f) else nan
    nn_p = (1 + nn_count) / (1 + b) if b else nan
    return GroupingTest(
        n_models=n,
        n_groups=g,
        n_singletons=single,
        ss_t=ss_t,
        ss_w=ss_w,
        pseudo_F=f,
        R2=r2,
        R2_expected=(g - 1) / (n - 1),
        p=p,
        nn_agreement=nn_obs,
        nn_expected=nn_expected(sizes),
        nn_p=nn_p,
        permutations=b,
        note="; ".join(notes),
    )


# ---------------------------------------------------------------------------------------------
# The table


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def axes_table(
    models: Sequence[str],
    d: np.ndarray,
    labels: Mapping[str, pd.Series | None],
    columns: Mapping[str, str],
    settings: AxesTestSettings | None = None,
    notes: Mapping[str, str] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """``models/axes.tsv``: one row per axis, ranked by pseudo-F.

    Parameters
    ----------
    models : sequence of N str
        The models of the drift matrix, in its row order.
    d : (N, N) array_like
        The model x model drift matrix (:func:`check_matrix` is applied).
    labels : mapping of str to pandas.Series or None
        Axis name → each model's label (index: model names as in ``models``; NaN or absent: no
        label). ``None``: the axis has no model labels; its row is NaN with ``notes[axis]``.
    columns : mapping of str to str
        Axis name → its meta column (the table's ``column``).
    settings : AxesTestSettings, optional
        Permutations, seed, distance (default: the schema's).
    notes : mapping of str to str, optional
        Notes of the axes given as ``None``.
    progress : bool
        tqdm bars on stderr.

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`; rows sorted by pseudo-F, largest first (then R², then the axis name;
        axes without a pseudo-F last): F is adjusted for the number of groups, R² is not (its
        chance level, ``R2_expected``, grows with G).
    """
    s = settings or AxesTestSettings()
    d = check_matrix(d)
    models = [str(m) for m in models]
    if len(set(models)) != len(models):
        dup = pd.Series(models)[pd.Series(models).duplicated()].iloc[0]
        raise ValueError(f"drift matrix: model {dup!r} appears twice")
    rows = []
    for name, lab in labels.items():
        row = {"axis": name, "column": columns.get(name, "")}
        if lab is None:
            res = {k: np.nan for k in COLUMNS[5:-1]}
            res.update(n_models=0, n_groups=0, n_singletons=0, permutations=0)
            res["note"] = (notes or {}).get(name, "no model labels")
        else:
            lab = pd.Series(lab.to_numpy(dtype=object), index=[str(i) for i in lab.index])
            lab = lab[~lab.index.duplicated(keep="first")]
            per_model = [lab.get(m, np.nan) for m in models]
            keep = np.array([not _missing(v) for v in per_model], bool)
            idx = np.flatnonzero(keep)
            t = grouping_stats(
                d[np.ix_(idx, idx)],
                [str(per_model[k]) for k in idx],
                s.permutations,
                seed=[int(s.seed), zlib.crc32(name.encode())],
                distance=s.distance,
                progress=progress,
                desc=f"axis {name}",
            )
            res = {k: getattr(t, k) for k in COLUMNS if hasattr(t, k)}
            unlabelled = len(models) - idx.size
            if not models:
                res["note"] = "the drift matrix has no model"
            elif unlabelled:
                extra = f"{unlabelled} of {len(models)} models without a label left out"
                res["note"] = f"{res['note']}; {extra}" if res["note"] else extra
        rows.append({**row, **res})
    out = pd.DataFrame(rows, columns=COLUMNS)
    if not len(out):
        return out
    out = out.sort_values(["pseudo_F", "R2", "axis"], ascending=[False, False, True], na_position="last", kind="stable")
    return out.reset_index(drop=True)
