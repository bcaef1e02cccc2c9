"""Filter quality and degeneration of one conv layer: the metrics (docs/method.md §9).

This module is the metric math only (numpy; no pandas, no matplotlib). The streamed pass that
computes the metrics per layer is :class:`filterdb.accumulate.SumsPass`; the layer,
model and group tables (and the degeneration flags) are in :mod:`filterdb.quality_tables`; the
figures are :func:`filterdb.plots.quality_depth_figure` and :func:`filterdb.plots.quality_group_figure`.

Every metric is computed on the UNSCALED weights ``W`` of one layer, an ``(n, d)`` array (``d = k²``; one row
per 3x3 kernel, rows of output channel ``o`` at ``o*in .. (o+1)*in - 1`` as extracted from a
``(out, in, 3, 3)`` weight). Arithmetic is float64 throughout.

Per layer
---------
``sparsity``                 share of sparse filters: a filter is sparse when all d ``|w| < t`` with
                             ``t = eps * max|W|`` (eps = :func:`default_eps`). All-zero layer: 1.0
                             (every filter is dead, though no ``|w| < 0`` holds). Empty layer: NaN.
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
``orthogonality``            rows of ``W.reshape(out, in*d)`` L2-normalised (zero rows stay zero),
                             ``1 - sum|W W^T - I| / (out (out - 1))`` (1 = orthogonal output
                             channels). Needs ``out_channels``; NaN when it is missing, when ``n`` is
                             not a multiple of it, when ``out < 2``, or for an empty layer. Zero rows keep a 0 on the
                             diagonal, so each counts 1 towards the sum (as the formula says).
``absmax``                   ``max|W|`` (NaN for an empty layer).

The reasons a value is NaN are kept as a bit mask per layer (:data:`NOTES`), written as text in the
``notes`` column of the layer table.

Degeneration (the study publishes no thresholds; these are configurable, defaults in
:func:`default_thresholds`): a layer is ``sparse`` when ``sparsity >= sparse``, ``low_diversity``
when ``variance_entropy_norm < low_diversity``, ``random_like`` when ``variance_entropy_norm >=
random_like``; *degenerated* when any holds. A model carries a flag when the share of its layers
with that flag is at least ``model_share``, or when its filter-weighted mean of the metric crosses
the layer threshold (:mod:`filterdb.quality_tables`).

Optional rule ``cvpr_reanalysis`` (config ``quality.rule``; :func:`cvpr_reanalysis_flags`): a
layer is degenerated when ``H >= thr(n) - 0.02`` or (``H < 0.5`` and ``sparsity >= 0.14``), ``H``
the variance entropy (not normalised). SECONDHAND: reported from the CVPR 2022 supplement by a
public re-analysis, not checked against the supplement here (docs/method.md §9).

The default values (:func:`default_eps`, :func:`default_thresholds`; also as the module attributes
``DEFAULT_EPS``, ``DEFAULT_THRESHOLDS``) are read from the workflow's config schema
(:mod:`filterdb.schema`), the one place they are written.
"""

from __future__ import annotations

import math

import numpy as np

from .scaling import filter_rows
from .schema import schema_default, schema_filled
from .shape import STUDY

THR_A, THR_B, THR_C, THR_D = 1.2618047, 0.88767525, 2.30436435, 0.31050834
CHUNK_ROWS = 1 << 18  # rows per float64 chunk when centring large layers (bounded memory)

