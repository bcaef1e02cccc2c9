"""Filter quality metrics (docs/method.md §9) against plain numpy/scipy re-computations."""

import math

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy

from filterdb import pipeline, quality, quality_tables
from filterdb.accumulate import QUALITY_FIELDS
from filterdb.axes import axes_from_config
from filterdb.synth import write_synth_db
from tests.conftest import DEFAULT_AXES

TOL = 1e-9


# ---- plain references -------------------------------------------------------------------------


def ref_sparsity(W, eps=0.01):
    W = np.asarray(W, np.float64)
    t = eps * np.abs(W).max()
    if t == 0:
        return 1.0
    return float(np.mean(np.all(np.abs(W) < t, axis=1)))


def ref_entropy(W):
    W = np.asarray(W, np.float64)
    n = W.shape[0]
    if n < 2:
        return math.nan
    s = np.linalg.svd(W - W.mean(axis=0), compute_uv=False)
    v = s**2 / (n - 1)
    if v.sum() == 0:
        return 0.0
    return float(entropy(v, base=10))


def ref_threshold(n):
    return 1.2618047 / (1 + np.exp(-0.88767525 * (np.log2(n) - 2.30436435))) - 0.31050834


def ref_ortho(W, out):
    U = np.asarray(W, np.float64).reshape(out, -1)
    norm = np.linalg.norm(U, axis=1, keepdims=True)
    U = np.where(norm > 0, U / np.where(norm > 0, norm, 1), 0.0)
    return 1 - np.abs(U @ U.T - np.eye(out)).sum() / (out * (out - 1))


def close(a, b, tol=TOL):
    if math.isnan(b):
        return math.isnan(a)
    return abs(a - b) <= tol


# orthogonality's Gram is a float32 product (filterdb.quality.orthogonality): against the float64
# reference it agrees to ~1e-9; the documented bound is 1e-6
ORTHO_TOL = 1e-6


rng = np.random.default_rng(42)


