from filterdb import pca, pipeline, stats
from filterdb.axes import Axis
from filterdb.glue import main


def run():
    inp = snakemake.input
    layers = stats.read_layers(inp.layers)
    hist = stats.load_npz(inp.hist)
    evr = pca.read_evr(inp.basis)
    axis = Axis.from_config(snakemake.wildcards.axis, dict(snakemake.params.axis))
    groups, drift = pipeline.axis_result(layers, hist["counts"], evr, axis, snakemake.params.eps)
    groups.to_csv(snakemake.output.groups, sep="\t", index=False)
    drift.to_csv(snakemake.output.drift, sep="\t", index=False, float_format="%.17g")
    print(f"axis {axis.name}: {len(groups)} groups")


main(snakemake, run)