#: The per-layer quality arrays (:func:`from_moments`, the sums pass's ``quality_*`` arrays).
FIELDS = [
    "n_filters",
    "n_sparse",
    "sparsity",
    "variance_entropy",
    "variance_entropy_norm",
    "variance_entropy_clean",
    "orthogonality",
    "absmax",
    "notes",
]
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
NOTE_EMPTY = 128
NOTE_NO_FIT = 256
NOTES = {
    NOTE_NO_OUT: "no out_channels in meta: orthogonality not computed",
    NOTE_NOT_MULTIPLE: "n_filters not a multiple of out_channels: orthogonality not computed",
    NOTE_ONE_OUT: "fewer than 2 output channels: orthogonality undefined",
    NOTE_FEW_FILTERS: "fewer than 2 filters: variance entropy undefined",
    NOTE_NO_THRESHOLD: "fewer than 3 filters: no random-layer threshold, entropy_norm undefined",
    NOTE_ALL_ZERO: "all-zero layer: sparsity 1, entropy 0 by convention",
    NOTE_FEW_CLEAN: "fewer than 2 non-sparse filters: clean entropy undefined",
    NOTE_EMPTY: "empty layer (0 filters): no metric defined",
    NOTE_NO_FIT: "not 3x3 filters: the random-layer threshold was fitted for 3x3 only, entropy_norm undefined",
}
_NO_ORTHOGONALITY = NOTE_NO_OUT | NOTE_NOT_MULTIPLE | NOTE_ONE_OUT | NOTE_EMPTY


def default_eps() -> float:
    """The config default of ``quality.eps`` (the schema's): a filter is sparse when all its
    ``|w| < eps * max|W|``. Keyword ``eps=None`` of this module's functions means this value."""
    return float(schema_default("quality.eps"))


def default_thresholds() -> dict[str, float]:
    """The config defaults of ``quality.thresholds`` (the schema's; the study publishes none):
    ``sparse`` (layer sparse when sparsity >= this), ``low_diversity`` (variance_entropy_norm
    below this), ``random_like`` (variance_entropy_norm at least this), ``model_share`` (share of
    a model's layers that flags the model)."""
    return {k: float(v) for k, v in schema_filled("quality.thresholds").items()}


def __getattr__(name: str):
    # DEFAULT_EPS / DEFAULT_THRESHOLDS: read from the schema when first asked for, not repeated here
    if name == "DEFAULT_EPS":
        return default_eps()
    if name == "DEFAULT_THRESHOLDS":
        return default_thresholds()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The degeneration rules (config ``quality.rule``): ``project`` = the flags of
#: :func:`default_thresholds`; ``cvpr_reanalysis`` = :func:`cvpr_reanalysis_flags`.
RULES = ("project", "cvpr_reanalysis")
#: The constants of the ``cvpr_reanalysis`` rule (secondhand, see :func:`cvpr_reanalysis_flags`).
CVPR_MARGIN = 0.02  # random-like: H >= thr(n) - CVPR_MARGIN
CVPR_ENTROPY = 0.5  # with sparsity: H < CVPR_ENTROPY ...
CVPR_SPARSITY = 0.14  # ... and sparsity >= CVPR_SPARSITY


def cvpr_reanalysis_flags(entropy, n, sparsity, width: int = STUDY.size) -> dict[str, np.ndarray]:
    """The ``cvpr_reanalysis`` degeneration rule per layer: degenerated when
    ``H >= thr(n) - 0.02`` or (``H < 0.5`` and ``sparsity >= 0.14``).

    SECONDHAND: the rule is reported from the CVPR 2022 supplement by a public re-analysis and is
    not checked against the supplement here. ``H`` is taken to be the variance entropy
    :func:`variance_entropy` (base 10, **not** normalised): ``thr(n)`` (:func:`entropy_threshold`)
    is in the units of ``H``, so ``H >= thr(n) - 0.02`` compares like with like (for the
    normalised entropy it would mix a ratio with an entropy), and the study's notebook computes
    exactly this ``H`` (``scipy.stats.entropy(v, base=10)``). Where ``thr(n) <= 0`` (``n <= 2``)
    the first clause is undefined and never holds (as ``H_norm`` is NaN there); a NaN metric never
    satisfies a clause.

    Parameters
    ----------
    entropy : (L,) array_like
        Variance entropy ``H`` per layer (NaN allowed).
    n : (L,) array_like of int
        Filters per layer.
    sparsity : (L,) array_like
        Sparsity per layer (NaN allowed).
    width : int
        Values per filter (9 for 3x3): the threshold exists for 3x3 filters only
        (:func:`entropy_threshold`), so for other kernels the first clause never holds.

    Returns
    -------
    dict of (L,) bool ndarrays
        ``random_like`` (the first clause), ``low_diversity`` (``H < 0.5``), ``sparse``
        (``sparsity >= 0.14``) and ``degenerated`` (``random_like | (low_diversity & sparse)``).

    Examples
    --------
    >>> f = cvpr_reanalysis_flags([0.95, 0.4, 0.4, 0.8], [512, 512, 512, 512], [0.0, 0.2, 0.1, 0.5])
    >>> f["degenerated"].tolist()
    [True, True, False, False]
    """
    h = np.asarray(entropy, np.float64)
    s = np.asarray(sparsity, np.float64)
    t = np.asarray(entropy_threshold(np.maximum(np.asarray(n, np.float64), 1.0), width), np.float64)
    with np.errstate(invalid="ignore"):
        random_like = (t > 0) & (h >= t - CVPR_MARGIN)
        low = h < CVPR_ENTROPY
        sparse = s >= CVPR_SPARSITY
    return {
        "random_like": random_like,
        "low_diversity": low,
        "sparse": sparse,
        "degenerated": random_like | (low & sparse),
    }


