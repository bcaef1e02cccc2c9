"""The workflow's job steps, shared by the per-step scripts and the one-job path.

A sharded run has a job per step: ``layer_table``, a ``shard_{sums,range,hist}`` job per shard, the
gathers and ``drift``. A run with one shard (the default for a small DB: config
``stream.single_job_filters``) does the same steps in one job, rule ``analyse``: every step's
Python start-up, imports and read of the previous step's files is paid once, which is most of the
time of a small DB. Both paths call the functions below, so they write the same files.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

from . import results
from .accumulate import CellHistFile, PassSettings, coefficient_range, fixed_range, gather_parts, run_shard
from .histogram import uniform_edges
from .pca import global_pca

# pandas, h5py and the DB reader are imported by the steps that need them: a shard or gather job
# starts without them (~1 s here)


def pass_settings(
    stream: Mapping,
    quality: Mapping | None,
    fine_bins: int,
    density: Mapping,
    threads: int,
    db_path=None,
    fixed=None,
):
    """:class:`filterdb.accumulate.PassSettings` from the rule's params (config ``stream``,
    ``quality`` with ``eps_grid`` = ``quality.sensitivity.eps``, ``histogram.fine_bins``,
    ``density``, ``models.range`` as ``fixed``) and its threads; ``stream.bypass_page_cache:
    auto`` bypasses it when the DB ``db_path`` is larger than this machine's memory."""
    from .stream import page_cache_fits

    d = dict(density or {})
    bypass = stream.get("bypass_page_cache", "auto")
    if bypass == "auto":
        bypass = db_path is not None and not page_cache_fits(db_path)
    return PassSettings(
        bypass_cache=bool(bypass),
        block_rows=stream["block_rows"],
        threads=threads,
        precision=stream["precision"],
        nonfinite=stream["nonfinite"],
        quality_eps=(quality or {}).get("eps"),
        quality_eps_grid=tuple((quality or {}).get("eps_grid") or ()),
        orthogonality=(quality or {}).get("orthogonality", True),
        fine_bins=fine_bins,
        density_pairs=[tuple(v) for v in d.get("pairs", [])],
        density_bins=d.get("bins", 512),
        density_extent=tuple(d.get("extent", (-3.3, 3.3))),
        fixed_range=fixed_range(fixed),
    )


def layer_table(
    db_path: str, columns: list[str], depth_bins: int, layers_out, plan_out, cells_out, coverage_out, checks
):
    """Rule ``layer_table``: read the DB's meta, write the layer table, the layer plan, the fine
    histogram cells and the coverage of the filter array (rows of no layer, empty layers: also
    printed to the log; config ``checks``). Returns ``(db, plan)``."""
    from . import pipeline
    from .db import open_db

    db = open_db(db_path, required_columns=columns, checks=dict(checks))
    for line in db.coverage.messages(db.path):
        for stream in {sys.stderr, sys.__stderr__}:  # the log, and the terminal (workflow scripts log stderr)
            print(f"warning: {line}", file=stream)
    if db.dtype != "float32":
        size = db.shape.row_bytes({"float16": 2, "float64": 8}.get(db.dtype, 4))
        print(
            f"note: {db.path}: dataset '{db.key}' is {db.dtype} ({size} B per filter): the passes read it as "
            f"stored and their kernels round each value as stream.precision says",
            file=sys.stderr,
        )
    plan, cells = pipeline.make_plan(db.layers, depth_bins, db.key, db.width)
    results.write_layers(db.layers, layers_out)
    results.save_npz(plan_out, plan.arrays())
    results.write_tsv(cells, cells_out, floats=False)
    results.write_tsv(db.coverage.table(), coverage_out, floats=False)
    print(
        f"{db.path}: dataset '{db.key}', {db.n_rows} rows, {len(db.layers)} layers, "
        f"{db.layers['model_id'].nunique()} models, {len(cells)} fine-histogram cells"
    )
    return db, plan


