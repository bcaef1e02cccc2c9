"""Drift heatmap of one axis, in the order of its drift table."""

import pandas as pd

from filterdb import plots
from filterdb.glue import main


def run():
    t = pd.read_csv(snakemake.input.drift, sep="\t", keep_default_na=False, dtype={"group": str})
    groups = t["group"].astype(str).tolist()
    d = t.iloc[:, 1:].to_numpy(float)
    fig = plots.drift_heatmap(d, groups, title=f"Drift D: {snakemake.wildcards.axis}")
    plots.save_all(fig, [snakemake.output.svg, snakemake.output.png])
    print(f"{len(groups)} groups")


main(snakemake, run)
