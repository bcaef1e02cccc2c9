"""dataset/models.tsv: one row per model of the DB, from its meta table alone (filterdb.catalog)."""

from filterdb import catalog, results
from filterdb.db import open_db
from filterdb.glue import main


def run():
    table = catalog.models_table(open_db(snakemake.input.db).layers)
    results.write_tsv(table, snakemake.output.models, floats=False)
    print(f"{len(table)} models, {int(table['filters_3x3'].sum())} filters")


main(snakemake, run)
