# Filter grids (CVPR Fig. 1; docs/method.md §8): example 3x3 filters drawn as tiles, per group of
# every configured axis (config grids.axes) and down the conv depth of one model. One job writes
# every grid (SVG, a report item, and PNG) and the table of the rows each one shows. The rows are
# drawn from the layer table (seeded, filterdb.grids) and read from the DB by row: no pass over it.
# Target list: grid_targets() in common.smk.


# A few hundred rows read from the DB and one figure per axis (seconds): on the submitting node.
rule filter_grids:
    input:
        layers=str(P.layers),
        groups=per_axis(P.groups("{axis}"), grid_axes()),
        db=dataset(),
    output:
        **per_axis_outputs(grid_outputs, grid_axes()),
        svg_model=report(
            str(P.figure("filter_grid_model")),
            caption="../report/filter_grid_model.rst",
            category="Filters",
            subcategory="Model",
            labels={"axis": "model", "figure": "filter grid"},
        ),
        png_model=str(P.figure("filter_grid_model", "png")),
        table_model=report(
            str(P.grid("model")),
            caption="../report/filter_grid_table.rst",
            category="Filters",
            subcategory="Model",
            labels={"axis": "model", "figure": "filter grid rows"},
        ),
    log:
        str(P.log("figures/filter_grids")),
    benchmark:
        str(P.benchmark("filter_grids"))
    # seconds of drawing, as fig_axis: started among the first after the passes, so that the short
    # table jobs fill the cores at the end
    priority: 3
    localrule: True
    conda:
        "../envs/filterdb.yaml"
    params:
        axes=axis_configs(grid_axes()),
        grids=config["grids"],
        precision=config["stream"]["precision"],
        checks=config["checks"],
    script:
        "../scripts/fig_filter_grid.py"
