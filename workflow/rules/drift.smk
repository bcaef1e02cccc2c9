# One job per axis (rule drift, {axis}: a cluster runs the axes side by side; on both paths, after
# rule analyse or the gathers): the group table and the drift matrix, one report entry each. Its
# group, "axis", puts an axis's drift, uncertainty and figures in one cluster submission.


rule drift:
    input:
        layers=str(P.layers),
        hist=str(P.hist),
        basis=str(P.basis),
    output:
        drift=report(
            str(P.drift("{axis}")),
            caption="../report/drift_table.rst",
            category="Drift",
            subcategory="{axis}",
            labels={"axis": "{axis}", "figure": "table"},
        ),
        groups=report(
            str(P.groups("{axis}")),
            caption="../report/groups_table.rst",
            category="Drift",
            subcategory="{axis}",
            labels={"axis": "{axis}", "figure": "groups"},
        ),
    log:
        str(P.log("drift/{axis}")),
    benchmark:
        str(P.benchmark("drift/{axis}"))
    priority: 10
    group:
        "axis"
    conda:
        "../envs/filterdb.yaml"
    params:
        **axis_step_params("drift"),
    script:
        "../scripts/drift.py"


rule dataset_summary:
    input:
        layers=str(P.layers),
        coverage=str(P.coverage),
        groups=per_axis(P.groups("{axis}")),
    output:
        summary=report(
            str(P.dataset("summary")),
            caption="../report/dataset_summary.rst",
            category="Dataset",
            labels={"table": "models, layers and filters per group"},
        ),
    log:
        str(P.log("dataset_summary")),
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
            str(P.dataset("models")),
            caption="../report/models_table.rst",
            category="Dataset",
            labels={"table": "models of the DB"},
        ),
    log:
        str(P.log("models_table")),
    localrule: True
    conda:
        "../envs/filterdb.yaml"
    script:
        "../scripts/models_table.py"