def make_layers():
    out, cin = 16, 8
    iid = rng.standard_normal((out * cin, 9)).astype(np.float32)
    sparse = iid.copy()
    sparse[rng.permutation(out * cin)[: out * cin * 6 // 10]] = 0.0
    sparse[:3] *= 1e-4  # tiny but not zero: below eps * max
    rank1 = np.outer(rng.standard_normal(out * cin), rng.standard_normal(9)).astype(np.float32)
    lowrank = (rng.standard_normal((out * cin, 2)) @ rng.standard_normal((2, 9))).astype(np.float32)
    lowrank += 1e-3 * rng.standard_normal(lowrank.shape).astype(np.float32)
    return {
        "iid": (iid, out),
        "uniform": (rng.uniform(-0.2, 0.2, (64 * 3, 9)).astype(np.float32), 64),
        "sparse": (sparse, out),
        "rank1": (rank1, out),
        "lowrank": (lowrank, out),
        "zero": (np.zeros((out * cin, 9), np.float32), out),
        "one": (rng.standard_normal((1, 9)).astype(np.float32), 1),
        "two": (rng.standard_normal((2, 9)).astype(np.float32), 2),
        "dead_channel": (np.concatenate([np.zeros((cin, 9), np.float32), iid[cin:]]), out),
        "large_values": ((1e3 + iid).astype(np.float32), out),
    }


LAYERS = make_layers()


@pytest.mark.parametrize("name", list(LAYERS))
def test_metrics_match_plain(name):
    W, out = LAYERS[name]
    q = quality.layer_quality(W, out, eps=0.01)
    W64 = W.astype(np.float64)
    assert q["n_filters"] == W.shape[0]
    assert close(q["sparsity"], ref_sparsity(W))
    assert close(quality.sparsity(W), ref_sparsity(W))
    h = ref_entropy(W)
    assert close(q["variance_entropy"], h)
    assert close(quality.variance_entropy(W), h)
    thr = ref_threshold(W.shape[0])
    assert close(q["variance_entropy_norm"], h / thr if thr > 0 and not math.isnan(h) else math.nan)
    assert close(quality.variance_entropy_norm(W), h / thr if thr > 0 and not math.isnan(h) else math.nan)
    t = 0.01 * np.abs(W64).max()
    keep = ~np.all(np.abs(W64) < t, axis=1) if t > 0 else np.zeros(W.shape[0], bool)
    assert close(q["variance_entropy_clean"], ref_entropy(W64[keep]))
    assert close(quality.variance_entropy_clean(W), ref_entropy(W64[keep]))
    ref_o = ref_ortho(W, out) if out > 1 else math.nan
    assert close(q["orthogonality"], ref_o, ORTHO_TOL)
    assert close(quality.orthogonality(W, out), ref_o, ORTHO_TOL)
    assert q["absmax"] == float(np.abs(W).max())


def test_threshold_and_bounds():
    n = np.array([3, 9, 64, 512, 2**20])
    np.testing.assert_allclose(quality.entropy_threshold(n), ref_threshold(n), rtol=0, atol=1e-15)
    assert quality.entropy_threshold(2) < 0 and quality.entropy_threshold(3) > 0
    assert abs(quality.entropy_threshold(2**30) - np.log10(9)) < 0.01
    assert abs(quality.variance_entropy(np.vstack([np.eye(9), -np.eye(9)])) - np.log10(9)) < 1e-12


def test_conventions_and_notes():
    zero = quality.layer_quality(np.zeros((32, 9)), 4)
    assert zero["sparsity"] == 1.0 and zero["variance_entropy"] == 0.0
    assert math.isnan(zero["variance_entropy_clean"])
    assert zero["notes"] & quality.NOTE_ALL_ZERO and zero["notes"] & quality.NOTE_FEW_CLEAN
    one = quality.layer_quality(np.ones((1, 9)), 1)
    assert math.isnan(one["variance_entropy"]) and math.isnan(one["variance_entropy_norm"])
    assert one["notes"] & quality.NOTE_FEW_FILTERS and one["notes"] & quality.NOTE_ONE_OUT
    W = LAYERS["iid"][0]
    for out, bit in [
        (None, quality.NOTE_NO_OUT),
        (float("nan"), quality.NOTE_NO_OUT),
        (pd.NA, quality.NOTE_NO_OUT),
        (5, quality.NOTE_NOT_MULTIPLE),
    ]:
        q = quality.layer_quality(W, out)
        assert math.isnan(q["orthogonality"]) and q["notes"] & bit
        assert "orthogonality" in quality.note_text(q["notes"])
    # orthogonal output channels
    U = np.linalg.qr(rng.standard_normal((36, 36)))[0][:4]  # 4 orthonormal rows of length 36
    assert abs(quality.orthogonality(U.reshape(-1, 9), 4) - 1.0) < ORTHO_TOL
    same = np.tile(rng.standard_normal((1, 36)), (4, 1))
    assert abs(quality.orthogonality(same.reshape(-1, 9), 4) - 0.0) < ORTHO_TOL


def test_orthogonality_blocks():
    W = rng.standard_normal((50 * 3, 9))
    assert abs(quality.orthogonality(W, 50, block=7) - ref_ortho(W, 50)) < ORTHO_TOL


def test_orthogonality_of_a_layer_does_not_depend_on_its_batch():
    """The sums pass batches a block's layers of one shape; which layers share a batch depends on
    the shards and threads, so a layer's value must be bit-identical alone and in any batch, at
    any memory alignment (numpy's sums changed the last bit in ~1 in 10 such batches)."""
    r = np.random.default_rng(11)
    for _ in range(300):
        out, inn, G = int(r.choice([3, 8, 9, 16, 24])), int(r.integers(1, 10)), int(r.integers(2, 40))
        flat = r.standard_normal(G * out * inn * 9 + 9).astype(np.float32)
        shift = int(r.integers(0, 9))
        W = flat[shift : shift + G * out * inn * 9].reshape(G, out * inn, 9)
        W[0, :inn] = 0.0  # a zero channel
        both = quality.orthogonality_many(W, out)
        alone = [quality.orthogonality_many(np.array(W[g : g + 1]), out)[0] for g in range(G)]
        assert np.array_equal(both, alone), (out, inn, G, shift)
    W = r.standard_normal((9, 50 * 3, 9)).astype(np.float32)  # row blocks of the Gram
    both = quality.orthogonality_many(W, 50, block=7)
    assert np.array_equal(both, [quality.orthogonality_many(np.array(W[g : g + 1]), 50, 7)[0] for g in range(9)])
    assert abs(both[0] - ref_ortho(W[0].astype(np.float64), 50)) < ORTHO_TOL


def test_orthogonality_wide_layer_float32_gram():
    """A 512 x 512 layer (the costly case): the float32 Gram stays within the documented bound."""
    W = rng.standard_normal((512 * 64, 9)).astype(np.float32)
    W[:64] *= 1e3  # one channel of much larger norm: normalisation happens before the product
    assert abs(quality.orthogonality(W, 512) - ref_ortho(W, 512)) < ORTHO_TOL


# ---- flags ------------------------------------------------------------------------------------


def table_from(layers_w, model_of, outs):
    rows = []
    qs = []
    for i, (w, m, o) in enumerate(zip(layers_w, model_of, outs)):
        qs.append(quality.layer_quality_fast(w, o, 0.01))
        rows.append(
            {"layer": i, "model_id": m, "model": f"m{m}", "conv_depth": i, "conv_depth_norm": 0.5, "out_channels": o}
        )
    layers = pd.DataFrame(rows)
    return quality_tables.layer_quality_table(layers, {f: np.array([q[f] for q in qs]) for f in QUALITY_FIELDS})


def test_flags():
    r = np.random.default_rng(1)
    random_model = [r.standard_normal((c * 32, 9)).astype(np.float32) for c in (3, 32, 64)]
    rank1 = np.outer(r.standard_normal(512), r.standard_normal(9))
    half = r.standard_normal((512, 9))
    half[:256] = 0
    trained = [r.standard_normal((256, 9)) @ np.diag([3, 2, 1.5, 1, 0.5, 0.3, 0.2, 0.1, 0.05]) for _ in range(3)]
    layers_w = random_model + [rank1, half] + trained
    model_of = [0, 0, 0, 1, 1, 2, 2, 2]
    outs = [32, 32, 32, 16, 16, 16, 16, 16]
    lt = table_from(layers_w, model_of, outs)
    assert lt["random_like"].iloc[:3].all()
    assert lt["low_diversity"].iloc[3] and not lt["sparse"].iloc[3]
    assert lt["sparse"].iloc[4] and lt["sparsity"].iloc[4] == 0.5
    assert not lt["degenerated"].iloc[5:].any()
    mt = quality_tables.model_quality_table(lt).set_index("model")
    assert mt.loc["m0", "random_like"] and not mt.loc["m0", "sparse"]
    assert mt.loc["m1", "sparse"] and mt.loc["m1", "low_diversity"]
    assert not mt.loc["m2", "degenerated"]
    order = list(quality_tables.model_quality_table(lt)["model"])
    assert order[-1] == "m2" and order[0] == "m1"
    # weighted means
    g = lt[lt["model_id"] == 0]
    ref = np.average(g["variance_entropy_norm"], weights=g["n_filters"])
    assert abs(mt.loc["m0", "variance_entropy_norm"] - ref) < 1e-12
    # stricter thresholds change the flags
    mt2 = quality_tables.model_quality_table(lt, {"random_like": 1.5, "model_share": 1.0}).set_index("model")
    assert not mt2.loc["m0", "random_like"]
    with pytest.raises(ValueError):
        quality_tables.model_quality_table(lt, {"nonsense": 1})


# ---- through the streamed pipeline ------------------------------------------------------------


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("quality") / "dataset.h5"
    layers = write_synth_db(path, layout="v1.0", seed=5, n_models=5)
    return str(path), layers


@pytest.mark.parametrize("shards", [1, 3])
def test_pipeline_matches_direct(small_db, shards):
    path, _ = small_db
    a = pipeline.analyse(path, axes_from_config(DEFAULT_AXES), shards=shards, quality={"eps": 0.01})
    q = quality_tables.quality_arrays(a.sums)
    layers = a.db.layers
    with h5py.File(path, "r") as f:
        X = f["filters"][...].reshape(-1, 9)
    X = X.astype(np.float16).astype(np.float32)  # the default precision: float16-rounded weights (§1)
    for i, row in layers.iterrows():
        W = X[row["row_start"] : row["row_end"]]
        ref = quality.layer_quality(W, row["out_channels"], 0.01)
        assert q["n_filters"][i] == W.shape[0]
        assert close(q["sparsity"][i], ref_sparsity(W))
        h = ref_entropy(W)
        assert close(q["variance_entropy"][i], h)
        assert close(q["variance_entropy_norm"][i], h / ref_threshold(W.shape[0]))
        assert close(q["orthogonality"][i], ref_ortho(W, int(row["out_channels"])), ORTHO_TOL)
        for k in QUALITY_FIELDS:
            assert close(float(q[k][i]), float(ref[k]))
    axes = axes_from_config(DEFAULT_AXES)
    lt = quality_tables.layer_quality_table(layers, a.sums, axes)
    assert list(lt["layer"]) == list(range(len(layers)))
    assert set(a.name for a in axes) <= set(lt.columns)
    assert (lt["notes"] == "").all()
    mt = quality_tables.model_quality_table(lt)
    assert len(mt) == layers["model_id"].nunique()
    for ax in axes:
        g = quality_tables.group_quality_table(lt, ax.name)
        assert g["n_filters"].sum() == lt.dropna(subset=[ax.name])["n_filters"].sum()


def test_no_out_channels_column(small_db):
    path, _ = small_db
    layers = pipeline.open_db(path).layers.drop(columns=["out_channels"])
    from filterdb.accumulate import PassSettings, run_shard

    plan, _ = pipeline.make_plan(layers)
    arr = run_shard(path, "filters", plan, "sums", settings=PassSettings(quality_eps=0.01, progress=False))
    lt = quality_tables.layer_quality_table(layers, arr)
    assert lt["orthogonality"].isna().all()
    assert lt["notes"].str.contains("no out_channels").all()


def test_figures_deterministic(small_db, tmp_path):
    from filterdb import plots

    path, _ = small_db
    a = pipeline.analyse(path, axes_from_config(DEFAULT_AXES), quality={"eps": 0.01})
    lt = quality_tables.layer_quality_table(a.db.layers, a.sums, axes_from_config(DEFAULT_AXES))
    outs = []
    for k in range(2):
        p1, p2 = tmp_path / f"d{k}.svg", tmp_path / f"g{k}.svg"
        plots.save(plots.quality_depth_figure(lt), p1)
        plots.save(plots.quality_group_figure(lt, "task"), p2)
        outs.append((p1.read_bytes(), p2.read_bytes()))
    assert outs[0] == outs[1]
