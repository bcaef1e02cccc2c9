"""Subset PCA of every group of one axis, from the per-layer sums (no re-read of filters)."""

from filterdb.glue import main


def run():
    from filterdb import plots, results
    from filterdb.axes import Axis
    from filterdb.subsets import subset_pcas

    inp, out, name = snakemake.input, snakemake.output, snakemake.wildcards.axis
    axis = Axis.from_config(name, dict(snakemake.params.axis))
    groups = results.read_groups(inp.groups)["group"].tolist()
    s = subset_pcas(results.read_layers(inp.layers), results.load_npz(inp.sums), axis, groups)
    results.write_tsv(s.table, out.table)
    fig = plots.eigenimage_grid(
        s.groups, s.components, s.explained_variance_ratio, s.n, title=f"Subset PCA per group: {name}"
    )
    plots.save_all(fig, [out.svg, out.png])
    print(f"axis {name}: {len(s.groups)} groups, {sum(c is not None for c in s.components)} PCAs")


main(snakemake, run)
