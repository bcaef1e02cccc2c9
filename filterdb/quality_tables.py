"""Filter quality tables: per layer, per model and per group, with degeneration flags
(docs/method.md §9).

Beside the other result tables: built from the per-layer ``quality_*`` arrays of the gathered
``stats/sums.npz`` (:class:`filterdb.accumulate.SumsPass`) and the layer table, and
written with :func:`filterdb.results.write_tsv` (the one float format). The metrics themselves and
the threshold defaults are defined in :mod:`filterdb.quality`.

Tables (``R`` = the results folder)::

    R/quality/layers.tsv        one row per layer: metrics, flags, notes   (layer_quality_table)
    R/quality/models.tsv        one row per model, most degenerated first  (model_quality_table)
    R/quality/by_{axis}.tsv     one row per group of an axis               (group_quality_table)
    R/quality/by_depth_bin.tsv  one row per depth bin                      (group_quality_table)
    R/quality/sensitivity.tsv   the flags over a sweep of each threshold   (sensitivity_table)

The flags follow the rule ``thresholds["rule"]`` (config ``quality.rule``): ``project`` (the
thresholds of ``quality.thresholds``) or ``cvpr_reanalysis``
(:func:`filterdb.quality.cvpr_reanalysis_flags`; secondhand, docs/method.md §9).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .axes import depth_axis, depth_bin_labels, layer_labels
from .quality import FLAGS, METRICS, RULES, cvpr_reanalysis_flags, default_thresholds, note_text
from .schema import schema_default


def quality_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``quality_*`` arrays of a gathered stats file, without the prefix.

    Parameters
    ----------
    arrays : Mapping of str to numpy.ndarray
        E.g. :func:`filterdb.results.load_npz` of ``stats/sums.npz``.

    Returns
    -------
    dict of str to numpy.ndarray, each shape (L,)
        Keys :data:`filterdb.accumulate.QUALITY_FIELDS`.

    Raises
    ------
    KeyError
        When there is no ``quality_*`` array (quality was not enabled in the sums pass).
    """
    out = {k[8:]: np.asarray(v) for k, v in arrays.items() if k.startswith("quality_")}
    if not out:
        raise KeyError(
            "the stats file holds no quality arrays: enable quality (config quality.enabled) and re-run the sums pass"
        )
    return out


def thresholds_with_defaults(thresholds: Mapping | None) -> dict:
    """The degeneration thresholds: :func:`filterdb.quality.default_thresholds` (the schema's) updated by
    ``thresholds``, and the rule that applies them.

    Parameters
    ----------
    thresholds : Mapping or None
        Any of ``sparse``, ``low_diversity``, ``random_like``, ``model_share`` (config
        ``quality.thresholds``) and ``rule`` (config ``quality.rule``: ``project`` or
        ``cvpr_reanalysis``; default: the schema's).

    Returns
    -------
    dict
        The four thresholds (float) and ``rule`` (str).

    Raises
    ------
    ValueError
        On an unknown key or rule.

    Examples
    --------
    >>> thresholds_with_defaults({"random_like": 1.5})["random_like"]
    1.5
    """
    t = default_thresholds()
    given = dict(thresholds or {})
    rule = given.pop("rule", None)
    unknown = set(given) - set(t)
    if unknown:
        raise ValueError(f"quality thresholds: unknown keys {sorted(unknown)} (known: {sorted(t)} and rule)")
    t.update({k: float(v) for k, v in given.items()})
    if rule is None:
        rule = _default_rule()
    if rule not in RULES:
        raise ValueError(f"quality.rule: {rule!r} is not a degeneration rule (expected one of {', '.join(RULES)})")
    t["rule"] = str(rule)
    return t


def _default_rule() -> str:
    """``quality.rule``'s default (the schema's, :mod:`filterdb.schema`)."""
    return str(schema_default("quality.rule"))


