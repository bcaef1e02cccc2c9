"""Rows that no layer covers and layers with an empty range are never read silently: reported by
open_db (counts, runs, the filter_ids cells), in the workflow's log, stats/coverage.tsv, the
dataset summary and provenance.json; ``checks: {uncovered_rows, empty_layers}: error`` stops."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from filterdb.db import DBError, open_db, read_meta, write_meta
from tests.fixtures import bad_dbs
from tests.test_workflow import SNAKEMAKE, run_workflow


def _plain_uncovered(n_rows, ranges):
    """Rows of [0, n_rows) in none of ``ranges`` (a boolean mask, computed row by row)."""
    covered = np.zeros(n_rows, bool)
    for a, b in ranges:
        covered[a:b] = True
    return np.flatnonzero(~covered)


def _with_cells(tmp_path, cells: dict, layout="v1.0", extra_rows=0):
    """A valid DB whose meta rows ``cells`` keys get new filter_ids cells; ``extra_rows`` rows of
    no layer appended to the array."""
    p = tmp_path / "db.h5"
    layers = bad_dbs.write_good(p, layout=layout)
    if extra_rows:
        with h5py.File(p, "a") as f:
            ds = f["filters"]
            ds.resize(ds.shape[0] + extra_rows, axis=0)
    meta = read_meta(p)
    col = list(meta.columns).index("filter_ids")
    for row, cell in cells.items():
        meta.iloc[row, col] = cell
    with h5py.File(p, "a") as f:
        del f["meta"]
    write_meta(meta, str(p))
    return p, layers


def test_empty_range_layer_is_reported_with_its_rows(tmp_path):
    layers = bad_dbs.small_layers()
    a, b = int(layers["row_start"][3]), int(layers["row_end"][3])
    p, _ = _with_cells(tmp_path, {3: f"{a}:{a - 1}"}, extra_rows=5)
    db = open_db(p)
    n = int(layers["row_end"].max()) + 5
    ranges = [(int(x), int(y)) for x, y in zip(db.layers["row_start"], db.layers["row_end"])]
    miss = _plain_uncovered(n, ranges)
    assert db.coverage.n_uncovered == len(miss) == (b - a) + 5
    runs = db.coverage.uncovered
    assert np.array_equal(np.concatenate([np.arange(x, y) for x, y in runs]), miss)
    assert runs.tolist() == [[a, b], [n - 5, n]]
    assert db.coverage.empty["meta_row"].tolist() == [3]
    assert db.coverage.empty["filter_ids"].tolist() == [f"{a}:{a - 1}"]
    msgs = db.coverage.messages(str(p))
    assert msgs[0] == (
        f"{p}: {b - a + 5} of {n} filter rows belong to no layer (2 runs: {a}..{b - 1}, {n - 5}..{n - 1}); "
        "they are left out of every statistic"
    )
    assert msgs[1] == f"{p}: 1 layers have an empty filter range (meta row 3 '{a}:{a - 1}')"
    with pytest.raises(DBError) as exc:
        open_db(p, checks={"uncovered_rows": "error"})
    assert str(exc.value) == (
        f"{p}: {b - a + 5} filter rows belong to no layer ({a}..{b - 1}, {n - 5}..{n - 1}); "
        "expected every row in one layer (checks.uncovered_rows: error)"
    )
    with pytest.raises(DBError, match=r"1 layers have an empty filter range \(meta row 3 "):
        open_db(p, checks={"empty_layers": "error"})


def test_v01_empty_list_and_a_clean_db(tmp_path):
    p, _ = _with_cells(tmp_path, {1: []}, layout="v0.1")
    cov = open_db(p).coverage
    assert cov.empty["filter_ids"].tolist() == ["[]"] and cov.n_uncovered > 0
    q = tmp_path / "clean.h5"
    bad_dbs.write_good(q)
    cov = open_db(q, checks={"uncovered_rows": "error", "empty_layers": "error"}).coverage
    assert cov.n_uncovered == 0 and cov.empty.empty and cov.messages(str(q)) == []
    assert len(cov.table()) == 0


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")
def test_workflow_reports_and_can_refuse(tmp_path):
    layers = bad_dbs.small_layers()
    a, b = int(layers["row_start"][2]), int(layers["row_end"][2])
    p, _ = _with_cells(tmp_path, {2: f"{a}:{a - 1}"})
    res = run_workflow(
        tmp_path,
        p,
        tmp_path / "res",
        targets=[str(tmp_path / "res/dataset/summary.tsv"), str(tmp_path / "res/provenance.json")],
    )
    assert res.returncode == 0, res.stderr[-3000:]
    line = (
        f"warning: {p}: {b - a} of {int(layers['row_end'].max())} filter rows belong to no layer (1 runs: {a}..{b - 1})"
    )
    log = (tmp_path / "res/logs/analyse.log").read_text()
    assert line in log and line in res.stderr
    cov = pd.read_csv(tmp_path / "res/stats/coverage.tsv", sep="\t", keep_default_na=False)
    assert cov["kind"].tolist() == ["rows in no layer", "empty layer"]
    assert cov["n_rows"].tolist() == [b - a, 0] and cov["filter_ids"].tolist() == ["", f"{a}:{a - 1}"]
    s = pd.read_csv(tmp_path / "res/dataset/summary.tsv", sep="\t").set_index(["axis", "group"])
    assert s.loc[("(coverage)", "rows in no layer"), "n_filters"] == b - a
    assert s.loc[("(coverage)", "empty layers"), "n_layers"] == 1
    prov = json.loads((tmp_path / "res/provenance.json").read_text())["db"]["coverage"]
    assert prov["uncovered_rows"] == b - a and prov["uncovered_runs"] == [[a, b - 1]]
    assert prov["empty_layers"] == [{"meta_row": 2, "filter_ids": f"{a}:{a - 1}"}]

    res = run_workflow(tmp_path, p, tmp_path / "res2", "checks={uncovered_rows: error}")
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if "filterdb error in rule" in ln]
    assert len(lines) == 1 and "checks.uncovered_rows: error" in lines[0]
    left = [
        x
        for x in (tmp_path / "res2").rglob("*")
        if x.is_file() and x.relative_to(tmp_path / "res2").parts[0] not in ("logs", "benchmarks")
    ]
    assert left == []
