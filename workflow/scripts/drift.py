"""Rule ``drift``: every axis's drift matrix and group table, in one job."""

from filterdb import jobs, results
from filterdb.glue import main


def run():
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    layers = results.read_layers(inp.layers)
    jobs.drift_tables(
        layers,
        results.load_npz(inp.hist),
        results.read_evr(inp.basis),
        p.axes,
        p.eps,
        p.floor,
        lambda kind, axis: out[f"{kind}_{axis}"],
    )


main(snakemake, run)
