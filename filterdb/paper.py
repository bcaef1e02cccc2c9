"""The numbers the CNN-Filter-DB studies publish, and the reproduction table (docs/method.md §10).

One job: put every published number a run can recompute beside this run's value, with its tolerance,
its source and a verdict (``within tolerance``, ``outside tolerance`` or ``not applicable``).

* **The values** live in the package, :data:`VALUES_FILE` (``filterdb/data/paper_values.tsv``): per
  row the quantity, the release it was published for (``v0.1``: NeurIPS-W 2021; ``v1.0``: CVPR 2022),
  the study's axis and groups, the value as printed, the tolerance and the source. Its header says
  where each value was read and why each tolerance; :func:`published_values` reads it.
* **The release** of a DB (:func:`db_facts`, :func:`detect_release`) comes from its ``meta`` layout
  (``filter_ids`` as ``"start:end"`` strings and a ``Visual Category`` column: v1.0; id lists and
  ``Datatype``: v0.1) and its counts (models = distinct ``model_id``, layers = meta rows, filters =
  rows of the filter array), read from the meta and the filter dataset's header only. v1.0 needs its
  layout and all three published counts; the v0.1 file's exact counts are not published, so v0.1 is
  recognised by its layout and its size (the workshop paper's "over half a billion filters from
  hundreds of trained CNNs": at least :data:`V01_SIZE`), and says so. Anything else is not a published
  release: every verdict is ``not applicable`` and every note says that the numbers are not the study's
  data. ``paper.release`` (config) forces a comparison; the table then says it was forced.
* **This run's values** come from the run's outputs only (:class:`RunOutputs`; no filter is read):
  ``pca/basis.tsv`` (explained variance ratios), ``pca/mean.tsv``, ``stats/sums.npz`` (the pixel
  covariance, :func:`filterdb.pca.global_pca` as the covariance figure forms it),
  ``pca/subsets/{axis}.tsv``, ``drift/{axis}.tsv``, ``groups/{axis}.tsv`` and
  ``dataset/summary.tsv``.
* **Axes** are matched to the study's by their definition, not their name (:func:`study_axes`):
  task = the column ``Task``, categorical, every ``*Segmentation*`` value folded into one group;
  visual category = ``Visual Category`` / ``Datatype``, categorical; depth = ``conv_depth_norm`` cut
  into 10 bins. Group labels are matched through the axis's own fold/relabel, the rename of v0.1
  ``formula`` to v1.0 ``fractals`` (:data:`LABEL_ALIASES`) and, on binned axes, the bin edges (the
  v0.1 figure's first depth bin ``(0.0, 0.1]`` is this project's ``[0.0, 0.1]``).
* **Settings** of the run that depart from the study's (:data:`STUDY_SETTINGS`: float16 arithmetic,
  70 bins, the density floor at float32 eps; an axis that drops groups; filters dropped for NaN/Inf;
  rows of no layer) are listed in the ``departures`` column of every row they affect.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from . import results
from .axes import Axis, layer_labels
from .pca import PIXELS, global_pca
from .shape import STUDY

#: The published values, shipped as package data.
VALUES_FILE = "data/paper_values.tsv"
#: Columns of ``paper/comparison.tsv``: the issue's ten, then ``departures`` and ``note``.
COLUMNS = [
    "quantity",
    "release",
    "axis",
    "group_a",
    "group_b",
    "paper",
    "this_run",
    "tol",
    "verdict",
    "source",
    "departures",
    "note",
]
RELEASES = ("v0.1", "v1.0")
RELEASE_NAMES = {"v0.1": "CNN-Filter-DB v0.1 (NeurIPS-W 2021)", "v1.0": "CNN-Filter-DB v1.0 (CVPR 2022)"}
WITHIN, OUTSIDE, NOT_APPLICABLE = "within tolerance", "outside tolerance", "not applicable"
#: The study's settings (docs/method.md §1, §4); a run that departs from one says so next to every row it affects.
STUDY_SETTINGS = {
    "stream.precision": "float16",
    "histogram.bins": 70,
    "histogram.floor": "density",
    "histogram.eps": float(np.finfo(np.float32).eps),
}
#: Group labels renamed between the releases (v0.1 ``formula`` is v1.0 ``fractals``), both ways.
LABEL_ALIASES = {"formula": "fractals", "fractals": "formula"}
#: The least size of a DB recognised as v0.1 by its layout: the workshop paper's "over half a billion
#: filters from hundreds of trained CNNs" (the exact counts of the v0.1 file are not published).
V01_SIZE = {"n_filters": 500_000_000, "n_models": 200}
#: What the published files store (the v1.0 file: docs/method.md appendix); a different dtype or shape
#: with the right layout and counts is a converted copy (``filterdb convert``), still the study's data.
PUBLISHED_STORAGE = {"v1.0": ("float64", "(N, 3, 3)")}

PCA_QUANTITIES = ("cum_evr_", "evr_", "pca_mean_", "pixel_cov_center")
DRIFT_QUANTITIES = ("upper_mean", "upper_median", "upper_max", "pair", "group_mean")
COUNT_QUANTITIES = ("n_models", "n_layers", "n_filters")
#: The study's axes, by definition (:func:`study_axes`).
STUDY_AXIS_DEFINITIONS = {
    "task": "the column Task, categorical, every value containing 'Segmentation' folded into one group",
    "visual_category": "the column Visual Category (v0.1: Datatype), categorical",
    "depth": "conv_depth_norm cut into 10 equal bins",
}


# ---------------------------------------------------------------------------------------------
# The published values


def published_values() -> pd.DataFrame:
    """The published values (:data:`VALUES_FILE`), every cell as text as printed there.

    Returns
    -------
    pandas.DataFrame
        Columns ``quantity``, ``release``, ``axis``, ``group_a``, ``group_b``, ``value``, ``tol``,
        ``source`` (str; empty groups are ``""``), one row per published number, in file order.
    """
    text = resources.files("filterdb").joinpath(VALUES_FILE).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    header, body = rows[0], rows[1:]
    bad = [i for i, r in enumerate(body) if len(r) != len(header)]
    if bad:
        raise ValueError(f"{VALUES_FILE}: row {bad[0] + 1} has {len(body[bad[0]])} cells, expected {len(header)}")
    return pd.DataFrame(body, columns=header, dtype=str)


def published_counts(release: str) -> dict[str, int] | None:
    """The published totals of a release (``n_models``, ``n_layers``, ``n_filters``; axis ``all``),
    or None when the values do not give all three (v0.1).

    Parameters
    ----------
    release : {"v0.1", "v1.0"}

    Returns
    -------
    dict of str to int, or None
    """
    v = published_values()
    v = v[(v["release"] == release) & (v["axis"] == "all")]
    out = {q: int(v.loc[v["quantity"] == q, "value"].iloc[0]) for q in COUNT_QUANTITIES if (v["quantity"] == q).any()}
    return out if len(out) == len(COUNT_QUANTITIES) else None


# ---------------------------------------------------------------------------------------------
# Which release a DB is


@dataclass(frozen=True)
class DBFacts:
    """What the release detection reads of a DB: its meta layout and counts, and the filter
    dataset's header (never a filter).

    Attributes
    ----------
    layout : str
        ``v1.0``, ``v0.1`` or ``mixed``.
    filter_ids : str
        How ``filter_ids`` is stored: ``strings`` (v1.0 ``"start:end"``), ``lists`` (v0.1), or a
        mixture / ``missing``.
    category_column : str
        ``Visual Category`` (v1.0), ``Datatype`` (v0.1), ``both`` or ``none``.
    n_models, n_layers, n_filters : int
        Distinct ``model_id``, meta rows, rows of the filter array.
    dtype, shape : str
        The stored dtype and ``(N, 3, 3)`` / ``(N, 9)`` (``(N, k, k)`` / ``(N, k²)`` for k x k filters).
    kernel : str
        The filters' kernel size (``3x3``, ``5x5`` ...; :mod:`filterdb.shape`).
    """

    layout: str
    filter_ids: str
    category_column: str
    n_models: int
    n_layers: int
    n_filters: int
    dtype: str
    shape: str
    kernel: str = "3x3"

    def brief(self) -> str:
        """Layout and counts, short."""
        return (
            f"{self.layout} layout, {self.n_models:,} models, {self.n_layers:,} conv layers, {self.n_filters:,} filters"
        )

    def text(self) -> str:
        """One phrase: layout, counts, storage."""
        how = {"strings": "'start:end' filter_ids", "lists": "filter_ids lists"}.get(self.filter_ids, self.filter_ids)
        col = (
            f"column {self.category_column}"
            if self.category_column in ("Visual Category", "Datatype")
            else (f"category column: {self.category_column}")
        )
        return (
            f"{self.layout} layout ({how}, {col}), {self.n_models:,} models, {self.n_layers:,} conv layers, "
            f"{self.n_filters:,} filters ({self.dtype}, {self.shape})"
        )


def _filter_ids_kind(values) -> str:
    kinds = set()
    for v in values:
        if isinstance(v, (str, bytes)):
            kinds.add("strings")
        elif isinstance(v, (list, tuple, np.ndarray)):
            kinds.add("lists")
        else:
            kinds.add(type(v).__name__)
    if not kinds:
        return "missing"
    return kinds.pop() if len(kinds) == 1 else "mixed (" + ", ".join(sorted(kinds)) + ")"


def meta_layout(meta: pd.DataFrame) -> tuple[str, str, str]:
    """``(layout, filter_ids kind, category column)`` of a raw meta table (as
    :func:`filterdb.db.read_meta` returns it).

    Parameters
    ----------
    meta : pandas.DataFrame

    Returns
    -------
    layout : str
        ``v1.0`` ('start:end' strings and ``Visual Category``), ``v0.1`` (id lists and
        ``Datatype``), else ``mixed``.
    filter_ids : str
    category_column : str
    """
    kind = _filter_ids_kind(meta["filter_ids"].to_numpy()) if "filter_ids" in meta.columns else "missing"
    has_v1, has_v0 = "Visual Category" in meta.columns, "Datatype" in meta.columns
    col = "both" if has_v1 and has_v0 else "Visual Category" if has_v1 else "Datatype" if has_v0 else "none"
    if kind == "strings" and col == "Visual Category":
        layout = "v1.0"
    elif kind == "lists" and col == "Datatype":
        layout = "v0.1"
    else:
        layout = "mixed"
    return layout, kind, col


def db_facts(path) -> DBFacts:
    """Read what :func:`detect_release` needs: the meta table and the filter dataset's header
    (:func:`filterdb.db.read_meta`, :func:`filterdb.db.filter_geometry`; no filter row is read).

    Parameters
    ----------
    path : str or os.PathLike
        A filter DB.

    Returns
    -------
    DBFacts

    Raises
    ------
    filterdb.db.DBError
        As :func:`filterdb.db.read_meta` and :func:`filterdb.db.filter_geometry`.
    """
    import h5py

    from .db import filter_geometry, read_meta

    key, n_rows, dtype, fshape = filter_geometry(path)
    with h5py.File(str(path), "r") as f:  # checked by filter_geometry: a plain dataset of this file
        k = fshape.side
        shape = f"(N, {k}, {k})" if len(f[key].shape) == 3 else f"(N, {fshape.size})"
    meta = read_meta(path)
    layout, kind, col = meta_layout(meta)
    names = [n for n in (meta.index.names or []) if n is not None]
    if "model_id" in names:
        models = meta.index.get_level_values("model_id")
    elif "model_id" in meta.columns:
        models = meta["model_id"]
    else:
        models = pd.Index([])
    n_models = int(pd.Index(models).nunique())
    return DBFacts(layout, kind, col, n_models, len(meta), int(n_rows), dtype, shape, fshape.label)


@dataclass(frozen=True)
class Release:
    """The release a DB is compared as, and why.

    Attributes
    ----------
    compared_as : str or None
        ``v0.1`` / ``v1.0``: the rows of that release get verdicts; None: none does.
    detected : str or None
        What detection found (None: not a published release, or not checked).
    forced : bool
        ``compared_as`` set by ``paper.release`` rather than detected.
    basis : str
        How ``detected`` was decided.
    facts : DBFacts or None
    origin : str or None
        Set for a DB this workflow builds itself (the sample, a synthetic DB): never the study's data.
    """

    compared_as: str | None
    detected: str | None
    forced: bool
    basis: str
    facts: DBFacts | None = None
    origin: str | None = None

    @property
    def label(self) -> str:
        """``v1.0 (detected)``, ``v1.0 (forced)``, ``none``."""
        if self.compared_as is None:
            return "none"
        return f"{self.compared_as} ({'forced' if self.forced else 'detected'})"

    def db_text(self) -> str:
        """What the DB is, one sentence."""
        facts = f" ({self.facts.text()})" if self.facts else ""
        if self.origin:
            return f"{self.origin}{facts}, not a published release"
        if self.detected == "v1.0":
            text = f"the published {RELEASE_NAMES['v1.0']}: {self.basis}{facts}"
            dtype, shape = PUBLISHED_STORAGE["v1.0"]
            if self.facts and (self.facts.dtype, self.facts.shape) != (dtype, shape):
                text += (
                    f"; stored as {self.facts.dtype} {self.facts.shape}, the published file as {dtype} {shape}: "
                    f"a converted copy"
                )
            return text
        if self.detected == "v0.1":
            return f"the published {RELEASE_NAMES['v0.1']}, {self.basis}{facts}"
        if self.facts is None:
            return f"not checked: {self.basis}"
        return f"not a published release{facts}: {self.basis}"

    def row_note(self) -> str:
        """The note of a row that is not applicable because the DB is not a published release."""
        facts = f" ({self.facts.brief()})" if self.facts else ""
        what = self.origin if self.origin else "not a published release"
        return f"not the study's data: {what}{facts}"

    def statement(self) -> str:
        """The release statement of the caption and the log."""
        db = self.db_text()
        if self.facts is None and not self.origin:
            forced = f" Compared as {self.compared_as}: FORCED by config paper.release." if self.forced else ""
            return f"The release was not checked: {self.basis}.{forced}"
        if self.forced:
            if self.detected == self.compared_as:
                tail = " (the DB is detected as that release too)"
            elif self.detected:
                tail = f"; the DB is detected as {self.detected}, whose values are the ones that apply to it"
            else:
                tail = "; the DB is not detected as a published release: its numbers are not the study's data"
            return (
                f"Compared as {RELEASE_NAMES[self.compared_as]}, FORCED by config paper.release = "
                f"{self.compared_as}{tail}. The DB: {db}."
            )
        if self.compared_as is None:
            return (
                f"The DB: {db}. These numbers are not the study's data: every verdict is 'not applicable' "
                f"(this_run is filled for reference only; config paper.release forces a comparison)."
            )
        return f"Compared as {RELEASE_NAMES[self.compared_as]}, detected. The DB: {db}."


def _published_text() -> str:
    v1 = published_counts("v1.0")
    return (
        f"the published v1.0 file has the v1.0 layout and {v1['n_models']:,} models, {v1['n_layers']:,} conv "
        f"layers, {v1['n_filters']:,} filters; the v0.1 file the v0.1 layout and over half a billion filters "
        f"from hundreds of models"
    )


def detect_release(facts: DBFacts | None, setting: str = "auto", origin: str | None = None) -> Release:
    """The release a DB is compared as.

    Parameters
    ----------
    facts : DBFacts or None
        The DB's layout and counts (:func:`db_facts`); None when not read (then only ``origin`` or a
        forced ``setting`` decide).
    setting : {"auto", "v0.1", "v1.0"}
        Config ``paper.release``: ``auto`` detects; a release forces the comparison.
    origin : str, optional
        Set when the DB is one this workflow builds (the sample DB, a synthetic DB): it is then never
        detected as a release.

    Returns
    -------
    Release
        ``detected`` = v1.0 when the layout is v1.0 and models, layers and filters equal the published
        counts; v0.1 when the layout is v0.1 and the DB has at least :data:`V01_SIZE` filters and
        models; else None (always for filters other than 3x3).

    Raises
    ------
    ValueError
        On an unknown ``setting``, or a forced release for a DB of filters other than 3x3.
    """
    if setting not in ("auto", *RELEASES):
        raise ValueError(f"paper.release {setting!r} is not one of auto, {', '.join(RELEASES)}")
    detected, basis = None, ""
    other_kernel = facts is not None and facts.kernel != STUDY.label
    if other_kernel and setting != "auto":
        raise ValueError(
            f"paper.release {setting}: the DB holds {facts.kernel} filters, the studies' (and their published "
            f"files') are {STUDY.label}: its numbers cannot be compared with theirs (set paper.release: auto)"
        )
    if other_kernel:
        basis = f"its filters are {facts.kernel}; the studies' (and their published files') are {STUDY.label}"
    elif origin:
        basis = "a DB this workflow builds"
    elif facts is None:
        basis = "the DB was not read"
    elif facts.layout == "v1.0":
        want = published_counts("v1.0")
        got = {"n_models": facts.n_models, "n_layers": facts.n_layers, "n_filters": facts.n_filters}
        if got == want:
            detected, basis = "v1.0", "its layout and all three counts match"
        else:
            basis = _published_text()
    elif facts.layout == "v0.1":
        if facts.n_filters >= V01_SIZE["n_filters"] and facts.n_models >= V01_SIZE["n_models"]:
            detected = "v0.1"
            basis = (
                "recognised by its layout and size only (the workshop paper: over half a billion filters from "
                "hundreds of trained CNNs; the v0.1 file's exact counts are not known to this project, so a "
                "subset of that size would pass too)"
            )
        else:
            basis = _published_text()
    else:
        basis = _published_text()
    if setting == "auto":
        return Release(detected, detected, False, basis, facts, origin)
    return Release(setting, detected, True, basis, facts, origin)


# ---------------------------------------------------------------------------------------------
# Which configured axis is the study's


@dataclass(frozen=True)
class AxisMatch:
    """The configured axis that has the study's definition of one of its axes (``name`` None: none
    has; ``reason`` says why)."""

    study: str
    name: str | None
    axis: Axis | None
    reason: str = ""


def _label_of(axis: Axis, value: str):
    """The group label a meta value gets on ``axis`` (its fold and relabel applied); NaN: none."""
    return layer_labels(pd.DataFrame({axis.column: [value]}), axis).iloc[0]


def _why_not(study: str, axis: Axis) -> str | None:
    """None when ``axis`` has the study's definition of ``study``, else the first difference."""
    if study == "task":
        if axis.column != "Task":
            return "column is not Task"
        if axis.kind != "categorical":
            return f"kind {axis.kind}, not categorical"
        folded = {_label_of(axis, v) for v in ("Segmentation", "Semantic Segmentation", "Instance Segmentation")}
        if len(folded) != 1:
            return "no Segmentation fold (the study folds every *Segmentation* task into one group)"
        return None
    if study == "visual_category":
        if axis.column not in ("Visual Category", "Datatype"):
            return "column is not Visual Category / Datatype"
        return None if axis.kind == "categorical" else f"kind {axis.kind}, not categorical"
    if study == "depth":
        if axis.column != "conv_depth_norm":
            return "column is not conv_depth_norm"
        if axis.kind != "binned":
            return f"kind {axis.kind}, not binned"
        return None if axis.bins == 10 else f"{axis.bins} bins, the study 10"
    raise ValueError(f"unknown study axis {study!r}")


