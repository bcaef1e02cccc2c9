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


@pytest.mark.parametrize("case", ["iid", "sparse", "zero", "one", "two", "offset", "far", "outlier_first", "rank1"])
def test_fused_layer_quality_equals_reference(case):
    from filterdb import quality

    rng = np.random.default_rng(5)
    w = rng.standard_normal((3000, 9)).astype(np.float32)
    if case == "sparse":
        w[rng.random(3000) < 0.6] *= 1e-4
    elif case == "zero":
        w[:] = 0
    elif case == "one":
        w = w[:1]
    elif case == "two":
        w = w[:2]
    elif case == "offset":
        w = w * 0.01 + 5.0
    elif case == "far":  # mean 1e6 spreads: the one-pass scatter is shifted by the first row
        w = (w.astype(np.float64) * 1e-3 + 1e3).astype(np.float32)
    elif case == "outlier_first":  # ... which here is far from the mean
        w[0] = 40.0
    elif case == "rank1":
        w = np.outer(rng.standard_normal(3000), rng.standard_normal(9)).astype(np.float32)
    out = 30 if w.shape[0] % 30 == 0 else None
    ref = quality.layer_quality(w, out, 0.01)
    got = quality.layer_quality_fast(w, out, 0.01)
    assert set(ref) == set(got)
    for k in ref:
        if isinstance(ref[k], float) and np.isnan(ref[k]):
            assert np.isnan(got[k]), k
        else:
            assert got[k] == pytest.approx(ref[k], rel=1e-10, abs=1e-12), (case, k)


def test_column_range_exact():
    rng = np.random.default_rng(9)
    v = rng.standard_normal((4000, 9))
    lo, hi = kernels.column_range(v)
    assert np.array_equal(lo, v.min(axis=0)) and np.array_equal(hi, v.max(axis=0))


def test_batch_bins_match_numpy_at_edges():
    """The hist pass bins a batch at once (branch-free estimate, then numpy's correction near an
    edge): every value exactly on an edge, one ulp either side of it, outside the range, NaN and
    Inf gets the bin ``np.histogram`` gives it (-1 when not counted), for small and huge ranges."""
    rng = np.random.default_rng(1)
    B = np.empty((9, kernels.BATCH), np.int64)
    checked = 0
    for _ in range(60):
        lo, hi = sorted(rng.standard_normal(2) * rng.choice([1e-3, 1.0, 1e3]))
        bins = int(rng.choice([1, 2, 7, 70, 1024]))
        e = histogram.uniform_edges(lo, hi, bins)
        vals = np.concatenate([e, np.nextafter(e, np.inf), np.nextafter(e, -np.inf), [np.nan, np.inf, -np.inf]])
        vals = np.concatenate([vals, rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), 500)])
        rng.shuffle(vals)
        vals = vals[: vals.size // 9 * 9]
        for s in range(0, vals.size, 9 * kernels.BATCH):
            chunk = vals[s : s + 9 * kernels.BATCH]
            nb = chunk.size // 9
            C = np.zeros((9, kernels.BATCH))
            C[:, :nb] = chunk.reshape(9, nb)
            kernels._batch_bins(nb, C, e[0], e[-1], bins / (e[-1] - e[0]), bins, e, B)
            for i in range(9):
                v = C[i, :nb]
                for r in range(nb):
                    want, _ = np.histogram(v[r : r + 1], bins=bins, range=(e[0], e[-1]))
                    assert B[i, r] == (int(np.argmax(want)) if want.any() else -1), (v[r], e[0], e[-1], bins)
                    checked += 1
    assert checked > 30_000
