"""One streamed pass over the layers of one shard (rules shard_sums, shard_range, shard_hist)."""

from filterdb import jobs
from filterdb.glue import main

main(snakemake, lambda: jobs.shard_pass(snakemake))
