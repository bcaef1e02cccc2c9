"""The analysis chain and its one driver: DB → layer table → passes → gathers → tables.

:class:`Chain` runs every step of the chain on one DB with one :class:`filterdb.settings.Settings`
(built from a filled config). The workflow's rule ``analyse`` runs the layer table, the passes and
their gathers in one job, its per-step rules one step each (``layer_table``, a shard of a pass, a
gather, the drift tables of one axis), and :func:`analyse`, the library entry point, the whole
chain in this process; all through the methods below, so they compute the same.

pandas and h5py are imported by the steps that need them: a shard or gather job starts without them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import results
from .accumulate import CellHistFile, PassSettings, coefficient_range, gather_parts, run_shard
from .histogram import uniform_edges
from .pca import PCA, global_pca
from .results import Plan
from .settings import Settings, auto_threads, schema_default
from .shape import STUDY

if TYPE_CHECKING:
    from .axes import Axis

# axes and divergence (pandas) are imported by the steps that use them: a shard job starts without pandas

PASSES = ("sums", "range", "hist")


def open_db(path, required_columns=(), checks=None):
    """:func:`filterdb.db.open_db` (imported when called: h5py)."""
    from .db import open_db as open_

    return open_(path, required_columns, checks)


def filter_bytes(path, key: str) -> int:
    """Bytes of one stored filter of the DB: its dtype's size times the values per filter (the
    shape of the filter dataset past its first axis: 9 for ``(N, 9)`` and ``(N, 3, 3)``).

    Parameters
    ----------
    path : str
        The DB (already checked: :func:`open_db` or :func:`filterdb.db.filter_layout`).
    key : str
        Its filter dataset.

    Returns
    -------
    int
    """
    import h5py

    with h5py.File(str(path), "r") as f:
        ds = f[key]
        return int(ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64)))


def cell_table(layers, depth_bins: int) -> tuple[np.ndarray, object]:
    """Cells for the fine histograms: one per (model_id, depth bin) present.

    Parameters
    ----------
    layers : DataFrame
        The layer table (``model_id``, ``conv_depth_norm``, ``n_filters``).
    depth_bins : int
        Depth bins, as the binned depth axis (:mod:`filterdb.axes`).

    Returns
    -------
    cell_of_layer : (L,) intp
    cells : DataFrame
        ``cell``, ``model_id``, ``depth_bin`` (label as on the depth axis), ``n_layers``, ``n_filters``.
    """
    import pandas as pd

    from .axes import depth_axis, layer_labels

    depth = layer_labels(layers, depth_axis(depth_bins))
    key = pd.DataFrame(
        {
            "model_id": layers["model_id"].to_numpy(),
            "depth_bin": depth.fillna("").to_numpy(),
            "n_filters": layers["n_filters"].to_numpy(),
        }
    )
    cells = (
        key.groupby(["model_id", "depth_bin"], sort=True)
        .agg(n_layers=("n_filters", "size"), n_filters=("n_filters", "sum"))
        .reset_index()
    )
    cells.insert(0, "cell", np.arange(len(cells)))
    idx = pd.MultiIndex.from_frame(cells[["model_id", "depth_bin"]])
    cell_of_layer = idx.get_indexer(pd.MultiIndex.from_frame(key[["model_id", "depth_bin"]]))
    return cell_of_layer.astype(np.intp), cells


def make_plan(
    layers, depth_bins: int | None = None, key: str = "filters", width: int | None = None
) -> tuple[Plan, object]:
    """The arrays the passes need (:class:`filterdb.results.Plan`) and the cell table.

    ``depth_bins`` None: the schema's default of an axis's ``bins``; ``key``: the DB's filter dataset;
    ``width``: values per filter, the DB's ``FilterDB.width`` (None: 3x3 filters)."""
    if depth_bins is None:
        depth_bins = int(schema_default("axes.*.bins"))
    if width is None:
        width = STUDY.size
    cell_of_layer, cells = cell_table(layers, depth_bins)
    out = (
        layers["out_channels"].to_numpy(np.float64)
        if "out_channels" in layers.columns
        else np.full(len(layers), np.nan)
    )
    plan = Plan(
        row_start=layers["row_start"].to_numpy(np.int64),
        row_end=layers["row_end"].to_numpy(np.int64),
        cell=cell_of_layer.astype(np.int64),
        out_channels=np.asarray(out, np.float64),
        n_cells=len(cells),
        key=key,
        width=int(width),
    )
    return plan, cells


def layer_namer(layers):
    """``f(layer) -> "model X, conv layer k at conv_depth d"`` for error messages."""
    from .results import describe_layer

    return lambda g: describe_layer(layers, g)


