"""Filter quality tables and figures (docs/method.md §9) from the gathered per-layer statistics.

Two steps (``params.kind``): ``tables`` (layer and model tables from ``stats/sums.npz``; no
matplotlib) and ``figures`` (the profile down the conv depth, and each flag over a sweep of its
threshold: a table and a figure each). The quality of each axis's groups is drawn by that axis's
job (``fig_axis.py``).
"""

from filterdb.glue import main


def tables(p, inp, out):
    from filterdb import quality_tables as qt
    from filterdb.axes import axes_from_config
    from filterdb.results import load_npz, read_layers, write_tsv

    thresholds = dict(p.thresholds)
    axes = axes_from_config({k: dict(v) for k, v in dict(p.axes).items()})
    table = qt.layer_quality_table(read_layers(inp.layers), load_npz(inp.sums), axes, thresholds)
    write_tsv(table, out.layers)
    models = qt.model_quality_table(table, thresholds)
    write_tsv(models, out.models)
    print(
        f"{len(table)} layers, {int(table['degenerated'].sum())} degenerated; "
        f"{len(models)} models, {int(models['degenerated'].sum())} flagged"
    )


def depth_profile(p, inp, out):
    from filterdb import plots
    from filterdb import quality_tables as qt
    from filterdb.results import write_tsv

    thresholds = dict(p.thresholds)
    table = qt.read_layer_quality_table(inp.layers)
    labels, order = qt.depth_labels(table, p.depth_bins)
    binned = table.assign(depth_bin=labels.to_numpy())
    g = qt.group_quality_table(binned, "depth_bin", order, thresholds)
    write_tsv(g, out.profile_table)
    plots.save_all(plots.quality_depth_figure(binned, p.depth_bins, thresholds), [out.profile_svg, out.profile_png])
    print(f"depth profile: {len(g)} depth bins")


def sensitivity(p, inp, out):
    from filterdb import plots
    from filterdb import quality_tables as qt
    from filterdb.results import load_npz, write_tsv

    table = qt.read_layer_quality_table(inp.layers)
    q = qt.quality_arrays(load_npz(inp.sums))
    if "eps_grid" not in q:
        raise ValueError(f"{inp.sums}: no quality_eps_grid (made by an older filterdb?): rerun the sums pass")
    s = qt.sensitivity_table(table, q["eps_grid"], q["n_sparse_grid"], p.eps, dict(p.thresholds), dict(p.sweeps))
    write_tsv(s, out.table)
    plots.save_all(plots.quality_sensitivity(s), [out.svg, out.png])
    conf = s[s["configured"]]
    for r in conf.itertuples():
        print(f"{r.parameter} = {r.value:g}: {r.n_layers_flagged} of {r.n_layers} layers, {r.n_models_flagged} models")


def run():
    p = snakemake.params
    if p.kind == "tables":
        tables(p, snakemake.input, snakemake.output)
    elif p.kind == "figures":
        depth_profile(p, snakemake.input, snakemake.output)
        sensitivity(p, snakemake.input, snakemake.output)
    else:
        raise ValueError(f"unknown quality step {p.kind!r}")


main(snakemake, run)