# ---------------------------------------------------------------------------------------------
# Metrics of one layer


def _as_filters(W: np.ndarray) -> np.ndarray:
    """``W`` as ``(n, d)`` (:func:`filterdb.scaling.filter_rows`; a flat array as 3x3 filters, 9
    values each); no filters: ``(0, d)`` of a float dtype."""
    W = filter_rows(W, STUDY.size)
    return W if W.size else np.zeros((0, W.shape[-1]), W.dtype if W.dtype.kind == "f" else np.float64)


def sparse_mask(W: np.ndarray, eps: float | None = None) -> np.ndarray:
    """Which filters are sparse: ``max_j |W_ij| < eps * max|W|``.

    Parameters
    ----------
    W : array_like, shape (n, d) or (..., k, k)
        The unscaled filters of one layer (``d = k²`` values each).
    eps : float, optional
        Relative threshold; None: :func:`default_eps` (config ``quality.eps``).

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
        In an all-zero layer every filter counts as sparse (by convention).
    """
    W = _as_filters(W)
    if W.shape[0] == 0:
        return np.zeros(0, bool)
    peak = np.max(np.abs(W), axis=1).astype(np.float64)
    if peak.max() == 0.0:
        return np.ones(W.shape[0], bool)
    eps = default_eps() if eps is None else eps
    return peak < float(eps) * float(peak.max())


def sparsity(W: np.ndarray, eps: float | None = None) -> float:
    """Share of sparse filters: ``#{i: all_j |W_ij| < eps max|W|} / n`` (see :func:`sparse_mask`).

    Parameters
    ----------
    W : array_like, shape (n, d)
    eps : float, optional

    Returns
    -------
    float
        In ``[0, 1]``; 1.0 for an all-zero layer, NaN for an empty one.

    Examples
    --------
    >>> sparsity(np.vstack([np.ones((3, 9)), np.zeros((1, 9))]))
    0.25
    """
    m = sparse_mask(W, eps)
    return float(m.mean()) if m.size else math.nan