def write_gathered(gathered: dict, stats_out, basis_out=None, mean_out=None, range_out=None):
    """Write a gathered pass (rules ``gather_{sums,range,hist}``): its arrays, and the global PCA
    (sums) or the shared coefficient range (range). Returns the PCA, the range or None."""
    results.save_npz(stats_out, gathered)
    if range_out is not None:
        lo, hi = coefficient_range(gathered["cmin"], gathered["cmax"])
        results.write_range(range_out, lo, hi)
        return lo, hi
    if basis_out is not None:
        p = global_pca(gathered)
        results.write_basis(p, basis_out, mean_out)
        print(f"PCA over {p.n} filters; cumulative explained variance {p.explained_variance_ratio.cumsum().round(3)}")
        return p
    return None


def drift_tables(layers, hist: Mapping, evr, axes: Mapping, eps: float, floor: str, path_of: Callable) -> None:
    """Rule ``drift``: each axis's group table and drift matrix, written to ``path_of("groups",
    axis)`` and ``path_of("drift", axis)``."""
    from . import pipeline
    from .axes import Axis, layer_labels

    for name, cfg in axes.items():
        axis = Axis.from_config(name, dict(cfg))
        groups, drift = pipeline.axis_result(layers, hist["counts"], evr, axis, eps, floor, hist["edges"])
        results.write_tsv(groups, path_of("groups", name), floats=False)
        results.write_tsv(drift, path_of("drift", name))
        print(f"axis {name}: {len(groups)} groups")
        if groups.empty:
            why = (
                f"no layer has a value in column {axis.column!r}"
                if layer_labels(layers, axis).isna().all()
                else "every group is below min_models / min_filters"
            )
            print(f"axis {name}: {why}: no groups, empty drift table", file=sys.stderr)


def analyse(inp, out, params, threads: int) -> None:
    """Rule ``analyse``: the layer table, the three passes (``threads`` lanes each), their gathers
    and the drift tables of every axis in one job, with the same outputs as the per-step rules; the
    fine cell histograms (``cell_hist``, when asked for) are gathered here too."""
    from . import pipeline

    db, plan = layer_table(
        inp.db, params.columns, params.depth_bins, out.layers, out.plan, out.cells, out.coverage, params.checks
    )
    s = pass_settings(
        params.stream, params.quality, params.fine_bins, params.density, threads, inp.db, params.get("fixed_range")
    )
    names = pipeline.layer_namer(db.layers)

    def one_pass(kind, **kw):
        return run_shard(inp.db, plan.key, plan, kind, settings=s, layer_names=names, **kw)

    # one pass's arrays at a time in memory (the gather of the one part takes its arrays, no copy)
    p = write_gathered(gather_parts([one_pass("sums")], plan.n_layers), out.sums, out.basis, out.mean)
    basis = (p.mean, p.components)
    rng = gather_parts([one_pass("range", basis=basis)], plan.n_layers)
    lo, hi = write_gathered(rng, out.range_stats, range_out=out.range)
    del rng
    edges = uniform_edges(lo, hi, params.bins)
    cell_hist = out.get("cell_hist")
    if not cell_hist:
        part = one_pass("hist", basis=basis, edges=edges)
    else:  # each closed cell written straight into its place in the .npy (no records, no gather)
        done = {}

        def write(tmp):
            sink = CellHistFile(tmp, plan.n_cells, s.fine_bins, plan.width)
            try:
                done["part"] = one_pass("hist", basis=basis, edges=edges, cell_sink=sink)
            finally:
                sink.close()

        results.atomic_write(cell_hist, write)
        part = done.pop("part")
    hist = gather_parts([part], plan.n_layers, cells=False)
    del part
    write_gathered(hist, out.hist)
    drift_tables(
        db.layers,
        hist,
        p.explained_variance_ratio,
        params.axes,
        params.eps,
        params.floor,
        lambda kind, axis: out[f"{kind}_{axis}"],
    )
