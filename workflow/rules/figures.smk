# Figures of the study (docs/method.md §6-§8); SVG (a report item) and PNG.
# One job per figure kind writes the figures of every axis (Python, pandas and matplotlib start
# once per kind, not once per axis); every figure stays its own report item (own caption,
# category, subcategory and labels). Target list: figure_targets() in common.smk; FIGURES,
# PCA_KINDS and density_pairs() are defined there.

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


# Figures read only the gathered tables (seconds each): run on the submitting node, not as jobs.
localrules:
    fig_pca,
    fig_subset_eigenimages,
    fig_ridge,
    fig_drift,
    fig_kl_combined,
    fig_density,
    readme_figures,


rule fig_pca:
    input:
        sums=f"{R}/stats/sums.npz",
    output:
        **{
            f"svg_{kind}": report(
                f"{FIGURES}/pca_{kind}.svg",
                caption=f"../report/pca_{kind}.rst",
                category="PCA",
                subcategory="Global PCA",
                labels={"figure": PCA_LABELS[kind]},
            )
            for kind in PCA_KINDS
        },
        **{f"png_{kind}": f"{FIGURES}/pca_{kind}.png" for kind in PCA_KINDS},
    log:
        f"{R}/logs/figures/pca.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        kinds=PCA_KINDS,
    script:
        "../scripts/fig_pca.py"


rule fig_subset_eigenimages:
    input:
        sums=f"{R}/stats/sums.npz",
        layers=f"{R}/stats/layers.tsv",
        groups=expand(f"{R}/groups/{{axis}}.tsv", axis=AXES),
    output:
        **{
            f"svg_{a}": report(
                f"{FIGURES}/eigenimages_{a}.svg",
                caption="../report/subset_eigenimages.rst",
                category="PCA",
                subcategory="Subset PCA",
                labels={"axis": a, "figure": "eigenimages"},
            )
            for a in AXES
        },
        **{f"png_{a}": f"{FIGURES}/eigenimages_{a}.png" for a in AXES},
        **{
            f"table_{a}": report(
                f"{R}/pca/subsets/{a}.tsv",
                caption="../report/subset_table.rst",
                category="PCA",
                subcategory="Subset PCA",
                labels={"axis": a, "figure": "table"},
            )
            for a in AXES
        },
    log:
        f"{R}/logs/figures/eigenimages.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        axes={a: axis_config(a) for a in AXES},
    script:
        "../scripts/fig_subset_eigenimages.py"


rule fig_ridge:
    input:
        hist=f"{R}/stats/hist.npz",
        cell_hist=f"{R}/stats/cell_hist.npy",
        plan=f"{R}/stats/plan.npz",
        layers=f"{R}/stats/layers.tsv",
        groups=expand(f"{R}/groups/{{axis}}.tsv", axis=AXES),
        range=f"{R}/pca/range.tsv",
    output:
        **{
            f"svg_{a}": report(
                f"{FIGURES}/ridge_{a}.svg",
                caption="../report/ridge.rst",
                category="Ridge plots",
                subcategory=a,
                labels={"axis": a, "figure": "ridge plot"},
            )
            for a in AXES
        },
        **{f"png_{a}": f"{FIGURES}/ridge_{a}.png" for a in AXES},
        **{
            f"table_{a}": report(
                f"{R}/ridge/{a}.tsv",
                caption="../report/ridge_table.rst",
                category="Ridge plots",
                subcategory=a,
                labels={"axis": a, "figure": "bandwidths"},
            )
            for a in AXES
        },
    log:
        f"{R}/logs/figures/ridge.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        axes={a: axis_config(a) for a in AXES},
        depth_bins=depth_bins(),
        overlap=config["figures"]["ridge_overlap"],
        scale=config["figures"]["ridge_scale"],
    script:
        "../scripts/fig_ridge.py"


rule fig_drift:
    input:
        **drift_box_uncertainty(),
        drift=expand(f"{R}/drift/{{axis}}.tsv", axis=AXES),
    output:
        **{
            f"svg_{a}": report(
                f"{FIGURES}/drift_{a}.svg",
                caption="../report/drift_heatmap.rst",
                category="Drift",
                subcategory=a,
                labels={"axis": a, "figure": "heatmap"},
            )
            for a in AXES
        },
        **{f"png_{a}": f"{FIGURES}/drift_{a}.png" for a in AXES},
        svg_box=report(
            f"{FIGURES}/drift_box.svg",
            caption="../report/drift_box.rst",
            category="Drift",
            subcategory="All axes",
            labels={"axis": "all", "figure": "box plot"},
        ),
        png_box=f"{FIGURES}/drift_box.png",
    log:
        f"{R}/logs/figures/drift.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        axes=AXES,
        level=config["uncertainty"]["level"],
    script:
        "../scripts/fig_drift.py"


rule fig_kl_combined:
    input:
        drift=expand(f"{R}/drift/{{axis}}.tsv", axis=combined_axes()),
        groups=expand(f"{R}/groups/{{axis}}.tsv", axis=combined_axes()),
    output:
        svg=report(
            f"{FIGURES}/kl_combined.svg",
            caption="../report/kl_combined.rst",
            category="Drift",
            subcategory="All axes",
            labels={"axis": "+".join(combined_axes()), "figure": "headline figure"},
        ),
        png=f"{FIGURES}/kl_combined.png",
    log:
        f"{R}/logs/figures/kl_combined.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        axes={a: axis_config(a) for a in combined_axes()},
        title=config["figures"]["combined"]["title"],
    script:
        "../scripts/fig_kl_combined.py"


rule fig_density:
    input:
        hist=f"{R}/stats/hist.npz",
    output:
        **{
            f"svg_c{a}_c{b}": report(
                f"{FIGURES}/density_c{a}_c{b}.svg",
                caption="../report/density.rst",
                category="Density",
                labels={"pair": f"(c{a}, c{b})", "figure": "density"},
            )
            for a, b in density_pairs()
        },
        **{
            f"png_c{a}_c{b}": f"{FIGURES}/density_c{a}_c{b}.png"
            for a, b in density_pairs()
        },
    log:
        f"{R}/logs/figures/density.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        pairs=density_pairs(),
    script:
        "../scripts/fig_density.py"


rule readme_figures:
    input:
        [f"{FIGURES}/{name}" for name in README_FIGURES],
    output:
        [f"docs/figures/{name}" for name in README_FIGURES],
    log:
        f"{R}/logs/figures/readme_figures.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        width=900,
    script:
        "../scripts/fig_readme.py"
