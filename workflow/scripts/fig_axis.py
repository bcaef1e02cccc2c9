"""The figures of one axis (rule ``fig_axis``): the subset PCA eigenimages of its groups (from the
per-layer sums, no re-read of filters) and their table, the drift heatmap (in the order of the
drift table), with fine histograms the ridge plot (Gaussian KDEs, Silverman, of c0..c8 per
group) and its bandwidths, and with the layer quality table the quality of its groups (table and
box plots, docs/method.md §9)."""

from filterdb.glue import main


def subset_eigenimages(axis, layers, groups, inp, out):
    from filterdb import plots, results
    from filterdb.subsets import subset_pcas

    s = subset_pcas(layers, results.load_npz(inp.sums), axis, groups)
    results.write_tsv(s.table, out.subsets)
    fig = plots.eigenimage_grid(
        s.groups, s.components, s.explained_variance_ratio, s.n, title=f"Subset PCA per group: {axis.name}"
    )
    plots.save_all(fig, [out.eigenimages_svg, out.eigenimages_png])
    print(f"eigenimages: {len(s.groups)} groups, {sum(c is not None for c in s.components)} PCAs")


def drift_heatmap(axis, inp, out):
    from filterdb import plots, results

    groups, d = results.read_drift(inp.drift)
    plots.save_all(plots.drift_heatmap(d, groups, title=f"Drift D: {axis.name}"), [out.drift_svg, out.drift_png])
    print(f"drift heatmap: {len(groups)} groups")


def ridge(axis, layers, groups, inp, out, params):
    from filterdb import plots, results
    from filterdb.subsets import group_ridges

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
    r = group_ridges(layers, axis, cell_of_layer, cell_counts, hist["cell_edges"], groups)
    results.write_tsv(r.table, out.ridge)
    fig = plots.ridge_plot(
        r.grid,
        r.density,
        r.groups,
        (lo, hi),
        overlap=params.overlap,
        scale=params.scale,
        title=f"Coefficient distributions per group: {axis.name}",
    )
    plots.save_all(fig, [out.ridge_svg, out.ridge_png])
    print(f"ridge plot: {len(r.groups)} groups, grid of {r.grid.size} points")


def quality(axis, inp, out, params):
    from filterdb import plots, results
    from filterdb import quality_tables as qt
    from filterdb.axes import depth_bin_labels

    thresholds = dict(params.thresholds)
    table = qt.read_layer_quality_table(inp.quality)
    order = depth_bin_labels(axis.bins) if axis.kind == "binned" else None
    g = qt.group_quality_table(table, axis.name, order, thresholds)
    results.write_tsv(g, out.quality_table)
    fig = plots.quality_group_figure(table, axis.name, order, thresholds)
    plots.save_all(fig, [out.quality_svg, out.quality_png])
    print(f"quality: {len(g)} groups")


def run():
    from filterdb import results
    from filterdb.axes import Axis

    inp, out, params = snakemake.input, snakemake.output, snakemake.params
    axis = Axis.from_config(snakemake.wildcards.axis, dict(params.axis))
    layers = results.read_layers(inp.layers)
    groups = results.read_groups(inp.groups)["group"].tolist()
    subset_eigenimages(axis, layers, groups, inp, out)
    drift_heatmap(axis, inp, out)
    if "ridge" in out.keys():
        ridge(axis, layers, groups, inp, out, params)
    if "quality_table" in out.keys():
        quality(axis, inp, out, params)


main(snakemake, run)
