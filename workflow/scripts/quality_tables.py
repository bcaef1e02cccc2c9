"""Filter quality tables (rule ``quality_tables``, docs/method.md §9) from the gathered per-layer
statistics: the layer and model tables from ``stats/sums.npz`` (no matplotlib). The quality figures
of no axis are drawn by ``fig_global.py``, those of each axis's groups by that axis's job
(``fig_axis.py``).
"""

from filterdb.glue import main


def run():
    from filterdb import quality_tables as qt
    from filterdb.axes import axes_from_config
    from filterdb.results import load_npz, read_layers, write_tsv

    p, inp, out = snakemake.params, snakemake.input, snakemake.output
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


main(snakemake, run)
