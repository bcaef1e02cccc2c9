from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


scattergather:
    shards=default_shards(),


include: "workflow/rules/data.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/drift.smk"
include: "workflow/rules/uncertainty.smk"
include: "workflow/rules/quality.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/grids.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/model_axes.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/published.smk"


rule all:
    default_target: True
    input:
        all_targets(),
