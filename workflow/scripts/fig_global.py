"""The figures of no axis (rule ``fig_global``): the global PCA (every kind of ``params.kinds``:
cumulative explained variance, pixel covariance, eigenimages) and the density of every configured
coefficient pair (c{a}, c{b}) from the gathered 2-D histograms."""

import numpy as np

from filterdb import pca, plots, results
from filterdb.glue import main


def figure(p, kind):
    if kind == "cumulative_variance":
        return plots.cumulative_variance(p.explained_variance_ratio, title=f"Global PCA ({p.n:,} filters)")
    if kind == "covariance":
        return plots.pixel_covariance(p.covariance)
    if kind == "eigenimages":
        return plots.eigenimages(p.components, p.explained_variance_ratio, title=f"Global PCA basis ({p.n:,} filters)")
    raise ValueError(f"unknown PCA figure {kind!r}")


def global_pca(inp, out, params):
    p = pca.global_pca(results.load_npz(inp.sums))
    for kind in params.kinds:
        plots.save_all(figure(p, kind), [getattr(out, f"svg_{kind}"), getattr(out, f"png_{kind}")])
        print(f"{kind}: {p.n} filters")


def densities(inp, out, params):
    hist = results.load_npz(inp.hist)
    have = [tuple(int(v) for v in p) for p in hist.get("density_pairs", np.zeros((0, 2), int))]
    for a, b in params.pairs:
        if (a, b) not in have:
            raise ValueError(f"{inp.hist} has no density of (c{a}, c{b}); its pairs: {have}")
        counts = hist["density"][have.index((a, b))]
        fig = plots.density_image(
            counts,
            hist["density_edges"],
            (a, b),
            title=f"Density of (c{a}, c{b}), {int(counts.sum()):,} filters in view",
        )
        plots.save_all(fig, [getattr(out, f"svg_c{a}_c{b}"), getattr(out, f"png_c{a}_c{b}")])
        print(f"density (c{a}, c{b}): {int(counts.sum())} filters in view")


def run():
    global_pca(snakemake.input, snakemake.output, snakemake.params)
    densities(snakemake.input, snakemake.output, snakemake.params)


main(snakemake, run)
