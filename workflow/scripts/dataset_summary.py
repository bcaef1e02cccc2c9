import pandas as pd

from filterdb import results
from filterdb.glue import main


def run():
    layers = results.read_layers(snakemake.input.layers)
    rows = [
        pd.DataFrame(
            {
                "axis": ["(all)"],
                "group": ["(all)"],
                "n_models": [layers["model_id"].nunique()],
                "n_layers": [len(layers)],
                "n_filters": [int(layers["n_filters"].sum())],
            }
        )
    ]
    for axis, path in zip(snakemake.params.axes, snakemake.input.groups):
        g = pd.read_csv(path, sep="\t")
        g.insert(0, "axis", axis)
        rows.append(g)
    table = pd.concat(rows, ignore_index=True)
    results.write_tsv(table, snakemake.output.summary, floats=False)
    print(f"{len(table)} rows")


main(snakemake, run)
