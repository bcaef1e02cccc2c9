# One shard (the default for a small DB, config stream.single_job_filters): the whole chain up to
# the drift tables in one job, so that each step's start-up is paid once; the same outputs.
if single_job():

    rule analyse:
        input:
            db=dataset(),
        output:
            **drift_outputs(),
            **single_job_cell_output(),
            layers=f"{R}/stats/layers.tsv",
            plan=f"{R}/stats/plan.npz",
            cells=f"{R}/stats/cells.tsv",
            coverage=f"{R}/stats/coverage.tsv",
            sums=f"{R}/stats/sums.npz",
            basis=pca_basis_output(),
            mean=f"{R}/pca/mean.tsv",
            range_stats=f"{R}/stats/range.npz",
            range=f"{R}/pca/range.tsv",
            hist=f"{R}/stats/hist.npz",
        log:
            f"{R}/logs/analyse.log",
        benchmark:
            f"{R}/benchmarks/analyse.tsv"
        priority: 10
        conda:
            "../envs/filterdb.yaml"
        threads: shard_threads()
        resources:
            mem_mb=lambda wc, input, threads: single_job_mem_mb(input.db, threads),
        params:
            **drift_params(),
            columns=[axis_config(a)["column"] for a in AXES],
            depth_bins=depth_bins(),
            checks=config["checks"],
            stream=stream_params(),
            quality=quality_params(),
            bins=config["histogram"]["bins"],
            fine_bins=config["histogram"]["fine_bins"],
            density=config["density"],
            fixed_range=fixed_range_param(),
        script:
            "../scripts/analyse.py"

