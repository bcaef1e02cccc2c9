"""Ridge plot of one axis: Gaussian KDEs (Silverman) of c0..c8 per group, from fine histograms."""

import numpy as np
import pandas as pd

from filterdb import kde, pipeline, plots, results
from filterdb.axes import Axis, layer_labels
from filterdb.glue import main


def run():
    inp = snakemake.input
    axis = Axis.from_config(snakemake.wildcards.axis, dict(snakemake.params.axis))
    layers = results.read_layers(inp.layers)
    hist = results.load_npz(inp.hist)
    if "cell_counts" not in hist:
        raise ValueError(f"{inp.hist} has no fine histograms (histogram.fine_bins is 0): no ridge plots")
    lo, hi = results.read_range(inp.range)
    groups = pd.read_csv(inp.groups, sep="\t", keep_default_na=False, dtype={"group": str})["group"].tolist()
    cell_of_layer, cells = pipeline.cell_table(layers, snakemake.params.depth_bins)
    if len(cells) != hist["cell_counts"].shape[0]:
        raise ValueError(f"{inp.hist}: {hist['cell_counts'].shape[0]} cells, but the layer table gives {len(cells)}")
    labels = layer_labels(layers, axis)
    counts = kde.group_cell_counts(labels, cell_of_layer, hist["cell_counts"], groups)
    grid, dens, bw = kde.group_kdes(counts, hist["cell_edges"])
    n = counts.sum(axis=-1)
    table = pd.DataFrame({"group": np.repeat(groups, 9), "coefficient": [f"c{i}" for i in range(9)] * len(groups),
                          "n": n.ravel(), "bandwidth": bw.ravel()})
    results.write_tsv(table, snakemake.output.table)
    fig = plots.ridge_plot(grid, dens, groups, (lo, hi), overlap=snakemake.params.overlap,
                           scale=snakemake.params.scale, title=f"Coefficient distributions per group: {axis.name}")
    plots.save_all(fig, [snakemake.output.svg, snakemake.output.png])
    print(f"axis {axis.name}: {len(groups)} groups, grid of {grid.size} points")


main(snakemake, run)
