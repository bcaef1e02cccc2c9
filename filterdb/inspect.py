"""``filterdb inspect``: one model against an analysed DB.

For a model file (any format ``filterdb.ingest`` reads, or a filter DB in the published layout
holding the model), without re-reading the DB's filters:

1. filter quality of each of its k x k conv layers and the model's degeneration flags
   (:mod:`filterdb.quality`, thresholds as configured); k is the reference's kernel size
   (:attr:`Reference.shape`, from the width d = k² of its ``pca/mean.tsv``): a model file is read
   for its convs of that size only (3x3 against the study's DB, 5x5 against a DB built with
   ``filterdb build --kernel 5x5``);
2. its coefficient histograms under the DB's global PCA basis and shared range
   (``{results}/pca/basis.tsv``, ``mean.tsv``, ``range.tsv``; bins = the edges of
   ``{results}/stats/hist.npz``); coefficients outside the DB's range are counted and reported
   (numpy's histogram leaves them out);
3. the drift D (evr-weighted symmetric KL, :func:`filterdb.divergence.drift`, docs/method.md §4) to every
   group of every axis (group histograms = sums of the DB's per-layer histograms ``counts`` (L, d, bins)) and to every
   DB model, giving the nearest models;
4. a verdict: degeneration flags, and whether the model's distance to its nearest DB model is
   typical, compared with the DB models' own nearest-neighbour drifts (percentile).

Outputs (``--out DIR``): ``layers.tsv`` (layer quality), ``groups.tsv`` (axis, group, drift),
``models.tsv`` (DB models by ascending drift), ``summary.json``.

The command line (parser, settings, printing) is in :mod:`filterdb.cli`; this module computes.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import divergence, quality, quality_tables, results
from .accumulate import QUALITY_FIELDS, PassSettings, make_pass, run_rows
from .axes import Axis, group_table, layer_labels
from .db import find_column, is_filter_db
from .results import Plan
from .scaling import PRECISIONS, filter_rows
from .shape import STUDY, FilterShape

ATYPICAL_PERCENTILE = 95.0


# ---------------------------------------------------------------------------------------------
# Reading the model


@dataclass
class ModelLayers:
    """The k x k conv layers of one model: weights ``(n, d)`` per layer and a meta table (one row per
    layer; ``conv_depth``, ``conv_depth_norm``, ``out_channels`` when known, other meta columns)."""

    name: str
    weights: list
    meta: pd.DataFrame


def read_model(path: str | os.PathLike, model: str | None = None, kernel: FilterShape | None = None) -> ModelLayers:
    """The layers of the model in ``path``.

    A filter DB in the published layout (HDF5 with ``filters``/``filter`` and ``meta``,
    :func:`filterdb.db.is_filter_db`) is read directly; ``model`` selects one model (``model``
    column or ``model_id``) when it holds several. Any other file goes to ``filterdb.ingest``,
    which keeps its convs of the ``kernel`` size.

    Parameters
    ----------
    path : str or Path
    model : str, optional
    kernel : FilterShape, optional
        The kernel size of the reference the model is compared with (:attr:`Reference.shape`).
        A model file gives its convs of this size (default: 3x3); a filter DB must hold filters of
        this size (None: any).

    Returns
    -------
    ModelLayers
        ``weights``: one (n_filters, d) float32 array per conv layer; ``meta``: one row per layer.

    Raises
    ------
    ValueError
        One line naming the file: a model file without a conv of the kernel size, a DB of filters of
        another size, or what the readers refuse.
    """
    path = str(path)
    if is_filter_db(path):
        return _read_db_model(path, model, kernel)
    return _ingest(path, STUDY if kernel is None else kernel)


def _read_db_model(path: str, model: str | None, kernel: FilterShape | None = None) -> ModelLayers:
    import h5py

    from .db import open_db, read_rows

    db = open_db(path)
    if kernel is not None and db.shape != kernel:
        raise ValueError(
            f"{path}: a DB of {db.shape.label} filters ({db.width} values per filter), the reference holds "
            f"{kernel.label} filters ({kernel.size} values); expected a reference run of the same kernel size"
        )
    layers = db.layers
    names = layers["model"].astype(str) if "model" in layers else layers["model_id"].astype(str)
    ids = layers["model_id"].astype(str)
    if model is None:
        if names.nunique() != 1:
            raise ValueError(f"{path} holds {names.nunique()} models; choose one with --model (e.g. {names.iloc[0]!r})")
        sel = layers
    else:
        mask = (names == str(model)) | (ids == str(model))
        if not mask.any():
            raise ValueError(f"{path}: no model {model!r} (column 'model' or 'model_id')")
        sel = layers[mask.to_numpy()]
    with h5py.File(path, "r") as f:
        ds = f[db.key]
        weights = [read_rows(ds, int(a), int(b)) for a, b in zip(sel["row_start"], sel["row_end"])]
    name = str(sel["model"].iloc[0]) if "model" in sel else str(sel["model_id"].iloc[0])
    return ModelLayers(name=name, weights=weights, meta=sel.reset_index(drop=True))


def _kernel_sizes(meta: pd.DataFrame) -> list[str]:
    """The kernel sizes a model file holds, from its ``(kh, kw) filters`` count columns: ``["3x3", ...]``."""
    found = [re.fullmatch(r"\((\d+), (\d+)\) filters", str(c)) for c in meta.columns]
    return [f"{a}x{b}" for a, b in sorted((int(m[1]), int(m[2])) for m in found if m)]


def _ingest(path: str, kernel: FilterShape = STUDY) -> ModelLayers:
    """Model formats other than a filter DB, through ``filterdb.ingest`` (ONNX, safetensors, ...).

    Expects ``filterdb.ingest.read_model_layers(path, kernel) -> (weights, meta)``: per-layer
    ``(n, d)`` arrays of the ``kernel`` convs and a table with ``conv_depth``, ``conv_depth_norm``
    and ``out_channels``; a model without such a conv is refused in one line naming the file and the
    size (and the sizes it holds)."""
    try:
        from . import ingest
    except ImportError:
        raise ValueError(
            f"{path}: not a filter DB, and model-file reading (filterdb.ingest) is not installed in this version"
        ) from None
    reader = getattr(ingest, "read_model_layers", None)
    if reader is None:
        raise ValueError(f"{path}: filterdb.ingest has no read_model_layers(path)")
    weights, meta = reader(path, kernel=kernel.label)
    meta = pd.DataFrame(meta).reset_index(drop=True)
    if not weights:
        held = _kernel_sizes(meta)
        raise ValueError(
            f"{path}: no {kernel.label} conv layer, expected at least one to compare with the reference's "
            f"{kernel.label} filters" + (f" (conv kernels: {', '.join(held)})" if held else " (no 4-D conv found)")
        )
    rows = [filter_rows(np.asarray(w, np.float32), kernel.size) for w in weights]
    return ModelLayers(name=Path(path).stem, weights=rows, meta=meta)


# ---------------------------------------------------------------------------------------------
# The DB side (analysed results only)


@dataclass
class Reference:
    """What ``inspect`` needs of an analysed DB."""

    layers: pd.DataFrame
    counts: np.ndarray  # (L, d, bins)
    edges: np.ndarray
    mean: np.ndarray
    components: np.ndarray
    evr: np.ndarray
    range: tuple[float, float]
    precision: str | None = None  # stream.precision of the run (provenance.json), None: unknown

    @property
    def shape(self) -> FilterShape:
        """The reference's k x k filter shape, from the width d = k² of its PCA mean."""
        return FilterShape.of_width(self.mean.size)


