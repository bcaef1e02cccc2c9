"""Box plot "Drift D": one box per axis of its drift matrix's upper-triangle values."""

import pandas as pd

from filterdb import divergence, plots
from filterdb.glue import main


def run():
    values = {}
    for axis, path in zip(snakemake.params.axes, snakemake.input.drift):
        d = pd.read_csv(path, sep="\t", keep_default_na=False, dtype={"group": str}).iloc[:, 1:].to_numpy(float)
        values[axis] = divergence.upper_triangle(d)
    fig = plots.drift_boxplot(values)
    plots.save_all(fig, [snakemake.output.svg, snakemake.output.png])
    print({k: len(v) for k, v in values.items()})


main(snakemake, run)
