from filterdb import pca, pipeline, stats
from filterdb.glue import main


def run():
    p = pipeline.global_pca(stats.load_npz(snakemake.input.sums))
    pca.basis_table(p).to_csv(snakemake.output.basis, sep="\t", index=False, float_format="%.17g")
    pca.mean_table(p).to_csv(snakemake.output.mean, sep="\t", index=False, float_format="%.17g")
    print(f"PCA over {p.n} filters; cumulative explained variance {p.explained_variance_ratio.cumsum().round(3)}")


main(snakemake, run)
