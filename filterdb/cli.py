"""The ``filterdb`` command (entry point ``filterdb.cli:main``).

Subcommands:

* ``build``: models sheet -> filter DB in the published v1.0 layout (:mod:`filterdb.ingest.build`);
* ``inspect``: one model against an analysed DB (computation in :mod:`filterdb.inspect`);
* ``compare``: the models of a sheet against a reference run and each other (:mod:`filterdb.compare`);
* ``convert``: a DB rewritten with its filters in another dtype (:mod:`filterdb.convert`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def add_build_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "build",
        help="build a filter DB (published v1.0 layout) from a sheet of trained model files",
        description="Read every model of a models sheet (ONNX, PyTorch, safetensors, Keras HDF5, TFLite), "
        "keep its K x K conv kernels (--kernel, default 3x3) and write a filter DB in the published "
        "CNN-Filter-DB layout. "
        "Models that cannot be read are reported and listed in the skipped TSV; the exit code "
        "is non-zero only when no model could be built.",
    )
    p.add_argument(
        "sheet",
        help="models sheet (TSV: model, path or source+member, Name, Task, Visual Category, "
        "Training-Dataset, Pretraining-Dataset, licence, extra columns)",
    )
    p.add_argument("-o", "--output", required=True, help="filter DB to write (HDF5)")
    p.add_argument(
        "--append",
        action="store_true",
        help="add to an existing DB; models already present (same id or same file hash) are skipped",
    )
    p.add_argument("--skipped", default=None, help="TSV of skipped models and reasons (default: <DB stem>.skipped.tsv)")
    p.add_argument(
        "--cache",
        default=None,
        help="folder for downloaded archives and extracted members of 'source' rows "
        "(default: $FILTERDB_CACHE or ~/.cache/filterdb)",
    )
    p.add_argument(
        "--no-download", action="store_true", help="never download: 'source' rows must already be in the cache"
    )
    p.add_argument(
        "--kernel",
        default="3x3",
        metavar="KxK",
        help="kernel size kept: KxK with K odd and at least 3 (default 3x3); a 3x3 DB stores its filters "
        "as (N, 9), any other as (N, K, K); convs of other sizes are only counted",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only skipped models and the summary")
    p.set_defaults(func=run_build)
    return p


def run_build(args: argparse.Namespace) -> int:
    from .ingest import parse_kernel
    from .ingest.build import build, default_skipped_path

    kernel = parse_kernel(args.kernel, "--kernel")  # one line, before anything is read or written

    def log(msg: str) -> None:
        if not args.quiet or msg.startswith("skipped"):
            print(msg, file=sys.stderr)

    res = build(
        args.sheet,
        args.output,
        append=args.append,
        skipped=args.skipped,
        cache=args.cache,
        download=not args.no_download,
        log=log,
        kernel=kernel,
    )
    skipped = args.skipped or default_skipped_path(args.output)
    print(
        f"{args.output}: added {len(res.built)} models, {res.n_layers} layers, {res.n_filters} filters; "
        f"skipped {len(res.skipped)} (listed in {skipped})"
        + (f"; {res.db_models} models in the DB" if res.db_models else "")
    )
    if not res.built and not (args.append and res.db_models):
        print(f"filterdb build: no model could be built from {args.sheet}", file=sys.stderr)
        return 1
    return 0


# ---- inspect ----------------------------------------------------------------------------------

INSPECT_DESCRIPTION = (
    "``filterdb inspect``: one model against an analysed DB. The model's convs of the DB's kernel size are "
    "read (3x3 for the study's DB, 5x5 for a DB built with --kernel 5x5: the width of RESULTS/pca/mean.tsv)."
)


def add_inspect_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``inspect`` on an argparse ``subparsers`` object (``func`` = :func:`run_inspect`)."""
    p = subparsers.add_parser(
        "inspect",
        help="one model against an analysed DB: filter quality, drift, nearest models",
        description=INSPECT_DESCRIPTION,
    )
    p.add_argument(
        "model_file", help="model file (a filter DB in the published layout, or any format filterdb.ingest reads)"
    )
    p.add_argument("--db", help="the analysed filter DB (only checked against the results; its filters are not read)")
    p.add_argument("--results", default="results", help="results folder of the analysed DB (default: results)")
    p.add_argument("--stats", default=None, help="stats folder (default: RESULTS/stats)")
    p.add_argument("--model", default=None, help="model to take when MODEL_FILE is a DB holding several")
    p.add_argument(
        "--config",
        default=None,
        help="workflow config for axes and quality thresholds "
        "(default: ./config.yaml if present, else the study's axes)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="folder for layers.tsv, groups.tsv, models.tsv, summary.json (default: RESULTS/inspect/MODEL)",
    )
    p.add_argument("--top", type=int, default=5, help="nearest models to print (default 5)")
    p.set_defaults(func=run_inspect)
    return p


