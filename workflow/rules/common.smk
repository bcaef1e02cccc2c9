import os

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

R = config["results"].rstrip("/")
AXES = list(config["axes"])


# Small steps over the gathered per-layer tables run on the submitting node, not as cluster jobs.
localrules:
    layer_table,
    gather_sums,
    gather_range,
    gather_hist,
    drift,
    dataset_summary,


wildcard_constraints:
    axis="|".join(AXES),
    scatteritem=r"\d+-of-\d+",


def default_shards():
    """One shard per core of this machine (override: --set-scatter shards=N)."""
    return max(1, os.cpu_count() or 1)


def dataset():
    return config["dataset"]


def axis_config(name):
    """The configured axis as a plain dict (validated defaults filled in)."""
    return dict(config["axes"][name])


def stream_params():
    """Streaming settings for the shard jobs (block size, precision, NaN/Inf policy)."""
    return {k: config["stream"][k] for k in ("block_rows", "precision", "nonfinite")}


def n_shards():
    """The number of shards of this run (scattergather, or --set-scatter shards=N)."""
    return len(gather.shards("{scatteritem}"))


def shard_threads():
    """Compute threads per shard job: stream.threads, or (auto) the cores divided by the shards."""
    t = config["stream"]["threads"]
    if t != "auto":
        return int(t)
    try:
        cores = (
            workflow.cores
        )  # undefined on a cluster (executor): one thread per shard job
    except Exception:
        return 1
    cores = cores if isinstance(cores, int) else 1
    return max(1, min(cores, os.cpu_count() or 1) // n_shards())


def job_mem_mb(kind, plan_path, threads=1):
    """Memory a job of this kind needs (MB), estimated from the layer plan (for resources: mem_mb)."""
    from filterdb.accumulate import estimate_mem_mb
    from filterdb.results import load_plan

    h, d = config["histogram"], config["density"]
    return estimate_mem_mb(
        kind,
        load_plan(plan_path),
        shards=n_shards(),
        threads=threads,
        block_rows=config["stream"]["block_rows"],
        bins=h["bins"],
        fine_bins=h["fine_bins"],
        density_pairs=len(d["pairs"]),
        density_bins=d["bins"],
    )


def all_targets():
    targets = [
        f"{R}/pca/basis.tsv",
        f"{R}/pca/mean.tsv",
        f"{R}/pca/range.tsv",
        f"{R}/stats/hist.npz",
    ]
    targets += expand(f"{R}/drift/{{axis}}.tsv", axis=AXES)
    targets += expand(f"{R}/groups/{{axis}}.tsv", axis=AXES)
    targets.append(f"{R}/dataset/summary.tsv")
    targets += globals().get("FIGURE_TARGETS", [])  # workflow/rules/figures.smk
    targets += globals().get("QUALITY_TARGETS", [])  # workflow/rules/quality.smk
    return targets


def depth_bins():
    """Depth bins of the fine histogram cells: the first binned axis on conv_depth_norm, else 10."""
    for a in AXES:
        ax = config["axes"][a]
        if ax.get("kind") == "binned" and ax["column"] == "conv_depth_norm":
            return ax.get("bins", 10)
    return 10


def quality_params():
    """Per-layer quality metrics in the sums pass (None when disabled)."""
    q = config["quality"]
    return {"eps": q["eps"]} if q["enabled"] else None


# The default sample DB (workflow/rules/sample.smk)
SAMPLE = config.get("sample", {})
DIGITS = {"train": True, "epochs": 40, "seed": 0, **SAMPLE.get("digits", {})}


def sample_sheets():
    """The sheets merged into the sample DB: the fetched archives' sheet (+ the digits CNN)."""
    sheets = [f"{R}/sample/models.tsv"]
    if DIGITS["train"]:
        sheets.append(f"{R}/sample/digits/models.tsv")
    return sheets
