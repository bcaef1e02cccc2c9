"""The figures of the study (docs/method.md §6-§9): pure functions, arrays in, matplotlib figure out.

Nothing here reads files. :func:`save` writes a figure byte-reproducibly (fixed SVG hash salt, no
dates or software versions in the metadata), so the same inputs give the same SVG and PNG bytes.

Colour conventions of the study: eigenimages ``seismic`` on [-1, 1]; drift heatmaps and densities
colorcet ``fire``; densities on a log scale from 1e-5 to 1 of the maximum count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure  # figures outside pyplot: no backend or global figure state

from . import colormaps
from .results import atomic_write
from .schema import schema_default
from .shape import STUDY, FilterShape

DENSITY_VMIN = 1e-5
ANNOTATE_MAX = 12  # drift heatmaps with at most this many groups print their values

STYLE = {
    "svg.hashsalt": "filterdb",  # deterministic ids in SVG output
    "svg.fonttype": "path",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "image.interpolation": "nearest",
}
SVG_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
PNG_METADATA = {"Software": None}


def _fire():
    return colormaps.fire()


def _figure(width: float, height: float) -> Figure:
    """A new figure (not registered with pyplot's state machine)."""
    return Figure(figsize=(width, height), layout="constrained")


def _styled(fn):
    """Build the figure under the house style (``STYLE``), whatever the caller's rcParams."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def save(fig: Figure, path: str | Path, dpi: int | None = None) -> None:
    """Write ``fig`` as SVG or PNG (by suffix), byte-reproducibly and atomically
    (:func:`filterdb.results.atomic_write`: an interrupted save leaves no half-written figure).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or Path
        Output file; its suffix (``.svg`` or ``.png``, any case) selects the format.
    dpi : int, optional
        PNG resolution; None: ``STYLE["savefig.dpi"]`` (150). Not used for SVG.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        On any other suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".svg":
        kw = {"format": "svg", "metadata": SVG_METADATA}
    elif suffix == ".png":
        kw = {"format": "png", "metadata": PNG_METADATA, "dpi": dpi or STYLE["savefig.dpi"]}
    else:
        raise ValueError(f"{path}: unsupported figure format {suffix!r} (svg, png)")
    with matplotlib.rc_context(STYLE):
        atomic_write(path, lambda tmp: _savefig(fig, tmp, kw))


def _drawing_disabled(renderer) -> bool:
    """Whether ``renderer`` is inside matplotlib's ``RendererBase._draw_disabled()`` (its draw
    methods and open/close_group replaced by no-ops on the instance; for the SVG backend's
    ``MixedModeRenderer``, on the renderer it wraps)."""
    for r in (renderer, renderer.__dict__.get("_renderer")):
        d = getattr(r, "__dict__", {})
        if "draw_path" in d and "draw_text" in d and "open_group" in d:
            return True
    return False


def _savefig(fig: Figure, target, kw: dict) -> None:
    """``fig.savefig(target, **kw)``, the same bytes, without its invisible drawing of every artist.

    With a layout engine (``_figure``: constrained), ``print_figure`` first draws the whole
    figure with drawing disabled, only to run the layout, then draws it for real. Here that first
    pass does what it is for and no more: the aspect of every Axes (``_get_draw_artists``), the
    layout, the aspect again on the new positions (as each ``Axes.draw`` would) -- a third less
    work per save. Any other draw goes to ``Figure.draw``. ``tests/test_plots.py`` checks the
    bytes against plain ``savefig`` for every figure kind.
    """

    def draw(renderer):
        if not _drawing_disabled(renderer):
            return Figure.draw(fig, renderer)
        fig._get_draw_artists(renderer)
        engine = fig.get_layout_engine()
        if fig.axes and engine is not None:
            try:
                engine.execute(fig)
            except ValueError:  # as Figure.draw
                pass
        fig._get_draw_artists(renderer)

    fig.draw = draw
    try:
        fig.savefig(target, **kw)
    finally:
        del fig.draw


def save_all(fig: Figure, paths: Sequence[str | Path], dpi: int | None = None) -> None:
    """Write ``fig`` to each of ``paths`` with :func:`save` (e.g. the SVG and the PNG).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    paths : sequence of str or Path
        Output files, ``.svg`` or ``.png``.
    dpi : int, optional
        PNG resolution, as :func:`save`.

    Returns
    -------
    None
    """
    for p in paths:
        save(fig, p, dpi)


# ---------------------------------------------------------------------------------------------
# PCA (§8)


@_styled
def cumulative_variance(evr: np.ndarray, title: str = "Global PCA") -> Figure:
    """Cumulative explained variance ratio of the components (line with markers, values printed).

    Each component's own ratio is drawn as a grey bar behind the cumulative line.

    Parameters
    ----------
    evr : (k,) array_like
        Explained variance ratio of each component, in component order.
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    evr = np.asarray(evr, dtype=np.float64)
    cum = np.cumsum(evr)
    k = np.arange(1, evr.size + 1)
    fig = _figure(4.2, 3.0)
    ax = fig.add_subplot()
    ax.bar(k, evr, color="0.75", label="per component")
    ax.plot(k, cum, "o-", color="C3", label="cumulative")
    for x, y in zip(k, cum):
        ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
    ax.set_xticks(k, [f"{i}" for i in k])
    ax.set_xlabel("number of components")
    ax.set_ylabel("explained variance ratio")
    ax.set_ylim(0, 1.1)
    ax.set_title(title)
    ax.legend(loc="center right", frameon=False, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


@_styled
def pixel_covariance(cov: np.ndarray, title: str = "Covariance of the scaled filters") -> Figure:
    """The d x d pixel covariance (``seismic``, symmetric around 0; values printed for 3x3 filters).

    Parameters
    ----------
    cov : (d, d) array_like
        Covariance of the scaled filters, pixels w0..w{d-1} in row-major order (e.g.
        :attr:`filterdb.pca.PCA.covariance`). The colour scale is ``[-max |cov|, max |cov|]``.
        Larger kernels (d > 9): no values printed, pixel ticks every ``k`` pixels (one per row
        of the kernel).
    title : str
        Axes title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    cov = np.asarray(cov, dtype=np.float64)
    shape = FilterShape.of_width(cov.shape[0])
    fig = _figure(4.4, 3.8)
    ax = fig.add_subplot()
    m = float(np.abs(cov).max()) or 1.0
    im = ax.imshow(cov, cmap="seismic", vmin=-m, vmax=m)
    small = shape.size <= STUDY.size
    if small:
        for (r, c), v in np.ndenumerate(cov):
            colour = "white" if abs(v) > 0.6 * m else "black"
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6, color=colour)
    ticks = range(0, shape.size, 1 if small else shape.side)
    ax.set_xticks(ticks, [shape.pixels[t] for t in ticks])
    ax.set_yticks(ticks, [shape.pixels[t] for t in ticks])
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def _eigen_row(axes, components: np.ndarray, evr: np.ndarray):
    im = None
    side = FilterShape.of_width(np.asarray(components).shape[-1]).side
    for k, ax in enumerate(axes):
        im = ax.imshow(np.asarray(components[k]).reshape(side, side), cmap="seismic", vmin=-1, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"c{k}  {evr[k]:.1%}", fontsize=7, pad=2)
    return im


