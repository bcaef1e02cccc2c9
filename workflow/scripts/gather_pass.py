"""Gather the shard parts of one pass, one part at a time (rules gather_sums, gather_range, gather_hist,
gather_cells)."""

from filterdb import jobs, results
from filterdb.accumulate import gather_parts
from filterdb.glue import main


def run():
    out_files = snakemake.output
    plan = results.load_plan(snakemake.input.plan)
    cells = list(snakemake.input.get("cells", [])) or None

    parts = list(snakemake.input.parts)
    if "cell_hist" in out_files.keys():  # gather_cells: only the fine cell histograms

        def gather(tmp):
            gather_parts(parts, plan.n_layers, plan.n_cells, tmp, cell_files=cells)

        results.atomic_write(out_files.cell_hist, gather)  # renamed only once the gather is complete
        print(f"gathered the fine histograms of {plan.n_cells} cells from {len(parts)} parts")
        return
    g = gather_parts(parts, plan.n_layers, plan.n_cells, cells=False)
    jobs.write_gathered(g, out_files.stats, out_files.get("basis"), out_files.get("mean"), out_files.get("range"))
    print(f"gathered {len(parts)} parts, {plan.n_layers} layers: {sorted(g)}")


main(snakemake, run)
