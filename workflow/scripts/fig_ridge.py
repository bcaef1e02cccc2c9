"""Ridge plot of one axis: Gaussian KDEs (Silverman) of c0..c8 per group, from fine histograms."""

import numpy as np
import pandas as pd

from filterdb import kde, plots, results
from filterdb.axes import Axis, layer_labels
from filterdb.glue import main


def run():
    inp = snakemake.input
    axis = Axis.from_config(snakemake.wildcards.axis, dict(snakemake.params.axis))
    layers = results.read_layers(inp.layers)
    hist = results.load_npz(inp.hist)
    if "cell_edges" not in hist:
        raise ValueError(f"{inp.hist} has no fine histograms (histogram.fine_bins is 0): no ridge plots")
    cell_counts = results.open_cell_hist(inp.cell_hist)
    lo, hi = results.read_range(inp.range)
    groups = results.read_groups(inp.groups)["group"].tolist()
    cell_of_layer = results.load_plan(inp.plan).cell
    if cell_of_layer.size and cell_of_layer.max() >= cell_counts.shape[0]:
        raise ValueError(f"{inp.cell_hist}: {cell_counts.shape[0]} cells, but the layer plan needs {cell_of_layer.max() + 1}")
    labels = layer_labels(layers, axis)
    counts = kde.group_cell_counts(labels, cell_of_layer, cell_counts, groups)
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
