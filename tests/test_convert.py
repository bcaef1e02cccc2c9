"""``filterdb convert``: a DB rewritten with its filters in another dtype, checked against plain
numpy casts of the source's stored values (one rounding from the stored dtype, bit for bit), the
layout and meta kept, atomic writes, refusals, provenance attributes and the command line."""

import datetime
import hashlib
import os
import signal
from importlib import metadata

import h5py
import numpy as np
import pandas as pd
import pytest

from filterdb import cli
from filterdb import convert as cv
from filterdb.db import DBError, _meta_frame, open_db, read_meta, write_meta
from filterdb.h5safe import check_attrs
from filterdb.synth import write_synth_db

ATTRS = {
    "filterdb_converted_from",
    "filterdb_source_dtype",
    "filterdb_source_size",
    "filterdb_source_mtime",
    "filterdb_source_sha256",
    "filterdb_convert_version",
    "filterdb_overflowed_values",
}


def _layers(sizes, seed=0):
    rng = np.random.default_rng(seed)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    n = len(sizes)
    return pd.DataFrame(
        {
            "model_id": np.arange(n) // 3,
            "conv_depth": np.arange(n) % 3,
            "conv_depth_norm": (np.arange(n) % 3) / 2.0,
            "row_start": starts,
            "row_end": starts + np.asarray(sizes, np.int64),
            "model": [f"m{i // 3}" for i in range(n)],
            "Task": rng.choice(["Classification", "Detection"], n),
            "Visual Category": rng.choice(["natural", "medical ct"], n),
            "in_channels": rng.integers(1, 64, n),
        }
    )


def _write_db(path, filters, layers, layout="v1.0", key="filters", chunks=True):
    """A DB in the published layout with ``filters`` stored in their own dtype and shape (h5py),
    and the meta table as filterdb.db.write_db writes it."""
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=filters, chunks=(min(64, len(filters)),) + filters.shape[1:] if chunks else None)
    write_meta(_meta_frame(layers, layout), str(path))


def _tricky_float64(rng, n_rows):
    """float64 values for float16's rounding: ties (to even), values just above a tie that the
    float32 detour turns into a tie (double rounding differs), subnormals and their ties, the range
    limit, signed zeros, NaN and inf; the rest random normals."""
    special = [
        1 + 2.0**-11,  # tie between 1 and 1 + 2^-10: to even (1)
        1 + 3 * 2.0**-11,  # tie: to even (1 + 2^-9)
        -(1 + 2.0**-11),
        2049.0,  # float16 ulp at 2048 is 2: tie, to 2048
        1 + 2.0**-11 + 2.0**-40,  # just above a tie: 1 + 2^-10; via float32 (a tie there): 1
        2.0**-25 + 2.0**-60,  # just above half the smallest subnormal: 2^-24; via float32: 0
        2.0**-24,  # smallest float16 subnormal
        3 * 2.0**-25,  # subnormal tie: to even (2^-23)
        2.0**-25,  # tie with 0: to 0
        2.0**-26,
        1e-30,
        6.1e-5,  # near the smallest normal 2^-14
        65504.0,
        65519.99,  # rounds down to 65504 (not an overflow)
        -65519.0,
        0.0,
        -0.0,
        np.nan,
        np.inf,
        -np.inf,
    ]
    # more double-rounding cases: the float16 midpoint above random float16 values, nudged up
    # below float32's resolution (differs from the float32 detour when the lower neighbour is even)
    h = rng.uniform(-3e4, 3e4, 400).astype(np.float16)
    h = h[np.isfinite(h) & (h != 0)]
    nxt = np.nextafter(h, np.float16(np.inf) * np.sign(h)).astype(np.float64)
    mid = (h.astype(np.float64) + nxt) / 2
    nudged = mid + mid * 2.0**-40
    x = rng.standard_normal(n_rows * 9) * 0.3
    vals = np.concatenate([special, nudged, mid])
    pos = rng.choice(x.size, vals.size, replace=False)
    x[pos] = vals
    return x


@pytest.fixture(scope="module")
def f64_db(tmp_path_factory):
    """A float64 (N, 3, 3) v1.0 DB with values that tell one rounding from two."""
    d = tmp_path_factory.mktemp("f64")
    rng = np.random.default_rng(11)
    n = 1200
    x = _tricky_float64(rng, n).reshape(n, 3, 3)
    layers = _layers([100, 0, 250, 50, 300, 500])
    path = d / "published.h5"
    _write_db(path, x, layers, "v1.0")
    return str(path), x


