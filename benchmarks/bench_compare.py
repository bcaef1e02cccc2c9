"""Benchmark: memory and time of ``filterdb compare`` (filterdb.compare) for sheets of models of
different sizes.

``compare`` reads the models of a sheet one at a time and keeps only their per-layer histograms, so
its peak memory should follow the **largest** model of the sheet, not the sum of all of them. This
writes safetensors models (3x3 convs of 256 x 256 kernels, i.e. 65,536 filters = 2.25 MiB of float32
each layer) of ``--small`` and ``--large`` filters, three sheets

* ``small``: ``--count`` small models;
* ``small+large``: the same and one large model;
* ``large``: the large model alone;

and runs ``filterdb compare`` on each in a fresh process against ``--reference`` (a results folder;
default ``results``, the default run's), printing its peak RSS (``VmHWM``) and wall time. Expected:
``small+large`` about ``large``, both well above ``small`` by the large model's size (its file,
its float32 layers and their float64 scaled copies, one layer at a time).

    python benchmarks/bench_compare.py --small 200000 --large 5000000 --count 8

Files go under ``--workdir`` (default /tmp/filterdb-bench-compare), removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LAYER = (256, 256)  # (out, in) of every 3x3 conv


def write_model(path: Path, n_filters: int, seed: int) -> int:
    """A safetensors file of ceil(n / 65536) 3x3 convs (the last one smaller); returns its filters."""
    sys.path.insert(0, str(ROOT))
    from tests.test_ingest_safetensors import write_safetensors

    rng = np.random.default_rng(seed)
    per = LAYER[0] * LAYER[1]
    tensors, left, k = {}, n_filters, 0
    while left > 0:
        out = min(LAYER[0], max(1, left // LAYER[1]))
        w = rng.standard_normal((out, LAYER[1], 3, 3)).astype("<f4")
        tensors[f"layer{k}.weight"] = ("F32", w.tobytes(), w.shape)
        left -= min(per, out * LAYER[1])
        k += 1
    write_safetensors(path, tensors)
    return sum(int(np.prod(t[2][:2])) for t in tensors.values())


def run(sheet: Path, reference: str, out: Path) -> dict:
    code = (
        "import sys; from filterdb import cli, glue; "
        f"rc = cli.main(['compare', {str(sheet)!r}, '--reference', {reference!r}, '-o', {str(out)!r}, '-q']); "
        "print('PEAK', glue.peak_rss_mb(), file=sys.stderr); sys.exit(rc)"
    )
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(p.stderr[-2000:])
    peak = float(p.stderr.split("PEAK ")[-1].split()[0])
    return {"peak_rss_mib": round(peak, 1), "wall_s": round(wall, 2)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=200_000, help="filters of each small model")
    ap.add_argument("--large", type=int, default=5_000_000, help="filters of the large model")
    ap.add_argument("--count", type=int, default=8, help="number of small models")
    ap.add_argument("--reference", default="results", help="reference results folder")
    ap.add_argument("--workdir", default="/tmp/filterdb-bench-compare")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    work = Path(a.workdir)
    made = not work.exists()
    work.mkdir(parents=True, exist_ok=True)
    try:
        sizes = {}
        for k in range(a.count):
            sizes[f"small{k}"] = write_model(work / f"small{k}.safetensors", a.small, seed=k)
        sizes["large"] = write_model(work / "large.safetensors", a.large, seed=99)
        sheets = {
            "small": [f"small{k}" for k in range(a.count)],
            "small+large": [f"small{k}" for k in range(a.count)] + ["large"],
            "large": ["large"],
        }
        report = {}
        for name, models in sheets.items():
            sheet = work / f"{name}.tsv"
            sheet.write_text("model\tpath\n" + "".join(f"{m}\t{m}.safetensors\n" for m in models))
            r = run(sheet, a.reference, work / f"out-{name}")
            r["models"] = len(models)
            r["filters"] = sum(sizes[m] for m in models)
            r["largest_file_mib"] = round(max((work / f"{m}.safetensors").stat().st_size for m in models) / 2**20, 1)
            report[name] = r
            print(f"{name:12s} {json.dumps(r)}")
    finally:
        if not a.keep:
            if made:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