def layer_flags(table: pd.DataFrame, thresholds: Mapping | None = None) -> pd.DataFrame:
    """The degeneration flags of each layer (NaN metrics never flag).

    Rule ``project``: ``sparse`` = sparsity >= ``sparse``, ``low_diversity`` = normalised entropy
    < ``low_diversity``, ``random_like`` = normalised entropy >= ``random_like``; degenerated =
    any. Rule ``cvpr_reanalysis``: the clauses of :func:`filterdb.quality.cvpr_reanalysis_flags`
    (``sparse`` = sparsity >= 0.14, ``low_diversity`` = H < 0.5, ``random_like`` = H >= thr(n) -
    0.02), degenerated = ``random_like`` or (``low_diversity`` and ``sparse``).

    Parameters
    ----------
    table : pandas.DataFrame, L rows
        Columns ``sparsity`` and ``variance_entropy_norm`` (rule ``cvpr_reanalysis``:
        ``sparsity``, ``variance_entropy`` and ``n_filters``).
    thresholds : Mapping or None
        See :func:`thresholds_with_defaults`.

    Returns
    -------
    pandas.DataFrame, L rows (index of ``table``)
        Boolean columns ``sparse``, ``low_diversity``, ``random_like``, ``degenerated``.
    """
    t = thresholds_with_defaults(thresholds)
    if t["rule"] == "cvpr_reanalysis":
        f = cvpr_reanalysis_flags(
            table["variance_entropy"].to_numpy(np.float64),
            table["n_filters"].to_numpy(np.float64),
            table["sparsity"].to_numpy(np.float64),
        )
        return pd.DataFrame({k: f[k] for k in FLAGS + ["degenerated"]}, index=table.index)
    s = table["sparsity"].to_numpy(np.float64)
    e = table["variance_entropy_norm"].to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        f = pd.DataFrame(
            {"sparse": s >= t["sparse"], "low_diversity": e < t["low_diversity"], "random_like": e >= t["random_like"]},
            index=table.index,
        )
    f["degenerated"] = f[FLAGS].any(axis=1)
    return f


def layer_quality_table(
    layers: pd.DataFrame, arrays: Mapping[str, np.ndarray], axes: Sequence = (), thresholds: Mapping | None = None
) -> pd.DataFrame:
    """``quality/layers.tsv``: the metrics and flags of every layer.

    Parameters
    ----------
    layers : pandas.DataFrame, L rows
        The layer table (``model_id``, ``conv_depth``, ``conv_depth_norm``; ``layer``, ``model``,
        ``out_channels`` and the axes' columns when present).
    arrays : Mapping of str to numpy.ndarray, each shape (L,)
        The gathered stats (``quality_*`` keys) or already unprefixed quality arrays.
    axes : sequence of filterdb.axes.Axis
        One label column per axis, named after the axis.
    thresholds : Mapping or None
        See :func:`thresholds_with_defaults`.

    Returns
    -------
    pandas.DataFrame, L rows in layer order
        ``layer``, ``model_id``, ``model``, ``conv_depth``, ``conv_depth_norm``, ``out_channels``
        (when known), the axis label columns, ``n_filters``, ``n_sparse``, the metrics
        (:data:`filterdb.quality.METRICS`), ``absmax``, the flags (:func:`layer_flags`) and
        ``notes`` (text).
    """
    q = quality_arrays(arrays) if any(k.startswith("quality_") for k in arrays) else dict(arrays)
    if len(q["sparsity"]) != len(layers):
        raise ValueError(f"quality arrays cover {len(q['sparsity'])} layers, the layer table {len(layers)}")
    df = pd.DataFrame(
        {
            "layer": layers["layer"].to_numpy() if "layer" in layers else np.arange(len(layers)),
            "model_id": layers["model_id"].to_numpy(),
        }
    )
    df["model"] = layers["model"].to_numpy() if "model" in layers else layers["model_id"].astype(str).to_numpy()
    df["conv_depth"] = layers["conv_depth"].to_numpy()
    df["conv_depth_norm"] = layers["conv_depth_norm"].to_numpy()
    if "out_channels" in layers:
        df["out_channels"] = pd.to_numeric(layers["out_channels"], errors="coerce").astype("Int64").to_numpy()
    reserved = set(df.columns) | {"n_filters", "n_sparse", "absmax", "notes", "degenerated"} | set(METRICS) | set(FLAGS)
    for axis in axes:
        if axis.name in reserved:
            raise ValueError(
                f"axis name {axis.name!r} clashes with a column of the quality layer table; rename the axis"
            )
        df[axis.name] = layer_labels(layers, axis).to_numpy()
    df["n_filters"] = np.asarray(q["n_filters"], np.int64)
    df["n_sparse"] = np.asarray(q["n_sparse"], np.int64)
    for m in METRICS + ["absmax"]:
        df[m] = np.asarray(q[m], np.float64)
    df = pd.concat([df, layer_flags(df, thresholds)], axis=1)
    df["notes"] = [note_text(b) for b in np.asarray(q["notes"], np.int64)]
    return df


