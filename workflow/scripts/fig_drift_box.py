"""The box plot "Drift D": one box per axis of its drift matrix's upper-triangle values. With the
input ``uncertainty`` (``uncertainty/axes.tsv``, when uncertainty is enabled with bootstrap
replicates) each box gets the bootstrap percentile interval of the axis's mean D beside it."""

from filterdb.glue import main


def box_intervals(path, level):
    """Axis → (``mean_D_lo``, ``mean_D_hi``) of ``uncertainty/axes.tsv`` and the legend entry."""
    from filterdb import results

    tab = results.read_tsv(path)
    intervals = {str(r.axis): (r.mean_D_lo, r.mean_D_hi) for r in tab.itertuples(index=False)}
    return intervals, f"mean D: {100 * level:g}% bootstrap interval"


def run():
    from filterdb import divergence, plots, results

    out = snakemake.output
    values = {}
    for axis, path in zip(snakemake.params.axes, snakemake.input.drift):
        values[axis] = divergence.upper_triangle(results.read_drift(path)[1])
    intervals = label = None
    if hasattr(snakemake.input, "uncertainty"):
        intervals, label = box_intervals(snakemake.input.uncertainty, snakemake.params.level)
        print(f"box plot: bootstrap intervals of the mean D from {snakemake.input.uncertainty}")
    fig = plots.drift_boxplot(values, intervals=intervals, interval_label=label)
    plots.save_all(fig, [out.svg_box, out.png_box])
    print(f"box plot of {len(values)} axes")


main(snakemake, run)
