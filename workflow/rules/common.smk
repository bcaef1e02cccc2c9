import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The workflow reaches the package through filterdb.jobs only (and its scripts through it too).
from filterdb import jobs

# Snakemake hands nested --config values over as text ('{enabled: true}' -> "true"): read them by
# the schema's types first (filterdb.settings.coerce_to_schema), so the README's commands work.
_typed = jobs.coerce_config(
    config, workflow.source_path("../schemas/config.schema.yaml")
)
config.clear()
config.update(_typed)

try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as exc:
    import jsonschema

    if not isinstance(exc.__context__, jsonschema.ValidationError):
        raise
    # one line naming the key and what was expected, instead of the schema excerpt
    raise WorkflowError(
        f"invalid config: {jobs.schema_error_line(exc.__context__)}"
    ) from None
try:
    jobs.check_config(config)  # beyond the schema: models.range, the eps grid
except ValueError as exc:
    raise WorkflowError(f"invalid config: {exc}") from None

R = config["results"].rstrip("/")
# this workflow's own folder (provenance: its git revision), also when it is a module of another
# project, whose folder workflow.basedir is then; a URL for a module read from GitHub
WORKFLOW_DIR = os.path.normpath(
    workflow.current_basedir.join("../..").get_path_or_uri(secret_free=True)
)
AXES = list(config["axes"])
# the one results layout (filterdb.results.Paths): every rule's result path comes from it
P = jobs.Paths(R)
# the analysis chain's settings (filterdb.settings.Settings); each rule hands its job its step's slice
S = jobs.settings_of(config)


def per_axis(template, axes=None, **wildcards):
    """Every axis's file of a path pattern with {axis} (and other wildcards, each given a list):
    the one helper for the per-axis outputs and targets."""
    return expand(str(template), axis=AXES if axes is None else axes, **wildcards)


def axis_configs(axes=None):
    """The configured axes (or those named) as plain dicts, the params of a job over several axes."""
    return {a: axis_config(a) for a in (AXES if axes is None else axes)}


def per_axis_outputs(outputs, axes=None):
    """Named outputs of one job over several axes: outputs(axis) gives {name: file} for one axis,
    each named name_axis here."""
    return {
        f"{k}_{a}": v
        for a in (AXES if axes is None else axes)
        for k, v in outputs(a).items()
    }


def step_params(step):
    """The settings rule `step`'s job reads (filterdb.settings.STEP_KEYS), as its params."""
    return {"settings": S.step(step)}


def axis_step_params(step):
    """As step_params, for a per-axis rule: only its axis's settings."""
    return {"settings": lambda wc: S.step(step, wc.axis)}


wildcard_constraints:
    axis="|".join(AXES),
    scatteritem=r"\d+-of-\d+",


def default_shards():
    """One shard (one job: the analyse step) whatever the DB's size with stream.single_job_filters
    auto, the fastest path on one machine; a cluster profile sets its shards (profiles/slurm).
    With an integer limit, one shard up to that many filters, else one per core. A DB this
    workflow builds (sample, synthetic: not there yet) gets one shard. --set-scatter overrides.
    """
    cores = max(1, os.cpu_count() or 1)
    limit = config["stream"]["single_job_filters"]
    if limit == "auto":
        return 1
    if not limit:
        return cores
    path = dataset_local()
    if not os.path.exists(path):
        return 1
    try:
        filters = jobs.db_layout(path)[0]
    except Exception:  # not readable here: one shard, whose job reports why
        return 1
    return 1 if filters <= limit else cores


def single_job():
    """One shard: rule analyse runs the layer table, the passes and the gathers in one job."""
    return n_shards() == 1


def pca_basis_output():
    """The global PCA basis table (rules gather_sums and analyse), a report entry."""
    return report(
        str(P.basis),
        caption="../report/pca_basis_table.rst",
        category="PCA",
        subcategory="Global PCA",
        labels={"figure": "basis table"},
    )


def single_job_cell_output():
    """Rule analyse also writes the fine cell histograms (when histogram.fine_bins > 0)."""
    if S.fine_bins > 0:
        return {"cell_hist": str(P.cell_hist)}
    return {}


