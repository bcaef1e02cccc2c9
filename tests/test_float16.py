"""precision: float16 is the study's notebook exactly (docs/method.md §1), on float64 and float32
DBs of both layouts, read straight from the file: every stored value rounded once to float16 (never
through float32), each scaled value the float32 quotient of two float16 values rounded to float16,
then float64. Checked against the notebook's cells restated in numpy, on values at float16 rounding
ties, where float64 -> float32 -> float16 differs from float64 -> float16, at quotient ties and in
the subnormal range; and against `filterdb convert` to float16 (bit-identical results)."""

import h5py
import numpy as np
import pytest

from filterdb import pipeline, scaling
from filterdb.axes import axes_from_config
from filterdb.histogram import uniform_edges
from filterdb.synth import write_synth_db
from tests.conftest import DEFAULT_AXES

AXES = axes_from_config(DEFAULT_AXES)
F16_MIN_SUB = 2.0**-24


def _hard_values(rng, n_rows: int) -> np.ndarray:
    """(n_rows, 9) float64 weights: ordinary ones plus rows built to hit every rounding case."""
    x = rng.standard_normal((n_rows, 9)) * 10.0 ** rng.integers(-3, 1, (n_rows, 1))
    h = rng.integers(1, 0x7BFE, 4000).astype(np.uint16).view(np.float16).astype(np.float64)
    up = np.nextafter(h.astype(np.float16), np.float16(np.inf)).astype(np.float64)
    tie = (h + up) / 2  # exactly half-way between two float16 values
    # just above a tie, but within float32's rounding of it: float32 rounds to the tie, then
    # float16 to even (down half the time); float64 -> float16 directly rounds up
    double = tie + np.abs(tie) * 2.0**-30
    sub = rng.integers(1, 1024, 2000) * F16_MIN_SUB * rng.choice([0.5, 1.0, 1.5], 2000)  # subnormal, ties
    special = np.concatenate([tie, -tie, double, -double, sub, -sub])
    flat = x.reshape(-1)
    pos = rng.choice(flat.size, special.size, replace=False)
    flat[pos] = special
    # quotient ties: a power-of-two peak and odd multiples of the smallest subnormal beside it
    k = min(200, n_rows // 4)
    rows = rng.choice(n_rows, k, replace=False)
    x[rows] = rng.integers(1, 64, (k, 9)) * F16_MIN_SUB * 3
    x[rows, 4] = 2.0 ** rng.integers(-3, 3, k)
    x[rows[:5]] = 0.0  # all-zero filters: divided by 1
    return x


def _write(tmp_path, layout: str, dtype: str):
    """A synthetic DB of ``layout`` whose filters are :func:`_hard_values` stored as ``dtype``."""
    p = tmp_path / f"db_{layout}_{dtype}.h5"
    shape3x3 = layout == "v1.0"  # the published v1.0 file is (N, 3, 3); v0.1 (N, 9)
    write_synth_db(p, layout=layout, shape3x3=shape3x3, seed=4, n_models=8)
    with h5py.File(p, "a") as f:
        key = "filters" if "filters" in f else "filter"
        shape = f[key].shape
        del f[key]
        x = _hard_values(np.random.default_rng(9), shape[0]).astype(dtype)
        f.create_dataset(key, data=x.reshape(shape))  # contiguous, uncompressed: read straight
    return str(p), x.reshape(-1, 9)


def _notebook(x: np.ndarray) -> np.ndarray:
    """The study's cells in numpy: ``dX = x.astype(np.float16)``, ``dX / np.abs(dX).max(axis=1)``
    in float16 (an all-zero row divided by 1), then float64 for the PCA."""
    dX = x.reshape(-1, 9).astype(np.float16)
    peak = np.abs(dX).max(axis=1)[:, None]
    peak[peak == 0] = 1
    return (dX / peak).astype(np.float64)


@pytest.mark.parametrize(
    "layout,dtype", [("v1.0", "float64"), ("v0.1", "float64"), ("v1.0", "float32"), ("v0.1", "float32")]
)
def test_float16_mode_is_the_notebook(tmp_path, layout, dtype, capfd):
    path, x = _write(tmp_path, layout, dtype)
    if dtype == "float64":  # the cases this test is about are there
        via32 = x.astype(np.float32).astype(np.float16)
        assert (via32 != x.astype(np.float16)).sum() > 1000
    a = pipeline.analyse(path, AXES, precision="float16", bins=70)
    err = capfd.readouterr().err
    assert "read: contiguous" in err and f"{dtype} ({9 * np.dtype(dtype).itemsize} B/filter) loaded as float16" in err
    X = _notebook(x)
    layers = a.db.layers
    # the global PCA of the notebook's values (sklearn upcasts them to float64)
    mean = X.mean(axis=0)
    cov = np.cov(X, rowvar=False)
    np.testing.assert_allclose(a.pca.mean, mean, rtol=0, atol=1e-14)
    np.testing.assert_allclose(a.pca.covariance, cov, rtol=0, atol=1e-14)
    for j, (s, e) in enumerate(zip(layers["row_start"], layers["row_end"])):
        np.testing.assert_allclose(a.sums["sum"][j], X[s:e].sum(axis=0), rtol=0, atol=1e-11)
    # the scaled values bit for bit: their coefficients' range and every histogram count (the
    # coefficients are formed in the same order as scaling.coefficients)
    c = scaling.coefficients(X, a.pca.mean, a.pca.components)
    assert a.range == (float(c.min()), float(c.max()))
    edges = uniform_edges(*a.range, 70)
    for j, (s, e) in enumerate(zip(layers["row_start"], layers["row_end"])):
        for i in range(9):
            assert np.array_equal(a.hist["counts"][j, i], np.histogram(c[s:e, i], bins=edges)[0]), (j, i)


def test_float32_and_float64_modes(tmp_path):
    """float32 (default) analyses a float64 DB as its float32 copy; float64 as stored."""
    path, x = _write(tmp_path, "v1.0", "float64")
    for prec, vals in (("float32", x.astype(np.float32)), ("float64", x)):
        a = pipeline.analyse(path, AXES, precision=prec)
        X = scaling.scale_filters(vals)
        np.testing.assert_allclose(a.pca.mean, X.mean(axis=0), rtol=0, atol=1e-14)
        c = scaling.coefficients(X, a.pca.mean, a.pca.components)
        assert a.range == (float(c.min()), float(c.max())), prec


def test_converted_float16_db_gives_identical_results(tmp_path):
    """`filterdb convert --dtype float16` of a float64 DB, analysed with precision float16, gives
    exactly the numbers of the float64 original analysed in float16 mode (a quarter of the bytes)."""
    from filterdb import cli

    path, _ = _write(tmp_path, "v1.0", "float64")
    out = tmp_path / "f16.h5"
    assert cli.main(["convert", path, "-o", str(out), "--dtype", "float16", "-q"]) == 0
    a = pipeline.analyse(path, AXES, precision="float16", quality={"eps": 0.01})
    b = pipeline.analyse(str(out), AXES, precision="float16", quality={"eps": 0.01})
    for name in ("sums", "hist"):
        ra, rb = getattr(a, name), getattr(b, name)
        assert sorted(ra) == sorted(rb)
        for k in ra:
            assert np.array_equal(ra[k], rb[k], equal_nan=True), (name, k)
    assert a.range == b.range
    for axis in a.drift:
        assert a.drift[axis].equals(b.drift[axis]), axis
    with h5py.File(out, "r") as f:
        assert f["filters"].dtype == np.float16


@pytest.mark.parametrize("d", [9, 25])
def test_kernels_read_every_float16_bit_pattern_exactly(d):
    """The kernels' load of float16 rows (uint16 bit patterns, numba has no float16) and the
    compiled float16 -> float32 conversion give numpy's values for all 65,536 patterns: normal,
    subnormal, signed zeros, inf and NaN (counted as nonfinite); rows of 9 values (3x3 filters)
    and of 25 (5x5)."""
    from filterdb import compiled

    k = compiled.load()
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    x = np.concatenate([bits, np.zeros(-bits.size % d, np.uint16)]).reshape(-1, d)
    out = np.empty(x.shape, np.float32)
    k.half_to_float32(x, out)
    ref = x.view(np.float16).astype(np.float32)
    assert np.array_equal(out, ref, equal_nan=True) and np.array_equal(np.signbit(out), np.signbit(ref))
    vals = x.view(np.float16).astype(np.float64)
    L = x.shape[0]
    ls = np.arange(L, dtype=np.int64)  # one row per layer: each row's sums are its scaled values
    le = ls + 1
    n, nonfinite, first = (np.zeros(L, np.int64) for _ in range(3))
    s1, s2 = np.zeros((L, d)), np.zeros((L, d, d))
    z = (np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, d, d)), np.zeros((0, d, d)))
    grid = (np.zeros(0), np.zeros((0, 0), np.int64))  # no eps grid (quality off)
    k.sums_block(x, ls, le, ls.copy(), True, 2, n, s1, s2, nonfinite, first, False, 0.01, *z, *grid)
    fin = np.isfinite(vals).all(axis=1)
    assert np.array_equal(nonfinite, (~fin).astype(np.int64))
    assert np.array_equal(s1[fin], scaling.scale_filters(vals[fin]))
