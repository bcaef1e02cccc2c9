"""``filterdb compare``: the models of a sheet against an analysed reference run, and against each other
(docs/method.md §12).

Every model of a models sheet (:mod:`filterdb.ingest.sheet`; any format ``filterdb.inspect.read_model``
reads) is read **one at a time**, projected onto the reference run's global PCA basis and binned over its
edges (:func:`filterdb.inspect.project_model`, as ``filterdb inspect`` does: scaling in the reference run's
precision, coefficients outside the reference's range counted and left out of the histograms); only its
per-layer histograms ``(L, d, bins)`` and quality rows are kept, so memory is bounded by the largest model.
The reference's filters are never read: its tables are (:func:`filterdb.inspect.load_reference`).

From those histograms alone:

* the model x model drift D (``drift.tsv``, sheet order) and its heatmap;
* the drift of each layer between every pair of models whose layers match (:func:`match_layers`: by
  layer name when both models name their layers, the names are unique and every name of the first model
  is found in the second; else by position among the k x k conv layers), and the layers that do not match;
* the drift per depth bin between every pair (``conv_depth_norm`` bins of the configured depth axis);
* each model's drift to every group of every reference axis (:func:`filterdb.inspect.group_drift_table`)
  and to its nearest reference model;
* the quality metrics per layer and per model (:mod:`filterdb.quality_tables`);
* with ``order`` (a numeric sheet column such as ``epoch``), the training trajectory: per checkpoint the
  drift to the first checkpoint and to the previous one, for the whole model and per layer, and its figure.

The command line is in :mod:`filterdb.cli`, the workflow rule in ``workflow/rules/compare.smk``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import divergence, inspect, quality_tables, results
from .axes import Axis, depth_axis, depth_bin_labels, layer_labels
from .shape import STUDY, FilterShape

#: Columns of the sheet that locate a model's file (not copied to its meta).
LOCATION = ("path", "source", "member", "archive")

LAYER_DRIFT_COLUMNS = [
    "model_a",
    "model_b",
    "match",
    "layer_a",
    "layer_b",
    "layer_name_a",
    "layer_name_b",
    "conv_depth_norm_a",
    "conv_depth_norm_b",
    "n_filters_a",
    "n_filters_b",
    "drift",
]
UNMATCHED_COLUMNS = ["model_a", "model_b", "match", "model", "layer", "layer_name", "n_filters"]
DEPTH_DRIFT_COLUMNS = ["model_a", "model_b", "depth_bin", "n_filters_a", "n_filters_b", "drift"]
TRAJECTORY_COLUMNS = [
    "step",
    "model",
    "order",
    "scope",
    "layer",
    "layer_name",
    "n_filters",
    "drift_to_first",
    "drift_to_previous",
]


class CompareError(ValueError):
    """A sheet, a model file or an option that ``compare`` cannot use (one line)."""


# ---------------------------------------------------------------------------------------------
# Layer matching


@dataclass
class LayerMatch:
    """How the k x k conv layers of model ``a`` (the first) and ``b`` pair up.

    ``how``: ``"name"`` or ``"position"``; ``pairs``: ``(i, j)`` = layer ``i`` of ``a`` with layer
    ``j`` of ``b`` (positions among each model's k x k layers), in ``a``'s order; ``only_a``,
    ``only_b``: the layers left without a partner."""

    how: str
    pairs: list
    only_a: list
    only_b: list


def _layer_names(meta: pd.DataFrame) -> list[str] | None:
    """The layers' names when every layer has one and no two share it, else None."""
    if "layer_name" not in meta or not len(meta):
        return None
    names = [("" if pd.isna(v) else str(v).strip()) for v in meta["layer_name"]]
    if any(n == "" for n in names) or len(set(names)) != len(names):
        return None
    return names


def match_layers(a: pd.DataFrame, b: pd.DataFrame) -> LayerMatch:
    """Pair the layers of two models (docs/method.md §12).

    By name when both layer tables carry a ``layer_name`` for every layer, the names are unique within
    each model and every name of ``a`` is one of ``b``'s; otherwise by position: layer ``k`` of ``a``
    with layer ``k`` of ``b`` for ``k < min(L_a, L_b)`` (the k x k conv layers in the reader's order:
    graph order, or file order for state dicts).

    Parameters
    ----------
    a, b : pandas.DataFrame
        One row per k x k conv layer, in the model's layer order (``layer_name`` optional).

    Returns
    -------
    LayerMatch
    """
    na, nb = _layer_names(a), _layer_names(b)
    if na is not None and nb is not None and set(na) <= set(nb):
        pos = {n: j for j, n in enumerate(nb)}
        pairs = [(i, pos[n]) for i, n in enumerate(na)]
        used = {j for _, j in pairs}
        return LayerMatch("name", pairs, [], [j for j in range(len(nb)) if j not in used])
    k = min(len(a), len(b))
    return LayerMatch("position", [(i, i) for i in range(k)], list(range(k, len(a))), list(range(k, len(b))))


# ---------------------------------------------------------------------------------------------
# Reading the sheet


@dataclass
class SheetModel:
    """One sheet row once projected: its histograms, quality and meta (no weights)."""

    index: int  # position in the sheet
    name: str
    file: str
    proj: inspect.Projection
    probs: np.ndarray  # (L, d, bins) per-layer distributions (divergence.probabilities)
    n_filters: np.ndarray  # (L,)

    @property
    def counts(self) -> np.ndarray:
        """(d, bins): the whole model's histograms."""
        return self.proj.counts.sum(axis=0)


def order_values(sheet: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """The numbers of a sheet's ``column`` (the trajectory's order).

    Parameters
    ----------
    sheet : pandas.DataFrame
        :func:`filterdb.ingest.sheet.read_sheet`.
    column : str
    where : str
        The sheet's path, for messages.

    Returns
    -------
    (M,) ndarray
        int64 when every value is an integer, else float64.

    Raises
    ------
    CompareError
        The column is missing, or a cell is empty or not a number.
    """
    if column not in sheet.columns:
        raise CompareError(
            f"{where}: no column {column!r} to order the checkpoints by (columns: {', '.join(sheet.columns)})"
        )
    x = pd.to_numeric(sheet[column], errors="coerce")
    bad = np.flatnonzero(x.isna().to_numpy() | ~np.isfinite(x.to_numpy(np.float64, na_value=np.nan)))
    if bad.size:
        i = int(bad[0])
        raise CompareError(
            f"{where}: row {i + 2} (model {sheet['model'].iloc[i]!r}): {column} {sheet[column].iloc[i]!r} "
            "is not a number (the --order column must be numeric)"
        )
    v = x.to_numpy(np.float64)
    return v.astype(np.int64) if np.all(v == np.round(v)) and np.all(np.abs(v) < 2**53) else v


def _row_meta(row: pd.Series) -> dict:
    """The sheet's descriptive and extra columns of one row (the model's meta, e.g. Task, epoch)."""
    return {c: row[c] for c in row.index if c not in LOCATION and c != "model"}


def _read_model(path: str, mid: str, kernel: FilterShape = STUDY) -> inspect.ModelLayers:
    """The model of one sheet row (its ``kernel`` convs, the reference's kernel size): a filter DB
    holding several models gives the one named ``mid``."""
    from .db import is_filter_db, open_db

    model = None
    if is_filter_db(path):
        layers = open_db(path).layers
        names = set(layers["model"].astype(str)) if "model" in layers else set()
        if len(set(layers["model_id"])) > 1 or mid in names:
            model = mid
    return inspect.read_model(path, model, kernel=kernel)


# ---------------------------------------------------------------------------------------------
# The comparison


@dataclass
class Comparison:
    """Everything ``compare`` writes (:func:`write_outputs`)."""

    models: pd.DataFrame  # one row per sheet model (sheet order)
    drift: np.ndarray  # (M, M) model x model drift, sheet order
    layer_drift: pd.DataFrame
    unmatched: pd.DataFrame
    depth_drift: pd.DataFrame
    groups: pd.DataFrame  # model, axis, group, drift, ...
    quality_layers: pd.DataFrame
    quality_models: pd.DataFrame
    trajectory: pd.DataFrame | None
    settings: dict = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The models, in sheet order."""
        return list(self.models["model"])


def depth_axis_of(axes: Sequence[Axis]) -> Axis:
    """The run's depth axis: the first ``binned`` axis on ``conv_depth_norm``, else the study's
    deciles (:func:`filterdb.axes.depth_axis`).

    Parameters
    ----------
    axes : sequence of Axis

    Returns
    -------
    Axis
    """
    for a in axes:
        if a.kind == "binned" and a.column == "conv_depth_norm":
            return a
    return depth_axis()


def compare(
    sheet: str | os.PathLike,
    ref: inspect.Reference,
    axes: Sequence[Axis],
    *,
    order: str | None = None,
    eps: float | None = None,
    thresholds: dict | None = None,
    hist_eps: float | None = None,
    floor: str | None = None,
    precision: str | None = None,
    cache: str | None = None,
    download: bool = True,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
) -> Comparison:
    """Compare the models of ``sheet`` with each other and with the reference ``ref``.

    Parameters
    ----------
    sheet : str or PathLike
        A models sheet (``model``, ``path`` relative to the sheet or absolute, or ``source`` +
        ``member``; descriptive and extra columns become the models' meta).
    ref : Reference
        The analysed reference run (:func:`filterdb.inspect.load_reference`).
    axes : sequence of Axis
        The axes whose reference groups each model is compared with; the first binned axis on
        ``conv_depth_norm`` gives the depth bins.
    order : str, optional
        A numeric sheet column (e.g. ``epoch``): the checkpoints' order for the trajectory.
    eps, thresholds, hist_eps, floor, precision : optional
        As :func:`filterdb.inspect.inspect_model` (None: the reference run's precision, the
        configuration defaults).
    cache : str, optional
        Cache folder for ``source`` rows (default :func:`filterdb.ingest.build.default_cache`).
    download : bool
        Allow downloads of ``source`` archives.
    log : callable, optional
        ``log(line)``: one line per model (default: print to stdout).
    progress : bool
        A tqdm bar over the models on stderr.

    Returns
    -------
    Comparison

    Raises
    ------
    CompareError
        A bad sheet, a missing or unreadable model file, a model without a conv of the reference's
        kernel size (3x3 for the study's DB), a DB of another kernel size, a missing or
        non-numeric ``order`` column: one line naming the sheet row and the file.
    """
    from .ingest.build import default_cache
    from .ingest.fetch import resolve_file
    from .ingest.sheet import read_sheet

    log = log or print
    sheet = str(sheet)
    df = read_sheet(sheet)
    values = order_values(df, order, sheet) if order else None
    sheet_dir = os.path.dirname(os.path.abspath(sheet))
    cache = cache or default_cache()
    eps, hist_eps, floor, precision = inspect.resolve_settings(ref, eps, hist_eps, floor, precision)
    kernel = ref.shape  # every model is read for its convs of the reference's kernel size

    def where(i: int) -> str:
        return f"{sheet}: row {i + 2} (model {df['model'].iloc[i]!r})"

    # every local file is checked before any model is read: a typo fails at once
    for i, row in df.iterrows():
        if row["path"]:
            p = resolve_file(row, sheet_dir, archives="", members="", download=False)
            if not os.path.isfile(p):
                raise CompareError(
                    f"{where(i)}: {p}: "
                    + ("is a directory, expected a model file" if os.path.isdir(p) else "no such file")
                )

    ref_groups = inspect.reference_groups(ref, axes)
    ref_table, ref_counts = inspect.model_histograms(ref.layers, ref.counts)
    models: list[SheetModel] = []
    rows = []
    from tqdm import tqdm

    bar = tqdm(df.iterrows(), total=len(df), desc="compare", unit="model", file=sys.stderr, disable=not progress)
    for i, row in bar:
        mid = row["model"]
        try:
            path = resolve_file(
                row,
                sheet_dir,
                archives=os.path.join(cache, "archives"),
                members=os.path.join(cache, "members"),
                download=download,
                log=lambda m: print(m, file=sys.stderr),
            )
            m = _read_model(path, mid, kernel)
        except (ValueError, OSError) as exc:  # IngestError, DBError are ValueErrors
            raise CompareError(f"{where(i)}: {exc}") from None
        if not m.weights:
            raise CompareError(f"{where(i)}: {path}: no {kernel.label} conv layer")
        proj = inspect.project_model(m, ref, eps, precision)
        del m  # the weights: only the histograms and quality rows are kept
        meta = proj.meta
        meta["model_id"] = i
        meta["model"] = mid
        for c, v in _row_meta(row).items():
            if c not in meta.columns:
                meta[c] = v
        n = np.asarray(proj.quality["n_filters"], np.int64)
        sm = SheetModel(
            index=i,
            name=mid,
            file=path,
            proj=proj,
            probs=divergence.probabilities(proj.counts, hist_eps, floor, ref.edges),
            n_filters=n,
        )
        models.append(sm)
        d_ref = inspect.drift_row(sm.counts, ref_counts, ref.evr, hist_eps, floor, ref.edges)
        k = int(np.argmin(d_ref)) if d_ref.size else -1
        fmt = str(meta["format"].iloc[0]) if "format" in meta and len(meta) else ""
        rows.append(
            {
                "model": mid,
                **({"order": values[i]} if values is not None else {}),
                "file": path,
                "format": fmt,
                "n_layers": len(n),
                "n_filters": int(n.sum()),
                "coefficients_outside_range": int(proj.outside.sum()),
                "nearest_reference_model": str(ref_table["model"].iloc[k]) if k >= 0 else "",
                "nearest_reference_drift": float(d_ref[k]) if k >= 0 else math.nan,
            }
        )
        r = rows[-1]
        bar.clear()
        log(
            f"model {mid}: {fmt or 'filter DB'}, {r['n_layers']} {kernel.label} conv layers, {r['n_filters']} filters, "
            f"{r['coefficients_outside_range']} coefficient values outside the reference range"
            + (f"; nearest reference model {r['nearest_reference_model']} (D = {r['nearest_reference_drift']:.4g})")
        )
    bar.close()

    evr = ref.evr
    mcounts = np.stack([sm.counts for sm in models])
    dm = divergence.drift_matrix(mcounts, evr, hist_eps, floor, ref.edges)
    table = pd.DataFrame(rows)
    others = (dm.sum(axis=1) / (len(models) - 1)) if len(models) > 1 else np.full(len(models), math.nan)
    table["mean_drift_to_others"] = others

    layer_drift, unmatched = _pair_layer_drifts(models, evr)
    depth_drift = _depth_drifts(models, depth_axis_of(axes), evr, hist_eps, floor, ref.edges)

    metas = pd.concat([sm.proj.meta for sm in models], ignore_index=True)
    arrays = {f: np.concatenate([sm.proj.quality[f] for sm in models]) for f in models[0].proj.quality}
    own_axes = [a for a in axes if inspect._has_column(metas, a)]
    ql = quality_tables.layer_quality_table(metas, arrays, own_axes, thresholds)
    if "layer_name" in metas:
        ql.insert(3, "layer_name", metas["layer_name"].to_numpy())
    qm = quality_tables.model_quality_table(ql, thresholds).sort_values("model_id", kind="stable")
    qm = qm.reset_index(drop=True)

    gparts = []
    for sm in models:
        g = inspect.group_drift_table(sm.counts, ref_groups, ref, hist_eps, floor, ql[ql["model_id"] == sm.index])
        g.insert(0, "model", sm.name)
        gparts.append(g)
    groups = pd.concat(gparts, ignore_index=True)

    traj = trajectory_table(models, values, dm, evr) if values is not None else None
    settings = {
        "precision": precision,
        "histogram": {"bins": int(ref.edges.size - 1), "floor": floor, "eps": hist_eps},
        "range": [float(ref.range[0]), float(ref.range[1])],
        "quality": {"eps": eps, "thresholds": quality_tables.thresholds_with_defaults(thresholds)},
        "axes": [a.name for a in axes],
        "depth_bins": depth_axis_of(axes).bins,
        "order": order,
    }
    return Comparison(
        models=table,
        drift=dm,
        layer_drift=layer_drift,
        unmatched=unmatched,
        depth_drift=depth_drift,
        groups=groups,
        quality_layers=ql,
        quality_models=qm,
        trajectory=traj,
        settings=settings,
    )


def _layer_col(meta: pd.DataFrame, col: str, i: int, default=""):
    return meta[col].iloc[i] if col in meta else default


def _matched_drifts(a: SheetModel, b: SheetModel, lm: LayerMatch, evr: np.ndarray) -> np.ndarray:
    """D of each matched pair of layers; NaN where either layer holds no filter."""
    if not lm.pairs:
        return np.zeros(0)
    ii = np.array([p[0] for p in lm.pairs])
    jj = np.array([p[1] for p in lm.pairs])
    d = divergence.drift(a.probs[ii], b.probs[jj], evr)
    d[(a.n_filters[ii] == 0) | (b.n_filters[jj] == 0)] = np.nan
    return d


def _pair_layer_drifts(models: Sequence[SheetModel], evr: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per pair of models (a before b in the sheet): the drift of each matched layer pair, and the
    layers without a partner."""
    rows, loose = [], []
    for x in range(len(models)):
        for y in range(x + 1, len(models)):
            a, b = models[x], models[y]
            lm = match_layers(a.proj.meta, b.proj.meta)
            d = _matched_drifts(a, b, lm, evr)
            ma, mb = a.proj.meta, b.proj.meta
            for (i, j), v in zip(lm.pairs, d):
                rows.append(
                    [
                        a.name,
                        b.name,
                        lm.how,
                        i,
                        j,
                        _layer_col(ma, "layer_name", i),
                        _layer_col(mb, "layer_name", j),
                        ma["conv_depth_norm"].iloc[i],
                        mb["conv_depth_norm"].iloc[j],
                        int(a.n_filters[i]),
                        int(b.n_filters[j]),
                        v,
                    ]
                )
            for who, idx in ((a, lm.only_a), (b, lm.only_b)):
                for i in idx:
                    loose.append(
                        [
                            a.name,
                            b.name,
                            lm.how,
                            who.name,
                            i,
                            _layer_col(who.proj.meta, "layer_name", i),
                            int(who.n_filters[i]),
                        ]
                    )
    return (
        pd.DataFrame(rows, columns=LAYER_DRIFT_COLUMNS),
        pd.DataFrame(loose, columns=UNMATCHED_COLUMNS),
    )


def _depth_drifts(
    models: Sequence[SheetModel], axis: Axis, evr: np.ndarray, hist_eps: float, floor: str, edges: np.ndarray
) -> pd.DataFrame:
    """Per pair of models and depth bin: D between their layers in that bin (NaN when either has no
    filter there)."""
    names = depth_bin_labels(axis.bins)
    per = []
    for sm in models:
        c = divergence.group_counts(sm.proj.counts, layer_labels(sm.proj.meta, axis), names)  # (bins, d, B)
        per.append((c, divergence.probabilities(c, hist_eps, floor, edges), c[:, 0, :].sum(axis=1)))
    rows = []
    for x in range(len(models)):
        for y in range(x + 1, len(models)):
            (_, pa, na), (_, pb, nb) = per[x], per[y]
            d = divergence.drift(pa, pb, evr)
            d[(na == 0) | (nb == 0)] = np.nan
            for k, g in enumerate(names):
                rows.append([models[x].name, models[y].name, g, int(na[k]), int(nb[k]), d[k]])
    return pd.DataFrame(rows, columns=DEPTH_DRIFT_COLUMNS)


def trajectory_table(models: Sequence[SheetModel], values: np.ndarray, dm: np.ndarray, evr: np.ndarray) -> pd.DataFrame:
    """The training trajectory in long form (docs/method.md §12).

    The checkpoints in ascending ``values`` (ties: sheet order); for step ``t`` (checkpoint ``k``),
    the first checkpoint ``f`` and the previous one ``p``: one row of scope ``model`` with
    ``D(k, f)`` and ``D(k, p)`` (the entries of the model x model matrix ``dm``), then one row per
    conv layer ``j`` of ``k`` with the drift to its matching layer in ``f`` and in ``p``
    (:func:`match_layers`, the earlier checkpoint first; NaN where it has none or either layer is
    empty). Step 0 has drift 0 to the first and NaN to the previous.

    Parameters
    ----------
    models : sequence of SheetModel, sheet order
    values : (M,) array_like
        The order column's values, sheet order.
    dm : (M, M) ndarray
        The model x model drift.
    evr : (d,) array_like

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TRAJECTORY_COLUMNS`.
    """
    seq = np.argsort(np.asarray(values), kind="stable")
    first = models[seq[0]]
    rows = []
    for t, k in enumerate(seq):
        cur = models[k]
        prev = models[seq[t - 1]] if t > 0 else None
        rows.append(
            [
                t,
                cur.name,
                values[k],
                "model",
                pd.NA,
                "",
                int(cur.n_filters.sum()),
                dm[k, seq[0]],
                dm[k, seq[t - 1]] if t else np.nan,
            ]
        )
        to_first = _per_layer_of_b(first, cur, evr)
        to_prev = _per_layer_of_b(prev, cur, evr) if prev is not None else np.full(len(cur.n_filters), np.nan)
        meta = cur.proj.meta
        for j in range(len(cur.n_filters)):
            rows.append(
                [
                    t,
                    cur.name,
                    values[k],
                    "layer",
                    j,
                    _layer_col(meta, "layer_name", j),
                    int(cur.n_filters[j]),
                    to_first[j],
                    to_prev[j],
                ]
            )
    out = pd.DataFrame(rows, columns=TRAJECTORY_COLUMNS)
    out["layer"] = out["layer"].astype("Int64")
    return out


def _per_layer_of_b(a: SheetModel, b: SheetModel, evr: np.ndarray) -> np.ndarray:
    """For each layer of ``b``: D to its matching layer of ``a`` (``a`` the earlier checkpoint), NaN
    when it has none."""
    out = np.full(len(b.n_filters), np.nan)
    lm = match_layers(a.proj.meta, b.proj.meta)
    d = _matched_drifts(a, b, lm, evr)
    for (_, j), v in zip(lm.pairs, d):
        out[j] = v
    return out


# ---------------------------------------------------------------------------------------------
# Output


def drift_frame(c: Comparison) -> pd.DataFrame:
    """``drift.tsv``: first column ``model``, then one column per model, sheet order.

    Parameters
    ----------
    c : Comparison

    Returns
    -------
    pandas.DataFrame
    """
    return divergence.drift_table(c.drift, c.names).rename(columns={"group": "model"})


def trajectory_arrays(traj: pd.DataFrame) -> dict:
    """The trajectory figure's arrays from :func:`trajectory_table`.

    Parameters
    ----------
    traj : pandas.DataFrame

    Returns
    -------
    dict
        ``order`` (K,), ``models`` (K,), ``to_first`` (K,), ``to_previous`` (K,), ``layers`` (labels of
        the layer rows: ``"k name"`` by layer position), ``layer_to_first`` (n_layers, K) with NaN where
        a checkpoint has no such layer or no match.
    """
    mrow = traj[traj["scope"] == "model"].sort_values("step")
    lrow = traj[traj["scope"] == "layer"]
    steps = mrow["step"].to_numpy()
    n_layers = int(lrow["layer"].max()) + 1 if len(lrow) else 0
    grid = np.full((n_layers, len(steps)), np.nan)
    for r in lrow.itertuples():
        grid[int(r.layer), int(r.step)] = r.drift_to_first
    labels = []
    for j in range(n_layers):
        name = lrow.loc[lrow["layer"] == j, "layer_name"]
        name = str(name.iloc[0]) if len(name) and str(name.iloc[0]) not in ("", "nan") else ""
        labels.append(f"{j} {name}".strip())
    return {
        "order": mrow["order"].to_numpy(),
        "models": mrow["model"].astype(str).tolist(),
        "to_first": mrow["drift_to_first"].to_numpy(np.float64),
        "to_previous": mrow["drift_to_previous"].to_numpy(np.float64),
        "layers": labels,
        "layer_to_first": grid,
    }


OUTPUT_TABLES = {
    "drift": "drift.tsv",
    "models": "models.tsv",
    "layer_drift": "layer_drift.tsv",
    "unmatched": "unmatched_layers.tsv",
    "depth_drift": "depth_drift.tsv",
    "groups": "groups.tsv",
    "quality_layers": "quality_layers.tsv",
    "quality_models": "quality_models.tsv",
}
FIGURES = ("drift_heatmap.svg", "drift_heatmap.png")
TRAJECTORY = ("trajectory.tsv", "trajectory.svg", "trajectory.png")


def write_outputs(c: Comparison, out: str | os.PathLike, reference: str = "") -> list[Path]:
    """Write the tables, ``summary.json`` and the figures to ``out`` (created), every file atomically
    (:mod:`filterdb.results`, :func:`filterdb.plots.save_all`); the figures are drawn before any file
    is written.

    Parameters
    ----------
    c : Comparison
    out : str or Path
    reference : str
        The reference results folder (recorded in ``summary.json``).

    Returns
    -------
    list of Path
        The files written.
    """
    from . import plots

    out = Path(out)
    heat = plots.drift_heatmap(c.drift, c.names, title="Drift D between the sheet's models")
    traj_fig = None
    if c.trajectory is not None:
        a = trajectory_arrays(c.trajectory)
        traj_fig = plots.training_trajectory(
            a["order"],
            a["to_first"],
            a["to_previous"],
            a["layers"],
            a["layer_to_first"],
            order_label=c.settings["order"],
        )
    out.mkdir(parents=True, exist_ok=True)
    frames = {
        "drift": drift_frame(c),
        "models": c.models,
        "layer_drift": c.layer_drift,
        "unmatched": c.unmatched,
        "depth_drift": c.depth_drift,
        "groups": c.groups,
        "quality_layers": c.quality_layers,
        "quality_models": c.quality_models,
    }
    written = []
    for key, name in OUTPUT_TABLES.items():
        results.write_tsv(frames[key], out / name)
        written.append(out / name)
    plots.save_all(heat, [out / f for f in FIGURES])
    written += [out / f for f in FIGURES]
    if traj_fig is not None:
        results.write_tsv(c.trajectory, out / TRAJECTORY[0])
        plots.save_all(traj_fig, [out / f for f in TRAJECTORY[1:]])
        written += [out / f for f in TRAJECTORY]
    summary = {
        "reference": str(reference),
        "models": c.names,
        "settings": c.settings,
        "layer_matching": c.layer_drift.drop_duplicates(["model_a", "model_b"])["match"].value_counts().to_dict()
        if len(c.layer_drift)
        else {},
        "unmatched_layers": int(len(c.unmatched)),
        "coefficients_outside_range": int(c.models["coefficients_outside_range"].sum()),
    }
    text = json.dumps(summary, indent=2) + "\n"
    results.atomic_write(out / "summary.json", lambda tmp: Path(tmp).write_text(text))
    written.append(out / "summary.json")
    return written


def summary_lines(c: Comparison) -> list[str]:
    """What the command prints after the per-model lines.

    Parameters
    ----------
    c : Comparison

    Returns
    -------
    list of str
    """
    m = len(c.names)
    lines = [
        f"compared {m} models against the reference ({c.settings['precision']}, {c.settings['histogram']['bins']} bins)"
    ]
    if m > 1:
        iu = np.triu_indices(m, k=1)
        up = c.drift[iu]
        k = int(np.argmax(up))
        lines.append(
            f"drift between models: {up.min():.4g} .. {up.max():.4g} "
            f"(largest: {c.names[iu[0][k]]} / {c.names[iu[1][k]]})"
        )
    if len(c.unmatched):
        lines.append(f"{len(c.unmatched)} layers without a partner (unmatched_layers.tsv)")
    outside = int(c.models["coefficients_outside_range"].sum())
    if outside:
        lines.append(f"{outside} coefficient values lie outside the reference's range and are not in the histograms")
    if c.trajectory is not None:
        mrow = c.trajectory[c.trajectory["scope"] == "model"]
        last = mrow.iloc[-1]
        lines.append(
            f"trajectory by {c.settings['order']}: last checkpoint {last['model']} at D = {last['drift_to_first']:.4g} "
            "from the first"
        )
    return lines