def read_layer_quality_table(path) -> pd.DataFrame:
    """``quality/layers.tsv`` back (:func:`filterdb.results.read_tsv`; empty notes as '').

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    pandas.DataFrame
        As written by :func:`layer_quality_table`.
    """
    from .results import read_tsv

    df = read_tsv(path)
    df["notes"] = ["" if pd.isna(v) else str(v) for v in df["notes"]]  # an all-empty column reads as float
    return df


def weighted_mean(values: pd.Series, weights: pd.Series) -> float:
    """Mean of ``values`` weighted by ``weights``, NaN values left out.

    Parameters
    ----------
    values, weights : pandas.Series, same length

    Returns
    -------
    float
        NaN when no value is left or the weights sum to 0.
    """
    return _weighted_mean(values.to_numpy(np.float64), weights.to_numpy(np.float64))


def _weighted_mean(v: np.ndarray, w: np.ndarray) -> float:
    """:func:`weighted_mean` of float64 arrays."""
    ok = ~np.isnan(v)
    return float(np.sum(v[ok] * w[ok]) / np.sum(w[ok])) if ok.any() and np.sum(w[ok]) > 0 else math.nan


def _summaries(table: pd.DataFrame, keys: list[str], thresholds: Mapping | None = None) -> pd.DataFrame:
    """Per group of ``keys``: counts, filter-weighted means of the metrics, shares of flagged layers
    and of filters in degenerated layers (layer flags recomputed with ``thresholds``)."""
    table = pd.concat(
        [table.drop(columns=[c for c in FLAGS + ["degenerated"] if c in table]), layer_flags(table, thresholds)], axis=1
    )
    rows = []
    for key, g in table.groupby(keys, sort=True, dropna=True):
        key = key if isinstance(key, tuple) else (key,)
        r = dict(zip(keys, key))
        r["n_models"] = g["model_id"].nunique()
        r["n_layers"] = len(g)
        r["n_filters"] = int(g["n_filters"].sum())
        for m in METRICS:
            r[m] = weighted_mean(g[m], g["n_filters"])
        for f in FLAGS + ["degenerated"]:
            r[f"share_{f}_layers"] = float(g[f].mean())
        r["share_degenerated_filters"] = float(g.loc[g["degenerated"], "n_filters"].sum() / max(r["n_filters"], 1))
        rows.append(r)
    cols = (
        keys
        + ["n_models", "n_layers", "n_filters"]
        + METRICS
        + [f"share_{f}_layers" for f in FLAGS + ["degenerated"]]
        + ["share_degenerated_filters"]
    )
    return pd.DataFrame(rows, columns=cols)