def dataset():
    """The DB as the rules' input: its path, or for a URL (``https://...``; any query an installed
    Snakemake storage plugin takes, e.g. ``s3://`` with snakemake-storage-plugin-s3) the storage
    file, which Snakemake retrieves before the first job that reads it and keeps under
    ``.snakemake/storage/`` (keep_local): later runs reuse that copy while the remote one is not
    newer, so a 100 GB DB is downloaded once."""
    path = config["dataset"]
    if is_remote(path):
        db = storage(path, keep_local=True)
        check_local_copy(db)
        return db
    return local_file(path)


_CHECKED_COPIES = set()


def check_local_copy(db):
    """Stop with one line when the kept local copy of a dataset URL is not the size the storage
    states: a download killed by SIGKILL (or a full disk) leaves a short file that Snakemake would
    take as present, its date being newer than the remote's. Once per run, in the main process
    only (a cluster job's node may have no route to the server), one request (the plugin's size(),
    a HEAD for http); skipped when the storage states no size or the remote file is newer (then
    Snakemake retrieves it again), and when the request fails (Snakemake's own then reports it).
    """
    obj = db.flags["storage_object"]
    copy = str(obj.local_path())
    if copy in _CHECKED_COPIES or not workflow.is_main_process:
        return
    _CHECKED_COPIES.add(copy)
    if not os.path.isfile(copy):
        return
    have = os.path.getsize(copy)
    try:
        size = obj.size()
        if not size or size == have or obj.mtime() > os.path.getmtime(copy):
            return
    except Exception:
        return
    raise WorkflowError(
        f"config dataset {obj.print_query}: the local copy {os.path.abspath(copy)} has {have} "
        f"bytes, the storage states {size} (a download cut short?): delete it to download again"
    )


def local_file(path):
    """A configured path as a local path: a file:// URL's path, else the path as given."""
    return path[len("file://") :] if str(path).startswith("file://") else path


def is_remote(path):
    """Whether a configured path is a URL for Snakemake's storage plugins (scheme://...)."""
    return "://" in str(path) and not str(path).startswith("file://")


def published_missing():
    """Whether the published DB (published.path) is still to be made: only then does the workflow
    define the rules that download and decompress it (workflow/rules/published.smk)."""
    return not os.path.exists(config["published"]["path"])


def published_archive():
    """The input of rule published_download, the published archive (published.url) through Snakemake's
    storage plugin for http(s) (the mechanism of a `dataset` URL), the local file for file:// or a
    path."""
    url = config["published"]["url"]
    if is_remote(url):
        return storage(url)
    return url[len("file://") :] if url.startswith("file://") else url


def published_download_name():
    """The checked download beside the DB: <path>.xz for an .xz URL, else <path>.download."""
    p = config["published"]
    return p["path"] + (".xz" if jobs.is_xz(p["url"]) else ".download")


def published_download_output():
    """The output of rule published_download, temporary (removed once published_db has decompressed
    it) unless published.keep_compressed."""
    name = published_download_name()
    return name if config["published"]["keep_compressed"] else temp(name)


def dataset_local():
    """The local file of the DB, for what is read when the jobs are planned (its size, layout,
    model count): the path, or the storage file's local copy (which may not exist yet).
    """
    path = config["dataset"]
    if is_remote(path):
        return str(dataset().flags["storage_object"].local_path())
    return local_file(path)


def axis_config(name):
    """The configured axis as a plain dict (validated defaults filled in)."""
    return dict(config["axes"][name])


def n_shards():
    """The number of shards of this run (scattergather, or --set-scatter shards=N)."""
    return len(gather.shards("{scatteritem}"))


def shard_threads():
    """Compute threads per shard job: stream.threads, or (auto) a function of the job's DB for
    `threads:` (jobs.pass_threads): the cores divided by the shards, at most one per
    stream.block_rows filters of a shard (evaluated again when the DB is there, for a DB the run
    builds)."""
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
    cores = min(cores, os.cpu_count() or 1)
    shards = n_shards()
    block_rows = config["stream"]["block_rows"]
    return lambda wildcards, input: jobs.pass_threads(
        input.db, cores, shards, block_rows
    )


def job_mem_mb(kind, plan_path, threads=1):
    """Memory a job of this kind needs (MB), estimated from the layer plan (for resources: mem_mb)."""
    return jobs.job_mem_mb(
        config, kind, plan_path, dataset_local(), n_shards(), threads
    )


def single_job_mem_mb(db_path, threads=1):
    """Memory (MB) of the job of rule analyse (its layer plan does not exist yet)."""
    return jobs.single_job_mem_mb(config, db_path, threads)


