"""Filter quality and degeneration per conv layer and per model (analysis.md §9).

Every metric is computed on the UNSCALED weights ``W`` of one layer, an ``(n, 9)`` array (one row
per 3x3 kernel, rows of output channel ``o`` at ``o*in .. (o+1)*in - 1`` as extracted from a
``(out, in, 3, 3)`` weight). Arithmetic is float64 throughout.

Per layer
---------
``sparsity``                 share of sparse filters: a filter is sparse when all 9 ``|w| < t`` with
                             ``t = eps * max|W|`` (eps = 0.01). All-zero layer: 1.0 (every filter
                             is dead, though no ``|w| < 0`` holds). Empty layer: NaN.
``variance_entropy``         ``H = -sum_k p_k log10 p_k`` with ``p = v / sum(v)``, ``v = s^2/(n-1)``,
                             ``s`` the singular values of ``W - mean(W)`` (0 log 0 = 0). Range
                             ``[0, log10 9 = 0.954]``. ``n < 2``: NaN (no variance defined). Zero
                             total variance (all filters identical, e.g. an all-zero layer): 0.0
                             (a single distinct filter is fully redundant).
``variance_entropy_norm``    ``H / thr(n)`` with the authors' logistic fit of what i.i.d. random
                             layers reach, ``thr(n) = 1.2618047 / (1 + exp(-0.88767525 (log2 n -
                             2.30436435))) - 0.31050834``. ``thr(n) <= 0`` for ``n <= 2``: NaN.
                             About 0.9 = healthy, near 0 = redundant, >= 1 = random-like.
``variance_entropy_clean``   ``variance_entropy`` of the non-sparse filters only (NaN when fewer
                             than 2 remain).
``orthogonality``            rows of ``W.reshape(out, in*9)`` L2-normalised (zero rows stay zero),
                             ``1 - sum|W W^T - I| / (out (out - 1))`` (1 = orthogonal output
                             channels). Needs ``out_channels``; NaN when it is missing, when ``n`` is
                             not a multiple of it, or when ``out < 2``. Zero rows keep a 0 on the
                             diagonal, so each counts 1 towards the sum (as the formula says).
``absmax``                   ``max|W|``.

The reasons a value is NaN are kept as a bit mask per layer (:data:`NOTES`), written as text in the
``notes`` column of the layer table.

Degeneration (the study publishes no thresholds; these are configurable, defaults in
:data:`DEFAULT_THRESHOLDS`): a layer is ``sparse`` when ``sparsity >= sparse``, ``low_diversity``
when ``variance_entropy_norm < low_diversity``, ``random_like`` when ``variance_entropy_norm >=
random_like``; *degenerated* when any holds. A model carries a flag when the share of its layers
with that flag is at least ``model_share``, or when its filter-weighted mean of the metric crosses
the layer threshold.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

THR_A, THR_B, THR_C, THR_D = 1.2618047, 0.88767525, 2.30436435, 0.31050834
CHUNK_ROWS = 1 << 18  # rows per float64 chunk when centring large layers (bounded memory)

METRICS = ["sparsity", "variance_entropy", "variance_entropy_norm", "variance_entropy_clean", "orthogonality"]
FLAGS = ["sparse", "low_diversity", "random_like"]

# note bits: why a metric is NaN (or defined by convention)
NOTE_NO_OUT = 1
NOTE_NOT_MULTIPLE = 2
NOTE_ONE_OUT = 4
NOTE_FEW_FILTERS = 8
NOTE_NO_THRESHOLD = 16
NOTE_ALL_ZERO = 32
NOTE_FEW_CLEAN = 64
NOTES = {
    NOTE_NO_OUT: "no out_channels in meta: orthogonality not computed",
    NOTE_NOT_MULTIPLE: "n_filters not a multiple of out_channels: orthogonality not computed",
    NOTE_ONE_OUT: "fewer than 2 output channels: orthogonality undefined",
    NOTE_FEW_FILTERS: "fewer than 2 filters: variance entropy undefined",
    NOTE_NO_THRESHOLD: "fewer than 3 filters: no random-layer threshold, entropy_norm undefined",
    NOTE_ALL_ZERO: "all-zero layer: sparsity 1, entropy 0 by convention",
    NOTE_FEW_CLEAN: "fewer than 2 non-sparse filters: clean entropy undefined",
}

DEFAULT_THRESHOLDS = {
    "sparse": 0.5,          # layer sparse when sparsity >= this (half its filters dead)
    "low_diversity": 0.5,   # layer low-diversity when variance_entropy_norm < this (healthy ~0.9)
    "random_like": 1.0,     # layer random-like when variance_entropy_norm >= this (random layers reach 1)
    "model_share": 0.5,     # model flagged when at least this share of its layers carry the flag
}


# ---------------------------------------------------------------------------------------------
# Metrics of one layer


def _as_filters(W: np.ndarray) -> np.ndarray:
    W = np.asarray(W)
    return W.reshape(-1, 9) if W.size else np.zeros((0, 9), W.dtype if W.dtype.kind == "f" else np.float64)


def sparse_mask(W: np.ndarray, eps: float = 0.01) -> np.ndarray:
    """Boolean ``(n,)``: filter ``i`` is sparse when ``max_j |W_ij| < eps * max|W|``.

    In an all-zero layer every filter counts as sparse (by convention)."""
    W = _as_filters(W)
    if W.shape[0] == 0:
        return np.zeros(0, bool)
    peak = np.max(np.abs(W), axis=1).astype(np.float64)
    if peak.max() == 0.0:
        return np.ones(W.shape[0], bool)
    return peak < float(eps) * float(peak.max())


def sparsity(W: np.ndarray, eps: float = 0.01) -> float:
    """Share of sparse filters (see :func:`sparse_mask`): ``#{i: all_j |W_ij| < eps max|W|} / n``.

    All-zero layer: 1.0. Empty layer: NaN."""
    m = sparse_mask(W, eps)
    return float(m.mean()) if m.size else math.nan


def centred_gram(W: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """``(W - mean W)^T (W - mean W)`` as a float64 9x9 matrix, centring chunk by chunk (the mean
    is taken first, so no large-value cancellation as with ``sum x x^T - n m m^T``)."""
    W = _as_filters(W)
    mean = W.sum(axis=0, dtype=np.float64) / max(W.shape[0], 1)
    G = np.zeros((9, 9))
    for a in range(0, W.shape[0], chunk_rows):
        c = W[a:a + chunk_rows].astype(np.float64) - mean
        G += c.T @ c
    return (G + G.T) / 2.0


def component_variances(W: np.ndarray) -> np.ndarray:
    """``v = s^2 / (n - 1)``, ``s`` the singular values of ``W - mean(W)``, descending (9,).

    Eigenvalues of the centred 9x9 Gram (``s^2``), negatives from rounding clipped to 0."""
    W = _as_filters(W)
    n = W.shape[0]
    if n < 2:
        return np.full(9, math.nan)
    ev = np.linalg.eigvalsh(centred_gram(W))[::-1]
    return np.clip(ev, 0.0, None) / (n - 1)


def entropy_of_variances(v: np.ndarray) -> float:
    """``-sum p log10 p`` with ``p = v / sum v`` (0 log 0 = 0); 0.0 when ``sum v = 0``; NaN when
    ``v`` holds NaN."""
    v = np.asarray(v, dtype=np.float64)
    if np.isnan(v).any():
        return math.nan
    total = v.sum()
    if total <= 0:
        return 0.0
    p = v[v > 0] / total
    return float(-np.sum(p * np.log10(p)))


def variance_entropy(W: np.ndarray) -> float:
    """Variance entropy ``H = -sum p log10 p``, ``p = v/sum v``, ``v = s^2/(n-1)``, ``s`` the
    singular values of ``W - mean(W)``. In ``[0, log10 9]``; 0.0 for zero variance; NaN for n < 2."""
    return entropy_of_variances(component_variances(W))


def entropy_threshold(n) -> np.ndarray | float:
    """The variance entropy i.i.d. random layers of ``n`` filters reach (authors' logistic fit):
    ``1.2618047 / (1 + exp(-0.88767525 (log2 n - 2.30436435))) - 0.31050834``.

    Tends to 0.9513 (about log10 9) for large n; negative for n <= 2."""
    x = np.log2(np.asarray(n, dtype=np.float64))
    t = THR_A / (1.0 + np.exp(-THR_B * (x - THR_C))) - THR_D
    return float(t) if np.ndim(t) == 0 else t


def variance_entropy_norm(W: np.ndarray, entropy: float | None = None) -> float:
    """``variance_entropy(W) / entropy_threshold(n)``; NaN when the threshold is not positive
    (n <= 2) or the entropy is NaN."""
    W = _as_filters(W)
    h = variance_entropy(W) if entropy is None else entropy
    t = entropy_threshold(max(W.shape[0], 1))
    return float(h / t) if t > 0 and not math.isnan(h) else math.nan


def variance_entropy_clean(W: np.ndarray, eps: float = 0.01) -> float:
    """:func:`variance_entropy` of the non-sparse filters only (NaN when fewer than 2 remain)."""
    W = _as_filters(W)
    return variance_entropy(W[~sparse_mask(W, eps)])


def orthogonality(W: np.ndarray, out_channels, block: int = 1024) -> float:
    """``1 - sum|U U^T - I| / (out (out - 1))`` with ``U = W.reshape(out, in*9)``, rows L2-normalised
    (zero rows stay zero). NaN when ``out_channels`` is missing/NaN, ``n % out != 0`` or out < 2
    (see :func:`orthogonality_note`). The out x out Gram is formed in row blocks."""
    if orthogonality_note(_as_filters(W).shape[0], out_channels):
        return math.nan
    W = _as_filters(W)
    out = int(round(float(out_channels)))
    U = W.reshape(out, -1).astype(np.float64)
    norm = np.sqrt(np.einsum("ij,ij->i", U, U))
    U = np.divide(U, norm[:, None], out=np.zeros_like(U), where=norm[:, None] > 0)
    total = 0.0
    for a in range(0, out, block):
        g = U[a:a + block] @ U.T
        idx = np.arange(a, min(a + block, out))
        g[idx - a, idx] -= 1.0
        total += float(np.abs(g).sum())
    return 1.0 - total / (out * (out - 1))


def orthogonality_note(n: int, out_channels) -> int:
    """The note bit explaining why orthogonality is NaN (0 when it is defined)."""
    try:
        out = float(out_channels)
    except (TypeError, ValueError):
        return NOTE_NO_OUT
    if math.isnan(out) or out <= 0:
        return NOTE_NO_OUT
    if out != round(out) or n % int(round(out)) != 0:
        return NOTE_NOT_MULTIPLE
    if int(round(out)) < 2:
        return NOTE_ONE_OUT
    return 0


def layer_quality(W: np.ndarray, out_channels=None, eps: float = 0.01) -> dict:
    """Every metric of one layer plus ``n_filters``, ``n_sparse``, ``absmax`` and ``notes`` (bits)."""
    W = _as_filters(W)
    n = W.shape[0]
    mask = sparse_mask(W, eps)
    h = variance_entropy(W)
    absmax = float(np.max(np.abs(W))) if n else math.nan
    notes = orthogonality_note(n, out_channels)
    if n < 2:
        notes |= NOTE_FEW_FILTERS
    if n <= 2:
        notes |= NOTE_NO_THRESHOLD
    if n and absmax == 0.0:
        notes |= NOTE_ALL_ZERO
    if int((~mask).sum()) < 2:
        notes |= NOTE_FEW_CLEAN
    return {
        "n_filters": n,
        "n_sparse": int(mask.sum()),
        "sparsity": float(mask.mean()) if n else math.nan,
        "variance_entropy": h,
        "variance_entropy_norm": variance_entropy_norm(W, h),
        "variance_entropy_clean": variance_entropy(W[~mask]),
        "orthogonality": orthogonality(W, out_channels) if not (notes & (NOTE_NO_OUT | NOTE_NOT_MULTIPLE | NOTE_ONE_OUT)) else math.nan,
        "absmax": absmax,
        "notes": notes,
    }


def note_text(bits: int) -> str:
    """The ``; ``-joined texts of the set note bits ('' when none)."""
    bits = int(bits)
    return "; ".join(text for bit, text in NOTES.items() if bits & bit)


# ---------------------------------------------------------------------------------------------
# Streamed pass


def _entropy_from_gram(G: np.ndarray, n: int) -> float:
    """Variance entropy from the centred 9x9 scatter matrix of ``n`` filters (as
    :func:`component_variances` + :func:`entropy_of_variances`)."""
    if n < 2:
        return math.nan
    ev = np.linalg.eigvalsh((G + G.T) / 2.0)[::-1]
    return entropy_of_variances(np.clip(ev, 0.0, None) / (n - 1))


def layer_quality_fast(W: np.ndarray, out_channels=None, eps: float = 0.01) -> dict:
    """:func:`layer_quality` with sparsity and both centred scatter matrices from one compiled
    pass (:func:`filterdb.kernels.layer_moments`); equal to it up to float64 rounding (tested)."""
    from .kernels import HAVE_NUMBA, layer_moments

    W = _as_filters(W)
    n = W.shape[0]
    if not HAVE_NUMBA or n == 0:
        return layer_quality(W, out_channels, eps)
    absmax, n_sparse, n_clean, g_all, g_clean = layer_moments(W, eps)
    h = _entropy_from_gram(g_all, n)
    notes = orthogonality_note(n, out_channels)
    if n < 2:
        notes |= NOTE_FEW_FILTERS
    if n <= 2:
        notes |= NOTE_NO_THRESHOLD
    if absmax == 0.0:
        notes |= NOTE_ALL_ZERO
    if n_clean < 2:
        notes |= NOTE_FEW_CLEAN
    t = entropy_threshold(n)
    return {
        "n_filters": n,
        "n_sparse": n_sparse,
        "sparsity": n_sparse / n,
        "variance_entropy": h,
        "variance_entropy_norm": float(h / t) if t > 0 and not math.isnan(h) else math.nan,
        "variance_entropy_clean": _entropy_from_gram(g_clean, n_clean),
        "orthogonality": orthogonality(W, out_channels) if not (notes & (NOTE_NO_OUT | NOTE_NOT_MULTIPLE | NOTE_ONE_OUT)) else math.nan,
        "absmax": absmax,
        "notes": notes,
    }


class QualityAccumulator:
    """Per-layer quality metrics in the streamed ``sums`` pass (unscaled weights).

    Arrays (first axis = layer), stored in ``stats/sums.npz``: ``quality_n_filters``,
    ``quality_n_sparse``, ``quality_sparsity``, ``quality_variance_entropy``,
    ``quality_variance_entropy_norm``, ``quality_variance_entropy_clean``,
    ``quality_orthogonality``, ``quality_absmax``, ``quality_notes`` (bit mask, :data:`NOTES`).
    ``out_channels`` comes from the layer-table row (missing column or NaN: no orthogonality).
    """

    needs_coefficients = False
    FIELDS = ["n_filters", "n_sparse", "sparsity", "variance_entropy", "variance_entropy_norm",
              "variance_entropy_clean", "orthogonality", "absmax", "notes"]

    def __init__(self, n_layers: int, eps: float = 0.01, **_ignored):
        self.eps = float(eps)
        self.values = {f: (np.zeros(n_layers, np.int64) if f in ("n_filters", "n_sparse", "notes")
                           else np.full(n_layers, np.nan)) for f in self.FIELDS}

    def add(self, i: int, w: np.ndarray, scaled, coef, row: pd.Series) -> None:
        out = row.get("out_channels", None) if row is not None else None
        q = layer_quality_fast(w, out, self.eps)
        for f in self.FIELDS:
            self.values[f][i] = q[f]

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"quality_{f}": v for f, v in self.values.items()}


def quality_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``quality_*`` arrays of a gathered stats file, without the prefix."""
    out = {k[8:]: np.asarray(v) for k, v in arrays.items() if k.startswith("quality_")}
    if not out:
        raise KeyError("the stats file holds no quality arrays: enable quality (config quality.enabled) "
                       "and re-run the sums pass")
    return out


# ---------------------------------------------------------------------------------------------
# Tables


def thresholds_with_defaults(thresholds: Mapping | None) -> dict:
    t = dict(DEFAULT_THRESHOLDS)
    unknown = set(thresholds or {}) - set(t)
    if unknown:
        raise ValueError(f"quality thresholds: unknown keys {sorted(unknown)} (known: {sorted(t)})")
    t.update({k: float(v) for k, v in (thresholds or {}).items()})
    return t


def layer_flags(table: pd.DataFrame, thresholds: Mapping | None = None) -> pd.DataFrame:
    """Boolean columns ``sparse``, ``low_diversity``, ``random_like``, ``degenerated`` (NaN metrics
    never flag)."""
    t = thresholds_with_defaults(thresholds)
    s = table["sparsity"].to_numpy(np.float64)
    e = table["variance_entropy_norm"].to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        f = pd.DataFrame({"sparse": s >= t["sparse"], "low_diversity": e < t["low_diversity"],
                          "random_like": e >= t["random_like"]}, index=table.index)
    f["degenerated"] = f[FLAGS].any(axis=1)
    return f


def layer_quality_table(layers: pd.DataFrame, arrays: Mapping[str, np.ndarray], axes: Sequence = (),
                        thresholds: Mapping | None = None) -> pd.DataFrame:
    """``quality/layers.tsv``: one row per layer (layer order) with ``layer``, ``model_id``,
    ``model``, ``conv_depth``, ``conv_depth_norm``, ``out_channels`` (when known), one label column
    per axis (named after the axis), ``n_filters``, ``n_sparse``, the metrics, ``absmax``, the layer
    flags and ``notes``.

    ``arrays`` are the gathered stats (``quality_*`` keys) or already unprefixed quality arrays.
    """
    from .axes import layer_labels

    q = quality_arrays(arrays) if any(k.startswith("quality_") for k in arrays) else dict(arrays)
    if len(q["sparsity"]) != len(layers):
        raise ValueError(f"quality arrays cover {len(q['sparsity'])} layers, the layer table {len(layers)}")
    df = pd.DataFrame({"layer": layers["layer"].to_numpy() if "layer" in layers else np.arange(len(layers)),
                       "model_id": layers["model_id"].to_numpy()})
    df["model"] = layers["model"].to_numpy() if "model" in layers else layers["model_id"].astype(str).to_numpy()
    df["conv_depth"] = layers["conv_depth"].to_numpy()
    df["conv_depth_norm"] = layers["conv_depth_norm"].to_numpy()
    if "out_channels" in layers:
        df["out_channels"] = pd.to_numeric(layers["out_channels"], errors="coerce").astype("Int64").to_numpy()
    reserved = set(df.columns) | {"n_filters", "n_sparse", "absmax", "notes", "degenerated"} | set(METRICS) | set(FLAGS)
    for axis in axes:
        if axis.name in reserved:
            raise ValueError(f"axis name {axis.name!r} clashes with a column of the quality layer table; rename the axis")
        df[axis.name] = layer_labels(layers, axis).to_numpy()
    df["n_filters"] = np.asarray(q["n_filters"], np.int64)
    df["n_sparse"] = np.asarray(q["n_sparse"], np.int64)
    for m in METRICS + ["absmax"]:
        df[m] = np.asarray(q[m], np.float64)
    df = pd.concat([df, layer_flags(df, thresholds)], axis=1)
    df["notes"] = [note_text(b) for b in np.asarray(q["notes"], np.int64)]
    return df


def _weighted_mean(values: pd.Series, weights: pd.Series) -> float:
    v = values.to_numpy(np.float64)
    w = weights.to_numpy(np.float64)
    ok = ~np.isnan(v)
    return float(np.sum(v[ok] * w[ok]) / np.sum(w[ok])) if ok.any() and np.sum(w[ok]) > 0 else math.nan


def _summaries(table: pd.DataFrame, keys: list[str], thresholds: Mapping | None = None) -> pd.DataFrame:
    """Per group of ``keys``: counts, filter-weighted means of the metrics, shares of flagged layers
    and of filters in degenerated layers (layer flags recomputed with ``thresholds``)."""
    table = pd.concat([table.drop(columns=[c for c in FLAGS + ["degenerated"] if c in table]),
                       layer_flags(table, thresholds)], axis=1)
    rows = []
    for key, g in table.groupby(keys, sort=True, dropna=True):
        key = key if isinstance(key, tuple) else (key,)
        r = dict(zip(keys, key))
        r["n_models"] = g["model_id"].nunique()
        r["n_layers"] = len(g)
        r["n_filters"] = int(g["n_filters"].sum())
        for m in METRICS:
            r[m] = _weighted_mean(g[m], g["n_filters"])
        for f in FLAGS + ["degenerated"]:
            r[f"share_{f}_layers"] = float(g[f].mean())
        r["share_degenerated_filters"] = float(g.loc[g["degenerated"], "n_filters"].sum() / max(r["n_filters"], 1))
        rows.append(r)
    cols = keys + ["n_models", "n_layers", "n_filters"] + METRICS + \
        [f"share_{f}_layers" for f in FLAGS + ["degenerated"]] + ["share_degenerated_filters"]
    return pd.DataFrame(rows, columns=cols)


def model_quality_table(layer_table: pd.DataFrame, thresholds: Mapping | None = None) -> pd.DataFrame:
    """``quality/models.tsv``: per model (``model_id``, ``model``) the filter-weighted means of the
    metrics (NaN layers left out), shares of flagged layers, the share of filters in degenerated
    layers, and model flags ``sparse``, ``low_diversity``, ``random_like`` (share of layers with the
    flag ``>= model_share``, or the weighted mean crossing the layer threshold), ``n_flags`` and
    ``degenerated``. Sorted most degenerated first (n_flags, share of degenerated layers, share of
    degenerated filters, all descending; then model)."""
    t = thresholds_with_defaults(thresholds)
    s = _summaries(layer_table, ["model_id", "model"], t).drop(columns="n_models")
    share = t["model_share"]
    with np.errstate(invalid="ignore"):
        s["sparse"] = (s["share_sparse_layers"] >= share) | (s["sparsity"] >= t["sparse"])
        s["low_diversity"] = (s["share_low_diversity_layers"] >= share) | \
            (s["variance_entropy_norm"] < t["low_diversity"])
        s["random_like"] = (s["share_random_like_layers"] >= share) | \
            (s["variance_entropy_norm"] >= t["random_like"])
    s["n_flags"] = s[FLAGS].sum(axis=1).astype(int)
    s["degenerated"] = s["n_flags"] > 0
    s = s.sort_values(["n_flags", "share_degenerated_layers", "share_degenerated_filters", "model"],
                      ascending=[False, False, False, True], kind="stable")
    return s.reset_index(drop=True)


def group_quality_table(layer_table: pd.DataFrame, column: str, order: Sequence | None = None,
                        thresholds: Mapping | None = None) -> pd.DataFrame:
    """``quality/by_{axis}.tsv``: per group (label column ``column`` of the layer table, renamed
    ``group``) counts, filter-weighted metric means and shares of flagged layers. Rows in ``order``
    when given (e.g. depth bins in natural order), else sorted by label."""
    s = _summaries(layer_table.dropna(subset=[column]), [column], thresholds).rename(columns={column: "group"})
    if order is not None:
        rank = {g: k for k, g in enumerate(order)}
        s = s.sort_values("group", key=lambda c: c.map(rank).fillna(len(rank)), kind="stable")
    return s.reset_index(drop=True)


def depth_labels(layer_table: pd.DataFrame, bins: int = 10) -> tuple[pd.Series, list[str]]:
    """Depth bin of each layer (``conv_depth_norm`` cut as the depth axis) and the bin labels."""
    from .axes import Axis, depth_bin_labels, layer_labels

    ax = Axis(name="depth", column="conv_depth_norm", kind="binned", bins=bins)
    return layer_labels(layer_table, ax), depth_bin_labels(bins)


# ---------------------------------------------------------------------------------------------
# Figures (byte-reproducible through filterdb.plots.save)

FIGURE_METRICS = [("sparsity", "sparsity"), ("variance_entropy_norm", "variance entropy (norm.)"),
                  ("variance_entropy_clean", "variance entropy (clean)"), ("orthogonality", "orthogonality")]


def _threshold_lines(line, metric: str, t: Mapping) -> None:
    """Dashed lines at the flag thresholds of ``metric`` (``line`` = ``ax.axhline`` or ``ax.axvline``)."""
    if metric == "sparsity":
        line(t["sparse"], color="C3", lw=0.8, ls="--")
    if metric == "variance_entropy_norm":
        line(t["low_diversity"], color="C3", lw=0.8, ls="--")
        line(t["random_like"], color="C1", lw=0.8, ls="--")


def depth_figure(layer_table: pd.DataFrame, bins: int = 10, thresholds: Mapping | None = None):
    """Each metric against the depth bin: filter-weighted mean (line) and the layers' 25-75 %
    range (band); threshold lines on the sparsity and entropy panels."""
    from matplotlib.figure import Figure

    t = thresholds_with_defaults(thresholds)
    lab, order = depth_labels(layer_table, bins)
    tab = layer_table.assign(_depth=lab.to_numpy())
    fig = Figure(figsize=(10, 2.8), layout="constrained")
    axs = fig.subplots(1, len(FIGURE_METRICS))
    x = np.arange(len(order))
    for ax, (m, title) in zip(axs, FIGURE_METRICS):
        mean, lo, hi = [], [], []
        for g in order:
            sub = tab[tab["_depth"] == g]
            v = sub[m].to_numpy(np.float64)
            ok = ~np.isnan(v)
            mean.append(_weighted_mean(sub[m], sub["n_filters"]) if len(sub) else math.nan)
            lo.append(np.percentile(v[ok], 25) if ok.any() else math.nan)
            hi.append(np.percentile(v[ok], 75) if ok.any() else math.nan)
        ax.fill_between(x, lo, hi, color="C0", alpha=0.25, linewidth=0)
        ax.plot(x, mean, "o-", color="C0", markersize=3)
        _threshold_lines(ax.axhline, m, t)
        ax.set_title(title)
        ax.set_xticks(x, [str(k) for k in range(len(order))])
        ax.set_xlabel(f"depth bin (of {len(order)})")
    return fig


def group_figure(layer_table: pd.DataFrame, column: str, order: Sequence | None = None,
                 thresholds: Mapping | None = None, max_groups: int = 40):
    """Per group of ``column``: box plots of the layers' metric values, filter-weighted mean as a
    diamond; at most ``max_groups`` groups (the largest by filter count)."""
    from matplotlib.figure import Figure

    t = thresholds_with_defaults(thresholds)
    tab = layer_table.dropna(subset=[column])
    groups = list(order) if order is not None else sorted(tab[column].astype(str).unique())
    groups = [g for g in groups if (tab[column] == g).any()]
    if len(groups) > max_groups:
        size = tab.groupby(column)["n_filters"].sum()
        keep = set(size.sort_values(ascending=False, kind="stable").index[:max_groups])
        groups = [g for g in groups if g in keep]
    height = max(2.5, 0.22 * len(groups) + 1.0)
    fig = Figure(figsize=(10, height), layout="constrained")
    axs = fig.subplots(1, len(FIGURE_METRICS), sharey=True)
    y = np.arange(len(groups))
    for ax, (m, title) in zip(axs, FIGURE_METRICS):
        data, means = [], []
        for g in groups:
            sub = tab[tab[column] == g]
            v = sub[m].to_numpy(np.float64)
            data.append(v[~np.isnan(v)])
            means.append(_weighted_mean(sub[m], sub["n_filters"]))
        nonempty = [k for k, d in enumerate(data) if d.size]
        if nonempty:
            ax.boxplot([data[k] for k in nonempty], positions=y[nonempty], widths=0.6,
                       showfliers=False, manage_ticks=False, **_horizontal())
        ax.plot(means, y, "D", color="C3", markersize=3)
        _threshold_lines(ax.axvline, m, t)
        ax.set_title(title)
    axs[0].set_yticks(y, [str(g) for g in groups])
    axs[0].invert_yaxis()
    return fig


def _horizontal() -> dict:
    """Horizontal boxes: ``orientation`` from matplotlib 3.10, ``vert`` before."""
    import matplotlib

    major, minor = (int(v) for v in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def save_figure(fig, path) -> None:
    """Write a figure byte-reproducibly (fixed SVG hash salt, no dates/versions in metadata)."""
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "filterdb", "svg.fonttype": "path"}):
        meta = {"Date": None, "Creator": None, "Format": None, "Type": None} if str(path).endswith(".svg") \
            else {"Software": None}
        fig.savefig(path, metadata=meta)


def write_tsv(df: pd.DataFrame, path) -> None:
    df.to_csv(path, sep="\t", index=False, float_format="%.17g")
