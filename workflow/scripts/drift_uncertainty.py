"""Rule ``drift_uncertainty``: bootstrap intervals and permutation null of one axis's drift, and the
axis's row of the axis tests (gathered by rule ``uncertainty_axes``)."""

import time

from filterdb.glue import main


def run():
    import pandas as pd

    from filterdb import plots, results, uncertainty
    from filterdb.axes import Axis

    inp, out, params, name = snakemake.input, snakemake.output, snakemake.params, snakemake.wildcards.axis
    layers = results.read_layers(inp.layers)
    hist = results.load_npz(inp.hist)
    evr = results.read_evr(inp.basis)
    opt = dict(params.options)
    t = time.perf_counter()
    axis = Axis.from_config(name, dict(params.axis))
    r = uncertainty.uncertainty_of_axis(
        layers,
        hist["counts"],
        hist["edges"],
        evr,
        axis,
        params.eps,
        params.floor,
        bootstrap_replicates=opt["bootstrap"],
        permutations=opt["permutations"],
        level=opt["level"],
        correction=opt["correction"],
        alpha=opt["alpha"],
        seed=opt["seed"],
        equal_size=opt["equal_size"],
    )
    results.write_tsv(r.ci, out.ci)
    results.write_tsv(r.null, out.null)
    plots.save_all(plots.significance_heatmap(r, title=f"Drift D: {name}"), [out.fig])
    pairs = r.null[r.null["group_a"] != uncertainty.AXIS_ROW]
    ax = r.null.iloc[-1]
    row = {
        "axis": name,
        "n_groups": len(r.groups),
        "n_units": int(ax["n_a"]),
        "mean_D": ax["D"],
        "mean_D_lo": r.mean_ci[0],
        "mean_D_hi": r.mean_ci[1],
        "level": opt["level"],
        "null_mean": ax["null_mean"],
        "mean_D_debiased": ax["D_debiased"],
        "p": ax["p"],
        "significant": bool(ax["significant"]),
        "pairs": len(pairs),
        "pairs_significant": int(pairs["significant"].sum()),
        "B": opt["bootstrap"],
        "P": opt["permutations"],
        "correction": opt["correction"],
    }
    results.write_tsv(pd.DataFrame([row]), out.row)
    print(f"axis {name}: {len(pairs)} pairs, axis p = {ax['p']:.3g} ({time.perf_counter() - t:.1f} s)")


main(snakemake, run)
