"""The figures of no single axis (rule ``fig_global``, one job: one process pays the start-up of
Python, pandas and matplotlib once for all of them):

* the global PCA (every kind of ``params.kinds``: cumulative explained variance, pixel covariance,
  eigenimages) and the density of every configured coefficient pair (c{a}, c{b}) from the gathered
  2-D histograms;
* the figures of all axes together, from the drift tables of every axis: the box plot "Drift D",
  one box per axis of its drift matrix's upper-triangle values (with the input ``uncertainty``,
  ``uncertainty/axes.tsv``, when uncertainty is enabled with bootstrap replicates, each box gets
  the bootstrap percentile interval of the axis's mean D beside it), and the study's headline
  figure: the drift heatmaps of figures.combined.axes side by side on one colour scale,
  categorical labels with their model counts (groups/{axis}.tsv), titled figures.combined.title
  with ``{kernel}`` replaced by the DB's kernel size (from the layer plan);
* with quality enabled (input ``quality``), the quality figures of no axis (docs/method.md §9): the
  profile down the conv depth (table and figure) and each flag over a sweep of its threshold (a
  table and a figure).
"""

from filterdb.glue import main


def pca_figure(p, kind):
    from filterdb import plots

    if kind == "cumulative_variance":
        return plots.cumulative_variance(p.explained_variance_ratio, title=f"Global PCA ({p.n:,} filters)")
    if kind == "covariance":
        return plots.pixel_covariance(p.covariance)
    if kind == "eigenimages":
        return plots.eigenimages(p.components, p.explained_variance_ratio, title=f"Global PCA basis ({p.n:,} filters)")
    raise ValueError(f"unknown PCA figure {kind!r}")


def global_pca(inp, out, params):
    from filterdb import pca, plots, results

    p = pca.global_pca(results.load_npz(inp.sums))
    for kind in params.kinds:
        plots.save_all(pca_figure(p, kind), [getattr(out, f"svg_{kind}"), getattr(out, f"png_{kind}")])
        print(f"{kind}: {p.n} filters")


def densities(inp, out, params):
    import numpy as np

    from filterdb import plots, results

    hist = results.load_npz(inp.hist)
    have = [tuple(int(v) for v in p) for p in hist.get("density_pairs", np.zeros((0, 2), int))]
    for a, b in params.pairs:
        if (a, b) not in have:
            raise ValueError(f"{inp.hist} has no density of (c{a}, c{b}); its pairs: {have}")
        counts = hist["density"][have.index((a, b))]
        fig = plots.density_image(
            counts,
            hist["density_edges"],
            (a, b),
            title=f"Density of (c{a}, c{b}), {int(counts.sum()):,} filters in view",
        )
        plots.save_all(fig, [getattr(out, f"svg_c{a}_c{b}"), getattr(out, f"png_c{a}_c{b}")])
        print(f"density (c{a}, c{b}): {int(counts.sum())} filters in view")


def box_intervals(path, level):
    """Axis → (``mean_D_lo``, ``mean_D_hi``) of ``uncertainty/axes.tsv`` and the legend entry."""
    from filterdb import results

    tab = results.read_tsv(path)
    intervals = {str(r.axis): (r.mean_D_lo, r.mean_D_hi) for r in tab.itertuples(index=False)}
    return intervals, f"mean D: {100 * level:g}% bootstrap interval"


def drift_box(inp, out, params):
    from filterdb import divergence, plots, results

    values = {}
    for axis, path in zip(params.axes, inp.drift):
        values[axis] = divergence.upper_triangle(results.read_drift(path)[1])
    intervals = label = None
    if hasattr(inp, "uncertainty"):
        intervals, label = box_intervals(inp.uncertainty, params.level)
        print(f"box plot: bootstrap intervals of the mean D from {inp.uncertainty}")
    fig = plots.drift_boxplot(values, intervals=intervals, interval_label=label)
    plots.save_all(fig, [out.svg_box, out.png_box])
    print(f"box plot of {len(values)} axes")


def kl_combined(inp, out, params):
    from filterdb import plots, results
    from filterdb.axes import Axis
    from filterdb.shape import FilterShape

    panels = []
    for (name, cfg), drift_path, groups_path in zip(params.combined.items(), inp.combined_drift, inp.groups):
        axis = Axis.from_config(name, dict(cfg))
        groups, d = results.read_drift(drift_path)
        counts = None
        if axis.labels_carry_counts:
            table = results.read_groups(groups_path)
            counts = dict(zip(table["group"].astype(str), table["n_models"]))
        panels.append((axis.title, plots.count_labels(groups, counts), d))
        print(f"{name}: {len(groups)} groups, max D {d.max() if d.size else 0:.4g}")
    kernel = FilterShape.of_width(results.load_plan(inp.plan).width).label
    fig = plots.drift_combined(panels, title=plots.combined_title(params.title, kernel))
    plots.save_all(fig, [out.svg_combined, out.png_combined])


def depth_profile(inp, out, params):
    from filterdb import plots
    from filterdb import quality_tables as qt
    from filterdb.results import write_tsv

    thresholds = dict(params.thresholds)
    table = qt.read_layer_quality_table(inp.quality)
    labels, order = qt.depth_labels(table, params.depth_bins)
    binned = table.assign(depth_bin=labels.to_numpy())
    g = qt.group_quality_table(binned, "depth_bin", order, thresholds)
    write_tsv(g, out.profile_table)
    fig = plots.quality_depth_figure(binned, params.depth_bins, thresholds)
    plots.save_all(fig, [out.profile_svg, out.profile_png])
    print(f"quality depth profile: {len(g)} depth bins")


def sensitivity(inp, out, params):
    from filterdb import plots
    from filterdb import quality_tables as qt
    from filterdb.results import load_npz, write_tsv

    table = qt.read_layer_quality_table(inp.quality)
    q = qt.quality_arrays(load_npz(inp.sums))
    if "eps_grid" not in q:
        raise ValueError(f"{inp.sums}: no quality_eps_grid (made by an older filterdb?): rerun the sums pass")
    s = qt.sensitivity_table(
        table, q["eps_grid"], q["n_sparse_grid"], params.eps, dict(params.thresholds), dict(params.sweeps)
    )
    write_tsv(s, out.sensitivity_table)
    plots.save_all(plots.quality_sensitivity(s), [out.sensitivity_svg, out.sensitivity_png])
    conf = s[s["configured"]]
    for r in conf.itertuples():
        print(f"{r.parameter} = {r.value:g}: {r.n_layers_flagged} of {r.n_layers} layers, {r.n_models_flagged} models")


def run():
    inp, out, params = snakemake.input, snakemake.output, snakemake.params
    global_pca(inp, out, params)
    densities(inp, out, params)
    drift_box(inp, out, params)
    kl_combined(inp, out, params)
    if "quality" in inp.keys():
        depth_profile(inp, out, params)
        sensitivity(inp, out, params)


main(snakemake, run)