def model_quality_table(layer_table: pd.DataFrame, thresholds: Mapping | None = None) -> pd.DataFrame:
    """``quality/models.tsv``: the quality of every model, most degenerated first.

    Parameters
    ----------
    layer_table : pandas.DataFrame
        :func:`layer_quality_table`.
    thresholds : Mapping or None
        See :func:`thresholds_with_defaults` (flags are recomputed with them).

    Returns
    -------
    pandas.DataFrame, one row per model
        ``model_id``, ``model``, ``n_layers``, ``n_filters``, the filter-weighted means of the
        metrics (NaN layers left out), ``share_{flag}_layers`` and ``share_degenerated_layers``,
        ``share_degenerated_filters``, the model flags ``sparse``, ``low_diversity``,
        ``random_like`` (share of layers with the flag ``>= model_share``, or the weighted mean
        crossing the layer threshold), ``n_flags`` and ``degenerated`` (any model flag). With the
        rule ``cvpr_reanalysis``: a model flag is the share of layers with it ``>= model_share``
        alone (the rule has no model-level means), and ``degenerated`` the share of degenerated
        layers ``>= model_share``. Sorted by ``degenerated``, ``n_flags``, share of degenerated
        layers, share of degenerated filters (all descending), then ``model``.
    """
    t = thresholds_with_defaults(thresholds)
    s = _summaries(layer_table, ["model_id", "model"], t).drop(columns="n_models")
    share = t["model_share"]
    cvpr = t["rule"] == "cvpr_reanalysis"
    with np.errstate(invalid="ignore"):
        if cvpr:
            for f in FLAGS:
                s[f] = s[f"share_{f}_layers"] >= share
        else:
            s["sparse"] = (s["share_sparse_layers"] >= share) | (s["sparsity"] >= t["sparse"])
            s["low_diversity"] = (s["share_low_diversity_layers"] >= share) | (
                s["variance_entropy_norm"] < t["low_diversity"]
            )
            s["random_like"] = (s["share_random_like_layers"] >= share) | (
                s["variance_entropy_norm"] >= t["random_like"]
            )
    s["n_flags"] = s[FLAGS].sum(axis=1).astype(int)
    s["degenerated"] = (s["share_degenerated_layers"] >= share) if cvpr else (s["n_flags"] > 0)
    s = s.sort_values(
        ["degenerated", "n_flags", "share_degenerated_layers", "share_degenerated_filters", "model"],
        ascending=[False, False, False, False, True],
        kind="stable",
    )
    return s.reset_index(drop=True)


def group_quality_table(
    layer_table: pd.DataFrame, column: str, order: Sequence | None = None, thresholds: Mapping | None = None
) -> pd.DataFrame:
    """``quality/by_{axis}.tsv``: the quality of every group of one label column.

    Parameters
    ----------
    layer_table : pandas.DataFrame
        :func:`layer_quality_table` (layers without a label are left out).
    column : str
        The label column (an axis name, or e.g. ``depth_bin``); renamed ``group``.
    order : sequence of str, optional
        Row order (e.g. depth bins in natural order; groups not in it last); else sorted by label.
    thresholds : Mapping or None
        See :func:`thresholds_with_defaults`.

    Returns
    -------
    pandas.DataFrame, one row per group
        ``group``, ``n_models``, ``n_layers``, ``n_filters``, filter-weighted metric means,
        ``share_{flag}_layers``, ``share_degenerated_layers``, ``share_degenerated_filters``.
    """
    s = _summaries(layer_table.dropna(subset=[column]), [column], thresholds).rename(columns={column: "group"})
    if order is not None:
        rank = {g: k for k, g in enumerate(order)}
        s = s.sort_values("group", key=lambda c: c.map(rank).fillna(len(rank)), kind="stable")
    return s.reset_index(drop=True)


def depth_labels(layer_table: pd.DataFrame, bins: int | None = None) -> tuple[pd.Series, list[str]]:
    """Depth bin of each layer: ``conv_depth_norm`` cut as a binned depth axis.

    Parameters
    ----------
    layer_table : pandas.DataFrame, L rows
        Column ``conv_depth_norm`` in ``[0, 1]``.
    bins : int, optional
        Number of equal bins (default: an axis's default, the schema's ``axes.*.bins``).

    Returns
    -------
    labels : pandas.Series, L rows
        The bin label of each layer (:func:`filterdb.axes.layer_labels`).
    order : list of str, length ``bins``
        The bin labels in natural order (:func:`filterdb.axes.depth_bin_labels`).
    """
    ax = depth_axis(bins)
    return layer_labels(layer_table, ax), depth_bin_labels(ax.bins)


