"""Read and write filter DBs in the published CNN-Filter-DB layout.

Layout (see ``docs/method.md``, appendix on the published file layouts):

* one float HDF5 dataset ``filters`` (or ``filter``) of shape ``(N, k, k)`` or ``(N, k²)``, ``k``
  odd >= 3 (the study: ``(N, 3, 3)``; :mod:`filterdb.shape`); the row number is the filter id;
* a pandas DataFrame under key ``meta`` (PyTables "fixed" format), one row per conv layer,
  MultiIndex ``(model_id, conv_depth, conv_depth_norm)`` (not unique), column ``filter_ids``
  either a list of ints (v0.1) or an inclusive ``"start:end"`` string (v1.0).

:func:`open_db` never reads the filter array; :func:`read_rows` reads one row range.

A DB is an untrusted file: it is read with h5py and :mod:`filterdb.h5safe` only (never with
``pandas.read_hdf`` or PyTables, which unpickle), so opening one runs no code from it and reads no
other file (external storage, virtual datasets, external links and filter plugins are refused).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import h5py
import numpy as np
import pandas as pd

from . import h5safe
from .h5safe import UnsafeFile
from .shape import STUDY, FilterShape

FILTER_KEYS = ("filters", "filter")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
LAYOUT = "an HDF5 file with a 'filters' dataset and a pandas DataFrame 'meta'"
INDEX_NAMES = ["model_id", "conv_depth", "conv_depth_norm"]
CATEGORY_ALIASES = {"Datatype": "Visual Category"}


class DBError(ValueError):
    """A filter DB that does not match the published layout (message is one line)."""


@dataclass
class FilterDB:
    """An opened DB: its path, the filter dataset name and size, and the per-layer table."""

    path: str
    key: str
    n_rows: int
    layers: pd.DataFrame  # one row per layer, sorted by row_start; see :func:`layer_table`
    dtype: str = "float32"  # stored dtype of the filter dataset; every other float is read as float32
    coverage: Coverage | None = None  # rows of no layer and empty layers (:func:`coverage`)
    shape: FilterShape = STUDY  # the filters' k x k shape, read from the filter dataset

    @property
    def width(self) -> int:
        """Values per filter (``k²``)."""
        return self.shape.size


#: ``checks`` of :func:`open_db` (config ``checks``): what to do about filter rows that no layer
#: covers and about layers with an empty row range.
CHECKS = {"uncovered_rows": "warn", "empty_layers": "warn"}


@dataclass
class Coverage:
    """How the layers cover the filter array: the runs of rows no layer covers, and the layers whose
    range is empty (their meta row and ``filter_ids`` cell as stored)."""

    n_rows: int
    uncovered: np.ndarray  # (k, 2) int64 runs [start, end) of rows that belong to no layer
    empty: pd.DataFrame  # meta_row, filter_ids (the cell as text) of each empty layer

    @property
    def n_uncovered(self) -> int:
        return int((self.uncovered[:, 1] - self.uncovered[:, 0]).sum()) if len(self.uncovered) else 0

    def runs_text(self, limit: int = 5) -> str:
        runs = [f"{a}..{b - 1}" for a, b in self.uncovered[:limit]]
        more = len(self.uncovered) - limit
        return ", ".join(runs) + (f" and {more} more runs" if more > 0 else "")

    def empty_text(self, limit: int = 5) -> str:
        cells = [
            f"meta row {r} {c!r}" for r, c in zip(self.empty["meta_row"][:limit], self.empty["filter_ids"][:limit])
        ]
        more = len(self.empty) - limit
        return ", ".join(cells) + (f" and {more} more" if more > 0 else "")

    def messages(self, path: str) -> list[str]:
        """One line per finding (none when every row is in exactly one non-empty layer)."""
        out = []
        if len(self.uncovered):
            out.append(
                f"{path}: {self.n_uncovered} of {self.n_rows} filter rows belong to no layer "
                f"({len(self.uncovered)} runs: {self.runs_text()}); they are left out of every statistic"
            )
        if len(self.empty):
            out.append(f"{path}: {len(self.empty)} layers have an empty filter range ({self.empty_text()})")
        return out

    def as_dict(self, limit: int = 100) -> dict:
        """JSON-ready summary (for provenance): counts, and the first ``limit`` runs and empty layers."""
        runs = [[int(a), int(b) - 1] for a, b in self.uncovered[:limit]]
        empty = [
            {"meta_row": int(r), "filter_ids": str(c)}
            for r, c in zip(self.empty["meta_row"][:limit], self.empty["filter_ids"][:limit])
        ]
        return {
            "n_rows": int(self.n_rows),
            "uncovered_rows": self.n_uncovered,
            "uncovered_run_count": int(len(self.uncovered)),
            "uncovered_runs": runs,
            "empty_layer_count": int(len(self.empty)),
            "empty_layers": empty,
        }

    def table(self) -> pd.DataFrame:
        """``stats/coverage.tsv``: one row per uncovered run and per empty layer."""
        runs = pd.DataFrame(
            {
                "kind": "rows in no layer",
                "row_start": self.uncovered[:, 0],
                "row_end": self.uncovered[:, 1],
                "n_rows": self.uncovered[:, 1] - self.uncovered[:, 0],
                "meta_row": pd.array([pd.NA] * len(self.uncovered), dtype="Int64"),
                "filter_ids": "",
            }
        )
        empty = pd.DataFrame(
            {
                "kind": "empty layer",
                "row_start": self.empty["row_start"].to_numpy(np.int64),
                "row_end": self.empty["row_start"].to_numpy(np.int64),
                "n_rows": np.zeros(len(self.empty), np.int64),
                "meta_row": pd.array(self.empty["meta_row"].to_numpy(np.int64), dtype="Int64"),
                "filter_ids": self.empty["filter_ids"].astype(str).to_numpy(),
            }
        )
        return pd.concat([runs, empty], ignore_index=True)


def _cell_text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return repr(list(np.asarray(value).tolist()))


def coverage(meta: pd.DataFrame, layers: pd.DataFrame, n_rows: int) -> Coverage:
    """The rows of ``[0, n_rows)`` that no layer of ``layers`` covers, and its empty layers.

    Parameters
    ----------
    meta : pandas.DataFrame
        The raw meta table (for the stored ``filter_ids`` cells of empty layers).
    layers : pandas.DataFrame
        :func:`layer_table` of ``meta``.
    n_rows : int
        Rows of the filter array.

    Returns
    -------
    Coverage
    """
    s = layers["row_start"].to_numpy(np.int64)
    e = layers["row_end"].to_numpy(np.int64)
    full = e > s
    s, e = s[full], e[full]  # sorted by start, not overlapping (checked by layer_table)
    starts = np.concatenate([[0], e])
    ends = np.concatenate([s, [n_rows]])
    gap = ends > starts
    uncovered = np.stack([starts[gap], ends[gap]], axis=1).astype(np.int64).reshape(-1, 2)
    emp = layers.loc[~(layers["row_end"] > layers["row_start"]), ["meta_row", "row_start"]].copy()
    cells = meta["filter_ids"].to_numpy()
    emp["filter_ids"] = [_cell_text(cells[int(r)]) for r in emp["meta_row"]]
    return Coverage(n_rows=int(n_rows), uncovered=uncovered, empty=emp.reset_index(drop=True))


def _filter_key(f: h5py.File, path: str) -> str:
    for key in FILTER_KEYS:
        if f.get(key, getlink=True) is not None:  # the link only: never follows it
            return key
    raise DBError(f"{path}: no filter dataset: expected an HDF5 dataset named 'filters' or 'filter'")


def _has_hdf5_signature(path: str, size: int) -> bool:
    """Whether the HDF5 signature is at offset 0, 512, 1024, 2048, ... (where a superblock may
    start after a user block), checked before h5py opens the file."""
    with open(path, "rb") as fh:
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            if fh.read(8) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _open_hdf5(path: str) -> h5py.File:
    """Open ``path`` read-only as HDF5, or raise a one-line :class:`DBError` saying why not (a
    directory, an empty file, no HDF5 signature, a truncated or otherwise corrupt file)."""
    if not os.path.exists(path):
        raise DBError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DBError(f"{path}: is a directory, expected a filter DB ({LAYOUT})")
    size = os.path.getsize(path)
    if size == 0:
        raise DBError(f"{path}: empty file (0 bytes), expected a filter DB ({LAYOUT})")
    if not _has_hdf5_signature(path, size):
        raise DBError(f"{path}: not an HDF5 file (no HDF5 signature), expected a filter DB ({LAYOUT})")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        m = re.search(r"truncated file: eof = (\d+), sblock->base_addr = \d+, stored_eof = (\d+)", str(exc))
        if m:
            raise DBError(f"{path}: truncated HDF5 file ({m[1]} of {m[2]} bytes)") from None
        raise DBError(f"{path}: corrupt HDF5 file (h5py cannot open it: {str(exc).splitlines()[0]})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _corrupt(path: str, what: str, exc: BaseException) -> DBError:
    """The one-line error for an HDF5 file whose structure cannot be read (h5py, PyTables and
    pickle raise many exception types on a damaged file)."""
    return DBError(f"{path}: corrupt HDF5 file: cannot read {what} ({_first_line(exc)})")


def _check_filters(path: str) -> tuple[str, int, str, FilterShape]:
    """(dataset name, number of rows, dtype name, filter shape) of the filter dataset, after the
    checks of :func:`filter_shape`."""
    with _open_hdf5(path) as f:
        try:
            key = _filter_key(f, path)
            h5safe.check_attrs(f, path, "/")
            ds = h5safe.check_link(f, key, path)
            is_dataset = isinstance(ds, h5py.Dataset)
            shape, dtype = (ds.shape, ds.dtype) if is_dataset else (None, None)
            if is_dataset:
                h5safe.check_dataset(ds, path, key)
                h5safe.check_attrs(ds, path, key)
        except DBError:
            raise
        except UnsafeFile as exc:
            raise DBError(str(exc)) from None
        except Exception as exc:  # a damaged file: any h5py error
            raise _corrupt(path, "the filter dataset", exc) from None
    if not is_dataset:
        raise DBError(f"{path}: '{key}' is a group, expected a dataset of shape (N, k, k) or (N, k*k), k odd >= 3")
    try:
        fshape = FilterShape.of_dataset(shape)
    except ValueError as exc:
        raise DBError(f"{path}: dataset '{key}' has {exc}") from None
    if dtype.kind != "f" or dtype.itemsize not in (2, 4, 8):
        raise DBError(
            f"{path}: dataset '{key}' has dtype {dtype}, expected floating point (float16, float32 or float64)"
        )
    return key, int(shape[0]), dtype.name, fshape


def filter_shape(path: str | os.PathLike) -> tuple[str, int]:
    """Return (dataset name, number of rows) after checking dtype and shape.

    Parameters
    ----------
    path : str or os.PathLike
        HDF5 file holding a ``filters`` (or ``filter``) dataset.

    Returns
    -------
    key : str
        Name of the filter dataset (``"filters"`` or ``"filter"``).
    n_rows : int
        Number of filters N (first axis of the dataset).

    Raises
    ------
    DBError
        If the file is empty, not HDF5 (no HDF5 signature: checked before h5py opens it),
        truncated or corrupt, has no filter dataset, or the dataset is not a floating-point array
        of shape ``(N, k, k)`` or ``(N, k²)`` with ``k`` odd and >= 3 (the study: ``(N, 3, 3)``;
        :class:`filterdb.shape.FilterShape`; float16, float32 or float64: the passes read
        any of them as stored and load each value as ``stream.precision`` says).
    """
    key, n, _, _ = _check_filters(str(path))
    return key, n


def filter_layout(path: str | os.PathLike) -> tuple[str, int, str]:
    """(dataset name, number of rows, stored dtype name) of the filter dataset, after the checks
    of :func:`filter_shape` (reads no data, no meta).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    key : str
    n_rows : int
    dtype : str
        ``float16``, ``float32`` or ``float64``.
    """
    return _check_filters(str(path))[:3]


def filter_geometry(path: str | os.PathLike) -> tuple[str, int, str, FilterShape]:
    """As :func:`filter_layout`, plus the filters' :class:`filterdb.shape.FilterShape` (the
    kernel size, read from the dataset's shape).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    key : str
    n_rows : int
    dtype : str
    shape : FilterShape
    """
    return _check_filters(str(path))


def count_layers(path: str | os.PathLike) -> int | None:
    """The number of rows of the ``meta`` table (the layers), read from its HDF5 layout without
    loading it (pandas' fixed and table formats); None when it cannot be told.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    int or None
    """
    try:
        with h5py.File(str(path), "r") as f:
            g = h5safe.check_link(f, "meta", str(path))
            if not isinstance(g, h5py.Group):
                return None
            kind = g.attrs.get("pandas_type", b"")
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            limit = h5safe.META_SIZE_FACTOR * max(os.path.getsize(path), 1)  # as read_meta: no more than that
            for name in ("table",) if kind == "frame_table" else ("axis1", "axis1_label0") if kind == "frame" else ():
                ds = h5safe.check_link(g, name, str(path))  # the index: plain, or a MultiIndex's codes
                if isinstance(ds, h5py.Dataset) and ds.shape:
                    size = int(np.prod(ds.shape, dtype=np.int64)) * max(ds.dtype.itemsize, 1)
                    return int(ds.shape[0]) if size <= limit else None
    except Exception:  # not readable here: the job that reads the meta reports it
        return None
    return None


def read_meta(path: str | os.PathLike) -> pd.DataFrame:
    """The raw ``meta`` DataFrame as stored, read with h5py (:func:`filterdb.h5safe.read_pandas_frame`):
    pandas' fixed and table formats, pickled object columns decoded as plain data only.

    Parameters
    ----------
    path : str or os.PathLike
        HDF5 file with a pandas DataFrame under key ``meta``.

    Returns
    -------
    pandas.DataFrame
        One row per conv layer, unvalidated (see :func:`layer_table`); equal to what
        ``pandas.read_hdf(path, "meta")`` returns for a benign file.

    Raises
    ------
    DBError
        If there is no ``meta`` key, it is not a pandas DataFrame (an HDF5 dataset or a group
        without pandas metadata, a Series) or it cannot be read; if it holds a pickle naming any
        callable (nothing is run), links or stores data outside the file, or declares more rows
        than the file can hold.
    """
    path = str(path)
    with _open_hdf5(path) as f:
        try:
            node = h5safe.check_link(f, "meta", path)
            pandas_type = h5safe.attr_text(node, "pandas_type") if isinstance(node, h5py.Group) else None
        except UnsafeFile as exc:
            raise DBError(str(exc)) from None
        except Exception as exc:  # a damaged file: any h5py error
            raise _corrupt(path, "the 'meta' table", exc) from None
        if node is None:
            raise DBError(f"{path}: no 'meta' table (expected a pandas DataFrame stored with key 'meta')")
        if pandas_type is None:
            what = "an HDF5 dataset" if isinstance(node, h5py.Dataset) else "an HDF5 group without pandas metadata"
            raise DBError(
                f"{path}: 'meta' is {what}, not a pandas DataFrame (expected a DataFrame stored with "
                f"DataFrame.to_hdf(path, key='meta'))"
            )
        if pandas_type not in ("frame", "frame_table"):
            kind = {"series": "Series", "series_table": "Series"}.get(str(pandas_type), str(pandas_type))
            raise DBError(
                f"{path}: 'meta' is a pandas {kind}, expected a DataFrame with one row per conv "
                f"layer and a 'filter_ids' column"
            )
        try:
            return h5safe.read_pandas_frame(f, "meta", path)
        except UnsafeFile as exc:
            raise DBError(str(exc)) from None
        except Exception as exc:  # h5py / numpy errors of a damaged or foreign table
            raise DBError(f"{path}: cannot read the 'meta' table ({_first_line(exc)})") from None


def parse_filter_ids(value, path: str = "", row: int = 0) -> tuple[int, int]:
    """Row range ``[start, end)`` of one layer from its ``filter_ids`` cell.

    v1.0 stores ``"start:end"`` with an inclusive end; v0.1 stores the list of ids, which must be a
    contiguous ascending run (checked). An empty layer (0 filters) is ``"start:start-1"`` in v1.0
    (as :func:`write_db` writes it) and an empty list in v0.1 (which has no position: ``(0, 0)``).

    Parameters
    ----------
    value : str, bytes or sequence of int
        The ``filter_ids`` cell: ``"start:end"`` (bytes are decoded) or a list of filter ids.
    path : str
        DB path, for error messages only.
    row : int
        Meta row number, for error messages only.

    Returns
    -------
    start, end : int
        Row range of the layer, ``end`` exclusive.

    Raises
    ------
    DBError
        On a malformed string, ``end < start - 1``, a non-integer list, or ids that are not one
        contiguous ascending run.

    Examples
    --------
    >>> parse_filter_ids("10:19"), parse_filter_ids([3, 4, 5]), parse_filter_ids("7:6")
    ((10, 20), (3, 6), (7, 7))
    """
    where = f"{path}: meta row {row} column 'filter_ids'"
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        parts = value.strip().split(":")
        if len(parts) != 2:
            raise DBError(f"{where}: {value!r} is not of the form 'start:end'")
        try:
            start, end = int(parts[0]), int(parts[1])
        except ValueError:
            raise DBError(f"{where}: {value!r} is not of the form 'start:end' with integers") from None
        if end < start - 1:
            raise DBError(f"{where}: {value!r} has end < start (an empty layer is 'start:start-1')")
        return start, end + 1
    ids = np.asarray(value)
    if ids.ndim == 1 and ids.size == 0:
        return 0, 0
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise DBError(
            f"{where}: expected a list of integer ids or a 'start:end' string, got {type(value).__name__} "
            f"of {ids.ndim}-d {ids.dtype} values"
        )
    start = int(ids[0])
    if not np.array_equal(ids, np.arange(start, start + ids.size)):
        raise DBError(f"{where}: ids are not one contiguous ascending run; only contiguous layers are supported")
    return start, start + int(ids.size)


def layer_table(meta: pd.DataFrame, n_rows: int, path: str = "", required_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Validate ``meta`` against the filter array and return the per-layer table.

    The result has one row per layer, sorted by ``row_start`` and renumbered ``layer`` 0..L-1, the
    index levels as columns (``model_id``, ``conv_depth``, ``conv_depth_norm``), ``row_start``,
    ``row_end`` (exclusive), ``n_filters``, and every other meta column. ``Datatype`` (v0.1) is
    also exposed as ``Visual Category``.

    Parameters
    ----------
    meta : pandas.DataFrame
        The raw meta table (:func:`read_meta`), with ``filter_ids`` and ``model_id``,
        ``conv_depth``, ``conv_depth_norm`` as index levels or columns. Not modified.
    n_rows : int
        Number of rows of the filter array; every layer's rows must lie in ``[0, n_rows)``.
    path : str
        DB path, for error messages only.
    required_columns : iterable of str
        Meta columns that must be present (e.g. :func:`filterdb.axes.required_columns`).

    Returns
    -------
    pandas.DataFrame
        One row per layer with columns ``layer``, ``row_start``, ``row_end``, ``n_filters``
        (int64), ``model_id``, ``conv_depth`` (numeric), ``conv_depth_norm`` (float; NaN where not
        numeric), the other meta columns, and ``meta_row`` (position in ``meta``).

    Raises
    ------
    DBError
        If ``filter_ids`` or an index name or required column is missing, a row range is malformed
        or outside the filter array, or two layers' ranges overlap.
    """
    df = meta.copy()
    if "filter_ids" not in df.columns:
        raise DBError(f"{path}: meta has no 'filter_ids' column")
    names = [n for n in (df.index.names or []) if n is not None]
    if set(INDEX_NAMES) <= set(names):
        df = df.reset_index()
    elif not set(INDEX_NAMES) <= set(df.columns):
        missing = [n for n in INDEX_NAMES if n not in names and n not in df.columns]
        raise DBError(
            f"{path}: meta lacks {', '.join(missing)} (expected index (model_id, conv_depth, conv_depth_norm))"
        )
    else:
        df = df.reset_index(drop=True)
    for old, new in CATEGORY_ALIASES.items():
        if old in df.columns and new not in df.columns:
            df[new] = df[old]
    missing = [c for c in required_columns if c not in df.columns]
    if missing:
        raise DBError(
            f"{path}: meta lacks column {missing[0]!r}, needed by the configured axes"
            + (f" (also missing: {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else "")
        )
    ranges = [parse_filter_ids(v, path, i) for i, v in enumerate(df["filter_ids"].to_numpy())]
    start = np.array([r[0] for r in ranges], dtype=np.int64)
    end = np.array([r[1] for r in ranges], dtype=np.int64)
    bad = np.flatnonzero((start < 0) | (end > n_rows))
    if bad.size:
        i = int(bad[0])
        raise DBError(
            f"{path}: meta row {i} filter_ids {start[i]}..{end[i] - 1} lie outside the filter array of {n_rows} rows"
        )
    df = df.drop(columns=["filter_ids"])
    df.insert(0, "row_end", end)
    df.insert(0, "row_start", start)
    df["meta_row"] = np.arange(len(df))
    df = df.sort_values(["row_start", "row_end"], kind="stable").reset_index(drop=True)
    s, e = df["row_start"].to_numpy(), df["row_end"].to_numpy()
    full = np.flatnonzero(e > s)  # empty layers overlap nothing
    overlap = np.flatnonzero(s[full[1:]] < e[full[:-1]])
    if overlap.size:
        i, j = int(full[overlap[0]]), int(full[overlap[0] + 1])
        raise DBError(
            f"{path}: meta rows {df['meta_row'][i]} and {df['meta_row'][j]} have overlapping "
            f"filter_ids ({s[i]}..{e[i] - 1} and {s[j]}..{e[j] - 1})"
        )
    df.insert(0, "layer", np.arange(len(df)))
    df.insert(3, "n_filters", e - s)
    df["conv_depth"] = pd.to_numeric(df["conv_depth"])
    df["conv_depth_norm"] = pd.to_numeric(df["conv_depth_norm"], errors="coerce")
    return df


def _read_structure(path: str) -> None:
    """Everything :func:`open_db` reads of a file (for :func:`filterdb.h5safe.crash_check`)."""
    _check_filters(path)
    read_meta(path)


def open_db(path: str | os.PathLike, required_columns: Iterable[str] = (), checks: dict | None = None) -> FilterDB:
    """Open and validate a DB; reads only shapes and the meta table, never the filters.

    The file's structure is first read in a forked child process: damage that crashes the HDF5
    library itself then gives one line instead of killing the caller. No code from the file runs
    and no other file is read (:mod:`filterdb.h5safe`).

    Parameters
    ----------
    path : str or os.PathLike
        The DB file.
    required_columns : iterable of str
        Meta columns that must be present (as :func:`layer_table`).
    checks : dict, optional
        ``uncovered_rows`` and ``empty_layers``: ``"warn"`` (default: reported in
        ``FilterDB.coverage``) or ``"error"`` (a :class:`DBError` naming them).

    Returns
    -------
    FilterDB
        Path, filter dataset name, number of rows, the per-layer table (:func:`layer_table`) and
        its coverage of the filter array (:func:`coverage`).

    Raises
    ------
    DBError
        If the file does not exist or does not match the published layout, asks for code to run
        or for another file to be read, or (``checks``) has rows of no layer or empty layers.
    """
    path = str(path)
    if not os.path.exists(path):
        raise DBError(f"{path}: no such file")
    checks = {**CHECKS, **(checks or {})}
    try:
        h5safe.crash_check(path, _read_structure)
    except UnsafeFile as exc:
        raise DBError(str(exc)) from None
    key, n, dtype, fshape = _check_filters(path)
    meta = read_meta(path)
    layers = layer_table(meta, n, path, required_columns)
    cov = coverage(meta, layers, n)
    if checks["uncovered_rows"] == "error" and len(cov.uncovered):
        raise DBError(
            f"{path}: {cov.n_uncovered} filter rows belong to no layer ({cov.runs_text(3)}); "
            f"expected every row in one layer (checks.uncovered_rows: error)"
        )
    if checks["empty_layers"] == "error" and len(cov.empty):
        raise DBError(
            f"{path}: {len(cov.empty)} layers have an empty filter range ({cov.empty_text(3)}); "
            f"expected at least one filter per layer (checks.empty_layers: error)"
        )
    return FilterDB(path=path, key=key, n_rows=n, layers=layers, dtype=dtype, coverage=cov, shape=fshape)


def is_filter_db(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a filter DB in the published layout: an HDF5 file with a
    ``filters`` (or ``filter``) dataset and a ``meta`` table. Cheap: reads no data; any file that
    is not HDF5 gives ``False``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    bool
    """
    try:
        with h5py.File(str(path), "r") as f:  # links only: never followed
            return (
                any(f.get(k, getlink=True) is not None for k in FILTER_KEYS) and f.get("meta", getlink=True) is not None
            )
    except OSError:
        return False


def find_column(columns: Iterable[str], name: str) -> str | None:
    """The column of ``columns`` holding ``name``, allowing the aliases of
    :data:`CATEGORY_ALIASES` in either direction (``Datatype`` / ``Visual Category``); ``None``
    when absent.

    Parameters
    ----------
    columns : iterable of str
        Available column names.
    name : str
        Wanted column.

    Returns
    -------
    str or None
        ``name`` if present, else its alias if present, else None.

    Examples
    --------
    >>> find_column(["Datatype", "Task"], "Visual Category")
    'Datatype'
    """
    cols = set(columns)
    if name in cols:
        return name
    alias = {**CATEGORY_ALIASES, **{v: k for k, v in CATEGORY_ALIASES.items()}}.get(name)
    return alias if alias in cols else None


def read_rows(ds: h5py.Dataset, start: int, end: int) -> np.ndarray:
    """Rows ``[start, end)`` of the filter dataset as a float32 ``(n, d)`` array (``d = k²``).

    Parameters
    ----------
    ds : h5py.Dataset
        The filter dataset, shape ``(N, k, k)`` or ``(N, k²)``.
    start, end : int
        Row range, ``end`` exclusive (``0 <= start <= end <= N``).

    Returns
    -------
    (end - start, d) float32 ndarray
    """
    block = ds[start:end]
    return np.asarray(block, dtype=np.float32).reshape(end - start, FilterShape.of_dataset(ds.shape).size)


# ---------------------------------------------------------------------------------------------
# Writing


def _meta_frame(layers: pd.DataFrame, layout: str) -> pd.DataFrame:
    meta = layers.copy()
    if layout == "v0.1":
        meta["filter_ids"] = [list(range(int(a), int(b))) for a, b in zip(meta["row_start"], meta["row_end"])]
        if "Visual Category" in meta.columns and "Datatype" not in meta.columns:
            meta = meta.rename(columns={"Visual Category": "Datatype"})
    elif layout == "v1.0":
        meta["filter_ids"] = [f"{int(a)}:{int(b) - 1}" for a, b in zip(meta["row_start"], meta["row_end"])]
    else:
        raise ValueError(f"unknown layout {layout!r}: expected 'v0.1' or 'v1.0'")
    meta = meta.drop(
        columns=[c for c in ("row_start", "row_end", "layer", "n_filters", "meta_row") if c in meta.columns]
    )
    return meta.set_index(INDEX_NAMES)


def write_meta(meta: pd.DataFrame, path: str, mode: str = "a") -> None:
    """Store the meta table as the published files do (PyTables fixed format; object columns such as
    v0.1 ``filter_ids`` lists are pickled by pandas, which it warns about: silenced here).

    Parameters
    ----------
    meta : pandas.DataFrame
        The meta table to store under key ``meta``.
    path : str
        HDF5 file.
    mode : str
        File mode passed to ``DataFrame.to_hdf`` (``"a"``: keep the other contents).

    Returns
    -------
    None
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        meta.to_hdf(path, key="meta", mode=mode, format="fixed")


def write_db(
    path: str | os.PathLike,
    filters: np.ndarray | Sequence[np.ndarray],
    layers: pd.DataFrame,
    layout: str = "v1.0",
    shape3x3: bool = False,
    chunk_rows: int = 65536,
    kernel: FilterShape = STUDY,
    attrs: dict | None = None,
) -> None:
    """Write a DB in the published layout.

    ``filters`` is an ``(N, d)`` array (``d = k²``, ``kernel``) (rows as numbered by ``row_start``/``row_end``) or a
    sequence of per-layer arrays in the order of ``layers``; ``layers`` holds ``model_id``,
    ``conv_depth``, ``conv_depth_norm``, ``row_start``, ``row_end`` and any meta columns.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (replaced atomically, see :func:`write_db_streaming`).
    filters : ndarray or sequence of ndarray
        ``(N, d)`` (or any shape of size ``d N``) array, or one array of ``n_filters * d`` values
        per layer; stored as float32.
    layers : pandas.DataFrame
        Per-layer table (as :func:`layer_table` returns, or a subset of its columns).
    layout : {"v1.0", "v0.1"}
        ``filter_ids`` format: ``"start:end"`` strings (v1.0) or id lists, with ``Visual Category``
        stored as ``Datatype`` (v0.1).
    shape3x3 : bool
        Store the filters as ``(N, k, k)`` (the published layout) instead of ``(N, d)``.
    chunk_rows : int
        HDF5 chunk length in rows.
    kernel : FilterShape
        The filters' shape (default: 3x3).
    attrs : dict, optional
        HDF5 attributes of the filter dataset (plain numbers or text, e.g. the
        ``filterdb_kernel_size`` of a ``filterdb build --kernel`` DB); default none.

    Returns
    -------
    None
    """
    if isinstance(filters, np.ndarray):
        rows = filters.reshape(-1, kernel.size)
        make = lambda row: rows[int(row["row_start"]) : int(row["row_end"])]  # noqa: E731
    else:
        it = iter(filters)
        make = lambda row: next(it)  # noqa: E731
    write_db_streaming(path, layers, make, layout, shape3x3, chunk_rows, kernel=kernel, attrs=attrs)


def write_db_streaming(
    path: str | os.PathLike,
    layers: pd.DataFrame,
    make_filters,
    layout: str = "v1.0",
    shape3x3: bool = False,
    chunk_rows: int = 65536,
    dtype: str = "float32",
    kernel: FilterShape = STUDY,
    attrs: dict | None = None,
) -> None:
    """Write a DB whose layer filters come from ``make_filters(row)`` one layer at a time, in the
    order of ``layers`` (bounded memory). The file is written to a temporary name and renamed at the
    end, so a failure never leaves a partial DB behind; the filter dataset is resizable (appends).

    Parameters
    ----------
    path : str or os.PathLike
        Output file; written as ``path + ".partial"`` first.
    layers : pandas.DataFrame
        Per-layer table with ``row_start``, ``row_end`` (exclusive), the index columns and any meta
        columns. The array has ``max(row_end)`` rows; rows of no layer stay zero.
    make_filters : callable
        ``make_filters(row)`` for a row of ``layers`` (a pandas Series) returns that layer's
        ``row_end - row_start`` filters (any shape of that size times ``d``).
    layout : {"v1.0", "v0.1"}
        As :func:`write_db`.
    shape3x3 : bool
        Store the filters as ``(N, k, k)`` (the published layout) instead of ``(N, d)``.
    chunk_rows : int
        HDF5 chunk length in rows.
    dtype : {"float32", "float64", "float16"}
        Stored dtype of the filters (the published v1.0 file is float64).
    kernel : FilterShape
        The filters' shape (default: 3x3).
    attrs : dict, optional
        HDF5 attributes of the filter dataset (plain numbers or text); default none.

    Returns
    -------
    None
    """
    path = str(path)
    tmp = path + ".partial"
    n = int(layers["row_end"].max()) if len(layers) else 0
    shape = (n, kernel.side, kernel.side) if shape3x3 else (n, kernel.size)
    try:
        with h5py.File(tmp, "w") as f:
            ds = f.create_dataset(
                "filters",
                shape=shape,
                maxshape=(None,) + shape[1:],
                dtype=dtype,
                chunks=(min(max(n, 1), chunk_rows),) + shape[1:],
            )
            for name, value in (attrs or {}).items():
                ds.attrs[name] = value
            for _, row in layers.iterrows():
                a, b = int(row["row_start"]), int(row["row_end"])
                ds[a:b] = np.asarray(make_filters(row), dtype=dtype).reshape((b - a,) + shape[1:])
        write_meta(_meta_frame(layers, layout), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def append_db(
    path: str | os.PathLike, new_filters: Sequence[np.ndarray], new_layers: pd.DataFrame, layout: str | None = None
) -> None:
    """Append layers to an existing DB without rewriting its filter rows.

    ``new_layers`` holds the meta columns for the new layers (row ranges are assigned here, after
    the existing rows). The meta table is rewritten (it is small); the filter dataset is resized in
    place, so it must have been created resizable (as :func:`write_db` does).

    Parameters
    ----------
    path : str or os.PathLike
        Existing DB, modified in place.
    new_filters : sequence of ndarray
        Filters of each new layer (size a multiple of the DB's values per filter ``d``), in the
        order of ``new_layers``.
    new_layers : pandas.DataFrame
        Meta of the new layers (``model_id``, ``conv_depth``, ``conv_depth_norm`` and meta
        columns); any ``row_start`` / ``row_end`` are overwritten.
    layout : {"v1.0", "v0.1"}, optional
        ``filter_ids`` format of the rewritten meta table; None: v0.1 if the stored meta has a
        ``Datatype`` column, else v1.0.

    Returns
    -------
    None

    Raises
    ------
    DBError
        If the DB is invalid or its filter dataset is not resizable.
    """
    path = str(path)
    db = open_db(path)
    if layout is None:
        layout = "v0.1" if "Datatype" in read_meta(path).columns else "v1.0"
    d = db.width
    sizes = [int(np.asarray(w).size // d) for w in new_filters]
    starts = db.n_rows + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    add = new_layers.copy()
    add["row_start"] = starts
    add["row_end"] = starts + np.asarray(sizes, dtype=np.int64)
    with h5py.File(path, "r+") as f:
        ds = f[db.key]
        if ds.maxshape[0] is not None:
            raise DBError(f"{path}: filter dataset is not resizable; rebuild it with `filterdb build`")
        total = db.n_rows + sum(sizes)
        ds.resize(total, axis=0)
        for a, w in zip(starts, new_filters):
            w = np.asarray(w, dtype=np.float32)
            ds[int(a) : int(a) + w.size // d] = w.reshape((w.size // d,) + ds.shape[1:])
    old = db.layers.sort_values("meta_row").drop(columns=["meta_row"])
    both = pd.concat([old, add], ignore_index=True)
    meta = _meta_frame(both, layout)
    write_meta(meta, path)  # replaces the old table
