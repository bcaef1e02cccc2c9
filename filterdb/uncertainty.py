"""How sure is a drift value? Bootstrap intervals, a permutation null and the sample-size bias of D.

Not part of the study (which reports D alone, docs/method.md §4); switched on with
``uncertainty.enabled`` and written beside the drift matrices, which stay as they are.

Units. D is computed from group histograms that are sums of per-layer histograms. Models, not
filters, are the independent draws, so resampling works on *units*: the sum of one model's layers
within one group of the axis (``{results}/stats/hist.npz`` ``counts`` (L, d, bins) summed by
(``model_id``, group)). On axes where a model belongs to one group (task, visual category, ...) a
unit is a model; on the depth axis a unit is the part of a model in one depth bin.

For an axis with G groups and U units (unit u in group ``g(u)``, ``n_g`` units in group g):

* **bootstrap** (``B`` replicates): in each group draw ``n_g`` units with replacement (multinomial
  weights), sum them, compute the whole matrix D with the same floor and evr as the study's D;
  percentile interval ``[q((1-level)/2), q((1+level)/2)]`` per cell → ``drift/{axis}.ci.tsv``.
  The interval is for the plug-in D, which carries the sample-size bias below (its bootstrap
  distribution sits above the D of the underlying distributions); a group with a single unit has
  no within-group spread.
* **permutation null** (``P`` replicates): shuffle the group labels over all units of the axis
  (group sizes kept), recompute D. Per pair ``p = (1 + #{D_null >= D}) / (1 + P)``, corrected over
  the G(G-1)/2 pairs by Holm (family-wise error, default) or Benjamini-Hochberg (false discovery
  rate). The axis test uses the mean of the upper triangle (the study's box-plot mean) as the
  statistic: do the groups differ more than random splits of the axis's units?
* **sample-size bias**: D of two finite samples of ONE distribution is > 0 and grows as the samples
  shrink. Its expectation for the pair's unit counts is the permutation-null mean of that cell
  (random subsamples of the pooled units with sizes ``n_a``, ``n_b``), reported as ``null_mean``
  beside D, with ``D_debiased = D - null_mean``.
* **equal-size subsamples** (``R`` replicates, optional): per pair, both groups subsampled without
  replacement to the smaller group's unit count ``min(n_a, n_b)`` (the smaller group is taken
  whole), D of the two subsamples; mean and standard deviation over the replicates (``D_equal``,
  ``D_equal_sd`` in ``drift/{axis}.null.tsv``). Pairs are then compared at equal model counts;
  the units stay models (not filters), so filter counts still differ with the models' sizes.

Everything is vectorised over replicates: the group sums of a batch of replicates are matrix
products of resampling weights (replicates, units) with the unit histograms (units, d*bins) (dense
per group, or one sparse product for many groups), and D of all pairs of all replicates a batched
matrix product (:func:`filterdb.divergence.drift_matrices`, the same D as
:func:`filterdb.divergence.drift`). Random draws are made up front from a seeded generator, so
results depend on the seed only (not on the batch size).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import divergence
from .schema import or_default

CORRECTIONS = ("holm", "bh")
AXIS_ROW = "(all pairs)"


# ---------------------------------------------------------------------------------------------
# Units


def units(
    layers: pd.DataFrame, counts: np.ndarray, labels: pd.Series, groups: list
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum per-layer histograms into (model, group) units.

    Parameters
    ----------
    layers : pandas.DataFrame of L rows with ``model_id``
    counts : (L, d, bins) array_like
        Per-layer histograms (``stats/hist.npz`` ``counts``).
    labels : pandas.Series of length L
        Group label per layer on the axis (NaN: in no group).
    groups : list of G labels
        The axis's groups, in output order; layers of other labels are left out.

    Returns
    -------
    unit_counts : (U, d, bins) int64 ndarray
    unit_group : (U,) int ndarray, index into ``groups``
    unit_model : (U,) ndarray, the ``model_id`` of each unit
    """
    lab = labels.to_numpy(dtype=object)
    gidx = {str(g): k for k, g in enumerate(groups)}
    g_of_layer = np.array(
        [gidx.get(str(v), -1) if not (isinstance(v, float) and np.isnan(v)) else -1 for v in lab], dtype=np.int64
    )
    keep = np.flatnonzero(g_of_layer >= 0)
    ids, mcode = np.unique(layers["model_id"].to_numpy()[keep], return_inverse=True)
    code = mcode.astype(np.int64) * len(groups) + g_of_layer[keep]
    ucode, inv = np.unique(code, return_inverse=True)
    out = np.zeros((ucode.size,) + np.shape(counts)[1:], np.int64)
    np.add.at(out, inv, np.asarray(counts)[keep])
    return out, ucode % len(groups), ids[ucode // len(groups)]


# ---------------------------------------------------------------------------------------------
# Replicates


def _config(key: str, value):
    """``value``, or the config default of ``uncertainty.<key>`` (the schema's) when it is None."""
    return or_default(value, f"uncertainty.{key}")


def _matrices(gc: np.ndarray, evr: np.ndarray, eps: float, floor: str, edges: np.ndarray | None) -> np.ndarray:
    """D matrices (r, G, G) of replicate group sums ``gc`` (r, G, d, bins)."""
    return divergence.drift_matrices(divergence.probabilities(gc, eps, floor, edges), evr)


#: Up to this many groups the permutation sums are dense 0/1 products (BLAS), above it one sparse
#: product (work independent of G). Same sums either way (integer counts, exact in float64).
DENSE_GROUPS = 16


def _label_sums(labels: np.ndarray, flat: np.ndarray, n_groups: int) -> np.ndarray:
    """Group sums (r, G, K) of units ``flat`` (U, K) labelled ``labels`` (r, U)."""
    r, u = labels.shape
    if n_groups <= DENSE_GROUPS:
        out = np.empty((r, n_groups, flat.shape[1]))
        for g in range(n_groups):
            np.matmul((labels == g).astype(np.float64), flat, out=out[:, g])
        return out
    from scipy import sparse

    rows = (np.arange(r)[:, None] * n_groups + labels).ravel()
    w = sparse.csr_matrix((np.ones(r * u), (rows, np.tile(np.arange(u), r))), shape=(r * n_groups, u))
    return np.asarray(w @ flat).reshape(r, n_groups, -1)


def _batch(batch: int, n_groups: int, k: int) -> int:
    """Replicates per batch: at most ``batch``, and the group sums of a batch at most
    :data:`BATCH_ELEMENTS` float64 values (the largest temporaries are a few times that)."""
    return max(1, min(int(batch), BATCH_ELEMENTS // max(1, n_groups * k)))


#: Bound on the values of one batch's group sums (2e7 float64 = 160 MB).
BATCH_ELEMENTS = 20_000_000


def _store(out: np.ndarray, a: int, m: np.ndarray, triangle: bool) -> None:
    if triangle:
        ia, ib = np.triu_indices(m.shape[-1], k=1)
        out[a : a + m.shape[0]] = m[:, ia, ib]
    else:
        out[a : a + m.shape[0]] = m


def _output(replicates: int, n_groups: int, triangle: bool) -> np.ndarray:
    return np.empty((replicates, n_groups * (n_groups - 1) // 2) if triangle else (replicates, n_groups, n_groups))


def bootstrap(
    unit_counts: np.ndarray,
    unit_group: np.ndarray,
    n_groups: int,
    evr: np.ndarray,
    replicates: int | None = None,
    seed=None,
    eps: float | None = None,
    floor: str | None = None,
    edges: np.ndarray | None = None,
    batch: int = 100,
    triangle: bool = False,
) -> np.ndarray:
    """Model-level bootstrap of the drift matrix: units resampled with replacement within groups.

    Parameters
    ----------
    unit_counts : (U, d, bins) array_like
    unit_group : (U,) int array_like, group index of each unit (0..G-1)
    n_groups : int
        G; every group needs at least one unit.
    evr : (d,) array_like
    replicates : int, optional
        B; None: the config default of ``uncertainty.bootstrap`` (``uncertainty.permutations``
        for :func:`permutation_null`).
    seed : int, sequence or numpy Generator, optional
    eps, floor, edges
        As :func:`filterdb.divergence.probabilities`.
    batch : int
        Replicates per batch at most (memory only; results do not depend on it).
    triangle : bool
        Return only the upper triangles (pairs a < b in ``np.triu_indices(G, 1)`` order).

    Returns
    -------
    (B, G, G) float64 ndarray of bootstrap drift matrices, or (B, G(G-1)/2) with ``triangle``.
    """
    replicates = int(_config("bootstrap", replicates))
    seed = _config("seed", seed)
    rng = np.random.default_rng(seed)
    ug = np.asarray(unit_group)
    members = [np.flatnonzero(ug == g) for g in range(n_groups)]
    if any(m.size == 0 for m in members):
        raise ValueError("bootstrap: a group without units")
    # draws up front: multinomial counts per group, (B, n_g)
    draws = [rng.multinomial(m.size, np.full(m.size, 1.0 / m.size), size=replicates) for m in members]
    flat = np.asarray(unit_counts, np.float64).reshape(len(ug), -1)
    shape = np.shape(unit_counts)[1:]
    out = _output(replicates, n_groups, triangle)
    batch = _batch(batch, n_groups, flat.shape[1])
    for a in range(0, replicates, batch):
        r = min(batch, replicates - a)
        gc = np.empty((r, n_groups, flat.shape[1]))
        for g, m in enumerate(members):  # (r, n_g) multinomial weights @ (n_g, K): one BLAS product per group
            np.matmul(draws[g][a : a + r].astype(np.float64), flat[m], out=gc[:, g])
        _store(out, a, _matrices(gc.reshape((r, n_groups) + shape), evr, eps, floor, edges), triangle)
    return out


def permutation_null(
    unit_counts: np.ndarray,
    unit_group: np.ndarray,
    n_groups: int,
    evr: np.ndarray,
    replicates: int | None = None,
    seed=None,
    eps: float | None = None,
    floor: str | None = None,
    edges: np.ndarray | None = None,
    batch: int = 100,
    triangle: bool = False,
) -> np.ndarray:
    """Drift matrices with the group labels shuffled over all units (group sizes kept).

    Parameters
    ----------
    As :func:`bootstrap` (``replicates`` = P).

    Returns
    -------
    (P, G, G) float64 ndarray of null drift matrices, or (P, G(G-1)/2) with ``triangle``.
    """
    replicates = int(_config("permutations", replicates))
    seed = _config("seed", seed)
    rng = np.random.default_rng(seed)
    ug = np.asarray(unit_group, np.int64)
    u = ug.size
    perms = rng.permuted(np.broadcast_to(ug, (replicates, u)), axis=1)  # (P, U) shuffled labels
    flat = np.asarray(unit_counts, np.float64).reshape(u, -1)
    shape = np.shape(unit_counts)[1:]
    out = _output(replicates, n_groups, triangle)
    batch = _batch(batch, n_groups, flat.shape[1])
    for a in range(0, replicates, batch):
        r = min(batch, replicates - a)
        gc = _label_sums(perms[a : a + r], flat, n_groups)
        _store(out, a, _matrices(gc.reshape((r, n_groups) + shape), evr, eps, floor, edges), triangle)
    return out


def equal_size_drift(
    unit_counts: np.ndarray,
    unit_group: np.ndarray,
    n_groups: int,
    evr: np.ndarray,
    replicates: int = 1000,
    seed=0,
    eps: float | None = None,
    floor: str | None = None,
    edges: np.ndarray | None = None,
    batch: int = 100,
) -> np.ndarray:
    """D of every pair of groups on equal-size subsamples of their units.

    For the pair (a, b) both groups are subsampled without replacement to ``m = min(n_a, n_b)``
    units (so the smaller group is taken whole) and D is computed between the two subsamples, with
    the same floor and evr as the study's D (:func:`filterdb.divergence.drift_matrices`, equal to
    :func:`filterdb.divergence.drift` to rounding). Pairs of equal unit counts get their plain D.

    Draws (made up front, in this order): for g = 0..G-1 a random order of the group's units per
    replicate, ``ranks[g] = rng.permuted(np.broadcast_to(np.arange(n_g), (R, n_g)), axis=1)``
    (``rng = numpy.random.default_rng(seed)``); the subsample of size m of group g in replicate i
    is the units ``u`` (in ``np.flatnonzero(unit_group == g)`` order) with ``ranks[g][i, u] < m``.
    A group's subsamples for pairs of different sizes are thus nested; each one is a uniform draw
    of m of its ``n_g`` units.

    Parameters
    ----------
    unit_counts : (U, d, bins) array_like
    unit_group : (U,) int array_like, group index of each unit (0..G-1)
    n_groups : int
        G; every group needs at least one unit.
    evr : (d,) array_like
    replicates : int
        R.
    seed : int, sequence or numpy Generator
    eps, floor, edges
        As :func:`filterdb.divergence.probabilities`.
    batch : int
        Replicates per batch at most (memory only; results do not depend on it).

    Returns
    -------
    (R, G(G-1)/2) float64 ndarray: D of the subsamples, pairs a < b in ``np.triu_indices(G, 1)``
    order.
    """
    rng = np.random.default_rng(seed)
    ug = np.asarray(unit_group)
    members = [np.flatnonzero(ug == g) for g in range(n_groups)]
    n = np.array([m.size for m in members])
    if np.any(n == 0):
        raise ValueError("equal_size_drift: a group without units")
    ranks = [rng.permuted(np.broadcast_to(np.arange(k), (replicates, k)), axis=1) for k in n]
    ia, ib = np.triu_indices(n_groups, k=1)
    size = np.minimum(n[ia], n[ib])  # m of every pair
    # the subsample sizes each group is needed at, ascending
    sizes = [np.unique(np.concatenate([size[ia == g], size[ib == g]])) for g in range(n_groups)]
    flat = np.asarray(unit_counts, np.float64).reshape(len(ug), -1)
    shape = np.shape(unit_counts)[1:]
    out = np.empty((replicates, ia.size))
    batch = _batch(batch, sum(s.size for s in sizes), flat.shape[1])
    for a in range(0, replicates, batch):
        r = min(batch, replicates - a)
        prob = {}
        for g, m in enumerate(members):
            if sizes[g].size == 0:
                continue
            # segment j holds the units of rank in [sizes[j-1], sizes[j]); the last, ranks beyond
            # the largest size (unused). Sums at each size: cumulative sums over the segments.
            seg = np.searchsorted(sizes[g], ranks[g][a : a + r], side="right")
            sums = np.cumsum(_label_sums(seg, flat[m], sizes[g].size + 1)[:, :-1], axis=1)  # (r, S, K)
            p = divergence.probabilities(sums.reshape((r, sizes[g].size) + shape), eps, floor, edges)
            for j, s in enumerate(sizes[g]):
                prob[g, s] = p[:, j]
        for s in np.unique(size):  # pairs of one size: D of all groups with n_g >= s at once
            (at,) = np.nonzero(size == s)
            big = np.flatnonzero(n >= s)
            pos = np.searchsorted(big, np.stack([ia[at], ib[at]]))
            d = divergence.drift_matrices(np.stack([prob[g, s] for g in big], axis=1), evr)  # (r, |big|, |big|)
            out[a : a + r, at] = d[:, pos[0], pos[1]]
    return out


# ---------------------------------------------------------------------------------------------
# Tests and tables


def adjust_pvalues(p: np.ndarray, method: str = "holm") -> np.ndarray:
    """Multiple-testing correction.

    Parameters
    ----------
    p : (m,) array_like of p-values
    method : {"holm", "bh"}
        ``holm``: Holm's step-down (controls the family-wise error rate);
        ``bh``: Benjamini-Hochberg step-up (controls the false discovery rate).

    Returns
    -------
    (m,) float64 ndarray of adjusted p-values (same order as ``p``).
    """
    p = np.asarray(p, np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ps = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ps))
    elif method == "bh":
        adj = np.minimum.accumulate(np.minimum(1.0, ps * m / np.arange(1, m + 1))[::-1])[::-1]
    else:
        raise ValueError(f"correction {method!r} is not one of {', '.join(CORRECTIONS)}")
    out = np.empty(m)
    out[order] = adj
    return out


@dataclass
class AxisUncertainty:
    """Uncertainty tables of one axis."""

    ci: pd.DataFrame  # group_a, group_b, D, lo, hi, B, level
    null: (
        pd.DataFrame
    )  # group_a, group_b, n_a, n_b, D, null_mean, D_debiased, p, p_adjusted, significant, P, correction
    # (+ n_equal, D_equal, D_equal_sd, R_equal with equal-size subsamples)
    groups: list = None  # the G group labels, in matrix order
    mean_ci: tuple = (np.nan, np.nan)  # percentile interval of the axis's mean D (mean of the pairs)


def axis_uncertainty(
    unit_counts: np.ndarray,
    unit_group: np.ndarray,
    groups: list,
    evr: np.ndarray,
    edges: np.ndarray | None = None,
    eps: float | None = None,
    floor: str | None = None,
    bootstrap_replicates: int | None = None,
    permutations: int | None = None,
    level: float | None = None,
    correction: str | None = None,
    alpha: float | None = None,
    seed=None,
    equal_size: int | None = None,
) -> AxisUncertainty:
    """Bootstrap intervals, permutation p-values and sample-size bias for one axis.

    Parameters
    ----------
    unit_counts : (U, d, bins) array_like
        Unit histograms (:func:`units`).
    unit_group : (U,) int array_like
        Group index of each unit into ``groups``.
    groups : list of G labels
    evr : (d,) array_like
    edges, eps, floor
        As :func:`filterdb.divergence.probabilities`.

    Every option left None takes the config default of ``uncertainty.*`` (the schema's):
    ``bootstrap_replicates`` is ``uncertainty.bootstrap``, the others have their own names.

    bootstrap_replicates : int, optional
        B (0: no intervals, ``lo``/``hi`` NaN).
    permutations : int
        P (0: no null, p-values and ``null_mean`` NaN).
    level : float
        Confidence level of the percentile interval.
    correction : {"holm", "bh"}
    alpha : float
        ``significant`` = adjusted p < alpha.
    seed : int or sequence
        Seeds the bootstrap (``[seed, 0]``), the permutations (``[seed, 1]``) and the equal-size
        subsamples (``[seed, 2]``).
    equal_size : int
        R, replicates of the equal-size subsamples (:func:`equal_size_drift`); 0: none (the ``null``
        table then has no equal-size columns).

    Returns
    -------
    AxisUncertainty
        ``ci``: one row per pair (a < b in ``groups`` order); ``null``: the same pairs and a last
        row ``(all pairs)`` holding the axis test (statistic: mean of the pairs' D). With
        ``equal_size``, ``null`` also has ``n_equal`` (the subsample size ``min(n_a, n_b)``),
        ``D_equal`` and ``D_equal_sd`` (mean and standard deviation of the subsamples' D over
        the R replicates; on the last row, of the mean over pairs) and ``R_equal``.
        ``mean_ci``: the percentile interval of the mean of the pairs' D over the bootstrap
        replicates (NaN without bootstrap).
    """
    bootstrap_replicates = int(_config("bootstrap", bootstrap_replicates))
    permutations = int(_config("permutations", permutations))
    level = float(_config("level", level))
    correction = str(_config("correction", correction))
    alpha = float(_config("alpha", alpha))
    equal_size = int(_config("equal_size", equal_size))
    g = len(groups)
    ug = np.asarray(unit_group, np.int64)
    n = np.bincount(ug, minlength=g)
    seed = list(np.atleast_1d(_config("seed", seed)))
    d = divergence.drift_matrix(
        np.stack([np.asarray(unit_counts)[ug == k].sum(axis=0) for k in range(g)]), evr, eps, floor, edges
    )
    ia, ib = np.triu_indices(g, k=1)
    obs = d[ia, ib]
    names = [str(x) for x in groups]
    kw = dict(eps=eps, floor=floor, edges=edges)
    lo = hi = np.full(ia.size, np.nan)
    mean_ci = (np.nan, np.nan)
    if bootstrap_replicates > 0 and g > 1:
        bs = bootstrap(unit_counts, ug, g, evr, bootstrap_replicates, seed + [0], triangle=True, **kw)
        lo, hi = np.quantile(bs, [(1 - level) / 2, (1 + level) / 2], axis=0)
        mean_ci = tuple(float(v) for v in np.quantile(bs.mean(axis=1), [(1 - level) / 2, (1 + level) / 2]))
    ci = pd.DataFrame(
        {
            "group_a": [names[k] for k in ia],
            "group_b": [names[k] for k in ib],
            "D": obs,
            "lo": lo,
            "hi": hi,
            "B": int(bootstrap_replicates),
            "level": float(level),
        }
    )
    stat = obs.mean() if obs.size else np.nan
    if permutations > 0 and g > 1:
        nd = permutation_null(unit_counts, ug, g, evr, permutations, seed + [1], triangle=True, **kw)  # (P, pairs)
        null_mean = nd.mean(axis=0)
        p = (1 + np.sum(nd >= obs - 1e-12 * np.abs(obs), axis=0)) / (1 + permutations)
        nstat = nd.mean(axis=1)
        p_axis = (1 + np.sum(nstat >= stat - 1e-12 * abs(stat))) / (1 + permutations)
        axis_null = nstat.mean()
    else:
        null_mean = p = np.full(ia.size, np.nan)
        p_axis = axis_null = np.nan
    p_adj = adjust_pvalues(p, correction) if not np.isnan(p).any() else p
    null = pd.DataFrame(
        {
            "group_a": ci["group_a"],
            "group_b": ci["group_b"],
            "n_a": n[ia],
            "n_b": n[ib],
            "D": obs,
            "null_mean": null_mean,
            "D_debiased": obs - null_mean,
            "p": p,
            "p_adjusted": p_adj,
            "significant": p_adj < alpha,
        }
    )
    axis_row = pd.DataFrame(
        {
            "group_a": [AXIS_ROW],
            "group_b": [AXIS_ROW],
            "n_a": [int(n.sum())],
            "n_b": [int(n.sum())],
            "D": [stat],
            "null_mean": [axis_null],
            "D_debiased": [stat - axis_null],
            "p": [p_axis],
            "p_adjusted": [p_axis],
            "significant": [bool(p_axis < alpha)],
        }
    )
    null = pd.concat([null, axis_row], ignore_index=True)
    null["P"] = int(permutations)
    null["correction"] = correction
    if equal_size > 0:
        eq = equal_size_drift(unit_counts, ug, g, evr, equal_size, seed + [2], **kw)  # (R, pairs)
        axis_eq = eq.mean(axis=1) if ia.size else np.full(int(equal_size), np.nan)
        null["n_equal"] = pd.array(list(np.minimum(n[ia], n[ib])) + [pd.NA], dtype="Int64")
        null["D_equal"] = np.append(eq.mean(axis=0), axis_eq.mean())
        null["D_equal_sd"] = np.append(eq.std(axis=0), axis_eq.std())
        null["R_equal"] = int(equal_size)
    return AxisUncertainty(ci=ci, null=null, groups=names, mean_ci=mean_ci)


def axis_seed(seed: int, axis: str) -> list[int]:
    """Seed of one axis: the configured seed and a hash of the axis name (adding or removing an
    axis does not change another axis's draws)."""
    return [int(seed), zlib.crc32(axis.encode())]


def uncertainty_of_axis(
    layers: pd.DataFrame,
    counts: np.ndarray,
    edges: np.ndarray,
    evr: np.ndarray,
    axis,
    eps: float | None = None,
    floor: str | None = None,
    **options,
) -> AxisUncertainty:
    """:func:`axis_uncertainty` of one configured axis, groups in the order of its drift matrix.

    Parameters
    ----------
    layers : pandas.DataFrame (L rows), counts : (L, d, bins), edges : (bins + 1,), evr : (d,)
    axis : filterdb.axes.Axis
    eps, floor
        As :func:`filterdb.divergence.probabilities`.
    **options
        ``bootstrap_replicates``, ``permutations``, ``level``, ``correction``, ``alpha``, ``seed``
        (an int; combined with the axis name by :func:`axis_seed`).

    Returns
    -------
    AxisUncertainty
    """
    from .axes import layer_labels
    from .pipeline import axis_result

    groups, _ = axis_result(layers, counts, evr, axis, eps, floor, edges)
    names = list(groups["group"])
    uc, ug, _ = units(layers, counts, layer_labels(layers, axis), names)
    options = dict(options)
    options["seed"] = axis_seed(_config("seed", options.get("seed")), axis.name)
    return axis_uncertainty(uc, ug, names, evr, edges, eps, floor, **options)