# ---------------------------------------------------------------------------------------------
# Sensitivity of the flags to their thresholds

#: The swept settings: (flag, config key, key of ``sweeps``) in table order.
SENSITIVITY = [
    ("sparse", "quality.eps", "eps"),
    ("sparse", "quality.thresholds.sparse", "sparse"),
    ("low_diversity", "quality.thresholds.low_diversity", "low_diversity"),
    ("random_like", "quality.thresholds.random_like", "random_like"),
    ("degenerated", "quality.thresholds.model_share", "model_share"),
]
SENSITIVITY_COLUMNS = [
    "flag",
    "parameter",
    "value",
    "configured",
    "n_layers",
    "n_layers_flagged",
    "share_layers_flagged",
    "n_models",
    "n_models_flagged",
    "share_models_flagged",
]


class _Models:
    """The layers of each model (in layer order, as :func:`_summaries` groups them), for the
    model flags of the sweep: per model the share of its layers carrying a flag and the
    filter-weighted mean of a metric (:func:`weighted_mean`, bit for bit)."""

    def __init__(self, model_id: np.ndarray, n_filters: np.ndarray):
        codes, self.ids = pd.factorize(pd.Series(model_id), sort=True)
        ok = codes >= 0
        order = np.flatnonzero(ok)[np.argsort(codes[ok], kind="stable")]
        cut = np.flatnonzero(np.diff(codes[order])) + 1
        self.rows = np.split(order, cut) if order.size else []
        self.w = np.asarray(n_filters, np.float64)

    def __len__(self) -> int:
        return len(self.rows)

    def share(self, flag: np.ndarray) -> np.ndarray:
        return np.array([float(np.mean(flag[r])) for r in self.rows])

    def mean(self, metric: np.ndarray) -> np.ndarray:
        return np.array([_weighted_mean(metric[r], self.w[r]) for r in self.rows])


def _sweep_values(configured: float, values) -> np.ndarray:
    """The swept values with the configured one, sorted, without repeats."""
    return np.unique(np.asarray([float(configured), *[float(v) for v in (values or ())]], np.float64))