def study_axes(axes_cfg: dict) -> dict[str, AxisMatch]:
    """For each of the study's axes (task, visual category, depth) the first configured axis with
    its definition (:data:`STUDY_AXIS_DEFINITIONS`), matched by column, kind, bins and folding, not
    by name.

    Parameters
    ----------
    axes_cfg : dict
        Axis name -> axis mapping (config ``axes``).

    Returns
    -------
    dict of str to AxisMatch
        Keys ``task``, ``visual_category``, ``depth``.
    """
    axes = [Axis.from_config(name, dict(cfg)) for name, cfg in axes_cfg.items()]
    out = {}
    for study, definition in STUDY_AXIS_DEFINITIONS.items():
        reasons = []
        for axis in axes:
            why = _why_not(study, axis)
            if why is None:
                out[study] = AxisMatch(study, axis.name, axis)
                break
            if axis.name == study or not why.startswith("column"):  # a near miss: say what differs
                reasons.append(f"axis {axis.name!r}: {why}")
        else:
            near = f" ({'; '.join(reasons)})" if reasons else ""
            out[study] = AxisMatch(
                study, None, None, f"no configured axis is the study's {study} axis, {definition}{near}"
            )
    return out


_INTERVAL = re.compile(r"^\s*([\[(])\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*([\])])\s*$")


