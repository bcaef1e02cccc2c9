"""Gather the shard parts of one pass, one part at a time (rules gather_sums, gather_range, gather_hist,
gather_cells)."""

from filterdb import results
from filterdb.accumulate import coefficient_range, gather_parts
from filterdb.glue import main


def run():
    out_files = snakemake.output
    plan = results.load_plan(snakemake.input.plan)
    cells = list(snakemake.input.get("cells", [])) or None
    out = {}

    parts = list(snakemake.input.parts)
    if "cell_hist" in out_files.keys():  # gather_cells: only the fine cell histograms

        def gather(tmp):
            gather_parts(parts, plan.n_layers, plan.n_cells, tmp, cell_files=cells)

        results.atomic_write(out_files.cell_hist, gather)  # renamed only once the gather is complete
        print(f"gathered the fine histograms of {plan.n_cells} cells from {len(parts)} parts")
        return
    out.update(gather_parts(parts, plan.n_layers, plan.n_cells, cells=False))
    results.save_npz(out_files.stats, out)
    if "range" in out_files.keys():
        results.write_range(out_files.range, *coefficient_range(out["cmin"], out["cmax"]))
    if "basis" in out_files.keys():
        from filterdb.pca import global_pca

        p = global_pca(out)
        results.write_basis(p, out_files.basis, out_files.mean)
        print(f"PCA over {p.n} filters; cumulative explained variance {p.explained_variance_ratio.cumsum().round(3)}")
    print(f"gathered {len(snakemake.input.parts)} parts, {plan.n_layers} layers: {sorted(out)}")


main(snakemake, run)
