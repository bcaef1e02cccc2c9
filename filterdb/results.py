"""The results layout: where every result file lives, and how it is read and written.

One module owns the files under ``{results}/`` so that the passes, the workflow scripts, the
figures and ``filterdb inspect`` agree on names, columns and number formats. Every writer is
atomic (temporary name in the same folder, then rename): an interrupted job never leaves a
half-written file under the final name, and the temporary file of a killed job is removed when the
same file is written again.

Layout (``R`` = the results folder)::

    R/stats/layers.tsv        layer table (one row per conv layer, in row order)
    R/stats/plan.npz          what shard jobs need of it, as plain arrays (rows, cells, out_channels)
    R/stats/cells.tsv         fine-histogram cells: one per (model_id, depth bin)
    R/stats/coverage.tsv      rows of no layer and empty layers (filterdb.db.Coverage.table)
    R/stats/sums.npz          per-layer n, sum, outer (+ quality_* arrays)
    R/stats/range.npz         per-layer coefficient min/max
    R/stats/hist.npz          per-layer coefficient histograms (+ density)
    R/stats/cell_hist.npy     fine per-cell histograms (cells, d, fine_bins), memory-mappable
    R/pca/basis.tsv           component, explained_variance, explained_variance_ratio, w0..w{d-1}
    R/pca/mean.tsv            w0..w{d-1}      (d = k² values per k x k filter: 9 for 3x3)
    R/pca/range.tsv           min, max
    R/drift/{axis}.tsv        group x group drift matrix (first column ``group``)
    R/groups/{axis}.tsv       groups of an axis with their counts
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .shape import STUDY, FilterShape

#: Number format of every float column in a TSV: enough digits to round-trip a float64.
FLOAT_FORMAT = "%.17g"


@dataclass(frozen=True)
class Paths:
    """Paths of the result files under one results folder: the one layout of ``{results}/``, used by
    the package and by the workflow's rules (``workflow/rules/common.smk``).

    A name given as ``"{axis}"`` (or ``"{scatteritem}"``) gives the rule's wildcard pattern.

    Parameters
    ----------
    root : str or Path
        The results folder (``config["results"]``).

    Examples
    --------
    >>> Paths("results").drift("task")
    PosixPath('results/drift/task.tsv')
    >>> str(Paths("results").figure("drift_{axis}", "svg"))
    'results/figures/drift_{axis}.svg'
    """

    root: Path

    def __init__(self, root):
        object.__setattr__(self, "root", Path(root))

    @property
    def stats(self) -> Path:
        return self.root / "stats"

    @property
    def layers(self) -> Path:
        return self.stats / "layers.tsv"

    @property
    def plan(self) -> Path:
        return self.stats / "plan.npz"

    @property
    def cells(self) -> Path:
        return self.stats / "cells.tsv"

    @property
    def coverage(self) -> Path:
        return self.stats / "coverage.tsv"

    @property
    def sums(self) -> Path:
        return self.stats / "sums.npz"

    @property
    def range_stats(self) -> Path:
        return self.stats / "range.npz"

    @property
    def hist(self) -> Path:
        return self.stats / "hist.npz"

    @property
    def cell_hist(self) -> Path:
        return self.stats / "cell_hist.npy"

    @property
    def basis(self) -> Path:
        return self.root / "pca" / "basis.tsv"

    @property
    def mean(self) -> Path:
        return self.root / "pca" / "mean.tsv"

    @property
    def range(self) -> Path:
        return self.root / "pca" / "range.tsv"

    def drift(self, axis: str) -> Path:
        """The drift matrix file of an axis.

        Parameters
        ----------
        axis : str
            Axis name.

        Returns
        -------
        pathlib.Path
            ``{root}/drift/{axis}.tsv``.
        """
        return self.root / "drift" / f"{axis}.tsv"

    def groups(self, axis: str) -> Path:
        """The group table file of an axis.

        Parameters
        ----------
        axis : str
            Axis name.

        Returns
        -------
        pathlib.Path
            ``{root}/groups/{axis}.tsv``.
        """
        return self.root / "groups" / f"{axis}.tsv"

    def part(self, kind: str, item: str, ext: str = "npz") -> Path:
        """A shard's part of pass ``kind`` (temporary): ``{root}/shards/{kind}/{item}.{ext}``
        (``ext`` ``cells``: the hist part's fine cell records)."""
        return self.root / "shards" / kind / f"{item}.{ext}"

    def totals(self, kind: str, item: str) -> Path:
        """A shard's exact totals of pass ``kind`` (kept): ``{root}/stats/totals/{kind}/{item}.npz``."""
        return self.stats / "totals" / kind / f"{item}.npz"

    def subsets(self, axis: str) -> Path:
        """Subset PCA table of an axis: ``{root}/pca/subsets/{axis}.tsv``."""
        return self.root / "pca" / "subsets" / f"{axis}.tsv"

    def ridge(self, axis: str) -> Path:
        """Ridge plot bandwidths of an axis: ``{root}/ridge/{axis}.tsv``."""
        return self.root / "ridge" / f"{axis}.tsv"

    def drift_ci(self, axis: str) -> Path:
        """Bootstrap intervals of an axis's drift: ``{root}/drift/{axis}.ci.tsv``."""
        return self.root / "drift" / f"{axis}.ci.tsv"

    def drift_null(self, axis: str) -> Path:
        """Permutation null of an axis's drift: ``{root}/drift/{axis}.null.tsv``."""
        return self.root / "drift" / f"{axis}.null.tsv"

    @property
    def uncertainty(self) -> Path:
        """The axis tests of the drift uncertainty: ``{root}/uncertainty/axes.tsv``."""
        return self.root / "uncertainty" / "axes.tsv"

    def uncertainty_axis(self, axis: str) -> Path:
        """One axis's row of the axis tests (gathered into :attr:`uncertainty`):
        ``{root}/uncertainty/axes/{axis}.tsv``."""
        return self.root / "uncertainty" / "axes" / f"{axis}.tsv"

    def grid(self, name: str) -> Path:
        """Rows shown by a filter grid (an axis, or ``model``): ``{root}/grids/{name}.tsv``."""
        return self.root / "grids" / f"{name}.tsv"

    def quality(self, name: str) -> Path:
        """A quality table (``layers``, ``models``, ``by_{axis}``, ...): ``{root}/quality/{name}.tsv``."""
        return self.root / "quality" / f"{name}.tsv"

    @property
    def provenance(self) -> Path:
        """``{root}/provenance.json``: the DB, config, versions and revision of the run."""
        return self.root / "provenance.json"

    def dataset(self, name: str) -> Path:
        """A table of the DB (``summary``, ``models``): ``{root}/dataset/{name}.tsv``."""
        return self.root / "dataset" / f"{name}.tsv"

    def models(self, name: str) -> Path:
        """A model x model table (``drift``, ``linkage``, ..., ``axes``): ``{root}/models/{name}.tsv``."""
        return self.root / "models" / f"{name}.tsv"

    @property
    def paper(self) -> Path:
        """The reproduction table: ``{root}/paper/comparison.tsv``."""
        return self.root / "paper" / "comparison.tsv"

    def compare(self, name: str) -> Path:
        """A file of the comparison of models against a reference: ``{root}/compare/{name}``."""
        return self.root / "compare" / name

    def sample(self, name: str) -> Path:
        """A file of the sample DB's build: ``{root}/sample/{name}``."""
        return self.root / "sample" / name

    @property
    def synthetic(self) -> Path:
        """The synthetic DB: ``{root}/synthetic/synthetic.h5``."""
        return self.root / "synthetic" / "synthetic.h5"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def figure(self, name: str, ext: str = "svg") -> Path:
        """A figure: ``{root}/figures/{name}.{ext}``."""
        return self.figures / f"{name}.{ext}"

    def log(self, name: str) -> Path:
        """A job's log: ``{root}/logs/{name}.log``."""
        return self.root / "logs" / f"{name}.log"

    def benchmark(self, name: str) -> Path:
        """A job's benchmark (time, memory): ``{root}/benchmarks/{name}.tsv``."""
        return self.root / "benchmarks" / f"{name}.tsv"


@dataclass
class Plan:
    """What the passes need of the layer table, as plain arrays (``stats/plan.npz``, written by the
    ``layer_table`` rule).

    Attributes
    ----------
    row_start, row_end : (L,) int64
        Row range of each layer (end exclusive), in row order.
    cell : (L,) int64
        Fine-histogram cell of each layer (one per model and depth bin; -1 = none).
    out_channels : (L,) float64
        Output channels of each layer (NaN when unknown): orthogonality needs it.
    n_cells : int
    key : str
        The filter dataset of the DB (``filters`` or ``filter``).
    width : int
        Values per filter, ``d = k²`` (:class:`filterdb.shape.FilterShape`; the study: 9).
    """

    row_start: np.ndarray
    row_end: np.ndarray
    cell: np.ndarray
    out_channels: np.ndarray
    n_cells: int
    key: str = "filters"
    width: int = STUDY.size

    @property
    def n_layers(self) -> int:
        return int(self.row_start.size)

    @property
    def n_filters(self) -> np.ndarray:
        return self.row_end - self.row_start

    def arrays(self) -> dict[str, np.ndarray]:
        """The plan as named arrays, for :func:`save_npz` (inverse of :meth:`from_arrays`).

        Returns
        -------
        dict of str to ndarray
            ``row_start``, ``row_end``, ``cell``, ``out_channels``, ``n_cells`` (0-d int64),
            ``key`` (0-d str) and ``width`` (0-d int64).
        """
        return {
            "row_start": self.row_start,
            "row_end": self.row_end,
            "cell": self.cell,
            "out_channels": self.out_channels,
            "n_cells": np.array(self.n_cells, np.int64),
            "key": np.array(self.key),
            "width": np.array(self.width, np.int64),
        }

    @classmethod
    def from_arrays(cls, a) -> Plan:
        """Build a plan from named arrays (as :meth:`arrays` writes them).

        Parameters
        ----------
        a : mapping of str to array_like
            With ``row_start``, ``row_end``, ``cell``, ``out_channels``, ``n_cells`` and optionally
            ``key`` (default ``"filters"``) and ``width`` (default 9, 3x3 filters).

        Returns
        -------
        Plan
        """
        return cls(
            np.asarray(a["row_start"], np.int64),
            np.asarray(a["row_end"], np.int64),
            np.asarray(a["cell"], np.int64),
            np.asarray(a["out_channels"], np.float64),
            int(a["n_cells"]),
            str(a["key"]) if "key" in a else "filters",
            int(a["width"]) if "width" in a else STUDY.size,
        )


# ---------------------------------------------------------------------------------------------
# Atomic writing


def _tmp_name(path) -> str:
    p = Path(path)
    return str(p.with_name(f".{p.name}.{os.getpid()}.partial{p.suffix}"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def stale_partials(path) -> list[Path]:
    """Temporary files of ``path`` left by writers that no longer run (killed by SIGKILL, the OOM
    killer or a power loss, so that :func:`atomic_write` could not remove them).

    Parameters
    ----------
    path : str or os.PathLike
        Final file name.

    Returns
    -------
    list of pathlib.Path
        ``.{name}.{pid}.partial{suffix}`` beside ``path`` whose ``pid`` is not a running process
        on this machine (never this process's own).
    """
    p = Path(path)
    head, tail = f".{p.name}.", f".partial{p.suffix}"
    out = []
    try:
        names = os.listdir(p.parent if str(p.parent) else ".")
    except FileNotFoundError:
        return out
    for name in sorted(names):
        pid = name[len(head) : -len(tail)] if name.startswith(head) and name.endswith(tail) else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            out.append(p.with_name(name))
    return out


def atomic_write(path, write) -> None:
    """Call ``write(tmp)`` with a temporary path beside ``path``, then rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was. A process killed
    outright (SIGKILL) cannot remove its temporary file: the next write of the same ``path`` does
    (:func:`stale_partials`), so a rerun of the killed job leaves none behind.

    Parameters
    ----------
    path : str or os.PathLike
        Final file name.
    write : callable
        ``write(tmp)`` writes the complete file at the path ``tmp`` (a str).

    Returns
    -------
    None
    """
    for stale in stale_partials(path):
        stale.unlink(missing_ok=True)
    tmp = _tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ---------------------------------------------------------------------------------------------
# Tables


def write_tsv(df, path, floats: bool = True) -> None:
    """Write a table as TSV (no index), floats with :data:`FLOAT_FORMAT`, atomically.

    Parameters
    ----------
    df : pandas.DataFrame
    path : str or Path
    floats : bool
        Format float columns with :data:`FLOAT_FORMAT` (round-trip exact); ``False`` uses pandas'
        default repr.
    """
    kw = {"float_format": FLOAT_FORMAT} if floats else {}
    atomic_write(path, lambda tmp: df.to_csv(tmp, sep="\t", index=False, **kw))


def read_tsv(path, group_names: bool = False):
    """Read a result TSV. With ``group_names`` the ``group`` column is read as text, with empty
    cells kept as ``""`` (group tables and drift matrices).

    Parameters
    ----------
    path : str or os.PathLike
        Tab-separated file with a header row.
    group_names : bool
        Read ``group`` as str and do not turn empty cells (in any column) into NaN.

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    if group_names:
        return pd.read_csv(path, sep="\t", keep_default_na=False, dtype={"group": str})
    return pd.read_csv(path, sep="\t", keep_default_na=True)


def read_layers(path):
    """The layer table ``stats/layers.tsv`` (pandas DataFrame, one row per layer).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pandas.DataFrame
        Empty cells read as NaN.
    """
    return read_tsv(path)


def write_layers(layers, path) -> None:
    """Write the layer table ``stats/layers.tsv``.

    Parameters
    ----------
    layers : pandas.DataFrame
        The layer table; written without index, floats in pandas' default repr, atomically.
    path : str or os.PathLike

    Returns
    -------
    None
    """
    write_tsv(layers, path, floats=False)


def describe_layer(layers, g: int) -> str:
    """``"model X, conv layer g at conv_depth d"`` (for messages); ``layers`` a DataFrame or the
    path of ``stats/layers.tsv``.

    Parameters
    ----------
    layers : pandas.DataFrame or str or os.PathLike
        The layer table (with ``model`` or ``model_id`` and ``conv_depth``), or its file.
    g : int
        Layer number (row position in the table).

    Returns
    -------
    str
        The model is its ``model`` column if present, else ``model_id``.
    """
    if not hasattr(layers, "iloc"):
        layers = read_layers(layers)
    row = layers.iloc[int(g)]
    model = row["model"] if "model" in layers.columns else row["model_id"]
    return f"model {model}, conv layer {int(g)} at conv_depth {row['conv_depth']}"


# ---------------------------------------------------------------------------------------------
# Arrays


def save_npz(path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write named arrays to an uncompressed ``.npz``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    arrays : mapping of str to ndarray
        Arrays by name (must not need pickling to be read back by :func:`load_npz`).

    Returns
    -------
    None
    """

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


def load_npz(path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` (never unpickles).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict of str to ndarray
        Every array, read into memory. Object arrays raise ``ValueError``.
    """
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_part(path):
    """A shard part (``.npz``) opened lazily: arrays are read when indexed (``.files`` lists
    them; close it after use).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    numpy.lib.npyio.NpzFile
    """
    return np.load(path, allow_pickle=False)


def load_plan(path) -> Plan:
    """``stats/plan.npz`` as a :class:`Plan`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Plan
    """
    return Plan.from_arrays(load_npz(path))


class CellHist:
    """``stats/cell_hist.npy`` read a chunk of cells at a time: ``shape``, and ``[c]`` gives cell
    ``c``'s ``(d, fine_bins)`` histogram. Plain file reads (no memory map), so the memory of a job
    that walks through every cell stays at one chunk however many cells the DB has."""

    def __init__(self, path, chunk_cells: int = 1024):
        self.path = str(path)
        with open(self.path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            self.offset = fh.tell()
        if fortran or dtype != np.dtype(np.uint32) or len(shape) != 3:
            raise ValueError(f"{path}: expected a C-ordered uint32 (cells, d, bins) array, got {dtype} {shape}")
        self.shape = tuple(shape)
        self.dtype = dtype
        self.chunk = max(1, int(chunk_cells))
        self._c0, self._buf = -1, None

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, c: int) -> np.ndarray:
        c = int(c)
        if not 0 <= c < self.shape[0]:
            raise IndexError(f"cell {c} outside 0..{self.shape[0] - 1}")
        c0 = c - c % self.chunk
        if c0 != self._c0:
            n = min(self.chunk, self.shape[0] - c0)
            rec = self.shape[1] * self.shape[2]
            with open(self.path, "rb") as fh:
                fh.seek(self.offset + c0 * rec * 4)
                self._buf = np.fromfile(fh, np.uint32, count=n * rec).reshape(n, *self.shape[1:])
            self._c0 = c0
        return self._buf[c - c0]


def open_cell_hist(path) -> CellHist:
    """``stats/cell_hist.npy``: fine per-cell histograms ``(cells, d, fine_bins)`` uint32, read a
    chunk of cells at a time (:class:`CellHist`).

    Parameters
    ----------
    path : str or os.PathLike
        A C-ordered uint32 ``.npy`` of shape ``(cells, d, fine_bins)``.

    Returns
    -------
    CellHist
        Chunks of 1024 cells.

    Raises
    ------
    ValueError
        If the array is not C-ordered uint32 with 3 dimensions.
    """
    return CellHist(path)


# ---------------------------------------------------------------------------------------------
# PCA files


def basis_table(p):
    """``pca/basis.tsv`` as a DataFrame: component, explained_variance, explained_variance_ratio,
    w0..w{d-1} (one row per component).

    Parameters
    ----------
    p : filterdb.pca.PCA

    Returns
    -------
    pandas.DataFrame
        ``component`` (``c0``, ``c1``, ...), ``explained_variance``, ``explained_variance_ratio``
        and the loadings ``w0``..``w8`` of each component.
    """
    import pandas as pd

    df = pd.DataFrame(p.components, columns=p.shape.pixels)
    df.insert(0, "explained_variance_ratio", p.explained_variance_ratio)
    df.insert(0, "explained_variance", p.explained_variance)
    df.insert(0, "component", p.shape.components[: len(df)])
    return df


def mean_table(p):
    """``pca/mean.tsv`` as a DataFrame: one row, columns w0..w{d-1}.

    Parameters
    ----------
    p : filterdb.pca.PCA

    Returns
    -------
    pandas.DataFrame
        One row, the mean scaled filter.
    """
    import pandas as pd

    return pd.DataFrame([p.mean], columns=p.shape.pixels)


def write_basis(p, basis_path, mean_path) -> None:
    """Write ``pca/basis.tsv`` and ``pca/mean.tsv`` of a :class:`filterdb.pca.PCA`.

    Parameters
    ----------
    p : filterdb.pca.PCA
    basis_path, mean_path : str or os.PathLike
        Output files (:func:`basis_table`, :func:`mean_table`), each written atomically with
        round-trip float format.

    Returns
    -------
    None
    """
    write_tsv(basis_table(p), basis_path)
    write_tsv(mean_table(p), mean_path)


def _read_columns(path) -> dict[str, np.ndarray]:
    """A small numeric TSV with a header as float columns (text columns skipped), without pandas."""
    with open(path) as fh:
        header = fh.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in fh if line.strip()]
    out = {}
    for j, name in enumerate(header):
        try:
            out[name] = np.array([float(r[j]) for r in rows], dtype=np.float64)
        except ValueError:
            continue
    return out


def read_basis(basis_path, mean_path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read the PCA files.

    Parameters
    ----------
    basis_path : str or os.PathLike
        ``pca/basis.tsv``.
    mean_path : str or os.PathLike
        ``pca/mean.tsv``.

    Returns
    -------
    mean : (d,) float64
    components : (d, d) float64, row k = component k in pixel order w0..w{d-1}
    explained_variance_ratio : (d,) float64
    """
    b = _read_columns(basis_path)
    m = _read_columns(mean_path)
    pixels = pixel_columns(m, mean_path)
    comps = np.stack([b[p] for p in pixels], axis=1)
    mean = np.array([m[p][0] for p in pixels])
    return mean, comps, b["explained_variance_ratio"]


def pixel_columns(columns, path=None) -> list[str]:
    """The pixel columns ``w0 .. w{d-1}`` of a table's ``columns`` (``d = k²``: the filters'
    :class:`filterdb.shape.FilterShape`, read from the columns present).

    Raises
    ------
    ValueError
        When the ``w*`` columns are not ``w0 .. w{d-1}`` of a k x k filter (naming ``path``).
    """
    n = sum(1 for c in columns if isinstance(c, str) and c[:1] == "w" and c[1:].isdigit())
    try:
        pixels = FilterShape.of_width(n).pixels
    except ValueError as exc:
        raise ValueError(f"{path}: pixel columns w0..w{{d-1}}: {exc}") from None
    missing = [p for p in pixels if p not in columns]
    if missing:
        raise ValueError(f"{path}: expected pixel columns {pixels[0]}..{pixels[-1]}, missing {missing[0]}")
    return pixels


def read_evr(basis_path) -> np.ndarray:
    """The explained variance ratio column of ``pca/basis.tsv`` (d,).

    Parameters
    ----------
    basis_path : str or os.PathLike

    Returns
    -------
    (d,) float64 ndarray
    """
    return _read_columns(basis_path)["explained_variance_ratio"]


def write_range(path, lo: float, hi: float) -> None:
    """``pca/range.tsv``: columns ``min``, ``max`` (one row).

    Parameters
    ----------
    path : str or os.PathLike
        Output file, written atomically.
    lo, hi : float
        Shared coefficient range, written with :data:`FLOAT_FORMAT`.

    Returns
    -------
    None
    """
    atomic_write(path, lambda tmp: Path(tmp).write_text(f"min\tmax\n{FLOAT_FORMAT % lo}\t{FLOAT_FORMAT % hi}\n"))


def read_range(path) -> tuple[float, float]:
    """``(min, max)`` of ``pca/range.tsv``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    lo, hi : float
    """
    c = _read_columns(path)
    return float(c["min"][0]), float(c["max"][0])


# ---------------------------------------------------------------------------------------------
# Drift files


def read_drift(path) -> tuple[list[str], np.ndarray]:
    """A drift matrix file: ``(group names, D (G, G) float64)``.

    Parameters
    ----------
    path : str or os.PathLike
        ``drift/{axis}.tsv``: first column ``group``, then one column per group.

    Returns
    -------
    groups : list of str
        Group names in row order.
    D : (G, G) float64 ndarray
        The drift matrix.
    """
    t = read_tsv(path, group_names=True)
    return t["group"].astype(str).tolist(), t.iloc[:, 1:].to_numpy(np.float64)


def read_groups(path):
    """A group table ``groups/{axis}.tsv`` (``group`` read as text).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pandas.DataFrame
        ``group``, ``n_models``, ``n_layers``, ``n_filters`` (see :func:`filterdb.axes.group_table`).
    """
    return read_tsv(path, group_names=True)
