"""The compiled kernels for any filter width: rows of d = k * k values (9, 25, 49 and the edge case
d = 1), every stored dtype (float16 as its bit patterns, float32, float64) and every precision,
against plain numpy computations of the same values on data made here (bit for bit where the
kernels promise it), and a clear error for arrays of mismatched widths."""

import numpy as np
import pytest

from filterdb import compiled, exactsum, kernels, scaling
from filterdb.histogram import uniform_edges

pytestmark = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba not installed")

WIDTHS = [1, 9, 25, 49]
PREC_NAME = {v: k for k, v in scaling.PRECISIONS.items()}
SIZES = [1, 7, 64, 65, 300, 0, 129, 200]


def rows(d, dtype, seed=0):
    """Rows (n, d) in layers of SIZES, with an all-zero row, a NaN row, a row too large for
    float16 and a sparse row; ``x`` as the kernels read it (float16 as bits) and its values."""
    rng = np.random.default_rng(seed + d)
    n = sum(SIZES)
    v = rng.standard_normal((n, d)) * 0.1
    v[5] = 0.0
    v[70, d // 2] = np.nan
    v[71, 0] = 1e5  # inf in float16
    v[400] *= 1e-4
    with np.errstate(over="ignore"):
        v = v.astype(dtype)
    le = np.cumsum(SIZES).astype(np.int64)
    ls = le - np.asarray(SIZES, np.int64)
    lp = np.arange(len(SIZES), dtype=np.int64)[::-1].copy()
    return scaling.half_bits(v), v, ls, le, lp


def loaded(v, prec):
    """The values the arithmetic starts from (numpy's conversions: one rounding to nearest even)."""
    with np.errstate(over="ignore"):
        if prec == 1:
            return v.astype(np.float16).astype(np.float64)
        if prec == 0:
            return v.astype(np.float32).astype(np.float64)
    return v.astype(np.float64)


def basis(d, c, seed=1):
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return rng.standard_normal(d) * 0.05, np.ascontiguousarray(q[:, :c].T)


def lane_sums(S):
    """Sums of the rows of S and of their outer products in the kernels' documented order: row
    ``BATCH * b + r`` added to partial sum ``r`` (b in order), the partial sums then added in order."""
    B = kernels.BATCH
    n, d = S.shape
    blocks = np.zeros((-(-n // B), B, d))
    blocks.reshape(-1, d)[:n] = S
    l1, l2 = np.zeros((B, d)), np.zeros((B, d, d))
    for blk in blocks:
        l1 += blk
        l2 += blk[:, :, None] * blk[:, None, :]
    t1, t2 = np.zeros(d), np.zeros((d, d))
    for r in range(B):
        t1 += l1[r]
        t2 += l2[r]
    return t1, t2


@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("prec", [0, 1, 2])
def test_block_kernels_any_width_equal_numpy(d, dtype, prec):
    """sums (with quality and the eps grid), range and hist (fine cells, a 2-D density pair, a
    fixed range) of rows of d values equal numpy's computation of the same values."""
    x, v, ls, le, lp = rows(d, dtype)
    L = len(ls)
    t = loaded(v, prec)
    fin = np.isfinite(t).all(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = scaling.scale_as(v, PREC_NAME[prec])
    scaled[~fin] = 0.0  # dropped rows (drop=True) are added as zeros

    n, s1, s2 = np.zeros(L, np.int64), np.zeros((L, d)), np.zeros((L, d, d))
    nonfinite, first_bad = np.zeros(L, np.int64), np.full(L, -1, np.int64)
    absmax, n_sparse, n_clean = np.zeros(L), np.zeros(L, np.int64), np.zeros(L, np.int64)
    g_all, g_clean = np.zeros((L, d, d)), np.zeros((L, d, d))
    grid = np.array([0.001, 0.01, 0.1, 0.5])
    n_grid = np.zeros((L, grid.size), np.int64)
    kernels.sums_block(
        x, ls, le, lp, True, prec, n, s1, s2, nonfinite, first_bad, True, 0.01, absmax, n_sparse, n_clean,
        g_all, g_clean, grid, n_grid,
    )  # fmt: skip
    for j, (a, b) in enumerate(zip(ls, le)):
        p = lp[j]
        f = fin[a:b]
        assert n[p] == f.sum() and nonfinite[p] == (~f).sum()
        assert first_bad[p] == (np.flatnonzero(~f)[0] if (~f).any() else -1)
        w1, w2 = lane_sums(scaled[a:b])
        assert np.array_equal(s1[p], w1) and np.array_equal(s2[p], w2), (j, d)
        np.testing.assert_allclose(s1[p], scaled[a:b].sum(axis=0), rtol=1e-12, atol=1e-12)
        if b == a:
            continue
        w = t[a:b][f]
        peak = np.abs(w).max(axis=1)
        am = peak.max() if w.size else 0.0
        assert absmax[p] == am
        sparse = peak < (np.inf if am == 0.0 else 0.01 * am)
        assert n_sparse[p] == sparse.sum() and n_clean[p] == f.sum() - sparse.sum()
        for e, eps in enumerate(grid):
            assert n_grid[p, e] == (peak < (np.inf if am == 0.0 else eps * am)).sum()
        for got, sub in ((g_all[p], w), (g_clean[p], w[~sparse])):
            c = sub - sub.mean(axis=0) if len(sub) else sub
            np.testing.assert_allclose(got, c.T @ c, rtol=1e-9, atol=1e-12 * max(1.0, am) ** 2)
            assert np.array_equal(got, got.T)

    c = max(1, d - 2)  # fewer components than values (c == d for d = 1)
    mean, comps = basis(d, c)
    coef = scaling.coefficients(scaled, mean, comps)  # the numpy reference, same order of terms
    np.testing.assert_allclose(coef, (scaled - mean) @ comps.T, atol=1e-13)
    cmin, cmax = np.full((L, c), np.inf), np.full((L, c), -np.inf)
    kernels.range_block(x, ls, le, lp, True, prec, mean, comps, cmin, cmax)
    edges, fedges, xedges = uniform_edges(-1.5, 1.5, 70), uniform_edges(-1.5, 1.5, 256), uniform_edges(-0.5, 0.5, 20)
    counts, fine = np.zeros((L, c, 70), np.uint32), np.zeros((3, c, 256), np.uint32)
    pairs = np.array([[0, c - 1], [c // 2, 0]], np.int64)
    dens = np.zeros((2, 32, 32), np.uint32)
    fixed, outside = np.zeros((L, c, 20), np.uint32), np.zeros((L, c), np.int64)
    lcell = (lp % 4 - 1).astype(np.int64)  # cells 0..2, -1: none
    kernels.hist_block(
        x, ls, le, lp, True, prec, mean, comps, edges, counts, lcell, fedges, fine, pairs, -1.0, 1.0, 32, dens,
        xedges, fixed, outside,
    )  # fmt: skip
    want_fine = np.zeros_like(fine)
    want_dens = np.zeros_like(dens)
    for j, (a, b) in enumerate(zip(ls, le)):
        p = lp[j]
        cj = coef[a:b][fin[a:b]]
        if len(cj):
            assert np.array_equal(cmin[p], cj.min(axis=0)) and np.array_equal(cmax[p], cj.max(axis=0)), (j, d)
        for i in range(c):
            assert np.array_equal(counts[p, i], np.histogram(cj[:, i], bins=edges)[0]), (j, i)
            assert np.array_equal(fixed[p, i], np.histogram(cj[:, i], bins=xedges)[0]), (j, i)
            assert outside[p, i] == ((cj[:, i] < xedges[0]) | (cj[:, i] > xedges[-1])).sum()
            if lcell[j] >= 0:
                want_fine[lcell[j], i] += np.histogram(cj[:, i], bins=fedges)[0].astype(np.uint32)
        for q, (qx, qy) in enumerate(pairs):
            tx, ty = cj[:, qx], cj[:, qy]
            inr = (tx >= -1.0) & (tx < 1.0) & (ty >= -1.0) & (ty < 1.0)
            ix = ((tx[inr] + 1.0) * (32 / 2.0)).astype(np.int64)
            iy = ((ty[inr] + 1.0) * (32 / 2.0)).astype(np.int64)
            keep = (ix < 32) & (iy < 32)
            np.add.at(want_dens[q], (ix[keep], iy[keep]), 1)
    assert np.array_equal(fine, want_fine) and np.array_equal(dens, want_dens)
    assert counts.sum() > 0 and fine.sum() > 0 and dens.sum() > 0 and fixed.sum() > 0


@pytest.mark.parametrize("dtype,prec", [(np.float16, 1), (np.float32, 0), (np.float64, 2)])
def test_fixed_width_variant_equals_any_width_variant(dtype, prec):
    """For 3x3 filters the block kernels run a variant compiled with the width as a constant:
    bit-identical to the variant that reads it from the arrays, on the same rows."""
    x, _, ls, le, lp = rows(9, dtype)
    L = len(ls)
    mean, comps = basis(9, 9)

    def sums(f):
        out = [np.zeros(L, np.int64), np.zeros((L, 9)), np.zeros((L, 9, 9)), np.zeros(L, np.int64)]
        out += [np.full(L, -1, np.int64)]
        q = [np.zeros(L), np.zeros(L, np.int64), np.zeros(L, np.int64), np.zeros((L, 9, 9)), np.zeros((L, 9, 9))]
        grid = [np.array([0.01, 0.1]), np.zeros((L, 2), np.int64)]
        f(x, ls, le, lp, True, prec, *out, True, 0.01, *q, *grid)
        return out + q + grid[1:]

    def ranges(f):
        out = [np.full((L, 9), np.inf), np.full((L, 9), -np.inf)]
        f(x, ls, le, lp, True, prec, mean, comps, *out)
        return out

    def hists(f):
        out = [np.zeros((L, 9, 30), np.uint32), np.zeros((2, 9, 64), np.uint32), np.zeros((1, 16, 16), np.uint32)]
        out += [np.zeros((L, 9, 10), np.uint32), np.zeros((L, 9), np.int64)]
        e, fe, xe = uniform_edges(-1.5, 1.5, 30), uniform_edges(-1.5, 1.5, 64), uniform_edges(-0.5, 0.5, 10)
        f(
            x, ls, le, lp, True, prec, mean, comps, e, out[0], (lp % 3 - 1).astype(np.int64), fe, out[1],
            np.array([[0, 1]], np.int64), -1.0, 1.0, 16, out[2], xe, out[3], out[4],
        )  # fmt: skip
        return out

    for run, public, fixed, anyw in (
        (sums, kernels.sums_block, kernels._sums_fixed, kernels._sums_any),
        (ranges, kernels.range_block, kernels._range_fixed, kernels._range_any),
        (hists, kernels.hist_block, kernels._hist_fixed, kernels._hist_any),
    ):
        a, b, c = run(public), run(fixed), run(anyw)
        assert all(u.tobytes() == v.tobytes() == w.tobytes() for u, v, w in zip(a, b, c)), run.__name__
        assert a[0].any()


@pytest.mark.parametrize("d", WIDTHS)
def test_row_kernels_any_width(d):
    """scale_filters, coefficients, layer_moments, column_range, histogram_columns,
    half_to_float32 and the exact-sum limbs on rows of d values against numpy."""
    rng = np.random.default_rng(d)
    w = rng.standard_normal((3000, d)).astype(np.float32)
    w[:10] = 0.0
    w[10:20, d - 1] = -50.0
    got = kernels.scale_filters(w)
    peak = np.abs(w.astype(np.float64)).max(axis=1, keepdims=True)
    assert np.array_equal(got, w / np.where(peak == 0, 1.0, peak)) and np.array_equal(got, scaling.scale_filters(w))
    k = max(1, d // 2)
    mean, comps = basis(d, k)
    c = kernels.coefficients(got, mean, comps)
    assert c.shape == (3000, k) and np.array_equal(c, scaling.coefficients(got, mean, comps))
    want = np.zeros((3000, k))
    for i in range(k):  # the dot products term by term, j = 0 .. d - 1
        acc = (got[:, 0] - mean[0]) * comps[i, 0]
        for j in range(1, d):
            acc = acc + (got[:, j] - mean[j]) * comps[i, j]
        want[:, i] = acc
    assert np.array_equal(c, want)
    lo, hi = kernels.column_range(c)
    assert np.array_equal(lo, c.min(axis=0)) and np.array_equal(hi, c.max(axis=0))
    edges = uniform_edges(c.min(), c.max(), 40)
    h = kernels.histogram_columns(c, edges)
    assert all(np.array_equal(h[i], np.histogram(c[:, i], bins=edges)[0]) for i in range(k))

    w[rng.random(3000) < 0.3] *= 1e-4  # sparse filters
    absmax, n_sparse, n_clean, g_all, g_clean = kernels.layer_moments(w, 0.01)
    x = w.astype(np.float64)
    pk = np.abs(x).max(axis=1)
    sparse = pk < 0.01 * pk.max()
    assert absmax == pk.max() and n_sparse == sparse.sum() and n_clean == 3000 - sparse.sum()
    for g, sub in ((g_all, x), (g_clean, x[~sparse])):
        cc = sub - sub.mean(axis=0)
        assert g.shape == (d, d)
        np.testing.assert_allclose(g, cc.T @ cc, rtol=1e-10, atol=1e-12)
    # k x k filters given as (n, k, k) are rows of k * k values
    if d > 1:
        side = int(round(d**0.5))
        np.testing.assert_array_equal(kernels.scale_filters(w.reshape(-1, side, side)), kernels.scale_filters(w))

    bits = rng.integers(0, 65536, (500, d)).astype(np.uint16)
    out = np.empty(bits.shape, np.float32)
    compiled.load().half_to_float32(bits, out)
    ref = bits.view(np.float16).astype(np.float32)
    assert np.array_equal(out, ref, equal_nan=True) and np.array_equal(np.signbit(out), np.signbit(ref))

    vals = rng.standard_normal((40, d, d)) * 10.0 ** rng.integers(-300, 300, (40, d, d))
    lim = compiled.exact_limbs(vals)
    assert lim.shape == (d, d, exactsum.N_LIMBS) and np.array_equal(lim, exactsum.limbs(vals))
    import math

    assert exactsum.round_limbs(lim)[d - 1, 0] == math.fsum(vals[:, d - 1, 0])


@pytest.mark.parametrize("channels", [1, 9, 25, 49])
def test_ortho_block_any_channel_count(channels):
    rng = np.random.default_rng(channels)
    g = rng.standard_normal((2, min(5, channels), channels)).astype(np.float32)
    inv = rng.random((2, channels))
    total = np.zeros(2)
    kernels.ortho_block(g, inv, 0, total)
    R = g.shape[1]
    want = [
        sum(abs(abs(float(g[j, r, c])) * inv[j, r] * inv[j, c] - (c == r)) for r in range(R) for c in range(channels))
        for j in range(2)
    ]
    np.testing.assert_allclose(total, want, rtol=1e-13)


def test_mismatched_widths_raise():
    """Arrays whose widths disagree with the rows' raise a ValueError naming what was expected
    (both in the compiled kernels and in the Python wrappers), before anything is written."""
    x, _, ls, le, lp = rows(25, np.float32)
    L = len(ls)
    z = (np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 9, 9)), np.zeros((0, 9, 9)))
    n = np.zeros(L, np.int64)
    with pytest.raises(ValueError, match=r"s1 must be \(layers, d\)"):
        kernels.sums_block(
            x, ls, le, lp, True, 0, n, np.zeros((L, 9)), np.zeros((L, 9, 9)), np.zeros(L, np.int64),
            np.full(L, -1, np.int64), False, 0.01, *z, np.zeros(0), np.zeros((0, 0), np.int64),
        )  # fmt: skip
    assert not n.any()
    with pytest.raises(ValueError, match="g_all and g_clean"):
        kernels.sums_block(
            x, ls, le, lp, True, 0, n, np.zeros((L, 25)), np.zeros((L, 25, 25)), np.zeros(L, np.int64),
            np.full(L, -1, np.int64), True, 0.01, np.zeros(L), n.copy(), n.copy(), np.zeros((L, 9, 9)),
            np.zeros((L, 9, 9)), np.zeros(0), np.zeros((L, 0), np.int64),
        )  # fmt: skip
    mean, comps = basis(9, 9)
    with pytest.raises(ValueError, match=r"comps \(c, d\)"):
        kernels.range_block(x, ls, le, lp, True, 0, mean, comps, np.zeros((L, 9)), np.zeros((L, 9)))
    mean, comps = basis(25, 25)
    with pytest.raises(ValueError, match=r"cmin and cmax must be \(layers, c\)"):
        kernels.range_block(x, ls, le, lp, True, 0, mean, comps, np.zeros((L, 9)), np.zeros((L, 9)))
    e = uniform_edges(-1.0, 1.0, 10)
    hist = [np.zeros(1), np.zeros((0, 25, 1), np.uint32), np.zeros((0, 2), np.int64), -1.0, 1.0, 8]
    hist += [np.zeros((0, 8, 8), np.uint32), np.zeros(1), np.zeros((0, 25, 1), np.uint32), np.zeros((0, 25), np.int64)]
    counts = np.zeros((L, 9, 10), np.uint32)
    with pytest.raises(ValueError, match=r"counts must be \(layers, c, bins\)"):
        kernels.hist_block(x, ls, le, lp, True, 0, mean, comps, e, counts, np.full(L, -1, np.int64), *hist)
    hist[2] = np.array([[0, 25]], np.int64)
    with pytest.raises(ValueError, match="pairs must index coefficients"):
        kernels.hist_block(
            x, ls, le, lp, True, 0, mean, comps, e, np.zeros((L, 25, 10), np.uint32), np.full(L, -1, np.int64), *hist
        )
    for f in (kernels.coefficients, scaling.coefficients):
        with pytest.raises(ValueError, match=r"rows of 25 values: expected mean \(25,\) and components \(c, 25\)"):
            f(np.zeros((3, 25)), np.zeros(9), np.zeros((9, 9)))
    with pytest.raises(ValueError, match=r"expected \(n, d\) rows or \(\.\.\., k, k\) filters"):
        scaling.filter_rows(np.zeros((2, 3, 5)))
