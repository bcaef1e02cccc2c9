# One job for every axis (one Python start-up instead of one per axis); one report entry per table.
# With one shard, rule analyse writes these tables.
if not single_job():

    rule drift:
        input:
            layers=f"{R}/stats/layers.tsv",
            hist=f"{R}/stats/hist.npz",
            basis=f"{R}/pca/basis.tsv",
        output:
            **drift_outputs(),
        log:
            f"{R}/logs/drift.log",
        priority: 10
        localrule: True
        conda:
            "../envs/filterdb.yaml"
        params:
            **drift_params(),
        script:
            "../scripts/drift.py"


rule dataset_summary:
    input:
        layers=f"{R}/stats/layers.tsv",
        coverage=f"{R}/stats/coverage.tsv",
        groups=expand(f"{R}/groups/{{axis}}.tsv", axis=AXES),
    output:
        summary=report(
            f"{R}/dataset/summary.tsv",
            caption="../report/dataset_summary.rst",
            category="Dataset",
            labels={"table": "models, layers and filters per group"},
        ),
    log:
        f"{R}/logs/dataset_summary.log",
    localrule: True
    conda:
        "../envs/filterdb.yaml"
    params:
        axes=AXES,
    script:
        "../scripts/dataset_summary.py"


rule models_table:
    input:
        db=dataset(),
    output:
        models=report(
            f"{R}/dataset/models.tsv",
            caption="../report/models_table.rst",
            category="Dataset",
            labels={"table": "models of the DB"},
        ),
    log:
        f"{R}/logs/models_table.log",
    localrule: True
    conda:
        "../envs/filterdb.yaml"
    script:
        "../scripts/models_table.py"