def _edges(label: str) -> tuple[str, float, float, str] | None:
    m = _INTERVAL.match(str(label))
    return (m[1], float(m[2]), float(m[3]), m[4]) if m else None


def match_group(match: AxisMatch, label: str, groups: list[str]) -> tuple[str | None, str]:
    """This run's group for a published group label, and a note on how it was matched.

    Categorical axes: the label through the axis's own fold and relabel, then its other-release
    spelling (:data:`LABEL_ALIASES`). Binned axes: the group with the same bin edges (the v0.1
    figure's ``(0.0, 0.1]`` is ``[0.0, 0.1]`` here: that bin's left edge, the first conv level, was
    probably left out there and is in it here, docs/method.md §5).

    Parameters
    ----------
    match : AxisMatch
    label : str
        The published label.
    groups : list of str
        This run's groups of that axis.

    Returns
    -------
    group : str or None
        None when the run has no such group.
    note : str
        How the label was matched (empty when it is the same label); the reason when not found.
    """
    axis = match.axis
    if axis.kind == "binned":
        want = _edges(label)
        for g in groups:
            have = _edges(g)
            if (
                want
                and have
                and math.isclose(want[1], have[1], abs_tol=1e-9)
                and math.isclose(want[2], have[2], abs_tol=1e-9)
            ):
                if (want[0], want[3]) == (have[0], have[3]):
                    return g, ""
                note = f"published bin {label} is this run's {g}"
                if want[0] == "(" and have[0] == "[":
                    note += (
                        " (the published bin probably leaves out the first conv level, conv_depth_norm = 0, "
                        "which this one holds)"
                    )
                return g, note
        return None, f"axis {axis.name!r} has no group with the edges of {label}"
    for cand in (label, LABEL_ALIASES.get(label)):
        if cand is None:
            continue
        g = _label_of(axis, cand)
        if isinstance(g, str) and g in groups:
            if cand != label:
                return g, f"published {label!r} is {g!r} here (renamed between v0.1 and v1.0)"
            return g, "" if g == label else f"published {label!r} is {g!r} on axis {axis.name!r} (its fold/relabel)"
    return None, f"axis {axis.name!r} has no group {label!r}"


