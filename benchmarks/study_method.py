"""The study's own in-memory method, as a baseline: load every filter as float16, peak-scale, sklearn
PCA(9), per-group ``np.histogram(..., density=True)`` per coefficient, KL loops.

    python benchmarks/study_method.py DB.h5 task visual_category depth

Prints one JSON line: seconds and peak memory (VmHWM of this process). Needs the whole array in
memory (~200 bytes per filter): up to ~60 M filters on a 24 GiB machine.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLUMNS = {
    "task": "Task",
    "visual_category": "Visual Category",
    "depth": "conv_depth_norm",
    "architecture": "Name",
    "training_dataset": "Training-Dataset",
}


def main() -> None:
    import h5py
    import pandas as pd
    from sklearn.decomposition import PCA

    from filterdb.db import open_db

    path, axes = sys.argv[1], sys.argv[2:] or ["task", "visual_category", "depth"]
    t0 = time.perf_counter()
    layers = open_db(path).layers
    with h5py.File(path, "r") as f:
        key = "filters" if "filters" in f else "filter"
        x = f[key][...].reshape(-1, 9).astype(np.float16)
    peak = np.abs(x).max(axis=1, keepdims=True)
    peak[peak == 0] = 1
    x = x / peak
    pca = PCA(9).fit(x)
    coef = pca.transform(x)
    del x
    lo, hi = float(coef.min()), float(coef.max())
    evr = pca.explained_variance_ratio_
    eps = np.finfo(np.float32).eps
    sizes = layers["n_filters"].to_numpy()
    out = {}
    for ax in axes:
        col = layers[COLUMNS[ax]]
        if ax == "depth":
            col = pd.cut(col, np.linspace(0, 1, 11), include_lowest=True).astype(str)
        codes, names = pd.factorize(col.astype(str))
        row_group = np.repeat(codes, sizes)
        hists = []
        for g in range(len(names)):
            sel = coef[row_group == g]
            h = np.stack([np.histogram(sel[:, i], bins=70, range=(lo, hi), density=True)[0] for i in range(9)])
            h[h == 0] = eps
            hists.append(h / h.sum(axis=1, keepdims=True))
        d = np.zeros((len(names), len(names)))
        for a in range(len(names)):
            for b in range(len(names)):
                p, q = hists[a], hists[b]
                d[a, b] = float(np.sum(evr * (np.sum(p * np.log(p / q), 1) + np.sum(q * np.log(q / p), 1))))
        out[ax] = float(d.max())
    hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0]
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": int(hwm.split()[1]) / 1024, "max_drift": out}))


if __name__ == "__main__":
    main()
