"""The workflow's side of the package: what its rules and thin scripts call, and nothing else.

* **Job steps**: each script hands its Snakemake job to one function here, which runs one step of
  the analysis chain (:class:`filterdb.pipeline.Chain`, the one driver) with the settings its
  rule hands over (its step's slice of the filled config, :meth:`filterdb.settings.Settings.step`):
  rule ``analyse`` (the layer table, the three passes and their gathers in one job), the per-step
  rules (``layer_table``, a ``shard_{sums,range,hist}`` job per shard, the gathers) and ``drift``
  (one job per axis).
* **Planning helpers** for ``workflow/rules/common.smk``: the step settings, the DB's layout, the
  pass jobs' threads (:func:`pass_threads`) and memory estimates (:func:`job_mem_mb`,
  :func:`single_job_mem_mb`), and the end-of-run hook (:func:`cancel_pending_timers`), so that the
  workflow reaches the package only through this module and :mod:`filterdb.results` (the results
  layout).

numpy-only at import: pandas, h5py and the DB reader are imported by the steps that need them (a
shard or gather job starts without them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from . import results
from .shape import STUDY

#: The results layout (:class:`filterdb.results.Paths`), for the rules' paths.
Paths = results.Paths

# --- planning helpers (common.smk) ---


def coerce_config(config: Mapping, schema_path) -> dict:
    """``--config`` strings read by the schema's types (:func:`filterdb.settings.coerce_to_schema`)."""
    from .settings import coerce_to_schema

    return coerce_to_schema(config, schema_path)


def schema_error_line(exc) -> str:
    """One line for a config that fails the schema (:func:`filterdb.settings.schema_error_line`)."""
    from .settings import schema_error_line as line

    return line(exc)


def is_xz(url: str) -> bool:
    """Whether the published download is xz-compressed (:func:`filterdb.fetch.is_xz`)."""
    from .fetch import is_xz as xz

    return xz(url)


def study_axes(axes: Mapping) -> dict:
    """The configured axis of each of the study's axes (:func:`filterdb.paper.study_axes`)."""
    from .paper import study_axes as study

    return study(axes)


def planned_statement(path, release, origin: str) -> str:
    """The reproduction table's release statement (:func:`filterdb.paper.planned_statement`)."""
    from .paper import planned_statement as statement

    return statement(path, release, origin)


def count_models(path) -> int:
    """The DB's model count, from its meta index (:func:`filterdb.zoo.count_models`)."""
    from .zoo import count_models as count

    return count(path)


def zoo_decide(enabled, n_models, max_models):
    """(on, why) for the model x model analysis (:func:`filterdb.zoo.decide`)."""
    from .zoo import decide

    return decide(enabled, n_models, max_models)


def zoo_label_axes(axes: Mapping) -> list:
    """The axes that label models (:func:`filterdb.zoo.label_axes`)."""
    from .zoo import label_axes

    return label_axes(axes)


def selected_axes(axes: Mapping, include):
    """The axes the model x model axis tests take (:func:`filterdb.distance_tests.selected_axes`)."""
    from .distance_tests import selected_axes as selected

    return selected(axes, include)


def read_sheet(path):
    """A models sheet (:func:`filterdb.ingest.sheet.read_sheet`)."""
    from .ingest.sheet import read_sheet as read

    return read(path)


def settings_of(config: Mapping):
    """The chain's :class:`filterdb.settings.Settings` of the workflow's filled config."""
    from .settings import Settings

    return Settings.from_config(config, filled=True)


def step_params(config: Mapping, step: str, axis: str | None = None) -> dict:
    """The settings rule ``step`` hands its job (its params): the slice of the config it reads.

    Parameters
    ----------
    config : mapping
        The workflow's filled config.
    step : str
        ``analyse``, ``layer_table``, ``sums``, ``range``, ``hist`` or ``drift``.
    axis : str, optional
        The axis of a per-axis step.

    Returns
    -------
    dict
    """
    return settings_of(config).step(step, axis)


def db_layout(path) -> tuple[int, int]:
    """(filters, bytes per stored filter) of a DB: its dtype's size times the values per filter
    from the shape of its filter dataset.

    Parameters
    ----------
    path : str

    Returns
    -------
    (int, int)

    Raises
    ------
    ValueError, OSError
        When the file is not a DB that can be read here.
    """
    from .db import filter_layout
    from .pipeline import filter_bytes

    key, n, _ = filter_layout(path)
    return n, filter_bytes(path, key)


