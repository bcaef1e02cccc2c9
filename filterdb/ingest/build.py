"""``filterdb build``: a models sheet -> a filter DB in the published v1.0 layout.

* each model is read (see the readers), its K x K convs (``kernel``, default ``"3x3"``; any odd
  K >= 3) become meta rows and filter rows;
* the filters are stored as float32 by :func:`filterdb.db.write_db` / :func:`filterdb.db.append_db`
  (the project's one writer; an existing DB is read with :func:`filterdb.db.open_db`): ``(N, 9)``
  for 3x3 (as every earlier build), ``(N, K, K)`` for K > 3, whose filter dataset also carries the
  integer attribute ``filterdb_kernel_size`` = K (:data:`KERNEL_ATTR`);
* a model that cannot be used (missing / unreadable / unsupported / unsafe file, no K x K conv,
  failed download) is reported in one line naming the file and the reason, listed in the skipped
  TSV (``<db stem>.skipped.tsv`` next to the DB unless given) and the rest goes on;
* ``--append``: models already in the DB (same ``model`` id, or same ``content_sha256`` of the
  weights file) are reported and skipped; existing filter rows are not rewritten
  (:func:`filterdb.db.append_db`); new ``model_id`` s continue after the largest one present; the
  DB's filters must be K x K (a 3x3 DB takes only a 3x3 build);
* the DB is written to a temporary name and renamed (:func:`filterdb.db.write_db`), so a failed
  build never leaves a partial DB; ``--append`` works on a copy of the DB (``<db>.appending``)
  that replaces the DB only when the whole run succeeded, so an interrupted append leaves the
  previous DB readable and byte-for-byte unchanged.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import db as dbmod
from ..shape import FilterShape
from .base import IngestError
from .extract import kernel_name, model_layers, parse_kernel
from .fetch import resolve_file, sha256_file
from .formats import read_model_file
from .sheet import meta_columns, read_sheet

SKIPPED_COLUMNS = ["model", "file", "reason"]
#: Integer attribute of the filter dataset of a DB of K x K filters, K > 3 (a 3x3 DB, as the
#: published files, has none: its shape ``(N, 9)`` or ``(N, 3, 3)`` tells).
KERNEL_ATTR = "filterdb_kernel_size"


def default_skipped_path(out: str) -> str:
    """The skipped-models TSV next to a DB.

    Parameters
    ----------
    out : str
        The DB path.

    Returns
    -------
    str
        ``<out without extension>.skipped.tsv``.
    """
    root, _ = os.path.splitext(out)
    return root + ".skipped.tsv"


def default_cache() -> str:
    """The cache folder for ``source`` rows.

    Returns
    -------
    str
        ``$FILTERDB_CACHE``, else ``~/.cache/filterdb``.
    """
    return os.environ.get("FILTERDB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "filterdb")


@dataclass
class BuildResult:
    """What :func:`build` did: model ids added, skipped models (``model``, ``file``, ``reason``),
    the K x K layers and filters added, the number of models in the DB afterwards and K."""

    built: list[str] = field(default_factory=list)  # model ids added
    skipped: list[dict] = field(default_factory=list)  # model, file, reason
    n_layers: int = 0
    n_filters: int = 0
    db_models: int = 0  # models in the DB after the run
    kernel: int = 3  # K of the K x K filters


def _layers(out: str, k: int) -> pd.DataFrame:
    """The layer table of an existing DB, checked to hold K x K filters (:func:`filterdb.db.open_db`:
    the one reader, for every K)."""
    db = dbmod.open_db(out)
    have = db.shape.side
    if have != k:
        raise IngestError(
            f"{out}: the DB holds {kernel_name(have)} filters, this build keeps {kernel_name(k)} kernels; "
            f"append with kernel {kernel_name(have)} or build another DB"
        )
    return db.layers


def _existing(out: str, k: int = 3) -> tuple[int, set, set]:
    """(largest model_id, model ids, content hashes) of an existing DB of K x K filters."""
    meta = _layers(out, k)
    max_id = int(meta["model_id"].max()) if len(meta) else -1
    models = set(meta["model"].astype(str)) if "model" in meta.columns else set()
    hashes = set(meta["content_sha256"].dropna().astype(str)) if "content_sha256" in meta.columns else set()
    return max_id, models, hashes


def _fill_kernel_counts(path: str, kcols: set) -> None:
    """Kernel-size count columns that appeared in later batches / appends: 0 for the other models;
    ``conv_kind`` of layers appended to a DB built before the column existed: empty (unknown)."""
    meta = dbmod.read_meta(path)
    missing = [
        c
        for c in kcols | {c for c in meta.columns if c.startswith("(") and c.endswith(" filters")}
        if c in meta.columns and meta[c].isna().any()
    ]
    kind = "conv_kind" in meta.columns and bool(meta["conv_kind"].isna().any())
    if missing:
        meta[missing] = meta[missing].fillna(0).astype(np.int64)
    if kind:
        meta["conv_kind"] = meta["conv_kind"].fillna("")
    if missing or kind:
        dbmod.write_meta(meta, path)


def build(
    sheet: str | os.PathLike,
    out: str | os.PathLike,
    *,
    append: bool = False,
    skipped: str | None = None,
    cache: str | None = None,
    download: bool = True,
    log=None,
    archives: str | None = None,
    members: str | None = None,
    flush_rows: int = 8_000_000,
    kernel: str | int = "3x3",
) -> BuildResult:
    """Build (or extend) the DB ``out`` from the models sheet ``sheet``.

    Parameters
    ----------
    sheet : str or PathLike
        The models sheet (see :mod:`filterdb.ingest.sheet`); relative ``path`` s are relative to it.
    out : str or PathLike
        The filter DB to write (HDF5, published v1.0 layout).
    append : bool
        Add to ``out`` when it exists (models already present are skipped); the DB is replaced
        only when the whole run succeeds.
    skipped : str, optional
        TSV of skipped models (``model``, ``file``, ``reason``); default ``<out stem>.skipped.tsv``.
    cache : str, optional
        Cache folder for ``source`` rows (default :func:`default_cache`).
    download : bool
        False: never call pip (``source`` archives must be in the cache).
    log : callable, optional
        ``log(message)`` for progress and skipped models (default: print to stderr).
    archives, members : str, optional
        Archive cache (default ``<cache>/archives``) and folder of extracted members (default
        ``<cache>/members``).
    flush_rows : int
        Filters are written in batches of about this many rows (bounded memory).
    kernel : str or int
        The kernel size kept, ``"KxK"`` with K odd and at least 3 (default ``"3x3"``); the convs
        of other sizes are counted in the ``(kh, kw) filters`` columns only.

    Returns
    -------
    BuildResult
        Models built and skipped, layer and filter counts, models in the DB afterwards, K.

    Raises
    ------
    IngestError
        For a bad ``kernel`` (before anything is read or written), a fatal sheet error (unreadable
        sheet, missing ``model`` column, duplicate id, ...) or, with ``append``, a DB whose
        filters are not K x K.
    filterdb.db.DBError
        With ``append``, a DB that :func:`filterdb.db.open_db` refuses (one line naming it), or
        whose filter dataset is not resizable.
    """
    ksize = parse_kernel(kernel)
    kname = kernel_name(ksize)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    cache = cache or default_cache()
    archives = archives or os.path.join(cache, "archives")
    members = members or os.path.join(cache, "members")
    sheet = str(sheet)
    out = str(out)
    df = read_sheet(sheet)
    sheet_dir = os.path.dirname(os.path.abspath(sheet))
    cols = meta_columns(df)
    res = BuildResult(kernel=ksize)
    next_id, seen_models, seen_hashes = 0, set(), set()
    appending = append and os.path.exists(out)
    if appending:
        max_id, seen_models, seen_hashes = _existing(out, ksize)
        next_id = max_id + 1
    weights_all: list[np.ndarray] = []
    tables: list[pd.DataFrame] = []

    def skip(model, file, reason):
        log(f"skipped {model}: {file}: {reason}")
        res.skipped.append({"model": model, "file": file, "reason": reason})

    # Filters are written in batches of about `flush_rows` rows (write_db for the first batch, then
    # append_db), so memory stays bounded. A new DB is built under a temporary name, an append goes
    # to a copy of the DB (made at the first batch); either is renamed to `out` at the end, so when
    # the run fails, `out` is absent (new DB) or unchanged (append).
    target = out + (".appending" if appending else ".building")
    state = {"written": False}
    pending = 0
    kcols: set[str] = set()

    def flush():
        nonlocal pending
        if not tables:
            return
        new = pd.concat(tables, ignore_index=True)
        ks = [c for c in new.columns if c.endswith(" filters") and c.startswith("(")]
        kcols.update(ks)
        new[ks] = new[ks].fillna(0).astype(np.int64)
        if appending or state["written"]:
            if appending and not state["written"]:
                shutil.copyfile(out, target)  # needs free space for one more copy of the DB
                shutil.copymode(out, target)
            dbmod.append_db(target, weights_all, new, layout="v1.0")
        else:
            sizes = np.array([w.shape[0] for w in weights_all], dtype=np.int64)
            ends = np.cumsum(sizes)
            new["row_start"] = ends - sizes
            new["row_end"] = ends
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
            if ksize == 3:  # (N, 9), no attribute: as every earlier build
                dbmod.write_db(target, weights_all, new, layout="v1.0")
            else:
                dbmod.write_db(
                    target,
                    weights_all,
                    new,
                    layout="v1.0",
                    shape3x3=True,
                    kernel=FilterShape(ksize),
                    attrs={KERNEL_ATTR: np.int64(ksize)},
                )
        state["written"] = True
        tables.clear()
        weights_all.clear()
        pending = 0

    try:
        for _, row in df.iterrows():
            mid = row["model"]
            where = row["path"] or f"{row['source'].split('#')[0]}:{row['member']}"
            if mid in seen_models:
                skip(mid, where, "already in the DB (same model id)")
                continue
            path = None
            try:
                path = resolve_file(row, sheet_dir, archives=archives, members=members, download=download, log=log)
                if os.path.isdir(path):
                    raise IngestError(f"{path}: is a directory, expected a model file")
                if not os.path.isfile(path):
                    raise IngestError(f"{path}: no such file")
                digest = sha256_file(path)
                if digest in seen_hashes:
                    skip(mid, path, f"already in the DB (same content sha256 {digest[:12]}...)")
                    continue
                m = read_model_file(path)
                weights, layers, model_cols = model_layers(m, ksize)
            except IngestError as exc:
                file = path or where
                msg = str(exc)
                skip(mid, file, msg[len(file) + 2 :] if msg.startswith(file + ": ") else msg)
                continue
            except Exception as exc:  # a reader bug or an odd file: report it, go on
                skip(
                    mid,
                    path or where,
                    f"cannot read ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                )
                continue
            if not weights:
                kinds = sorted({f"{c.kernel_size[0]}x{c.kernel_size[1]}" for c in m.convs})
                skip(
                    mid,
                    path,
                    f"no {kname} conv" + (f" (conv kernels: {', '.join(kinds)})" if kinds else " (no 4-D conv found)"),
                )
                continue
            t = layers.copy()
            t.insert(0, "model_id", next_id)
            for j, c in enumerate(cols):
                t.insert(1 + j, c, row[c])
            t["file"] = os.path.basename(path)
            t["content_sha256"] = digest
            for k, v in model_cols.items():
                t[k] = [v] * len(t)
            tables.append(t)
            weights_all.extend(weights)
            seen_models.add(mid)
            seen_hashes.add(digest)
            res.built.append(mid)
            n = sum(w.shape[0] for w in weights)
            res.n_layers += len(t)
            res.n_filters += n
            log(
                f"read {mid}: {m.format}, {len(t)} {kname} conv layers, {n} filters, "
                f"{model_cols['conv_levels']} conv levels ({m.depth_source})"
            )
            next_id += 1
            pending += n
            if pending >= flush_rows:
                flush()

        flush()
        if state["written"]:
            _fill_kernel_counts(target, kcols)
            os.replace(target, out)
    finally:
        if os.path.exists(target):
            os.remove(target)
    skipped = skipped or default_skipped_path(out)
    os.makedirs(os.path.dirname(os.path.abspath(skipped)), exist_ok=True)
    pd.DataFrame(res.skipped, columns=SKIPPED_COLUMNS).to_csv(skipped, sep="\t", index=False)
    if os.path.exists(out) and (res.built or appending):
        res.db_models = int(_layers(out, ksize)["model_id"].nunique())
    return res
