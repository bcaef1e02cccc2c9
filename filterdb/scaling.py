"""Peak scaling of filters (docs/method.md §1) and PCA coefficients (§2)."""

from __future__ import annotations

import numpy as np

#: ``prec`` of the pass kernels: how a stored value becomes the float64 the arithmetic starts from.
#: FLOAT32: rounded to float32 (a float64 DB analysed as a float32 copy of it would be); FLOAT16:
#: the study's notebook exactly (docs/method.md §1): rounded straight to float16, and each scaled
#: value is the float32 quotient of two float16 values rounded to float16; FLOAT64: as stored.
PRECISIONS = {"float32": 0, "float16": 1, "float64": 2}


def half_bits(x: np.ndarray) -> np.ndarray:
    """A float16 array as the uint16 bit patterns the kernels read (numba has no float16)."""
    return x.view(np.uint16) if x.dtype == np.float16 else x


def values(x: np.ndarray, prec: int) -> np.ndarray:
    """The float32 values the kernels start from for rows ``x`` (any stored dtype; half bits as
    :func:`half_bits` gives them): what orthogonality's float32 Gram is formed from. numpy's
    conversions round once, to nearest, ties to even, as the kernels do."""
    if x.dtype == np.uint16:
        x = x.view(np.float16)
    if prec == 1 and x.dtype != np.float16:
        with np.errstate(over="ignore"):
            x = x.astype(np.float16)
    return np.asarray(x, dtype=np.float32)


def filter_rows(w: np.ndarray, width: int | None = None) -> np.ndarray:
    """Filters as rows of ``d`` values (``d = k * k`` for k x k filters), the width from the shape.

    Parameters
    ----------
    w : array_like
        ``(n, d)``: ``n`` filters as rows, as they are; ``(..., k, k)`` (three axes or more, e.g.
        ``(n, 3, 3)`` or ``(out, in, 5, 5)``): k x k filters, reshaped to ``(n, k * k)``; 1-D: one
        filter, or with ``width`` filters of ``width`` values one after the other. A single k x k
        filter is given as ``(1, k, k)`` (a 2-D array is rows).
    width : int, optional
        Values per filter of a 1-D ``w`` (its size must be a multiple); None: one filter.

    Returns
    -------
    (n, d) ndarray
        A view of ``w`` where possible, of its dtype.

    Raises
    ------
    ValueError
        For three axes or more whose last two differ (not k x k filters).

    Examples
    --------
    >>> filter_rows(np.zeros((4, 2, 5, 5))).shape
    (8, 25)
    """
    w = np.asarray(w)
    if w.ndim == 2:
        return w
    if w.ndim >= 3:
        if w.shape[-1] != w.shape[-2]:
            raise ValueError(f"filters of shape {w.shape}: expected (n, d) rows or (..., k, k) filters")
        return w.reshape(-1, w.shape[-2] * w.shape[-1])
    if width is not None:
        if w.size % width:
            raise ValueError(f"{w.size} values are not filters of {width} values")
        return w.reshape(-1, width)
    return w.reshape(1, -1)


def check_basis(d: int, mean: np.ndarray, components: np.ndarray) -> None:
    """A PCA basis for rows of width ``d``: ``mean`` ``(d,)``, ``components`` ``(c, d)`` with
    ``1 <= c <= d``; else ValueError naming the shapes."""
    mean, components = np.asarray(mean), np.asarray(components)
    if mean.shape != (d,) or components.ndim != 2 or components.shape[1] != d or not 1 <= components.shape[0] <= d:
        raise ValueError(
            f"PCA basis for rows of {d} values: expected mean ({d},) and components (c, {d}) with 1 <= c <= {d}, "
            f"got mean {mean.shape} and components {components.shape}"
        )