def axis_result(
    layers,
    counts: np.ndarray,
    evr: np.ndarray,
    axis: Axis,
    eps: float | None = None,
    floor: str | None = None,
    edges: np.ndarray | None = None,
) -> tuple[object, object]:
    """(groups table, drift table) of one axis from the per-layer histograms.

    ``eps`` and ``floor`` (``histogram.eps``, ``histogram.floor``: ``density``, the study, or
    ``probability``; None: the schema's defaults) and ``edges`` (the histogram bin edges, needed by
    ``density``) as :func:`filterdb.divergence.probabilities`."""
    from . import divergence
    from .axes import group_table, layer_labels

    eps = float(schema_default("histogram.eps")) if eps is None else eps
    floor = schema_default("histogram.floor") if floor is None else floor
    labels = layer_labels(layers, axis)
    groups = group_table(layers, labels, axis)
    names = list(groups["group"])
    gc = divergence.group_counts(counts, labels, names)
    d = divergence.drift_matrix(gc, evr, eps, floor, edges)
    if axis.order == "mean_drift":
        perm = divergence.order_by_mean_drift(d, names)
        d = d[np.ix_(perm, perm)]
        names = [names[k] for k in perm]
        groups = groups.set_index("group").loc[names].reset_index()
    return groups, divergence.drift_table(d, names)


@dataclass
class Analysis:
    """Everything the in-process driver computes (the workflow writes the same to files)."""

    db: object
    sums: dict
    pca: PCA
    range: tuple[float, float]
    hist: dict
    groups: dict = field(default_factory=dict)
    drift: dict = field(default_factory=dict)
    quality: dict | None = None
    cells: object = None


def _say(*args) -> None:
    """A line for a job's log (stderr) and the terminal (workflow scripts send stderr to the log)."""
    for stream in {sys.stderr, sys.__stderr__}:
        print(*args, file=stream)


