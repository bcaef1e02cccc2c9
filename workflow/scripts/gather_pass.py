"""Gather the shard parts of one pass, one part at a time (rules gather_sums, gather_range, gather_hist,
gather_cells)."""

from filterdb import jobs
from filterdb.glue import main

main(snakemake, lambda: jobs.gather_pass(snakemake))
