"""Benchmark: the workflow at scale against reading the filter array, measured in the same run.

For each DB size (generated on disk layer by layer, benchmarks/dbgen.py; reused when present):

* floors      one read of the filter array, warm page cache and cold (file pages dropped first with
              posix_fadvise(DONTNEED)), h5py and filterdb's direct reader;
* workflow    ``snakemake --cores C --set-scatter shards=S`` for the analysis targets (drift of
              every default axis), for each shard count: wall time, ratio to the warm read, the
              three passes in ns per filter and core (shard jobs' seconds x threads / filters),
              peak RSS of every job kind (Snakemake benchmark files), temp disk of the shard parts;
* cold passes each pass in-process (1 shard, all cores) with the file's pages dropped first,
              against a cold read of the same rows (``--cold``): with buffered reads, and past the
              page cache (O_DIRECT, what a DB larger than memory gets);
* study       the study's in-memory method on the same DB and the same three axes
              (``--study``, DBs up to ~60 M filters), against the workflow for those axes;
* projection  the time for the published 1.4 B-filter DB on this machine and a 32-core node;
* vs          with ``--vs REV``: the workflow of another revision (a copy of it in the workdir) on the
              same DB, run alternately with this checkout's, and the wall-time ratio pair by pair.

    python benchmarks/bench_scale.py --filters 10000000 100000000 --shards 2 8 --cold
    python benchmarks/bench_scale.py --filters 20000000 --study
    python benchmarks/bench_scale.py --filters 360000000 --dtype float64 --shape3x3 --shards 1 --cold-workflow
    python benchmarks/bench_scale.py --filters 200000000 500000000 --shards 1 2 --repeat 3 --vs HEAD~5

Every figure is printed as a ratio to a baseline measured in this run. Needs no extra package.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.dbgen import write_bench_db  # noqa: E402
from filterdb.stream import BlockReader, drop_file_cache, plan_blocks  # noqa: E402

DEFAULT_AXES = ["visual_category", "task", "depth", "architecture", "training_dataset", "pretrained"]
STUDY_AXES = ["task", "visual_category", "depth"]
PUBLISHED = 1_464_797_156  # filters of the published v1.0 file


def read_once(db: str, cold: bool, direct: bool = True, spans=None, bypass: bool = False) -> float:
    if cold:
        drop_file_cache(db)
    # the bytes copied into memory (a read), not the file's pages mapped (the passes' way)
    with BlockReader(db, "filters", direct=direct, bypass_cache=bypass, map_blocks=False, raw=True) as rd:
        spans = spans or [(a, min(a + (1 << 20), rd.n_rows)) for a in range(0, rd.n_rows, 1 << 20)]
        t = time.perf_counter()
        for _ in rd.blocks(spans):
            pass
        return time.perf_counter() - t


def read_as_lanes(db: str, plan, threads: int, bypass: bool) -> float:
    """One cold read of the rows as a pass with ``threads`` threads reads them: each lane's
    contiguous run of layers by its own reader, all lanes at once (filterdb.accumulate.run_pass)."""
    from concurrent.futures import ThreadPoolExecutor

    from filterdb.accumulate import lane_block_rows
    from filterdb.schema import schema_default
    from filterdb.stream import plan_shards

    lanes = [(a, b) for a, b in plan_shards(plan.n_filters, threads) if b > a]
    rows = lane_block_rows(int(schema_default("stream.block_rows")), len(lanes))

    def one(lane):
        a, b = lane
        blocks = plan_blocks(plan.row_start[a:b], plan.row_end[a:b], rows)
        with BlockReader(db, "filters", bypass_cache=bypass, map_blocks=False, raw=True) as rd:
            for _ in rd.blocks([(r0, r1) for r0, r1, _, _ in blocks]):
                pass

    drop_file_cache(db)
    t = time.perf_counter()
    with ThreadPoolExecutor(len(lanes)) as ex:
        list(ex.map(one, lanes))
    return time.perf_counter() - t


def snakemake(db, res, targets, cores, shards, extra=(), config=(), root=ROOT):
    """Run the workflow of the checkout ``root`` (its Snakefile, config and package: ``PYTHONPATH``)."""
    cmd = [
        "snakemake",
        *targets,
        "--cores",
        str(cores),
        "-s",
        str(root / "Snakefile"),
        "-d",
        str(res.parent),
        "--configfile",
        str(root / "config.yaml"),
        *(("--set-scatter", f"shards={shards}") if shards else ()),
        "--config",
        f"dataset={db}",
        f"results={res}",
        *config,  # one --config list: a second --config would replace the first
        "-q",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(root)}
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"snakemake failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return time.perf_counter() - t


def job_table(res: Path):
    """{job kind: [seconds summed, seconds max, peak RSS MiB, jobs, core-seconds inside passes]}
    and {pass: core-seconds}: seconds from Snakemake's benchmark files, peak memory from the "peak
    memory of this job" line every job writes to its log (filterdb.glue; Snakemake's own max_rss
    misses short jobs), each pass's own time from its timing line (filterdb.accumulate), in
    whichever job it ran (shard_* jobs, or rule analyse on the one-job path)."""
    out, passes = {}, {}
    for p in glob.glob(str(res / "logs" / "**" / "*.log"), recursive=True):
        rel = os.path.relpath(p, res / "logs")
        kind = rel.split(os.sep)[0].removesuffix(".log")
        for line in open(p, errors="replace"):
            a = out.setdefault(kind, [0.0, 0.0, 0.0, 0, 0.0])
            if line.startswith("peak memory of this job:"):
                a[2] = max(a[2], float(line.split(":")[1].split()[0]))
            elif " filters in " in line and "thread(s)" in line:
                secs = float(line.split(" filters in ")[1].split()[0])
                core_s = secs * int(line.split(" thread(s)")[0].rsplit(", ", 1)[1])
                a[4] += core_s
                name = line.split()[0]
                passes[name] = passes.get(name, 0.0) + core_s
    for p in glob.glob(str(res / "benchmarks" / "**" / "*.tsv"), recursive=True):
        rel = os.path.relpath(p, res / "benchmarks")
        kind = rel.split(os.sep)[0].removesuffix(".tsv")
        with open(p) as fh:
            head = fh.readline().rstrip("\n").split("\t")
            vals = fh.readline().rstrip("\n").split("\t")
        row = dict(zip(head, vals))
        s = float(row["s"])
        a = out.setdefault(kind, [0.0, 0.0, 0.0, 0, 0.0])
        a[0] += s
        a[1] = max(a[1], s)
        a[3] += 1
    return {k: v for k, v in out.items() if v[3]}, passes


def workflow(
    db, n, work, cores, shards, warm_read, h5_read=None, cold_read=None, cold=False, config=(), root=ROOT, tag=""
):
    """The workflow's drift of every default axis; ``cold``: the DB's pages dropped first (a DB
    larger than memory is read from disk by every pass anyway), compared with three cold reads.
    ``root``: the checkout whose workflow runs (``--vs``), ``tag`` names it in the output."""
    res = work / f"results-{shards}{''.join(c if c.isalnum() else '-' for c in tag)}"  # no glob characters
    shutil.rmtree(res, ignore_errors=True)
    targets = [str(res / f"drift/{a}.tsv") for a in DEFAULT_AXES]
    if cold:
        drop_file_cache(db)
    wall = snakemake(db, res, targets, cores, shards, ("--notemp",), config, root)
    jobs, passes = job_table(res)
    parts = sum(f.stat().st_size for f in (res / "shards").rglob("*") if f.is_file()) / 2**20  # parts + cell records
    shutil.rmtree(res / "shards", ignore_errors=True)
    compute_core_s = sum(passes.values())
    # the jobs that ran the passes, start-up included: their seconds x their threads
    threads = max(1, cores // shards)
    pass_jobs = [k for k in ("shard_sums", "shard_range", "shard_hist") if k in jobs]
    if pass_jobs:
        passes_core_s = sum(jobs[k][0] * threads for k in pass_jobs)
    else:  # the one-job path: the whole job (layer table, gathers and drift tables included)
        passes_core_s = jobs["analyse"][0] * cores if "analyse" in jobs else float("nan")
    h5 = f", {wall / h5_read:4.1f} x h5py's read" if h5_read else ""
    dropped = " (pages dropped first)" if cold else ""
    c3 = f", {wall / (3 * cold_read):4.2f} x three cold reads" if cold_read else ""
    print(
        f"  {tag + ' ' if tag else ''}shards={shards:<4} wall {wall:7.1f} s{dropped} ({n / wall / 1e6:.1f} M "
        f"filters/s) = {wall / warm_read:6.1f} x warm direct read{h5}{c3}; three passes "
        f"{passes_core_s / n * 1e9:5.0f} ns per filter and core as jobs (start-up included), "
        f"{compute_core_s / n * 1e9:5.0f} inside the passes; temporary disk (parts, cell records) {parts:,.0f} MiB"
    )
    for k in ("sums", "range", "hist"):
        if k in passes:
            print(f"      {k}: {passes[k] / n * 1e9:5.0f} ns per filter and core inside the pass")
    for kind in sorted(jobs):
        s_sum, s_max, rss, cnt, _ = jobs[kind]
        flag = "" if rss * 2**20 <= 2e9 else "  (above 2 GB)"
        print(f"      {kind:<13} {cnt:4d} job(s), slowest {s_max:6.1f} s, peak RSS {rss:7.0f} MiB{flag}")
    return wall, compute_core_s, max(v[2] for v in jobs.values())


def checkout(rev: str, work: Path) -> Path:
    """A copy of the repository at ``rev`` in ``work`` (``git archive``; reused when present), with
    its pass kernels compiled ahead of time as ``install.sh`` does (else its jobs would pay numba's
    JIT start-up and the comparison would be unfair)."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", rev], capture_output=True, text=True, check=True)
    sha = sha.stdout.strip()
    out = work / f"checkout-{sha[:12]}"
    if not (out / "Snakefile").exists():
        out.mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(["git", "-C", str(ROOT), "archive", sha], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=tar, check=True)
    print(f"{rev} ({sha[:12]}) in {out}: kernels {built_kernels(out)}")
    return out


