"""The figures of all axes together (rule ``fig_all_axes``, one job: both read the drift tables of
every axis, and one process pays the start-up of Python, pandas and matplotlib once):

* the box plot "Drift D": one box per axis of its drift matrix's upper-triangle values. With the
  input ``uncertainty`` (``uncertainty/axes.tsv``, when uncertainty is enabled with bootstrap
  replicates) each box gets the bootstrap percentile interval of the axis's mean D beside it;
* the study's headline figure: the drift heatmaps of figures.combined.axes side by side, on one
  colour scale, categorical labels with their model counts (groups/{axis}.tsv), titled
  figures.combined.title with ``{kernel}`` replaced by the DB's kernel size (from the layer plan)."""

from filterdb.glue import main


def box_intervals(path, level):
    """Axis → (``mean_D_lo``, ``mean_D_hi``) of ``uncertainty/axes.tsv`` and the legend entry."""
    from filterdb import results

    tab = results.read_tsv(path)
    intervals = {str(r.axis): (r.mean_D_lo, r.mean_D_hi) for r in tab.itertuples(index=False)}
    return intervals, f"mean D: {100 * level:g}% bootstrap interval"


def drift_box(inp, out, params):
    from filterdb import divergence, plots, results

    values = {}
    for axis, path in zip(params.axes, inp.drift):
        values[axis] = divergence.upper_triangle(results.read_drift(path)[1])
    intervals = label = None
    if hasattr(inp, "uncertainty"):
        intervals, label = box_intervals(inp.uncertainty, params.level)
        print(f"box plot: bootstrap intervals of the mean D from {inp.uncertainty}")
    fig = plots.drift_boxplot(values, intervals=intervals, interval_label=label)
    plots.save_all(fig, [out.svg_box, out.png_box])
    print(f"box plot of {len(values)} axes")


def kl_combined(inp, out, params):
    from filterdb import plots, results
    from filterdb.axes import Axis
    from filterdb.shape import FilterShape

    panels = []
    for (name, cfg), drift_path, groups_path in zip(params.combined.items(), inp.combined_drift, inp.groups):
        axis = Axis.from_config(name, dict(cfg))
        groups, d = results.read_drift(drift_path)
        counts = None
        if axis.labels_carry_counts:
            table = results.read_groups(groups_path)
            counts = dict(zip(table["group"].astype(str), table["n_models"]))
        panels.append((axis.title, plots.count_labels(groups, counts), d))
        print(f"{name}: {len(groups)} groups, max D {d.max() if d.size else 0:.4g}")
    kernel = FilterShape.of_width(results.load_plan(inp.plan).width).label
    fig = plots.drift_combined(panels, title=plots.combined_title(params.title, kernel))
    plots.save_all(fig, [out.svg, out.png])


def run():
    inp, out, params = snakemake.input, snakemake.output, snakemake.params
    drift_box(inp, out, params)
    kl_combined(inp, out, params)


main(snakemake, run)
