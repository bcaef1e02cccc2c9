"""Subset PCA of every group of every axis, from the per-layer sums (no re-read of filters)."""

from filterdb import plots, results
from filterdb.axes import Axis
from filterdb.glue import main
from filterdb.subsets import subset_pcas


def run():
    inp, out = snakemake.input, snakemake.output
    layers = results.read_layers(inp.layers)
    sums = results.load_npz(inp.sums)
    for (name, cfg), groups_path in zip(snakemake.params.axes.items(), inp.groups):
        axis = Axis.from_config(name, dict(cfg))
        groups = results.read_groups(groups_path)["group"].tolist()
        s = subset_pcas(layers, sums, axis, groups)
        results.write_tsv(s.table, getattr(out, f"table_{name}"))
        fig = plots.eigenimage_grid(
            s.groups, s.components, s.explained_variance_ratio, s.n, title=f"Subset PCA per group: {name}"
        )
        plots.save_all(fig, [getattr(out, f"svg_{name}"), getattr(out, f"png_{name}")])
        print(f"axis {name}: {len(s.groups)} groups, {sum(c is not None for c in s.components)} PCAs")


main(snakemake, run)
