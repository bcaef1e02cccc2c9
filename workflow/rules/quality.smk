# Filter quality and degeneration per layer, model, axis group and depth bin (docs/method.md §9), and
# the sensitivity of the flags to their thresholds (the figures of no axis are in rule fig_global,
# figures.smk; those of each axis's groups in rule fig_axis).
# The per-layer metrics come from the `sums` pass (filterdb.accumulate.SumsPass,
# arrays quality_* in stats/sums.npz) when quality.enabled is true. Settings: config["quality"],
# defaults filled by validate() from workflow/schemas/config.schema.yaml. Target list:
# quality_targets() in common.smk.


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
        axes=axis_configs(),
        thresholds=quality_flag_settings(),
    script:
        "../scripts/quality_tables.py"
