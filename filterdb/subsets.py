"""Per-group results of one axis from the gathered per-layer tables (docs/method.md §3, §6).

The figure jobs of the workflow (``workflow/scripts/fig_subset_eigenimages.py``, ``fig_ridge.py``)
call these functions; they need no Snakemake and read no files. Cheap to import: numpy and pandas
only (no h5py, no numba).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import kde, pca
from .axes import Axis, group_table, layer_labels
from .results import basis_table
from .shape import STUDY, FilterShape


def subset_columns(shape: FilterShape = STUDY) -> list[str]:
    """The columns of ``pca/subsets/{axis}.tsv`` for filters of ``shape``."""
    return ["group", "n_filters", "component", "explained_variance", "explained_variance_ratio"] + shape.pixels


#: :func:`subset_columns` of 3x3 filters.
SUBSET_COLUMNS = subset_columns()
RIDGE_COLUMNS = ["group", "coefficient", "n", "bandwidth"]


def _group_names(layers: pd.DataFrame, labels: pd.Series, axis: Axis, groups: Sequence[str] | None) -> list[str]:
    if groups is None:
        groups = group_table(layers, labels, axis)["group"]
    return [str(g) for g in groups]


def _text_labels(labels: pd.Series) -> np.ndarray:
    """Labels as ``str`` (``None`` for no group), comparable with the groups tables' text."""
    lab = labels.astype(object)
    return lab.where(lab.notna(), None).map(lambda v: v if v is None else str(v)).to_numpy(dtype=object)


@dataclass
class SubsetPCAs:
    """The subset PCA of every group of an axis.

    Attributes
    ----------
    groups : list of str
        Group names, in the order given (the drift matrix's order in the workflow).
    n : numpy.ndarray
        Number of filters of each group, shape ``(G,)``.
    components : list of numpy.ndarray or None
        Per group the ``(d, d)`` components (row k = component k); ``None`` for a group of fewer
        than 2 filters.
    explained_variance_ratio : list of numpy.ndarray or None
        Per group the ``(d,)`` explained variance ratios within the group; ``None`` as above.
    table : pandas.DataFrame
        ``pca/subsets/{axis}.tsv``: columns :func:`subset_columns`, d rows per group with a PCA.
    """

    groups: list[str]
    n: np.ndarray
    components: list
    explained_variance_ratio: list
    table: pd.DataFrame


def subset_pcas(
    layers: pd.DataFrame, sums: dict[str, np.ndarray], axis: Axis, groups: Sequence[str] | None = None
) -> SubsetPCAs:
    """Exact PCA of the peak-scaled filters of each group of ``axis``, from per-layer sums.

    Parameters
    ----------
    layers : pandas.DataFrame
        The layer table (``stats/layers.tsv``), one row per layer, in the order of ``sums``.
    sums : dict of numpy.ndarray
        Per-layer sums (``stats/sums.npz``): ``n`` (L,), ``sum`` (L, d), ``outer`` (L, d, d).
    axis : filterdb.axes.Axis
        The grouping of layers.
    groups : sequence of str, optional
        Groups to compute, in this order (e.g. ``groups/{axis}.tsv``); default: the groups of
        :func:`filterdb.axes.group_table` (min_models / min_filters applied).

    Returns
    -------
    SubsetPCAs
        One PCA per group (:func:`filterdb.pca.pca_of_layers` over the group's layers); groups with
        fewer than 2 filters have none and no rows in the table.
    """
    labels = layer_labels(layers, axis)
    names = _group_names(layers, labels, axis, groups)
    lab = _text_labels(labels)
    n_layer = np.asarray(sums["n"])
    comps, evrs, ns, rows = [], [], [], []
    for g in names:
        mask = lab == g
        n = int(n_layer[mask].sum())
        ns.append(n)
        if n < 2:
            comps.append(None)
            evrs.append(None)
            continue
        p = pca.pca_of_layers(n_layer, sums["sum"], sums["outer"], mask)
        comps.append(p.components)
        evrs.append(p.explained_variance_ratio)
        t = basis_table(p)
        t.insert(0, "n_filters", n)
        t.insert(0, "group", g)
        rows.append(t)
    if rows:
        table = pd.concat(rows, ignore_index=True)
    else:
        table = pd.DataFrame(columns=subset_columns(FilterShape.of_width(np.asarray(sums["sum"]).shape[-1])))
    return SubsetPCAs(names, np.asarray(ns, dtype=np.int64), comps, evrs, table)


@dataclass
class GroupRidges:
    """The ridge-plot KDEs of every group of an axis.

    Attributes
    ----------
    groups : list of str
        Group names (rows of the ridge plot).
    grid : numpy.ndarray
        Evaluation grid of the KDEs (coefficient units), shape ``(P,)``.
    density : numpy.ndarray
        KDE of each group and coefficient on ``grid``, shape ``(G, 9, P)``.
    table : pandas.DataFrame
        ``ridge/{axis}.tsv``: columns :data:`RIDGE_COLUMNS`, one row per group and coefficient
        (number of filters ``n`` and Silverman bandwidth).
    """

    groups: list[str]
    grid: np.ndarray
    density: np.ndarray
    table: pd.DataFrame


def group_ridges(
    layers: pd.DataFrame,
    axis: Axis,
    cell_of_layer: np.ndarray,
    cell_counts: np.ndarray,
    cell_edges: np.ndarray,
    groups: Sequence[str] | None = None,
) -> GroupRidges:
    """Gaussian KDEs (binned Silverman bandwidth) of c0..c8 per group, from fine cell histograms.

    Parameters
    ----------
    layers : pandas.DataFrame
        The layer table (``stats/layers.tsv``).
    axis : filterdb.axes.Axis
        The grouping of layers; every group must be a union of cells.
    cell_of_layer : numpy.ndarray
        Cell of each layer (``filterdb.pipeline.cell_table``).
    cell_counts : numpy.ndarray
        Fine histograms per cell, ``(C, d, bins)`` (``stats/hist.npz`` ``cell_counts``).
    cell_edges : numpy.ndarray
        Bin edges of the fine histograms, ``(bins + 1,)``.
    groups : sequence of str, optional
        Groups, in this order; default as :func:`subset_pcas`.

    Returns
    -------
    GroupRidges
        Grid, densities and bandwidth table (:func:`filterdb.kde.group_cell_counts`,
        :func:`filterdb.kde.group_kdes`).
    """
    labels = layer_labels(layers, axis)
    names = _group_names(layers, labels, axis, groups)
    counts = kde.group_cell_counts(labels, cell_of_layer, cell_counts, names)
    grid, dens, bw = kde.group_kdes(counts, cell_edges)
    n = counts.sum(axis=-1)
    table = pd.DataFrame(
        {
            "group": np.repeat(np.asarray(names, dtype=object), counts.shape[1]),
            "coefficient": [f"c{i}" for i in range(counts.shape[1])] * len(names),
            "n": n.ravel(),
            "bandwidth": bw.ravel(),
        }
    )
    return GroupRidges(names, grid, dens, table)
