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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .axes import depth_axis, depth_bin_labels, layer_labels
from .quality import DEFAULT_THRESHOLDS, FLAGS, METRICS, note_text


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
    """The degeneration thresholds: :data:`filterdb.quality.DEFAULT_THRESHOLDS` updated by ``thresholds``.

    Parameters
    ----------
    thresholds : Mapping or None
        Any of ``sparse``, ``low_diversity``, ``random_like``, ``model_share``.

    Returns
    -------
    dict of str to float
        All four keys.

    Raises
    ------
    ValueError
        On an unknown key.

    Examples
    --------
    >>> thresholds_with_defaults({"random_like": 1.5})["random_like"]
    1.5
    """
    t = dict(DEFAULT_THRESHOLDS)
    unknown = set(thresholds or {}) - set(t)
    if unknown:
        raise ValueError(f"quality thresholds: unknown keys {sorted(unknown)} (known: {sorted(t)})")
    t.update({k: float(v) for k, v in (thresholds or {}).items()})
    return t


def layer_flags(table: pd.DataFrame, thresholds: Mapping | None = None) -> pd.DataFrame:
    """The degeneration flags of each layer (NaN metrics never flag).

    Parameters
    ----------
    table : pandas.DataFrame, L rows
        Columns ``sparsity`` and ``variance_entropy_norm``.
    thresholds : Mapping or None
        See :func:`thresholds_with_defaults`.

    Returns
    -------
    pandas.DataFrame, L rows (index of ``table``)
        Boolean columns ``sparse``, ``low_diversity``, ``random_like``, ``degenerated``.
    """
    t = thresholds_with_defaults(thresholds)
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
    df["notes"] = df["notes"].fillna("")
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
    v = values.to_numpy(np.float64)
    w = weights.to_numpy(np.float64)
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
        crossing the layer threshold), ``n_flags`` and ``degenerated``. Sorted by ``n_flags``, share
        of degenerated layers, share of degenerated filters (all descending), then ``model``.
    """
    t = thresholds_with_defaults(thresholds)
    s = _summaries(layer_table, ["model_id", "model"], t).drop(columns="n_models")
    share = t["model_share"]
    with np.errstate(invalid="ignore"):
        s["sparse"] = (s["share_sparse_layers"] >= share) | (s["sparsity"] >= t["sparse"])
        s["low_diversity"] = (s["share_low_diversity_layers"] >= share) | (
            s["variance_entropy_norm"] < t["low_diversity"]
        )
        s["random_like"] = (s["share_random_like_layers"] >= share) | (s["variance_entropy_norm"] >= t["random_like"])
    s["n_flags"] = s[FLAGS].sum(axis=1).astype(int)
    s["degenerated"] = s["n_flags"] > 0
    s = s.sort_values(
        ["n_flags", "share_degenerated_layers", "share_degenerated_filters", "model"],
        ascending=[False, False, False, True],
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
        Number of equal bins (default: an axis's default, :attr:`filterdb.axes.Axis.bins`).

    Returns
    -------
    labels : pandas.Series, L rows
        The bin label of each layer (:func:`filterdb.axes.layer_labels`).
    order : list of str, length ``bins``
        The bin labels in natural order (:func:`filterdb.axes.depth_bin_labels`).
    """
    ax = depth_axis(bins)
    return layer_labels(layer_table, ax), depth_bin_labels(ax.bins)
