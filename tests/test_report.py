"""The Snakemake report, built from a small generated DB and opened in headless Chromium.

Skips when Chromium is not installed (Debian: ``apt-get install chromium``).
"""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from filterdb.synth import write_synth_db
from tests.conftest import DEFAULT_AXES

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
CHROMIUM = next(
    (
        p
        for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
        if p and Path(p).exists()
    ),
    None,
)
pytestmark = [
    pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed"),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed"),
]

# every figure: one job per figure kind writes the figures of all axes, each its own report item
AXES = tuple(DEFAULT_AXES)
TARGETS = [
    f"res/figures/{f}.svg"
    for f in (
        "pca_eigenimages",
        "pca_cumulative_variance",
        "pca_covariance",
        "drift_box",
        "kl_combined",
        "density_c0_c1",
        "filter_grid_model",
    )
]
TARGETS += [f"res/figures/{k}_{a}.svg" for k in ("ridge", "drift", "eigenimages", "filter_grid") for a in AXES]
TARGETS += ["res/paper/comparison.tsv"]
CATEGORIES = ["PCA", "Drift", "Ridge plots", "Density", "Filters", "Reproduction"]


def snakemake(tmp, *options):
    """Make ``TARGETS`` in ``tmp`` from ``tmp/dataset.h5`` (targets first: some options take lists)."""
    cmd = [
        SNAKEMAKE,
        *TARGETS,
        *options,
        "--cores",
        "2",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp),
        "--configfile",
        str(ROOT / "config.yaml"),
        "--config",
        f"dataset={tmp / 'dataset.h5'}",
        "results=res",
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)


def chromium(tmp, *args):
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    write_synth_db(tmp / "dataset.h5", layout="v1.0", seed=7, n_models=6)
    res = snakemake(tmp)
    assert res.returncode == 0, res.stderr[-3000:]
    html = tmp / "report.html"
    res = snakemake(tmp, "--report", str(html))
    assert res.returncode == 0, res.stderr[-3000:]
    assert html.stat().st_size > 0
    return tmp, html


# the Quality category (workflow/rules/quality.smk), once the Snakefile includes it
QUALITY = 'include: "workflow/rules/quality.smk"' in (ROOT / "Snakefile").read_text()
if QUALITY:
    CATEGORIES.append("Quality")
    TARGETS += ["res/quality/layers.tsv", "res/figures/quality_task.svg", "res/figures/quality_sensitivity.svg"]


def test_report_renders_in_chromium(report):
    tmp, html = report
    url = html.as_uri()
    res = chromium(tmp, "--virtual-time-budget=10000", "--dump-dom", url)
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert "Snakemake Report" in dom
    rendered = re.sub(r"<script\b.*?</script>", "", dom, flags=re.S)  # what the app put on the page
    for name in CATEGORIES:
        assert f"<span>{name}</span>" in rendered, f"category {name!r} not rendered"
    for target in TARGETS:
        fig = Path(target).name
        assert fig in dom, f"{fig} missing from the report"

    shot = tmp / "report.png"
    res = chromium(tmp, "--window-size=1400,1000", f"--screenshot={shot}", "--virtual-time-budget=10000", url)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    import matplotlib.image

    img = matplotlib.image.imread(shot)[..., :3]
    assert img.shape[:2] == (1000, 1400)
    colours, counts = np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0, return_counts=True)
    background = counts.max() / counts.sum()
    assert background < 0.95 and len(colours) > 50, (background, len(colours))  # not a blank page


def _report_categories(html):
    """The report's ``{category: {subcategory: [item paths]}}`` (embedded JSON of the report app)."""
    import json

    text = html.read_text()
    out = {}
    for name in CATEGORIES:
        start = text.index(f'"{name}": {{') + len(f'"{name}": ')
        out[name], _ = json.JSONDecoder().raw_decode(text, start)
    return out


def test_every_figure_is_its_own_report_item(report):
    """Figure jobs write every axis at once, but each figure stays one item in its category and
    subcategory (the axis, or Subset PCA)."""
    _, html = report
    cats = _report_categories(html)
    for axis in AXES:
        assert f"res/figures/ridge_{axis}.svg" in cats["Ridge plots"][axis]
        assert f"res/ridge/{axis}.tsv" in cats["Ridge plots"][axis]
        assert f"res/figures/drift_{axis}.svg" in cats["Drift"][axis]
        assert f"res/figures/eigenimages_{axis}.svg" in cats["PCA"]["Subset PCA"]
        assert f"res/pca/subsets/{axis}.tsv" in cats["PCA"]["Subset PCA"]
    assert {f"res/figures/pca_{k}.svg" for k in ("eigenimages", "cumulative_variance", "covariance")} <= set(
        cats["PCA"]["Global PCA"]
    )
    assert "res/figures/drift_box.svg" in cats["Drift"]["All axes"]
    assert "res/figures/kl_combined.svg" in cats["Drift"]["All axes"]
    assert "res/figures/density_c0_c1.svg" in sum(cats["Density"].values(), [])
    for axis in AXES:
        assert {f"res/figures/filter_grid_{axis}.svg", f"res/grids/{axis}.tsv"} <= set(cats["Filters"][axis])
    assert {"res/figures/filter_grid_model.svg", "res/grids/model.tsv"} <= set(cats["Filters"]["Model"])
    assert "res/paper/comparison.tsv" in sum(cats["Reproduction"].values(), [])


def test_report_figures_are_reproducible(report):
    """Re-running a figure rule gives the same bytes."""
    tmp, _ = report
    figs = tmp / "res/figures"
    before = {p.name: p.read_bytes() for p in figs.iterdir()}
    forced = ("fig_axis", "fig_global", "filter_grids")
    res = snakemake(tmp, "--forcerun", *forced)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "fig_global" in res.stderr and "fig_axis" in res.stderr
    assert "quality_tables" not in res.stderr and "rule models:" not in res.stderr  # only the forced rules ran
    for p in figs.iterdir():
        assert p.read_bytes() == before[p.name], p.name


def test_lint_clean_for_figure_rules():
    res = subprocess.run(
        [SNAKEMAKE, "--lint", "-s", str(ROOT / "Snakefile")], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    out = res.stdout + res.stderr
    assert "figures.smk" not in out, out[-3000:]
