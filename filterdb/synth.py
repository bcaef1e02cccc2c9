"""Synthetic filter DBs in the published layout, for tests and benchmarks.

Not real data: every model draws its filters from a mixture whose parameters depend on its
(made-up) visual category, task and the layer's depth, so that drift matrices are non-trivial.
Deterministic for a given seed.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from .db import write_db_streaming
from .shape import STUDY, FilterShape

CATEGORIES = ["natural", "medical ct", "faces", "text", "astronomy", "plants"]
TASKS = [
    "Classification",
    "Semantic Segmentation",
    "Instance Segmentation",
    "Detection",
    "GAN-Generator",
    "Super Resolution",
]
NAMES = ["ResNet-18", "VGG11", "UNet", "MobileNetV2", "DenseNet"]
DATASETS = ["ImageNet1k", "CIFAR-10", "LIDC", "COCO", "Places365"]

_GAUSS = np.array([1, 2, 1, 2, 4, 2, 1, 2, 1], np.float32) / 4.0
_EDGE = np.array([-1, 0, 1, -2, 0, 2, -1, 0, 1], np.float32) / 2.0


def _patterns(shape: FilterShape) -> tuple[np.ndarray, np.ndarray]:
    """The smooth (binomial) and edge (binomial x central difference) k x k patterns the
    synthetic filters mix, flattened; for 3x3 exactly :data:`_GAUSS` and :data:`_EDGE`."""
    if shape == STUDY:
        return _GAUSS, _EDGE
    k = shape.side
    b = np.array([math.comb(k - 1, i) for i in range(k)], np.float64)
    d = np.convolve([math.comb(k - 3, i) for i in range(k - 2)], [-1.0, 0.0, 1.0])
    gauss, edge = np.outer(b, b), np.outer(b, d)
    return (gauss / gauss.max()).astype(np.float32).ravel(), (edge / np.abs(edge).max()).astype(np.float32).ravel()


def synth_layers(
    n_models: int = 12,
    layers_per_model: tuple[int, int] = (3, 8),
    channels: tuple[int, ...] = (4, 8, 16),
    seed: int = 0,
) -> pd.DataFrame:
    """The layer table of a synthetic DB (row ranges, index triple and meta columns)."""
    rng = np.random.default_rng(seed)
    rows = []
    start = 0
    for m in range(n_models):
        n_layers = int(rng.integers(layers_per_model[0], layers_per_model[1] + 1))
        # depth levels: a few layers share a level, like parallel branches
        levels = np.sort(rng.integers(0, max(n_layers - 1, 1), size=n_layers))
        levels[0] = 0
        uniq = np.unique(levels)
        n_levels = max(len(uniq), 2)
        cat = CATEGORIES[m % len(CATEGORIES)]
        task = TASKS[(m // 2) % len(TASKS)]
        pre = "" if m % 3 else "ImageNet1k"
        for k in range(n_layers):
            cin = int(rng.choice(channels))
            cout = int(rng.choice(channels))
            n = cin * cout
            depth = int(np.searchsorted(uniq, levels[k]))
            rows.append(
                {
                    "model_id": m,
                    "conv_depth": depth,
                    "conv_depth_norm": depth / (n_levels - 1),
                    "row_start": start,
                    "row_end": start + n,
                    "model": f"synthetic_{m:03d}",
                    "Name": NAMES[m % len(NAMES)],
                    "Task": task,
                    "Visual Category": cat,
                    "Training-Dataset": DATASETS[m % len(DATASETS)],
                    "Pretraining-Dataset": pre,
                    "producer": "filterdb.synth",
                    "in_channels": cin,
                    "out_channels": cout,
                }
            )
            start += n
    return pd.DataFrame(rows)


def synth_filters(row: pd.Series, seed: int, shape: FilterShape = STUDY) -> np.ndarray:
    """The (n, d) float32 filters of one synthetic layer (``d = k²`` of ``shape``)."""
    n = int(row["row_end"] - row["row_start"])
    rng = np.random.default_rng([seed, int(row["row_start"])])
    m = int(row["model_id"])
    depth = float(row["conv_depth_norm"])
    a = rng.standard_normal((n, 1), dtype=np.float32) * (1.0 + 0.3 * (m % 4))
    b = rng.standard_normal((n, 1), dtype=np.float32) * (0.5 + 0.5 * depth)
    noise = rng.standard_normal((n, shape.size), dtype=np.float32) * np.float32(0.2 + 0.4 * ((m * 7) % 5) / 4)
    gauss, edge = _patterns(shape)
    w = a * gauss + b * edge + noise - np.float32(0.05 * (m % 3))
    w *= np.float32(0.1 * (1 + m % 5))
    w[rng.random(n) < 0.02] = 0.0  # dead filters: exercise the all-zero scaling rule
    return w.astype(np.float32)


def write_synth_db(
    path: str | os.PathLike,
    layout: str = "v1.0",
    shape3x3: bool = False,
    seed: int = 0,
    kernel: FilterShape = STUDY,
    **kwargs,
) -> pd.DataFrame:
    """Write a synthetic DB of ``kernel`` filters (default 3x3; ``shape3x3``: stored as
    ``(N, k, k)``); returns its layer table. Filters are written layer by layer."""
    layers = synth_layers(seed=seed, **kwargs)
    write_db_streaming(path, layers, lambda row: synth_filters(row, seed, kernel), layout, shape3x3, kernel=kernel)
    return layers