class Chain:
    """The analysis chain on one DB with one set of settings: every step the workflow runs.

    Parameters
    ----------
    db_path : str or None
        The filter DB (None for the steps that read only results: :meth:`drift`).
    settings : Settings
        The chain's settings (the whole filled config, or a step's slice of it).
    threads : int
        Compute threads of each pass.
    progress : bool
        tqdm progress of the passes on stderr.
    axes : list of Axis, optional
        The axes (default: those of ``settings``).
    """

    def __init__(self, db_path, settings: Settings, threads: int = 1, progress: bool = False, axes=None):
        self.db_path = None if db_path is None else str(db_path)
        self.settings = settings
        self.threads = int(threads)
        self.progress = progress
        self._axes = axes

    @property
    def axes(self) -> list[Axis]:
        """The axes of the chain (:func:`filterdb.axes.axes_from_config` of the settings)."""
        if self._axes is None:
            from .axes import axes_from_config

            self._axes = axes_from_config(self.settings.axes)
        return self._axes

    def pass_settings(self) -> PassSettings:
        """The passes' settings (:meth:`filterdb.accumulate.PassSettings.from_settings`)."""
        return PassSettings.from_settings(self.settings, self.threads, self.db_path, self.progress)

    # --- layer table ---

    def layer_table(self, out: Mapping | None = None):
        """Open and check the DB, make its layer plan and fine-histogram cells.

        Parameters
        ----------
        out : mapping, optional
            Files to write (rule ``layer_table``): ``layers``, ``plan``, ``cells``, ``coverage``;
            then the coverage findings and the DB's summary are printed (the job's log).

        Returns
        -------
        (FilterDB, Plan, DataFrame)
            The DB, its plan, the cell table.
        """
        s = self.settings
        columns = [a.column for a in self._axes] if self._axes is not None else s.columns
        db = open_db(self.db_path, columns, checks=s.checks or None)
        plan, cells = make_plan(db.layers, s.depth_bins, db.key, db.width)
        if out is None:
            return db, plan, cells
        for line in db.coverage.messages(db.path):
            _say(f"warning: {line}")
        if db.dtype != "float32":
            size = filter_bytes(db.path, db.key)
            print(
                f"note: {db.path}: dataset '{db.key}' is {db.dtype} ({size} B per filter): the passes read it as "
                f"stored and their kernels round each value as stream.precision says",
                file=sys.stderr,
            )
        results.write_layers(db.layers, out["layers"])
        results.save_npz(out["plan"], plan.arrays())
        results.write_tsv(cells, out["cells"], floats=False)
        results.write_tsv(db.coverage.table(), out["coverage"], floats=False)
        print(
            f"{db.path}: dataset '{db.key}', {db.n_rows} rows, {len(db.layers)} layers, "
            f"{db.layers['model_id'].nunique()} models, {len(cells)} fine-histogram cells"
        )
        return db, plan, cells

    # --- passes ---

    def shard(self, kind: str, plan: Plan, shard: int = 0, shards: int = 1, settings=None, **kw) -> dict:
        """One pass (``sums``, ``range``, ``hist``) over one shard: its part's arrays
        (:func:`filterdb.accumulate.run_shard`; ``kw``: ``basis``, ``edges``, ``layer_names``,
        ``cell_sink``)."""
        s = settings or self.pass_settings()
        return run_shard(self.db_path, plan.key, plan, kind, shard=shard, shards=shards, settings=s, **kw)

    @staticmethod
    def write_gathered(gathered: dict, stats_out, basis_out=None, mean_out=None, range_out=None):
        """Write a gathered pass (rules ``gather_{sums,range,hist}``): its arrays, and the global
        PCA (sums) or the shared coefficient range (range). Returns the PCA, the range or None."""
        results.save_npz(stats_out, gathered)
        if range_out is not None:
            lo, hi = coefficient_range(gathered["cmin"], gathered["cmax"])
            results.write_range(range_out, lo, hi)
            return lo, hi
        if basis_out is not None:
            p = global_pca(gathered)
            results.write_basis(p, basis_out, mean_out)
            print(
                f"PCA over {p.n} filters; cumulative explained variance {p.explained_variance_ratio.cumsum().round(3)}"
            )
            return p
        return None

    def passes(self, db, plan: Plan, shards: int = 1, out: Mapping | None = None) -> Analysis:
        """The three passes over ``shards`` shards (one after the other) and their gathers.

        Parameters
        ----------
        db : FilterDB
        plan : Plan
        shards : int
            Shards (results do not depend on it).
        out : mapping, optional
            Files to write (rule ``analyse``): ``sums``, ``basis``, ``mean``, ``range_stats``,
            ``range``, ``hist`` and, when present, ``cell_hist`` (each closed cell written
            straight into its place, no records, no gather); then only one pass's arrays are
            held at a time, the returned ``sums`` is empty and ``hist`` holds no fine cell
            histograms.

        Returns
        -------
        Analysis
            Without groups and drift tables (:meth:`drift`).
        """
        s = self.pass_settings()
        names = layer_namer(db.layers)
        cells_in_memory = out is None or not out.get("cell_hist")

        def run(kind, cells=True, **kw):
            parts = [self.shard(kind, plan, k, shards, s, layer_names=names, **kw) for k in range(shards)]
            return gather_parts(parts, plan.n_layers, plan.n_cells if cells else 0, cells=cells)

        sums = run("sums")
        if out is not None:
            p = self.write_gathered(sums, out["sums"], out["basis"], out["mean"])
            sums = {}
        else:
            p = global_pca(sums)
        basis = (p.mean, p.components)
        rng = run("range", basis=basis)
        if out is not None:
            lo, hi = self.write_gathered(rng, out["range_stats"], range_out=out["range"])
        else:
            lo, hi = coefficient_range(rng["cmin"], rng["cmax"])
        del rng
        edges = uniform_edges(lo, hi, self.settings.bins)
        if cells_in_memory:
            hist = run("hist", cells=out is None, basis=basis, edges=edges)
        else:
            done = {}

            def write(tmp):
                sink = CellHistFile(tmp, plan.n_cells, s.fine_bins, plan.width)
                try:
                    done["parts"] = [
                        self.shard(
                            "hist", plan, k, shards, s, layer_names=names, basis=basis, edges=edges, cell_sink=sink
                        )
                        for k in range(shards)
                    ]
                finally:
                    sink.close()

            results.atomic_write(out["cell_hist"], write)
            hist = gather_parts(done.pop("parts"), plan.n_layers, cells=False)
        if out is not None:
            self.write_gathered(hist, out["hist"])
        return Analysis(db=db, sums=sums, pca=p, range=(lo, hi), hist=hist)

    # --- tables ---

    def drift(self, layers, hist: Mapping, evr, axis: Axis, out: Mapping | None = None):
        """One axis's group table and drift matrix (rule ``drift``, one job per axis).

        Parameters
        ----------
        layers : DataFrame
        hist : mapping
            The gathered hist pass (``counts``, ``edges``).
        evr : (9,) explained variance ratios of the global PCA.
        axis : Axis
        out : mapping, optional
            Files to write: ``groups``, ``drift``; then the group count is printed, and an empty
            axis says why on stderr.

        Returns
        -------
        (DataFrame, DataFrame)
            The group table and the drift table.
        """
        s = self.settings
        groups, drift = axis_result(layers, hist["counts"], evr, axis, s.eps, s.floor, hist["edges"])
        if out is not None:
            results.write_tsv(groups, out["groups"], floats=False)
            results.write_tsv(drift, out["drift"])
            print(f"axis {axis.name}: {len(groups)} groups")
            if groups.empty:
                from .axes import layer_labels

                why = (
                    f"no layer has a value in column {axis.column!r}"
                    if layer_labels(layers, axis).isna().all()
                    else "every group is below min_models / min_filters"
                )
                print(f"axis {axis.name}: {why}: no groups, empty drift table", file=sys.stderr)
        return groups, drift

    def run(self, shards: int = 1) -> Analysis:
        """The whole chain in this process, nothing written: layer table, passes, gathers, and the
        group and drift tables of every axis."""
        db, plan, cells = self.layer_table()
        a = self.passes(db, plan, shards)
        a.cells = cells
        for axis in self.axes:
            a.groups[axis.name], a.drift[axis.name] = self.drift(
                db.layers, a.hist, a.pca.explained_variance_ratio, axis
            )
        return a


