# Model to model: which axis explains the distances (docs/method.md §11; filterdb.distance_tests).
# Per axis a PERMANOVA pseudo-F and R^2 on the model x model drift matrix of rule models.smk, and the
# nearest-neighbour label agreement, each with a permutation p-value (the unit is the model). One job
# for every axis: the table models/axes.tsv and the figure ranking the axes. Reads the small tables
# only (no filter). Target list: model_axes_targets() in common.smk.


# Permutations of a few hundred models' labels (seconds): on the submitting node.
rule model_axes:
    input:
        drift=str(P.models("drift")),
        layers=str(P.layers),
    output:
        table=report(
            str(P.models("axes")),
            caption="../report/models_axes_table.rst",
            category="Models",
            subcategory="Which axis explains the distances",
            labels={"table": "axis tests"},
        ),
        svg=report(
            str(P.figure("models_axes", "svg")),
            caption="../report/models_axes.rst",
            category="Models",
            subcategory="Which axis explains the distances",
            labels={"figure": "axes ranked"},
        ),
        png=str(P.figure("models_axes", "png")),
    log:
        str(P.log("model_axes")),
    localrule: True
    conda:
        "../envs/filterdb.yaml"
    params:
        axes=axis_configs(),
        options=config["models"]["axes"],
    script:
        "../scripts/model_axes.py"