def all_targets():
    """Every final output: the contract tables, figure_targets(), quality_targets() and
    uncertainty_targets()."""
    targets = [str(p) for p in (P.basis, P.mean, P.range, P.hist)]
    targets += per_axis(P.drift("{axis}")) + per_axis(P.groups("{axis}"))
    targets.append(str(P.dataset("summary")))
    targets.append(str(P.dataset("models")))
    targets.append(str(P.provenance))
    return (
        targets
        + figure_targets()
        + quality_targets()
        + uncertainty_targets()
        + grid_targets()
        + paper_targets()
        + zoo_targets()
        + model_axes_targets()
        + compare_targets()
    )


# Figures (workflow/rules/figures.smk)
PCA_KINDS = ["cumulative_variance", "covariance", "eigenimages"]


def axis_figure_outputs():
    """The figures of one axis (of the fig_axis rule), each its own report item, the subset PCA
    eigenimages and their table, the drift heatmap, with fine histograms the ridge plot and its
    bandwidths, and with quality.enabled the quality of the axis's groups (table and figure).
    """
    out = {
        "eigenimages_svg": report(
            str(P.figure("eigenimages_{axis}")),
            caption="../report/subset_eigenimages.rst",
            category="PCA",
            subcategory="Subset PCA",
            labels={"axis": "{axis}", "figure": "eigenimages"},
        ),
        "eigenimages_png": str(P.figure("eigenimages_{axis}", "png")),
        "subsets": report(
            str(P.subsets("{axis}")),
            caption="../report/subset_table.rst",
            category="PCA",
            subcategory="Subset PCA",
            labels={"axis": "{axis}", "figure": "table"},
        ),
        "drift_svg": report(
            str(P.figure("drift_{axis}")),
            caption="../report/drift_heatmap.rst",
            category="Drift",
            subcategory="{axis}",
            labels={"axis": "{axis}", "figure": "heatmap"},
        ),
        "drift_png": str(P.figure("drift_{axis}", "png")),
    }
    if S.fine_bins > 0:
        out["ridge_svg"] = report(
            str(P.figure("ridge_{axis}")),
            caption="../report/ridge.rst",
            category="Ridge plots",
            subcategory="{axis}",
            labels={"axis": "{axis}", "figure": "ridge plot"},
        )
        out["ridge_png"] = str(P.figure("ridge_{axis}", "png"))
        out["ridge"] = report(
            str(P.ridge("{axis}")),
            caption="../report/ridge_table.rst",
            category="Ridge plots",
            subcategory="{axis}",
            labels={"axis": "{axis}", "figure": "bandwidths"},
        )
    if config["quality"]["enabled"]:
        out["quality_table"] = str(P.quality("by_{axis}"))
        out["quality_svg"] = report(
            str(P.figure("quality_{axis}")),
            caption="../report/quality_groups.rst",
            category="Quality",
            subcategory="{axis}",
            labels={"axis": "{axis}", "figure": "quality per group"},
        )
        out["quality_png"] = str(P.figure("quality_{axis}", "png"))
    return out


def axis_figure_inputs():
    """What the figures of one axis read (the fine histograms only for the ridge plot, the layer
    quality table only with quality.enabled)."""
    inp = {
        "sums": str(P.sums),
        "layers": str(P.layers),
        "groups": str(P.groups("{axis}")),
        "drift": str(P.drift("{axis}")),
    }
    if S.fine_bins > 0:
        inp.update(
            hist=str(P.hist),
            cell_hist=str(P.cell_hist),
            plan=str(P.plan),
            range=str(P.range),
        )
    if config["quality"]["enabled"]:
        inp["quality"] = str(P.quality("layers"))
    return inp


def global_quality_inputs():
    """What the quality figures of no axis (drawn by fig_global) read besides the sums: the layer
    quality table; none without quality.enabled."""
    if not config["quality"]["enabled"]:
        return {}
    return {"quality": str(P.quality("layers"))}


