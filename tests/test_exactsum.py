"""Exact sums (filterdb.exactsum) and the global PCA formed from shard parts."""

import math

import numpy as np
import pytest

from filterdb import compiled, exactsum, pipeline
from filterdb.accumulate import (
    PassSettings,
    basis_from_parts,
    coefficient_range,
    gather_parts,
    range_from_parts,
    run_shard,
)
from filterdb.pca import global_pca, pca_from_sums
from filterdb.synth import write_synth_db


@pytest.fixture(scope="module")
def many_layers_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("exact") / "db.h5"
    layers = write_synth_db(path, seed=5, n_models=30, layers_per_model=(2, 6))
    return str(path), layers


def wide_values(rng, n, m):
    """Values over the whole float64 range, with cancellation, subnormals and extremes."""
    v = rng.standard_normal((n, m)) * 10.0 ** rng.integers(-320, 300, size=(n, m))
    v[0, 0] = 5e-324
    v[-1, -1] = -1.7e308
    v[n // 2, 0] = -v[0, 0]
    return v


@pytest.mark.parametrize("seed", range(5))
def test_fsum_equals_math_fsum_and_any_split(seed):
    rng = np.random.default_rng(seed)
    v = wide_values(rng, 257, 4)
    ref = np.array([math.fsum(v[:, j]) for j in range(v.shape[1])])
    assert np.array_equal(exactsum.fsum(v), ref)
    assert np.array_equal(exactsum.fsum(v[rng.permutation(len(v))]), ref)  # order-independent
    cuts = np.sort(rng.choice(np.arange(1, len(v)), 6, replace=False))
    lim = sum(exactsum.limbs(p) for p in np.split(v, cuts))
    assert np.array_equal(exactsum.round_limbs(lim), ref)


def test_compiled_limbs_equal_numpy_limbs():
    rng = np.random.default_rng(7)
    v = wide_values(rng, 500, 81).reshape(500, 9, 9)
    assert np.array_equal(compiled.exact_limbs(v), exactsum.limbs(v))
    assert compiled.exact_limbs(np.zeros((0, 9))).shape == (9, exactsum.N_LIMBS)
    assert np.array_equal(exactsum.round_limbs(exactsum.limbs(np.zeros((0, 3)))), np.zeros(3))
    with pytest.raises(ValueError, match="NaN or infinite"):
        exactsum.limbs(np.array([[1.0], [np.nan]]))


def test_rounded_sum_is_closer_than_a_float_sum():
    v = np.array([[1e16], [1.0], [-1e16], [1.0]])
    assert exactsum.fsum(v)[0] == 2.0 and v.sum() != 2.0


@pytest.mark.parametrize("shards", [1, 3, 7])
def test_basis_and_range_from_parts_equal_the_gathered(many_layers_db, shards):
    """A range/hist shard job forms the PCA and the range from the parts themselves: bit-equal to
    the gather's, for any shard count, and within round-off of a plain float64 PCA."""
    path, _ = many_layers_db
    db = pipeline.open_db(path)
    plan, _ = pipeline.make_plan(db.layers, 10, db.key)
    s = PassSettings(progress=False)
    parts = [run_shard(path, db.key, plan, "sums", shard=k, shards=shards, settings=s) for k in range(shards)]
    g = gather_parts(parts, plan.n_layers, plan.n_cells)
    p = global_pca(g)
    q = basis_from_parts(parts)
    assert np.array_equal(p.components, q.components) and np.array_equal(p.mean, q.mean)
    assert np.array_equal(p.explained_variance, q.explained_variance)
    plain = pca_from_sums(int(g["n"].sum()), g["sum"].sum(axis=0), g["outer"].sum(axis=0))
    np.testing.assert_allclose(p.components, plain.components, atol=1e-12)
    one = global_pca(gather_parts([run_shard(path, db.key, plan, "sums", settings=s)], plan.n_layers))
    assert np.array_equal(p.components, one.components) and np.array_equal(p.covariance, one.covariance)
    r = [
        run_shard(path, db.key, plan, "range", shard=k, shards=shards, settings=s, basis=(p.mean, p.components))
        for k in range(shards)
    ]
    gr = gather_parts(r, plan.n_layers)
    assert range_from_parts(r) == coefficient_range(gr["cmin"], gr["cmax"])
    assert range_from_parts(r)[0] == gr["cmin"].min() and range_from_parts(r)[1] == gr["cmax"].max()


def test_parts_without_totals_are_reported(tmp_path):
    with pytest.raises(ValueError, match="no 'total__count'"):
        basis_from_parts([{"layer": np.zeros(0, np.int64)}])
