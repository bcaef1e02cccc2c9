# Model to model: which axis explains the distances (docs/method.md §11; filterdb.distance_tests).
# Per axis a PERMANOVA pseudo-F and R^2 on the model x model drift matrix of rule models.smk, and the
# nearest-neighbour label agreement, each with a permutation p-value (the unit is the model). One job
# for every axis: the table models/axes.tsv and the figure ranking the axes. Reads the small tables
# only (no filter). Target list: model_axes_targets() in common.smk.


# Permutations of a few hundred models' labels (seconds): on the submitting node.
rule model_axes:
    input:
        drift=f"{R}/models/drift.tsv",
        layers=f"{R}/stats/layers.tsv",
    output:
        table=report(
            f"{R}/models/axes.tsv",
            caption="../report/models_axes_table.rst",
            category="Models",
            subcategory="Which axis explains the distances",
            labels={"table": "axis tests"},
        ),
        svg=report(
            f"{FIGURES}/models_axes.svg",
            caption="../report/models_axes.rst",
            category="Models",
            subcategory="Which axis explains the distances",
            labels={"figure": "axes ranked"},
        ),
        png=f"{FIGURES}/models_axes.png",
    log:
        f"{R}/logs/model_axes.log",
    localrule: True
    conda:
        "../envs/filterdb.yaml"
    params:
        axes=axis_configs(),
        options=config["models"]["axes"],
    script:
        "../scripts/model_axes.py"
