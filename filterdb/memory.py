"""Peak memory of the workflow's jobs, estimated before they run (their ``mem_mb`` resources).

The bytes come from the registry of statistics (:mod:`filterdb.statistics`): a shard job holds its
layers' accumulators, its lanes' read blocks, open cells and 2-D histograms; a gather holds every
layer's outputs and one part; the one-job path holds one pass's arrays at a time. Nothing here
repeats a config default: the sizes come in a :class:`filterdb.statistics.Dims` built from the
filled config (:func:`filterdb.passes.pass_dims`).
"""

from __future__ import annotations

import numpy as np

from . import statistics as registry
from .results import Plan
from .stream import lane_block_rows, plan_shards

#: Python, numpy, numba, h5py of a pass or gather job (MB).
BASE_MB = 300.0
#: The one-job path also holds pandas and the meta table's machinery (MB).
SINGLE_BASE_MB = 400.0
#: Bytes per layer of the meta table and the layer table the one-job path holds.
META_ROW_BYTES = 2000
#: Cells of the fine histograms one window of a ``gather_cells`` job holds.
GATHER_WINDOW_CELLS = 2048
#: Open cells per lane the one-job path is assumed to hold (its plan is not known yet).
SINGLE_OPEN_CELLS = 256
#: Safety margin of every estimate.
MARGIN = 1.25


def estimate_mem_mb(
    kind: str,
    plan: Plan,
    dims: registry.Dims,
    *,
    block_rows: int,
    row_bytes: int,
    shards: int = 1,
    threads: int = 1,
) -> int:
    """Peak memory (MB, with a safety margin) of one job of ``kind`` on ``plan``.

    Parameters
    ----------
    kind : str
        ``shard_sums``, ``shard_range``, ``shard_hist``, ``gather_sums``, ``gather_range``,
        ``gather_hist`` or ``gather_cells``.
    plan : Plan
    dims : filterdb.statistics.Dims
        The sizes of the statistics' arrays (bins, thresholds, fine bins, pairs ...).
    block_rows : int
        Config ``stream.block_rows``.
    row_bytes : int
        Bytes of one stored filter (18/36/72 for 3x3 float16/32/64).
    shards, threads : int

    Returns
    -------
    int

    Notes
    -----
    A shard job holds, per thread (lane), up to three read blocks (one being read, one queued,
    one being computed), its cells' fine histograms and 2-D histograms, plus its own layers'
    accumulators; a gather holds every layer's outputs, one part and the touched pages of the
    cell histograms. The largest shard's need is returned for every shard.
    """
    d = int(dims.d)
    if kind == "gather_cells":  # one window of cells, the records' ids
        window = GATHER_WINDOW_CELLS * registry.cell_bytes("hist", dims)
        return int((BASE_MB + window / 1e6 + 16 * plan.n_cells / 1e6) * MARGIN) + 1
    p = kind.split("_", 1)[1]
    n_f = plan.n_filters
    whole = registry.total_bytes(p, dims)  # the whole-shard outputs (2-D histograms, exact sums)
    if kind.startswith("shard"):
        per_layer = registry.layer_bytes(p, dims)
        per_cell = registry.cell_bytes(p, dims)
        mb = 0.0
        for lo, hi in plan_shards(n_f, shards):
            # per lane (thread): three read buffers of its block rows (or its largest layer) and
            # its own cells' fine histograms
            lanes = [(lo + a, lo + b) for a, b in plan_shards(n_f[lo:hi], max(1, threads)) if b > a]
            lb = lane_block_rows(block_rows, len(lanes))
            rows = [max(lb, int(n_f[a:b].max())) for a, b in lanes]
            cells = sum(np.unique(plan.cell[a:b][plan.cell[a:b] >= 0]).size for a, b in lanes)
            m = (3 * sum(rows) * row_bytes + (hi - lo) * per_layer) / 1e6
            m += (cells * per_cell + (len(lanes) + 1) * whole) / 1e6
            if p == "sums":
                m += max(rows, default=0) * d * 8 / 1e6  # moments of a layer holding NaN/Inf (drop policy)
            mb = max(mb, m)
        mb += BASE_MB
    else:
        mb = BASE_MB + (2 * plan.n_layers * registry.layer_bytes(p, dims, "outputs") + 2 * whole) / 1e6
    return int(mb * MARGIN) + 1


def estimate_single_job_mb(
    filters: int,
    dims: registry.Dims,
    *,
    block_rows: int,
    row_bytes: int,
    threads: int = 1,
    layers: int | None = None,
    filters_per_layer: int = 1000,
) -> int:
    """Peak memory (MB, with a safety margin) of the one-job path (rule ``analyse``), estimated
    before its layer plan exists from the DB's filter count and its number of ``layers``
    (:func:`filterdb.db.count_layers`; None: at least ``filters_per_layer`` filters per layer).

    The job holds the meta table, one pass's per-layer accumulators at a time (and the per-layer
    results of the earlier ones), the read buffers of its lanes, its lanes' open cells and 2-D
    histograms.
    """
    if layers is None:
        layers = int(filters) // max(1, filters_per_layer)
    layers = max(1, int(layers))
    held = max(registry.layer_bytes(p, dims) for p in registry.PASSES)
    held += registry.layer_bytes("range", dims, "outputs") + META_ROW_BYTES
    mb = SINGLE_BASE_MB + layers * held / 1e6
    mb += 3 * max(block_rows, 1 << 16) * row_bytes / 1e6
    lanes = max(1, int(threads))
    per_lane = SINGLE_OPEN_CELLS * registry.cell_bytes("hist", dims) + registry.total_bytes("hist", dims)
    mb += lanes * per_lane / 1e6
    return int(mb * MARGIN) + 1
