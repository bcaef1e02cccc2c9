"""One streamed pass over the layers of one shard (rules shard_sums, shard_range, shard_hist)."""

from filterdb import jobs, results
from filterdb.accumulate import TOTALS, basis_from_parts, range_from_parts, run_shard
from filterdb.glue import main
from filterdb.histogram import uniform_edges
from filterdb.stream import parse_scatteritem


def run():
    inp, p = snakemake.input, snakemake.params
    shard, shards = parse_scatteritem(snakemake.wildcards.scatteritem)
    plan = results.load_plan(inp.plan)
    settings = jobs.pass_settings(
        p.stream, p.quality, p.fine_bins, p.density, snakemake.threads, inp.db, p.get("fixed_range")
    )
    kw = {}
    if p.kind != "sums":
        # straight from the previous passes' parts (exact sums, min/max): no wait for the gathers
        g = basis_from_parts(list(inp.sums))
        kw["basis"] = (g.mean, g.components)
    if p.kind == "hist":
        kw["edges"] = uniform_edges(*range_from_parts(list(inp.ranges)), p.bins)
    out = run_shard(
        inp.db,
        plan.key,
        plan,
        p.kind,
        shard=shard,
        shards=shards,
        settings=settings,
        layer_names=lambda g: results.describe_layer(inp.layers, g),
        cell_sink=snakemake.output.get("cells"),
        **kw,
    )
    results.save_npz(snakemake.output.part, out)
    if "totals" in snakemake.output.keys():  # the exact totals the next passes need (kept: small)
        results.save_npz(snakemake.output.totals, {k: v for k, v in out.items() if k.startswith(TOTALS)})


main(snakemake, run)