def global_quality_outputs():
    """The quality figures of no axis (drawn by fig_global) with quality.enabled, the profile down
    the conv depth (table and figure) and the flags' sensitivity to their thresholds (table and
    figure)."""
    if not config["quality"]["enabled"]:
        return {}
    return {
        "profile_table": str(P.quality("by_depth_bin")),
        "profile_svg": report(
            str(P.figure("quality_depth_profile", "svg")),
            caption="../report/quality_depth.rst",
            category="Quality",
            subcategory="Depth",
            labels={"axis": "depth", "figure": "quality vs depth"},
        ),
        "profile_png": str(P.figure("quality_depth_profile", "png")),
        "sensitivity_table": report(
            str(P.quality("sensitivity")),
            caption="../report/quality_sensitivity_table.rst",
            category="Quality",
            subcategory="Sensitivity",
            labels={"table": "sensitivity of the flags"},
        ),
        "sensitivity_svg": report(
            str(P.figure("quality_sensitivity", "svg")),
            caption="../report/quality_sensitivity.rst",
            category="Quality",
            subcategory="Sensitivity",
            labels={"figure": "sensitivity of the flags"},
        ),
        "sensitivity_png": str(P.figure("quality_sensitivity", "png")),
    }


def density_pairs():
    """The configured coefficient pairs of the 2-D densities, as (a, b) tuples."""
    return [tuple(int(v) for v in p) for p in config["density"]["pairs"]]


def combined_axes():
    """The axes of the headline figure (figures.combined.axes), checked against the axes mapping."""
    names = list(config["figures"]["combined"]["axes"])
    unknown = [a for a in names if a not in AXES]
    if unknown:
        raise ValueError(
            f"config figures/combined/axes: {', '.join(map(repr, unknown))} is not an axis "
            f"of the axes mapping ({', '.join(AXES)})"
        )
    return names


def figure_targets():
    """Figures of workflow/rules/figures.smk (SVG and PNG) and their tables."""
    ext = ["svg", "png"]
    targets = expand(str(P.figure("pca_{kind}", "{ext}")), kind=PCA_KINDS, ext=ext)
    targets += per_axis(
        P.figure("{fig}_{axis}", "{ext}"), fig=["eigenimages", "drift"], ext=ext
    )
    targets += per_axis(P.subsets("{axis}"))
    targets += [str(P.figure(n, e)) for n in ("drift_box", "kl_combined") for e in ext]
    targets += [
        str(P.figure(f"density_c{a}_c{b}", e)) for a, b in density_pairs() for e in ext
    ]
    if S.fine_bins > 0:
        targets += per_axis(P.figure("ridge_{axis}", "{ext}"), ext=ext)
        targets += per_axis(P.ridge("{axis}"))
    return targets


def quality_targets():
    """Quality tables and figures of workflow/rules/quality.smk (none when quality.enabled is off)."""
    if not config["quality"]["enabled"]:
        return []
    ext = ["svg", "png"]
    return (
        [str(P.quality(t)) for t in ("layers", "models", "by_depth_bin", "sensitivity")]
        + per_axis(P.quality("by_{axis}"))
        + [
            str(P.figure(n, e))
            for n in ("quality_depth_profile", "quality_sensitivity")
            for e in ext
        ]
        + per_axis(P.figure("quality_{axis}", "{ext}"), ext=ext)
    )


def uncertainty_targets():
    """Drift confidence intervals, permutation nulls and their figures (workflow/rules/uncertainty.smk;
    none unless uncertainty.enabled)."""
    if not config["uncertainty"]["enabled"]:
        return []
    return (
        [str(P.uncertainty)]
        + per_axis(P.drift_ci("{axis}"))
        + per_axis(P.drift_null("{axis}"))
        + per_axis(P.figure("drift_significance_{axis}", "svg"))
    )


# Filter grids (workflow/rules/grids.smk)
def grid_axes():
    """The axes that get a filter grid: grids.axes (all: every configured axis), checked against
    the axes mapping."""
    g = config["grids"]["axes"]
    names = AXES if g == "all" else list(dict.fromkeys(g))
    unknown = [a for a in names if a not in AXES]
    if unknown:
        raise ValueError(
            f"config grids/axes: {', '.join(map(repr, unknown))} is not an axis "
            f"of the axes mapping ({', '.join(AXES)})"
        )
    return names


def grid_targets():
    """Filter grids of workflow/rules/grids.smk (none when grids.enabled is off): the figure of
    every axis of grid_axes() and of one model (SVG and PNG), and the tables of the rows they
    show."""
    if not config["grids"]["enabled"]:
        return []
    names = grid_axes() + ["model"]
    return per_axis(
        P.figure("filter_grid_{axis}", "{ext}"), names, ext=["svg", "png"]
    ) + per_axis(P.grid("{axis}"), names)


