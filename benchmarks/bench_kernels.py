"""Benchmark: the pass kernels for any filter width against the 3x3-only kernels they replace.

For rows of 9 values (3x3 filters), each pass kernel of :mod:`filterdb.kernels` (JIT) is timed
against the same kernel of a reference commit (default 1cebdd6, the last one with 9 values built
into the kernels; its ``filterdb/kernels.py`` loaded from ``git show`` into a module of its own,
JIT as well) on the same synthetic rows, one call each in turn (in reversed order every other
time), ``--repeat`` times: the median of each, their ratio, the spread (min - max over the
repeats) and whether every output array is byte-identical. Kernels: the sums pass with quality
off and on (an eps grid of 7 thresholds), the range pass, and the hist pass with fine bins (every
layer in a cell) and a 2-D density pair. The column "any-width" times the new kernels' variant
that reads the width from the arrays (what 3x3 rows would run without the variant compiled for 9
values), on the same rows. ``--asm`` also counts the machine instructions of the old kernels and
of the new 9-value variants (compiled again without numba's cache: the cached code cannot be
inspected).

For rows of 25 and 49 values (5x5, 7x7 filters), the new kernels alone: rows/s and values/s, on
as many values as the 3x3 rows hold (``--rows * 9 / d`` rows).

    python benchmarks/bench_kernels.py --rows 5000000 --repeat 3
    python benchmarks/bench_kernels.py --rows 2000000 --repeat 5 --dtypes float16 --widths 9 --asm

Layers are 64 to 4096 rows (uniform), as a model's 3x3 conv layers are. Times are the calling
thread's CPU time (a shared machine's other processes do not count; cache and memory contention
still do: compare the spread). The first call of each kernel compiles it (numba caches both
versions on disk: a second run starts at once) and is not timed. Needs no extra package.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filterdb import kernels, scaling  # noqa: E402
from filterdb.histogram import uniform_edges  # noqa: E402

EPS_GRID = np.array([0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.5])
BINS, FINE_BINS, DENS_BINS = 70, 256, 64


def old_kernels(commit: str):
    """``filterdb/kernels.py`` of ``commit`` as a module of the package (its relative imports
    resolve to this checkout's modules), written once to a fixed temporary path so that numba's
    disk cache of its kernels is reused by later runs."""
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:filterdb/kernels.py"], capture_output=True, text=True, check=True
    ).stdout
    folder = Path(tempfile.gettempdir()) / f"filterdb-bench-kernels-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    path = folder / f"kernels_{commit}.py"
    if not path.exists() or path.read_text() != src:
        path.write_text(src)
    name = f"filterdb._kernels_{commit}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "filterdb"
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def make_rows(n_rows: int, d: int, dtype: str, seed: int = 0):
    """Rows ``(n, d)`` of ``dtype`` (float16 as its uint16 bits) in layers of 64..4096 rows, with a
    few sparse rows and one NaN row; ``ls, le, lp`` as the passes give them."""
    rng = np.random.default_rng(seed)
    sizes = []
    total = 0
    while total < n_rows:
        s = min(int(rng.integers(64, 4097)), n_rows - total)
        sizes.append(s)
        total += s
    x = rng.standard_normal((n_rows, d)).astype(np.float32) * 0.05
    x[rng.random(n_rows) < 0.02] *= 1e-4  # sparse filters
    x[n_rows // 2, 0] = np.nan
    x = scaling.half_bits(x.astype(np.float16)) if dtype == "float16" else x.astype(dtype)
    le = np.cumsum(sizes).astype(np.int64)
    ls = le - np.asarray(sizes, np.int64)
    lp = np.arange(len(sizes), dtype=np.int64)
    return x, ls, le, lp


def basis(d: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal(d) * 0.05
    comps = np.ascontiguousarray(np.linalg.qr(rng.standard_normal((d, d)))[0].T)
    return mean, comps


def cases(x, ls, le, lp, prec):
    """``name -> (kernel name, args factory)``: each factory gives fresh output arrays; the
    outputs are the arrays after the call."""
    L, d = ls.size, x.shape[1]
    mean, comps = basis(d)
    c = comps.shape[0]
    edges = uniform_edges(-2.5, 2.5, BINS)
    fedges = uniform_edges(-2.5, 2.5, FINE_BINS)
    pairs = np.array([[0, 1]], np.int64)
    lcell = (lp % 4).astype(np.int64)  # every layer in one of 4 cells

    def sums(quality):
        def args():
            out = [np.zeros(L, np.int64), np.zeros((L, d)), np.zeros((L, d, d)), np.zeros(L, np.int64)]
            out += [np.full(L, -1, np.int64)]
            if quality:
                q = [
                    np.zeros(L),
                    np.zeros(L, np.int64),
                    np.zeros(L, np.int64),
                    np.zeros((L, d, d)),
                    np.zeros((L, d, d)),
                ]
                grid = [EPS_GRID, np.zeros((L, EPS_GRID.size), np.int64)]
            else:
                q = [
                    np.zeros(0),
                    np.zeros(0, np.int64),
                    np.zeros(0, np.int64),
                    np.zeros((0, d, d)),
                    np.zeros((0, d, d)),
                ]
                grid = [np.zeros(0), np.zeros((0, 0), np.int64)]
            full = [x, ls, le, lp, True, prec, *out, quality, 0.01, *q, *grid]
            return full, out + (q + grid[1:] if quality else [])

        return args

    def rng_args():
        cmin, cmax = np.full((L, c), np.inf), np.full((L, c), -np.inf)
        return [x, ls, le, lp, True, prec, mean, comps, cmin, cmax], [cmin, cmax]

    def hist_args():
        counts = np.zeros((L, c, BINS), np.uint32)
        fine = np.zeros((4, c, FINE_BINS), np.uint32)
        dens = np.zeros((1, DENS_BINS, DENS_BINS), np.uint32)
        fixed, outside = np.zeros((0, c, 1), np.uint32), np.zeros((0, c), np.int64)
        full = [x, ls, le, lp, True, prec, mean, comps, edges, counts, lcell, fedges, fine, pairs]
        full += [-2.0, 2.0, DENS_BINS, dens, np.zeros(1), fixed, outside]
        return full, [counts, fine, dens]

    return {
        "sums": ("sums_block", sums(False)),
        "sums+quality": ("sums_block", sums(True)),
        "range": ("range_block", rng_args),
        "hist+fine+dens": ("hist_block", hist_args),
    }


def timed(fn, args) -> float:
    """Seconds of this thread's CPU time for one call (a kernel runs in the calling thread: the
    time other processes of a shared machine take from it is not counted)."""
    t0 = time.thread_time()
    fn(*args)
    return time.thread_time() - t0


def same_bytes(a: list, b: list) -> bool:
    return all(u.dtype == v.dtype and u.shape == v.shape and u.tobytes() == v.tobytes() for u, v in zip(a, b))


def spread(t: list) -> str:
    return f"{min(t):.3f}-{max(t):.3f}"


ANY_WIDTH = {"sums_block": "_sums_any", "range_block": "_range_any", "hist_block": "_hist_any"}
FIXED_WIDTH = {"sums_block": "_sums_fixed", "range_block": "_range_fixed", "hist_block": "_hist_fixed"}


def instructions(fn, args) -> int:
    """Machine instructions of ``fn`` compiled (again, without the disk cache) for ``args``."""
    import numba

    f = numba.njit(nogil=True, error_model="numpy")(fn.py_func)
    sig = tuple(numba.typeof(v) for v in args)
    f.compile(sig)
    asm = f.inspect_asm(sig)
    return sum(1 for line in asm.splitlines() if line.startswith("\t") and not line.startswith("\t."))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows of 9 values per data set")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls of each kernel and version")
    ap.add_argument("--dtypes", nargs="+", default=["float16", "float32"], choices=["float16", "float32", "float64"])
    ap.add_argument("--widths", nargs="+", type=int, default=[9, 25, 49], help="values per row (9 is compared)")
    ap.add_argument("--commit", default="1cebdd6", help="the reference kernels (3x3 only)")
    ap.add_argument("--asm", action="store_true", help="also count the 3x3 kernels' machine instructions")
    a = ap.parse_args(argv)
    if not kernels.HAVE_NUMBA:
        print("numba is not installed: no kernels to time", file=sys.stderr)
        return 2
    old = old_kernels(a.commit) if 9 in a.widths else None
    bad = 0
    for dtype in a.dtypes:
        prec = scaling.PRECISIONS["float32"]
        if 9 in a.widths:
            x, ls, le, lp = make_rows(a.rows, 9, dtype)
            print(f"\nd = 9, {dtype} rows ({x.shape[0]:,} rows, {ls.size:,} layers), precision float32")
            head = f"  {'kernel':<16} {'old s':>8} {'new s':>8} {'ratio':>6}  {'old min-max':>13} {'new min-max':>13}"
            print(head + f"  same  {'any-width s':>11} {'ratio':>6}" + ("  instructions old/new" if a.asm else ""))
            for label, (name, args) in cases(x, ls, le, lp, prec).items():
                fo, fn, fa = getattr(old, name), getattr(kernels, name), getattr(kernels, ANY_WIDTH[name])
                ao, oo = args()
                an, on = args()
                fo(*ao)  # compile (or load from numba's cache), and the outputs to compare
                fn(*an)
                fa(*args()[0])
                same = same_bytes(oo, on)
                bad += not same
                t = {fo: [], fn: [], fa: []}
                for i in range(a.repeat):  # in turn, the order reversed every other time
                    for f in list(t)[:: 1 - 2 * (i % 2)]:
                        t[f].append(timed(f, args()[0]))
                to, tn, ta = t.values()
                mo, mn, ma = (float(np.median(t)) for t in (to, tn, ta))
                line = (
                    f"  {label:<16} {mo:8.3f} {mn:8.3f} {mn / mo:6.3f}  {spread(to):>13} {spread(tn):>13}  "
                    f"{'yes' if same else 'NO ':<4} {ma:11.3f} {ma / mo:6.3f}"
                )
                if a.asm:
                    fx = getattr(kernels, FIXED_WIDTH[name])
                    line += f"  {instructions(fo, an)}/{instructions(fx, an)}"
                print(line, flush=True)
        for d in (w for w in a.widths if w != 9):
            n = max(1, a.rows * 9 // d)
            x, ls, le, lp = make_rows(n, d, dtype)
            print(f"\nd = {d}, {dtype} rows ({x.shape[0]:,} rows, {ls.size:,} layers), precision float32, new kernels")
            print(f"  {'kernel':<16} {'s':>8} {'min-max':>13} {'rows/s':>10} {'values/s':>10} {'ns/row':>8}")
            for label, (name, args) in cases(x, ls, le, lp, prec).items():
                fn = getattr(kernels, name)
                fn(*args()[0])
                t = [timed(fn, args()[0]) for _ in range(a.repeat)]
                m = float(np.median(t))
                print(f"  {label:<16} {m:8.3f} {spread(t):>13} {n / m:10.3g} {n * d / m:10.3g} {m / n * 1e9:8.1f}")
    if bad:
        print(f"\n{bad} kernel(s) gave outputs that differ from the reference commit's", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
