"""Filter grids (CVPR 2022 Fig. 1; docs/method.md §8): example filters, chosen and read.

One job: decide which filter rows a grid shows, and read exactly those rows. Two kinds of grid:

* **axis grid**: per group of an axis (the groups of ``groups/{axis}.tsv``, in its order),
  ``per_group`` filters drawn uniformly without replacement among all filters of the group's
  layers;
* **model grid**: one model's 3x3 conv layers in conv-depth order (at most ``max_layers`` of them,
  evenly spaced over depth), ``per_layer`` filters drawn the same way from each.

**Selection** is a pure function of the layer table, the axis labels and the settings: each draw
uses its own ``numpy.random.Generator`` seeded with ``numpy.random.SeedSequence([seed,
crc32(axis), crc32(group)])`` (model grid: ``[seed, crc32("model"), crc32(model), crc32(position
in depth order)]``), so the picks of one group do not change when other groups come or go (a group
changes its picks only when its own layers change). A group of ``N`` filters is numbered
``0..N-1`` through its layers in row order; ``k = min(per_group, N)`` of these numbers are drawn
with Floyd's algorithm (for ``j = N-k .. N-1``: draw ``t`` uniform in ``[0, j]``, take ``t``, or
``j`` when ``t`` is taken already), which costs ``O(k)`` whatever ``N``; the rows are returned
sorted.

**Reading** opens the DB with :func:`filterdb.db.open_db` (the safe opener: no unpickling, no
``pandas.read_hdf``) and reads only the chosen rows, one read per run of consecutive rows
straight from the file (:func:`read_rows`): no pass over the DB, a cost independent of its size.
Each filter is then peak-scaled exactly as the analysis scales it in the run's
``stream.precision`` (docs/method.md §1, :func:`filterdb.scaling.scale_as`), so the tiles are the values the
analysis saw.

Cheap to import: numpy, pandas and the layer modules below; the reader (h5py) only inside
:func:`read_rows`, the schema (for the defaults) only when a default is needed.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .axes import Axis, layer_labels
from .scaling import PRECISIONS, scale_as
from .shape import STUDY, FilterShape


def grid_columns(shape: FilterShape = STUDY) -> list[str]:
    """Columns of ``grids/{axis}.tsv`` and ``grids/model.tsv`` for filters of ``shape``: one row
    per tile, the tile's values ``w0 .. w{d-1}``."""
    return ["group", "row", "model", "layer", "conv_depth", "conv_depth_norm"] + shape.pixels


#: :func:`grid_columns` of 3x3 filters.
GRID_COLUMNS = grid_columns()

#: The grid of one model's layers is named so in file names and seeds.
MODEL_GRID = "model"


@functools.cache
def _defaults() -> dict:
    """The schema's defaults of ``grids`` and ``stream.precision`` (the schema owns every default)."""
    from .settings import schema_defaults

    d = schema_defaults()
    return {**d["grids"], "precision": d["stream"]["precision"]}


def _default(key: str):
    return field(default_factory=lambda: _defaults()[key])