@_styled
def eigenimages(components: np.ndarray, evr: np.ndarray, title: str = "Global PCA basis") -> Figure:
    """The d components as k x k eigenimages, each titled with its explained variance ratio: one
    row of 9 for 3x3 filters, ``k`` rows of ``k`` for larger kernels.

    Parameters
    ----------
    components : (d, d) array_like
        Row k = component k in pixel order w0..w{d-1} (reshaped to k x k); colour scale fixed at
        [-1, 1].
    evr : (d,) array_like
        Explained variance ratio of each component (printed as a percentage).
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    shape = FilterShape.of_width(np.asarray(components).shape[-1])
    if shape == STUDY:
        fig = _figure(7.6, 1.45)
        axes = list(fig.subplots(1, shape.size))
    else:
        fig = _figure(1.1 * shape.side + 0.8, 1.0 * shape.side + 0.4)
        axes = list(fig.subplots(shape.side, shape.side).ravel())
    im = _eigen_row(axes, components, evr)
    fig.colorbar(im, ax=axes, shrink=0.9, pad=0.01, ticks=[-1, 0, 1])
    fig.suptitle(title)
    return fig


#: Components per group drawn by :func:`eigenimage_grid` (all 9 of a 3x3 filter; the leading 9
#: of a larger kernel's, so a row stays readable).
MOSAIC_COMPONENTS = STUDY.size


@_styled
def eigenimage_grid(
    groups: Sequence[str],
    components: Sequence[np.ndarray | None],
    evr: Sequence[np.ndarray | None],
    n_filters: Sequence[int] | None = None,
    title: str = "",
) -> Figure:
    """Subset-PCA eigenimages: one row per group (``components[g]`` (d, d) or None when the group
    has too few filters for a PCA), one column per component, each titled with its ratio. For
    kernels larger than 3x3 the leading :data:`MOSAIC_COMPONENTS` components are drawn (the
    title says so).

    Drawn as one mosaic image in a single Axes (k x k blocks separated by transparent cells, framed
    by one line artist): a grid of G x 9 Axes took seconds to lay out and save for ~20 groups.

    Parameters
    ----------
    groups : sequence of str
        Group names, one row each (first on top).
    components : sequence of (d, d) array_like or None
        Subset-PCA components of each group (row k = component k); None draws "too few filters".
    evr : sequence of (d,) array_like or None
        Explained variance ratio of each group (ignored where ``components[g]`` is None).
    n_filters : sequence of int, optional
        Filter count of each group, added to the row labels.
    title : str
        Figure title (none if empty).

    Returns
    -------
    matplotlib.figure.Figure
    """
    G = max(len(groups), 1)
    widths = {np.asarray(c).shape[-1] for c in components if c is not None}
    shape = FilterShape.of_width(widths.pop()) if len(widths) == 1 else STUDY
    n = min(shape.size, MOSAIC_COMPONENTS)  # components drawn per group
    t = shape.side
    sx, sy = t + 1, t + 2  # block pitch in cells: k + 1 blank column, k + 2 blank rows (room for titles)
    fig = _figure(7.8, 0.35 + 0.82 * G * (t / STUDY.side))
    ax = fig.add_subplot()
    img = np.full((G * sy - 2, n * sx - 1), np.nan)
    frame_x, frame_y = [], []
    mid = (t - 1) / 2
    for g in range(len(groups)):
        top = g * sy
        if components[g] is None:
            ax.text(mid, top + mid, "too few\nfilters", fontsize=6, ha="center", va="center")
            continue
        for k in range(n):
            left = k * sx
            img[top : top + t, left : left + t] = np.asarray(components[g][k]).reshape(t, t)
            ax.text(left + mid, top - 0.6, f"c{k}  {evr[g][k]:.1%}", fontsize=7, ha="center", va="bottom")
            x0, x1, y0, y1 = left - 0.5, left + t - 0.5, top - 0.5, top + t - 0.5
            frame_x += [x0, x1, x1, x0, x0, np.nan]
            frame_y += [y0, y0, y1, y1, y0, np.nan]
    cmap = matplotlib.colormaps["seismic"].with_extremes(bad=(0, 0, 0, 0))
    im = ax.imshow(img, cmap=cmap, vmin=-1, vmax=1, aspect="equal")
    ax.plot(frame_x, frame_y, color="black", linewidth=0.8)
    labels = [str(g) if n_filters is None else f"{g}\n(n={int(n_filters[i]):,})" for i, g in enumerate(groups)]
    ax.set_yticks([g * sy + mid for g in range(len(groups))], labels, fontsize=7)
    ax.tick_params(length=0)
    ax.set_xticks([])
    ax.set_xlim(-0.6, n * sx - 1.4)
    ax.set_ylim(G * sy - 2.4, -1.6)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if any(c is not None for c in components):
        fig.colorbar(im, ax=ax, shrink=min(0.9, 4.0 / G), pad=0.01, ticks=[-1, 0, 1])
    if n < shape.size:
        title = (title + " " if title else "") + f"(leading {n} of {shape.size} components)"
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------
# Ridge plots (§6)


@_styled
def ridge_plot(
    grid: np.ndarray,
    density: np.ndarray,
    groups: Sequence[str],
    xlim: tuple[float, float],
    overlap: float | None = None,
    scale: str | None = None,
    title: str = "",
    points: int = 512,
    rasterized: bool = True,
) -> Figure:
    """Ridge plot: rows = groups, columns = coefficients c0..c{C-1}, every panel on ``xlim``.

    ``density`` is ``(G, C, X)`` on ``grid`` (X,). Curves are scaled to a height of ``1 + overlap``
    row units, by the largest value in their column (``scale="column"``: heights comparable between
    groups) or by their own maximum (``scale="panel"``: shapes only), so neighbouring rows overlap.
    Row labels are on the left of the first column; the figure grows with the number of groups.
    Curves are drawn at ``points`` equidistant x values (linear interpolation of ``density``) and,
    with ``rasterized``, embedded as an image in vector output (text stays vector; keeps SVGs of
    many groups small).

    Parameters
    ----------
    grid : (X,) array_like
        Increasing x values of the densities (e.g. from :func:`filterdb.kde.group_kdes`).
    density : (G, C, X) array_like
        Density of each group and coefficient on ``grid``.
    groups : sequence of str
        Group names, in row order (first on top).
    xlim : (float, float)
        x range of every panel (coefficient units).
    overlap : float, optional
        Extra curve height in row units above 1; None: the config default of
        ``figures.ridge_overlap`` (the schema's).
    scale : {"column", "panel"}, optional
        Normalisation of the curves (see above); None: the config default of
        ``figures.ridge_scale``.
    title : str
        Figure title (none if empty).
    points : int
        Number of x values at which the curves are drawn.
    rasterized : bool
        Rasterise the filled curves in vector output.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``scale`` is not ``"column"`` or ``"panel"``.
    """
    overlap = float(schema_default("figures.ridge_overlap")) if overlap is None else overlap
    scale = str(schema_default("figures.ridge_scale")) if scale is None else scale
    if scale not in ("column", "panel"):
        raise ValueError(f"scale must be 'column' or 'panel', got {scale!r}")
    dens = np.asarray(density, dtype=np.float64)
    G, C = dens.shape[0], dens.shape[1]
    row_h = 0.32 if G > 12 else 0.42
    fig = _figure(1.25 * C + 1.6, 0.8 + row_h * max(G, 1))
    axes = fig.subplots(1, C, sharey=True, squeeze=False)[0]
    x = np.linspace(xlim[0], xlim[1], points)  # curves are smooth (bw >> grid step): keep SVGs small
    height = 1.0 + overlap
    colors = matplotlib.colormaps["viridis"](np.linspace(0.1, 0.9, max(G, 1)))
    for i, ax in enumerate(axes):
        col_max = dens[:, i, :].max() if dens.size else 0.0
        for g in range(G):
            y = np.interp(x, grid, dens[g, i])
            m = (y.max() if scale == "panel" else col_max) if y.size else 0.0
            yy = y / m * height if m > 0 else np.zeros_like(y)
            base = G - 1 - g  # first group on top
            ax.fill_between(
                x,
                base,
                base + yy,
                facecolor=colors[g],
                alpha=0.85,
                edgecolor="black",
                lw=0.5,
                zorder=g,
                rasterized=rasterized,
            )
        ax.set_xlim(*xlim)
        ax.set_ylim(-0.1, G - 1 + height + 0.1)
        ax.set_title(f"c{i}")
        ax.tick_params(axis="x", labelsize=6)
        ax.tick_params(axis="y", length=0)
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
    axes[0].set_yticks(np.arange(G - 1, -1, -1) + 0.25, [str(g) for g in groups], fontsize=8 if G <= 16 else 6)
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------
# Drift (§4, §8)


@_styled
def drift_heatmap(
    d: np.ndarray, groups: Sequence[str], annotate: bool | None = None, title: str = "", vmax: float | None = None
) -> Figure:
    """Drift matrix as a heatmap (colorcet ``fire``), rows/columns in the given order; values
    printed when ``annotate`` (default: at most ``ANNOTATE_MAX`` groups).

    Parameters
    ----------
    d : (G, G) array_like
        Drift matrix (e.g. :func:`filterdb.divergence.drift_matrix`).
    groups : sequence of str
        Labels of the rows and columns, in the order of ``d``.
    annotate : bool, optional
        Print the values in the cells; None: when ``G <= ANNOTATE_MAX``.
    title : str
        Axes title (none if empty).
    vmax : float, optional
        Upper end of the colour scale (lower end 0); None: ``d.max()`` (1.0 if that is not > 0).

    Returns
    -------
    matplotlib.figure.Figure
    """
    d = np.asarray(d, dtype=np.float64)
    G = d.shape[0]
    if annotate is None:
        annotate = G <= ANNOTATE_MAX
    size = min(max(3.6, 0.42 * G + 2.2), 14.0)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    vmax = vmax if vmax is not None else (float(d.max()) if d.size and d.max() > 0 else 1.0)
    im = ax.imshow(d, cmap=_fire(), vmin=0, vmax=vmax)
    labels = [str(g) for g in groups]
    fs = 8 if G <= 16 else 6
    ax.set_xticks(range(G), labels, rotation=90, fontsize=fs)
    ax.set_yticks(range(G), labels, fontsize=fs)
    if annotate:
        for (r, c), v in np.ndenumerate(d):
            ax.text(
                c,
                r,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7 if G <= 8 else 6,
                color="black" if v > 0.55 * vmax else "white",
            )
    fig.colorbar(im, ax=ax, shrink=0.8, label="drift D")
    if title:
        ax.set_title(title)
    return fig


#: Offset (x units) of an axis's interval error bar from the centre of its box (boxes are 0.6 wide).
INTERVAL_OFFSET = 0.4


@_styled
def drift_boxplot(
    values: Mapping[str, np.ndarray],
    title: str = "Drift D",
    intervals: Mapping[str, tuple[float, float]] | None = None,
    interval_label: str | None = None,
) -> Figure:
    """One box per axis of its drift matrix's upper-triangle (k=1) values; means shown as
    triangles. Axes with no pair (fewer than 2 groups) get an empty slot.

    Parameters
    ----------
    values : mapping of str to array_like
        Axis name → 1-D drift values of its group pairs (e.g. ``d[np.triu_indices(G, 1)]``), in
        display order.
    title : str
        Axes title.
    intervals : mapping of str to (float, float), optional
        Axis name → interval ``(lo, hi)`` (e.g. the bootstrap percentile interval of the axis's mean
        D, :attr:`filterdb.uncertainty.AxisUncertainty.mean_ci`), drawn as an error bar from ``lo``
        to ``hi`` at :data:`INTERVAL_OFFSET` right of the axis's box. Axes not in it, or with a
        non-finite bound, get none. ``None`` (or no finite interval): the study's figure.
    interval_label : str, optional
        Legend entry of the error bars (no legend without it).

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = list(values)
    data = [np.asarray(values[n], dtype=np.float64) for n in names]
    fig = _figure(max(4.0, 0.8 * len(names) + 1.5), 3.4)
    ax = fig.add_subplot()
    pos = [k + 1 for k, v in enumerate(data) if v.size]
    ax.boxplot(
        [v for v in data if v.size],
        positions=pos,
        showmeans=True,
        widths=0.6,
        meanprops={"marker": "^", "markerfacecolor": "C3", "markeredgecolor": "C3"},
        medianprops={"color": "black"},
        flierprops={"markersize": 3},
    )
    bars = [(k + 1, *intervals[n]) for k, n in enumerate(names) if intervals and n in intervals]
    bars = np.array([b for b in bars if np.all(np.isfinite(b))], dtype=np.float64).reshape(-1, 3)
    if bars.size:
        x, lo, hi = bars.T
        ax.errorbar(
            x + INTERVAL_OFFSET,
            (lo + hi) / 2,
            yerr=(hi - lo) / 2,
            fmt="none",
            ecolor="C3",
            elinewidth=1.2,
            capsize=3,
            label=interval_label,
        )
        if interval_label:
            ax.legend(loc="best", fontsize="small", frameon=False)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    ax.set_xlim(0.4, len(names) + 0.6)
    ax.set_ylabel("drift D")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return fig


def combined_title(title: str | None = None, kernel: str = STUDY.label) -> str:
    """The headline figure's title: ``title`` (None: the config default of
    ``figures.combined.title``, the study's "Distribution shifts of trained {kernel} convolution
    filters") with ``{kernel}`` replaced by the kernel size (``"3x3"``).

    Parameters
    ----------
    title : str, optional
    kernel : str
        ``"{k}x{k}"``.

    Returns
    -------
    str

    Examples
    --------
    >>> combined_title("Shifts of {kernel} filters", "5x5")
    'Shifts of 5x5 filters'
    """
    title = str(schema_default("figures.combined.title")) if title is None else title
    return title.replace("{kernel}", kernel)


def __getattr__(name: str):
    # COMBINED_TITLE: the study's title (the schema's default, for 3x3 filters), read when asked for
    if name == "COMBINED_TITLE":
        return combined_title()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def count_labels(groups: Sequence[str], n_models: Mapping[str, int] | None) -> list[str]:
    """Group labels with their model counts, as the study's v1.0 figure writes them:
    ``Classification (555)``; the plain labels when ``n_models`` is None.

    Parameters
    ----------
    groups : sequence of str
        Group names.
    n_models : mapping of str to int, optional
        Group name → number of models (``groups/{axis}.tsv`` column ``n_models``).

    Returns
    -------
    list of str

    Raises
    ------
    KeyError
        When a group has no count.
    """
    if n_models is None:
        return [str(g) for g in groups]
    return [f"{g} ({int(n_models[str(g)])})" for g in groups]


@_styled
def drift_combined(panels: Sequence[tuple[str, Sequence[str], np.ndarray]], title: str | None = None) -> Figure:
    """The study's headline figure: the drift heatmaps of several axes side by side, on one shared
    colour scale (colorcet ``fire`` from 0 to the largest value of all panels) with one colour bar.

    Parameters
    ----------
    panels : sequence of (str, sequence of str, (G, G) array_like)
        Per panel, in display order: its title, the row/column labels (in the order of the matrix,
        e.g. from :func:`count_labels`) and the drift matrix.
    title : str, optional
        Figure title (none if empty); None: :func:`combined_title` (the study's, for 3x3 filters).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per panel (in order), then the colour bar's axes.
    """
    mats = [np.asarray(d, dtype=np.float64) for _, _, d in panels]
    top = max((float(d.max()) for d in mats if d.size), default=0.0)
    vmax = top if top > 0 else 1.0
    sizes = [d.shape[0] for d in mats]
    side = min(max(3.2, 0.22 * max(sizes, default=1) + 1.8), 7.0)
    fig = _figure(side * len(panels) + 1.2, side + 1.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    im = None
    for ax, (name, labels, _), d in zip(axes, panels, mats):
        im = ax.imshow(d, cmap=_fire(), vmin=0, vmax=vmax)
        G = d.shape[0]
        fs = 8 if G <= 16 else 6 if G <= 30 else 4
        ax.set_xticks(range(G), [str(g) for g in labels], rotation=90, fontsize=fs)
        ax.set_yticks(range(G), [str(g) for g in labels], fontsize=fs)
        ax.set_title(name)
    if im is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.8, label="drift D")
    title = combined_title() if title is None else title
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


# ---------------------------------------------------------------------------------------------
# Density (§7)


@_styled
def density_image(
    counts: np.ndarray, edges: np.ndarray, pair: tuple[int, int], vmin: float = DENSITY_VMIN, title: str = ""
) -> Figure:
    """2-D density of a coefficient pair: ``counts`` (bins, bins) with the first index the first
    coefficient (fast_histogram convention) over ``edges`` on both coefficients, divided by its
    maximum, on a log colour scale ``[vmin, 1]`` (colorcet ``fire``); empty cells (and anything
    below ``vmin``) in the lowest colour.

    Parameters
    ----------
    counts : (bins, bins) array_like
        2-D histogram, ``counts[a, b]`` = filters with the first coefficient in bin a and the second
        in bin b.
    edges : (bins + 1,) array_like
        Bin edges, shared by both coefficients (coefficient units).
    pair : (int, int)
        Indices of the two coefficients (axis labels ``c{i}``).
    vmin : float
        Lowest relative density shown (default :data:`DENSITY_VMIN`, 1e-5).
    title : str
        Axes title; empty: ``"Density of (ci, cj)"``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    c = np.asarray(counts, dtype=np.float64)
    m = c.max()
    rel = c / m if m > 0 else c
    rel = np.clip(rel, vmin, 1.0)  # empty cells → vmin → lowest colour
    e = np.asarray(edges, dtype=np.float64)
    fig = _figure(4.6, 3.9)
    ax = fig.add_subplot()
    fire = _fire()
    cmap = fire.with_extremes(under=fire(0.0), bad=fire(0.0))
    im = ax.imshow(
        rel.T,
        origin="lower",
        extent=(e[0], e[-1], e[0], e[-1]),
        cmap=cmap,
        norm=LogNorm(vmin=vmin, vmax=1.0),
        interpolation="nearest",
        aspect="equal",
    )
    ax.set_xlabel(f"c{pair[0]}")
    ax.set_ylabel(f"c{pair[1]}")
    fig.colorbar(im, ax=ax, shrink=0.85, label="count / max count")
    ax.set_title(title or f"Density of (c{pair[0]}, c{pair[1]})")
    return fig


# ---------------------------------------------------------------------------------------------
# Filter quality (docs/method.md §9)

#: (column of the quality layer table, panel title) of the quality figures, left to right.
QUALITY_FIGURE_METRICS = [
    ("sparsity", "sparsity"),
    ("variance_entropy_norm", "variance entropy (norm.)"),
    ("variance_entropy_clean", "variance entropy (clean)"),
    ("orthogonality", "orthogonality"),
]


def _threshold_lines(line, metric: str, t: Mapping) -> None:
    """Dashed lines at the flag thresholds of ``metric`` (``line`` = ``ax.axhline`` or ``ax.axvline``)."""
    if metric == "sparsity":
        line(t["sparse"], color="C3", lw=0.8, ls="--")
    if metric == "variance_entropy_norm":
        line(t["low_diversity"], color="C3", lw=0.8, ls="--")
        line(t["random_like"], color="C1", lw=0.8, ls="--")


def _horizontal() -> dict:
    """Horizontal boxes: ``orientation`` from matplotlib 3.10, ``vert`` before."""
    major, minor = (int(v) for v in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


@_styled
def quality_depth_figure(layer_table, bins: int | None = None, thresholds: Mapping | None = None) -> Figure:
    """Each quality metric against the depth bin.

    Per depth bin: the filter-weighted mean (line) and the layers' 25-75 % range (band); dashed
    threshold lines on the sparsity and entropy panels.

    Parameters
    ----------
    layer_table : pandas.DataFrame
        :func:`filterdb.quality_tables.layer_quality_table` (``conv_depth_norm``, ``n_filters`` and
        the metric columns).
    bins : int, optional
        Depth bins (``conv_depth_norm`` cut into equal bins; default as
        :func:`filterdb.quality_tables.depth_labels`).
    thresholds : Mapping or None
        See :func:`filterdb.quality_tables.thresholds_with_defaults`.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per metric of :data:`QUALITY_FIGURE_METRICS`; write it with :func:`save_all`.
    """
    from .quality_tables import depth_labels, thresholds_with_defaults, weighted_mean

    t = thresholds_with_defaults(thresholds)
    lab, order = depth_labels(layer_table, bins)
    tab = layer_table.assign(_depth=lab.to_numpy())
    fig = _figure(10, 2.8)
    axs = fig.subplots(1, len(QUALITY_FIGURE_METRICS))
    x = np.arange(len(order))
    for ax, (m, title) in zip(axs, QUALITY_FIGURE_METRICS):
        mean, lo, hi = [], [], []
        for g in order:
            sub = tab[tab["_depth"] == g]
            v = sub[m].to_numpy(np.float64)
            ok = ~np.isnan(v)
            mean.append(weighted_mean(sub[m], sub["n_filters"]) if len(sub) else math.nan)
            lo.append(np.percentile(v[ok], 25) if ok.any() else math.nan)
            hi.append(np.percentile(v[ok], 75) if ok.any() else math.nan)
        ax.fill_between(x, lo, hi, color="C0", alpha=0.25, linewidth=0)
        ax.plot(x, mean, "o-", color="C0", markersize=3)
        _threshold_lines(ax.axhline, m, t)
        ax.set_title(title)
        ax.set_xticks(x, [str(k) for k in range(len(order))])
        ax.set_xlabel(f"depth bin (of {len(order)})")
    return fig


@_styled
def quality_group_figure(
    layer_table, column: str, order: Sequence | None = None, thresholds: Mapping | None = None, max_groups: int = 40
) -> Figure:
    """Each quality metric per group of one label column.

    Per group: box plot of the layers' metric values (no fliers) and the filter-weighted mean as a
    diamond; dashed threshold lines on the sparsity and entropy panels.

    Parameters
    ----------
    layer_table : pandas.DataFrame
        :func:`filterdb.quality_tables.layer_quality_table` with the label column ``column``.
    column : str
        The label column (an axis name).
    order : sequence of str, optional
        Row order (first on top); else sorted by label.
    thresholds : Mapping or None
        See :func:`filterdb.quality_tables.thresholds_with_defaults`.
    max_groups : int
        At most this many groups are drawn (the largest by filter count, kept in order).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per metric of :data:`QUALITY_FIGURE_METRICS` (shared group axis); the height grows
        with the number of groups.
    """
    from .quality_tables import thresholds_with_defaults, weighted_mean

    t = thresholds_with_defaults(thresholds)
    tab = layer_table.dropna(subset=[column])
    groups = list(order) if order is not None else sorted(tab[column].astype(str).unique())
    groups = [g for g in groups if (tab[column] == g).any()]
    if len(groups) > max_groups:
        size = tab.groupby(column)["n_filters"].sum()
        keep = set(size.sort_values(ascending=False, kind="stable").index[:max_groups])
        groups = [g for g in groups if g in keep]
    height = max(2.5, 0.22 * len(groups) + 1.0)
    fig = _figure(10, height)
    axs = fig.subplots(1, len(QUALITY_FIGURE_METRICS), sharey=True)
    y = np.arange(len(groups))
    for ax, (m, title) in zip(axs, QUALITY_FIGURE_METRICS):
        data, means = [], []
        for g in groups:
            sub = tab[tab[column] == g]
            v = sub[m].to_numpy(np.float64)
            data.append(v[~np.isnan(v)])
            means.append(weighted_mean(sub[m], sub["n_filters"]))
        nonempty = [k for k, d in enumerate(data) if d.size]
        if nonempty:
            ax.boxplot(
                [data[k] for k in nonempty],
                positions=y[nonempty],
                widths=0.6,
                showfliers=False,
                manage_ticks=False,
                **_horizontal(),
            )
        ax.plot(means, y, "D", color="C3", markersize=3)
        _threshold_lines(ax.axvline, m, t)
        ax.set_title(title)
    axs[0].set_yticks(y, [str(g) for g in groups])
    axs[0].invert_yaxis()
    return fig


# ---------------------------------------------------------------------------------------------
# Uncertainty of drift (filterdb.uncertainty)


def significance_heatmap(r, title: str = ""):
    """The drift heatmap of :func:`drift_heatmap` with the pairs that are NOT
    significant (corrected permutation p >= alpha) hatched.

    Parameters
    ----------
    r : filterdb.uncertainty.AxisUncertainty
        From :func:`filterdb.uncertainty.axis_uncertainty` (permutations > 0).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .uncertainty import AXIS_ROW

    names = list(r.groups)
    g = len(names)
    pos = {n: k for k, n in enumerate(names)}
    d = np.zeros((g, g))
    sig = np.ones((g, g), bool)
    pairs = r.null[r.null["group_a"] != AXIS_ROW]
    for row in pairs.itertuples(index=False):
        a, b = pos[row.group_a], pos[row.group_b]
        d[a, b] = d[b, a] = row.D
        sig[a, b] = sig[b, a] = bool(row.significant)
    fig = drift_heatmap(d, names)
    ax = fig.axes[0]
    from matplotlib.patches import Rectangle

    rr, cc = np.nonzero(~sig)
    for r_, c_ in zip(rr, cc):
        ax.add_patch(Rectangle((c_ - 0.5, r_ - 0.5), 1, 1, fill=False, hatch="///", edgecolor="#9a9a9a", linewidth=0))
    corr = str(r.null["correction"].iloc[0]) if len(r.null) else ""
    ax.set_title(
        (title + "\n" if title else "") + f"hatched: not significant ({corr}-corrected permutation test)",
        fontsize=8 if title else None,
    )
    return fig


# ---------------------------------------------------------------------------------------------
# Filter grids (docs/method.md §8; the filters are chosen and read by filterdb.grids)

#: Cells from one 3x3 tile's first row (column) to the next one's: 3 of the tile and 1 blank
#: (``k + 1`` for k x k tiles).
TILE_PITCH = STUDY.side + 1


def tile_block(img: np.ndarray, g: int, j: int, side: int = STUDY.side) -> np.ndarray:
    """Tile ``j`` of row ``g`` of a :func:`filter_grid` mosaic (its ``AxesImage`` array): the
    ``side x side`` block at rows ``g * (side + 1)``, columns ``j * (side + 1)``."""
    p = side + 1
    r, c = g * p, j * p
    return img[r : r + side, c : c + side]


@_styled
def filter_grid(
    tiles: Sequence[np.ndarray], labels: Sequence[str], columns: int | None = None, title: str = ""
) -> Figure:
    """Example filters as k x k tiles: one row per group, ``seismic`` on [-1, 1], no interpolation.

    Drawn as one mosaic image in a single Axes (:func:`tile_block` gives tile ``j`` of row ``g``;
    the cells between tiles are transparent) with each tile framed, so that a tile of near-zero
    values stays visible on the white page; a colour bar on the right.

    Parameters
    ----------
    tiles : sequence of (k_g, d) array_like
        Per row the peak-scaled filters (row-major k x k, ``d = k²``), e.g.
        :attr:`filterdb.grids.Grid.tiles`;
        rows may hold different numbers of tiles (a row of none is marked "no filters").
    labels : sequence of str
        Row labels, one per entry of ``tiles`` (first on top), e.g. ``natural (557)``.
    columns : int, optional
        Tiles per row the layout has room for (default: the longest row).
    title : str
        Figure title (none if empty).

    Returns
    -------
    matplotlib.figure.Figure
    """
    widths = {np.asarray(t).shape[-1] for t in tiles if np.asarray(t).size}
    shape = FilterShape.of_width(widths.pop()) if len(widths) == 1 else STUDY
    t = shape.side
    rows = [np.asarray(r, dtype=np.float64).reshape(-1, shape.size) for r in tiles]
    G = max(len(rows), 1)
    K = max([columns or 0] + [r.shape[0] for r in rows] + [1])
    p = t + 1
    img = np.full((G * p - (p - t), K * p - (p - t)), np.nan)
    frame_x, frame_y = [], []
    grow = t / STUDY.side  # a larger tile takes as many more inches
    fig = _figure(min(1.9 + 0.3 * K * grow, 14.0), 0.75 + 0.3 * G * grow)
    ax = fig.add_subplot()
    mid = (t - 1) / 2
    for g, r in enumerate(rows):
        if not r.shape[0]:
            ax.text(mid, g * p + mid, "no filters", fontsize=6, ha="left", va="center")
        for j in range(r.shape[0]):
            tile_block(img, g, j, t)[...] = r[j].reshape(t, t)
            x0, y0 = j * p - 0.5, g * p - 0.5
            frame_x += [x0, x0 + t, x0 + t, x0, x0, np.nan]
            frame_y += [y0, y0, y0 + t, y0 + t, y0, np.nan]
    cmap = matplotlib.colormaps["seismic"].with_extremes(bad=(0, 0, 0, 0))
    im = ax.imshow(img, cmap=cmap, vmin=-1, vmax=1, interpolation="none", aspect="equal")
    if frame_x:
        ax.plot(frame_x, frame_y, color="0.55", linewidth=0.4)
    ax.set_yticks([g * p + mid for g in range(len(rows))], [str(s) for s in labels], fontsize=7)
    ax.tick_params(length=0)
    ax.set_xticks([])
    ax.set_xlim(-0.7, img.shape[1] - 0.3)
    ax.set_ylim(img.shape[0] - 0.3, -0.7)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.colorbar(im, ax=ax, shrink=min(0.9, 4.0 / G), pad=0.01, ticks=[-1, 0, 1], label="w / max |w|")
    if title:
        fig.suptitle(title)
    return fig


# ---- Model to model: the zoo's structure (filterdb.zoo)

#: Model heatmaps with at most this many models name every row and column; larger ones name none.
MODEL_TICKS_MAX = 40
#: Embedding scatters with at most this many models write each model's name beside its point.
MODEL_NAMES_MAX = 30
#: Groups named in an embedding's legend (the largest; the rest are "other").
EMBEDDING_LEGEND_MAX = 10
#: Model heatmaps draw at most this many cells per side (larger matrices: means of k x k blocks).
MODEL_CELLS_MAX = 1000


def block_means(d: np.ndarray, cells: int) -> np.ndarray:
    """``d`` (M, M) as means of ``k x k`` blocks, ``k = ceil(M / cells)`` (the last block of a row
    or column may be smaller); ``d`` itself when ``M <= cells``."""
    d = np.asarray(d, dtype=np.float64)
    m = d.shape[0]
    k = -(-m // cells) if m else 1
    if k <= 1:
        return d
    starts = np.arange(0, m, k)
    size = np.diff(np.r_[starts, m]).astype(np.float64)
    rows = np.add.reduceat(d, starts, axis=0)
    return np.add.reduceat(rows, starts, axis=1) / size[:, None] / size[None, :]


@_styled
def models_heatmap(
    d: np.ndarray, names: Sequence[str], lines: np.ndarray, title: str = "", tick_max: int = MODEL_TICKS_MAX
) -> Figure:
    """The model x model drift matrix in the clustering's leaf order, the dendrogram on its left.

    Colorcet ``fire`` from 0 to the largest D. Rows and columns are named when there are at most
    ``tick_max`` models; a larger matrix shows none (the order is ``models/order.tsv``). Above
    ``MODEL_CELLS_MAX`` models, each drawn cell is the mean of a ``k x k`` block of models,
    ``k = ceil(M / MODEL_CELLS_MAX)`` (more rows than the figure has pixels would only be
    subsampled by the renderer; the means also keep its memory small).

    Parameters
    ----------
    d : (M, M) array_like
        Drift matrix, rows and columns already in leaf order.
    names : sequence of M str
        The models in that order.
    lines : (M - 1, 4, 2) array_like
        The dendrogram's links as ``(position, height)`` points, leaves at positions 0..M-1 in the
        same order (:func:`filterdb.zoo.dendrogram_lines`).
    title : str
    tick_max : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.collections import LineCollection

    d = np.asarray(d, dtype=np.float64)
    m = d.shape[0]
    few = m <= tick_max
    side = min(max(3.2, 0.16 * m + 1.6), 8.0) if few else 8.0
    fig = _figure(side * 1.45 + (1.6 if few else 0.6), side + (1.4 if few else 0.5))
    ax_d, ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 4], "wspace": 0.0})
    vmax = float(d.max()) if d.size and d.max() > 0 else 1.0
    shown = block_means(d, MODEL_CELLS_MAX)
    extent = (-0.5, m - 0.5, m - 0.5, -0.5)  # model positions, as the dendrogram's leaves
    im = ax.imshow(shown, cmap=_fire(), vmin=0, vmax=vmax, aspect="auto", interpolation="nearest", extent=extent)
    seg = np.asarray(lines, dtype=np.float64)[..., ::-1]  # (height, position): root left, leaves right
    ax_d.add_collection(LineCollection(seg, colors="0.2", linewidths=0.6 if m <= 200 else 0.3))
    top = float(seg[..., 0].max()) if seg.size else 1.0
    ax_d.set_xlim(top * 1.03 if top > 0 else 1.0, 0)
    ax_d.set_ylim(m - 0.5, -0.5)
    ax_d.set_xlabel("merge height (D)")
    for s in ("top", "right", "left"):
        ax_d.spines[s].set_visible(False)
    ax_d.tick_params(left=False, labelleft=False)
    if few:
        labels = [str(n) for n in names]
        fs = 7 if m <= 20 else 5
        ax.set_xticks(range(m), labels, rotation=90, fontsize=fs)
        ax.set_yticks(range(m), labels, fontsize=fs)
        ax.tick_params(left=False, labelleft=False, right=True, labelright=True)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{m} models in the dendrogram's order (models/order.tsv)")
    fig.colorbar(im, ax=ax, shrink=0.7, pad=0.02, label="drift D")
    if title:
        fig.suptitle(title)
    return fig


@_styled
def models_embedding(
    coords: np.ndarray,
    labels: Sequence,
    names: Sequence[str] | None = None,
    title: str = "",
    axis_labels: tuple[str, str] = ("MDS 1", "MDS 2"),
    legend_max: int = EMBEDDING_LEGEND_MAX,
) -> Figure:
    """The 2-D embedding of the models, each point coloured by its model's group on one axis.

    The ``legend_max`` largest groups (most models; ties by name) get their own colour and legend
    entry with their model count; the other groups are drawn grey as "other", models without a single
    label light grey and hollow. With at most ``MODEL_NAMES_MAX`` models each point is named.

    Parameters
    ----------
    coords : (M, 2) array_like
    labels : sequence of M labels (None or NaN: no single label)
    names : sequence of M str, optional
        Model names, written beside the points of a small zoo.
    title : str
    axis_labels : (str, str)
    legend_max : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    xy = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    m = xy.shape[0]
    lab = np.array(["" if (v is None or (isinstance(v, float) and math.isnan(v))) else str(v) for v in labels], object)
    groups, counts = np.unique(lab[lab != ""], return_counts=True)
    ranked = sorted(zip(groups.tolist(), counts.tolist()), key=lambda gc: (-gc[1], gc[0]))
    shown = ranked[:legend_max]
    size = 30 if m <= 50 else 12 if m <= 1000 else 4
    fig = _figure(7.2, 4.8)
    ax = fig.add_subplot()
    none = lab == ""
    other = ~none & ~np.isin(lab, [g for g, _ in shown])
    if none.any():
        ax.scatter(
            xy[none, 0],
            xy[none, 1],
            s=size,
            facecolors="none",
            edgecolors="0.75",
            linewidths=0.6,
            label=f"no single label ({int(none.sum())})",
        )
    if other.any():
        n_other = len(ranked) - len(shown)
        ax.scatter(
            xy[other, 0],
            xy[other, 1],
            s=size,
            color="0.55",
            linewidths=0,
            label=f"other: {n_other} groups ({int(other.sum())})",
        )
    tab = matplotlib.colormaps["tab10"]
    colours = [tab(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)] + ["black"]  # tab10's grey is the "other" colour
    for k, (g, n) in enumerate(shown):
        sel = lab == g
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, color=colours[k % 10], linewidths=0, label=f"{g} ({n})")
    if names is not None and m <= MODEL_NAMES_MAX:
        for (x, y), n in zip(xy, names):
            ax.annotate(str(n), (x, y), xytext=(3, 2), textcoords="offset points", fontsize=5, color="0.3")
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_aspect("equal", adjustable="datalim")
    handles, texts = ax.get_legend_handles_labels()
    first = len(handles) - len(shown)  # drawn: no label, other, then the groups largest first
    order = list(range(first, len(handles))) + list(range(first))[::-1]  # legend: groups, other, no label
    ax.legend(
        [handles[k] for k in order],
        [texts[k] for k in order],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=7,
        frameon=False,
        borderaxespad=0,
    )
    if title:
        ax.set_title(title)
    return fig


@_styled
def models_note(text: str, title: str = "") -> Figure:
    """A figure holding only ``text`` (a model figure that has nothing to show, and says why)."""
    fig = _figure(6.0, 2.0)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    if title:
        ax.set_title(title)
    return fig


# ---- Model to model: which axis explains the distances (filterdb.distance_tests)


def _p_text(p: float) -> str:
    return "p n/a" if not np.isfinite(p) else f"p = {p:.2g}"


@_styled
def model_axes_ranking(
    axes: Sequence[str],
    r2: np.ndarray,
    r2_expected: np.ndarray,
    p: np.ndarray,
    nn: np.ndarray,
    nn_expected: np.ndarray,
    nn_p: np.ndarray,
    pseudo_f: np.ndarray | None = None,
    n_groups: Sequence[int] | None = None,
    title: str = "Which meta-parameter explains the model-to-model drift",
) -> Figure:
    """The axes ranked (first on top): bars of the PERMANOVA R² (left) and of the nearest-neighbour
    label agreement (right), each with its expectation under random labels marked (black tick) and
    its permutation p-value printed beside the bar (the pseudo-F too, when given).

    Parameters
    ----------
    axes : sequence of str
        Axis names in rank order (``models/axes.tsv`` row order).
    r2, r2_expected, p : (A,) array_like
        R², its chance level ``(G − 1)/(N − 1)`` and the p-value of the pseudo-F; NaN: not tested
        (no bar, "n/a").
    nn, nn_expected, nn_p : (A,) array_like
        Nearest-neighbour agreement, its expectation and p-value.
    pseudo_f : (A,) array_like, optional
        Printed as ``F = …`` before the p-value.
    n_groups : sequence of int, optional
        Written beside each axis name: ``task (5)``.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = [str(a) for a in axes]
    k = len(names)
    vals = [np.asarray(v, dtype=np.float64).reshape(k) for v in (r2, r2_expected, p, nn, nn_expected, nn_p)]
    f = np.asarray(pseudo_f, dtype=np.float64).reshape(k) if pseudo_f is not None else None
    labels = [f"{a} ({int(g)})" for a, g in zip(names, n_groups)] if n_groups is not None else names
    fig = _figure(8.0, 1.2 + 0.32 * max(k, 1))
    axs = fig.subplots(1, 2, sharey=True)
    y = np.arange(k)
    panels = [
        (axs[0], vals[0], vals[1], vals[2], "R² (share of the squared distances explained)", f),
        (axs[1], vals[3], vals[4], vals[5], "nearest-model label agreement", None),
    ]
    for ax, v, e, pv, xlabel, fv in panels:
        ok = np.isfinite(v)
        ax.barh(y[ok], v[ok], height=0.6, color="C0")
        ax.errorbar(
            np.where(np.isfinite(e), e, np.nan),
            y,
            yerr=0.38,
            fmt="none",
            ecolor="black",
            elinewidth=1.4,
            label="expected (random labels)",
        )
        for r in range(k):
            text = _p_text(pv[r])
            if fv is not None and np.isfinite(fv[r]):
                text = f"F = {fv[r]:.3g}, {text}"
            x = max(v[r] if ok[r] else 0.0, e[r] if np.isfinite(e[r]) else 0.0)
            ax.text(x + 0.02, r, text if ok[r] else "n/a", va="center", ha="left", fontsize=7)
        ax.set_xlim(0, 1.45)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    axs[0].set_yticks(y, labels)
    axs[0].set_ylim(max(k, 1) - 0.5, -0.5)
    if k:
        fig.legend(*axs[1].get_legend_handles_labels(), loc="outside lower center", fontsize="small", frameon=False)
    else:
        axs[0].text(0.5, 0, "no axis tested", ha="center", va="center")
    sub = "axes ranked by pseudo-F, largest first" + ("; number of groups in brackets" if n_groups is not None else "")
    fig.suptitle(f"{title}\n({sub})" if title else f"({sub})")
    return fig


# ---- Your own models against a reference (filterdb.compare)


@_styled
def training_trajectory(
    order: Sequence[float],
    to_first: np.ndarray,
    to_previous: np.ndarray,
    layers: Sequence[str],
    layer_to_first: np.ndarray,
    order_label: str = "checkpoint",
    title: str = "Training trajectory",
) -> Figure:
    """A sheet of checkpoints on its training trajectory (docs/method.md §12): left, the drift D of
    each checkpoint from the first and from the previous one (lines over the order values); right,
    the drift of each layer from its match in the first checkpoint (layers x checkpoints, colorcet
    ``fire`` from 0 to the largest value, grey where a checkpoint has no such layer or no match).

    Parameters
    ----------
    order : (K,) array_like
        The checkpoints' order values (e.g. epochs), ascending.
    to_first, to_previous : (K,) array_like
        D of each checkpoint from the first (0 at the first) and from the previous one (NaN at the first).
    layers : sequence of str
        Labels of the heatmap's rows.
    layer_to_first : (n_layers, K) array_like
        Per layer and checkpoint, D from the matching layer of the first checkpoint (NaN: none).
    order_label : str
        The order column's name (x axis).
    title : str
        Figure title (none if empty).

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = np.asarray(order, dtype=np.float64)
    grid = np.asarray(layer_to_first, dtype=np.float64).reshape(len(layers), x.size)
    fig = _figure(11.0, max(3.4, min(0.22 * len(layers) + 1.6, 12.0)))
    ax, hx = fig.subplots(1, 2, width_ratios=[1.0, 1.25])
    ax.plot(x, np.asarray(to_first, np.float64), "o-", color="C3", markersize=3, label="from the first checkpoint")
    ax.plot(x, np.asarray(to_previous, np.float64), "s--", color="C0", markersize=3, label="from the previous one")
    ax.set_xlabel(order_label)
    ax.set_ylabel("drift D")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", frameon=False)
    ax.set_title("whole model")
    cmap = _fire().with_extremes(bad="0.85")
    ok = grid[~np.isnan(grid)]
    vmax = float(ok.max()) if ok.size and ok.max() > 0 else 1.0
    im = hx.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=vmax, aspect="auto")
    step = max(1, int(math.ceil(x.size / 16)))
    ticks = list(range(0, x.size, step))
    hx.set_xticks(ticks, [f"{x[k]:g}" for k in ticks], rotation=90 if x.size > 8 else 0)
    fs = 8 if len(layers) <= 24 else 6
    rstep = max(1, int(math.ceil(len(layers) / 48)))
    rows = list(range(0, len(layers), rstep))
    hx.set_yticks(rows, [str(layers[r]) for r in rows], fontsize=fs)
    hx.set_xlabel(order_label)
    hx.set_ylabel("3x3 conv layer")
    hx.set_title("per layer, from the first checkpoint")
    fig.colorbar(im, ax=hx, shrink=0.8, label="drift D")
    if title:
        fig.suptitle(title)
    return fig


