# Filter quality and degeneration per layer, model, axis group and depth bin (docs/method.md §9), and
# the sensitivity of the flags to their thresholds.
# The per-layer metrics come from the `sums` pass (filterdb.accumulate.SumsPass,
# arrays quality_* in stats/sums.npz) when quality.enabled is true. Settings: config["quality"],
# defaults filled by validate() from workflow/schemas/config.schema.yaml. Target list:
# quality_targets() in common.smk.

QUALITY = config["quality"]
QUALITY_DIR = f"{R}/quality"


# Named outputs of `quality_groups`: the depth profile and, per axis, its table, SVG figure (one
# report item each, with its own subcategory and labels) and PNG figure.
QUALITY_GROUP_OUTPUTS = {
    "profile_table": f"{QUALITY_DIR}/by_depth_bin.tsv",
    "profile_svg": report(
        f"{R}/figures/quality_depth_profile.svg",
        caption="../report/quality_depth.rst",
        category="Quality",
        subcategory="Depth",
        labels={"axis": "depth", "figure": "quality vs depth"},
    ),
    "profile_png": f"{R}/figures/quality_depth_profile.png",
}
for _axis in AXES:
    QUALITY_GROUP_OUTPUTS[f"table_{_axis}"] = f"{QUALITY_DIR}/by_{_axis}.tsv"
    QUALITY_GROUP_OUTPUTS[f"svg_{_axis}"] = report(
        f"{R}/figures/quality_{_axis}.svg",
        caption="../report/quality_groups.rst",
        category="Quality",
        subcategory=_axis,
        labels={"axis": _axis, "figure": "quality per group"},
    )
    QUALITY_GROUP_OUTPUTS[f"png_{_axis}"] = f"{R}/figures/quality_{_axis}.png"


rule quality_tables:
    input:
        layers=f"{R}/stats/layers.tsv",
        sums=f"{R}/stats/sums.npz",
    output:
        layers=report(
            f"{QUALITY_DIR}/layers.tsv",
            caption="../report/quality_layers.rst",
            category="Quality",
            subcategory="Tables",
            labels={"table": "per layer"},
        ),
        models=report(
            f"{QUALITY_DIR}/models.tsv",
            caption="../report/quality_models.rst",
            category="Quality",
            subcategory="Tables",
            labels={"table": "per model"},
        ),
    log:
        f"{R}/logs/quality/tables.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="tables",
        axes={a: axis_config(a) for a in AXES},
        thresholds=quality_flag_settings(),
    script:
        "../scripts/quality_tables.py"


# One job for every axis and the depth profile (each job pays the start-up of Python, pandas
# and matplotlib once).
rule quality_groups:
    input:
        layers=f"{QUALITY_DIR}/layers.tsv",
    output:
        **QUALITY_GROUP_OUTPUTS,
    log:
        f"{R}/logs/quality/groups.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="groups",
        axes={a: axis_config(a) for a in AXES},
        depth_bins=depth_bins(),
        thresholds=quality_flag_settings(),
    script:
        "../scripts/quality_tables.py"


# Each flag over a sweep of its threshold (docs/method.md §9): the eps sweep from the sparse counts
# of the sums pass (stats/sums.npz quality_n_sparse_grid), every other from the layer table.
rule quality_sensitivity:
    input:
        layers=f"{QUALITY_DIR}/layers.tsv",
        sums=f"{R}/stats/sums.npz",
    output:
        table=report(
            f"{QUALITY_DIR}/sensitivity.tsv",
            caption="../report/quality_sensitivity_table.rst",
            category="Quality",
            subcategory="Sensitivity",
            labels={"table": "sensitivity of the flags"},
        ),
        svg=report(
            f"{R}/figures/quality_sensitivity.svg",
            caption="../report/quality_sensitivity.rst",
            category="Quality",
            subcategory="Sensitivity",
            labels={"figure": "sensitivity of the flags"},
        ),
        png=f"{R}/figures/quality_sensitivity.png",
    log:
        f"{R}/logs/quality/sensitivity.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="sensitivity",
        eps=QUALITY["eps"],
        thresholds=QUALITY["thresholds"],
        sweeps=QUALITY["sensitivity"],
    script:
        "../scripts/quality_tables.py"
