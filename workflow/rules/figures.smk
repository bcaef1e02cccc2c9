# Figures of the study (analysis.md §6-§8), each a report item; SVG (in the report) and PNG.
# Target list: FIGURE_TARGETS (added to `rule all` through all_targets() in common.smk).

FIGURES = f"{R}/figures"
DENSITY_PAIRS = [tuple(int(v) for v in p) for p in config["density"]["pairs"]]
FIGURE_OPTIONS = {"ridge_overlap": 0.6, "ridge_scale": "column"} | dict(
    config.get("figures", {})
)

FIGURE_TARGETS = (
    expand(
        f"{FIGURES}/pca_{{kind}}.{{ext}}",
        kind=["cumulative_variance", "covariance", "eigenimages"],
        ext=["svg", "png"],
    )
    + expand(
        f"{FIGURES}/{{fig}}_{{axis}}.{{ext}}",
        fig=["eigenimages", "drift"],
        axis=AXES,
        ext=["svg", "png"],
    )
    + expand(f"{R}/pca/subsets/{{axis}}.tsv", axis=AXES)
    + expand(f"{FIGURES}/drift_box.{{ext}}", ext=["svg", "png"])
    + expand(
        f"{FIGURES}/density_c{{pair[0]}}_c{{pair[1]}}.{{ext}}",
        pair=DENSITY_PAIRS,
        ext=["svg", "png"],
    )
)
if config["histogram"]["fine_bins"] > 0:
    FIGURE_TARGETS += expand(
        f"{FIGURES}/ridge_{{axis}}.{{ext}}", axis=AXES, ext=["svg", "png"]
    )
    FIGURE_TARGETS += expand(f"{R}/ridge/{{axis}}.tsv", axis=AXES)


wildcard_constraints:
    a=r"\d",
    b=r"\d",


# Figures read only the gathered tables (seconds each): run on the submitting node, not as jobs.
localrules:
    fig_pca_cumulative_variance,
    fig_pca_covariance,
    fig_pca_eigenimages,
    fig_subset_eigenimages,
    fig_ridge,
    fig_drift_heatmap,
    fig_drift_box,
    fig_density,
    readme_figures,


rule fig_pca_cumulative_variance:
    input:
        sums=f"{R}/stats/sums.npz",
    output:
        svg=report(
            f"{FIGURES}/pca_cumulative_variance.svg",
            caption="../report/pca_cumulative_variance.rst",
            category="PCA",
            subcategory="Global PCA",
            labels={"figure": "cumulative explained variance"},
        ),
        png=f"{FIGURES}/pca_cumulative_variance.png",
    log:
        f"{R}/logs/figures/pca_cumulative_variance.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="cumulative_variance",
    script:
        "../scripts/fig_pca.py"


rule fig_pca_covariance:
    input:
        sums=f"{R}/stats/sums.npz",
    output:
        svg=report(
            f"{FIGURES}/pca_covariance.svg",
            caption="../report/pca_covariance.rst",
            category="PCA",
            subcategory="Global PCA",
            labels={"figure": "pixel covariance"},
        ),
        png=f"{FIGURES}/pca_covariance.png",
    log:
        f"{R}/logs/figures/pca_covariance.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="covariance",
    script:
        "../scripts/fig_pca.py"


rule fig_pca_eigenimages:
    input:
        sums=f"{R}/stats/sums.npz",
    output:
        svg=report(
            f"{FIGURES}/pca_eigenimages.svg",
            caption="../report/pca_eigenimages.rst",
            category="PCA",
            subcategory="Global PCA",
            labels={"figure": "eigenimages"},
        ),
        png=f"{FIGURES}/pca_eigenimages.png",
    log:
        f"{R}/logs/figures/pca_eigenimages.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="eigenimages",
    script:
        "../scripts/fig_pca.py"


rule fig_subset_eigenimages:
    input:
        sums=f"{R}/stats/sums.npz",
        layers=f"{R}/stats/layers.tsv",
        groups=f"{R}/groups/{{axis}}.tsv",
    output:
        svg=report(
            f"{FIGURES}/eigenimages_{{axis}}.svg",
            caption="../report/subset_eigenimages.rst",
            category="PCA",
            subcategory="Subset PCA",
            labels={"axis": "{axis}", "figure": "eigenimages"},
        ),
        png=f"{FIGURES}/eigenimages_{{axis}}.png",
        table=report(
            f"{R}/pca/subsets/{{axis}}.tsv",
            caption="../report/subset_table.rst",
            category="PCA",
            subcategory="Subset PCA",
            labels={"axis": "{axis}", "figure": "table"},
        ),
    log:
        f"{R}/logs/figures/eigenimages_{{axis}}.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        axis=lambda wc: axis_config(wc.axis),
    script:
        "../scripts/fig_subset_eigenimages.py"


