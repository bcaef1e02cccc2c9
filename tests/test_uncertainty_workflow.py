"""The rule drift_uncertainty (workflow/rules/uncertainty.smk): one job per axis, tables equal the library's."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from filterdb import divergence, pipeline, plots, results, uncertainty
from filterdb.axes import axes_from_config
from filterdb.synth import write_synth_db
from tests.conftest import DEFAULT_AXES

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")
INCLUDE = 'include: "workflow/rules/uncertainty.smk"'


def snakefile(tmp):
    """The repository's Snakefile (with the uncertainty rules included), paths made absolute."""
    text = (ROOT / "Snakefile").read_text()
    if INCLUDE not in text:
        text = text.replace('include: "workflow/rules/drift.smk"', 'include: "workflow/rules/drift.smk"\n' + INCLUDE)
    text = re.sub(r'(include|report|configfile): "([^"]+)"', lambda m: f'{m[1]}: "{ROOT / m[2]}"', text)
    path = tmp / "Snakefile"
    path.write_text(text)
    return path


def test_uncertainty_rule(tmp_path):
    db = tmp_path / "dataset.h5"
    write_synth_db(db, layout="v1.0", seed=11, n_models=10)
    (tmp_path / "u.yaml").write_text(
        "uncertainty: {enabled: true, bootstrap: 50, permutations: 60, seed: 3, equal_size: 20}\n"
    )
    sf = snakefile(tmp_path)
    base = [SNAKEMAKE, "-s", str(sf), "--directory", str(tmp_path), "--configfile", str(ROOT / "config.yaml")]
    conf = ["--config", f"dataset={db}", "results=res"]
    # off by default: the default targets have no uncertainty job
    dry = subprocess.run(base + conf + ["-n", "--cores", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "drift_uncertainty" not in dry.stdout + dry.stderr
    # the drift box plot without uncertainty: the study's figure (no error bars)
    box = ["res/figures/drift_box.svg", "res/figures/drift_box.png"]
    off = subprocess.run(
        [SNAKEMAKE, *box] + base[1:] + conf + ["--cores", "2"], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert off.returncode == 0, off.stderr[-3000:]
    assert "drift_uncertainty" not in off.stderr
    box_off = (tmp_path / box[0]).read_bytes()
    targets = ["res/uncertainty/axes.tsv"] + [f"res/drift/{a}.{k}.tsv" for a in DEFAULT_AXES for k in ("ci", "null")]
    targets += [f"res/figures/drift_significance_{a}.svg" for a in DEFAULT_AXES] + box
    on = [SNAKEMAKE, *targets] + base[1:] + [str(tmp_path / "u.yaml")] + conf
    dry = subprocess.run(on + ["-n", "--cores", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    # one job per axis, and one that gathers the axis tests
    assert re.search(rf"^drift_uncertainty\s+{len(DEFAULT_AXES)}$", dry.stdout + dry.stderr, flags=re.M)
    assert re.search(r"^uncertainty_axes\s+1$", dry.stdout + dry.stderr, flags=re.M)
    res = subprocess.run(on + ["--cores", "2"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    a = pipeline.analyse(str(db), axes_from_config(DEFAULT_AXES))
    axes_tab = pd.read_csv(tmp_path / "res/uncertainty/axes.tsv", sep="\t")
    assert list(axes_tab["axis"]) == list(DEFAULT_AXES)
    intervals = {}
    for axis in axes_from_config(DEFAULT_AXES):
        want = uncertainty.uncertainty_of_axis(
            a.db.layers,
            a.hist["counts"],
            a.hist["edges"],
            a.pca.explained_variance_ratio,
            axis,
            bootstrap_replicates=50,
            permutations=60,
            seed=3,
            equal_size=20,
        )
        ci = pd.read_csv(
            tmp_path / f"res/drift/{axis.name}.ci.tsv",
            sep="\t",
            keep_default_na=False,
            dtype={"group_a": str, "group_b": str},
        )
        null = pd.read_csv(
            tmp_path / f"res/drift/{axis.name}.null.tsv",
            sep="\t",
            keep_default_na=False,
            dtype={"group_a": str, "group_b": str},
        )
        assert list(ci["group_a"]) == list(want.ci["group_a"])
        for col in ("D", "lo", "hi"):
            np.testing.assert_allclose(ci[col], want.ci[col], rtol=1e-9)
        for col in ("p", "p_adjusted", "null_mean"):
            np.testing.assert_allclose(null[col], want.null[col], rtol=1e-9)
        assert null["group_a"].iloc[-1] == uncertainty.AXIS_ROW
        for col in ("D_equal", "D_equal_sd"):
            np.testing.assert_allclose(null[col], want.null[col], rtol=1e-9, atol=1e-15)
        assert list(null["n_equal"].iloc[:-1].astype(int)) == list(want.null["n_equal"].iloc[:-1])
        row = axes_tab.set_index("axis").loc[axis.name]
        np.testing.assert_allclose([row["mean_D_lo"], row["mean_D_hi"]], want.mean_ci, rtol=1e-9)
        intervals[axis.name] = want.mean_ci
    # the box plot with uncertainty: the library's figure with the intervals of the mean D beside
    # the boxes (same bytes); without: the plain box plot, byte for byte
    values = {
        a: divergence.upper_triangle(results.read_drift(tmp_path / f"res/drift/{a}.tsv")[1]) for a in DEFAULT_AXES
    }
    for name, fig in (
        ("on", plots.drift_boxplot(values, intervals=intervals, interval_label="mean D: 95% bootstrap interval")),
        ("off", plots.drift_boxplot(values)),
    ):
        plots.save(fig, tmp_path / f"box_{name}.svg")
    assert (tmp_path / box[0]).read_bytes() == (tmp_path / "box_on.svg").read_bytes()
    assert box_off == (tmp_path / "box_off.svg").read_bytes() != (tmp_path / "box_on.svg").read_bytes()
