"""Subset PCA of every group of one axis, from the per-layer sums (no re-read of filters)."""

import numpy as np
import pandas as pd

from filterdb import pca, plots, results
from filterdb.axes import Axis, layer_labels
from filterdb.glue import main


def run():
    inp = snakemake.input
    axis = Axis.from_config(snakemake.wildcards.axis, dict(snakemake.params.axis))
    layers = results.read_layers(inp.layers)
    sums = results.load_npz(inp.sums)
    groups = pd.read_csv(inp.groups, sep="\t", keep_default_na=False, dtype={"group": str})["group"].tolist()
    labels = layer_labels(layers, axis).astype(object)
    labels = labels.where(labels.isna(), labels.astype(str)).to_numpy()
    comps, evrs, ns, rows = [], [], [], []
    for g in groups:
        mask = labels == g
        n = int(sums["n"][mask].sum())
        ns.append(n)
        if n < 2:
            comps.append(None)
            evrs.append(None)
            continue
        p = pca.pca_of_layers(sums["n"], sums["sum"], sums["outer"], mask)
        comps.append(p.components)
        evrs.append(p.explained_variance_ratio)
        t = results.basis_table(p)
        t.insert(0, "n_filters", n)
        t.insert(0, "group", g)
        rows.append(t)
    cols = ["group", "n_filters", "component", "explained_variance", "explained_variance_ratio"] + results.PIXELS
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)
    results.write_tsv(table, snakemake.output.table)
    fig = plots.eigenimage_grid(groups, comps, evrs, ns, title=f"Subset PCA per group: {axis.name}")
    plots.save_all(fig, [snakemake.output.svg, snakemake.output.png])
    print(f"axis {axis.name}: {len(groups)} groups, {int(np.sum([c is not None for c in comps]))} PCAs")


main(snakemake, run)
