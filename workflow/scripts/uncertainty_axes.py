"""Rule ``uncertainty_axes``: the axis tests of every axis (one row each, as each axis's job wrote
it) in one table, in the order of the axes mapping."""

from filterdb import jobs
from filterdb.glue import main

main(snakemake, lambda: jobs.concat_tsv(list(snakemake.input.rows), snakemake.output.axes))
