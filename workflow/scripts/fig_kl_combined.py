"""The study's headline figure: the drift heatmaps of figures.combined.axes side by side, on one
colour scale, categorical labels with their model counts (groups/{axis}.tsv)."""

from filterdb import plots, results
from filterdb.axes import Axis
from filterdb.glue import main


def run():
    inp, out, params = snakemake.input, snakemake.output, snakemake.params
    panels = []
    for (name, cfg), drift_path, groups_path in zip(params.axes.items(), inp.drift, inp.groups):
        axis = Axis.from_config(name, dict(cfg))
        groups, d = results.read_drift(drift_path)
        counts = None
        if axis.labels_carry_counts:
            table = results.read_groups(groups_path)
            counts = dict(zip(table["group"].astype(str), table["n_models"]))
        panels.append((axis.title, plots.count_labels(groups, counts), d))
        print(f"{name}: {len(groups)} groups, max D {d.max() if d.size else 0:.4g}")
    fig = plots.drift_combined(panels, title=params.title)
    plots.save_all(fig, [out.svg, out.png])


main(snakemake, run)