def built_kernels(tree: Path) -> str:
    """The pass kernels of the checkout ``tree`` compiled ahead of time, built when missing or stale
    (an edited kernels.py / exactsum.py / histogram.py / scaling.py makes the build stale, and its jobs
    would pay numba's JIT start-up and memory: the comparison would be unfair). Returns the status line."""
    env = {**os.environ, "PYTHONPATH": str(tree)}

    def status() -> str:
        cmd = [sys.executable, "-m", "filterdb.compiled", "status"]
        return subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True).stdout.strip()

    if not status().startswith("aot"):  # a build for this CPU and these sources is kept
        cmd = [sys.executable, "-m", "filterdb.compiled", "build"]
        subprocess.run(cmd, cwd=tree, env=env, check=True, capture_output=True)
    return status()


def cold_passes(db, cores, bypass):
    """Each pass in-process with the file's pages dropped, against a cold read of the same rows.
    ``bypass``: the passes read with O_DIRECT (what ``stream.bypass_page_cache: auto`` does for a
    DB larger than memory, where every pass reads the disk); else buffered reads."""
    from filterdb import pipeline
    from filterdb.accumulate import CellHistFile, PassSettings, coefficient_range, gather_parts, run_shard
    from filterdb.db import open_db
    from filterdb.histogram import uniform_edges

    db_ = open_db(db)
    plan, _ = pipeline.make_plan(db_.layers, 10, db_.key)
    st = PassSettings(
        quality_eps=0.01,
        fine_bins=1024,
        density_pairs=[(0, 1)],
        threads=cores,
        progress=False,
        bypass_cache=bypass,
    )
    spans = [(a, b) for a, b, _, _ in plan_blocks(plan.row_start, plan.row_end)]
    out, basis, edges = {}, None, None
    how = "O_DIRECT" if bypass else "buffered"
    for kind in ("sums", "range", "hist"):
        # the baselines: the same rows read cold the same way (buffered, or O_DIRECT), by one
        # reader, and as the pass's lanes read them (one reader per thread, at once)
        read = read_once(db, cold=True, spans=spans, bypass=bypass)
        lanes = read_as_lanes(db, plan, cores, bypass)
        # the hist pass writes its fine cell histograms into a .npy, as the workflow's one-job path
        cells = Path(db).with_suffix(".cells.npy")
        sink = CellHistFile(cells, plan.n_cells, st.fine_bins) if kind == "hist" else None
        drop_file_cache(db)
        t = time.perf_counter()
        try:
            part = run_shard(db, db_.key, plan, kind, settings=st, basis=basis, edges=edges, cell_sink=sink)
        finally:
            if sink is not None:
                sink.close()
                cells.unlink()
        dt = time.perf_counter() - t
        g = gather_parts([part], plan.n_layers, plan.n_cells, cells=False)
        if kind == "sums":
            p = pipeline.global_pca(g)
            basis = (p.mean, p.components)
        if kind == "range":
            edges = uniform_edges(*coefficient_range(g["cmin"], g["cmax"]), 70)
        out[kind] = (dt, read, lanes)
        print(
            f"  cold {kind:<5} ({how}): {dt:6.1f} s against a cold read of its rows {read:6.1f} s = {dt / read:.2f} x, "
            f"read as its {cores} lanes read them {lanes:6.1f} s = {dt / lanes:.2f} x"
        )
    total, reads, lread = (sum(v[i] for v in out.values()) for i in range(3))
    print(
        f"  cold, three passes ({how}): {total:.1f} s against three cold reads {reads:.1f} s = {total / reads:.2f} x, "
        f"read as the lanes read {lread:.1f} s = {total / lread:.2f} x"
    )
    return total / reads


