rule drift:
    input:
        layers=f"{R}/stats/layers.tsv",
        hist=f"{R}/stats/hist.npz",
        basis=f"{R}/pca/basis.tsv",
    output:
        drift=report(
            f"{R}/drift/{{axis}}.tsv",
            caption="../report/drift_table.rst",
            category="Drift",
            subcategory="{axis}",
            labels={"axis": "{axis}", "figure": "table"},
        ),
        groups=report(
            f"{R}/groups/{{axis}}.tsv",
            caption="../report/groups_table.rst",
            category="Drift",
            subcategory="{axis}",
            labels={"axis": "{axis}", "figure": "groups"},
        ),
    log:
        f"{R}/logs/drift/{{axis}}.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        axis=lambda wc: axis_config(wc.axis),
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
