import sys

from filterdb import pipeline, results
from filterdb.db import open_db
from filterdb.glue import main


def run():
    db = open_db(snakemake.input.db, required_columns=snakemake.params.columns)
    if db.dtype != "float32":
        print(f"note: {db.path}: dataset '{db.key}' is {db.dtype}, converted to float32 as it is read", file=sys.stderr)
    plan, cells = pipeline.make_plan(db.layers, snakemake.params.depth_bins, db.key)
    results.write_layers(db.layers, snakemake.output.layers)
    results.save_npz(snakemake.output.plan, plan.arrays())
    results.write_tsv(cells, snakemake.output.cells, floats=False)
    print(
        f"{db.path}: dataset '{db.key}', {db.n_rows} rows, {len(db.layers)} layers, "
        f"{db.layers['model_id'].nunique()} models, {len(cells)} fine-histogram cells"
    )


main(snakemake, run)