def _estimate_dims(config: Mapping, width: int):
    """The sizes of the statistics' arrays (:class:`filterdb.statistics.Dims`) under the filled
    ``config`` for filters of ``width`` values."""
    from .passes import PassSettings, pass_dims
    from .settings import Settings

    settings = Settings.from_config(config, filled=True)
    return pass_dims(PassSettings.from_settings(settings), width, settings.bins)


def job_mem_mb(config: Mapping, kind: str, plan_path, db_path, shards: int, threads: int = 1) -> int:
    """Memory (MB) a job of ``kind`` (``shard_sums``, ``gather_hist``, ...) needs, estimated from
    the layer plan and the DB's bytes per filter (:func:`filterdb.memory.estimate_mem_mb`).

    Parameters
    ----------
    config : mapping
        The workflow's filled config.
    kind : str
    plan_path, db_path : str
        The layer plan and the DB (read for its layout when it exists).
    shards, threads : int

    Returns
    -------
    int
    """
    from .memory import estimate_mem_mb

    plan = results.load_plan(plan_path)
    layout = _readable_layout(db_path)
    row_bytes = layout[1] if layout is not None else STUDY.row_bytes(4)  # a float32 3x3 DB until it is readable
    return estimate_mem_mb(
        kind,
        plan,
        _estimate_dims(config, plan.width),
        block_rows=config["stream"]["block_rows"],
        row_bytes=row_bytes,
        shards=shards,
        threads=threads,
    )


def pass_threads(db_path, cores: int, shards: int, block_rows: int) -> int:
    """Threads of a pass job under ``stream.threads: auto`` (:func:`filterdb.settings.auto_threads`),
    from the filter count of the DB at ``db_path`` (when it is not readable yet: the cores a
    shard gets)."""
    from .settings import auto_threads

    layout = _readable_layout(db_path)
    return auto_threads(layout[0] if layout is not None else None, cores, shards, block_rows)


def _readable_layout(db_path):
    """:func:`db_layout`, or None when the DB is not there or cannot be read here (the job that
    opens it reports why, in one line)."""
    if not os.path.exists(db_path):
        return None
    try:
        return db_layout(db_path)
    except Exception:
        return None


def single_job_mem_mb(config: Mapping, db_path, threads: int = 1) -> int:
    """Memory (MB) of the job of rule ``analyse``, from the DB's layout and its meta table's row
    count (its layer plan does not exist yet; :func:`filterdb.memory.estimate_single_job_mb`).

    Parameters
    ----------
    config : mapping
    db_path : str
    threads : int

    Returns
    -------
    int
    """
    from .db import count_layers, filter_geometry
    from .memory import estimate_single_job_mb

    filters, layers, row_bytes, width = 0, None, STUDY.row_bytes(4), STUDY.size
    layout = _readable_layout(db_path)
    if layout is not None:
        filters, row_bytes = layout
        layers = count_layers(db_path)
        width = filter_geometry(db_path)[3].size  # values per filter (the per-layer arrays grow with it)
    return estimate_single_job_mb(
        filters,
        _estimate_dims(config, width),
        block_rows=config["stream"]["block_rows"],
        row_bytes=row_bytes,
        threads=threads,
        layers=layers,
    )


def check_config(config: Mapping) -> None:
    """Checks of the config beyond its schema, at the run's start (a ValueError naming the key):
    ``models.range`` and the eps grid of ``quality.sensitivity.eps``."""
    from .accumulate import eps_grid, fixed_range

    fixed_range(config.get("models", {}).get("range"))
    q = config["quality"]
    eps_grid(q["eps"], q["sensitivity"]["eps"])


def cancel_pending_timers() -> int:
    """Cancel every pending :class:`threading.Timer` of this process; the number cancelled.

    For the workflow's ``onsuccess``/``onerror`` hooks: Snakemake's scheduler arms a (non-daemon)
    one-second ``threading.Timer`` after each round of job submissions (its re-evaluation for
    ``--max-jobs-per-timespan``), and Python waits for it at exit, so every run lingers up to a
    second after its last job. Once the run is over, no such re-evaluation has anything to do."""
    import threading

    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()]
    for t in timers:
        t.cancel()
    return len(timers)


# --- job steps (workflow/scripts) ---


def _chain(snakemake):
    """The chain of a job: its DB (input ``db``, if any), its rule's settings, its threads."""
    from .pipeline import Chain
    from .settings import Settings

    settings = Settings.from_config(snakemake.params.settings, filled=True)
    return Chain(snakemake.input.get("db"), settings, threads=snakemake.threads)


