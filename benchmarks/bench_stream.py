"""Benchmark: the workflow against the floor of reading the filter array once.

Generates a DB of ``--filters`` rows in the published v1.0 layout (layers of realistic sizes), then
measures in the same run:

* floor      — reading the whole filter array once with h5py, in 1M-row blocks;
* in-process — ``filterdb.pipeline.analyse`` (all three passes, one shard, no Snakemake);
* workflow   — ``snakemake --cores C`` on the DB (all rules, including Snakemake's own overhead);

and prints the ratios to the floor and the peak memory (max RSS of any job, from Snakemake's
benchmark files and from getrusage of the whole process tree). Run it at two sizes to see that
memory stays flat while time grows with N. All timings are with a warm page cache.

    python benchmarks/bench_stream.py --filters 10000000 --cores 2
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filterdb.axes import axes_from_config  # noqa: E402
from filterdb.pipeline import analyse  # noqa: E402
from filterdb.db import write_db_streaming  # noqa: E402

CATS = ["natural", "faces", "medical", "text", "astronomy"]
TASKS = ["Classification", "Semantic Segmentation", "Detection", "GAN-Generator"]


def bench_layers(n_filters: int, seed: int = 0) -> pd.DataFrame:
    """Layers of 3x3 convs with channel counts like ResNets/VGGs (16..512), grouped into models."""
    rng = np.random.default_rng(seed)
    rows, start, m, depth = [], 0, 0, 0
    while start < n_filters:
        c = int(rng.choice([16, 32, 64, 128, 256, 512]))
        n = min(c * c, n_filters - start)
        rows.append({"model_id": m, "conv_depth": depth, "row_start": start, "row_end": start + n,
                     "model": f"bench_{m}", "Name": f"Net{m % 7}", "Task": TASKS[m % 4],
                     "Visual Category": CATS[m % 5], "Training-Dataset": f"D{m % 6}",
                     "Pretraining-Dataset": "" if m % 3 else "ImageNet1k", "out_channels": c})
        start += n
        depth += 1
        if depth == 20:
            m, depth = m + 1, 0
    df = pd.DataFrame(rows)
    levels = df.groupby("model_id")["conv_depth"].transform("max").clip(lower=1)
    df["conv_depth_norm"] = df["conv_depth"] / levels
    return df


def yaml_axes():
    import yaml

    return yaml.safe_load(open(ROOT / "config.yaml"))["axes"]


def read_floor(path: str, block: int = 1 << 20) -> float:
    t = time.perf_counter()
    with h5py.File(path, "r") as f:
        ds = f["filters"]
        for a in range(0, ds.shape[0], block):
            ds[a:a + block]
    return time.perf_counter() - t


def drop_page_cache() -> bool:
    """Drop the OS page cache (root on Linux) so the next read comes from disk."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--filters", type=int, default=10_000_000)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--shards", type=int, default=None, help="default: --cores")
    ap.add_argument("--workdir", default=None, help="default: a temporary folder (removed)")
    ap.add_argument("--skip-inprocess", action="store_true")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="filterdb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "bench.h5"
    layers = bench_layers(args.filters)
    t = time.perf_counter()
    rng = np.random.default_rng(1)
    write_db_streaming(db, layers, lambda r: rng.standard_normal((int(r.row_end - r.row_start), 9),
                                                                      dtype=np.float32))
    print(f"generated {args.filters:,} filters in {len(layers):,} layers "
          f"({db.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t:.1f} s")
    if drop_page_cache():
        cold = read_floor(str(db))
        print(f"floor (cold page cache, from disk): read the filter array once with h5py: {cold:.2f} s")
    read_floor(str(db))  # warm the page cache
    floor = min(read_floor(str(db)) for _ in range(2))
    print(f"floor (warm page cache): read the filter array once with h5py: {floor:.2f} s")

    if not args.skip_inprocess:
        import yaml

        cfg = yaml.safe_load(open(ROOT / "config.yaml"))
        axes = axes_from_config(cfg["axes"])
        dens = cfg["density"]
        kw = dict(quality={"eps": cfg["quality"]["eps"]}, fine_bins=cfg["histogram"]["fine_bins"],
                  density={"pairs": dens["pairs"], "bins": dens["bins"], "extent": tuple(dens["extent"])})
        analyse(str(db), axes, shards=1, **kw)  # compile / load the numba kernels
        t = time.perf_counter()
        analyse(str(db), axes, shards=1, **kw)
        inproc = time.perf_counter() - t
        print(f"in-process analysis as configured (3 passes incl. quality, fine and 2-D histograms; 1 shard, "
              f"1 core): {inproc:.2f} s = {inproc / floor:.1f} x warm floor, {inproc / args.filters * 1e9:.0f} ns/filter")

    res = work / "results"
    shutil.rmtree(res, ignore_errors=True)
    axes = list(yaml_axes())
    analysis = [str(res / t) for t in ["pca/basis.tsv", "pca/range.tsv", "stats/hist.npz", "stats/sums.npz"]]
    analysis += [str(res / f"{k}/{a}.tsv") for k in ("drift", "groups") for a in axes]

    def snakemake(targets):
        cmd = ["snakemake", *targets, "--cores", str(args.cores), "-s", str(ROOT / "Snakefile"), "-d", str(work),
               "--configfile", str(ROOT / "config.yaml"), "--set-scatter", f"shards={args.shards or args.cores}",
               "--config", f"dataset={db}", f"results={res}", "-q"]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t

    wf = snakemake(analysis)
    print(f"workflow, analysis (3 passes, PCA, drift for {len(axes)} axes; snakemake --cores {args.cores}): "
          f"{wf:.2f} s = {wf / floor:.1f} x floor")
    rest = snakemake([])
    print(f"workflow, then the figures, quality tables and report items (constant in N): {rest:.2f} s")
    tree_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    jobs = [pd.read_csv(p, sep="\t").assign(job=os.path.relpath(p, res)) for p in
            glob.glob(str(res / "benchmarks" / "**" / "*.tsv"), recursive=True)]
    bench = pd.concat(jobs) if jobs else pd.DataFrame()
    if len(bench):
        print(f"peak memory of a shard job (Snakemake benchmark max_rss): {bench['max_rss'].max():.0f} MiB")
        bench["pass"] = bench["job"].str.split("/").str[1]
        per = bench.groupby("pass")["s"].agg(["sum", "max"])
        for name, row in per.iterrows():
            print(f"  {name}: {row['max']:.2f} s for the slowest shard job, {row['sum']:.2f} s summed over shards")
    print(f"peak memory of any process of the run (getrusage): {tree_rss:.0f} MiB")
    print(f"RATIO analysis workflow / warm floor = {wf / floor:.2f}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
