"""Rule ``drift``: every axis's drift matrix and group table, in one job."""

from filterdb import pipeline, results
from filterdb.axes import Axis
from filterdb.glue import main


def run():
    inp, out, params = snakemake.input, snakemake.output, snakemake.params
    layers = results.read_layers(inp.layers)
    hist = results.load_npz(inp.hist)
    evr = results.read_evr(inp.basis)
    for name, cfg in params.axes.items():
        axis = Axis.from_config(name, dict(cfg))
        groups, drift = pipeline.axis_result(layers, hist["counts"], evr, axis, params.eps, params.floor, hist["edges"])
        results.write_tsv(groups, out[f"groups_{name}"], floats=False)
        results.write_tsv(drift, out[f"drift_{name}"])
        print(f"axis {name}: {len(groups)} groups")


main(snakemake, run)