def layer_table(snakemake) -> None:
    """Rule ``layer_table``: the layer table, the layer plan, the fine-histogram cells and the
    coverage of the filter array (also printed to the log; config ``checks``)."""
    _chain(snakemake).layer_table(snakemake.output)


def shard_pass(snakemake) -> None:
    """Rules ``shard_{sums,range,hist}``: one pass over one shard's layers, its part (and, for
    sums and range, the small exact totals the next passes read)."""
    from .accumulate import basis_from_parts, range_from_parts, shard_totals
    from .histogram import uniform_edges
    from .stream import parse_scatteritem

    inp, out, kind = snakemake.input, snakemake.output, snakemake.params.kind
    shard, shards = parse_scatteritem(snakemake.wildcards.scatteritem)
    chain = _chain(snakemake)
    plan = results.load_plan(inp.plan)
    kw = {}
    if kind != "sums":  # straight from the previous passes' parts (exact sums, min/max): no wait for the gathers
        g = basis_from_parts(list(inp.sums))
        kw["basis"] = (g.mean, g.components)
    if kind == "hist":
        kw["edges"] = uniform_edges(*range_from_parts(list(inp.ranges)), chain.settings.bins)
    part = chain.shard(
        kind,
        plan,
        shard,
        shards,
        layer_names=lambda g: results.describe_layer(inp.layers, g),
        cell_sink=out.get("cells"),
        **kw,
    )
    results.save_npz(out.part, part)
    if "totals" in out.keys():  # the exact totals the next passes need (kept: small)
        results.save_npz(out.totals, shard_totals(part))


def gather_pass(snakemake) -> None:
    """Rules ``gather_{sums,range,hist,cells}``: the parts of one pass, one part at a time."""
    from .accumulate import gather_parts
    from .pipeline import Chain

    out = snakemake.output
    plan = results.load_plan(snakemake.input.plan)
    cells = list(snakemake.input.get("cells", [])) or None
    parts = list(snakemake.input.parts)
    if "cell_hist" in out.keys():  # gather_cells: only the fine cell histograms

        def gather(tmp):
            gather_parts(parts, plan.n_layers, plan.n_cells, tmp, cell_files=cells)

        results.atomic_write(out.cell_hist, gather)  # renamed only once the gather is complete
        print(f"gathered the fine histograms of {plan.n_cells} cells from {len(parts)} parts")
        return
    g = gather_parts(parts, plan.n_layers, plan.n_cells, cells=False)
    Chain.write_gathered(g, out.stats, out.get("basis"), out.get("mean"), out.get("range"))
    print(f"gathered {len(parts)} parts, {plan.n_layers} layers: {sorted(g)}")


def analyse(snakemake) -> None:
    """Rule ``analyse``: the layer table, the three passes (the job's threads each) and their
    gathers in one job, with the same outputs as the per-step rules; the fine cell histograms
    (``cell_hist``, when asked for) are written here too."""
    chain = _chain(snakemake)
    db, plan, _ = chain.layer_table(snakemake.output)
    chain.passes(db, plan, 1, snakemake.output)


def drift(snakemake) -> None:
    """Rule ``drift``: the group table and drift matrix of one axis (``{axis}``)."""
    from .axes import Axis

    inp, out = snakemake.input, snakemake.output
    name = snakemake.wildcards.axis
    chain = _chain(snakemake)
    axis = Axis.from_config(name, chain.settings.axes[name])
    chain.drift(results.read_layers(inp.layers), results.load_npz(inp.hist), results.read_evr(inp.basis), axis, out)


def concat_tsv(paths: list, out) -> None:
    """The rows of TSV files with one header, as they are written (their text: no number is read
    and written again), into ``out`` (written atomically); every header must be the same.

    Parameters
    ----------
    paths : list of str
    out : str

    Raises
    ------
    ValueError
        When a file's header differs from the first's (naming the file).
    """
    header, rows = None, []
    for path in paths:
        with open(path) as fh:
            lines = fh.read().splitlines(keepends=True)
        if not lines:
            raise ValueError(f"{path}: empty, expected a header line")
        if header is None:
            header = lines[0]
        elif lines[0] != header:
            raise ValueError(f"{path}: header {lines[0].strip()!r} differs from {header.strip()!r} of {paths[0]}")
        rows += lines[1:]

    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write((header or "") + "".join(rows))

    results.atomic_write(out, write)
    print(f"{len(rows)} rows from {len(paths)} files")