def grid_outputs(a):
    """One axis's outputs of the filter_grids rule, its figure (SVG, a report item; PNG) and the table of
    the rows it shows."""
    return {
        "svg": report(
            str(P.figure(f"filter_grid_{a}")),
            caption="../report/filter_grid.rst",
            category="Filters",
            subcategory=a,
            labels={"axis": a, "figure": "filter grid"},
        ),
        "png": str(P.figure(f"filter_grid_{a}", "png")),
        "table": report(
            str(P.grid(a)),
            caption="../report/filter_grid_table.rst",
            category="Filters",
            subcategory=a,
            labels={"axis": a, "figure": "filter grid rows"},
        ),
    }


# Reproduction of the papers (workflow/rules/paper.smk)
def paper_origin():
    """What the configured dataset is when this workflow builds it (the sample DB, a synthetic DB),
    else '': such a DB is never the study's data, whatever its counts."""
    built = {
        str(
            P.sample("sample.h5")
        ): "the sample DB this workflow builds (rule build_sample_db)",
        str(
            P.synthetic
        ): "a synthetic DB this workflow generates (rule synthetic_db; not real data)",
    }
    built = {os.path.normpath(k): v for k, v in built.items()}
    return built.get(os.path.normpath(dataset_local()), "")


def paper_axes():
    """For the caption: the configured axis with each of the study's axis definitions (or why none has)."""
    return {
        k: (f"axis {m.name}" if m.name else m.reason)
        for k, m in jobs.study_axes(config["axes"]).items()
    }


def paper_statement(wildcards):
    """For the caption: the release statement, read when the job is planned (the script tells the
    release from the DB itself). A DB this workflow builds gets the same text before and after it
    is built; another DB that does not exist yet (the published file before rule published_db
    fetched it) is stated once it exists, and the changed parameter reruns this one-second job once.
    """
    return jobs.planned_statement(
        dataset_local(), config["paper"]["release"], paper_origin()
    )


def paper_targets():
    """The reproduction table paper/comparison.tsv (workflow/rules/paper.smk)."""
    return [str(P.paper)]


# Model to model (workflow/rules/models.smk, model_axes.smk)
def zoo_decision():
    """(on, why) for the model x model analysis: models.enabled true/false, or auto from the DB's
    model count (filterdb.zoo.count_models, a read of the meta index's codes). A DB this run builds
    first has no count yet: the synthetic DB has synthetic.models, another (the sample DB) runs and
    its job checks the count (outside 3 .. models.max_models it writes tables without rows).
    """
    m = config["models"]
    if m["enabled"] != "auto":
        return jobs.zoo_decide(m["enabled"], None, m["max_models"])
    path = dataset_local()
    if os.path.exists(path):
        n = jobs.count_models(path)
    elif os.path.normpath(path) == os.path.normpath(str(P.synthetic)):
        n = config["synthetic"]["models"]
    else:
        n = None
    return jobs.zoo_decide("auto", n, m["max_models"])


def zoo_label_axes():
    """The axes that label models (every kind but binned): one embedding figure each."""
    return jobs.zoo_label_axes(config["axes"])


def zoo_settings():
    """The settings of rule models (config models, without enabled and the axis tests' axes)."""
    keys = ("weights", "range", "linkage", "optimal_ordering", "nearest")
    return {k: config["models"][k] for k in keys}


def zoo_targets():
    """The model x model tables and figures of workflow/rules/models.smk (none when
    zoo_decision() is off)."""
    if not zoo_decision()[0]:
        return []
    ext = ["svg", "png"]
    tables = ["drift", "linkage", "order", "embedding", "nearest", "summary"]
    return (
        [str(P.models(t)) for t in tables]
        + [str(P.figure("models_heatmap", e)) for e in ext]
        + per_axis(
            P.figure("models_embedding_{axis}", "{ext}"), zoo_label_axes(), ext=ext
        )
    )


def model_axes_targets():
    """Which axis explains the model-to-model drift (workflow/rules/model_axes.smk):
    the table and the figure (SVG and PNG); none when the model x model matrix is not
    made (zoo_targets() empty). models.axes.include is checked here: an unknown axis
    stops the run at its start."""
    jobs.selected_axes(config["axes"], config["models"]["axes"]["include"])
    if not zoo_targets():
        return []
    return [str(P.models("axes"))] + [
        str(P.figure("models_axes", e)) for e in ("svg", "png")
    ]


