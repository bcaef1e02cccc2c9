from filterdb import pipeline, stats
from filterdb.glue import main


def run():
    layers = stats.read_layers(snakemake.input.layers)
    parts = [stats.load_npz(p) for p in snakemake.input.parts]
    out = stats.gather(parts, len(layers))
    stats.save_npz(snakemake.output.stats, out)
    if "range" in snakemake.output.keys():
        stats.write_range(snakemake.output.range, *stats.coefficient_range(out["cmin"], out["cmax"]))
    if "cells" in snakemake.output.keys():
        _, cells = pipeline.cell_table(layers, snakemake.params.depth_bins)
        cells.to_csv(snakemake.output.cells, sep="\t", index=False)
    print(f"gathered {len(parts)} shards, {len(layers)} layers: {sorted(out)}")


main(snakemake, run)
