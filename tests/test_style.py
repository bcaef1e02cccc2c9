"""Python style and structure: `ruff check`, `ruff format --check` and the import-layer contract
(`lint-imports`, configured in pyproject.toml) are clean. The Snakemake files are checked in
test_lint.py."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_ruff_check_clean():
    res = _run(["ruff", "check", "--no-cache", "."])
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_ruff_format_clean():
    res = _run(["ruff", "format", "--check", "--no-cache", "."])
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed")
def test_import_layers_kept():
    # lint-imports puts the working directory first on sys.path, so this checkout's package is
    # analysed even when another checkout is installed in editable mode
    res = _run(["lint-imports", "--no-cache"])
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert "0 broken" in res.stdout, res.stdout[-3000:]
