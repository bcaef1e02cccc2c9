"""From a :class:`ModelFile` to DB rows: one meta row per K x K conv (K = 3 by default), its kernels
as (n, K²) float32.

Per layer: ``conv_depth``, ``conv_depth_norm`` (see :mod:`filterdb.ingest.depth`; every 4-D conv of
any kernel size counts as a level), ``layer_name``, ``layer_id`` (position among all the model's
4-D convs), ``in_channels``, ``out_channels``, ``groups`` (0 = unknown), ``op``, ``graph_depth``,
``conv_kind`` (``full`` / ``depthwise`` / ``grouped``, empty when the format does not tell:
:func:`filterdb.ingest.base.conv_kind`).
Per model (repeated on each of its rows): ``format``, ``depth_source``, ``bn_folded``, ``producer``,
``total_filters`` (kernels of all 4-D convs), ``KxK_filter_share`` (``3x3_filter_share`` for K = 3),
one ``(kh, kw) filters`` column per kernel size present (kernel counts), plus the reader's extras
(``op_set``, ``depth``, ...).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from .base import IngestError, ModelFile
from .depth import conv_levels

KERNEL_EXPECTED = "expected KxK with K odd and at least 3 (3x3, 5x5, 7x7, ...)"


def parse_kernel(kernel, what: str = "kernel size") -> int:
    """K of a kernel size ``"KxK"`` (or an int K): odd, at least 3.

    Parameters
    ----------
    kernel : str or int
        ``"3x3"``, ``"5x5"``, ``"7x7"``, ... (``x`` or ``X``), or K itself.
    what : str
        How the value is named in the error (``"--kernel"`` on the command line).

    Returns
    -------
    int
        K.

    Raises
    ------
    IngestError
        One line naming the value and what is expected: not of the form ``KxK``, not square
        (``3x5``), even (``4x4``), or 1x1.

    Examples
    --------
    >>> parse_kernel("3x3"), parse_kernel("7X7"), parse_kernel(5)
    (3, 7, 5)
    """
    if isinstance(kernel, bool):
        raise IngestError(f"{what} {kernel!r}: not a kernel size; {KERNEL_EXPECTED}")
    if isinstance(kernel, int | np.integer):
        kh = kw = int(kernel)
        text = f"{kh}x{kw}"
    else:
        text = str(kernel).strip()
        m = re.fullmatch(r"(\d+)\s*[xX]\s*(\d+)", text)
        if not m:
            raise IngestError(f"{what} {text!r}: not of the form KxK; {KERNEL_EXPECTED}")
        kh, kw = int(m[1]), int(m[2])
    if kh != kw:
        raise IngestError(f"{what} {text!r}: not square ({kh} x {kw}); {KERNEL_EXPECTED}")
    if kh == 1:
        raise IngestError(f"{what} {text!r}: 1x1 kernels have no spatial shape to analyse; {KERNEL_EXPECTED}")
    if kh < 1:
        raise IngestError(f"{what} {text!r}: not a positive size; {KERNEL_EXPECTED}")
    if kh % 2 == 0:
        raise IngestError(f"{what} {text!r}: even size; {KERNEL_EXPECTED}")
    return kh


def kernel_name(k: int) -> str:
    """``"KxK"``, e.g. ``"3x3"``."""
    return f"{k}x{k}"


def kernel_columns(m: ModelFile, kernel: int = 3) -> dict:
    """Kernel counts of a model.

    Parameters
    ----------
    m : ModelFile
        A read model.
    kernel : int
        K of the kept K x K kernels.

    Returns
    -------
    dict
        ``total_filters`` (2-D kernels of all 4-D convs), ``KxK_filter_share`` (the K x K kernels'
        share of them; ``3x3_filter_share`` for K = 3) and one ``"(kh, kw) filters"`` count per
        kernel size present.
    """
    counts = Counter()
    for c in m.convs:
        counts[c.kernel_size] += c.n_kernels
    total = sum(counts.values())
    share = f"{kernel_name(kernel)}_filter_share"
    out = {"total_filters": int(total), share: float(counts.get((kernel, kernel), 0) / total) if total else 0.0}
    for k in sorted(counts):
        out[f"({k[0]}, {k[1]}) filters"] = int(counts[k])
    return out


def model_layers(m: ModelFile, kernel: int = 3) -> tuple[list[np.ndarray], pd.DataFrame, dict]:
    """The DB rows of a model's K x K convs.

    Parameters
    ----------
    m : ModelFile
        A read model.
    kernel : int
        K: the convs whose kernels are K x K become rows (default 3).

    Returns
    -------
    (list of ndarray, DataFrame, dict)
        Per K x K conv an ``(out * in/groups, K * K)`` float32 array (its kernels, output channel
        then input channel, each kernel row-major); a table with one row per K x K conv
        (``conv_depth``, ``conv_depth_norm``, ``layer_name``, ``layer_id``, ``in_channels``,
        ``out_channels``, ``groups``, ``op``, ``graph_depth``, ``conv_kind``); the model-level
        columns (format, depth source, BatchNorm folding, producer, conv levels, reader extras,
        kernel counts).
    """
    depths = [c.depth if c.depth is not None else float(i) for i, c in enumerate(m.convs)]
    cd, norm, n_levels = conv_levels(depths) if depths else ([], [], 0)
    weights, rows = [], []
    for i, c in enumerate(m.convs):
        if c.kernel_size != (kernel, kernel):
            continue
        weights.append(np.ascontiguousarray(c.weight.reshape(-1, kernel * kernel), dtype=np.float32))
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
                "conv_kind": c.conv_kind,
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
    model_cols.update(kernel_columns(m, kernel))
    return weights, pd.DataFrame(rows), model_cols
