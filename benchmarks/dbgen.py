"""Generated filter DBs for the benchmarks: realistic layer sizes, written layer by layer.

Models have 8-30 3x3 conv layers whose channel counts (16..1024) are drawn around what the model's
size asks for (``--filters`` / ``--models`` filters per model), so a 50 M-filter DB of 1,200 models
looks like the small-model end of the published DB and a 650 M-filter DB of 1,000 models like its
ImageNet-sized end. Filter values come from a fixed pool of random rows, shifted and scaled per layer
and model (groups differ, as in real data), so generating runs at disk speed; the DB is never built
in memory.

    python benchmarks/dbgen.py --filters 50000000 --models 1200 --out /tmp/bench50m.h5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filterdb.db import write_db_streaming  # noqa: E402

CATS = ["natural", "faces", "medical", "text", "astronomy", "plants", "textures", "fractals"]
TASKS = ["Classification", "Semantic Segmentation", "Detection", "GAN-Generator", "Super Resolution", "Face Detection"]
NAMES = ["ResNet-18", "ResNet-50", "VGG16", "UNet", "MobileNetV2", "DenseNet121", "EfficientNet-B0"]
DATASETS = ["ImageNet1k", "CIFAR-10", "COCO", "LIDC", "Places365", "CelebA"]
CHANNELS = np.array([16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024])


def bench_layers(n_filters: int, n_models: int, seed: int = 0) -> pd.DataFrame:
    """The layer table of a generated DB with about ``n_filters`` rows in ``n_models`` models."""
    rng = np.random.default_rng(seed)
    per_model = n_filters / max(n_models, 1)
    rows, start = [], 0
    m = 0
    while start < n_filters:
        k = int(rng.integers(8, 31))
        target = per_model / k  # filters per layer
        levels = np.sort(rng.integers(0, k, size=k))
        levels -= levels[0]
        n_levels = int(levels.max()) + 1
        for j in range(k):
            c = np.sqrt(target) * rng.choice([0.5, 0.7, 1.0, 1.4, 2.0])
            cin = int(CHANNELS[np.argmin(np.abs(CHANNELS - c))])
            cout = int(CHANNELS[np.argmin(np.abs(CHANNELS - target / cin))])
            n = min(cin * cout, n_filters - start)
            if n <= 0:
                break
            depth = int(levels[j])
            rows.append(
                {
                    "model_id": m,
                    "conv_depth": depth,
                    "conv_depth_norm": depth / max(n_levels - 1, 1),
                    "row_start": start,
                    "row_end": start + n,
                    "model": f"bench_{m:05d}",
                    "Name": NAMES[m % len(NAMES)],
                    "Task": TASKS[(m // 3) % len(TASKS)],
                    "Visual Category": CATS[m % len(CATS)],
                    "Training-Dataset": DATASETS[m % len(DATASETS)],
                    "Pretraining-Dataset": "" if m % 3 else "ImageNet1k",
                    "producer": "benchmarks.dbgen",
                    "in_channels": cin,
                    "out_channels": cout if n == cin * cout else np.nan,
                }
            )
            start += n
        m += 1
    return pd.DataFrame(rows)


class PoolFilters:
    """Filters of a layer: a slice of a fixed pool of random rows, shifted and scaled by model and
    depth (deterministic for a seed)."""

    def __init__(self, seed: int = 1, pool_rows: int = 1 << 21):
        rng = np.random.default_rng(seed)
        self.pool = rng.standard_normal((pool_rows, 9), dtype=np.float32)
        self.rng = np.random.default_rng(seed + 1)
        self.gauss = np.array([1, 2, 1, 2, 4, 2, 1, 2, 1], np.float32) / 4.0

    def __call__(self, row) -> np.ndarray:
        n = int(row["row_end"] - row["row_start"])
        a = int(self.rng.integers(0, self.pool.shape[0]))
        idx = (a + np.arange(n)) % self.pool.shape[0] if a + n > self.pool.shape[0] else slice(a, a + n)
        w = self.pool[idx].copy()
        m = int(row["model_id"])
        w += np.float32(0.3 * (m % 5)) * self.gauss * np.float32(1.0 + row["conv_depth_norm"])
        w *= np.float32(0.05 * (1 + m % 4))
        return w


def write_bench_db(
    path,
    n_filters: int,
    n_models: int,
    seed: int = 0,
    chunk_rows: int = 65536,
    dtype: str = "float32",
    shape3x3: bool = False,
) -> pd.DataFrame:
    """Write a generated v1.0-layout DB layer by layer, its filters stored as ``dtype`` with shape
    (N, 9) or (N, 3, 3) (the published v1.0 file: float64, (N, 3, 3)); returns its layer table."""
    layers = bench_layers(n_filters, n_models, seed)
    write_db_streaming(
        path, layers, PoolFilters(seed + 1), "v1.0", chunk_rows=chunk_rows, dtype=dtype, shape3x3=shape3x3
    )
    return layers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--filters", type=int, required=True)
    ap.add_argument("--models", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="float32", choices=["float16", "float32", "float64"])
    ap.add_argument("--shape3x3", action="store_true", help="store (N, 3, 3) as the published v1.0 file")
    args = ap.parse_args()
    t = time.perf_counter()
    layers = write_bench_db(args.out, args.filters, args.models, args.seed, dtype=args.dtype, shape3x3=args.shape3x3)
    print(
        f"{args.out}: {int(layers['row_end'].max()):,} filters, {len(layers):,} layers, "
        f"{layers['model_id'].nunique():,} models, {Path(args.out).stat().st_size / 2**30:.2f} GiB "
        f"in {time.perf_counter() - t:.1f} s"
    )


if __name__ == "__main__":
    main()