def _bits16(a):
    return np.ascontiguousarray(a, dtype=np.float16).view(np.uint16)


def _stored(path):
    with h5py.File(path, "r") as f:
        key = "filters" if "filters" in f else "filter"
        ds = f[key]
        return key, ds[...], ds.dtype, ds.chunks, ds.compression, ds.id.get_create_plist().get_nfilters()


def test_float64_3x3_to_float16_one_rounding_bit_for_bit(f64_db, tmp_path, monkeypatch):
    src, x = f64_db
    out = str(tmp_path / "f16.h5")
    blocks = []
    real = cv.convert_block

    def spy(block, dtype):
        blocks.append((block.dtype, len(block)))
        return real(block, dtype)

    monkeypatch.setattr(cv, "convert_block", spy)
    res = cv.convert(src, out, "float16", block_rows=97)
    key, y, dtype, chunks, compression, nfilters = _stored(out)
    assert key == "filters" and y.shape == x.shape == (1200, 3, 3) and dtype == np.dtype("<f2")
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16)  # one rounding from float64
        twice = x.astype(np.float32).astype(np.float16)
    assert np.array_equal(y.view(np.uint16), ref.view(np.uint16))
    differs = ref.view(np.uint16) != twice.view(np.uint16)
    assert differs.sum() >= 100  # the values tell the two apart, and the output is the single rounding
    assert np.array_equal(y.view(np.uint16)[differs], ref.view(np.uint16)[differs])
    assert np.isnan(y).sum() == np.isnan(x).sum() and np.isposinf(y).sum() == 1 and np.isneginf(y).sum() == 1
    # the data were read raw (float64) in blocks of at most block_rows rows
    assert {d for d, _ in blocks} == {np.dtype("float64")} and max(n for _, n in blocks) == 97
    assert sum(n for _, n in blocks) == 1200
    # storage: chunked, uncompressed, no filters (filterdb's direct readers need that)
    assert chunks is not None and compression is None and nfilters == 0
    # meta and layers unchanged; the copy opens with the safe reader
    pd.testing.assert_frame_equal(read_meta(out), read_meta(src))
    a, b = open_db(src), open_db(out)
    pd.testing.assert_frame_equal(a.layers, b.layers)
    assert b.dtype == "float16" and b.n_rows == a.n_rows and b.key == a.key
    assert res.rows == 1200 and res.source_dtype == "float64" and res.dtype == "float16" and res.overflowed == 0
    assert res.bytes_in == os.path.getsize(src) and res.bytes_out == os.path.getsize(out)
    assert res.bytes_out < res.bytes_in
    assert not os.path.exists(out + ".partial")


@pytest.mark.parametrize("layout,shape3x3", [("v1.0", False), ("v0.1", True)])
def test_float32_to_float16(tmp_path, layout, shape3x3):
    src, out = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    write_synth_db(src, layout=layout, shape3x3=shape3x3, seed=5, n_models=4)
    cv.convert(src, out, "float16", block_rows=1000)
    _, x, *_ = _stored(src)
    _, y, dtype, *_ = _stored(out)
    assert x.dtype == np.float32 and dtype == np.float16 and y.shape == x.shape
    assert np.array_equal(y.view(np.uint16), x.astype(np.float16).view(np.uint16))
    pd.testing.assert_frame_equal(read_meta(out), read_meta(src))


def test_float64_to_float32(f64_db, tmp_path):
    src, x = f64_db
    out = str(tmp_path / "f32.h5")
    cv.convert(src, out, np.float32)
    _, y, dtype, *_ = _stored(out)
    assert dtype == np.dtype("<f4") and y.shape == x.shape
    assert np.array_equal(y.view(np.uint32), x.astype(np.float32).view(np.uint32))
    # the float32 copy reads back through float32 to float16 as the float32 values do
    pd.testing.assert_frame_equal(open_db(out).layers, open_db(src).layers)


def test_float16_widened_and_float64_target(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 9)).astype(np.float16)
    src = str(tmp_path / "h.h5")
    _write_db(src, x, _layers([100, 200]))
    cv.convert(src, tmp_path / "d.h5", "float64")
    _, y, dtype, *_ = _stored(tmp_path / "d.h5")
    assert dtype == np.float64 and np.array_equal(y, x.astype(np.float64))