def load_reference(
    results_dir: str | os.PathLike, stats_dir: str | os.PathLike | None = None, db: str | None = None
) -> Reference:
    """What ``inspect`` needs of an analysed DB, read through :mod:`filterdb.results`.

    Parameters
    ----------
    results_dir : str or Path
        The results folder: ``pca/{basis,mean,range}.tsv`` are read from it.
    stats_dir : str or Path, optional
        Folder of ``layers.tsv`` and ``hist.npz`` (default ``{results_dir}/stats``).
    db : str, optional
        The analysed DB, checked against the layer table (its filters are not read).

    Returns
    -------
    Reference
        ``counts`` (L, d, bins), ``edges`` (bins + 1,), ``mean`` (d,), ``components`` (d, d),
        ``evr`` (d,), ``range`` (min, max), ``layers`` (L rows).
    """
    paths = results.Paths(results_dir)
    sdir = Path(stats_dir) if stats_dir else paths.stats
    layers_path, hist_path = sdir / paths.layers.name, sdir / paths.hist.name
    need = [paths.basis, paths.mean, paths.range, layers_path, hist_path]
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        raise ValueError(f"analysed results missing: {', '.join(missing)} (run the workflow on the DB first)")
    mean, comps, evr = results.read_basis(paths.basis, paths.mean)
    shape = FilterShape.of_width(mean.size)  # read_basis checked the pixel columns w0..w{d-1}, d = k²
    layers = results.read_layers(layers_path)
    hist = results.load_npz(hist_path)
    counts, edges = hist["counts"], hist["edges"]
    if counts.shape[0] != len(layers):
        raise ValueError(f"{sdir}: hist.npz has {counts.shape[0]} layers, layers.tsv {len(layers)}")
    if db is not None:
        from .db import open_db

        opened = open_db(db)  # the one reader: checks the whole DB, runs nothing from it
        n = opened.n_rows
        if opened.shape != shape:
            raise ValueError(
                f"{db}: {opened.shape.label} filters ({opened.width} values per filter), but {paths.mean} has "
                f"{shape.size} values ({shape.label}); the results belong to another DB"
            )
        if int(layers["row_end"].max()) > n:
            raise ValueError(
                f"{db}: {n} filter rows, but {layers_path} reaches row {int(layers['row_end'].max())}; "
                "the results belong to another DB"
            )
    return Reference(
        layers=layers,
        counts=counts,
        edges=edges,
        mean=mean,
        components=comps,
        evr=evr,
        range=results.read_range(paths.range),
        precision=_run_precision(Path(results_dir) / "provenance.json"),
    )


