"""Axes: groupings of conv layers (docs/method.md §5).

An axis is configured as a mapping (see ``config.yaml``):

``column``      meta column the label comes from (``Datatype`` is an alias of ``Visual Category``)
``kind``        ``categorical`` (default): the column's value; ``binned``: numeric column cut into
                ``bins`` equal bins on [0, 1] (``pandas.cut``, right-closed, ``include_lowest``);
                ``present``: ``yes`` when the column holds a non-empty value, else ``no``
``bins``        number of bins for ``binned`` (the study: 10)
``relabel``     exact value → label map, applied after ``fold``
``fold``        substring → label map: any value containing the key becomes the label
                (the study folds every Task containing "Segmentation" into "Segmentation")
``order``       ``mean_drift`` (categorical default: ascending mean drift, as the study) or
                ``natural`` (the binned default; sorted labels otherwise)
``min_models``  drop groups with fewer models (default 1: keep all)
``min_filters`` drop groups with fewer filters (default 0: keep all; a group without any filter is
                always dropped)

Layers with no label (missing value) belong to no group of that axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .schema import default_factory, schema_default


def study_axes() -> dict:
    """The study's six axes: the schema's default of ``axes`` (also what config.yaml lists), used
    by ``filterdb inspect`` without a config. Also as the module attribute ``STUDY_AXES``."""
    return schema_default("axes")


def __getattr__(name: str):
    # STUDY_AXES: read from the schema when asked for (the one place the axes are written)
    if name == "STUDY_AXES":
        return study_axes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class Axis:
    name: str
    column: str
    kind: str = field(default_factory=default_factory("axes.*.kind"))
    bins: int = field(default_factory=default_factory("axes.*.bins"))
    relabel: dict = field(default_factory=default_factory("axes.*.relabel"))
    fold: dict = field(default_factory=default_factory("axes.*.fold"))
    order: str | None = None  # the schema has no default: it depends on kind (__post_init__)
    min_models: int = field(default_factory=default_factory("axes.*.min_models"))
    min_filters: int = field(default_factory=default_factory("axes.*.min_filters"))

    def __post_init__(self):
        if self.kind not in ("categorical", "binned", "present"):
            raise ValueError(f"axis {self.name!r}: kind {self.kind!r} is not one of categorical, binned, present")
        if self.order is None:
            self.order = "natural" if self.kind == "binned" else "mean_drift"
        if self.order not in ("mean_drift", "natural"):
            raise ValueError(f"axis {self.name!r}: order {self.order!r} is not one of mean_drift, natural")

    @property
    def title(self) -> str:
        """The axis's panel title in the study's headline figure: "Relative Depth of Convolution
        Layer" for bins of ``conv_depth_norm``, else the meta column (``Task``, ``Visual Category``)."""
        if self.kind == "binned" and self.column == "conv_depth_norm":
            return "Relative Depth of Convolution Layer"
        return self.column

    @property
    def labels_carry_counts(self) -> bool:
        """Whether the headline figure writes the model count beside each group label, as the
        study's v1.0 figure does for its categorical panels (not for the depth bins, which nearly
        every model spans)."""
        return self.kind != "binned"

    @classmethod
    def from_config(cls, name: str, cfg: dict) -> Axis:
        """Build an axis from its ``config.yaml`` mapping.

        Parameters
        ----------
        name : str
            Axis name (the key in the config).
        cfg : dict
            The axis mapping; keys among ``column``, ``kind``, ``bins``, ``relabel``, ``fold``,
            ``order``, ``min_models``, ``min_filters`` (see the module docstring).

        Returns
        -------
        Axis

        Raises
        ------
        ValueError
            On an unknown key, kind or order.
        """
        known = {"column", "kind", "bins", "relabel", "fold", "order", "min_models", "min_filters"}
        extra = set(cfg) - known
        if extra:
            raise ValueError(f"axis {name!r}: unknown keys {sorted(extra)}")
        return cls(name=name, **cfg)


def axes_from_config(cfg: dict) -> list[Axis]:
    """Build the axes of a config's ``axes`` mapping, in its order.

    Parameters
    ----------
    cfg : dict
        Axis name → axis mapping (as :func:`study_axes`); each mapping is passed to
        :meth:`Axis.from_config`.

    Returns
    -------
    list of Axis

    Examples
    --------
    >>> [a.name for a in axes_from_config({"depth": {"column": "conv_depth_norm", "kind": "binned"}})]
    ['depth']
    """
    return [Axis.from_config(name, dict(a)) for name, a in cfg.items()]


def required_columns(axes: list[Axis]) -> list[str]:
    """Meta columns the axes need (``Datatype`` satisfies ``Visual Category``).

    Parameters
    ----------
    axes : list of Axis

    Returns
    -------
    list of str
        The axes' ``column`` values, duplicates removed, in first-seen order.
    """
    return list(dict.fromkeys(a.column for a in axes))


