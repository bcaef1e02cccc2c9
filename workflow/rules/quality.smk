# Filter quality and degeneration per layer, model, axis group and depth bin (docs/method.md §9), and
# the sensitivity of the flags to their thresholds.
# The per-layer metrics come from the `sums` pass (filterdb.accumulate.SumsPass,
# arrays quality_* in stats/sums.npz) when quality.enabled is true. Settings: config["quality"],
# defaults filled by validate() from workflow/schemas/config.schema.yaml. Target list:
# quality_targets() in common.smk.

QUALITY = config["quality"]


rule quality_tables:
    input:
        layers=str(P.layers),
        sums=str(P.sums),
    output:
        layers=report(
            str(P.quality("layers")),
            caption="../report/quality_layers.rst",
            category="Quality",
            subcategory="Tables",
            labels={"table": "per layer"},
        ),
        models=report(
            str(P.quality("models")),
            caption="../report/quality_models.rst",
            category="Quality",
            subcategory="Tables",
            labels={"table": "per model"},
        ),
    log:
        str(P.log("quality/tables")),
    priority: 10  # a short job the per-axis figure jobs wait for (fig_axis draws each axis's quality)
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="tables",
        axes=axis_configs(),
        thresholds=quality_flag_settings(),
    script:
        "../scripts/quality_tables.py"


# The quality figures of no single axis, one job: the profile down the conv depth (table and
# figure) and each flag over a sweep of its threshold (docs/method.md §9; the eps sweep from the
# sparse counts of the sums pass, stats/sums.npz quality_n_sparse_grid, every other from the layer
# table). The figures of each axis's groups are in that axis's job (rule fig_axis).
rule quality_figures:
    input:
        layers=str(P.quality("layers")),
        sums=str(P.sums),
    output:
        profile_table=str(P.quality("by_depth_bin")),
        profile_svg=report(
            str(P.figure("quality_depth_profile", "svg")),
            caption="../report/quality_depth.rst",
            category="Quality",
            subcategory="Depth",
            labels={"axis": "depth", "figure": "quality vs depth"},
        ),
        profile_png=str(P.figure("quality_depth_profile", "png")),
        table=report(
            str(P.quality("sensitivity")),
            caption="../report/quality_sensitivity_table.rst",
            category="Quality",
            subcategory="Sensitivity",
            labels={"table": "sensitivity of the flags"},
        ),
        svg=report(
            str(P.figure("quality_sensitivity", "svg")),
            caption="../report/quality_sensitivity.rst",
            category="Quality",
            subcategory="Sensitivity",
            labels={"figure": "sensitivity of the flags"},
        ),
        png=str(P.figure("quality_sensitivity", "png")),
    log:
        str(P.log("quality/figures")),
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="figures",
        depth_bins=S.depth_bins,
        eps=QUALITY["eps"],
        thresholds=quality_flag_settings(),
        sweeps=QUALITY["sensitivity"],
    script:
        "../scripts/quality_tables.py"
