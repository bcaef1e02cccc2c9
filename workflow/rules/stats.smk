rule layer_table:
    input:
        db=dataset(),
    output:
        layers=f"{R}/stats/layers.tsv",
    log:
        f"{R}/logs/layer_table.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        columns=[axis_config(a)["column"] for a in AXES],
    script:
        "../scripts/layer_table.py"


rule shard_sums:
    input:
        db=dataset(),
        layers=f"{R}/stats/layers.tsv",
    output:
        part=temp(f"{R}/shards/sums/{{scatteritem}}.npz"),
    log:
        f"{R}/logs/shard_sums/{{scatteritem}}.log",
    benchmark:
        f"{R}/benchmarks/shard_sums/{{scatteritem}}.tsv"
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="sums",
        stream=stream_params(),
        quality=quality_params(),
    script:
        "../scripts/shard_pass.py"


rule gather_sums:
    input:
        parts=gather.shards(f"{R}/shards/sums/{{scatteritem}}.npz"),
        layers=f"{R}/stats/layers.tsv",
    output:
        stats=f"{R}/stats/sums.npz",
    log:
        f"{R}/logs/gather_sums.log",
    conda:
        "../envs/filterdb.yaml"
    script:
        "../scripts/gather_pass.py"


rule pca_basis:
    input:
        sums=f"{R}/stats/sums.npz",
    output:
        basis=report(
            f"{R}/pca/basis.tsv",
            caption="../report/pca_basis_table.rst",
            category="PCA",
            subcategory="Global PCA",
            labels={"figure": "basis table"},
        ),
        mean=f"{R}/pca/mean.tsv",
    log:
        f"{R}/logs/pca_basis.log",
    conda:
        "../envs/filterdb.yaml"
    script:
        "../scripts/pca_basis.py"


rule shard_range:
    input:
        db=dataset(),
        layers=f"{R}/stats/layers.tsv",
        basis=f"{R}/pca/basis.tsv",
        mean=f"{R}/pca/mean.tsv",
    output:
        part=temp(f"{R}/shards/range/{{scatteritem}}.npz"),
    log:
        f"{R}/logs/shard_range/{{scatteritem}}.log",
    benchmark:
        f"{R}/benchmarks/shard_range/{{scatteritem}}.tsv"
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="range",
        stream=stream_params(),
    script:
        "../scripts/shard_pass.py"


rule gather_range:
    input:
        parts=gather.shards(f"{R}/shards/range/{{scatteritem}}.npz"),
        layers=f"{R}/stats/layers.tsv",
    output:
        stats=f"{R}/stats/range.npz",
        range=f"{R}/pca/range.tsv",
    log:
        f"{R}/logs/gather_range.log",
    conda:
        "../envs/filterdb.yaml"
    script:
        "../scripts/gather_pass.py"


rule shard_hist:
    input:
        db=dataset(),
        layers=f"{R}/stats/layers.tsv",
        basis=f"{R}/pca/basis.tsv",
        mean=f"{R}/pca/mean.tsv",
        range=f"{R}/pca/range.tsv",
    output:
        part=temp(f"{R}/shards/hist/{{scatteritem}}.npz"),
    log:
        f"{R}/logs/shard_hist/{{scatteritem}}.log",
    benchmark:
        f"{R}/benchmarks/shard_hist/{{scatteritem}}.tsv"
    conda:
        "../envs/filterdb.yaml"
    params:
        kind="hist",
        stream=stream_params(),
        bins=config["histogram"]["bins"],
        fine_bins=config["histogram"]["fine_bins"],
        depth_bins=depth_bins(),
        density=config["density"],
    script:
        "../scripts/shard_pass.py"


rule gather_hist:
    input:
        parts=gather.shards(f"{R}/shards/hist/{{scatteritem}}.npz"),
        layers=f"{R}/stats/layers.tsv",
    output:
        stats=f"{R}/stats/hist.npz",
        cells=f"{R}/stats/cells.tsv",
    log:
        f"{R}/logs/gather_hist.log",
    conda:
        "../envs/filterdb.yaml"
    params:
        depth_bins=depth_bins(),
    script:
        "../scripts/gather_pass.py"
