"""Exact, order-independent sums of float64 values (for the global and subset PCA).

A float64 sum depends on the order of its terms. The PCA of a union of layers adds per-layer sums;
so that the result does not depend on how the layers were split into shards (or on which job adds
them), those sums are formed *exactly* and rounded once: every finite float64 is an integer
multiple of ``2**-SHIFT``, so a sum of them is an integer, held here as base-``2**12`` limbs.

Limbs are additive: the limbs of a union are the sum of the limbs of its parts (int64, exact), so a
shard job can store the limbs of its own layers and any later job can add those of all shards and
round once (:func:`round_limbs`). The rounded result equals :func:`fsum` of all the values (the
correctly rounded exact sum, as :func:`math.fsum`), whatever the split.

Examples
--------
>>> import numpy as np
>>> v = np.array([[1e16, 1.0], [1.0, 2.0], [-1e16, 3.0]])
>>> v.sum(axis=0)  # 1e16 + 1 rounds to 1e16
array([0., 6.])
>>> fsum(v)
array([1., 6.])
>>> round_limbs(limbs(v[:1]) + limbs(v[1:]))
array([1., 6.])
"""

from __future__ import annotations

import numpy as np

#: Bits per limb. A term's mantissa (53 bits) splits into 5 pieces of 12 bits; shifted by under 12
#: bits each piece is below 2**24, so float64 accumulation (np.bincount) stays exact for up to
#: 2**29 terms per limb.
LIMB_BITS = 12
#: Every finite float64 is ``M * 2**(q - SHIFT)`` with an integer ``|M| < 2**53`` and ``q >= 0``
#: (``frexp`` exponents reach -1073 for subnormals: ``-1073 - 53 = -1126``).
SHIFT = 1126
_PIECES = 5
#: Limbs per summed value: positions 0 .. 2097 (``1024 - 53 + SHIFT``) plus the 5 pieces.
N_LIMBS = (1024 - 53 + SHIFT) // LIMB_BITS + _PIECES + 1
_MAX_TERMS = 1 << 29


def columns(values: np.ndarray) -> tuple[np.ndarray, tuple]:
    """``values`` as a C-contiguous float64 ``(n, m)`` array of columns to sum, and the shape of
    one sum (``values.shape[1:]``); NaN or infinite values are refused (ValueError)."""
    v = np.asarray(values, np.float64)
    if v.ndim == 0:
        v = v.reshape(1)
    shape = v.shape[1:]
    flat = np.ascontiguousarray(v.reshape(v.shape[0], int(np.prod(shape, dtype=np.int64))))
    if not np.isfinite(flat).all():
        raise ValueError("exact sum of a NaN or infinite value")
    return flat, shape


def limbs(values: np.ndarray) -> np.ndarray:
    """Exact sum over axis 0 as limbs.

    Parameters
    ----------
    values : (n, ...) array_like of float64
        Finite values; the sum runs over the first axis.

    Returns
    -------
    (..., N_LIMBS) int64 ndarray
        Limb ``i`` weighs ``2**(LIMB_BITS * i - SHIFT)``; add limbs of disjoint parts to combine.

    Raises
    ------
    ValueError
        If a value is NaN or infinite, or more than 2**29 values are summed in one call.
    """
    flat, shape = columns(values)
    n, m = flat.shape
    out = np.zeros((m, N_LIMBS), np.int64)
    if n == 0 or m == 0:
        return out.reshape(shape + (N_LIMBS,))
    if n > _MAX_TERMS:
        raise ValueError(f"exact sum of {n} terms: at most {_MAX_TERMS} per call (split and add the limbs)")
    frac, exp = np.frexp(flat)
    mant = np.ldexp(frac, 53).astype(np.int64)  # exact: |frac| < 1 has 53 significant bits
    q = exp.astype(np.int64) - 53 + SHIFT
    sign = np.sign(mant)
    mag = np.abs(mant)
    base, off = np.divmod(q, LIMB_BITS)
    col = np.broadcast_to(np.arange(m, dtype=np.int64), (n, m))
    acc = np.zeros(m * N_LIMBS)
    for j in range(_PIECES):
        piece = (mag >> (LIMB_BITS * j)) & ((1 << LIMB_BITS) - 1)
        w = (sign * (piece << off)).astype(np.float64)  # |w| < 2**24: exact
        idx = col * N_LIMBS + base + j
        acc += np.bincount(idx.ravel(), weights=w.ravel(), minlength=m * N_LIMBS)
    out[:] = acc.reshape(m, N_LIMBS).astype(np.int64)
    return out.reshape(shape + (N_LIMBS,))


def round_limbs(lim: np.ndarray) -> np.ndarray:
    """The float64 nearest to the exact sum held in ``lim`` (round half to even).

    Parameters
    ----------
    lim : (..., N_LIMBS) int64 array_like
        Limbs from :func:`limbs` (possibly added over parts).

    Returns
    -------
    (...) float64 ndarray
    """
    lim = np.asarray(lim, np.int64)
    flat = lim.reshape(-1, N_LIMBS)
    res = np.empty(flat.shape[0])
    den = 1 << SHIFT
    for k, row in enumerate(flat):
        total = 0
        for i in np.flatnonzero(row)[::-1]:
            total += int(row[i]) << (LIMB_BITS * int(i))
        res[k] = total / den  # int / int is correctly rounded in Python
    return res.reshape(lim.shape[:-1])


def fsum(values: np.ndarray) -> np.ndarray:
    """Correctly rounded exact sum over axis 0 (``math.fsum`` per column, vectorised).

    Parameters
    ----------
    values : (n, ...) array_like of float64

    Returns
    -------
    (...) float64 ndarray
    """
    v = np.asarray(values, np.float64)
    if v.ndim and v.shape[0] > _MAX_TERMS:
        return round_limbs(sum(limbs(v[a : a + _MAX_TERMS]) for a in range(0, v.shape[0], _MAX_TERMS)))
    return round_limbs(limbs(v))