else:

    rule layer_table:
        input:
            db=dataset(),
        output:
            layers=f"{R}/stats/layers.tsv",
            plan=f"{R}/stats/plan.npz",
            cells=f"{R}/stats/cells.tsv",
            coverage=f"{R}/stats/coverage.tsv",
        log:
            f"{R}/logs/layer_table.log",
        benchmark:
            f"{R}/benchmarks/layer_table.tsv"
        priority: 10
        localrule: True
        conda:
            "../envs/filterdb.yaml"
        params:
            columns=[axis_config(a)["column"] for a in AXES],
            depth_bins=depth_bins(),
            checks=config["checks"],
        script:
            "../scripts/layer_table.py"

    rule shard_sums:
        input:
            db=dataset(),
            plan=f"{R}/stats/plan.npz",
            layers=f"{R}/stats/layers.tsv",
        output:
            part=temp(f"{R}/shards/sums/{{scatteritem}}.npz"),
            totals=f"{R}/stats/totals/sums/{{scatteritem}}.npz",
        log:
            f"{R}/logs/shard_sums/{{scatteritem}}.log",
        benchmark:
            f"{R}/benchmarks/shard_sums/{{scatteritem}}.tsv"
        priority: 10
        conda:
            "../envs/filterdb.yaml"
        threads: shard_threads()
        resources:
            mem_mb=lambda wc, input, threads: job_mem_mb(
                "shard_sums", input.plan, threads
            ),
        params:
            kind="sums",
            stream=stream_params(),
            quality=quality_params(),
            fine_bins=0,
            density={},
        script:
            "../scripts/shard_pass.py"

    # Not on the chain of passes: the range and hist jobs read the exact totals (stats/totals/) themselves.
    rule gather_sums:
        input:
            parts=gather.shards(f"{R}/shards/sums/{{scatteritem}}.npz"),
            plan=f"{R}/stats/plan.npz",
        output:
            stats=f"{R}/stats/sums.npz",
            basis=pca_basis_output(),
            mean=f"{R}/pca/mean.tsv",
        log:
            f"{R}/logs/gather_sums.log",
        benchmark:
            f"{R}/benchmarks/gather_sums.tsv"
        priority: 5
        localrule: True
        conda:
            "../envs/filterdb.yaml"
        resources:
            mem_mb=lambda wc, input: job_mem_mb("gather_sums", input.plan),
        script:
            "../scripts/gather_pass.py"

    rule shard_range:
        input:
            db=dataset(),
            plan=f"{R}/stats/plan.npz",
            layers=f"{R}/stats/layers.tsv",
            sums=gather.shards(f"{R}/stats/totals/sums/{{scatteritem}}.npz"),
        output:
            part=temp(f"{R}/shards/range/{{scatteritem}}.npz"),
            totals=f"{R}/stats/totals/range/{{scatteritem}}.npz",
        log:
            f"{R}/logs/shard_range/{{scatteritem}}.log",
        benchmark:
            f"{R}/benchmarks/shard_range/{{scatteritem}}.tsv"
        priority: 10
        conda:
            "../envs/filterdb.yaml"
        threads: shard_threads()
        resources:
            mem_mb=lambda wc, input, threads: job_mem_mb(
                "shard_range", input.plan, threads
            ),
        params:
            kind="range",
            stream=stream_params(),
            quality=None,
            fine_bins=0,
            density={},
        script:
            "../scripts/shard_pass.py"

    rule gather_range:
        input:
            parts=gather.shards(f"{R}/shards/range/{{scatteritem}}.npz"),
            plan=f"{R}/stats/plan.npz",
        output:
            stats=f"{R}/stats/range.npz",
            range=f"{R}/pca/range.tsv",
        log:
            f"{R}/logs/gather_range.log",
        benchmark:
            f"{R}/benchmarks/gather_range.tsv"
        priority: 5
        localrule: True
        conda:
            "../envs/filterdb.yaml"
        resources:
            mem_mb=lambda wc, input: job_mem_mb("gather_range", input.plan),
        script:
            "../scripts/gather_pass.py"

    rule shard_hist:
        input:
            db=dataset(),
            plan=f"{R}/stats/plan.npz",
            layers=f"{R}/stats/layers.tsv",
            sums=gather.shards(f"{R}/stats/totals/sums/{{scatteritem}}.npz"),
            ranges=gather.shards(f"{R}/stats/totals/range/{{scatteritem}}.npz"),
        output:
            part=temp(f"{R}/shards/hist/{{scatteritem}}.npz"),
            cells=temp(f"{R}/shards/hist/{{scatteritem}}.cells"),
        log:
            f"{R}/logs/shard_hist/{{scatteritem}}.log",
        benchmark:
            f"{R}/benchmarks/shard_hist/{{scatteritem}}.tsv"
        priority: 10
        conda:
            "../envs/filterdb.yaml"
        threads: shard_threads()
        resources:
            mem_mb=lambda wc, input, threads: job_mem_mb(
                "shard_hist", input.plan, threads
            ),
        params:
            kind="hist",
            stream=stream_params(),
            quality=None,
            bins=config["histogram"]["bins"],
            fine_bins=config["histogram"]["fine_bins"],
            density=config["density"],
            fixed_range=fixed_range_param(),
        script:
            "../scripts/shard_pass.py"

    rule gather_hist:
        input:
            parts=gather.shards(f"{R}/shards/hist/{{scatteritem}}.npz"),
            plan=f"{R}/stats/plan.npz",
        output:
            stats=f"{R}/stats/hist.npz",
        log:
            f"{R}/logs/gather_hist.log",
        benchmark:
            f"{R}/benchmarks/gather_hist.tsv"
        priority: 10
        localrule: True
        conda:
            "../envs/filterdb.yaml"
        resources:
            mem_mb=lambda wc, input: job_mem_mb("gather_hist", input.plan),
        script:
            "../scripts/gather_pass.py"


# the fine cell histograms (ridge plots) in their own job, beside gather_hist: drift does not wait
# (with one shard, rule analyse writes them)
if not single_job():

    rule gather_cells:
        input:
            parts=gather.shards(f"{R}/shards/hist/{{scatteritem}}.npz"),
            cells=gather.shards(f"{R}/shards/hist/{{scatteritem}}.cells"),
            plan=f"{R}/stats/plan.npz",
        output:
            cell_hist=f"{R}/stats/cell_hist.npy",
        log:
            f"{R}/logs/gather_cells.log",
        benchmark:
            f"{R}/benchmarks/gather_cells.tsv"
        priority: 5
        localrule: True
        conda:
            "../envs/filterdb.yaml"
        resources:
            mem_mb=lambda wc, input: job_mem_mb("gather_cells", input.plan),
        script:
            "../scripts/gather_pass.py"


rule provenance:
    input:
        db=dataset(),
    output:
        json=report(
            f"{R}/provenance.json",
            caption="../report/provenance.rst",
            category="Dataset",
            labels={"table": "provenance"},
        ),
    log:
        f"{R}/logs/provenance.log",
    localrule: True
    conda:
        "../envs/filterdb.yaml"
    params:
        config=config,
        workflow_dir=WORKFLOW_DIR,
    script:
        "../scripts/provenance.py"
