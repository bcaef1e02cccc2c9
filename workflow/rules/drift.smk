rule drift:
    input:
        layers=f"{R}/stats/layers.tsv",
        hist=f"{R}/stats/hist.npz",
        basis=f"{R}/pca/basis.tsv",
    output:
        drift=f"{R}/drift/{{axis}}.tsv",
        groups=f"{R}/groups/{{axis}}.tsv",
    log:
        f"{R}/logs/drift/{{axis}}.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        axis=lambda wc: axis_config(wc.axis),
        eps=config["histogram"]["eps"],
    script:
        "../scripts/drift.py"