rule fig_ridge:
    input:
        hist=f"{R}/stats/hist.npz",
        cell_hist=f"{R}/stats/cell_hist.npy",
        plan=f"{R}/stats/plan.npz",
        layers=f"{R}/stats/layers.tsv",
        groups=f"{R}/groups/{{axis}}.tsv",
        range=f"{R}/pca/range.tsv",
    output:
        svg=report(
            f"{FIGURES}/ridge_{{axis}}.svg",
            caption="../report/ridge.rst",
            category="Ridge plots",
            subcategory="{axis}",
            labels={"axis": "{axis}", "figure": "ridge plot"},
        ),
        png=f"{FIGURES}/ridge_{{axis}}.png",
        table=report(
            f"{R}/ridge/{{axis}}.tsv",
            caption="../report/ridge_table.rst",
            category="Ridge plots",
            subcategory="{axis}",
            labels={"axis": "{axis}", "figure": "bandwidths"},
        ),
    log:
        f"{R}/logs/figures/ridge_{{axis}}.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        axis=lambda wc: axis_config(wc.axis),
        depth_bins=depth_bins(),
        overlap=FIGURE_OPTIONS["ridge_overlap"],
        scale=FIGURE_OPTIONS["ridge_scale"],
    script:
        "../scripts/fig_ridge.py"


rule fig_drift_heatmap:
    input:
        drift=f"{R}/drift/{{axis}}.tsv",
    output:
        svg=report(
            f"{FIGURES}/drift_{{axis}}.svg",
            caption="../report/drift_heatmap.rst",
            category="Drift",
            subcategory="{axis}",
            labels={"axis": "{axis}", "figure": "heatmap"},
        ),
        png=f"{FIGURES}/drift_{{axis}}.png",
    log:
        f"{R}/logs/figures/drift_{{axis}}.log",
    conda:
        "../envs/filterdb.yaml"
    script:
        "../scripts/fig_drift.py"


rule fig_drift_box:
    input:
        drift=expand(f"{R}/drift/{{axis}}.tsv", axis=AXES),
    output:
        svg=report(
            f"{FIGURES}/drift_box.svg",
            caption="../report/drift_box.rst",
            category="Drift",
            subcategory="All axes",
            labels={"axis": "all", "figure": "box plot"},
        ),
        png=f"{FIGURES}/drift_box.png",
    log:
        f"{R}/logs/figures/drift_box.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        axes=AXES,
    script:
        "../scripts/fig_drift_box.py"


rule fig_density:
    input:
        hist=f"{R}/stats/hist.npz",
    output:
        svg=report(
            f"{FIGURES}/density_c{{a}}_c{{b}}.svg",
            caption="../report/density.rst",
            category="Density",
            labels={"pair": "(c{a}, c{b})", "figure": "density"},
        ),
        png=f"{FIGURES}/density_c{{a}}_c{{b}}.png",
    log:
        f"{R}/logs/figures/density_c{{a}}_c{{b}}.log",
    conda:
        "../envs/filterdb.yaml"
    script:
        "../scripts/fig_density.py"


rule readme_figures:
    input:
        f"{FIGURES}/pca_eigenimages.png",
        f"{FIGURES}/pca_cumulative_variance.png",
        f"{FIGURES}/drift_task.png",
        f"{FIGURES}/drift_box.png",
        f"{FIGURES}/ridge_task.png",
        f"{FIGURES}/density_c0_c1.png",
        f"{FIGURES}/pca_covariance.png",
        f"{FIGURES}/eigenimages_task.png",
        f"{FIGURES}/quality_depth_profile.png",
    output:
        "docs/figures/pca_eigenimages.png",
        "docs/figures/pca_cumulative_variance.png",
        "docs/figures/drift_task.png",
        "docs/figures/drift_box.png",
        "docs/figures/ridge_task.png",
        "docs/figures/density_c0_c1.png",
        "docs/figures/pca_covariance.png",
        "docs/figures/eigenimages_task.png",
        "docs/figures/quality_depth_profile.png",
    log:
        f"{R}/logs/figures/readme_figures.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        width=900,
    script:
        "../scripts/fig_readme.py"
