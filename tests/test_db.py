"""Reading the published layout and rejecting bad files with one clear line."""

import re

import h5py
import numpy as np
import pandas as pd
import pytest

from filterdb.db import DBError, open_db, parse_filter_ids, write_db


def _meta(ids, **cols):
    n = len(ids)
    df = pd.DataFrame(
        {
            "model_id": np.zeros(n, int),
            "conv_depth": np.arange(n),
            "conv_depth_norm": np.linspace(0, 1, n),
            "filter_ids": ids,
            "Task": ["Classification"] * n,
            **cols,
        }
    )
    return df.set_index(["model_id", "conv_depth", "conv_depth_norm"])


def _write(path, n_rows, meta, key="filters", shape=None):
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=np.ones(shape or (n_rows, 9), np.float32))
    meta.to_hdf(path, key="meta", mode="a")


def test_v01_list_ids_and_filter_key_and_3x3(tmp_path):
    p = tmp_path / "a.h5"
    _write(
        p,
        10,
        _meta([list(range(0, 4)), list(range(4, 10))], Datatype=["natural", "formula"]),
        key="filter",
        shape=(10, 3, 3),
    )
    db = open_db(p, ["Visual Category", "Task"])
    assert db.key == "filter" and db.n_rows == 10
    assert db.layers[["row_start", "row_end", "n_filters"]].values.tolist() == [[0, 4, 4], [4, 10, 6]]
    assert list(db.layers["Visual Category"]) == ["natural", "formula"]


def test_v10_inclusive_ranges_non_unique_index_unsorted(tmp_path):
    p = tmp_path / "b.h5"
    meta = _meta(["5:9", "0:4"]).reset_index()
    meta["conv_depth"] = 0  # same (model_id, conv_depth, conv_depth_norm) triple twice
    meta["conv_depth_norm"] = 0.0
    _write(p, 10, meta.set_index(["model_id", "conv_depth", "conv_depth_norm"]))
    db = open_db(p)
    assert db.layers["row_start"].tolist() == [0, 5] and db.layers["row_end"].tolist() == [5, 10]
    assert db.layers["meta_row"].tolist() == [1, 0]


@pytest.mark.parametrize(
    "ids,needle",
    [
        (["0:4", "5:12"], "lie outside the filter array of 10 rows"),
        (["0:5", "5:9"], "overlapping filter_ids"),
        (["0-4", "5:9"], "is not of the form 'start:end'"),
        ([[0, 1, 3], [4, 5]], "not one contiguous ascending run"),
        (["-3:4", "5:9"], "meta row 0 filter_ids -3..4 lie outside the filter array of 10 rows"),
        (["0:4", "5:nine"], "meta row 1 column 'filter_ids': '5:nine' is not of the form 'start:end' with integers"),
        (["0:4:9"], "meta row 0 column 'filter_ids': '0:4:9' is not of the form 'start:end'"),
        (["0:4", "9:5"], "meta row 1 column 'filter_ids': '9:5' has end < start (an empty layer is 'start:start-1')"),
        (["0:9", "3:4"], "meta rows 0 and 1 have overlapping filter_ids (0..9 and 3..4)"),
        ([[2, 1, 0], [3, 4]], "meta row 0 column 'filter_ids': ids are not one contiguous ascending run"),
        (
            [[0.0, 1.0], [2.0]],
            "meta row 0 column 'filter_ids': expected a list of integer ids or a 'start:end' string, "
            "got list of 1-d float64 values",
        ),
    ],
)
def test_bad_filter_ids(tmp_path, ids, needle):
    p = tmp_path / "c.h5"
    _write(p, 10, _meta(ids))
    with pytest.raises(DBError) as e:
        open_db(p)
    msg = str(e.value)
    assert needle in msg and str(p) in msg and "\n" not in msg


@pytest.mark.parametrize(
    "ids,ranges",
    [
        (["0:4", "5:4", "5:9"], [[0, 5, 5], [5, 5, 0], [5, 10, 5]]),  # v1.0 empty layer, as write_db writes it
        ([b"0:4", b"5:9"], [[0, 5, 5], [5, 10, 5]]),  # bytes cells
        (["0:9", "5:4"], [[0, 10, 10], [5, 5, 0]]),  # an empty layer overlaps nothing
        ([list(range(0, 10)), []], [[0, 0, 0], [0, 10, 10]]),  # v0.1 empty list: no position, (0, 0)
    ],
)
def test_edge_filter_ids_accepted(tmp_path, ids, ranges):
    p = tmp_path / "ok.h5"
    _write(p, 10, _meta(ids))
    db = open_db(p)
    assert db.layers[["row_start", "row_end", "n_filters"]].values.tolist() == ranges


