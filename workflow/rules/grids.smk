# Filter grids (CVPR Fig. 1; docs/method.md §8): example 3x3 filters drawn as tiles, per group of
# every configured axis (config grids.axes) and down the conv depth of one model. One job writes
# every grid (SVG, a report item, and PNG) and the table of the rows each one shows. The rows are
# drawn from the layer table (seeded, filterdb.grids) and read from the DB by row: no pass over it.
# Target list: grid_targets() in common.smk.


GRIDS = f"{R}/grids"


# A few hundred rows read from the DB and one figure per axis (seconds): on the submitting node.
rule filter_grids:
    input:
        layers=f"{R}/stats/layers.tsv",
        groups=expand(f"{R}/groups/{{axis}}.tsv", axis=grid_axes()),
        db=dataset(),
    output:
        **{
            f"svg_{a}": report(
                f"{FIGURES}/filter_grid_{a}.svg",
                caption="../report/filter_grid.rst",
                category="Filters",
                subcategory=a,
                labels={"axis": a, "figure": "filter grid"},
            )
            for a in grid_axes()
        },
        **{f"png_{a}": f"{FIGURES}/filter_grid_{a}.png" for a in grid_axes()},
        **{
            f"table_{a}": report(
                f"{GRIDS}/{a}.tsv",
                caption="../report/filter_grid_table.rst",
                category="Filters",
                subcategory=a,
                labels={"axis": a, "figure": "filter grid rows"},
            )
            for a in grid_axes()
        },
        svg_model=report(
            f"{FIGURES}/filter_grid_model.svg",
            caption="../report/filter_grid_model.rst",
            category="Filters",
            subcategory="Model",
            labels={"axis": "model", "figure": "filter grid"},
        ),
        png_model=f"{FIGURES}/filter_grid_model.png",
        table_model=report(
            f"{GRIDS}/model.tsv",
            caption="../report/filter_grid_table.rst",
            category="Filters",
            subcategory="Model",
            labels={"axis": "model", "figure": "filter grid rows"},
        ),
    log:
        f"{R}/logs/figures/filter_grids.log",
    benchmark:
        f"{R}/benchmarks/filter_grids.tsv"
    localrule: True
    conda:
        "../envs/filterdb.yaml"
    params:
        axes={a: axis_config(a) for a in grid_axes()},
        grids=config["grids"],
        precision=config["stream"]["precision"],
        checks=config["checks"],
    script:
        "../scripts/fig_filter_grid.py"
