"""The scripts' error handling (filterdb.glue.main): one line on the terminal, traceback in the log."""

import errno
import subprocess
import sys

import pytest

CODE = """
import sys
from types import SimpleNamespace
from filterdb.glue import main
snakemake = SimpleNamespace(log=[sys.argv[1]], rule="some_rule")
def fail():
    raise {exc}
main(snakemake, fail)
"""


@pytest.mark.parametrize(
    "exc, line",
    [
        ("ValueError('db.h5: meta lacks column Name')", "db.h5: meta lacks column Name"),
        ("KeyError('no axis task')", "no axis task"),
        (
            f"OSError({errno.ENOSPC}, 'No space left on device', 'res/stats/hist.npz')",
            "[Errno 28] No space left on device: 'res/stats/hist.npz'",
        ),
    ],
)
def test_input_and_file_errors_end_with_one_line(tmp_path, exc, line):
    log = tmp_path / "job.log"
    r = subprocess.run([sys.executable, "-c", CODE.format(exc=exc), str(log)], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"filterdb error in rule some_rule: {line}"]
    text = log.read_text()
    assert "Traceback" in text and text.rstrip().endswith(line)


def test_a_bug_keeps_its_traceback(tmp_path):
    log = tmp_path / "job.log"
    r = subprocess.run(
        [sys.executable, "-c", CODE.format(exc="ZeroDivisionError('bug')"), str(log)], capture_output=True, text=True
    )
    assert r.returncode == 1 and "ZeroDivisionError: bug" in log.read_text()
    assert "ZeroDivisionError: bug" in r.stderr and "filterdb error" not in r.stderr


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_db_layout_reads_bytes_per_filter_from_the_db(tmp_path, dtype):
    """The memory estimates' bytes per filter: the dtype's size times the values per filter of
    /filters (not a fixed 36), read from the DB."""
    import h5py
    import numpy as np

    from filterdb import jobs
    from filterdb.convert import convert
    from filterdb.synth import write_synth_db

    src = tmp_path / "db.h5"
    write_synth_db(src, layout="v0.1", shape3x3=True, seed=1, n_models=3)
    db = src
    if dtype != "float32":
        db = tmp_path / f"db-{dtype}.h5"
        convert(src, db, dtype)
    with h5py.File(db, "r") as f:
        ds = f["filter" if "filter" in f else "filters"]
        want = (ds.shape[0], ds.dtype.itemsize * int(np.prod(ds.shape[1:])))
    assert jobs.db_layout(str(db)) == want
    assert want[1] == {"float16": 18, "float32": 36, "float64": 72}[dtype]


def test_concat_tsv_keeps_the_rows_as_written(tmp_path):
    """Rule uncertainty_axes: one header, every file's rows as text, in order; a differing header stops
    with one line naming the file."""
    from filterdb import jobs

    a, b, c = tmp_path / "a.tsv", tmp_path / "b.tsv", tmp_path / "c.tsv"
    a.write_text("axis\tp\ntask\t0.10000000000000001\n")
    b.write_text("axis\tp\ndepth\t1e-05\n")
    c.write_text("axis\tq\nx\t1\n")
    out = tmp_path / "out.tsv"
    jobs.concat_tsv([str(a), str(b)], str(out))
    assert out.read_text() == "axis\tp\ntask\t0.10000000000000001\ndepth\t1e-05\n"
    with pytest.raises(ValueError, match=r"c\.tsv: header 'axis\\tq' differs"):
        jobs.concat_tsv([str(a), str(c)], str(tmp_path / "bad.tsv"))
    assert not (tmp_path / "bad.tsv").exists()
