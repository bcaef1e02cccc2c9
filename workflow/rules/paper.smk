# Reproduction of the papers (docs/method.md §10): every number the CNN-Filter-DB studies publish that
# a run can recompute, beside this run's value (filterdb.paper; the values are package data,
# filterdb/data/paper_values.tsv). Read from the run's outputs only; the DB's meta and filter header
# tell its release. Target list and caption helpers: paper_* in common.smk.


rule paper_comparison:
    input:
        db=dataset(),
        basis=str(P.basis),
        mean=str(P.mean),
        sums=str(P.sums),
        summary=str(P.dataset("summary")),
        drift=per_axis(P.drift("{axis}")),
        groups=per_axis(P.groups("{axis}")),
        subsets=per_axis(P.subsets("{axis}")),
    output:
        comparison=report(
            str(P.paper),
            caption="../report/paper_comparison.rst",
            category="Reproduction",
            labels={"table": "published values beside this run"},
        ),
    log:
        str(P.log("paper_comparison")),
    localrule: True
    conda:
        "../envs/filterdb.yaml"
    params:
        release=config["paper"]["release"],
        origin=paper_origin(),
        axes=axis_configs(),
        settings={
            "precision": config["stream"]["precision"],
            "histogram": {k: config["histogram"][k] for k in ("bins", "floor", "eps")},
        },
        # for the caption only (the script tells the release from the DB itself). Read when the job
        # is planned: a DB this workflow builds gets the same text before and after it is built;
        # another DB that does not exist yet (the published file before rule published_db fetched
        # it) is stated once it exists, and the changed parameter reruns this one-second job once.
        statement=paper_statement,
        matches=paper_axes(),
    script:
        "../scripts/paper_comparison.py"