def _run_precision(path: Path) -> str | None:
    """``stream.precision`` recorded in a run's ``provenance.json``; None without one."""
    if not path.exists():
        return None
    try:
        prec = json.loads(path.read_text())["config"]["stream"]["precision"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: no config/stream/precision ({e}); expected the run's provenance") from None
    if prec not in PRECISIONS:
        raise ValueError(f"{path}: stream precision {prec!r} is not one of {', '.join(PRECISIONS)}")
    return prec


# ---------------------------------------------------------------------------------------------
# Computations


def drift_row(
    counts: np.ndarray,
    others: np.ndarray,
    evr: np.ndarray,
    eps: float | None = None,
    floor: str | None = None,
    edges: np.ndarray | None = None,
) -> np.ndarray:
    """``D(model, g)`` for every ``g`` of ``others``: the first row of
    :func:`filterdb.divergence.drift_matrix` of ``[counts] + others``, without the G x G matrix.

    Parameters
    ----------
    counts : (d, bins) array_like
        The model's histograms.
    others : (G, d, bins) array_like
        Group (or model) histograms.
    evr : (d,) array_like
    eps, floor, edges
        As :func:`filterdb.divergence.probabilities`.

    Returns
    -------
    (G,) float64 ndarray
    """
    p = divergence.probabilities(counts, eps, floor, edges)
    q = divergence.probabilities(others, eps, floor, edges)
    return divergence.drift_to(p, q, evr)


def model_histograms(layers: pd.DataFrame, counts: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Per DB model (``model_id`` order) the sum of its layers' histograms.

    Parameters
    ----------
    layers : pandas.DataFrame of L rows (``model_id``, ``n_filters``, optionally ``model``)
    counts : (L, d, bins) array_like

    Returns
    -------
    table : pandas.DataFrame of M rows: ``model_id``, ``model``, ``n_layers``, ``n_filters``
    model_counts : (M, d, bins) int64 ndarray
    """
    mid = layers["model_id"].to_numpy()
    uniq, inv = np.unique(mid, return_inverse=True)
    out = np.zeros((uniq.size,) + counts.shape[1:], np.int64)
    np.add.at(out, inv, counts)
    name = (
        layers.groupby("model_id", sort=True)["model"].first()
        if "model" in layers
        else pd.Series(uniq.astype(str), index=uniq)
    )
    tab = pd.DataFrame(
        {
            "model_id": uniq,
            "model": name.loc[uniq].astype(str).to_numpy(),
            "n_layers": np.bincount(inv),
            "n_filters": np.bincount(inv, layers["n_filters"].to_numpy()).astype(np.int64),
        }
    )
    return tab, out


def nearest_neighbour_drifts(
    model_counts: np.ndarray,
    evr: np.ndarray,
    eps: float | None = None,
    floor: str | None = None,
    edges: np.ndarray | None = None,
) -> np.ndarray:
    """For each DB model the drift to its nearest other model.

    Parameters
    ----------
    model_counts : (M, d, bins) array_like
    evr : (d,) array_like
    eps, floor, edges
        As :func:`filterdb.divergence.probabilities`.

    Returns
    -------
    (M,) float64 ndarray (all NaN with fewer than 2 models).
    """
    m = model_counts.shape[0]
    out = np.full(m, np.nan)
    if m < 2:
        return out
    p = divergence.probabilities(model_counts, eps, floor, edges)
    for k in range(m):
        d = divergence.drift_to(p[k], p, evr)
        d[k] = np.inf
        out[k] = d.min()
    return out


@dataclass
class Projection:
    """One model's k x k conv layers on a reference's basis and range (:func:`project_model`): what
    ``inspect`` and ``compare`` keep of a model once its weights are dropped."""

    name: str
    meta: pd.DataFrame  # one row per layer: the model's meta, model_id/model/conv_depth/conv_depth_norm filled, layer
    counts: np.ndarray  # (L, d, bins) int64: per layer the d coefficient histograms over the reference's edges
    outside: np.ndarray  # (L,) int64: coefficient values outside the reference's range (not in the histograms)
    quality: dict  # QUALITY_FIELDS -> (L,) arrays (filterdb.quality.layer_quality_fast)


def resolve_settings(
    ref: Reference,
    eps: float | None = None,
    hist_eps: float | None = None,
    floor: str | None = None,
    precision: str | None = None,
) -> tuple[float, float, str, str]:
    """The settings of a model's projection and drifts: each given value, else (precision) the
    reference run's, else the configuration default (:func:`filterdb.settings.schema_defaults`).

    Parameters
    ----------
    ref : Reference
    eps, hist_eps, floor, precision : optional
        ``quality.eps``, ``histogram.eps``, ``histogram.floor``, ``stream.precision``.

    Returns
    -------
    (eps, hist_eps, floor, precision)
    """
    precision = precision or ref.precision
    if eps is None or hist_eps is None or floor is None or precision is None:
        from .settings import schema_defaults

        d = schema_defaults()
        eps = d["quality"]["eps"] if eps is None else eps
        hist_eps = d["histogram"]["eps"] if hist_eps is None else hist_eps
        floor = d["histogram"]["floor"] if floor is None else floor
        precision = d["stream"]["precision"] if precision is None else precision
    return eps, hist_eps, floor, precision


def project_model(m: ModelLayers, ref: Reference, eps: float, precision: str) -> Projection:
    """Per layer: the quality metrics and the d coefficient histograms on the reference's basis and
    edges (coefficients outside the reference's range are counted in ``outside`` and left out of
    the histograms, as :func:`numpy.histogram` leaves them out), computed by the DB's own sums and
    hist passes over the model's rows in memory (:func:`filterdb.accumulate.run_rows`): the same
    numbers as an analysis of a DB holding the model.

    Parameters
    ----------
    m : ModelLayers
    ref : Reference
    eps : float
        Quality sparsity eps.
    precision : {"float16", "float32", "float64"}
        How the weights enter the arithmetic (docs/method.md §1), as in the passes (quality on the
        weights loaded so, coefficients of the peak-scaled filters).

    Returns
    -------
    Projection
    """
    n = np.array([np.asarray(w).size for w in m.weights], np.int64)
    shapes = {np.asarray(w).shape[-1] for w in m.weights if np.asarray(w).ndim == 2}
    width = shapes.pop() if len(shapes) == 1 else ref.mean.size
    if width != ref.mean.size:
        raise ValueError(
            f"model {m.name}: {width} values per filter, the reference holds {ref.mean.size} (another kernel size)"
        )
    n //= width
    ends = np.cumsum(n)
    rows = (
        np.concatenate([np.asarray(w).reshape(-1, width) for w in m.weights])
        if m.weights
        else np.zeros((0, width), np.float32)
    )
    out_ch = (
        pd.to_numeric(m.meta["out_channels"], errors="coerce").to_numpy(np.float64)[: len(n)]
        if "out_channels" in m.meta.columns
        else np.full(len(n), np.nan)
    )
    if out_ch.size < n.size:
        out_ch = np.concatenate([out_ch, np.full(n.size - out_ch.size, np.nan)])
    plan = Plan(ends - n, ends, np.full(n.size, -1, np.int64), out_ch, 0, "", width)
    # the passes of a DB run over the model's rows in memory: the same kernels, so the same numbers
    settings = PassSettings(
        block_rows=max(1, int(ends[-1])) if n.size else 1,
        threads=1,
        precision=precision,
        nonfinite="error",
        quality_eps=float(eps),
        quality_eps_grid=(),
        orthogonality=True,
        fine_bins=0,
        density_pairs=[],
        density_bins=1,
        density_extent=(0.0, 1.0),
        fixed_range=None,
        progress=False,
        bypass_cache=False,
    )
    try:
        label = FilterShape.of_width(width).label
    except ValueError:
        label = f"{width}-value"
    names = lambda g: f"model {m.name}, {label} conv layer {g}"  # noqa: E731
    sums = run_rows(rows, make_pass("sums", plan, 0, n.size, settings), names)
    basis = (ref.mean, ref.components)
    hist = run_rows(rows, make_pass("hist", plan, 0, n.size, settings, basis=basis, edges=ref.edges), names)
    counts = np.asarray(hist["counts"], np.int64)
    # every coefficient inside the reference's range is counted once: the rest fell outside it
    outside = n * ref.components.shape[0] - counts.sum(axis=(1, 2))
    arrays = {f: np.asarray(sums[f"quality_{f}"]) for f in QUALITY_FIELDS}
    meta = m.meta.copy()
    for col, default in (("model_id", m.name), ("model", m.name), ("conv_depth", np.nan), ("conv_depth_norm", np.nan)):
        if col not in meta:
            meta[col] = default
    meta["layer"] = np.arange(len(meta))
    return Projection(name=m.name, meta=meta, counts=counts, outside=outside, quality=arrays)


@dataclass
class ReferenceGroups:
    """The groups of one reference axis: ``table`` (:func:`filterdb.axes.group_table`) and their
    histograms ``counts`` (G, d, bins), sums of the reference's per-layer histograms."""

    axis: Axis
    table: pd.DataFrame
    counts: np.ndarray


def reference_groups(ref: Reference, axes: Sequence[Axis]) -> list[ReferenceGroups]:
    """The groups of every axis the reference's layer table has a column for, with their histograms
    (formed once; :func:`group_drift_table` takes them for each model).

    Parameters
    ----------
    ref : Reference
    axes : sequence of Axis

    Returns
    -------
    list of ReferenceGroups, in the order of ``axes`` (axes without their column left out)
    """
    out = []
    for axis in axes:
        if not _has_column(ref.layers, axis):
            continue
        labels = layer_labels(ref.layers, axis)
        gt = group_table(ref.layers, labels, axis)
        out.append(ReferenceGroups(axis, gt, divergence.group_counts(ref.counts, labels, list(gt["group"]))))
    return out


def group_drift_table(
    counts: np.ndarray,
    groups: Sequence[ReferenceGroups],
    ref: Reference,
    hist_eps: float,
    floor: str,
    layer_table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The drift of one histogram set to every group of every reference axis.

    Parameters
    ----------
    counts : (d, bins) array_like
        The model's histograms.
    groups : sequence of ReferenceGroups
        :func:`reference_groups`.
    ref : Reference
        Supplies ``evr`` and ``edges``.
    hist_eps, floor
        ``histogram.eps`` and ``histogram.floor``.
    layer_table : pandas.DataFrame, optional
        The model's layer quality table; ``member`` is True where one of its layers carries the
        group's label (its column named after the axis).

    Returns
    -------
    pandas.DataFrame
        ``axis``, ``group``, ``drift``, ``n_models``, ``n_filters``, ``member``, ``rank`` (within the
        axis, by drift), sorted by axis then ascending drift.
    """
    rows = []
    for rg in groups:
        axis, gt = rg.axis, rg.table
        names = list(gt["group"])
        d = drift_row(counts, rg.counts, ref.evr, hist_eps, floor, ref.edges) if names else np.zeros(0)
        lt = layer_table
        own = set(lt[axis.name].dropna().astype(str)) if lt is not None and axis.name in lt else set()
        for k, g in enumerate(names):
            rows.append(
                {
                    "axis": axis.name,
                    "group": g,
                    "drift": d[k],
                    "n_models": int(gt["n_models"].iloc[k]),
                    "n_filters": int(gt["n_filters"].iloc[k]),
                    "member": str(g) in own,
                }
            )
    out = pd.DataFrame(rows, columns=["axis", "group", "drift", "n_models", "n_filters", "member"])
    if len(out):
        out["rank"] = out.groupby("axis")["drift"].rank(method="first").astype(int)
        out = out.sort_values(["axis", "drift"], kind="stable").reset_index(drop=True)
    return out


@dataclass
class Inspection:
    name: str
    layers: pd.DataFrame  # layer quality
    model: pd.Series  # model quality row
    counts: np.ndarray  # (d, bins)
    outside: int  # coefficient values outside the DB's range
    groups: pd.DataFrame  # axis, group, drift, n_models, n_filters, member
    models: pd.DataFrame  # DB models by drift
    nn_percentile: float  # where the nearest-model drift lies among the DB's nn drifts
    verdict: list = field(default_factory=list)


def inspect_model(
    m: ModelLayers,
    ref: Reference,
    axes: Sequence[Axis],
    eps: float | None = None,
    thresholds: dict | None = None,
    hist_eps: float | None = None,
    floor: str | None = None,
    precision: str | None = None,
) -> Inspection:
    """Quality, histograms, drift to every axis group and every DB model, and a verdict.

    Parameters
    ----------
    m : ModelLayers
        The model: per layer weights (n, d).
    ref : Reference
        The analysed DB (:func:`load_reference`).
    axes : sequence of Axis
    eps : float, optional
        Quality sparsity eps (``quality.eps``).
    thresholds : dict, optional
        Degeneration thresholds (``quality.thresholds``).
    hist_eps, floor : optional
        ``histogram.eps`` and ``histogram.floor``.
    precision : {"float16", "float32", "float64"}, optional
        How the model's weights enter the arithmetic (``stream.precision``, docs/method.md §1);
        None: the reference run's (``ref.precision``, from its provenance), so that the model is
        scaled as the DB was.
        Every other ``None`` (and a reference without provenance) takes the configuration default
        (:mod:`filterdb.settings`).

    Returns
    -------
    Inspection
        ``counts`` (d, bins); ``groups`` one row per (axis, group); ``models`` one row per DB model.
    """
    eps, hist_eps, floor, precision = resolve_settings(ref, eps, hist_eps, floor, precision)
    proj = project_model(m, ref, eps, precision)
    counts = proj.counts.sum(axis=0)
    outside = int(proj.outside.sum())
    own_axes = [a for a in axes if _has_column(proj.meta, a)]
    lt = quality_tables.layer_quality_table(proj.meta, proj.quality, own_axes, thresholds)
    mq = quality_tables.model_quality_table(lt, thresholds).iloc[0]
    groups = group_drift_table(counts, reference_groups(ref, axes), ref, hist_eps, floor, lt)

    mtab, mcounts = model_histograms(ref.layers, ref.counts)
    mtab["drift"] = drift_row(counts, mcounts, ref.evr, hist_eps, floor, ref.edges)
    nn = nearest_neighbour_drifts(mcounts, ref.evr, hist_eps, floor, ref.edges)
    mtab["nearest_neighbour_drift"] = nn
    mtab = mtab.sort_values(["drift", "model"], kind="stable").reset_index(drop=True)
    best = float(mtab["drift"].iloc[0]) if len(mtab) else math.nan
    ok = nn[~np.isnan(nn)]
    pct = float(100.0 * np.mean(ok < best)) if ok.size else math.nan

    out = Inspection(
        name=m.name, layers=lt, model=mq, counts=counts, outside=outside, groups=groups, models=mtab, nn_percentile=pct
    )
    out.verdict = _verdict(out)
    return out


def _has_column(layers: pd.DataFrame, axis: Axis) -> bool:
    return find_column(layers.columns, axis.column) is not None


def _verdict(r: Inspection) -> list[str]:
    lines = []
    flags = [f for f in quality.FLAGS if bool(r.model[f])]
    n_deg = int(r.layers["degenerated"].sum())
    if bool(r.model["degenerated"]):  # project rule: any flag; cvpr_reanalysis: its own (§9)
        lines.append(
            f"DEGENERATED: {', '.join(f.replace('_', ' ') for f in flags) or 'degenerated layers'} "
            f"({n_deg} of {len(r.layers)} layers degenerated)"
        )
    else:
        lines.append(f"filters look healthy ({n_deg} of {len(r.layers)} layers degenerated)")
    lines.append(
        f"mean sparsity {r.model['sparsity']:.3f}, normalised variance entropy "
        f"{r.model['variance_entropy_norm']:.3f} (healthy ~0.9, random >= 1), orthogonality "
        f"{r.model['orthogonality']:.3f}"
    )
    if r.outside:
        lines.append(f"{r.outside} coefficient values lie outside the DB's range and are not in the histograms")
    if len(r.models):
        top = r.models.iloc[0]
        typical = (
            "typical" if not math.isnan(r.nn_percentile) and r.nn_percentile <= ATYPICAL_PERCENTILE else "ATYPICAL"
        )
        lines.append(
            f"nearest DB model: {top['model']} (D = {top['drift']:.4g}); {typical}: "
            f"{r.nn_percentile:.0f}% of DB models are nearer to their own nearest neighbour"
        )
    for axis, g in r.groups.groupby("axis", sort=False):
        best = g.iloc[0]
        lines.append(f"{axis}: nearest group {best['group']!r} (D = {best['drift']:.4g})")
    return lines


def write_outputs(r: Inspection, out: str | os.PathLike) -> None:
    """Write ``layers.tsv``, ``groups.tsv``, ``models.tsv`` and ``summary.json`` to ``out``
    (created), atomically, through :mod:`filterdb.results`.

    Parameters
    ----------
    r : Inspection
    out : str or Path
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results.write_tsv(r.layers, out / "layers.tsv")
    results.write_tsv(r.groups, out / "groups.tsv")
    results.write_tsv(r.models, out / "models.tsv")

    def plain(v):
        if isinstance(v, (np.bool_, bool)):
            return bool(v)
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            return None if math.isnan(v) else float(v)
        return v

    summary = {
        "model": r.name,
        "quality": {k: plain(v) for k, v in r.model.items()},
        "coefficients_outside_range": r.outside,
        "nearest_models": [
            {"model": str(row.model), "drift": plain(row.drift)} for row in r.models.head(10).itertuples()
        ],
        "nearest_neighbour_percentile": plain(r.nn_percentile),
        "nearest_groups": {
            a: {"group": str(g.iloc[0]["group"]), "drift": plain(g.iloc[0]["drift"])}
            for a, g in r.groups.groupby("axis", sort=False)
        },
        "verdict": r.verdict,
    }
    text = json.dumps(summary, indent=2, sort_keys=False) + "\n"
    results.atomic_write(out / "summary.json", lambda tmp: Path(tmp).write_text(text))


def default_out_dir(results_dir: str | os.PathLike, name: str) -> Path:
    """The default output folder of ``filterdb inspect``.

    Parameters
    ----------
    results_dir : str or Path
    name : str
        Model name.

    Returns
    -------
    pathlib.Path
        ``{results_dir}/inspect/{name}``, the name with characters other than letters, digits and
        ``-_.`` replaced by ``_``.
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"
    return Path(results_dir) / "inspect" / safe
