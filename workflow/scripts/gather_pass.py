"""Gather the shard parts of one pass, one part at a time (rules gather_sums, gather_range, gather_hist)."""

from filterdb import results
from filterdb.accumulate import coefficient_range, gather_parts
from filterdb.glue import main


def run():
    out_files = snakemake.output
    plan = results.load_plan(snakemake.input.plan)
    cells = list(snakemake.input.get("cells", [])) or None
    out = {}

    def gather(cell_hist_tmp):
        out.update(
            gather_parts(list(snakemake.input.parts), plan.n_layers, plan.n_cells, cell_hist_tmp, cell_files=cells)
        )
        results.save_npz(out_files.stats, out)

    if "cell_hist" in out_files.keys():
        results.atomic_write(out_files.cell_hist, gather)  # renamed only once the gather is complete
    else:
        gather(None)
    if "range" in out_files.keys():
        results.write_range(out_files.range, *coefficient_range(out["cmin"], out["cmax"]))
    if "basis" in out_files.keys():
        from filterdb.pca import global_pca

        p = global_pca(out)
        results.write_basis(p, out_files.basis, out_files.mean)
        print(f"PCA over {p.n} filters; cumulative explained variance {p.explained_variance_ratio.cumsum().round(3)}")
    print(f"gathered {len(snakemake.input.parts)} parts, {plan.n_layers} layers: {sorted(out)}")


main(snakemake, run)