def sensitivity_table(
    layer_table: pd.DataFrame,
    eps_grid: np.ndarray,
    n_sparse_grid: np.ndarray,
    eps: float,
    thresholds: Mapping | None = None,
    sweeps: Mapping | None = None,
) -> pd.DataFrame:
    """``quality/sensitivity.tsv``: how many layers and models each flag marks over a sweep of its
    threshold, the configured value marked (docs/method.md §9).

    The flags are the ``project`` rule's (:func:`layer_flags`, :func:`model_quality_table`), the
    other thresholds held at their configured values: ``sparse`` over the sparsity ``eps`` (from
    the sparse counts the sums pass made for every eps of the grid) and over the share threshold
    ``sparse``; ``low_diversity`` and ``random_like`` over their cutoffs of the normalised
    variance entropy; and the model flag ``degenerated`` over ``model_share`` (its layer columns
    are the degenerated layers at the configured thresholds). Every value but eps is swept over
    the stored per-layer metrics: no pass over the filters.

    Parameters
    ----------
    layer_table : pandas.DataFrame, L rows in layer order
        :func:`layer_quality_table` (``model_id``, ``n_filters``, ``sparsity``,
        ``variance_entropy_norm``).
    eps_grid : (E,) array_like
        The swept eps (``quality_eps_grid`` of ``stats/sums.npz``); must hold ``eps``.
    n_sparse_grid : (L, E) array_like of int
        Sparse filters of each layer at each eps (``quality_n_sparse_grid``).
    eps : float
        The configured ``quality.eps``.
    thresholds : Mapping or None
        The configured ``quality.thresholds`` (:func:`thresholds_with_defaults`; a ``rule`` is
        ignored: the sweep is of the project rule's thresholds).
    sweeps : Mapping or None
        Values of ``sparse``, ``low_diversity``, ``random_like``, ``model_share`` to sweep
        (config ``quality.sensitivity``); the configured value is always added. An ``eps`` entry
        is ignored (its grid is ``eps_grid``, fixed by the pass).

    Returns
    -------
    pandas.DataFrame
        :data:`SENSITIVITY_COLUMNS`, one row per (setting, value), in the order of
        :data:`SENSITIVITY` and ascending value. ``configured`` marks the configured value;
        ``share_layers_flagged`` is over all L layers, ``share_models_flagged`` over all models.

    Raises
    ------
    ValueError
        When the grid does not hold ``eps`` or does not match the layer table.
    """
    t = thresholds_with_defaults({k: v for k, v in dict(thresholds or {}).items() if k != "rule"})
    t["rule"] = "project"
    sweeps = dict(sweeps or {})
    eps_grid = np.asarray(eps_grid, np.float64).reshape(-1)
    grid = np.asarray(n_sparse_grid, np.int64)
    L = len(layer_table)
    if grid.shape != (L, eps_grid.size):
        raise ValueError(
            f"quality_n_sparse_grid has shape {grid.shape}, expected ({L}, {eps_grid.size}) for the "
            f"{L} layers of the quality table and the {eps_grid.size} eps of the grid: rerun the sums pass"
        )
    if not np.any(eps_grid == float(eps)):
        raise ValueError(f"quality.eps {eps!r} is not in the stored eps grid {eps_grid.tolist()}: rerun the sums pass")
    n = layer_table["n_filters"].to_numpy(np.int64)
    s = layer_table["sparsity"].to_numpy(np.float64)
    e = layer_table["variance_entropy_norm"].to_numpy(np.float64)
    models = _Models(layer_table["model_id"].to_numpy(), n)
    share = t["model_share"]
    with np.errstate(invalid="ignore"):
        # layer flags and model pieces at the configured thresholds
        flags = {
            "sparse": s >= t["sparse"],
            "low_diversity": e < t["low_diversity"],
            "random_like": e >= t["random_like"],
        }
        mean_s, mean_e = models.mean(s), models.mean(e)
        shares = {f: models.share(v) for f, v in flags.items()}

        def cross(f, thr):
            m = {"sparse": mean_s >= thr, "low_diversity": mean_e < thr, "random_like": mean_e >= thr}
            return m[f]

        rows = []

        def row(flag, key, value, configured, layer_flag, model_flag):
            nl, nm, M = int(np.count_nonzero(layer_flag)), int(np.count_nonzero(model_flag)), len(models)
            rows.append(
                {
                    "flag": flag,
                    "parameter": key,
                    "value": float(value),
                    "configured": bool(configured),
                    "n_layers": L,
                    "n_layers_flagged": nl,
                    "share_layers_flagged": nl / L if L else math.nan,
                    "n_models": M,
                    "n_models_flagged": nm,
                    "share_models_flagged": nm / M if M else math.nan,
                }
            )

        for flag, key, name in SENSITIVITY:
            if name == "eps":
                for j, v in enumerate(eps_grid):
                    sj = np.where(n > 0, grid[:, j] / np.maximum(n, 1), np.nan)
                    lf = sj >= t["sparse"]
                    mf = (models.share(lf) >= share) | (models.mean(sj) >= t["sparse"])
                    row(flag, key, v, v == float(eps), lf, mf)
            elif name == "model_share":
                deg = flags["sparse"] | flags["low_diversity"] | flags["random_like"]
                for v in _sweep_values(share, sweeps.get(name)):
                    mf = np.zeros(len(models), bool)
                    for f in FLAGS:
                        mf |= (shares[f] >= v) | cross(f, t[f])
                    row(flag, key, v, v == share, deg, mf)
            else:
                for v in _sweep_values(t[name], sweeps.get(name)):
                    lf = {"sparse": s >= v, "low_diversity": e < v, "random_like": e >= v}[flag]
                    mf = (models.share(lf) >= share) | cross(flag, v)
                    row(flag, key, v, v == t[name], lf, mf)
    return pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)
