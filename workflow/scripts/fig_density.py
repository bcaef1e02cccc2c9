"""Density of a coefficient pair (c{a}, c{b}) from the gathered 2-D histogram."""

import numpy as np

from filterdb import plots, results
from filterdb.glue import main


def run():
    hist = results.load_npz(snakemake.input.hist)
    pair = (int(snakemake.wildcards.a), int(snakemake.wildcards.b))
    pairs = [tuple(int(v) for v in p) for p in hist.get("density_pairs", np.zeros((0, 2), int))]
    if pair not in pairs:
        raise ValueError(f"{snakemake.input.hist} has no density of (c{pair[0]}, c{pair[1]}); "
                         f"configured pairs: {pairs}")
    counts = hist["density"][pairs.index(pair)]
    fig = plots.density_image(counts, hist["density_edges"], pair,
                              title=f"Density of (c{pair[0]}, c{pair[1]}), {int(counts.sum()):,} filters in view")
    plots.save_all(fig, [snakemake.output.svg, snakemake.output.png])


main(snakemake, run)
