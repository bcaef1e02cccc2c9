"""Ridge plot of every axis: Gaussian KDEs (Silverman) of c0..c8 per group, from fine histograms."""

from filterdb import plots, results
from filterdb.axes import Axis
from filterdb.glue import main
from filterdb.subsets import group_ridges


def run():
    inp, out, params = snakemake.input, snakemake.output, snakemake.params
    from filterdb.pipeline import cell_table  # TODO: a lower module (pipeline pulls h5py)

    layers = results.read_layers(inp.layers)
    hist = results.load_npz(inp.hist)
    if "cell_counts" not in hist:
        raise ValueError(f"{inp.hist} has no fine histograms (histogram.fine_bins is 0): no ridge plots")
    lo, hi = results.read_range(inp.range)
    cell_of_layer, cells = cell_table(layers, params.depth_bins)
    if len(cells) != hist["cell_counts"].shape[0]:
        raise ValueError(f"{inp.hist}: {hist['cell_counts'].shape[0]} cells, but the layer table gives {len(cells)}")
    for (name, cfg), groups_path in zip(params.axes.items(), inp.groups):
        axis = Axis.from_config(name, dict(cfg))
        groups = results.read_groups(groups_path)["group"].tolist()
        r = group_ridges(layers, axis, cell_of_layer, hist["cell_counts"], hist["cell_edges"], groups)
        results.write_tsv(r.table, getattr(out, f"table_{name}"))
        fig = plots.ridge_plot(r.grid, r.density, r.groups, (lo, hi), overlap=params.overlap, scale=params.scale,
                               title=f"Coefficient distributions per group: {name}")
        plots.save_all(fig, [getattr(out, f"svg_{name}"), getattr(out, f"png_{name}")])
        print(f"axis {name}: {len(r.groups)} groups, grid of {r.grid.size} points")


main(snakemake, run)