def depth_bin_labels(bins: int) -> list[str]:
    """Labels of ``bins`` equal bins on [0, 1], as the ``binned`` axes use them.

    The first bin is closed on both sides, the others right-closed (``pandas.cut`` with
    ``include_lowest``). Edges get 1 decimal when ``bins`` divides 10, else 2.

    Parameters
    ----------
    bins : int
        Number of bins.

    Returns
    -------
    list of str
        ``bins`` labels in increasing order.

    Examples
    --------
    >>> depth_bin_labels(4)
    ['[0.00, 0.25]', '(0.25, 0.50]', '(0.50, 0.75]', '(0.75, 1.00]']
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    return [
        ("[" if k == 0 else "(") + f"{edges[k]:.{_digits(bins)}f}, {edges[k + 1]:.{_digits(bins)}f}]"
        for k in range(bins)
    ]


def _digits(bins: int) -> int:
    return 1 if 10 % bins == 0 else 2


def _empty(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and np.isnan(v):
        return True
    if isinstance(v, (list, tuple, np.ndarray)):
        return len(v) == 0
    s = str(v).strip()
    return s == "" or s.lower() in ("nan", "none", "[]")


def layer_labels(layers: pd.DataFrame, axis: Axis) -> pd.Series:
    """Group label of each layer on ``axis`` (object Series aligned with ``layers``; NaN = none).

    ``categorical``: the stripped value, with the first matching ``fold`` key applied, then
    ``relabel``. ``binned``: the :func:`depth_bin_labels` bin of the numeric value (non-numeric or
    outside [0, 1] → NaN). ``present``: ``"yes"`` / ``"no"`` (never NaN). Empty values (None, NaN,
    empty list, ``""``, ``"nan"``, ``"none"``, ``"[]"``) have no label.

    Parameters
    ----------
    layers : pandas.DataFrame
        One row per conv layer, holding the axis's meta column (or its ``Datatype`` /
        ``Visual Category`` alias).
    axis : Axis

    Returns
    -------
    pandas.Series
        object dtype, same index as ``layers``; NaN where the layer belongs to no group.

    Raises
    ------
    KeyError
        If ``layers`` has neither the axis column nor its alias.
    """
    col = axis.column
    if col not in layers.columns:
        from .db import CATEGORY_ALIASES  # here, not at import: filterdb.db pulls h5py

        for old, new in CATEGORY_ALIASES.items():
            if col == new and old in layers.columns:
                col = old
            elif col == old and new in layers.columns:
                col = new
    if col not in layers.columns:
        raise KeyError(f"axis {axis.name!r} needs meta column {axis.column!r}, which the DB does not have")
    values = layers[col]
    if axis.kind == "binned":
        x = pd.to_numeric(values, errors="coerce")
        cut = pd.cut(
            x, bins=np.linspace(0.0, 1.0, axis.bins + 1), include_lowest=True, labels=depth_bin_labels(axis.bins)
        )
        return cut.astype(object).where(cut.notna(), np.nan)
    try:  # each distinct value labelled once (a model's layers repeat its meta values)
        codes, uniq = pd.factorize(values, use_na_sentinel=False)
    except TypeError:  # unhashable values (lists): one by one
        codes, uniq = np.arange(len(values)), list(values)
    lab = np.array([_label(v, axis) for v in uniq], dtype=object)
    return pd.Series(lab[codes], index=layers.index, dtype=object)


def _label(v, axis: Axis):
    """The group label of one meta value on a categorical or present axis (NaN: none)."""
    if axis.kind == "present":
        return "no" if _empty(v) else "yes"
    if _empty(v):
        return np.nan
    s = str(v).strip()
    for key, label in axis.fold.items():
        if key in s:
            s = label
            break
    return axis.relabel.get(s, s)


def group_table(layers: pd.DataFrame, labels: pd.Series, axis: Axis) -> pd.DataFrame:
    """``groups/{axis}.tsv``: per group ``group``, ``n_models``, ``n_layers``, ``n_filters``.

    Groups below ``min_models`` / ``min_filters`` are dropped, and so are groups without any filter
    (only empty layers: no distribution, so no drift). Rows in label order (natural order
    for binned axes, alphabetical otherwise; the drift matrix applies its own ordering).

    Parameters
    ----------
    layers : pandas.DataFrame
        One row per conv layer, with ``model_id`` and ``n_filters`` columns.
    labels : pandas.Series
        Group label of each layer (:func:`layer_labels`), aligned with ``layers``; NaN rows are
        left out.
    axis : Axis
        Supplies ``kind``, ``bins``, ``min_models`` and ``min_filters``.

    Returns
    -------
    pandas.DataFrame
        Columns ``group``, ``n_models`` (distinct models), ``n_layers``, ``n_filters`` (sum), one
        row per kept group, index reset to 0..n-1.
    """
    df = pd.DataFrame(
        {"group": labels, "model_id": layers["model_id"].to_numpy(), "n_filters": layers["n_filters"].to_numpy()}
    ).dropna(subset=["group"])
    g = (
        df.groupby("group", sort=False)
        .agg(n_models=("model_id", "nunique"), n_layers=("model_id", "size"), n_filters=("n_filters", "sum"))
        .reset_index()
    )
    if axis.kind == "binned":
        order = {lab: k for k, lab in enumerate(depth_bin_labels(axis.bins))}
        g = g.sort_values("group", key=lambda s: s.map(order))
    else:
        g = g.sort_values("group", key=lambda s: s.astype(str))
    g = g[(g["n_models"] >= axis.min_models) & (g["n_filters"] >= max(axis.min_filters, 1))]
    return g.reset_index(drop=True)


def depth_axis(bins: int | None = None) -> Axis:
    """The study's depth axis: ``conv_depth_norm`` cut into ``bins`` equal bins (docs/method.md §5).

    Parameters
    ----------
    bins : int, optional
        Number of bins (default: an axis's, the schema's ``axes.*.bins``).

    Returns
    -------
    Axis
        Named ``depth``, ``kind="binned"``, natural order.
    """
    if bins is None:
        return Axis(name="depth", column="conv_depth_norm", kind="binned")
    return Axis(name="depth", column="conv_depth_norm", kind="binned", bins=bins)