def inspect_settings(config: str | None) -> dict:
    """Keyword arguments of :func:`filterdb.inspect.inspect_model` from a workflow config file.

    Parameters
    ----------
    config : str, optional
        The config file (default ``./config.yaml`` if present). Every missing key is filled from
        the schema's defaults (:mod:`filterdb.settings`); without ``axes``, the study's axes.

    Returns
    -------
    dict
        ``axes`` (list of Axis), ``eps``, ``thresholds``, ``hist_eps``, ``floor``.
    """
    from .axes import STUDY_AXES, axes_from_config
    from .settings import load_config

    path = config or ("config.yaml" if os.path.exists("config.yaml") else None)
    cfg = load_config(path)
    q, h = cfg["quality"], cfg["histogram"]
    return {
        "axes": axes_from_config(cfg.get("axes") or STUDY_AXES),
        "eps": float(q["eps"]),
        "thresholds": {**q["thresholds"], "rule": q["rule"]},  # quality.rule: the degeneration rule (§9)
        "hist_eps": float(h["eps"]),
        "floor": str(h["floor"]),
    }


def run_inspect(args: argparse.Namespace) -> int:
    """``filterdb inspect``: compute (:mod:`filterdb.inspect`), write the outputs, print the verdict.
    Returns the exit code (0)."""
    from . import inspect

    kw = inspect_settings(args.config)
    ref = inspect.load_reference(args.results, args.stats, args.db)
    m = inspect.read_model(args.model_file, args.model, kernel=ref.shape)  # the reference's kernel size
    r = inspect.inspect_model(m, ref, **kw)
    out = args.out or str(inspect.default_out_dir(args.results, m.name))
    inspect.write_outputs(r, out)
    print(
        f"model {m.name}: {len(m.weights)} {ref.shape.label} conv layers, {sum(w.shape[0] for w in m.weights)} filters"
    )
    for line in r.verdict:
        print("  " + line)
    print("  nearest models:")
    for row in r.models.head(args.top).itertuples():
        print(f"    {row.model}\tD = {row.drift:.4g}")
    print(f"written: {out}/{{layers,groups,models}}.tsv, summary.json")
    return 0


# ---- compare ----------------------------------------------------------------------------------

COMPARE_DESCRIPTION = (
    "Your own models against a reference run: every model of a models sheet (any format filterdb reads) is "
    "read one at a time and projected onto the reference run's PCA basis and coefficient range (the reference's "
    "filters are not read again). Writes the model x model drift (OUT/drift.tsv), the drift of matching layers "
    "(by name, else by position) and per depth bin, each model's drift to every reference group, the quality "
    "metrics and, with --order, the training trajectory (OUT/trajectory.tsv and figure). Each model's convs of the "
    "reference's kernel size are read (3x3 for the study's DB, K x K for a DB built with --kernel KxK). "
    "docs/method.md §12."
)


