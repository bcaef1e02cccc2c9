# Model to model: the zoo's structure (docs/method.md §11; filterdb.zoo). One job: the model x model
# drift matrix from the per-layer histograms (no filter is read), its hierarchical clustering, the
# classical MDS embedding, each model's nearest models, and the figures (heatmap with dendrogram; the
# embedding coloured by each axis that labels models). Target list and helpers: zoo_* in common.smk.


rule models:
    input:
        layers=str(P.layers),
        hist=str(P.hist),
        basis=str(P.basis),
    output:
        **per_axis_outputs(embedding_outputs, zoo_label_axes()),
        drift=report(
            str(P.models("drift")),
            caption="../report/models_drift.rst",
            category="Models",
            subcategory="Drift between models",
            labels={"table": "model x model drift"},
        ),
        linkage=report(
            str(P.models("linkage")),
            caption="../report/models_clustering.rst",
            category="Models",
            subcategory="Clustering",
            labels={"table": "linkage"},
        ),
        order=report(
            str(P.models("order")),
            caption="../report/models_clustering.rst",
            category="Models",
            subcategory="Clustering",
            labels={"table": "leaf order"},
        ),
        embedding=report(
            str(P.models("embedding")),
            caption="../report/models_embedding_table.rst",
            category="Models",
            subcategory="Embedding",
            labels={"table": "coordinates and labels"},
        ),
        nearest=report(
            str(P.models("nearest")),
            caption="../report/models_nearest.rst",
            category="Models",
            subcategory="Nearest models",
            labels={"table": "nearest models"},
        ),
        summary=report(
            str(P.models("summary")),
            caption="../report/models_summary.rst",
            category="Models",
            subcategory="Drift between models",
            labels={"table": "summary"},
        ),
        svg_heatmap=report(
            str(P.figure("models_heatmap", "svg")),
            caption="../report/models_heatmap.rst",
            category="Models",
            subcategory="Drift between models",
            labels={"figure": "heatmap and dendrogram"},
        ),
        png_heatmap=str(P.figure("models_heatmap", "png")),
    log:
        str(P.log("models")),
    benchmark:
        str(P.benchmark("models"))
    priority: 3  # one of the longest jobs after the passes (as fig_axis)
    conda:
        "../envs/filterdb.yaml"
    params:
        settings=zoo_settings(),
        enabled=config["models"]["enabled"],
        max_models=config["models"]["max_models"],
        axes=axis_configs(),
        label_axes=zoo_label_axes(),
        eps=config["histogram"]["eps"],
        floor=config["histogram"]["floor"],
    script:
        "../scripts/models_zoo.py"
