"""The analysis steps as functions: what each workflow rule calls, and an in-process driver.

DB → per-shard statistics → gathered statistics → PCA / range → histograms → drift per axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import divergence, stats
from .axes import Axis, group_table, layer_labels
from .db import FilterDB, open_db
from .histogram import uniform_edges
from .pca import PCA, pca_of_layers

PASSES = ("sums", "range", "hist")


def shard_layers(layers: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    """The layers of shard ``shard`` (zero-based) of ``shards``."""
    lo, hi = stats.plan_shards(layers["n_filters"].to_numpy(), shards)[shard]
    return layers.iloc[lo:hi]


def cell_table(layers: pd.DataFrame, depth_bins: int = 10) -> tuple[np.ndarray, pd.DataFrame]:
    """Cells for the fine histograms: one per (model_id, depth bin) present.

    Returns the cell of each layer and the table ``cell``, ``model_id``, ``depth_bin`` (label as on
    the depth axis), ``n_layers``, ``n_filters``. Depth bins as :mod:`filterdb.axes` (``binned``).
    """
    depth = layer_labels(layers, Axis(name="depth", column="conv_depth_norm", kind="binned", bins=depth_bins))
    key = pd.DataFrame({"model_id": layers["model_id"].to_numpy(), "depth_bin": depth.fillna("").to_numpy(),
                        "n_filters": layers["n_filters"].to_numpy()})
    cells = key.groupby(["model_id", "depth_bin"], sort=True).agg(
        n_layers=("n_filters", "size"), n_filters=("n_filters", "sum")).reset_index()
    cells.insert(0, "cell", np.arange(len(cells)))
    idx = pd.MultiIndex.from_frame(cells[["model_id", "depth_bin"]])
    cell_of_layer = idx.get_indexer(pd.MultiIndex.from_frame(key[["model_id", "depth_bin"]]))
    return cell_of_layer.astype(np.intp), cells


def make_accumulators(kind: str, n_layers: int, edges: np.ndarray | None = None,
                      quality: dict | None = None, cells: tuple[np.ndarray, int] | None = None,
                      fine_bins: int = 0, density: dict | None = None) -> list:
    if kind == "sums":
        accs = [stats.SumsAccumulator(n_layers)]
        if quality is not None:
            from .quality import QualityAccumulator  # per-layer metrics on unscaled weights

            accs.append(QualityAccumulator(n_layers, **quality))
        return accs
    if kind == "range":
        return [stats.RangeAccumulator(n_layers)]
    if kind == "hist":
        accs = [stats.HistogramAccumulator(n_layers, edges)]
        if cells is not None and fine_bins > 0:
            fine = np.linspace(edges[0], edges[-1], int(fine_bins) + 1)
            accs.append(stats.CellHistogramAccumulator(n_layers, cells[0], cells[1], fine))
        if density:
            accs.append(stats.DensityAccumulator(n_layers, **density))
        return accs
    raise ValueError(f"unknown pass {kind!r}: expected one of {PASSES}")


def run_shard(db_path: str, key: str, layers: pd.DataFrame, kind: str, shard: int = 0, shards: int = 1,
              basis: tuple[np.ndarray, np.ndarray] | None = None, edges: np.ndarray | None = None,
              quality: dict | None = None, block_rows: int = stats.DEFAULT_BLOCK_ROWS,
              progress: bool = True, cells: tuple[np.ndarray, int] | None = None, fine_bins: int = 0,
              density: dict | None = None) -> dict[str, np.ndarray]:
    lo, hi = stats.plan_shards(layers["n_filters"].to_numpy(), shards)[shard]
    part = layers.iloc[lo:hi]
    if cells is not None:
        cells = (np.asarray(cells[0])[lo:hi], cells[1])
    accs = make_accumulators(kind, len(part), edges, quality, cells, fine_bins, density)
    return stats.run_pass(db_path, key, part, accs, basis=basis if kind != "sums" else None,
                          block_rows=block_rows, progress=progress, desc=f"{kind} {shard + 1}/{shards}")


def global_pca(sums: dict[str, np.ndarray]) -> PCA:
    return pca_of_layers(sums["n"], sums["sum"], sums["outer"])


def axis_result(layers: pd.DataFrame, counts: np.ndarray, evr: np.ndarray, axis: Axis,
                eps: float = divergence.EPS, floor: str = "density",
                edges: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
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


def analyse(path: str, axes: list[Axis], shards: int = 1, bins: int = 70, eps: float = divergence.EPS,
            block_rows: int = stats.DEFAULT_BLOCK_ROWS, quality: dict | None = None,
            progress: bool = False, fine_bins: int = 0, depth_bins: int = 10,
            density: dict | None = None) -> Analysis:
    """Run the whole analysis in this process with ``shards`` shards (run one after the other)."""
    db = open_db(path, [a.column for a in axes])
    layers = db.layers
    L = len(layers)

    def run(kind, **kw):
        parts = [run_shard(db.path, db.key, layers, kind, k, shards, block_rows=block_rows,
                           progress=progress, **kw) for k in range(shards)]
        return stats.gather(parts, L)

    sums = run("sums", quality=quality)
    p = global_pca(sums)
    rng = run("range", basis=(p.mean, p.components))
    lo, hi = stats.coefficient_range(rng["cmin"], rng["cmax"])
    edges = uniform_edges(lo, hi, bins)
    cell_of_layer, cell_tab = cell_table(layers, depth_bins)
    hist = run("hist", basis=(p.mean, p.components), edges=edges, cells=(cell_of_layer, len(cell_tab)),
               fine_bins=fine_bins, density=density)
    out = Analysis(db=db, sums=sums, pca=p, range=(lo, hi), hist=hist, cells=cell_tab)
    for axis in axes:
        out.groups[axis.name], out.drift[axis.name] = axis_result(layers, hist["counts"],
                                                                  p.explained_variance_ratio, axis, eps,
                                                                  edges=hist["edges"])
    return out
