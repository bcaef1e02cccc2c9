"""Benchmark: the README's default run (``snakemake --cores 2`` on the sample, archives cached),
against the run-time budget (30 s) and, with ``--vs REV``, against another revision in the same run.

Each run starts from no results (a fresh results folder in the workdir; the download cache of the
pinned archives is shared, as on a user's second run). Printed per checkout: the wall time of each
run (min / median / max), the CPU seconds of the whole run (Snakemake and every job, from
``os.wait4``), and the three longest jobs by wall time (Snakemake's log); before each run the time of a fixed
pure-Python loop, how fast the (shared) machine is at that moment.
With ``--vs REV`` the two checkouts run alternately (this, REV, this, REV, ...) and the wall-time
ratio is printed pair by pair: on a shared machine the spread between runs (+-3 s) is larger than
most changes, pairs cancel the slow drifts of the machine.

    python benchmarks/bench_default.py --runs 5
    python benchmarks/bench_default.py --runs 5 --vs HEAD~3

Needs no extra package.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_scale import built_kernels, checkout  # noqa: E402

BUDGET = 30.0  # seconds: the default run's budget (README)


def run_once(tree: Path, work: Path, cores: int) -> dict:
    """One default run of the workflow of ``tree``, results in ``work``/results (removed first).

    Returns wall seconds, CPU seconds of Snakemake and all its jobs (``wait4``: the process and
    its waited-for descendants), and the jobs' wall times from Snakemake's log."""
    res = work / "results"
    shutil.rmtree(res, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    cache = tree / "resources" / "archives"  # the download cache, shared with this checkout's
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.symlink_to(ROOT / "resources" / "archives")
    cmd = [
        sys.executable,
        shutil.which("snakemake"),
        "--cores",
        str(cores),
        "-s",
        str(tree / "Snakefile"),
        "--configfile",
        str(tree / "config.yaml"),
        "--config",
        f"results={res}",
        f"dataset={res}/sample/sample.h5",
        "--printshellcmds",
    ]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    log = work / "snakemake.log"
    t = time.perf_counter()
    with open(log, "w") as fh:
        p = subprocess.Popen(cmd, cwd=tree, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"snakemake failed in {tree}; its log: {log}")
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "jobs": job_walls(log.read_text())}


def machine_speed() -> float:
    """Seconds of a fixed pure-Python loop: how fast this (shared) machine is right now."""
    t = time.perf_counter()
    sum(range(20_000_000))
    return time.perf_counter() - t


def job_walls(text: str) -> list[tuple[float, str]]:
    """(seconds, rule) of each job, from the timestamps Snakemake prints (1 s resolution)."""
    stamp, rule_of, start, out = None, {}, {}, []
    current = None
    for line in text.splitlines():
        m = re.match(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line)
        if m:
            stamp = time.mktime(time.strptime(m.group(1), "%a %b %d %H:%M:%S %Y"))
            continue
        m = re.match(r"(?:local)?rule (\w+):", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"\s+jobid: (\d+)", line)
        if m and current:
            rule_of[m.group(1)], start[m.group(1)], current = current, stamp, None
            continue
        m = re.match(r"Finished job(?:id:)? (\d+)", line)
        if m and m.group(1) in start:
            out.append((stamp - start[m.group(1)], rule_of[m.group(1)]))
    return sorted(out, reverse=True)


def summary(tag: str, runs: list[dict]) -> None:
    walls = [r["wall"] for r in runs]
    med = statistics.median(walls)
    cpu = statistics.median(r["cpu"] for r in runs)
    print(
        f"{tag}: {len(runs)} runs, wall min {min(walls):.1f} s, median {med:.1f} s, max {max(walls):.1f} s "
        f"(median / budget {BUDGET:.0f} s: {med / BUDGET:.3f}); CPU (median) {cpu:.1f} s"
    )
    longest = runs[-1]["jobs"][:3]
    print("  longest jobs of the last run: " + ", ".join(f"{rule} {s:.0f} s" for s, rule in longest))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per checkout (default 5)")
    ap.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2, as the README)")
    ap.add_argument("--vs", metavar="REV", help="also run revision REV (a copy in the workdir), alternately")
    ap.add_argument("--workdir", default=None, help="where results and the --vs copy go (default: a temp dir)")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-default-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"this checkout ({ROOT}): kernels {built_kernels(ROOT)}")
    trees = {"this": ROOT}
    if args.vs:
        trees[args.vs] = checkout(args.vs, work)
    # a first run of each fills the archive cache and compiles the sources to bytecode: not timed
    for tag, tree in trees.items():
        run_once(tree, work / tag.replace("/", "_"), args.cores)
    runs: dict[str, list[dict]] = {tag: [] for tag in trees}
    for _ in range(args.runs):
        for tag, tree in trees.items():
            speed = machine_speed()
            r = run_once(tree, work / tag.replace("/", "_"), args.cores)
            runs[tag].append(r)
            print(f"  {tag}: {r['wall']:.1f} s, CPU {r['cpu']:.1f} s (machine: loop {speed:.3f} s)", flush=True)
    for tag in trees:
        summary(tag, runs[tag])
    if args.vs:
        pairs = [a["wall"] / b["wall"] for a, b in zip(runs["this"], runs[args.vs])]
        print(
            f"wall of this checkout / {args.vs}'s, pair by pair: "
            + ", ".join(f"{p:.3f}" for p in pairs)
            + f"; median {statistics.median(pairs):.3f}"
        )


if __name__ == "__main__":
    main()
