"""Global PCA figures (every kind of ``params.kinds``): cumulative explained variance, 9x9 pixel
covariance, eigenimages."""

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


def run():
    sums = results.load_npz(snakemake.input.sums)
    p = pca.global_pca(sums)
    out = snakemake.output
    for kind in snakemake.params.kinds:
        plots.save_all(figure(p, kind), [getattr(out, f"svg_{kind}"), getattr(out, f"png_{kind}")])
        print(f"{kind}: {p.n} filters")


main(snakemake, run)
