"""Rule ``layer_table``: the layer table, the layer plan, the fine histogram cells, the coverage."""

from filterdb import jobs
from filterdb.glue import main

main(snakemake, lambda: jobs.layer_table(snakemake))