def centred_gram(W: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """The centred scatter matrix ``(W - mean W)^T (W - mean W)``.

    Centred chunk by chunk after taking the mean first (no large-value cancellation as with
    ``sum x x^T - n m m^T``).

    Parameters
    ----------
    W : array_like, shape (n, d)
    chunk_rows : int
        Rows converted to float64 at a time (bounds memory).

    Returns
    -------
    numpy.ndarray, shape (d, d), float64
        Symmetric.
    """
    W = _as_filters(W)
    mean = W.sum(axis=0, dtype=np.float64) / max(W.shape[0], 1)
    G = np.zeros((W.shape[1], W.shape[1]))
    for a in range(0, W.shape[0], chunk_rows):
        c = W[a : a + chunk_rows].astype(np.float64) - mean
        G += c.T @ c
    return (G + G.T) / 2.0


def component_variances(W: np.ndarray) -> np.ndarray:
    """Variances along the principal components: ``v = s^2 / (n - 1)``.

    ``s`` are the singular values of ``W - mean(W)``, taken as the eigenvalues of
    :func:`centred_gram` (negatives from rounding clipped to 0).

    Parameters
    ----------
    W : array_like, shape (n, d)

    Returns
    -------
    numpy.ndarray, shape (d,), float64
        Descending; all NaN when ``n < 2``.
    """
    W = _as_filters(W)
    n = W.shape[0]
    if n < 2:
        return np.full(W.shape[1], math.nan)
    ev = np.linalg.eigvalsh(centred_gram(W))[::-1]
    return np.clip(ev, 0.0, None) / (n - 1)


def entropy_of_variances(v: np.ndarray) -> float:
    """Base-10 entropy of a variance spectrum: ``-sum p log10 p`` with ``p = v / sum v``.

    Parameters
    ----------
    v : array_like, shape (k,)
        Non-negative variances.

    Returns
    -------
    float
        0 log 0 = 0; 0.0 when ``sum v = 0``; NaN when ``v`` holds NaN.

    Examples
    --------
    >>> round(entropy_of_variances(np.ones(9)), 6)  # log10(9)
    0.954243
    """
    v = np.asarray(v, dtype=np.float64)
    if np.isnan(v).any():
        return math.nan
    total = v.sum()
    if total <= 0:
        return 0.0
    p = v[v > 0] / total
    return float(-np.sum(p * np.log10(p)))


def variance_entropy(W: np.ndarray) -> float:
    """Variance entropy ``H = -sum p log10 p``, ``p = v / sum v``, ``v = s^2 / (n-1)``.

    ``s`` are the singular values of ``W - mean(W)``.

    Parameters
    ----------
    W : array_like, shape (n, d)

    Returns
    -------
    float
        In ``[0, log10 9]``; 0.0 for zero variance; NaN for ``n < 2``.
    """
    return entropy_of_variances(component_variances(W))


def entropy_threshold(n, width: int = STUDY.size) -> np.ndarray | float:
    """The variance entropy i.i.d. random layers of ``n`` 3x3 filters reach (authors' logistic fit).

    ``1.2618047 / (1 + exp(-0.88767525 (log2 n - 2.30436435))) - 0.31050834``: tends to 0.9513
    (about log10 9) for large ``n``; negative for ``n <= 2``. The fit was made for the 9 variance
    components of 3x3 filters: for filters of another ``width`` there is none (NaN; the
    normalised entropy is then undefined, note bit :data:`NOTE_NO_FIT`).

    Parameters
    ----------
    n : int or array_like of int
        Filter counts (positive).
    width : int
        Values per filter (9 for 3x3).

    Returns
    -------
    float or numpy.ndarray
        Same shape as ``n`` (a float for a scalar).
    """
    x = np.log2(np.asarray(n, dtype=np.float64))
    t = THR_A / (1.0 + np.exp(-THR_B * (x - THR_C))) - THR_D
    if int(width) != STUDY.size:
        t = np.full_like(t, np.nan)
    return float(t) if np.ndim(t) == 0 else t


def _entropy_norm(h: float, n: int, width: int = STUDY.size) -> float:
    t = entropy_threshold(max(n, 1), width)
    return float(h / t) if t > 0 and not math.isnan(h) else math.nan


def variance_entropy_norm(W: np.ndarray, entropy: float | None = None) -> float:
    """Normalised variance entropy ``variance_entropy(W) / entropy_threshold(n)``.

    Parameters
    ----------
    W : array_like, shape (n, d)
    entropy : float, optional
        ``variance_entropy(W)`` when already known.

    Returns
    -------
    float
        About 0.9 healthy, near 0 redundant, >= 1 random-like; NaN when the threshold is not
        positive (``n <= 2``) or the entropy is NaN.
    """
    W = _as_filters(W)
    h = variance_entropy(W) if entropy is None else entropy
    return _entropy_norm(h, W.shape[0], W.shape[1])


def variance_entropy_clean(W: np.ndarray, eps: float | None = None) -> float:
    """:func:`variance_entropy` of the non-sparse filters only.

    Parameters
    ----------
    W : array_like, shape (n, d)
    eps : float, optional
        Sparsity threshold (see :func:`sparse_mask`).

    Returns
    -------
    float
        NaN when fewer than 2 non-sparse filters remain.
    """
    W = _as_filters(W)
    return variance_entropy(W[~sparse_mask(W, eps)])


def orthogonality(W: np.ndarray, out_channels, block: int = 1024) -> float:
    """Orthogonality of the output channels: ``1 - sum|U U^T - I| / (out (out - 1))``.

    ``U = W.reshape(out, in*9)`` with rows L2-normalised (zero rows stay zero). The ``out x out``
    Gram of the raw rows is one float32 matrix product (twice the speed of float64; it is the
    costliest part of the first pass); the norms are the square roots of its diagonal, and
    ``|U U^T - I|`` is summed in float64 term by term from the Gram and the inverse norms, in a
    fixed order per layer (:func:`filterdb.kernels.ortho_block`; for ``out > block``: row blocks
    of the Gram, norms in float64 first). The value differs from an all-float64 computation by
    ~1e-8 (at most 1e-6 is tested).

    Parameters
    ----------
    W : array_like, shape (n, d)
        Rows of output channel ``o`` at ``o*in .. (o+1)*in - 1``.
    out_channels : int, float or None
        Number of output channels.
    block : int
        Rows of ``U`` per block of the Gram.

    Returns
    -------
    float
        1 for orthogonal channels; NaN when ``out_channels`` is missing/NaN, ``n % out != 0`` or
        ``out < 2`` (see :func:`orthogonality_note`).
    """
    if orthogonality_note(_as_filters(W).shape[0], out_channels):
        return math.nan
    return float(orthogonality_many(_as_filters(W)[None], int(round(float(out_channels))), block)[0])


def orthogonality_many(W: np.ndarray, out: int, block: int = 1024) -> np.ndarray:
    """:func:`orthogonality` of several layers of one shape at once (one batched product: the
    sums pass groups a block's layers by shape, so small layers cost no per-layer Python).

    Parameters
    ----------
    W : (G, n, d) array_like
        ``G`` layers of ``n`` filters each, ``n`` a multiple of ``out``.
    out : int
        Output channels of every layer (at least 2).
    block : int
        Rows of ``U`` per block of the Gram.

    Returns
    -------
    (G,) float64 ndarray
    """
    W = np.asarray(W)
    G = W.shape[0]
    W = W.reshape(G, out, -1)
    W32 = W if W.dtype == np.float32 else W.astype(np.float32)
    one = out <= block
    if one:  # the Gram of the raw rows; its diagonal gives the norms (no normalised copy of W)
        gram = np.matmul(W32, W32.transpose(0, 2, 1))
        i = np.arange(out)
        sq = gram[:, i, i].astype(np.float64)
    else:  # row blocks of the Gram: the norms first
        sq = np.einsum("gij,gij->gi", W, W, dtype=np.float64)
    inv = np.divide(1.0, np.sqrt(sq), out=np.zeros_like(sq), where=sq > 0)  # zero rows stay zero
    # sum_ab |G_ab| inv_a inv_b with the diagonal's terms t replaced by |t - 1|, compiled
    # (filterdb.kernels.ortho_block: no out x out float64 temporaries, and a fixed order of the
    # additions per layer, so a layer's value does not depend on the batch it is computed in)
    from . import compiled

    kernel = compiled.load().ortho_block
    inv = np.ascontiguousarray(inv)
    total = np.zeros(G)
    for a in range(0, out, block):
        g = gram if one else np.matmul(W32[:, a : a + block], W32.transpose(0, 2, 1))  # float32 product
        kernel(np.ascontiguousarray(g, np.float32), inv, a, total)
    return 1.0 - total / (out * (out - 1))


def orthogonality_note(n: int, out_channels) -> int:
    """The note bit explaining why orthogonality is NaN.

    Parameters
    ----------
    n : int
        Number of filters of the layer.
    out_channels : int, float or None
        Number of output channels (missing: None, NaN or ``pandas.NA``).

    Returns
    -------
    int
        :data:`NOTE_EMPTY` (no filters), :data:`NOTE_NO_OUT`, :data:`NOTE_NOT_MULTIPLE`,
        :data:`NOTE_ONE_OUT`, or 0 when defined.
    """
    if n == 0:
        return NOTE_EMPTY
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


def _layer_result(
    W: np.ndarray, out_channels, n_sparse: int, n_clean: int, absmax: float, entropy: float, entropy_clean: float
) -> dict:
    """The result dict of :func:`layer_quality` from its computed pieces (notes, normalised
    entropy and orthogonality derived here, the same way for both implementations)."""
    n = W.shape[0]
    notes = orthogonality_note(n, out_channels)
    if W.shape[1] != STUDY.size:
        notes |= NOTE_NO_FIT
    if n < 2:
        notes |= NOTE_FEW_FILTERS
    if n <= 2:
        notes |= NOTE_NO_THRESHOLD
    if n and absmax == 0.0:
        notes |= NOTE_ALL_ZERO
    if n_clean < 2:
        notes |= NOTE_FEW_CLEAN
    return {
        "n_filters": n,
        "n_sparse": n_sparse,
        "sparsity": n_sparse / n if n else math.nan,
        "variance_entropy": entropy,
        "variance_entropy_norm": _entropy_norm(entropy, n, W.shape[1]),
        "variance_entropy_clean": entropy_clean,
        "orthogonality": math.nan if notes & _NO_ORTHOGONALITY else orthogonality(W, out_channels),
        "absmax": absmax,
        "notes": notes,
    }


def layer_quality(W: np.ndarray, out_channels=None, eps: float | None = None) -> dict:
    """Every metric of one layer (numpy reference implementation).

    Parameters
    ----------
    W : array_like, shape (n, d)
        The unscaled filters of one layer.
    out_channels : int, float or None
        Output channels of the layer (for orthogonality; missing: NaN orthogonality).
    eps : float, optional
        Sparsity threshold (see :func:`sparse_mask`).

    Returns
    -------
    dict
        ``n_filters`` (int), ``n_sparse`` (int), ``sparsity``, ``variance_entropy``,
        ``variance_entropy_norm``, ``variance_entropy_clean``, ``orthogonality``, ``absmax``
        (floats) and ``notes`` (int bit mask, :data:`NOTES`).

    Examples
    --------
    >>> q = layer_quality(np.zeros((32, 9)), out_channels=4)
    >>> q["sparsity"], q["variance_entropy"], note_text(q["notes"] & NOTE_ALL_ZERO)
    (1.0, 0.0, 'all-zero layer: sparsity 1, entropy 0 by convention')
    """
    W = _as_filters(W)
    n = W.shape[0]
    mask = sparse_mask(W, eps)
    absmax = float(np.max(np.abs(W))) if n else math.nan
    return _layer_result(
        W, out_channels, int(mask.sum()), int((~mask).sum()), absmax, variance_entropy(W), variance_entropy(W[~mask])
    )


def note_text(bits: int) -> str:
    """The texts of the set note bits.

    Parameters
    ----------
    bits : int
        Bit mask of :data:`NOTES`.

    Returns
    -------
    str
        ``"; "``-joined texts ('' when no bit is set).
    """
    bits = int(bits)
    return "; ".join(text for bit, text in NOTES.items() if bits & bit)


def layer_quality_fast(W: np.ndarray, out_channels=None, eps: float | None = None) -> dict:
    """:func:`layer_quality` with sparsity and both centred scatter matrices from one compiled pass,
    the metrics by :func:`from_moments` (the passes' implementation).

    Uses :func:`filterdb.kernels.layer_moments` (numba); equal to :func:`layer_quality` up to
    float64 rounding (tested). Falls back to :func:`layer_quality` without numba or for an empty
    layer.

    Parameters
    ----------
    W : array_like, shape (n, d)
    out_channels : int, float or None
    eps : float, optional

    Returns
    -------
    dict
        As :func:`layer_quality`.
    """
    from .kernels import HAVE_NUMBA, layer_moments

    W = _as_filters(W)
    n = W.shape[0]
    if not HAVE_NUMBA or n == 0:
        return layer_quality(W, out_channels, eps)
    eps = default_eps() if eps is None else eps
    absmax, n_sparse, n_clean, g_all, g_clean = layer_moments(W, eps)
    ortho = math.nan if orthogonality_note(n, out_channels) else orthogonality(W, out_channels)
    out = math.nan if out_channels is None else out_channels
    q = from_moments([n], [absmax], [n_sparse], [n_clean], g_all[None], g_clean[None], [ortho], [out])
    ints = ("n_filters", "n_sparse", "notes")
    return {k: int(v[0]) if k in ints else float(v[0]) for k, v in q.items()}


def from_moments(n, absmax, n_sparse, n_clean, g_all, g_clean, ortho, out_channels) -> dict:
    """The per-layer quality metrics (docs/method.md §9) from the moments of the sums pass,
    vectorised over layers: the one implementation the passes, ``inspect`` and
    :func:`layer_quality_fast` use (equal to the numpy reference :func:`layer_quality` to float64
    rounding, tested).

    Parameters
    ----------
    n, n_sparse, n_clean : (k,) int
        Filters, sparse filters and non-sparse filters per layer.
    absmax : (k,) float
        Peak ``|w|`` per layer.
    g_all, g_clean : (k, d, d) float
        Centred scatter matrices of all / non-sparse filters.
    ortho : (k,) float
        Orthogonality (NaN where not computed).
    out_channels : (k,) float
        Output channels per layer (NaN when unknown).

    Returns
    -------
    dict of (k,) arrays, keys :data:`FIELDS`.
    """
    n = np.asarray(n, np.int64)
    absmax = np.asarray(absmax, np.float64)
    width = int(np.shape(g_all)[-1])  # values per filter
    notes = np.array([orthogonality_note(int(a), b) for a, b in zip(n, out_channels)], np.int64)
    if width != STUDY.size:
        notes |= NOTE_NO_FIT
    notes |= np.where(n < 2, NOTE_FEW_FILTERS, 0)
    notes |= np.where(n <= 2, NOTE_NO_THRESHOLD, 0)
    notes |= np.where((n > 0) & (absmax == 0.0), NOTE_ALL_ZERO, 0)
    notes |= np.where(np.asarray(n_clean) < 2, NOTE_FEW_CLEAN, 0)
    h = entropies(g_all, n)
    t = np.asarray(entropy_threshold(np.maximum(n, 1), width), np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.where((t > 0) & ~np.isnan(h), h / np.where(t > 0, t, 1.0), np.nan)
        sparsity = np.where(n > 0, n_sparse / np.maximum(n, 1), np.nan)
    no_ortho = (notes & _NO_ORTHOGONALITY) != 0
    return {
        "n_filters": n,
        "n_sparse": np.asarray(n_sparse, np.int64),
        "sparsity": sparsity,
        "variance_entropy": h,
        "variance_entropy_norm": norm,
        "variance_entropy_clean": entropies(g_clean, np.asarray(n_clean, np.int64)),
        "orthogonality": np.where(no_ortho, np.nan, ortho),
        "absmax": np.where(n > 0, absmax, np.nan),
        "notes": notes,
    }


def entropies(g: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Variance entropy (log10) of each layer from its centred scatter matrix (k, d, d); NaN for n < 2."""
    out = np.full(n.size, np.nan)
    ok = n >= 2
    if not ok.any():
        return out
    ev = np.linalg.eigvalsh((g[ok] + np.swapaxes(g[ok], 1, 2)) / 2.0)[:, ::-1]
    v = np.clip(ev, 0.0, None) / (n[ok] - 1)[:, None]
    total = v.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = v / np.where(total > 0, total, 1.0)[:, None]
        h = -np.sum(np.where(p > 0, p * np.log10(np.where(p > 0, p, 1.0)), 0.0), axis=1)
    out[ok] = np.where(total > 0, h, 0.0)
    return out
