from filterdb import pipeline, results, stats
from filterdb.db import filter_shape
from filterdb.glue import main
from filterdb.histogram import uniform_edges


def run():
    inp, p = snakemake.input, snakemake.params
    shard, shards = stats.parse_scatteritem(snakemake.wildcards.scatteritem)
    layers = results.read_layers(inp.layers)
    key, _ = filter_shape(inp.db)
    kw = {}
    if p.kind != "sums":
        mean, comps, _ = results.read_basis(inp.basis, inp.mean)
        kw["basis"] = (mean, comps)
    else:
        kw["quality"] = p.get("quality")
    if p.kind == "hist":
        lo, hi = results.read_range(inp.range)
        kw["edges"] = uniform_edges(lo, hi, p.bins)
        cell_of_layer, cells = pipeline.cell_table(layers, p.depth_bins)
        kw["cells"] = (cell_of_layer, len(cells))
        kw["fine_bins"] = p.fine_bins
        d = dict(p.density)
        kw["density"] = {"pairs": d["pairs"], "bins": d["bins"], "extent": tuple(d["extent"])} if d.get("pairs") else None
    out = pipeline.run_shard(inp.db, key, layers, p.kind, shard, shards,
                             block_rows=p.stream["block_rows"], **kw)
    results.save_npz(snakemake.output.part, out)


main(snakemake, run)