def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``compare`` on an argparse ``subparsers`` object (``func`` = :func:`run_compare`)."""
    p = subparsers.add_parser(
        "compare",
        help="the models of a sheet (e.g. checkpoints) against a reference run and each other",
        description=COMPARE_DESCRIPTION,
    )
    p.add_argument("sheet", help="models sheet (TSV: model, path or source+member, meta columns such as epoch)")
    p.add_argument("--reference", required=True, help="results folder of the analysed reference DB")
    p.add_argument("--stats", default=None, help="stats folder of the reference (default: REFERENCE/stats)")
    p.add_argument("--db", help="the reference DB (only checked against the results; its filters are not read)")
    p.add_argument(
        "--config",
        default=None,
        help="workflow config for axes, histogram floor and quality thresholds "
        "(default: ./config.yaml if present, else the study's axes)",
    )
    p.add_argument(
        "--order",
        default=None,
        metavar="COLUMN",
        help="numeric sheet column (e.g. epoch) ordering the checkpoints: writes the training trajectory",
    )
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_compare)
    return p


def run_compare(args: argparse.Namespace) -> int:
    """``filterdb compare``: compute (:mod:`filterdb.compare`), write the outputs, print one line per
    model and a summary. Returns the exit code (0)."""
    from . import compare, inspect

    kw = inspect_settings(args.config)
    axes = kw.pop("axes")
    ref = inspect.load_reference(args.reference, args.stats, args.db)
    c = compare.compare(args.sheet, ref, axes, order=args.order, progress=not args.quiet, **kw)
    written = compare.write_outputs(c, args.out, reference=args.reference)
    for line in compare.summary_lines(c):
        print(line)
    print(f"written: {len(written)} files in {args.out} (drift.tsv, models.tsv, groups.tsv, ...)")
    return 0


# ---- convert ----------------------------------------------------------------------------------


def add_convert_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``convert`` on an argparse ``subparsers`` object (``func`` = :func:`run_convert`)."""
    p = subparsers.add_parser(
        "convert",
        help="rewrite a filter DB with its filters stored as float16, float32 or float64",
        description="Rewrite a filter DB in the published layout (same dataset name and shape, the meta "
        "table unchanged) with its filters stored in another dtype, e.g. the published float64 v1.0 DB "
        "as float16, the precision the study analyses. Each value is rounded once from its stored "
        "dtype. Written to OUT.partial and renamed at the end: on an error or Ctrl-C nothing is left.",
    )
    p.add_argument("db", help="the filter DB to convert (HDF5, published layout)")
    p.add_argument("-o", "--output", required=True, help="the DB to write (must not exist, unless --force)")
    p.add_argument("--dtype", required=True, help="stored dtype of the output's filters: float16, float32 or float64")
    p.add_argument(
        "--block-rows",
        type=int,
        default=None,
        help="rows read, converted and written at a time (default 4194304: bounds memory, ~0.5 GB from float64)",
    )
    p.add_argument("--force", action="store_true", help="replace OUT if it exists (only once the new file is complete)")
    p.add_argument(
        "--checksum",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="record the SHA-256 of the source file (a second full read of it; default: only for sources "
        "under 1 GiB). Size and modification time are always recorded",
    )
    p.add_argument(
        "--allow-overflow",
        action="store_true",
        help="store finite values beyond the target's range (float16: ±65504) as ±inf instead of refusing",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars; print only the summary")
    p.set_defaults(func=run_convert)
    return p


def _raise_on_sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def run_convert(args: argparse.Namespace) -> int:
    """``filterdb convert``: convert (:func:`filterdb.convert.convert`), print the summary line.
    Returns the exit code: 0, or 130 / 143 when interrupted by Ctrl-C / SIGTERM (nothing written)."""
    import signal
    import threading

    from .convert import BLOCK_ROWS, convert

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr)

    # SIGTERM (a scheduler cancelling the job) unwinds like Ctrl-C, so the partial file is removed
    old = (
        signal.signal(signal.SIGTERM, _raise_on_sigterm)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    try:
        res = convert(
            args.db,
            args.output,
            args.dtype,
            block_rows=BLOCK_ROWS if args.block_rows is None else args.block_rows,
            force=args.force,
            checksum=args.checksum,
            allow_overflow=args.allow_overflow,
            progress=not args.quiet,
            log=log,
        )
    except KeyboardInterrupt as exc:
        term = exc.args == ("SIGTERM",)
        print(
            f"filterdb convert: {'terminated' if term else 'interrupted'}; {args.output} not written",
            file=sys.stderr,
        )
        return 143 if term else 130
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    print(res.summary())
    return 0


# ------------------------------------------------------------------------------------------------


def add_models_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``models`` on an argparse ``subparsers`` object (``func`` = :func:`run_models`)."""
    p = subparsers.add_parser(
        "models",
        help="list the models of a filter DB from its meta table (no filter is read)",
        description="One line per model: id, architecture, task, visual category, training and pretraining "
        "data, producer, K x K conv layers, their filters, their share of the model's kernels (K = 3 for "
        "the published DBs; columns filters_KxK, share_KxK). Reads the meta table only (through the DB's "
        "safe reader).",
    )
    p.add_argument("db", help="the filter DB (HDF5, published layout)")
    p.add_argument("-o", "--output", default=None, help="also write the table as TSV here")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the table")
    p.set_defaults(func=run_models)
    return p


def run_models(args: argparse.Namespace) -> int:
    """``filterdb models``: print (and write) :func:`filterdb.catalog.models_table`. Returns 0."""
    from . import catalog, results
    from .db import open_db

    db = open_db(args.db)
    k = db.shape.side  # 3 for the published (N, 9) / (N, 3, 3) layouts, else K of (N, K, K) / (N, K²)
    layers = db.layers
    if k != 3:  # the catalog reads the 3x3 names: give it this K's share, name its columns after K
        layers = layers.drop(columns=[c for c in ("3x3_filter_share",) if c in layers.columns])
        layers = layers.rename(columns={f"{k}x{k}_filter_share": "3x3_filter_share"})
    table = catalog.models_table(layers)
    if k != 3:
        table = table.rename(columns={"filters_3x3": f"filters_{k}x{k}", "share_3x3": f"share_{k}x{k}"})
    if args.output:
        results.write_tsv(table, args.output, floats=False)
    if not args.quiet:
        with pd_display():
            print(table.drop(columns=["model_id"]).to_string(index=False))
    total = int(table[f"filters_{k}x{k}"].sum())
    print(f"{len(table)} models, {int(table['layers'].sum())} {k}x{k} conv layers, {total} filters", file=sys.stderr)
    return 0


def pd_display():
    """pandas printing options for a whole table (no truncated rows or columns)."""
    import pandas as pd

    return pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="filterdb", description="CNN-Filter-DB study software")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_build_parser(sub)
    # ---- other subcommands -----------------------------------------------------------------
    add_inspect_parser(sub)
    add_compare_parser(sub)
    add_convert_parser(sub)
    add_models_parser(sub)
    # ------------------------------------------------------------------------------------------
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, OSError) as exc:  # IngestError / DBError are ValueErrors
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"filterdb {args.command}: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
