from filterdb import pipeline, results, stats
from filterdb.glue import main


def run():
    layers = results.read_layers(snakemake.input.layers)
    parts = [results.load_npz(p) for p in snakemake.input.parts]
    out = stats.gather(parts, len(layers))
    results.save_npz(snakemake.output.stats, out)
    if "range" in snakemake.output.keys():
        results.write_range(snakemake.output.range, *stats.coefficient_range(out["cmin"], out["cmax"]))
    if "cells" in snakemake.output.keys():
        _, cells = pipeline.cell_table(layers, snakemake.params.depth_bins)
        results.write_tsv(cells, snakemake.output.cells, floats=False)
    print(f"gathered {len(parts)} shards, {len(layers)} layers: {sorted(out)}")


main(snakemake, run)