@pytest.mark.parametrize("key,shape", [("filter", (9,)), ("filters", (3, 3))])
def test_v01_layout_keeps_dataset_name_shape_and_meta(tmp_path, key, shape):
    rng = np.random.default_rng(4)
    layers = _layers([40, 60, 0, 80])
    x = rng.standard_normal((180,) + shape)
    src, out = str(tmp_path / "v01.h5"), str(tmp_path / "v01_f16.h5")
    _write_db(src, x, layers, "v0.1", key=key, chunks=False)
    cv.convert(src, out, "float16", block_rows=50)
    got_key, y, dtype, *_ = _stored(out)
    assert got_key == key and y.shape == x.shape and dtype == np.float16
    assert np.array_equal(y.view(np.uint16), x.astype(np.float16).view(np.uint16))
    m_src, m_out = read_meta(src), read_meta(out)
    pd.testing.assert_frame_equal(m_out, m_src)
    assert isinstance(m_out["filter_ids"].iloc[0], list) and "Datatype" in m_out.columns
    pd.testing.assert_frame_equal(open_db(out).layers, open_db(src).layers)


def _attr_class(ds, name):
    return h5py.h5a.open(ds.id, name.encode()).get_type().get_class()


def test_provenance_attributes_are_plain(f64_db, tmp_path):
    src, _ = f64_db
    out = str(tmp_path / "p.h5")
    res = cv.convert(src, out, "float16")  # a small source: its SHA-256 is computed by default
    st = os.stat(src)
    with open(src, "rb") as fh:
        sha = hashlib.sha256(fh.read()).hexdigest()
    with h5py.File(out, "r") as f:
        ds = f["filters"]
        check_attrs(ds, out, "filters")  # the safe reader's check: nothing pickled
        names = set(ds.attrs.keys())
        assert names == ATTRS
        for name in names:
            assert _attr_class(ds, name) in (h5py.h5t.STRING, h5py.h5t.INTEGER), name
        a = {k: ds.attrs[k] for k in names}
    assert a["filterdb_converted_from"] == "published.h5"
    assert a["filterdb_source_dtype"] == "float64"
    assert int(a["filterdb_source_size"]) == st.st_size
    when = datetime.datetime.fromisoformat(a["filterdb_source_mtime"])
    assert abs(when.timestamp() - st.st_mtime) < 1e-5 and when.utcoffset() == datetime.timedelta(0)
    assert a["filterdb_source_sha256"] == sha == res.sha256
    assert a["filterdb_convert_version"] == metadata.version("filterdb")
    assert int(a["filterdb_overflowed_values"]) == 0
    # --no-checksum: no hash recorded, size and time still are
    cv.convert(src, tmp_path / "q.h5", "float16", checksum=False)
    with h5py.File(tmp_path / "q.h5", "r") as f:
        assert set(f["filters"].attrs) == ATTRS - {"filterdb_source_sha256"}


def test_checksum_auto_skips_large_sources(f64_db, tmp_path, monkeypatch):
    src, _ = f64_db
    monkeypatch.setattr(cv, "CHECKSUM_AUTO_BYTES", 1000)
    lines = []
    res = cv.convert(src, tmp_path / "o.h5", "float16", log=lines.append)
    assert res.sha256 is None and any("not computed" in line for line in lines)
    res = cv.convert(src, tmp_path / "o2.h5", "float16", checksum=True)
    assert res.sha256 and len(res.sha256) == 64


def test_source_name_ending_in_dot_is_not_an_attribute_pickle(f64_db, tmp_path):
    src = str(tmp_path / "db.")
    with open(f64_db[0], "rb") as a, open(src, "wb") as b:
        b.write(a.read())
    out = str(tmp_path / "o.h5")
    cv.convert(src, out, "float16")
    with h5py.File(out, "r") as f:
        assert f["filters"].attrs["filterdb_converted_from"] == "db%2E"
    open_db(out)


class Boom(RuntimeError):
    pass


def _failing_block(after, exc):
    real = cv.convert_block
    calls = []

    def block(b, dtype):
        calls.append(len(b))
        if len(calls) > after:
            raise exc
        return real(b, dtype)

    return block


