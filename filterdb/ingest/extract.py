"""From a :class:`ModelFile` to DB rows: one meta row per 3x3 conv, its kernels as (n, 9) float32.

Per layer: ``conv_depth``, ``conv_depth_norm`` (see :mod:`filterdb.ingest.depth`; every 4-D conv of
any kernel size counts as a level), ``layer_name``, ``layer_id`` (position among all the model's
4-D convs), ``in_channels``, ``out_channels``, ``groups`` (0 = unknown), ``op``.
Per model (repeated on each of its rows): ``format``, ``depth_source``, ``bn_folded``, ``producer``,
``total_filters`` (kernels of all 4-D convs), ``3x3_filter_share``, one ``(kh, kw) filters`` column
per kernel size present (kernel counts), plus the reader's extras (``op_set``, ``depth``, ...).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from .base import ModelFile
from .depth import conv_levels


def kernel_columns(m: ModelFile) -> dict:
    """Kernel counts of a model.

    Parameters
    ----------
    m : ModelFile
        A read model.

    Returns
    -------
    dict
        ``total_filters`` (2-D kernels of all 4-D convs), ``3x3_filter_share`` and one
        ``"(kh, kw) filters"`` count per kernel size present.
    """
    counts = Counter()
    for c in m.convs:
        counts[c.kernel_size] += c.n_kernels
    total = sum(counts.values())
    out = {"total_filters": int(total), "3x3_filter_share": float(counts.get((3, 3), 0) / total) if total else 0.0}
    for k in sorted(counts):
        out[f"({k[0]}, {k[1]}) filters"] = int(counts[k])
    return out


def model_layers(m: ModelFile) -> tuple[list[np.ndarray], pd.DataFrame, dict]:
    """The DB rows of a model's 3x3 convs.

    Parameters
    ----------
    m : ModelFile
        A read model.

    Returns
    -------
    (list of ndarray, DataFrame, dict)
        Per 3x3 conv an ``(out * in/groups, 9)`` float32 array; a table with one row per 3x3 conv
        (``conv_depth``, ``conv_depth_norm``, ``layer_name``, ``layer_id``, ``in_channels``,
        ``out_channels``, ``groups``, ``op``, ``graph_depth``); the model-level columns (format,
        depth source, BatchNorm folding, producer, conv levels, reader extras, kernel counts).
    """
    depths = [c.depth if c.depth is not None else float(i) for i, c in enumerate(m.convs)]
    cd, norm, n_levels = conv_levels(depths) if depths else ([], [], 0)
    weights, rows = [], []
    for i, c in enumerate(m.convs):
        if c.kernel_size != (3, 3):
            continue
        weights.append(np.ascontiguousarray(c.weight.reshape(-1, 9), dtype=np.float32))
        rows.append(
            {
                "conv_depth": int(cd[i]),
                "conv_depth_norm": float(norm[i]),
                "layer_name": c.name,
                "layer_id": i,
                "in_channels": int(c.in_channels),
                "out_channels": int(c.out_channels),
                "groups": int(c.groups),
                "op": c.op,
                "graph_depth": float(depths[i]),
            }
        )
    model_cols = {
        "format": m.format,
        "depth_source": m.depth_source,
        "bn_folded": bool(m.bn_folded) if m.bn_folded is not None else None,
        "producer": m.producer,
        "conv_levels": int(n_levels),
    }
    model_cols.update(m.extra)
    model_cols.update(kernel_columns(m))
    return weights, pd.DataFrame(rows), model_cols
