"""The one definition of D (filterdb.divergence.drift) and its matrix / batched forms."""

import numpy as np
import pytest
from scipy.stats import entropy

from filterdb import divergence


def random_counts(rng, shape, bins=70, empty=0.3):
    c = rng.poisson(rng.uniform(0, 30, size=shape + (bins,)))
    c[rng.random(c.shape) < empty] = 0
    return c


def test_drift_is_weighted_symmetric_kl():
    rng = np.random.default_rng(0)
    edges = np.linspace(-2.5, 3.0, 71)
    c = random_counts(rng, (2, 9))
    evr = rng.dirichlet(np.ones(9))
    p = divergence.probabilities(c, edges=edges)
    want = sum(evr[i] * (entropy(p[0, i], p[1, i]) + entropy(p[1, i], p[0, i])) for i in range(9))
    assert divergence.drift(p[0], p[1], evr) == pytest.approx(want, rel=1e-12)


def test_density_floor_is_numpy_density():
    rng = np.random.default_rng(1)
    x = rng.normal(size=500) ** 3
    r = (-4.0, 5.0)
    h, edges = np.histogram(x, range=r, bins=70)
    v, _ = np.histogram(x, range=r, bins=70, density=True)
    v[v == 0] = np.finfo(np.float32).eps
    np.testing.assert_allclose(divergence.probabilities(h, edges=edges), v / v.sum(), rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="edges"):
        divergence.probabilities(h)


@pytest.mark.parametrize("floor", ["density", "probability"])
def test_matrix_and_batched_forms_equal_the_definition(floor):
    rng = np.random.default_rng(2)
    edges = np.linspace(-1.0, 1.0, 71)
    c = random_counts(rng, (6, 9))
    evr = rng.dirichlet(np.ones(9))
    p = divergence.probabilities(c, floor=floor, edges=edges)
    want = np.array([[divergence.drift(p[a], p[b], evr) for b in range(6)] for a in range(6)])
    d = divergence.drift_matrix(c, evr, floor=floor, edges=edges)
    np.testing.assert_allclose(d, want, rtol=1e-13, atol=0)
    assert np.array_equal(d, d.T) and np.all(np.diag(d) == 0)
    stack = np.stack([p, p[::-1]])  # (2, G, 9, bins)
    dm = divergence.drift_matrices(stack, evr)
    np.testing.assert_allclose(dm[0], want, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(dm[1], want[::-1, ::-1], rtol=1e-9, atol=1e-13)
    assert np.array_equal(dm, np.swapaxes(dm, -1, -2)) and np.all(np.diagonal(dm, axis1=-2, axis2=-1) == 0)
