# One job for every axis (one Python start-up instead of one per axis); one report entry per table.
rule drift:
    input:
        layers=f"{R}/stats/layers.tsv",
        hist=f"{R}/stats/hist.npz",
        basis=f"{R}/pca/basis.tsv",
    output:
        **{
            f"drift_{a}": report(
                f"{R}/drift/{a}.tsv",
                caption="../report/drift_table.rst",
                category="Drift",
                subcategory=a,
                labels={"axis": a, "figure": "table"},
            )
            for a in AXES
        },
        **{
            f"groups_{a}": report(
                f"{R}/groups/{a}.tsv",
                caption="../report/groups_table.rst",
                category="Drift",
                subcategory=a,
                labels={"axis": a, "figure": "groups"},
            )
            for a in AXES
        },
    log:
        f"{R}/logs/drift.log",
    priority: 10
    conda:
        "../envs/filterdb.yaml"
    params:
        axes={a: axis_config(a) for a in AXES},
        eps=config["histogram"]["eps"],
        floor=config["histogram"]["floor"],
    script:
        "../scripts/drift.py"


rule dataset_summary:
    input:
        layers=f"{R}/stats/layers.tsv",
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
    conda:
        "../envs/filterdb.yaml"
    params:
        axes=AXES,
    script:
        "../scripts/dataset_summary.py"
