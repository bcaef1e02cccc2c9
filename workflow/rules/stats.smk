# One shard (the default for a small DB, config stream.single_job_filters): the whole chain up to
# the drift tables in one job, so that each step's start-up is paid once; the same outputs.
# One shard (the default: config stream.single_job_filters): the layer table, the three passes and
# their gathers in one job, so that each step's start-up is paid once; the same outputs. The drift
# tables are per-axis jobs on both paths (rule drift).
if single_job():

    rule analyse:
        input:
            db=dataset(),
        output:
            **single_job_cell_output(),
            layers=str(P.layers),
            plan=str(P.plan),
            cells=str(P.cells),
            coverage=str(P.coverage),
            sums=str(P.sums),
            basis=pca_basis_output(),
            mean=str(P.mean),
            range_stats=str(P.range_stats),
            range=str(P.range),
            hist=str(P.hist),
        log:
            str(P.log("analyse")),
        benchmark:
            str(P.benchmark("analyse"))
        priority: 10
        conda:
            "../envs/filterdb.yaml"
        threads: shard_threads()
        resources:
            mem_mb=lambda wc, input, threads: single_job_mem_mb(input.db, threads),
        params:
            **step_params("analyse"),
        script:
            "../scripts/analyse.py"

else:

    rule layer_table:
        input:
            db=dataset(),
        output:
            layers=str(P.layers),
            plan=str(P.plan),
            cells=str(P.cells),
            coverage=str(P.coverage),
        log:
            str(P.log("layer_table")),
        benchmark:
            str(P.benchmark("layer_table"))
        priority: 10
        localrule: True
        conda:
            "../envs/filterdb.yaml"
        params:
            **step_params("layer_table"),
        script:
            "../scripts/layer_table.py"

    rule shard_sums:
        input:
            db=dataset(),
            plan=str(P.plan),
            layers=str(P.layers),
        output:
            part=temp(str(P.part("sums", "{scatteritem}"))),
            totals=str(P.totals("sums", "{scatteritem}")),
        log:
            str(P.log("shard_sums/{scatteritem}")),
        benchmark:
            str(P.benchmark("shard_sums/{scatteritem}"))
        priority: 10
        conda:
            "../envs/filterdb.yaml"
        threads: shard_threads()
        resources:
            mem_mb=lambda wc, input, threads: job_mem_mb(
                "shard_sums", input.plan, threads
            ),
        params:
            **step_params("sums"),
            kind="sums",
        script:
            "../scripts/shard_pass.py"

    # Not on the chain of passes: the range and hist jobs read the exact totals (stats/totals/) themselves.
    rule gather_sums:
        input:
            parts=gather.shards(str(P.part("sums", "{scatteritem}"))),
            plan=str(P.plan),
        output:
            stats=str(P.sums),
            basis=pca_basis_output(),
            mean=str(P.mean),
        log:
            str(P.log("gather_sums")),
        benchmark:
            str(P.benchmark("gather_sums"))
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
            plan=str(P.plan),
            layers=str(P.layers),
            sums=gather.shards(str(P.totals("sums", "{scatteritem}"))),
        output:
            part=temp(str(P.part("range", "{scatteritem}"))),
            totals=str(P.totals("range", "{scatteritem}")),
        log:
            str(P.log("shard_range/{scatteritem}")),
        benchmark:
            str(P.benchmark("shard_range/{scatteritem}"))
        priority: 10
        conda:
            "../envs/filterdb.yaml"
        threads: shard_threads()
        resources:
            mem_mb=lambda wc, input, threads: job_mem_mb(
                "shard_range", input.plan, threads
            ),
        params:
            **step_params("range"),
            kind="range",
        script:
            "../scripts/shard_pass.py"

    rule gather_range:
        input:
            parts=gather.shards(str(P.part("range", "{scatteritem}"))),
            plan=str(P.plan),
        output:
            stats=str(P.range_stats),
            range=str(P.range),
        log:
            str(P.log("gather_range")),
        benchmark:
            str(P.benchmark("gather_range"))
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
            plan=str(P.plan),
            layers=str(P.layers),
            sums=gather.shards(str(P.totals("sums", "{scatteritem}"))),
            ranges=gather.shards(str(P.totals("range", "{scatteritem}"))),
        output:
            part=temp(str(P.part("hist", "{scatteritem}"))),
            cells=temp(str(P.part("hist", "{scatteritem}", "cells"))),
        log:
            str(P.log("shard_hist/{scatteritem}")),
        benchmark:
            str(P.benchmark("shard_hist/{scatteritem}"))
        priority: 10
        conda:
            "../envs/filterdb.yaml"
        threads: shard_threads()
        resources:
            mem_mb=lambda wc, input, threads: job_mem_mb(
                "shard_hist", input.plan, threads
            ),
        params:
            **step_params("hist"),
            kind="hist",
        script:
            "../scripts/shard_pass.py"

    rule gather_hist:
        input:
            parts=gather.shards(str(P.part("hist", "{scatteritem}"))),
            plan=str(P.plan),
        output:
            stats=str(P.hist),
        log:
            str(P.log("gather_hist")),
        benchmark:
            str(P.benchmark("gather_hist"))
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
            parts=gather.shards(str(P.part("hist", "{scatteritem}"))),
            cells=gather.shards(str(P.part("hist", "{scatteritem}", "cells"))),
            plan=str(P.plan),
        output:
            cell_hist=str(P.cell_hist),
        log:
            str(P.log("gather_cells")),
        benchmark:
            str(P.benchmark("gather_cells"))
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
            str(P.root / "provenance.json"),
            caption="../report/provenance.rst",
            category="Dataset",
            labels={"table": "provenance"},
        ),
    log:
        str(P.log("provenance")),
    localrule: True
    conda:
        "../envs/filterdb.yaml"
    params:
        config=config,
        workflow_dir=WORKFLOW_DIR,
    script:
        "../scripts/provenance.py"