# ---- Quality: sensitivity of the flags


@_styled
def quality_sensitivity(table, title: str = "") -> Figure:
    """Share of layers and of models each quality flag marks over a sweep of its threshold.

    One panel per swept setting (the rows of :func:`filterdb.quality_tables.sensitivity_table`,
    in its order): the share of layers flagged (line with circles) and of models flagged (dashed
    line with squares) against the threshold; the configured value is a vertical dotted line with
    its two shares ringed. The eps panel has a logarithmic x axis.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`filterdb.quality_tables.sensitivity_table` (``flag``, ``parameter``, ``value``,
        ``configured``, ``share_layers_flagged``, ``share_models_flagged``).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    params = list(dict.fromkeys(table["parameter"]))
    fig = _figure(2.4 * max(1, len(params)), 2.9)
    axs = np.atleast_1d(fig.subplots(1, max(1, len(params)), sharey=True))
    for ax, p in zip(axs, params):
        sub = table[table["parameter"] == p]
        x = sub["value"].to_numpy(np.float64)
        yl = sub["share_layers_flagged"].to_numpy(np.float64)
        ym = sub["share_models_flagged"].to_numpy(np.float64)
        ax.plot(x, yl, "o-", color="C0", markersize=3, label="layers")
        ax.plot(x, ym, "s--", color="C3", markersize=3, label="models")
        conf = sub["configured"].to_numpy(bool)
        for xv, a, b in zip(x[conf], yl[conf], ym[conf]):
            ax.axvline(xv, color="0.4", lw=0.8, ls=":")
            ax.plot([xv, xv], [a, b], "o", mfc="none", mec="k", markersize=7)
        if p.endswith(".eps") and (x > 0).all():
            ax.set_xscale("log")
        flag = str(sub["flag"].iloc[0]).replace("_", " ")
        ax.set_title(f"{flag}\n{p.removeprefix('quality.')}")
        ax.set_xlabel("threshold")
        ax.set_ylim(-0.03, 1.03)
    axs[0].set_ylabel("share flagged")
    axs[0].legend(loc="best", fontsize=7, frameon=False)
    if title:
        fig.suptitle(title)
    return fig
