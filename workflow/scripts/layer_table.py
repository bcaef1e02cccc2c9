"""Rule ``layer_table``: the layer table, the layer plan and the fine histogram cells."""

from filterdb import jobs
from filterdb.glue import main


def run():
    out, p = snakemake.output, snakemake.params
    jobs.layer_table(
        snakemake.input.db, p.columns, p.depth_bins, out.layers, out.plan, out.cells, out.coverage, p.checks
    )


main(snakemake, run)
