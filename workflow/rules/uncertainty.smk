# Uncertainty of the drift matrices (filterdb.uncertainty): one job for every axis.
# Off by default (config uncertainty.enabled); the study's outputs do not depend on it.
# Target list: uncertainty_targets() in common.smk.
UNCERTAINTY = config["uncertainty"]


rule drift_uncertainty:
    input:
        layers=f"{R}/stats/layers.tsv",
        hist=f"{R}/stats/hist.npz",
        basis=f"{R}/pca/basis.tsv",
    output:
        **{
            f"ci_{a}": report(
                f"{R}/drift/{a}.ci.tsv",
                caption="../report/drift_ci.rst",
                category="Drift uncertainty",
                subcategory=a,
                labels={"axis": a, "table": "bootstrap intervals"},
            )
            for a in AXES
        },
        **{
            f"null_{a}": report(
                f"{R}/drift/{a}.null.tsv",
                caption="../report/drift_null.rst",
                category="Drift uncertainty",
                subcategory=a,
                labels={"axis": a, "table": "permutation null"},
            )
            for a in AXES
        },
        **{
            f"fig_{a}": report(
                f"{R}/figures/drift_significance_{a}.svg",
                caption="../report/drift_significance.rst",
                category="Drift uncertainty",
                subcategory=a,
                labels={"axis": a, "table": "significance heatmap"},
            )
            for a in AXES
        },
        axes=report(
            f"{R}/uncertainty/axes.tsv",
            caption="../report/uncertainty_axes.rst",
            category="Drift uncertainty",
            labels={"axis": "all", "table": "axis tests"},
        ),
    log:
        f"{R}/logs/drift_uncertainty.log",
    benchmark:
        f"{R}/benchmarks/drift_uncertainty.tsv"
    conda:
        "../envs/filterdb.yaml"
    params:
        axes={a: axis_config(a) for a in AXES},
        eps=config["histogram"]["eps"],
        floor=config["histogram"]["floor"],
        options={k: v for k, v in UNCERTAINTY.items() if k != "enabled"},
    script:
        "../scripts/drift_uncertainty.py"
