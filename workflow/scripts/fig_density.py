"""Density of every configured coefficient pair (c{a}, c{b}) from the gathered 2-D histograms."""

import numpy as np

from filterdb import plots, results
from filterdb.glue import main


def run():
    hist = results.load_npz(snakemake.input.hist)
    have = [tuple(int(v) for v in p) for p in hist.get("density_pairs", np.zeros((0, 2), int))]
    out = snakemake.output
    for a, b in snakemake.params.pairs:
        if (a, b) not in have:
            raise ValueError(f"{snakemake.input.hist} has no density of (c{a}, c{b}); its pairs: {have}")
        counts = hist["density"][have.index((a, b))]
        fig = plots.density_image(
            counts,
            hist["density_edges"],
            (a, b),
            title=f"Density of (c{a}, c{b}), {int(counts.sum()):,} filters in view",
        )
        plots.save_all(fig, [getattr(out, f"svg_c{a}_c{b}"), getattr(out, f"png_c{a}_c{b}")])


main(snakemake, run)
