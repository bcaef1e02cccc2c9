# Filter quality and degeneration per layer, model, axis group and depth bin (analysis.md §9).
# The per-layer metrics come from the `sums` pass (QualityAccumulator, arrays quality_* in
# stats/sums.npz) when quality.enabled is true. Target list: QUALITY_TARGETS (added to `rule all`
# through all_targets() in common.smk).

QUALITY = {"enabled": True, "eps": 0.01, "thresholds": {}} | dict(
    config.get("quality", {})
)
QUALITY_DIR = f"{R}/quality"

QUALITY_TARGETS = []
if QUALITY["enabled"]:
    QUALITY_TARGETS = (
        [f"{QUALITY_DIR}/layers.tsv", f"{QUALITY_DIR}/models.tsv"]
        + [f"{QUALITY_DIR}/by_depth_bin.tsv"]
        + expand(f"{QUALITY_DIR}/by_{{axis}}.tsv", axis=AXES)
        + expand(f"{R}/figures/quality_depth_profile.{{ext}}", ext=["svg", "png"])
        + expand(f"{R}/figures/quality_{{axis}}.{{ext}}", axis=AXES, ext=["svg", "png"])
    )


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
        thresholds=QUALITY["thresholds"],
    script:
        "../scripts/quality_tables.py"


rule quality_by_axis:
    input:
        layers=f"{QUALITY_DIR}/layers.tsv",
    output:
        table=f"{QUALITY_DIR}/by_{{axis}}.tsv",
        svg=report(
            f"{R}/figures/quality_{{axis}}.svg",
            caption="../report/quality_groups.rst",
            category="Quality",
            subcategory="{axis}",
            labels={"axis": "{axis}", "figure": "quality per group"},
        ),
        png=f"{R}/figures/quality_{{axis}}.png",
    log:
        f"{R}/logs/quality/by_{{axis}}.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="axis",
        axis=lambda wc: axis_config(wc.axis),
        thresholds=QUALITY["thresholds"],
    script:
        "../scripts/quality_tables.py"


rule quality_depth:
    input:
        layers=f"{QUALITY_DIR}/layers.tsv",
    output:
        table=f"{QUALITY_DIR}/by_depth_bin.tsv",
        svg=report(
            f"{R}/figures/quality_depth_profile.svg",
            caption="../report/quality_depth.rst",
            category="Quality",
            subcategory="Depth",
            labels={"axis": "depth", "figure": "quality vs depth"},
        ),
        png=f"{R}/figures/quality_depth_profile.png",
    log:
        f"{R}/logs/quality/depth.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="depth",
        depth_bins=depth_bins(),
        thresholds=QUALITY["thresholds"],
    script:
        "../scripts/quality_tables.py"