@pytest.mark.parametrize("exc", [Boom("disk on fire"), KeyboardInterrupt()])
def test_failure_midway_leaves_nothing(f64_db, tmp_path, monkeypatch, exc):
    src, _ = f64_db
    out = str(tmp_path / "o.h5")
    monkeypatch.setattr(cv, "convert_block", _failing_block(3, exc))
    with pytest.raises(type(exc)):
        cv.convert(src, out, "float16", block_rows=100)
    assert sorted(os.listdir(tmp_path)) == []
    # an existing output replaced with --force stays as it was when the conversion fails
    with open(out, "wb") as fh:
        fh.write(b"old contents")
    with pytest.raises(type(exc)):
        cv.convert(src, out, "float16", block_rows=100, force=True)
    assert sorted(os.listdir(tmp_path)) == ["o.h5"] and open(out, "rb").read() == b"old contents"


def test_failure_writing_meta_leaves_nothing(f64_db, tmp_path, monkeypatch):
    src, _ = f64_db

    def bad_meta(meta, path, mode="a"):
        raise OSError("no space left on device")

    monkeypatch.setattr(cv, "write_meta", bad_meta)
    with pytest.raises(OSError, match="no space"):
        cv.convert(src, tmp_path / "o.h5", "float16")
    assert os.listdir(tmp_path) == []


def test_stale_partial_is_overwritten(f64_db, tmp_path):
    src, _ = f64_db
    out = str(tmp_path / "o.h5")
    with open(out + ".partial", "wb") as fh:
        fh.write(b"left by a killed run")
    cv.convert(src, out, "float16")
    assert os.listdir(tmp_path) == ["o.h5"]
    open_db(out)


def test_source_changed_while_converting(f64_db, tmp_path, monkeypatch):
    src = str(tmp_path / "s.h5")
    with open(f64_db[0], "rb") as a, open(src, "wb") as b:
        b.write(a.read())
    real = cv.convert_block

    def touch(block, dtype):
        os.utime(src, ns=(0, 10**18))
        return real(block, dtype)

    monkeypatch.setattr(cv, "convert_block", touch)
    with pytest.raises(cv.ConvertError, match="changed while it was converted"):
        cv.convert(src, tmp_path / "o.h5", "float16", checksum=False)
    assert os.listdir(tmp_path) == ["s.h5"]


def test_refuses_existing_output_without_force_and_the_source_itself(f64_db, tmp_path):
    src, x = f64_db
    out = str(tmp_path / "o.h5")
    cv.convert(src, out, "float16")
    with pytest.raises(cv.ConvertError, match="exists; use --force"):
        cv.convert(src, out, "float32")
    cv.convert(src, out, "float32", force=True)
    assert _stored(out)[2] == np.float32
    before = open(src, "rb").read()
    link = tmp_path / "link.h5"
    link.symlink_to(src)
    hard = tmp_path / "hard.h5"
    os.link(src, hard)
    spelled = os.path.join(os.path.dirname(src), "..", os.path.basename(os.path.dirname(src)), "published.h5")
    for same in (src, spelled, str(link), str(hard)):
        with pytest.raises(cv.ConvertError, match="the output is the source DB"):
            cv.convert(src, same, "float16", force=True)
    # the temporary name must not be the source either
    partial_src = tmp_path / "x.h5.partial"
    os.link(src, partial_src)
    with pytest.raises(cv.ConvertError, match="temporary file would be the source"):
        cv.convert(partial_src, tmp_path / "x.h5", "float16")
    assert open(src, "rb").read() == before
    with pytest.raises(cv.ConvertError, match="is a directory"):
        cv.convert(src, tmp_path, "float16", force=True)
    with pytest.raises(cv.ConvertError, match="does not exist"):
        cv.convert(src, tmp_path / "nope" / "o.h5", "float16")


