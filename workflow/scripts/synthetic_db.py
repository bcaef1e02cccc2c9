from filterdb.glue import main
from filterdb.synth import write_synth_db


def run():
    p = snakemake.params
    layers = write_synth_db(snakemake.output.db, layout=p.layout, seed=p.seed, n_models=p.models)
    print(f"wrote {len(layers)} synthetic layers, {int(layers['row_end'].max())} filters")


main(snakemake, run)
