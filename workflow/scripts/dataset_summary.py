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
    cov = pd.read_csv(snakemake.input.coverage, sep="\t", keep_default_na=False)
    runs, empty = cov[cov["kind"] == "rows in no layer"], cov[cov["kind"] == "empty layer"]
    rows.append(
        pd.DataFrame(
            {  # how the layers cover the filter array (stats/coverage.tsv lists each finding)
                "axis": ["(coverage)", "(coverage)"],
                "group": ["rows in no layer", "empty layers"],
                "n_models": [0, int(layers.loc[layers["n_filters"] == 0, "model_id"].nunique())],
                "n_layers": [0, len(empty)],
                "n_filters": [int(runs["n_rows"].sum()) if len(runs) else 0, 0],
            }
        )
    )
    for axis, path in zip(snakemake.params.axes, snakemake.input.groups):
        g = pd.read_csv(path, sep="\t")
        g.insert(0, "axis", axis)
        rows.append(g)
    table = pd.concat(rows, ignore_index=True)
    results.write_tsv(table, snakemake.output.summary, floats=False)
    print(f"{len(table)} rows")


main(snakemake, run)
