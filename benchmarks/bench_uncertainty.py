"""Time of the drift uncertainty (bootstrap + permutation null, B = P = 1000) on ~650 models.

Synthetic unit histograms (no DB needed): 650 models, 70 bins, 9 coefficients, for three axis
shapes: 12 groups of whole models (task-like), 100 groups (architecture-like), and 10 depth bins
where every model contributes one unit per bin (6500 units).

    PYTHONPATH=. python3 benchmarks/bench_uncertainty.py [--models 650] [--replicates 1000] [--equal-size 0]

``--equal-size R`` adds the equal-size subsamples (R replicates).
"""

import argparse
import time

import numpy as np

from filterdb import uncertainty


def synth(rng, n_units, n_groups, bins=70):
    base = rng.dirichlet(np.full(bins, 2.0), size=9)
    sizes = rng.integers(50, 5000, n_units)
    counts = np.stack([np.stack([rng.multinomial(s, base[c]) for c in range(9)]) for s in sizes])
    group = np.concatenate([np.arange(n_groups), rng.integers(0, n_groups, n_units - n_groups)])
    return counts, group


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=650)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--equal-size", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    edges = np.linspace(-3.0, 3.0, 71)
    evr = rng.dirichlet(np.ones(9))
    for label, n_units, n_groups in (
        ("task-like", args.models, 12),
        ("architecture-like", args.models, 100),
        ("depth-like", 10 * args.models, 10),
    ):
        counts, group = synth(rng, n_units, n_groups)
        t = time.perf_counter()
        r = uncertainty.axis_uncertainty(
            counts,
            group,
            list(range(n_groups)),
            evr,
            edges,
            bootstrap_replicates=args.replicates,
            permutations=args.replicates,
            seed=0,
            equal_size=args.equal_size,
        )
        dt = time.perf_counter() - t
        print(
            f"{label:18s} {n_units:5d} units, {n_groups:3d} groups ({len(r.ci)} pairs): "
            f"B = P = {args.replicates}, R = {args.equal_size}: {dt:.2f} s"
        )


if __name__ == "__main__":
    main()
