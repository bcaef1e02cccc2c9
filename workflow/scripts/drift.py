"""Rule ``drift``: the drift matrix and group table of one axis."""

from filterdb import jobs
from filterdb.glue import main

main(snakemake, lambda: jobs.drift(snakemake))