@dataclass(frozen=True)
class GridSettings:
    """Settings of the filter grids (config ``grids``; defaults = the schema's).

    Attributes
    ----------
    per_group : int
        Filters drawn per group of an axis.
    model : str
        The model of the model grid: ``"auto"`` (:func:`choose_model`) or a value of the layer
        table's ``model`` column (``model_id`` when it has none).
    per_layer : int
        Filters drawn per layer of that model.
    max_layers : int
        At most this many of its layers, evenly spaced over depth (:func:`depth_spread`).
    seed : int
        Seed of every draw (non-negative).
    precision : str
        ``stream.precision`` of the run: how the tiles are scaled (:func:`filterdb.scaling.scale_as`).

    Every default is the schema's (``workflow/schemas/config.schema.yaml``: ``grids`` and
    ``stream.precision``), read through :func:`filterdb.settings.schema_defaults`.
    """

    per_group: int = _default("per_group")
    model: str = _default("model")
    per_layer: int = _default("per_layer")
    max_layers: int = _default("max_layers")
    seed: int = _default("seed")
    precision: str = _default("precision")

    def __post_init__(self):
        for name in ("per_group", "per_layer", "max_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"grids.{name} must be at least 1, got {getattr(self, name)!r}")
        if int(self.seed) < 0:
            raise ValueError(f"grids.seed must be non-negative, got {self.seed!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @classmethod
    def from_config(cls, grids: Mapping, precision: str | None = None) -> GridSettings:
        """From the config's ``grids`` mapping (``enabled`` and ``axes`` are the workflow's) and
        ``stream.precision``.

        Parameters
        ----------
        grids : Mapping
            Keys among ``per_group``, ``model``, ``per_layer``, ``max_layers``, ``seed`` (others
            ignored); missing keys take the schema's defaults.
        precision : str, optional
            ``stream.precision``; None: the schema's default.

        Returns
        -------
        GridSettings
        """
        keys = ("per_group", "model", "per_layer", "max_layers", "seed")
        kw = {k: grids[k] for k in keys if k in grids}
        if "model" in kw:
            kw["model"] = str(kw["model"])
        if precision is not None:
            kw["precision"] = precision
        return cls(**kw)


@dataclass
class Selection:
    """The rows one grid shows: per group (display order) its sorted rows and their layers.

    Attributes
    ----------
    name : str
        Axis name, or :data:`MODEL_GRID`.
    groups : list of str
        Group labels (model grid: one per layer, see :func:`select_model`).
    counts : list of int
        Per group: its number of models (axis grid) or of filters (model grid: the layer's).
    rows : list of (k,) int64 ndarray
        Per group the chosen filter rows, sorted.
    layers : list of (k,) int64 ndarray
        Per group the layer number (``layer`` column of the layer table) of each row.
    count_label : str
        What ``counts`` counts: ``"models"`` or ``"filters"``.
    title : str
        Figure title.
    """

    name: str
    groups: list[str]
    counts: list[int]
    rows: list[np.ndarray]
    layers: list[np.ndarray]
    count_label: str = "models"
    title: str = ""

    @property
    def all_rows(self) -> np.ndarray:
        """Every chosen row of every group, sorted, without repeats."""
        if not self.rows:
            return np.zeros(0, np.int64)
        return np.unique(np.concatenate(self.rows).astype(np.int64))


@dataclass
class Grid:
    """A selection with its tiles: the table of ``grids/{name}.tsv`` (columns
    :func:`grid_columns`, one row per tile, groups in display order, rows ascending in a group)."""

    selection: Selection
    table: pd.DataFrame
    tiles: list[np.ndarray] = field(default_factory=list)  # per group (k, d) float64 scaled values

    @property
    def name(self) -> str:
        return self.selection.name

    def labels(self) -> list[str]:
        """Row labels of the figure: the group with its count, e.g. ``natural (557)`` (axis grid:
        models) or ``conv 3/12, depth 0.18 (n=1,024)`` (model grid: the layer's filters)."""
        s = self.selection
        if s.count_label == "models":
            return [f"{g} ({int(n):,})" for g, n in zip(s.groups, s.counts)]
        return [f"{g} (n={int(n):,})" for g, n in zip(s.groups, s.counts)]


# ---------------------------------------------------------------------------------------------
# Selection


def crc(text: str) -> int:
    """``zlib.crc32`` of the UTF-8 text: a hash that is the same in every process and release."""
    return zlib.crc32(str(text).encode("utf-8"))


def generator(seed: int, *keys: str) -> np.random.Generator:
    """``default_rng(SeedSequence([seed, crc(key) for key in keys]))``.

    Parameters
    ----------
    seed : int
        Non-negative.
    *keys : str
        Names the draw (axis and group, or "model", the model and the layer's position).

    Returns
    -------
    numpy.random.Generator
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(crc(k) for k in keys)]))


def floyd_sample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``min(k, n)`` distinct integers of ``[0, n)``, uniformly (every subset equally likely),
    sorted; Floyd's algorithm, ``O(k)`` time and memory whatever ``n``.

    For ``j = n-k .. n-1``: ``t`` uniform in ``[0, j]`` (one vectorised ``rng.integers`` call for
    all ``j``); take ``t``, or ``j`` when ``t`` was taken already.

    Parameters
    ----------
    n : int
        Population size (>= 0).
    k : int
        Sample size.
    rng : numpy.random.Generator

    Returns
    -------
    (min(k, n),) int64 ndarray
    """
    n, k = int(n), min(int(k), int(n))
    if k <= 0:
        return np.zeros(0, np.int64)
    js = np.arange(n - k, n, dtype=np.int64)
    ts = rng.integers(0, js + 1, dtype=np.int64)  # t_j uniform in [0, j]
    taken: set[int] = set()
    for j, t in zip(js.tolist(), ts.tolist()):
        taken.add(j if t in taken else t)
    return np.array(sorted(taken), dtype=np.int64)


def draw_rows(starts: np.ndarray, ends: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``k`` filters drawn uniformly without replacement from the union of row ranges.

    Parameters
    ----------
    starts, ends : (L,) array_like of int
        Row ranges ``[start, end)`` of the layers, sorted by start and not overlapping (as in the
        layer table); empty ranges hold no filter.
    k : int
        Filters wanted (fewer when the layers hold fewer).
    rng : numpy.random.Generator

    Returns
    -------
    rows : (m,) int64 ndarray
        Sorted filter rows, ``m = min(k, total)``.
    which : (m,) int64 ndarray
        Index into ``starts`` of each row's layer.
    """
    s = np.asarray(starts, np.int64)
    size = np.maximum(np.asarray(ends, np.int64) - s, 0)
    offset = np.concatenate([[0], np.cumsum(size)])  # filter i of the group: layer p with offset[p] <= i
    idx = floyd_sample(int(offset[-1]), k, rng)
    which = np.searchsorted(offset, idx, side="right") - 1
    return s[which] + (idx - offset[which]), which.astype(np.int64)


def text_labels(labels: pd.Series) -> np.ndarray:
    """Layer labels as text (``None`` = no group), comparable with a groups table's ``group``."""
    lab = labels.astype(object)
    return lab.where(lab.notna(), None).map(lambda v: v if v is None else str(v)).to_numpy(dtype=object)


def _layer_numbers(layers: pd.DataFrame) -> np.ndarray:
    return layers["layer"].to_numpy(np.int64) if "layer" in layers.columns else np.arange(len(layers), dtype=np.int64)


def select_axis(layers: pd.DataFrame, axis: Axis, groups: pd.DataFrame, per_group: int, seed: int) -> Selection:
    """The rows of the grid of one axis: ``per_group`` per group of ``groups``.

    Parameters
    ----------
    layers : pandas.DataFrame
        The layer table (``stats/layers.tsv``): ``row_start``, ``row_end`` and the axis column,
        sorted by ``row_start`` (as written).
    axis : filterdb.axes.Axis
        Labels the layers (:func:`filterdb.axes.layer_labels`: folding, bins, ...).
    groups : pandas.DataFrame
        The axis's groups table (``groups/{axis}.tsv``: ``group``, ``n_models``, ...); its groups
        and their order are the grid's (min_models / min_filters were applied when it was made).
    per_group : int
    seed : int

    Returns
    -------
    Selection
    """
    lab = text_labels(layer_labels(layers, axis))
    s_all = layers["row_start"].to_numpy(np.int64)
    e_all = layers["row_end"].to_numpy(np.int64)
    num = _layer_numbers(layers)
    names, counts, rows, lays = [], [], [], []
    for g, n_models in zip(groups["group"].astype(str), groups["n_models"]):
        sel = np.flatnonzero(lab == g)
        sel = sel[np.argsort(s_all[sel], kind="stable")]
        r, which = draw_rows(s_all[sel], e_all[sel], per_group, generator(seed, axis.name, g))
        names.append(g)
        counts.append(int(n_models))
        rows.append(r)
        lays.append(num[sel][which])
    return Selection(axis.name, names, counts, rows, lays, "models", f"Example filters per group: {axis.name}")


def model_names(layers: pd.DataFrame) -> np.ndarray:
    """Each layer's model as text: the ``model`` column, or ``model_id`` where it has none."""
    ids = layers["model_id"].astype(str).to_numpy(dtype=object)
    if "model" not in layers.columns:
        return ids
    m = layers["model"]
    return np.where(m.notna().to_numpy(), m.astype(str).to_numpy(dtype=object), ids)


def choose_model(layers: pd.DataFrame, model: str = "auto") -> str:
    """The model of the model grid.

    ``"auto"``: the model with the most 3x3 conv layers holding filters (meta rows with a non-empty
    row range); on a tie the first name in text order. Otherwise ``model`` itself, which must be a
    model of the table.

    Parameters
    ----------
    layers : pandas.DataFrame
        The layer table (``model`` or ``model_id``, ``n_filters`` or the row ranges).
    model : str

    Returns
    -------
    str

    Raises
    ------
    ValueError
        No layer holds a filter, or ``model`` is not in the table.
    """
    names = model_names(layers)
    full = (layers["row_end"].to_numpy(np.int64) - layers["row_start"].to_numpy(np.int64)) > 0
    if str(model) != "auto":
        if str(model) not in set(names[full].tolist()):
            known = sorted(set(names.tolist()))
            shown = ", ".join(known[:5]) + (f" and {len(known) - 5} more" if len(known) > 5 else "")
            raise ValueError(f"grids.model {model!r} is not a model of the DB with filters (models: {shown})")
        return str(model)
    if not full.any():
        raise ValueError("no layer of the DB holds a filter: no model grid")
    count = pd.Series(names[full]).value_counts()
    best = count[count == count.max()].index
    return str(min(best.astype(str)))


def depth_spread(n: int, m: int) -> np.ndarray:
    """``min(n, m)`` positions of ``0..n-1`` evenly spaced, first and last included
    (``round(linspace(0, n-1, m))``; all of them when ``n <= m``)."""
    if n <= m:
        return np.arange(n, dtype=np.int64)
    if m == 1:
        return np.zeros(1, np.int64)
    return np.unique(np.rint(np.linspace(0, n - 1, m)).astype(np.int64))


def select_model(layers: pd.DataFrame, model: str, per_layer: int, max_layers: int, seed: int) -> Selection:
    """The rows of the model grid: ``model``'s layers holding filters in conv-depth order
    (``conv_depth``, then ``row_start`` for layers on one depth level), at most ``max_layers`` of
    them (:func:`depth_spread`), ``per_layer`` filters drawn from each.

    Each layer is a group labelled ``conv {i}/{L}, depth {conv_depth_norm:.2f}``: its 1-based
    place ``i`` among the ``L`` layers of the model (so skipped layers show); its seed is ``[seed, crc32("model"),
    crc32(model), crc32(str(i - 1))]``.

    Parameters
    ----------
    layers : pandas.DataFrame
        The layer table.
    model : str
        A model name (:func:`choose_model`).
    per_layer, max_layers, seed : int

    Returns
    -------
    Selection
    """
    names = model_names(layers)
    s_all = layers["row_start"].to_numpy(np.int64)
    e_all = layers["row_end"].to_numpy(np.int64)
    sel = np.flatnonzero((names == str(model)) & (e_all > s_all))
    depth = pd.to_numeric(layers["conv_depth"], errors="coerce").to_numpy(np.float64)[sel]
    sel = sel[np.lexsort((s_all[sel], depth))]
    num = _layer_numbers(layers)
    depth_norm = pd.to_numeric(layers["conv_depth_norm"], errors="coerce").to_numpy(np.float64)
    n_layers = sel.size
    groups, counts, rows, lays = [], [], [], []
    for pos in depth_spread(n_layers, max_layers).tolist():
        j = sel[pos]
        r, _ = draw_rows(s_all[j : j + 1], e_all[j : j + 1], per_layer, generator(seed, MODEL_GRID, model, str(pos)))
        groups.append(f"conv {pos + 1}/{n_layers}, depth {depth_norm[j]:.2f}")
        counts.append(int(e_all[j] - s_all[j]))
        rows.append(r)
        lays.append(np.full(r.size, num[j], np.int64))
    return Selection(MODEL_GRID, groups, counts, rows, lays, "filters", f"Example filters down the depth of {model}")


# ---------------------------------------------------------------------------------------------
# Reading and scaling


def read_rows(db, rows: np.ndarray) -> np.ndarray:
    """The stored values of filter rows ``rows`` of an opened DB, as stored (no conversion).

    Parameters
    ----------
    db : filterdb.db.FilterDB
        From :func:`filterdb.db.open_db` (checked: layout, dtype, nothing outside the file).
    rows : (k,) array_like of int
        Sorted, without repeats, inside ``[0, db.n_rows)``.

    Returns
    -------
    (k, d) ndarray
        The stored dtype (float16, float32 or float64, native byte order); ``(N, k, k)`` rows
        reshaped to ``d = k²`` values.

    Raises
    ------
    ValueError
        Rows unsorted, repeated or outside the filter array.

    Notes
    -----
    Each run of consecutive rows is one read of its bytes straight from the file
    (:class:`filterdb.stream.BlockReader`, uncompressed little-endian data, contiguous or chunked),
    so ``k`` rows cost at most ``k`` small reads. An h5py selection of the same rows reads every
    chunk it touches whole (HDF5 caches the chunk): 880 rows of a 100 M-filter DB in chunks of
    65,536 rows read ~2 GB (1.7 s cold) instead of ~32 KB (0.07 s). Compressed or big-endian
    data is read through h5py, a chunk at a time.
    """
    from .stream import BlockReader

    r = np.asarray(rows, np.int64)
    if r.size and (np.any(np.diff(r) <= 0) or r[0] < 0 or r[-1] >= db.n_rows):
        raise ValueError(f"{db.path}: rows to read must be sorted, distinct and inside 0..{db.n_rows - 1}")
    with BlockReader(db.path, db.key, map_blocks=False, raw=True) as rd:
        out = np.empty((r.size, rd.width), rd.row_dtype)
        cut = np.flatnonzero(np.diff(r) != 1) + 1  # runs of consecutive rows
        for a, b in zip(np.concatenate([[0], cut]).tolist(), np.concatenate([cut, [r.size]]).tolist()):
            if b > a:
                rd.read(int(r[a]), int(r[b - 1]) + 1, out[a:b])
    return out.view(np.float16) if out.dtype == np.uint16 else out  # float16: stored as bit patterns


def check_layers(db, layers: pd.DataFrame) -> None:
    """The layer table ``layers`` (``stats/layers.tsv``) is the table of this DB: same number of
    layers and the same row ranges (else a stale table would name other rows).

    Raises
    ------
    ValueError
    """
    a = db.layers[["row_start", "row_end"]].to_numpy(np.int64)
    b = layers[["row_start", "row_end"]].to_numpy(np.int64)
    if a.shape != b.shape or not np.array_equal(a, b):
        raise ValueError(
            f"{db.path}: the layer table ({len(layers)} layers) does not match the DB's meta "
            f"({len(db.layers)} layers): rerun the layer table"
        )


def fill(db, layers: pd.DataFrame, selections: Sequence[Selection], precision: str) -> list[Grid]:
    """Read the rows of every selection at once (one selection of their sorted union) and scale
    them (:func:`filterdb.scaling.scale_as`).

    Parameters
    ----------
    db : filterdb.db.FilterDB
    layers : pandas.DataFrame
        The layer table the selections were made from (for ``model``, ``conv_depth``, ...).
    selections : sequence of Selection
    precision : {"float32", "float16", "float64"}

    Returns
    -------
    list of Grid
        In the order of ``selections``.
    """
    rows = np.unique(np.concatenate([s.all_rows for s in selections])) if selections else np.zeros(0, np.int64)
    scaled = scale_as(read_rows(db, rows), precision)
    names = model_names(layers)
    columns = grid_columns(db.shape)
    by_layer = pd.Series(np.arange(len(layers)), index=_layer_numbers(layers))
    depth = layers["conv_depth"].to_numpy()
    depth_norm = layers["conv_depth_norm"].to_numpy(np.float64)
    out = []
    for s in selections:
        tiles, parts = [], []
        for g, r, lay in zip(s.groups, s.rows, s.layers):
            x = scaled[np.searchsorted(rows, r)] if r.size else np.zeros((0, db.width))
            tiles.append(x)
            pos = by_layer.loc[lay].to_numpy(np.int64) if lay.size else np.zeros(0, np.int64)
            part = pd.DataFrame(
                {
                    "group": [g] * r.size,
                    "row": r,
                    "model": names[pos],
                    "layer": lay,
                    "conv_depth": depth[pos],
                    "conv_depth_norm": depth_norm[pos],
                }
            )
            parts.append(pd.concat([part, pd.DataFrame(x, columns=db.shape.pixels)], axis=1))
        table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
        out.append(Grid(s, table[columns], tiles))
    return out


def filter_grids(
    db, layers: pd.DataFrame, axes: Mapping[str, tuple[Axis, pd.DataFrame]], settings: GridSettings
) -> tuple[dict[str, Grid], Grid]:
    """Every axis grid and the model grid of a DB (the workflow's library call).

    Parameters
    ----------
    db : filterdb.db.FilterDB or str or os.PathLike
        An opened DB, or its path (then opened with :func:`filterdb.db.open_db`).
    layers : pandas.DataFrame
        The layer table (``stats/layers.tsv``); checked against the DB (:func:`check_layers`).
    axes : mapping of str to (Axis, pandas.DataFrame)
        Axis name → the axis and its groups table (``groups/{axis}.tsv``).
    settings : GridSettings

    Returns
    -------
    axis_grids : dict of str to Grid
        In the order of ``axes``.
    model_grid : Grid
    """
    if not hasattr(db, "n_rows"):
        from .db import open_db

        db = open_db(db)
    check_layers(db, layers)
    sels = [select_axis(layers, ax, groups, settings.per_group, settings.seed) for ax, groups in axes.values()]
    model = choose_model(layers, settings.model)
    sels.append(select_model(layers, model, settings.per_layer, settings.max_layers, settings.seed))
    grids = fill(db, layers, sels, settings.precision)
    return dict(zip(axes, grids[:-1])), grids[-1]
