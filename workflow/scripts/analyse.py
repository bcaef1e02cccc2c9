"""Rule ``analyse`` (one shard): the layer table, the three passes and their gathers in one job."""

from filterdb import jobs
from filterdb.glue import main

main(snakemake, lambda: jobs.analyse(snakemake))
