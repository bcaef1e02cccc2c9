"""Filter quality tables and figures (analysis.md §9) from the gathered per-layer statistics."""

import pandas as pd

from filterdb import quality, results
from filterdb.axes import Axis, axes_from_config, depth_bin_labels
from filterdb.glue import main


def read_quality_layers(path):
    """``quality/layers.tsv`` back (labels as strings, empty notes as '')."""
    df = pd.read_csv(path, sep="\t", keep_default_na=True)
    df["notes"] = df["notes"].fillna("")
    return df


def run():
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    thresholds = dict(p.thresholds)
    if p.kind == "tables":
        layers = results.read_layers(inp.layers)
        axes = axes_from_config({k: dict(v) for k, v in dict(p.axes).items()})
        table = quality.layer_quality_table(layers, results.load_npz(inp.sums), axes, thresholds)
        quality.write_tsv(table, out.layers)
        models = quality.model_quality_table(table, thresholds)
        quality.write_tsv(models, out.models)
        print(f"{len(table)} layers, {int(table['degenerated'].sum())} degenerated; "
              f"{len(models)} models, {int(models['degenerated'].sum())} flagged")
        return
    table = read_quality_layers(inp.layers)
    if p.kind == "axis":
        axis = Axis.from_config(snakemake.wildcards.axis, dict(p.axis))
        order = depth_bin_labels(axis.bins) if axis.kind == "binned" else None
        groups = quality.group_quality_table(table, axis.name, order, thresholds)
        fig = quality.group_figure(table, axis.name, order, thresholds)
    elif p.kind == "depth":
        labels, order = quality.depth_labels(table, p.depth_bins)
        table = table.assign(depth_bin=labels.to_numpy())
        groups = quality.group_quality_table(table, "depth_bin", order, thresholds)
        fig = quality.depth_figure(table, p.depth_bins, thresholds)
    else:
        raise ValueError(f"unknown quality step {p.kind!r}")
    quality.write_tsv(groups, out.table)
    for path in (out.svg, out.png):
        quality.save_figure(fig, path)
    print(f"{p.kind}: {len(groups)} groups")


main(snakemake, run)
