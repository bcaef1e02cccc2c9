"""Rule ``analyse`` (one shard): layer table, the three passes, their gathers and the drift tables
in one job."""

from filterdb import jobs
from filterdb.glue import main


def run():
    jobs.analyse(snakemake.input, snakemake.output, snakemake.params, snakemake.threads)


main(snakemake, run)
