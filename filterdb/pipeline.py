"""The analysis steps as functions: what each workflow rule calls, and an in-process driver.

DB → per-shard statistics → gathered statistics → PCA / range → histograms → drift per axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import divergence
from .accumulate import PassSettings, coefficient_range, gather_parts, run_shard
from .accumulate import fixed_range as fixed_range_of
from .axes import Axis, depth_axis, group_table, layer_labels
from .db import FilterDB, open_db
from .histogram import uniform_edges
from .pca import PCA, global_pca
from .results import Plan
from .stream import DEFAULT_BLOCK_ROWS

PASSES = ("sums", "range", "hist")


def cell_table(layers: pd.DataFrame, depth_bins: int = 10) -> tuple[np.ndarray, pd.DataFrame]:
    """Cells for the fine histograms: one per (model_id, depth bin) present.

    Parameters
    ----------
    layers : DataFrame
        The layer table (``model_id``, ``conv_depth_norm``, ``n_filters``).
    depth_bins : int
        Depth bins, as the binned depth axis (:mod:`filterdb.axes`).

    Returns
    -------
    cell_of_layer : (L,) intp
    cells : DataFrame
        ``cell``, ``model_id``, ``depth_bin`` (label as on the depth axis), ``n_layers``, ``n_filters``.
    """
    depth = layer_labels(layers, depth_axis(depth_bins))
    key = pd.DataFrame(
        {
            "model_id": layers["model_id"].to_numpy(),
            "depth_bin": depth.fillna("").to_numpy(),
            "n_filters": layers["n_filters"].to_numpy(),
        }
    )
    cells = (
        key.groupby(["model_id", "depth_bin"], sort=True)
        .agg(n_layers=("n_filters", "size"), n_filters=("n_filters", "sum"))
        .reset_index()
    )
    cells.insert(0, "cell", np.arange(len(cells)))
    idx = pd.MultiIndex.from_frame(cells[["model_id", "depth_bin"]])
    cell_of_layer = idx.get_indexer(pd.MultiIndex.from_frame(key[["model_id", "depth_bin"]]))
    return cell_of_layer.astype(np.intp), cells


def make_plan(
    layers: pd.DataFrame, depth_bins: int = 10, key: str = "filters", width: int = 9
) -> tuple[Plan, pd.DataFrame]:
    """The arrays the passes need (:class:`filterdb.results.Plan`) and the cell table (``width``:
    values per filter, the DB's ``FilterDB.width``)."""
    cell_of_layer, cells = cell_table(layers, depth_bins)
    out = (
        layers["out_channels"].to_numpy(np.float64)
        if "out_channels" in layers.columns
        else np.full(len(layers), np.nan)
    )
    plan = Plan(
        row_start=layers["row_start"].to_numpy(np.int64),
        row_end=layers["row_end"].to_numpy(np.int64),
        cell=cell_of_layer.astype(np.int64),
        out_channels=np.asarray(out, np.float64),
        n_cells=len(cells),
        key=key,
        width=int(width),
    )
    return plan, cells


def layer_namer(layers: pd.DataFrame):
    """``f(layer) -> "model X, conv layer k at conv_depth d"`` for error messages."""
    from .results import describe_layer

    return lambda g: describe_layer(layers, g)


def axis_result(
    layers: pd.DataFrame,
    counts: np.ndarray,
    evr: np.ndarray,
    axis: Axis,
    eps: float = divergence.EPS,
    floor: str = "density",
    edges: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(groups table, drift table) of one axis from the per-layer histograms.

    ``floor`` (``histogram.floor``: ``density``, the study, or ``probability``) and ``edges`` (the
    histogram bin edges, needed by ``density``) as :func:`filterdb.divergence.probabilities`."""
    labels = layer_labels(layers, axis)
    groups = group_table(layers, labels, axis)
    names = list(groups["group"])
    gc = divergence.group_counts(counts, labels, names)
    d = divergence.drift_matrix(gc, evr, eps, floor, edges)
    if axis.order == "mean_drift":
        perm = divergence.order_by_mean_drift(d, names)
        d = d[np.ix_(perm, perm)]
        names = [names[k] for k in perm]
        groups = groups.set_index("group").loc[names].reset_index()
    return groups, divergence.drift_table(d, names)


@dataclass
class Analysis:
    """Everything the in-process driver computes (the workflow writes the same to files)."""

    db: FilterDB
    sums: dict
    pca: PCA
    range: tuple[float, float]
    hist: dict
    groups: dict = field(default_factory=dict)
    drift: dict = field(default_factory=dict)
    quality: dict | None = None
    cells: pd.DataFrame | None = None


def analyse(
    path: str,
    axes: list[Axis],
    *,
    shards: int = 1,
    bins: int = 70,
    eps: float = divergence.EPS,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    quality: dict | None = None,
    progress: bool = False,
    fine_bins: int = 0,
    depth_bins: int = 10,
    density: dict | None = None,
    threads: int = 1,
    precision: str = "float16",
    nonfinite: str = "error",
    fixed_range=None,
) -> Analysis:
    """Run the whole analysis in this process with ``shards`` shards (run one after the other).

    Parameters
    ----------
    path : str
        The filter DB.
    axes : list of Axis
    shards : int
        Shards (results do not depend on it).
    bins, eps :
        Coarse histogram bins and the floor of empty bins (docs/method.md §4).
    block_rows, threads, precision, nonfinite, progress :
        See :class:`filterdb.accumulate.PassSettings`.
    quality : dict or None
        ``{"eps": ...}`` to compute the quality metrics in the sums pass; ``"eps_grid"``: the
        thresholds of the sparsity sweep (config ``quality.sensitivity.eps``; default: ``eps``
        alone).
    fine_bins, depth_bins :
        Fine per-cell histograms (0 = none) and the depth bins that define the cells.
    density : dict or None
        ``{"pairs": [[0, 1]], "bins": 512, "extent": (-3.3, 3.3)}``.
    fixed_range : [lo, hi], "auto" or None
        Config ``models.range``: a list also gives the per-layer histograms over that fixed range
        (``fixed_counts``, ``fixed_outside``, ``fixed_edges`` in ``hist``; ``bins`` bins).
    """
    db = open_db(path, [a.column for a in axes])
    layers = db.layers
    plan, cell_tab = make_plan(layers, depth_bins, db.key, db.width)
    d = dict(density or {})
    settings = PassSettings(
        block_rows=block_rows,
        threads=threads,
        precision=precision,
        nonfinite=nonfinite,
        quality_eps=None if quality is None else float(quality.get("eps", 0.01)),
        quality_eps_grid=() if quality is None else tuple(quality.get("eps_grid") or ()),
        fine_bins=int(fine_bins),
        density_pairs=[tuple(p) for p in d.get("pairs", [])],
        density_bins=int(d.get("bins", 512)),
        density_extent=tuple(d.get("extent", (-3.3, 3.3))),
        fixed_range=fixed_range_of(fixed_range),
        progress=progress,
    )
    names = layer_namer(layers)

    def run(kind, **kw):
        parts = [
            run_shard(db.path, db.key, plan, kind, shard=k, shards=shards, settings=settings, layer_names=names, **kw)
            for k in range(shards)
        ]
        return gather_parts(parts, plan.n_layers, plan.n_cells)

    sums = run("sums")
    p = global_pca(sums)
    rng = run("range", basis=(p.mean, p.components))
    lo, hi = coefficient_range(rng["cmin"], rng["cmax"])
    edges = uniform_edges(lo, hi, bins)
    hist = run("hist", basis=(p.mean, p.components), edges=edges)
    out = Analysis(db=db, sums=sums, pca=p, range=(lo, hi), hist=hist, cells=cell_tab)
    for axis in axes:
        out.groups[axis.name], out.drift[axis.name] = axis_result(
            layers, hist["counts"], p.explained_variance_ratio, axis, eps, edges=hist["edges"]
        )
    return out
