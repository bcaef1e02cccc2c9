# Uncertainty of the drift matrices (filterdb.uncertainty): one job per axis (in the cluster group
# "axis" with its drift tables), and the axis tests of every axis gathered into one table.
# Off by default (config uncertainty.enabled); the study's outputs do not depend on it.
# Target list: uncertainty_targets() in common.smk.
UNCERTAINTY = config["uncertainty"]


rule drift_uncertainty:
    input:
        layers=str(P.layers),
        hist=str(P.hist),
        basis=str(P.basis),
    output:
        ci=report(
            str(P.drift_ci("{axis}")),
            caption="../report/drift_ci.rst",
            category="Drift uncertainty",
            subcategory="{axis}",
            labels={"axis": "{axis}", "table": "bootstrap intervals"},
        ),
        null=report(
            str(P.drift_null("{axis}")),
            caption="../report/drift_null.rst",
            category="Drift uncertainty",
            subcategory="{axis}",
            labels={"axis": "{axis}", "table": "permutation null"},
        ),
        fig=report(
            str(P.figure("drift_significance_{axis}")),
            caption="../report/drift_significance.rst",
            category="Drift uncertainty",
            subcategory="{axis}",
            labels={"axis": "{axis}", "table": "significance heatmap"},
        ),
        row=str(P.uncertainty_axis("{axis}")),
    log:
        str(P.log("drift_uncertainty/{axis}")),
    benchmark:
        str(P.benchmark("drift_uncertainty/{axis}"))
    group:
        "axis"
    conda:
        "../envs/filterdb.yaml"
    params:
        axis=lambda wc: axis_config(wc.axis),
        eps=config["histogram"]["eps"],
        floor=config["histogram"]["floor"],
        options={k: v for k, v in UNCERTAINTY.items() if k != "enabled"},
    script:
        "../scripts/drift_uncertainty.py"


# the axis tests of every axis, one row each, in the order of the axes mapping
rule uncertainty_axes:
    input:
        rows=per_axis(P.uncertainty_axis("{axis}")),
    output:
        axes=report(
            str(P.uncertainty),
            caption="../report/uncertainty_axes.rst",
            category="Drift uncertainty",
            labels={"axis": "all", "table": "axis tests"},
        ),
    log:
        str(P.log("uncertainty_axes")),
    localrule: True
    conda:
        "../envs/filterdb.yaml"
    script:
        "../scripts/uncertainty_axes.py"