def scale_filters(w: np.ndarray) -> np.ndarray:
    """Divide each filter (row of ``d`` values) by its own peak ``max |w|``; all-zero rows are
    divided by 1.

    Computed in float64; every value of the result lies in [-1, 1].

    Parameters
    ----------
    w : array_like
        Filter weights as :func:`filter_rows` takes them: ``(n, d)`` rows (``d = k * k``, 9 for
        3x3 filters) or ``(..., k, k)`` filters (e.g. ``(n, 3, 3)``), reshaped to ``(n, d)``, one
        filter per row. Any real dtype.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(n, d)``: each row divided by its maximum absolute value. All-zero
        rows stay all zero.

    Examples
    --------
    >>> scale_filters(np.array([[0, 2, 0, 0, -4, 0, 0, 0, 1]]))
    array([[ 0.  ,  0.5 ,  0.  ,  0.  , -1.  ,  0.  ,  0.  ,  0.  ,  0.25]])
    """
    x = filter_rows(np.asarray(w, dtype=np.float64))
    peak = np.abs(x).max(axis=1)
    peak[peak == 0] = 1.0
    return x / peak[:, None]


def scale_as(raw: np.ndarray, precision: str) -> np.ndarray:
    """Peak-scale stored filter values as the passes do in ``precision`` (docs/method.md §1), in
    numpy: the reference the kernels are tested against, and what ``inspect`` and the filter grids
    use for the few rows they handle.

    * ``float16``: each stored value rounded straight to float16 (never through float32), the
      division in numpy's float16 arithmetic (the float32 quotient rounded to float16), as the
      study's notebook;
    * ``float32``: each stored value rounded to float32, then divided by the row's peak in float64;
    * ``float64``: the stored values divided in float64.

    An all-zero row is divided by 1.

    Parameters
    ----------
    raw : array_like
        Stored values, any float dtype: ``(m, d)`` rows or ``(m, k, k)`` filters (:func:`filter_rows`).
    precision : {"float16", "float32", "float64"}

    Returns
    -------
    (m, d) float64 ndarray

    Raises
    ------
    ValueError
        On an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    x = filter_rows(raw)
    if precision == "float16":
        with np.errstate(over="ignore", invalid="ignore"):
            h = x.astype(np.float16)
            peak = np.abs(h).max(axis=1) if h.size else np.zeros(0, np.float16)
            peak[peak == 0] = 1
            return (h / peak[:, None]).astype(np.float64)
    if precision == "float32":
        x = x.astype(np.float32)
    return scale_filters(x)


def coefficients(scaled: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """PCA coefficients ``c_i = (x - mean) . v_i`` for rows ``x`` of ``scaled``.

    The ``d``-term dot products are summed in a fixed order (``j = 0 .. d - 1``) with elementwise
    operations (no BLAS), so a filter gets bit-identical coefficients whatever block it is read in.

    Parameters
    ----------
    scaled : array_like
        Peak-scaled filters, shape ``(n, d)`` (see :func:`scale_filters`); converted to float64.
    mean : array_like
        PCA mean filter, shape ``(d,)``; converted to float64.
    components : array_like
        PCA components ``v_i`` as rows, shape ``(k, d)`` with ``1 <= k <= d``; converted to float64.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(n, k)``; column ``i`` holds ``c_i`` for every filter.

    Raises
    ------
    ValueError
        If ``scaled`` is not 2-D or the widths of ``scaled``, ``mean`` and ``components`` differ.
    """
    x = np.asarray(scaled, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"scaled filters: expected (n, d) rows, got shape {x.shape}")
    check_basis(x.shape[1], mean, components)
    d = x - np.asarray(mean, dtype=np.float64)
    comps = np.asarray(components, dtype=np.float64)
    out = np.empty((d.shape[0], comps.shape[0]), dtype=np.float64)
    for i in range(comps.shape[0]):
        acc = d[:, 0] * comps[i, 0]
        for j in range(1, d.shape[1]):
            acc += d[:, j] * comps[i, j]
        out[:, i] = acc
    return out