def embedding_outputs(a):
    """One labelling axis's model embedding figure of rule models (SVG, a report item; PNG)."""
    return {
        "svg": report(
            str(P.figure(f"models_embedding_{a}")),
            caption="../report/models_embedding.rst",
            category="Models",
            subcategory="Embedding",
            labels={"figure": "embedding", "axis": a},
        ),
        "png": str(P.figure(f"models_embedding_{a}", "png")),
    }


# Your own models against a reference (workflow/rules/compare.smk)
def compare_files():
    """The outputs of the compare rule by name (the files filterdb.compare.write_outputs writes),
    the tables, the model x model heatmap, and with compare.order the trajectory."""
    d = P.compare
    files = {
        "drift": str(d("drift.tsv")),
        "heatmap_svg": str(d("drift_heatmap.svg")),
        "heatmap_png": str(d("drift_heatmap.png")),
        "models": str(d("models.tsv")),
        "layer_drift": str(d("layer_drift.tsv")),
        "unmatched": str(d("unmatched_layers.tsv")),
        "depth_drift": str(d("depth_drift.tsv")),
        "groups": str(d("groups.tsv")),
        "quality_layers": str(d("quality_layers.tsv")),
        "quality_models": str(d("quality_models.tsv")),
        "summary": str(d("summary.json")),
    }
    if config["compare"]["order"]:
        files.update(
            trajectory=str(d("trajectory.tsv")),
            trajectory_svg=str(d("trajectory.svg")),
            trajectory_png=str(d("trajectory.png")),
        )
    return files


def compare_targets():
    """Outputs of the compare rule (none unless compare.sheet is set)."""
    if not config["compare"]["sheet"]:
        return []
    return list(compare_files().values())


def compare_reference():
    """The reference results folder of the compare rule (compare.reference, else this run's results)."""
    return (config["compare"]["reference"] or R).rstrip("/")


def compare_inputs(wildcards):
    """Inputs of the compare rule (the sheet, the reference's tables (never its filters) and the sheet's
    local model files of its `path` rows); a sheet that cannot be read here lists no model file, and
    the job reports why in one line."""
    ref = jobs.Paths(compare_reference())
    sheet = config["compare"]["sheet"]
    inputs = {
        "sheet": sheet,
        "basis": str(ref.basis),
        "mean": str(ref.mean),
        "range": str(ref.range),
        "layers": str(ref.layers),
        "hist": str(ref.hist),
        "models": [],
    }
    try:
        base = os.path.dirname(os.path.abspath(sheet))
        inputs["models"] = [
            p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))
            for p in jobs.read_sheet(sheet)["path"]
            if p
        ]
    except (OSError, ValueError):
        pass
    return inputs


def compare_precision():
    """The precision models are scaled in: this run's stream.precision when the reference is
    this run; None (the reference run's, from its provenance.json) for another results folder.
    """
    return None if config["compare"]["reference"] else config["stream"]["precision"]


def drift_box_uncertainty():
    """Input ``uncertainty`` of the drift box plot (drawn by fig_global in figures.smk), the axis
    tests, whose ``mean_D_lo``, ``mean_D_hi`` are drawn beside the boxes, when uncertainty.enabled
    with bootstrap replicates; else none (the study's figure)."""
    u = config["uncertainty"]
    if not (u["enabled"] and u["bootstrap"] > 0):
        return {}
    return {"uncertainty": str(P.uncertainty)}


def quality_flag_settings():
    """The layer and model flags' settings (filterdb.quality_tables.thresholds_with_defaults):
    quality.thresholds and the rule, quality.rule."""
    q = config["quality"]
    return {**q["thresholds"], "rule": q["rule"]}


# The default sample DB (workflow/rules/sample.smk)
def sample_sheet():
    """The models sheet of the sample DB: sample.sheet, or (null) the sheet this workflow ships,
    found from the workflow's own folder (a local checkout, or Snakemake's source cache when the
    workflow is a module from GitHub), not from the folder Snakemake is run in."""
    sheet = config["sample"]["sheet"]
    return sheet or workflow.source_path("../../config/sample_models.tsv")


def sample_sheets():
    """The sheets merged into the sample DB: the fetched archives' sheet (+ the digits CNN)."""
    sheets = [str(P.sample("models.tsv"))]
    if config["sample"]["digits"]["train"]:
        sheets.append(str(P.sample("digits/models.tsv")))
    return sheets


# The run is over: let the Snakemake process exit now, not a second later (jobs.cancel_pending_timers).
onsuccess:
    jobs.cancel_pending_timers()


onerror:
    jobs.cancel_pending_timers()
