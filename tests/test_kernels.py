"""The compiled kernels give bit-identical results to the numpy reference."""

import numpy as np
import pytest

from filterdb import histogram, kernels, scaling

pytestmark = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")


def test_scaling_bit_identical():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3000, 9)).astype(np.float32)
    w[:10] = 0.0  # all-zero filters are divided by 1
    w[10:20, 3] = -50.0  # negative peaks
    got = kernels.scale_filters(w)
    assert np.array_equal(got, scaling.scale_filters(w))
    assert np.all(got[:10] == 0) and np.all(got[10:20, 3] == -1.0) and np.abs(got).max() == 1.0


def test_coefficients_bit_identical():
    rng = np.random.default_rng(0)
    x = scaling.scale_filters(rng.standard_normal((5000, 9)).astype(np.float32))
    mean = rng.standard_normal(9) * 0.05
    comps = np.linalg.qr(rng.standard_normal((9, 9)))[0]
    assert np.array_equal(kernels.coefficients(x, mean, comps), scaling.coefficients(x, mean, comps))
    # and equal to a plain matmul up to rounding
    np.testing.assert_allclose(kernels.coefficients(x, mean, comps), (x - mean) @ comps.T, atol=1e-14)


def test_histogram_matches_numpy_including_edges():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((20000, 9))
    lo, hi = v.min(), v.max()
    edges = histogram.uniform_edges(lo, hi, 70)
    v[:70, 0] = edges[:70]  # values exactly on edges, and the right end
    v[70, 1] = hi
    v[71, 2] = lo - 1  # outside: not counted
    got = kernels.histogram_columns(v, edges)
    for c in range(9):
        want, _ = np.histogram(v[:, c], bins=70, range=(lo, hi))
        assert np.array_equal(got[c], want), c
