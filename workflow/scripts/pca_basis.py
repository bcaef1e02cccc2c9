from filterdb import pipeline, results
from filterdb.glue import main


def run():
    p = pipeline.global_pca(results.load_npz(snakemake.input.sums))
    results.write_basis(p, snakemake.output.basis, snakemake.output.mean)
    print(f"PCA over {p.n} filters; cumulative explained variance {p.explained_variance_ratio.cumsum().round(3)}")


main(snakemake, run)
