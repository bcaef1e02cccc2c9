"""Global PCA figures: cumulative explained variance, 9x9 pixel covariance, eigenimages."""

from filterdb import pipeline, plots, results
from filterdb.glue import main


def run():
    p = pipeline.global_pca(results.load_npz(snakemake.input.sums))
    kind = snakemake.params.kind
    if kind == "cumulative_variance":
        fig = plots.cumulative_variance(p.explained_variance_ratio, title=f"Global PCA ({p.n:,} filters)")
    elif kind == "covariance":
        fig = plots.pixel_covariance(p.covariance)
    elif kind == "eigenimages":
        fig = plots.eigenimages(p.components, p.explained_variance_ratio,
                                title=f"Global PCA basis ({p.n:,} filters)")
    else:
        raise ValueError(f"unknown PCA figure {kind!r}")
    plots.save_all(fig, [snakemake.output.svg, snakemake.output.png])
    print(f"{kind}: {p.n} filters")


main(snakemake, run)
