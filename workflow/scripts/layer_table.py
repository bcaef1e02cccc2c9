from filterdb import results
from filterdb.db import open_db
from filterdb.glue import main


def run():
    db = open_db(snakemake.input.db, required_columns=snakemake.params.columns)
    results.write_layers(db.layers, snakemake.output.layers)
    print(f"{db.path}: dataset '{db.key}', {db.n_rows} rows, {len(db.layers)} layers, "
          f"{db.layers['model_id'].nunique()} models")


main(snakemake, run)