def study(db, n, work, cores, warm_read):
    """The study's method (in one process) against the workflow for the same three axes, both as
    the commands a user runs (process start to exit: the study's imports, Snakemake's start-up and
    every job's), and the study's in-process time (imports excluded) beside it."""
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/study_method.py"), db, *STUDY_AXES],
        capture_output=True,
        text=True,
        check=True,
    )
    study_wall = time.perf_counter() - t
    base = json.loads(r.stdout.strip().splitlines()[-1])
    res = work / "results-study"
    shutil.rmtree(res, ignore_errors=True)
    cfg = work / "study-axes.yaml"
    import yaml

    full = yaml.safe_load(open(ROOT / "config.yaml"))
    full["axes"] = {a: full["axes"][a] for a in STUDY_AXES}
    cfg.write_text(yaml.safe_dump(full))
    targets = [str(res / f"drift/{a}.tsv") for a in STUDY_AXES]
    t = time.perf_counter()
    snakemake(db, res, targets, cores, None, ("--configfile", str(cfg)))  # the default shards
    wall = time.perf_counter() - t
    jobs, _ = job_table(res)
    rss = max(v[2] for v in jobs.values())
    path = "one job (rule analyse)" if "analyse" in jobs else f"{jobs['shard_sums'][3]} shards"
    print(
        f"  study's method (float16 in memory, sklearn PCA, np.histogram, KL loops; {len(STUDY_AXES)} axes): "
        f"{study_wall:.1f} s as a command ({base['seconds']:.1f} s after its imports), peak {base['peak_mb']:,.0f} MiB"
    )
    print(
        f"  workflow, same axes ({path}): {wall:.1f} s as a command, largest job {rss:,.0f} MiB: "
        f"{study_wall / wall:.2f} x faster command to command ({base['seconds'] / wall:.2f} x against the "
        f"study's time after its imports) at {rss / base['peak_mb']:.2f} of the memory"
    )
    r = subprocess.run(
        [sys.executable, "-c", LIBRARY_RUN, db, str(cores), json.dumps(full["axes"])],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    lib = json.loads(r.stdout.strip().splitlines()[-1])
    print(
        f"  library, same axes (filterdb.pipeline.analyse in one process, {cores} threads): {lib['seconds']:.1f} s, "
        f"peak {lib['peak_mb']:,.0f} MiB: {base['seconds'] / lib['seconds']:.2f} x faster than the study after "
        f"its imports, at {lib['peak_mb'] / base['peak_mb']:.2f} of the memory"
    )


LIBRARY_RUN = """
import json, sys, time
from filterdb import pipeline
from filterdb.axes import axes_from_config
from filterdb.glue import peak_rss_mb
db, threads, axes = sys.argv[1], int(sys.argv[2]), axes_from_config(json.loads(sys.argv[3]))
pipeline.analyse(db, axes, threads=threads, quality={"eps": 0.01})  # numba cache, page cache
t = time.perf_counter()
pipeline.analyse(db, axes, threads=threads, quality={"eps": 0.01})
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": peak_rss_mb()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--filters", type=int, nargs="+", default=[10_000_000])
    ap.add_argument("--models-per-million", type=float, default=24.0, help="models per million filters")
    ap.add_argument("--shards", type=int, nargs="+", default=[2])
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cold", action="store_true", help="also each pass with the file's pages dropped")
    ap.add_argument("--cold-workflow", action="store_true", help="drop the DB's pages before each workflow run")
    ap.add_argument("--repeat", type=int, default=1, help="workflow runs per shard count (cold: each after 3 reads)")
    ap.add_argument("--study", action="store_true", help="also the study's in-memory method (<= ~60 M filters)")
    ap.add_argument("--dtype", default="float32", choices=["float16", "float32", "float64"], help="stored dtype")
    ap.add_argument("--shape3x3", action="store_true", help="store (N, 3, 3), as the published v1.0 file")
    ap.add_argument("--precision", default=None, help="stream.precision of the workflow runs (default: config)")
    ap.add_argument("--workdir", default="benchmarks/work", help="DBs and results (DBs are reused)")
    ap.add_argument(
        "--vs",
        default=None,
        metavar="REV",
        help="also run the workflow of git revision REV (a copy in the workdir, its kernels built) on the same DB, "
        "alternately with this checkout's (this, REV, this, REV, ...), and print the wall-time ratio pair by pair",
    )
    args = ap.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"this checkout ({ROOT}): kernels {built_kernels(ROOT)}")
    other = checkout(args.vs, work) if args.vs else None
    config = (f"stream={{precision: {args.precision}}}",) if args.precision else ()
    for n in args.filters:
        suffix = ("" if args.dtype == "float32" else f"-{args.dtype}") + ("-3x3" if args.shape3x3 else "")
        db = work / f"bench-{n // 1_000_000}M{suffix}.h5"
        if not db.exists():
            t = time.perf_counter()
            write_bench_db(
                db, n, max(1, int(n / 1e6 * args.models_per_million)), dtype=args.dtype, shape3x3=args.shape3x3
            )
            print(f"generated {db.name} ({db.stat().st_size / 2**30:.1f} GiB) in {time.perf_counter() - t:.0f} s")
        db = str(db)
        size = os.path.getsize(db)
        row_bytes = 9 * {"float16": 2, "float32": 4, "float64": 8}[args.dtype]
        cold = read_once(db, cold=True)
        h5 = read_once(db, cold=False, direct=False)
        warm = min(read_once(db, cold=False) for _ in range(2))
        print(f"\n{n:,} filters, {args.dtype} ({size / 2**30:.1f} GiB, {row_bytes} B per filter), {args.cores} cores")
        print(
            f"  read once: cold {cold:.2f} s ({n / cold / 1e6:.0f} M filters/s, {size / cold / 1e6:.0f} MB/s), "
            f"warm {warm:.2f} s ({n / warm / 1e6:.0f} M filters/s; h5py {h5:.2f} s)"
        )
        best = None
        for shards in args.shards:
            pairs = []
            for rep in range(args.repeat):
                base = cold
                if args.cold_workflow:  # three cold reads just before, as the baseline of this run
                    reads = [read_once(db, cold=True) for _ in range(3)]
                    base = sum(reads) / 3
                    shown = " + ".join(f"{r:.1f}" for r in reads)
                    print(f"  three cold reads (run {rep + 1}): {shown} = {sum(reads):.1f} s")
                wall, core_s, rss = workflow(
                    db, n, work, args.cores, shards, warm, h5, cold_read=base, cold=args.cold_workflow, config=config
                )
                best = min(best or core_s, core_s)
                if other is not None:
                    if args.cold_workflow:
                        base = sum(read_once(db, cold=True) for _ in range(3)) / 3
                    w_other, _, _ = workflow(
                        db,
                        n,
                        work,
                        args.cores,
                        shards,
                        warm,
                        h5,
                        base,
                        args.cold_workflow,
                        config,
                        other,
                        f"[{args.vs}]",
                    )
                    pairs.append(wall / w_other)
            if pairs:
                shown = ", ".join(f"{r:.3f}" for r in pairs)
                print(
                    f"  shards={shards}: wall of this checkout / {args.vs}'s, pair by pair: {shown}; "
                    f"median {sorted(pairs)[len(pairs) // 2]:.3f}"
                )
        ratio = None
        if args.cold:
            cold_passes(db, args.cores, bypass=False)
            ratio = cold_passes(db, args.cores, bypass=True)
        per_filter = best / n  # core-seconds per filter inside the passes (start-up excluded)
        for dtype, rb in (("float64", 72), ("float16", 18)):
            # three reads of the published file at this disk's bytes per second (times the cold
            # passes' measured ratio to them, when measured), against the passes' compute
            io = 3 * PUBLISHED * rb / (size / cold) / 60 * (ratio or 1.0)
            gb = PUBLISHED * rb / 1e9
            for cores in (args.cores, 32):
                cpu = PUBLISHED * per_filter / cores / 60
                print(
                    f"  projection, published {PUBLISHED / 1e9:.2f} B filters stored {dtype} ({gb:.0f} GB), "
                    f"{cores} cores: compute {cpu:.1f} min, three reads from a disk like this one"
                    f"{' x ratio' * bool(ratio)} {io:.1f} min: ~{max(cpu, io):.0f} min"
                )
        if args.study:
            study(db, n, work, args.cores, warm)


if __name__ == "__main__":
    main()
