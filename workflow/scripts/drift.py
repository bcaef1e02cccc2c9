from filterdb import pipeline, results
from filterdb.axes import Axis
from filterdb.glue import main


def run():
    inp = snakemake.input
    layers = results.read_layers(inp.layers)
    hist = results.load_npz(inp.hist)
    evr = results.read_evr(inp.basis)
    axis = Axis.from_config(snakemake.wildcards.axis, dict(snakemake.params.axis))
    groups, drift = pipeline.axis_result(layers, hist["counts"], evr, axis, snakemake.params.eps,
                                        snakemake.params.floor, hist["edges"])
    results.write_tsv(groups, snakemake.output.groups, floats=False)
    results.write_tsv(drift, snakemake.output.drift)
    print(f"axis {axis.name}: {len(groups)} groups")


main(snakemake, run)