def test_missing_axis_column(tmp_path):
    p = tmp_path / "d.h5"
    _write(p, 10, _meta(["0:9"]))
    with pytest.raises(DBError, match=r"meta lacks column 'Name', needed by the configured axes"):
        open_db(p, ["Task", "Name"])


def test_missing_filters_and_bad_shape(tmp_path):
    p = tmp_path / "e.h5"
    _write(p, 10, _meta(["0:9"]), key="weights")
    with pytest.raises(DBError, match="no filter dataset"):
        open_db(p)
    q = tmp_path / "f.h5"
    _write(q, 10, _meta(["0:9"]), shape=(10, 5))
    with pytest.raises(DBError, match=r"shape \(10, 5\), expected \(N, k, k\) or \(N, k\*k\) with k odd and >= 3"):
        open_db(q)
    # k x k filters of an even or 1x1 kernel, or not square: refused the same way
    for bad in [(10, 4, 4), (10, 1, 1), (10, 3, 5), (10, 16), (10, 1)]:
        _write(q, 10, _meta(["0:9"]), shape=bad)
        with pytest.raises(DBError, match=re.escape(f"shape {bad}, expected (N, k, k)")):
            open_db(q)


def test_missing_meta_and_not_hdf5(tmp_path):
    p = tmp_path / "g.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("filters", data=np.ones((3, 9), np.float32))
    with pytest.raises(DBError, match="no 'meta' table"):
        open_db(p)
    q = tmp_path / "h.h5"
    q.write_text("not hdf5")
    with pytest.raises(DBError, match=r"not an HDF5 file \(no HDF5 signature\)"):
        open_db(q)


def test_write_roundtrip_both_layouts(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((7, 9)).astype(np.float32)
    layers = pd.DataFrame(
        {
            "model_id": [0, 0],
            "conv_depth": [0, 1],
            "conv_depth_norm": [0.0, 1.0],
            "row_start": [0, 3],
            "row_end": [3, 7],
            "Task": ["a", "b"],
        }
    )
    for layout in ("v0.1", "v1.0"):
        p = tmp_path / f"{layout}.h5"
        write_db(p, w, layers, layout=layout)
        db = open_db(p)
        assert db.layers["n_filters"].tolist() == [3, 4]
        with h5py.File(p) as f:
            np.testing.assert_array_equal(f["filters"][...], w)
        raw = pd.read_hdf(p, "meta")["filter_ids"].tolist()
        assert raw == ([[0, 1, 2], [3, 4, 5, 6]] if layout == "v0.1" else ["0:2", "3:6"])


def test_parse_filter_ids():
    assert parse_filter_ids("0:191") == (0, 192)
    assert parse_filter_ids(np.arange(5, 9)) == (5, 9)


def test_config_defaults_are_the_study_axes():
    from pathlib import Path

    import yaml

    from filterdb.axes import STUDY_AXES

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    assert cfg["axes"] == STUDY_AXES
    assert cfg["histogram"]["bins"] == 70 and cfg["histogram"]["eps"] == float(np.finfo(np.float32).eps)


def test_count_layers_without_loading_the_meta(tmp_path):
    """The meta table's row count from its HDF5 layout: pandas' fixed format (plain and
    MultiIndex index) and table format; None without a readable meta."""
    from filterdb.db import count_layers

    df = pd.DataFrame({"a": np.arange(7), "b": [f"x{i}" for i in range(7)]})
    for name, frame, fmt in (
        ("fixed", df, "fixed"),
        ("multi", df.set_index(["a", "b"], drop=False), "fixed"),
        ("table", df, "table"),
    ):
        p = tmp_path / f"{name}.h5"
        frame.to_hdf(p, key="meta", format=fmt)
        assert count_layers(p) == 7, name
    with h5py.File(tmp_path / "none.h5", "w") as f:
        f["filters"] = np.zeros((3, 9), np.float32)
    assert count_layers(tmp_path / "none.h5") is None
    (tmp_path / "text.h5").write_text("not hdf5")
    assert count_layers(tmp_path / "text.h5") is None
