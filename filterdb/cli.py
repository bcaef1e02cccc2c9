"""The ``filterdb`` command (entry point ``filterdb.cli:main``).

Subcommands:

* ``build``: models sheet -> filter DB in the published v1.0 layout (:mod:`filterdb.ingest.build`);
* ``inspect``: registered by :func:`filterdb.inspect.add_inspect_parser` when that module exists.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from typing import Sequence


def add_build_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "build", help="build a filter DB (published v1.0 layout) from a sheet of trained model files",
        description="Read every model of a models sheet (ONNX, PyTorch, safetensors, Keras HDF5, TFLite), "
                    "keep its 3x3 conv kernels and write a filter DB in the published CNN-Filter-DB layout. "
                    "Models that cannot be read are reported and listed in the skipped TSV; the exit code "
                    "is non-zero only when no model could be built.")
    p.add_argument("sheet", help="models sheet (TSV: model, path or source+member, Name, Task, Visual Category, "
                                 "Training-Dataset, Pretraining-Dataset, licence, extra columns)")
    p.add_argument("-o", "--output", required=True, help="filter DB to write (HDF5)")
    p.add_argument("--append", action="store_true",
                   help="add to an existing DB; models already present (same id or same file hash) are skipped")
    p.add_argument("--skipped", default=None, help="TSV of skipped models and reasons (default: <DB stem>.skipped.tsv)")
    p.add_argument("--cache", default=None,
                   help="folder for downloaded archives and extracted members of 'source' rows "
                        "(default: $FILTERDB_CACHE or ~/.cache/filterdb)")
    p.add_argument("--no-download", action="store_true",
                   help="never download: 'source' rows must already be in the cache")
    p.add_argument("-q", "--quiet", action="store_true", help="print only skipped models and the summary")
    p.set_defaults(func=run_build)
    return p


def run_build(args: argparse.Namespace) -> int:
    from .ingest.build import build, default_skipped_path

    def log(msg: str) -> None:
        if not args.quiet or msg.startswith("skipped"):
            print(msg, file=sys.stderr)

    res = build(args.sheet, args.output, append=args.append, skipped=args.skipped, cache=args.cache,
                download=not args.no_download, log=log)
    skipped = args.skipped or default_skipped_path(args.output)
    print(f"{args.output}: added {len(res.built)} models, {res.n_layers} layers, {res.n_filters} filters; "
          f"skipped {len(res.skipped)} (listed in {skipped})" +
          (f"; {res.db_models} models in the DB" if res.db_models else ""))
    if not res.built and not (args.append and res.db_models):
        print(f"filterdb build: no model could be built from {args.sheet}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="filterdb", description="CNN-Filter-DB study software")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_build_parser(sub)
    # ---- other subcommands -----------------------------------------------------------------
    # `inspect` lives in filterdb/inspect.py (another worker's module); it registers itself via
    # add_inspect_parser(subparsers). Registered only when the module exists; a module that
    # exists but fails to import is an error, not silently skipped.
    if importlib.util.find_spec("filterdb.inspect") is not None:
        inspect_mod = importlib.import_module("filterdb.inspect")
        inspect_mod.add_inspect_parser(sub)
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
