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
    script:
        "../scripts/drift.py"
