"""Drift heatmap of one axis, in the order of its drift table."""

from filterdb.glue import main


def run():
    from filterdb import plots, results

    out, axis = snakemake.output, snakemake.wildcards.axis
    groups, d = results.read_drift(snakemake.input.drift)
    plots.save_all(plots.drift_heatmap(d, groups, title=f"Drift D: {axis}"), [out.svg, out.png])
    print(f"{axis}: {len(groups)} groups")


main(snakemake, run)
