"""Ridge plot of one axis: Gaussian KDEs (Silverman) of c0..c8 per group, from fine histograms."""

from filterdb.glue import main


def run():
    from filterdb import plots, results
    from filterdb.axes import Axis
    from filterdb.subsets import group_ridges

    inp, out, params, name = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards.axis
    layers = results.read_layers(inp.layers)
    hist = results.load_npz(inp.hist)
    if "cell_edges" not in hist:
        raise ValueError(f"{inp.hist} has no fine histograms (histogram.fine_bins is 0): no ridge plots")
    cell_counts = results.open_cell_hist(inp.cell_hist)
    lo, hi = results.read_range(inp.range)
    cell_of_layer = results.load_plan(inp.plan).cell
    if cell_of_layer.size and cell_of_layer.max() >= cell_counts.shape[0]:
        raise ValueError(
            f"{inp.cell_hist}: {cell_counts.shape[0]} cells, but the layer plan needs {cell_of_layer.max() + 1}"
        )
    axis = Axis.from_config(name, dict(params.axis))
    groups = results.read_groups(inp.groups)["group"].tolist()
    r = group_ridges(layers, axis, cell_of_layer, cell_counts, hist["cell_edges"], groups)
    results.write_tsv(r.table, out.table)
    fig = plots.ridge_plot(
        r.grid,
        r.density,
        r.groups,
        (lo, hi),
        overlap=params.overlap,
        scale=params.scale,
        title=f"Coefficient distributions per group: {name}",
    )
    plots.save_all(fig, [out.svg, out.png])
    print(f"axis {name}: {len(r.groups)} groups, grid of {r.grid.size} points")


main(snakemake, run)
