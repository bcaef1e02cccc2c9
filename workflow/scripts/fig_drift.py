"""Drift figures: the heatmap of every axis (in the order of its drift table) and the box plot
"Drift D" (one box per axis of its drift matrix's upper-triangle values)."""

from filterdb import divergence, plots, results
from filterdb.glue import main


def run():
    out = snakemake.output
    values = {}
    for axis, path in zip(snakemake.params.axes, snakemake.input.drift):
        groups, d = results.read_drift(path)
        fig = plots.drift_heatmap(d, groups, title=f"Drift D: {axis}")
        plots.save_all(fig, [getattr(out, f"svg_{axis}"), getattr(out, f"png_{axis}")])
        values[axis] = divergence.upper_triangle(d)
        print(f"{axis}: {len(groups)} groups")
    plots.save_all(plots.drift_boxplot(values), [out.svg_box, out.png_box])


main(snakemake, run)