#: The keyword arguments :func:`analyse` still takes, and the config key each one sets.
_KEYWORDS = {
    "bins": "histogram.bins",
    "eps": "histogram.eps",
    "block_rows": "stream.block_rows",
    "fine_bins": "histogram.fine_bins",
    "density": "density",
    "precision": "stream.precision",
    "nonfinite": "stream.nonfinite",
    "fixed_range": "models.range",
}


def _config_of(config: Mapping | None, axes, keywords: dict) -> dict:
    """The config of :func:`analyse`: ``config`` with the keyword arguments set on their keys."""
    import copy

    cfg = copy.deepcopy(dict(config or {}))

    def put(key, value):
        *path, last = key.split(".")
        node = cfg
        for k in path:
            node = node.setdefault(k, {})
        node[last] = value

    def plain(v):  # tuples as lists, as a config file holds them (the schema's arrays)
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v

    for name, value in keywords.items():
        value = plain(value)
        if name == "quality":  # {"eps": e, "eps_grid": [...]} or None (off)
            put("quality.enabled", value is not None)
            if value is not None:
                if "eps" in value:
                    put("quality.eps", value["eps"])
                eps = value.get("eps", cfg["quality"].get("eps"))
                grid = value.get("eps_grid") or ([eps] if eps is not None else None)
                if grid is not None:
                    put("quality.sensitivity.eps", [float(v) for v in grid])
        elif name == "depth_bins":
            pass  # derived from the axes (the first binned conv_depth_norm axis)
        elif name in _KEYWORDS:
            if name == "fixed_range" and value is None:
                value = "auto"
            put(_KEYWORDS[name], list(value) if name == "fixed_range" and not isinstance(value, str) else value)
        else:
            raise TypeError(f"analyse() got an unexpected keyword argument {name!r}")
    if axes is not None and "axes" not in cfg:  # the axes' columns and bins (the drift uses the Axis objects)
        cfg["axes"] = {a.name: {"column": a.column, "kind": a.kind, "bins": a.bins} for a in axes}
    return cfg


def analyse(
    path: str,
    axes: list[Axis] | None = None,
    config: Mapping | None = None,
    *,
    shards: int = 1,
    threads: int | None = None,
    progress: bool = False,
    **keywords,
) -> Analysis:
    """Run the whole analysis in this process (the library entry point of the chain).

    Parameters
    ----------
    path : str
        The filter DB.
    axes : list of Axis, optional
        The axes (default: those of ``config``).
    config : mapping, optional
        A workflow config, partial or whole: missing keys are filled from the schema
        (:meth:`filterdb.settings.Settings.from_config`), so every setting the workflow has is
        here too (``histogram.floor``, ``quality.orthogonality``, ``stream.bypass_page_cache``, ...).
    shards : int
        Shards, run one after the other (results do not depend on it).
    threads : int, optional
        Compute threads per pass; default ``stream.threads`` (``auto``: this machine's cores
        divided by the shards, at most one per ``stream.block_rows`` filters of a shard:
        :func:`filterdb.settings.auto_threads`).
    progress : bool
        tqdm progress on stderr.
    **keywords
        For older callers, set on their config keys: ``bins``, ``eps``, ``fine_bins``
        (``histogram``), ``block_rows``, ``precision``, ``nonfinite`` (``stream``), ``density``,
        ``fixed_range`` (``models.range``), ``quality`` (``{"eps": e, "eps_grid": [...]}`` sets
        ``quality.eps`` and ``quality.sensitivity.eps`` (default: ``eps`` alone), ``None`` turns
        quality off), ``depth_bins`` (ignored: the axes define it).

    Returns
    -------
    Analysis
    """
    import os

    settings = Settings.from_config(_config_of(config, axes, keywords))
    if threads is None:
        t = settings.stream["threads"]
        if t == "auto":
            from .db import filter_layout

            filters = filter_layout(path)[1]
            threads = auto_threads(filters, os.cpu_count() or 1, shards, settings.stream["block_rows"])
        else:
            threads = int(t)
    return Chain(path, settings, threads, progress, axes).run(shards)
