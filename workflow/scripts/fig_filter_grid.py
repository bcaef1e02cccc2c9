"""Filter grids: example filters of every group of each configured axis and down the depth of one
model, drawn as tiles, and the table of the rows each grid shows (filterdb.grids). Log: what each
grid shows and how its rows were read."""

import sys

from filterdb import grids, plots, results
from filterdb.axes import Axis
from filterdb.db import open_db
from filterdb.glue import main


def run():
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    settings = grids.GridSettings.from_config(p.grids, p.precision)
    layers = results.read_layers(inp.layers)
    axes = {
        name: (Axis.from_config(name, dict(cfg)), results.read_groups(path))
        for (name, cfg), path in zip(p.axes.items(), inp.groups)
    }
    db = open_db(inp.db, checks=dict(p.checks))
    by_axis, model = grids.filter_grids(db, layers, axes, settings)
    for name, g in [*by_axis.items(), (grids.MODEL_GRID, model)]:
        results.write_tsv(g.table, getattr(out, f"table_{name}"))
        columns = settings.per_layer if name == grids.MODEL_GRID else settings.per_group
        fig = plots.filter_grid(g.tiles, g.labels(), columns=columns, title=g.selection.title)
        plots.save_all(fig, [getattr(out, f"svg_{name}"), getattr(out, f"png_{name}")])
        print(f"{name}: {len(g.selection.groups)} groups, {len(g.table)} filters shown", file=sys.stderr)
        empty = [s for s, r in zip(g.selection.groups, g.selection.rows) if not r.size]
        if empty:
            print(f"{name}: no filter of the layer table in group(s) {', '.join(empty)}", file=sys.stderr)
    print(
        f"{sum(len(g.table) for g in [*by_axis.values(), model])} filter rows read by row from {db.path} "
        f"({db.dtype}, {db.n_rows:,} rows), scaled in {settings.precision}; seed {settings.seed}",
        file=sys.stderr,
    )


main(snakemake, run)
