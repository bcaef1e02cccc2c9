"""The community's checks: `snakemake --lint` and `snakefmt --check` are clean."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake not installed")
@pytest.mark.parametrize("snakefile", ["Snakefile", "workflow/Snakefile"])
def test_snakemake_lint_clean(snakefile):
    res = subprocess.run(
        ["snakemake", "--lint", "-s", snakefile], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "Lints for" not in out, out[-3000:]


@pytest.mark.skipif(shutil.which("snakefmt") is None, reason="snakefmt not installed")
def test_snakefmt_clean():
    files = ["Snakefile", "workflow/Snakefile"] + sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "workflow/rules").glob("*.smk")
    )
    res = subprocess.run(["snakefmt", "--check", *files], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
