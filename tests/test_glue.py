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