def test_float16_overflow_refused_naming_the_row(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((500, 9))
    x[3, 1] = 65519.99  # rounds to 65504: fine
    x[5, 2] = np.inf  # already inf: carried
    x[6, 0] = np.nan
    x[321, 4] = -70000.0  # first overflow, in the 4th block of 100 rows
    x[400, 8] = 1e6
    src = str(tmp_path / "big.h5")
    _write_db(src, x, _layers([250, 250]))
    out = str(tmp_path / "o.h5")
    with pytest.raises(cv.ConvertError) as err:
        cv.convert(src, out, "float16", block_rows=100)
    msg = str(err.value)
    assert "row 321 (pixel 4) holds -70000.0" in msg and "65504" in msg and "--allow-overflow" in msg
    assert "\n" not in msg and sorted(os.listdir(tmp_path)) == ["big.h5"]
    res = cv.convert(src, out, "float16", block_rows=100, allow_overflow=True)
    _, y, *_ = _stored(out)
    with np.errstate(over="ignore"):
        assert np.array_equal(y.view(np.uint16), x.astype(np.float16).view(np.uint16))
    assert y[3, 1] == 65504 and y[321, 4] == -np.inf and y[400, 8] == np.inf and res.overflowed == 2
    with h5py.File(out, "r") as f:
        assert int(f["filters"].attrs["filterdb_overflowed_values"]) == 2
    # float64 -> float32 overflows the same way
    x2 = np.zeros((10, 9))
    x2[9, 0] = 1e300
    _write_db(tmp_path / "huge.h5", x2, _layers([10]))
    with pytest.raises(cv.ConvertError, match=r"row 9 \(pixel 0\) holds 1e\+300, beyond float32"):
        cv.convert(tmp_path / "huge.h5", tmp_path / "o32.h5", "float32")


def test_bad_arguments_and_sources(f64_db, tmp_path):
    src, _ = f64_db
    for dt in ("float8", "int16", "complex64", "bfloat16"):
        with pytest.raises(cv.ConvertError, match="unsupported target dtype"):
            cv.convert(src, tmp_path / "o.h5", dt)
    with pytest.raises(cv.ConvertError, match="block_rows"):
        cv.convert(src, tmp_path / "o.h5", "float16", block_rows=0)
    text = tmp_path / "notes.txt"
    text.write_text("not a DB\n")
    with pytest.raises(DBError, match="not an HDF5 file"):
        cv.convert(text, tmp_path / "o.h5", "float16")
    with pytest.raises(DBError, match="no such file"):
        cv.convert(tmp_path / "missing.h5", tmp_path / "o.h5", "float16")
    with h5py.File(tmp_path / "nometa.h5", "w") as f:
        f["filters"] = np.zeros((4, 9))
    with pytest.raises(DBError, match="no 'meta' table"):
        cv.convert(tmp_path / "nometa.h5", tmp_path / "o.h5", "float16")
    assert not (tmp_path / "o.h5").exists() and not (tmp_path / "o.h5.partial").exists()


def test_cli_convert(f64_db, tmp_path, capsys):
    src, x = f64_db
    out = str(tmp_path / "cli.h5")
    assert cli.main(["convert", src, "-o", out, "--dtype", "float16", "--block-rows", "500", "--no-checksum"]) == 0
    cap = capsys.readouterr()
    line = cap.out.strip()
    assert "\n" not in line and line.startswith(f"{out}: 1,200 filters") and "float64 -> float16" in line
    assert " s" in line and "bytes" in line
    assert "rows" in cap.err  # the progress bar on stderr
    _, y, *_ = _stored(out)
    assert np.array_equal(y.view(np.uint16), x.astype(np.float16).view(np.uint16))
    # refusals: one line, exit 1
    for argv, needle in [
        (["convert", src, "-o", out, "--dtype", "float16"], "exists; use --force"),
        (["convert", src, "-o", src, "--dtype", "float16"], "the output is the source DB"),
        (["convert", src, "-o", str(tmp_path / "z.h5"), "--dtype", "float8"], "unsupported target dtype"),
        (["convert", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "z.h5"), "--dtype", "float16"], "no such"),
    ]:
        assert cli.main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("filterdb convert: ") and needle in err and "\n" not in err
    assert cli.main(["convert", src, "-o", out, "--dtype", "float32", "--force", "-q"]) == 0
    cap = capsys.readouterr()
    assert cap.err == "" and "float64 -> float32" in cap.out


@pytest.mark.parametrize("how,code", [("ctrl-c", 130), ("sigterm", 143)])
def test_cli_interrupted_leaves_nothing(f64_db, tmp_path, monkeypatch, capsys, how, code):
    src, _ = f64_db
    out = str(tmp_path / "o.h5")
    real = cv.convert_block
    calls = []

    def block(b, dtype):
        calls.append(1)
        if len(calls) == 2:
            if how == "ctrl-c":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGTERM)
        return real(b, dtype)

    monkeypatch.setattr(cv, "convert_block", block)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["convert", src, "-o", out, "--dtype", "float16", "--block-rows", "100", "-q"]) == code
    assert os.listdir(tmp_path) == []
    assert "not written" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is restored
