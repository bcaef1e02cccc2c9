"""Rule ``drift``: every axis's drift matrix and group table, in one job."""

import sys

from filterdb import pipeline, results
from filterdb.axes import Axis, layer_labels
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
        if groups.empty:
            why = (
                f"no layer has a value in column {axis.column!r}"
                if layer_labels(layers, axis).isna().all()
                else "every group is below min_models / min_filters"
            )
            print(f"axis {name}: {why}: no groups, empty drift table", file=sys.stderr)


main(snakemake, run)
