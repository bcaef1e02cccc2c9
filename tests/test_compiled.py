"""Ahead-of-time pass kernels (filterdb.compiled): the same results as numba's JIT, a stamp that
guards against stale or foreign builds, and no numba import in a shard job that uses them."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from filterdb import compiled, exactsum, kernels, scaling
from filterdb.histogram import uniform_edges


@pytest.fixture(scope="module")
def aot(tmp_path_factory):
    """The installed build when it is current, else one built here."""
    if compiled.load().mode == "aot":
        return compiled.load()
    out = tmp_path_factory.mktemp("aot")
    path = compiled.build(out)
    spec = importlib.util.spec_from_file_location(compiled.NAME, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return compiled.namespace(mod)


def block_data(seed=0, d=9):
    rng = np.random.default_rng(seed)
    sizes = [1, 7, 64, 65, 300, 0, 129, 1000]
    x = rng.standard_normal((sum(sizes), d)).astype(np.float32)
    x[5] = 0.0
    x[70, min(3, d - 1)] = np.nan
    x[400] *= 1e-4
    le = np.cumsum(sizes).astype(np.int64)
    ls = le - np.asarray(sizes, np.int64)
    lp = np.arange(len(sizes), dtype=np.int64)[::-1].copy()
    return x, ls, le, lp


def run_all(k, drop, dtype=np.float32, prec=0, d=9):
    """Every kernel on rows of ``d`` values (a filter width; the same compiled code for any)."""
    x, ls, le, lp = block_data(d=d)
    x = scaling.half_bits(x.astype(np.float16)) if dtype == np.float16 else x.astype(dtype)
    L = len(ls)
    sums = [np.zeros(L, np.int64), np.zeros((L, d)), np.zeros((L, d, d)), np.zeros(L, np.int64)]
    sums += [np.full(L, -1, np.int64)]
    qual = [np.zeros(L), np.zeros(L, np.int64), np.zeros(L, np.int64), np.zeros((L, d, d)), np.zeros((L, d, d))]
    grid = np.array([0.001, 0.01, 0.1, 0.5])
    qual += [np.zeros((L, grid.size), np.int64)]  # sparse filters at each eps of the grid
    k.sums_block(x, ls, le, lp, drop, prec, *sums, True, 0.01, *qual[:5], grid, qual[5])
    rng = np.random.default_rng(1)
    mean = rng.standard_normal(d) * 0.1
    comps = np.ascontiguousarray(np.linalg.qr(rng.standard_normal((d, d)))[0])
    cmin, cmax = np.full((L, d), np.inf), np.full((L, d), -np.inf)
    k.range_block(x, ls, le, lp, True, prec, mean, comps, cmin, cmax)
    edges = uniform_edges(-2.0, 2.0, 70)
    counts = np.zeros((L, d, 70), np.uint32)
    cells = np.zeros((3, d, 256), np.uint32)
    dens = np.zeros((2, 64, 64), np.uint32)
    fixed, outside = np.zeros((L, d, 70), np.uint32), np.zeros((L, d), np.int64)  # fixed range [-1, 1]
    k.hist_block(
        x, ls, le, lp, True, prec, mean, comps, edges, counts, (lp % 4 - 1).astype(np.int64),
        uniform_edges(-2.0, 2.0, 256), cells, np.array([[0, 1], [2, min(5, d - 1)]], np.int64), -1.5, 1.5, 64, dens,
        uniform_edges(-1.0, 1.0, 70), fixed, outside,
    )  # fmt: skip
    vals = rng.standard_normal((50, 9)) * 10.0 ** rng.integers(-300, 300, (50, 9))
    lim = np.zeros((9, exactsum.N_LIMBS), np.int64)
    k.limbs(vals, lim, exactsum.LIMB_BITS, exactsum.SHIFT, exactsum._PIECES)
    assert np.array_equal(lim, exactsum.limbs(vals))
    g = rng.standard_normal((3, 5, 13)).astype(np.float32)  # rows 2..6 of 3 Grams of 13 channels
    inv = rng.random((3, 13))
    inv[1, 4] = 0.0  # a zero channel
    ortho = np.zeros(3)
    k.ortho_block(g, inv, 2, ortho)
    want = [
        sum(abs(abs(float(g[j, r, c])) * inv[j, 2 + r] * inv[j, c] - (c == 2 + r)) for r in range(5) for c in range(13))
        for j in range(3)
    ]
    np.testing.assert_allclose(ortho, want, rtol=1e-13)
    return sums + qual + [cmin, cmax, counts, cells, dens, lim, ortho, fixed, outside]


@pytest.mark.parametrize(
    "drop,dtype,prec,d",
    [(False, np.float32, 0, 9), (True, np.float32, 0, 9), (True, np.float64, 0, 9), (True, np.float64, 1, 9)]
    + [(True, np.float64, 2, 9), (True, np.float16, 0, 9), (True, np.float32, 1, 9), (True, np.float16, 1, 9)]
    + [(True, np.float16, 1, 25), (False, np.float32, 0, 25), (True, np.float64, 2, 25), (True, np.float16, 0, 49)]
    + [(True, np.float32, 1, 49)],
)
def test_aot_kernels_equal_jit(aot, drop, dtype, prec, d):
    """Every compiled variant (rows float32, float64, float16 bits; each precision) gives the JIT's
    numbers bit for bit, for 3x3 filters and, with the same build, 5x5 and 7x7 ones (d = 25, 49)."""
    jit = type("J", (), {k: staticmethod(getattr(kernels, v)) for k, v in compiled.KERNELS.items()})
    a, b = run_all(aot, drop, dtype, prec, d), run_all(jit, drop, dtype, prec, d)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and np.array_equal(u, v, equal_nan=True)
    assert a[-6].sum() > 0 and a[-5].sum() > 0  # fine cells, 2-D density
    assert a[-2].sum() > 0 and a[-1].sum() > 0  # fixed-range histograms, values outside the range
    assert a[10].sum() > 0  # sparse filters of the eps grid
    assert np.isfinite(a[1]).all() == drop  # the NaN row: left out only with drop


def test_aot_kernels_refuse_mismatched_widths(aot):
    """The built kernels check the widths as the JIT ones do: components of 9 values for rows of
    25 raise one ValueError (nothing written), in both."""
    x = np.ones((10, 25), np.float32)
    b = (np.array([0]), np.array([10]), np.array([0]), True, 0)
    for k in (aot, kernels):
        cmin = np.full((1, 9), np.inf)
        with pytest.raises(ValueError, match=r"range_block: mean must be \(d,\) and comps \(c, d\)"):
            k.range_block(x, *b, np.zeros(9), np.eye(9), cmin, np.full((1, 9), -np.inf))
        assert np.isinf(cmin).all()


def test_stale_or_missing_build_falls_back_to_jit(tmp_path, monkeypatch):
    st = tmp_path / "stamp.json"
    st.write_text(json.dumps(dict(compiled.stamp(), source_sha256="0" * 64)))
    monkeypatch.setattr(compiled, "STAMP", st)
    compiled.load.cache_clear()
    try:
        k = compiled.load()
        assert k.mode == "jit" and "source_sha256" in k.reason
        monkeypatch.setattr(compiled, "STAMP", tmp_path / "missing.json")
        compiled.load.cache_clear()
        assert compiled.load().mode == "jit" and "not built" in compiled.load().reason
        monkeypatch.setattr(compiled, "STAMP", compiled.HERE / f"{compiled.NAME}.json")
        monkeypatch.setenv("FILTERDB_KERNELS", "jit")
        compiled.load.cache_clear()
        assert compiled.load().reason == "FILTERDB_KERNELS=jit"
    finally:
        compiled.load.cache_clear()


def test_no_build_and_no_numba_is_one_clear_error(tmp_path, monkeypatch):
    """Without a usable build and without numba the kernels cannot run: an ImportError naming
    numba and why the build was not used (not an AttributeError from the module without kernels)."""
    monkeypatch.setattr(compiled, "STAMP", tmp_path / "missing.json")
    monkeypatch.setattr(kernels, "HAVE_NUMBA", False)
    compiled.load.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"need numba, which is not installed .*not built"):
            compiled.load()
    finally:
        compiled.load.cache_clear()


def test_shard_job_with_aot_kernels_does_not_import_numba(tmp_path):
    if compiled.load().mode != "aot":
        pytest.skip(f"ahead-of-time kernels not installed here ({compiled.load().reason})")
    from filterdb.synth import write_synth_db

    write_synth_db(tmp_path / "db.h5", seed=3, n_models=3)
    code = (
        "import sys\n"
        "from filterdb import pipeline\n"
        "from filterdb.accumulate import PassSettings, run_shard\n"
        f"db = pipeline.open_db({str(tmp_path / 'db.h5')!r})\n"
        "plan, _ = pipeline.make_plan(db.layers, 10, db.key)\n"
        "out = run_shard(db.path, db.key, plan, 'sums', settings=PassSettings(quality_eps=0.01, progress=False))\n"
        "print(int(out['n'].sum()), 'numba' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n, imported = r.stdout.split()
    assert int(n) > 0 and imported == "False", r.stderr
    assert "kernels: aot" in r.stderr


def gil_free_share(kernel, args, fresh, calls=10):
    """This thread's Python loop count while the kernel runs in another thread, against its rate
    alone: ~0.4 here when the kernel releases the GIL, ~0.004 when it holds it (only the switch
    intervals between calls)."""
    import sys
    import threading
    import time

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        state = {"inside": False, "t": 0.0}

        def work():
            t0 = time.perf_counter()
            state["inside"] = True
            for _ in range(calls):
                kernel(*args, *fresh())
            state["inside"] = False
            state["t"] = time.perf_counter() - t0

        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 0.05:  # this loop's rate, alone
            n += 1
        rate = n / (time.perf_counter() - t0)
        th = threading.Thread(target=work)
        th.start()
        seen = 0
        while th.is_alive():
            if state["inside"]:
                seen += 1
        th.join()
        return seen / (rate * state["t"])
    finally:
        sys.setswitchinterval(old)


def test_kernels_release_the_gil(aot):
    """The passes run a block's layers on several threads: a kernel must not hold the GIL (numba's
    nogil=True, which pycc does not carry over by itself)."""
    x = np.random.default_rng(0).standard_normal((3_000_000, 9)).astype(np.float32)
    args = (x, np.array([0]), np.array([len(x)]), np.array([0]), False, 0, np.zeros(9), np.eye(9))
    share = gil_free_share(aot.range_block, args, lambda: (np.full((1, 9), np.inf), np.full((1, 9), -np.inf)))
    assert share > 0.1, f"this thread ran Python during {share:.0%} of the kernel's time: it holds the GIL"