# ---------------------------------------------------------------------------------------------
# This run's values


@dataclass
class RunOutputs:
    """The run's output files the comparison reads (paths), read when first needed.

    ``drift``, ``groups`` and ``subsets`` map an axis name to ``drift/{axis}.tsv``,
    ``groups/{axis}.tsv`` and ``pca/subsets/{axis}.tsv``; an axis without a file gives rows that are
    not applicable.
    """

    basis: str
    mean: str
    sums: str
    summary: str
    drift: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    subsets: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def under(cls, root, axes) -> RunOutputs:
        """The files of the results layout under ``root`` for the axes ``axes``."""
        p = results.Paths(root)
        return cls(
            basis=str(p.basis),
            mean=str(p.mean),
            sums=str(p.sums),
            summary=str(p.root / "dataset" / "summary.tsv"),
            drift={a: str(p.drift(a)) for a in axes},
            groups={a: str(p.groups(a)) for a in axes},
            subsets={a: str(p.root / "pca" / "subsets" / f"{a}.tsv") for a in axes},
        )

    def _get(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def evr(self) -> np.ndarray:
        return self._get("evr", lambda: results.read_evr(self.basis))

    def mean_filter(self) -> np.ndarray:
        return self._get("mean", lambda: results.read_basis(self.basis, self.mean)[0])

    def sums_arrays(self) -> dict:
        return self._get("sums", lambda: results.load_npz(self.sums))

    def covariance(self) -> np.ndarray:
        return self._get("cov", lambda: global_pca(self.sums_arrays()).covariance)

    def summary_table(self) -> pd.DataFrame:
        return self._get("summary", lambda: results.read_tsv(self.summary, group_names=True))

    def drift_matrix(self, axis: str) -> tuple[list[str], np.ndarray]:
        return self._get(("drift", axis), lambda: results.read_drift(self.drift[axis]))

    def group_table(self, axis: str) -> pd.DataFrame:
        return self._get(("groups", axis), lambda: results.read_groups(self.groups[axis]))

    def subset_table(self, axis: str) -> pd.DataFrame:
        return self._get(("subsets", axis), lambda: results.read_tsv(self.subsets[axis], group_names=True))

    def totals(self) -> dict[str, int]:
        s = self.summary_table()
        row = s[(s["axis"] == "(all)") & (s["group"] == "(all)")].iloc[0]
        return {q: int(row[q]) for q in COUNT_QUANTITIES}

    def uncovered_rows(self) -> int:
        s = self.summary_table()
        row = s[(s["axis"] == "(coverage)") & (s["group"] == "rows in no layer")]
        return int(row["n_filters"].iloc[0]) if len(row) else 0

    def nonfinite_dropped(self) -> int:
        z = self.sums_arrays()
        return int(np.sum(z["nonfinite"])) if "nonfinite" in z else 0


# ---------------------------------------------------------------------------------------------
# Departures from the study's settings


def _family(quantity: str) -> str:
    if quantity.startswith("subset_evr_"):
        return "subset"
    if quantity.startswith(PCA_QUANTITIES):
        return "pca"
    if quantity in DRIFT_QUANTITIES:
        return "drift"
    if quantity in COUNT_QUANTITIES:
        return "count"
    raise ValueError(f"unknown quantity {quantity!r} in {VALUES_FILE}")


def run_settings(settings: dict | None) -> dict:
    """The run's settings that matter to the comparison, study defaults filled: keys of
    :data:`STUDY_SETTINGS` from a mapping with ``precision`` (or ``stream.precision``) and
    ``histogram`` (``bins``, ``floor``, ``eps``), as the workflow passes them.

    Parameters
    ----------
    settings : dict or None
        ``{"precision": ..., "histogram": {...}}``; None: filterdb's defaults (precision float32).

    Returns
    -------
    dict
    """
    s = settings or {}
    h = s.get("histogram") or {}
    return {
        "stream.precision": s.get("precision", s.get("stream.precision", "float32")),
        "histogram.bins": int(h.get("bins", 70)),
        "histogram.floor": h.get("floor", "density"),
        "histogram.eps": float(h.get("eps", STUDY_SETTINGS["histogram.eps"])),
    }


def departures(settings: dict, matches: dict[str, AxisMatch], outputs: RunOutputs) -> dict[str, list[str]]:
    """The run's departures from the study, by what they affect: ``pca`` (global PCA quantities),
    ``subset``, ``drift`` (every axis) and ``drift:<study axis>`` (that axis only).

    Parameters
    ----------
    settings : dict
        :func:`run_settings`.
    matches : dict of str to AxisMatch
    outputs : RunOutputs

    Returns
    -------
    dict of str to list of str
    """
    weights = []
    if settings["stream.precision"] != STUDY_SETTINGS["stream.precision"]:
        weights.append(f"stream.precision={settings['stream.precision']} (study: float16)")
    dropped = outputs.nonfinite_dropped()
    if dropped:
        weights.append(f"{dropped:,} filters with NaN/Inf dropped (stream.nonfinite=drop)")
    global_only = []
    uncovered = outputs.uncovered_rows()
    if uncovered:
        global_only.append(f"{uncovered:,} filter rows of no layer left out (the notebook's PCA takes every row)")
    hist = [
        f"{k}={settings[k]!r} (study: {STUDY_SETTINGS[k]!r})"
        for k in ("histogram.bins", "histogram.floor", "histogram.eps")
        if settings[k] != STUDY_SETTINGS[k]
    ]
    out = {"pca": weights + global_only, "subset": list(weights), "drift": weights + global_only + hist}
    for study, m in matches.items():
        extra = []
        if m.axis is not None and (m.axis.min_models > 1 or m.axis.min_filters > 0):
            extra.append(
                f"axis {m.name!r} drops groups (min_models={m.axis.min_models}, min_filters={m.axis.min_filters}; "
                f"study: keeps all)"
            )
        out[f"drift:{study}"] = extra
    return out


# ---------------------------------------------------------------------------------------------
# The comparison


class _NotApplicable(Exception):
    """This run has no value for the row (the reason is the message)."""


def _upper(d: np.ndarray) -> np.ndarray:
    return d[np.triu_indices(d.shape[0], k=1)]


def _index(row: str) -> int:
    return int(row.rsplit("_", 1)[1])


def _value(q: str, rec: dict, outputs: RunOutputs, matches: dict[str, AxisMatch]) -> tuple[float, str, bool]:
    """``(this run's value, note, the published pair attains the maximum)`` of one row."""
    if q.startswith("cum_evr_"):
        return float(np.cumsum(outputs.evr())[_index(q) - 1]), "", True
    if q.startswith("evr_"):
        return float(outputs.evr()[_index(q) - 1]), "", True
    if q.startswith("pca_mean_"):
        return float(outputs.mean_filter()[PIXELS.index(q[len("pca_mean_") :])]), "", True
    if q == "pixel_cov_center":
        return float(outputs.covariance()[4, 4]), "covariance of pixel w4 with itself (stats/sums.npz)", True
    if q in ("n_layers", "n_filters") or (q == "n_models" and rec["axis"] == "all"):
        return float(outputs.totals()[q]), "", True
    m = matches.get(rec["axis"])
    if m is None:
        raise ValueError(f"{VALUES_FILE}: unknown axis {rec['axis']!r} for {q}")
    if m.name is None:
        raise _NotApplicable(m.reason)
    where = f"axis {m.name!r}" + ("" if m.name == rec["axis"] else f" (the study's {rec['axis']})")
    notes = [] if m.name == rec["axis"] else [f"this run's {where}"]

    def group(label, groups):
        g, how = match_group(m, label, groups)
        if g is None:
            raise _NotApplicable(how)
        if how:
            notes.append(how)
        return g

    if q.startswith("subset_evr_"):
        path = outputs.subsets.get(m.name)
        if path is None:
            raise _NotApplicable(f"no subset PCA table of {where}")
        t = outputs.subset_table(m.name)
        g = group(rec["group_a"], list(dict.fromkeys(t["group"])))
        r = t[(t["group"] == g) & (t["component"] == f"c{_index(q) - 1}")]
        return float(r["explained_variance_ratio"].iloc[0]), "; ".join(notes), True
    if q == "n_models":
        t = outputs.group_table(m.name)
        g = group(rec["group_a"], list(t["group"]))
        return float(t.loc[t["group"] == g, "n_models"].iloc[0]), "; ".join(notes), True
    names, d = outputs.drift_matrix(m.name)
    if q in ("upper_mean", "upper_median", "upper_max"):
        if len(names) < 2:
            raise _NotApplicable(f"{where} has {len(names)} group(s): no pair")
        up = _upper(d)
        if q == "upper_mean":
            return float(up.mean()), "; ".join(notes), True
        if q == "upper_median":
            return float(np.median(up)), "; ".join(notes), True
        i, j = np.triu_indices(len(names), k=1)
        k = int(np.argmax(up))
        run_pair = {names[i[k]], names[j[k]]}
        pair_ok = True
        if rec["group_a"] and rec["group_b"]:
            a, b = group(rec["group_a"], names), group(rec["group_b"], names)
            pair_ok = run_pair == {a, b}
            if pair_ok:
                notes.append("attained by the published pair")
            else:
                notes.append(
                    f"attained by {names[i[k]]} - {names[j[k]]}, not the published pair (whose D is "
                    f"{d[names.index(a), names.index(b)]:.6g})"
                )
        return float(up[k]), "; ".join(notes), pair_ok
    if q == "pair":
        a, b = group(rec["group_a"], names), group(rec["group_b"], names)
        return float(d[names.index(a), names.index(b)]), "; ".join(notes), True
    if q == "group_mean":
        g = group(rec["group_a"], names)
        col = d[:, names.index(g)]
        if len(names) > 1:
            notes.append(
                f"mean over the {len(names)} groups, zero diagonal included; "
                f"without it {col.sum() / (len(names) - 1):.6g}"
            )
        return float(col.mean()), "; ".join(notes), True
    raise ValueError(f"unknown quantity {q!r} in {VALUES_FILE}")


def _is_count(q: str) -> bool:
    return q in COUNT_QUANTITIES


def _fmt(v: float, count: bool) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if count:
        return str(int(round(v)))
    return repr(float(v))


def within(this_run: float, paper: float, tol: float) -> bool:
    """``|this_run - paper| <= tol``, allowing for the float64 rounding of the difference (a value on
    the tolerance's edge as printed counts as within).

    Parameters
    ----------
    this_run, paper, tol : float

    Returns
    -------
    bool
    """
    slack = 1e-12 * max(abs(paper), abs(this_run), tol, 1e-300)
    return abs(this_run - paper) <= tol + slack


def comparison(
    release: Release,
    outputs: RunOutputs,
    axes_cfg: dict,
    settings: dict | None = None,
    values: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The reproduction table: every published value (:func:`published_values`) beside this run's.

    Parameters
    ----------
    release : Release
        What the DB is compared as (:func:`detect_release`).
    outputs : RunOutputs
        The run's files.
    axes_cfg : dict
        The configured axes (:func:`study_axes` matches the study's to them).
    settings : dict, optional
        The run's precision and histogram settings (:func:`run_settings`).
    values : pandas.DataFrame, optional
        The published values (default :func:`published_values`).

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS`, all text, one row per published value, in the values' order.
        ``verdict``: ``within tolerance`` when ``|this_run - paper| <= tol`` (for an ``upper_max``
        that names a pair, also the maximum attained by that pair), else ``outside tolerance``;
        ``not applicable`` when the DB is not compared as the row's release, or the run has no such
        axis, group or pair (``note`` says why). ``this_run`` is filled whenever the run has the
        value, also for rows that are not applicable.
    """
    values = published_values() if values is None else values
    settings = run_settings(settings)
    matches = study_axes(axes_cfg)
    dep = departures(settings, matches, outputs)
    short = release.db_text()
    rows = []
    for rec in values.to_dict("records"):
        q = rec["quantity"]
        family = _family(q)
        count = _is_count(q)
        paper, tol = float(rec["value"]), float(rec["tol"])
        notes, this_run, pair_ok, na = [], None, True, None
        try:
            this_run, how, pair_ok = _value(q, rec, outputs, matches)
            if how:
                notes.append(how)
        except _NotApplicable as exc:
            na = str(exc)
        deps = []
        if this_run is not None and family != "count":
            deps = dep[family] + (dep.get(f"drift:{rec['axis']}", []) if family == "drift" else [])
        if release.compared_as is None:
            verdict = NOT_APPLICABLE
            notes.insert(0, release.row_note())
        elif rec["release"] != release.compared_as:
            verdict = NOT_APPLICABLE
            notes.insert(0, f"published for {rec['release']}; this DB is compared as {release.compared_as}")
        elif na is not None:
            verdict = NOT_APPLICABLE
        else:
            verdict = WITHIN if within(this_run, paper, tol) and pair_ok else OUTSIDE
            if release.forced:
                forced = f"forced by config paper.release = {release.compared_as}"
                if release.detected != release.compared_as:
                    forced += f" (the DB is not detected as {release.compared_as})"
                notes.insert(0, forced)
        if na is not None:
            notes.append(na)
        if q in COUNT_QUANTITIES and rec["axis"] == "all":
            notes.append(_published_text() if release.compared_as is None else f"the DB: {short}")
        rows.append(
            {
                "quantity": q,
                "release": rec["release"],
                "axis": rec["axis"],
                "group_a": rec["group_a"],
                "group_b": rec["group_b"],
                "paper": rec["value"],
                "this_run": "" if this_run is None else _fmt(this_run, count),
                "tol": rec["tol"],
                "verdict": verdict,
                "source": rec["source"],
                "departures": "; ".join(deps),
                "note": "; ".join(notes),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS, dtype=str)


def write_comparison(table: pd.DataFrame, path) -> None:
    """Write ``paper/comparison.tsv`` (atomically; every cell as the table holds it, unquoted: a
    tab or line break inside a cell becomes a space).

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`comparison`.
    path : str or os.PathLike
    """

    def cell(v) -> str:
        return " ".join(str(v).split("\t")).replace("\n", " ")  # one line per row, no quoting needed

    lines = ["\t".join(table.columns)] + ["\t".join(cell(v) for v in row) for row in table.itertuples(index=False)]
    text = "\n".join(lines) + "\n"
    results.atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_comparison(path) -> pd.DataFrame:
    """``paper/comparison.tsv`` as text (empty cells ``""``; cells are never quoted).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    pandas.DataFrame
    """
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)


def summary_line(table: pd.DataFrame, release: Release) -> str:
    """``compared as …: N within tolerance, M outside tolerance, K not applicable`` (the log)."""
    counts = table["verdict"].value_counts()
    parts = [f"{int(counts.get(v, 0))} {v}" for v in (WITHIN, OUTSIDE, NOT_APPLICABLE)]
    return f"release {release.label}: " + ", ".join(parts)


def planned_statement(path, setting: str = "auto", origin: str | None = None) -> str:
    """The release statement as the workflow can give it when it is planned (the report caption):
    :meth:`Release.statement` of the DB at ``path``, read in a child process first
    (:func:`filterdb.h5safe.crash_check`: a damaged file cannot take the caller down); a DB that is
    not there yet, or cannot be read, says so.

    Parameters
    ----------
    path : str or os.PathLike
    setting : {"auto", "v0.1", "v1.0"}
    origin : str, optional
        As :func:`detect_release` (the statement then does not depend on the file: it is the same
        before and after the workflow builds it).

    Returns
    -------
    str
    """
    import os

    if origin:
        return detect_release(None, setting, origin).statement()
    if not os.path.exists(path):
        forced = setting != "auto"
        basis = "the DB did not exist yet when the workflow was planned (the table's notes say what it is)"
        return Release(setting if forced else None, None, forced, basis).statement()
    from . import h5safe

    try:
        h5safe.crash_check(str(path), _read_facts)
        facts = db_facts(path)
    except Exception as exc:  # the jobs that read the DB report it
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"The DB could not be read to tell its release ({first})."
    return detect_release(facts, setting).statement()


def _read_facts(path: str) -> None:
    """What :func:`db_facts` reads (for :func:`filterdb.h5safe.crash_check`)."""
    db_facts(path)
