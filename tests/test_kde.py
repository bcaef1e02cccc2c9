"""filterdb.kde's own FFTKDE (no SciPy import) against KDEpy itself, the oracle: the same doubles."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

from filterdb import kde

KDEpy = pytest.importorskip("KDEpy")
from KDEpy import FFTKDE  # noqa: E402
from KDEpy.kernel_funcs import gauss_integral, gaussian, volume_unit_ball  # noqa: E402


def kdepy_binned(counts, edges, bw, grid):
    """What filterdb.kde.binned_kde computed before: KDEpy's FFTKDE on the bin centres with counts."""
    centres = (edges[:-1] + edges[1:]) / 2
    keep = counts > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FFTKDE(kernel="gaussian", bw=float(bw)).fit(centres[keep], weights=counts[keep]).evaluate(grid)


def test_kernel_constants_are_kdepys():
    assert kde.GAUSS_NORM == gauss_integral(0)
    assert kde.UNIT_BALL_1D == volume_unit_ball(1, 2)
    x = np.linspace(-3, 3, 101).reshape(-1, 1)
    for bw in (0.01, 0.3, 1.0, 7.5):
        assert np.array_equal(kde._gaussian_weights(x, bw), gaussian(x, bw=bw))


def test_practical_support_is_kdepys_to_the_bit():
    rng = np.random.default_rng(0)
    bws = np.concatenate([rng.uniform(1e-4, 2, 3000), np.geomspace(1e-6, 50, 500), [1.0, 0.5, 2.0]])
    got = np.array([kde.gaussian_practical_support(float(b)) for b in bws])
    want = np.array([gaussian.practical_support(float(b)) for b in bws])
    assert np.array_equal(got, want)
    assert kde.gaussian_practical_support(1.0) == pytest.approx(kde.GAUSS_SUPPORT, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_binned_kde_is_fftkde_to_the_bit(seed):
    rng = np.random.default_rng(seed)
    cases = 0
    for trial in range(150):
        bins = int(rng.choice([70, 333, 1024]))
        lo = rng.uniform(-5, 0)
        edges = np.linspace(lo, lo + rng.uniform(0.1, 10), bins + 1)
        if trial % 3 == 0:
            x = rng.normal(rng.uniform(edges[0], edges[-1]), rng.uniform(0.01, 3), int(rng.integers(2, 50000)))
            counts = np.histogram(x, edges)[0]
        elif trial % 3 == 1:  # sparse, small counts
            counts = rng.integers(0, 5, bins) * (rng.random(bins) < 0.1)
        else:  # heavy tails
            counts = np.histogram(rng.standard_t(2, int(rng.integers(2, 5000))) * rng.uniform(0.01, 1), edges)[0]
        if counts.sum() < 2:
            continue
        bw = kde.silverman_bandwidth_binned(counts, edges) * (rng.uniform(1, 20) if trial % 5 == 0 else 1)
        grid = kde.kde_grid(edges, bw * rng.uniform(1, 2))
        got = kde.binned_kde(counts, edges, bw, grid)[1]
        assert np.array_equal(got, kdepy_binned(counts, edges, bw, grid)), (seed, trial)
        cases += 1
    assert cases > 100


def test_group_kdes_are_fftkde_to_the_bit():
    rng = np.random.default_rng(5)
    edges = np.linspace(-3.3, 3.3, 1025)
    counts = np.stack([[np.histogram(rng.normal(0, s, 20000), edges)[0] for s in (0.05, 0.3, 1.0)] for _ in range(2)])
    grid, dens, bws = kde.group_kdes(counts, edges)
    for g in range(2):
        for i in range(3):
            assert np.array_equal(dens[g, i], kdepy_binned(counts[g, i], edges, bws[g, i], grid))
            assert dens[g, i].sum() * (grid[1] - grid[0]) == pytest.approx(1, abs=1e-3)


def test_fft_cases_and_irregular_inputs_go_to_kdepy():
    # SciPy convolves by FFT only for very wide kernels on long grids: handed to KDEpy (same result)
    assert not kde._fft_would_be_chosen(1816, 301)
    assert kde._fft_would_be_chosen(6000, 5001)
    assert kde._fft_would_be_chosen(10, 11)
    edges = np.linspace(-1, 1, 2049)
    counts = np.histogram(np.random.default_rng(1).normal(0, 0.5, 5000), edges)[0]
    bw = 0.6  # kernel of 2 floor(support / h) + 1 ~ 5000 points: SciPy's FFT branch
    grid = kde.kde_grid(edges, bw)
    L = np.floor(kde.gaussian_practical_support(bw) / (grid[1] - grid[0]))
    assert kde._fft_would_be_chosen(grid.size, int(2 * L + 1))
    assert np.array_equal(kde.binned_kde(counts, edges, bw, grid)[1], kdepy_binned(counts, edges, bw, grid))
    with pytest.raises(ValueError, match="inside of the grid"):  # KDEpy's own check
        kde.fftkde_on_grid(np.array([5.0]), np.array([1.0]), 0.1, np.linspace(0, 1, 11))


def test_the_ridge_kde_imports_no_scipy():
    code = (
        "import sys, numpy as np; from filterdb import kde; e = np.linspace(-3.3, 3.3, 1025);"
        "c = np.histogram(np.random.default_rng(0).normal(0, .3, 9999), e)[0];"
        "kde.group_kdes(c[None, None], e);"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'KDEpy'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
