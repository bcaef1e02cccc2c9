# Figures of the study (docs/method.md §6-§8); SVG (a report item) and PNG.
# The figures of one axis are a job of their own (rule fig_axis, {axis}), in the cluster group
# "axis" with that axis's drift tables; the figures of no single axis (global PCA, densities,
# the figures of all axes together, the quality profile and sensitivity: rule fig_global) are
# one job. Target list: figure_targets() in common.smk; PCA_KINDS
# and density_pairs() are defined there.

PCA_LABELS = {
    "cumulative_variance": "cumulative explained variance",
    "covariance": "pixel covariance",
    "eigenimages": "eigenimages",
}
README_FIGURES = [
    "kl_combined.png",
    "filter_grid_visual_category.png",
    "pca_eigenimages.png",
    "pca_cumulative_variance.png",
    "drift_task.png",
    "drift_box.png",
    "ridge_task.png",
    "density_c0_c1.png",
    "pca_covariance.png",
    "eigenimages_task.png",
    "quality_depth_profile.png",
]


# Figures of no axis or of all axes read only the gathered tables (seconds each): run on the
# submitting node, not as cluster jobs.
localrules:
    fig_global,
    readme_figures,


# One job per axis for that axis's figures (a job per figure would pay the start-up of Python,
# pandas and matplotlib once per figure: ~1.5 s of CPU each).
rule fig_axis:
    input:
        **axis_figure_inputs(),
    output:
        **axis_figure_outputs(),
    log:
        str(P.log("figures/axis_{axis}")),
    benchmark:
        str(P.benchmark("figures/axis_{axis}"))
    # the longest jobs after the passes (seconds of drawing each): started first, so that the
    # short jobs fill the cores at the end
    priority: 3
    group:
        "axis"
    conda:
        "../envs/filterdb.yaml"
    params:
        axis=lambda wc: axis_config(wc.axis),
        overlap=config["figures"]["ridge_overlap"],
        scale=config["figures"]["ridge_scale"],
        thresholds=quality_flag_settings(),
    script:
        "../scripts/fig_axis.py"


# The figures of no single axis, one job (one process pays the start-up of Python, pandas and
# matplotlib once for all of them; each reads only gathered tables):
# - the global PCA (cumulative explained variance, pixel covariance, eigenimages) from the sums, and
#   the 2-D densities of the configured coefficient pairs from the histograms;
# - the figures of all axes together (both read the drift tables of every axis): the drift box
#   plot and the study's headline figure;
# - the quality figures of no axis (docs/method.md §9): the profile down the conv depth (table and
#   figure) and each flag over a sweep of its threshold (the eps sweep from the sparse counts of
#   the sums pass, stats/sums.npz quality_n_sparse_grid, every other from the layer table). The
#   quality of each axis's groups is drawn by that axis's job (rule fig_axis).
rule fig_global:
    input:
        **global_quality_inputs(),
        **drift_box_uncertainty(),
        sums=str(P.sums),
        hist=str(P.hist),
        drift=per_axis(P.drift("{axis}")),
        combined_drift=per_axis(P.drift("{axis}"), combined_axes()),
        groups=per_axis(P.groups("{axis}"), combined_axes()),
        plan=str(P.plan),
    output:
        **{
            f"svg_{kind}": report(
                str(P.figure(f"pca_{kind}")),
                caption=f"../report/pca_{kind}.rst",
                category="PCA",
                subcategory="Global PCA",
                labels={"figure": PCA_LABELS[kind]},
            )
            for kind in PCA_KINDS
        },
        **{f"png_{kind}": str(P.figure(f"pca_{kind}", "png")) for kind in PCA_KINDS},
        **{
            f"svg_c{a}_c{b}": report(
                str(P.figure(f"density_c{a}_c{b}")),
                caption="../report/density.rst",
                category="Density",
                labels={"pair": f"(c{a}, c{b})", "figure": "density"},
            )
            for a, b in density_pairs()
        },
        **{
            f"png_c{a}_c{b}": str(P.figure(f"density_c{a}_c{b}", "png"))
            for a, b in density_pairs()
        },
        **global_quality_outputs(),
        svg_box=report(
            str(P.figure("drift_box")),
            caption="../report/drift_box.rst",
            category="Drift",
            subcategory="All axes",
            labels={"axis": "all", "figure": "box plot"},
        ),
        png_box=str(P.figure("drift_box", "png")),
        svg_combined=report(
            str(P.figure("kl_combined")),
            caption="../report/kl_combined.rst",
            category="Drift",
            subcategory="All axes",
            labels={"axis": "+".join(combined_axes()), "figure": "headline figure"},
        ),
        png_combined=str(P.figure("kl_combined", "png")),
    log:
        str(P.log("figures/global")),
    benchmark:
        str(P.benchmark("figures/global"))
    priority: 3  # seconds of drawing, as fig_axis: started among the first after the passes
    conda:
        "../envs/filterdb.yaml"
    params:
        kinds=PCA_KINDS,
        pairs=density_pairs(),
        axes=AXES,
        level=config["uncertainty"]["level"],
        combined=axis_configs(combined_axes()),
        # a function: Snakemake formats plain strings with the wildcards, and the title's {kernel}
        # is filled in by the script
        title=lambda wildcards: config["figures"]["combined"]["title"],
        depth_bins=S.depth_bins,
        eps=config["quality"]["eps"],
        thresholds=quality_flag_settings(),
        sweeps=config["quality"]["sensitivity"],
    script:
        "../scripts/fig_global.py"


rule readme_figures:
    input:
        [str(P.figures / name) for name in README_FIGURES],
    output:
        [f"docs/figures/{name}" for name in README_FIGURES],
    log:
        str(P.log("figures/readme_figures")),
    conda:
        "../envs/filterdb.yaml"
    params:
        width=900,
    script:
        "../scripts/fig_readme.py"
