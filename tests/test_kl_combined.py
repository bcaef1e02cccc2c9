"""The headline figure (figures/kl_combined): its panels are the per-axis drift tables, its labels
carry the groups tables' model counts, and all panels share one colour scale."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from filterdb import plots
from filterdb.synth import write_synth_db
from tests.test_workflow import ROOT, SNAKEMAKE, run_workflow

STUDY_PANELS = [
    ("task", "Task"),
    ("visual_category", "Visual Category"),
    ("depth", "Relative Depth of Convolution Layer"),
]


def _random_drift(rng, g):
    a = rng.uniform(0, 2, size=(g, g))
    d = a + a.T
    np.fill_diagonal(d, 0)
    return d


def test_panels_share_one_scale_and_show_their_matrices():
    rng = np.random.default_rng(4)
    mats = [_random_drift(rng, g) for g in (3, 7, 5)]
    mats[1] *= 3  # the largest value is in the middle panel
    panels = [(f"axis {k}", [f"g{k}{j}" for j in range(len(m))], m) for k, m in enumerate(mats)]
    fig = plots.drift_combined(panels, title="T")
    heat = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in heat] == ["axis 0", "axis 1", "axis 2"]
    top = max(m.max() for m in mats)
    for ax, (_, labels, m) in zip(heat, panels):
        im = ax.images[0]
        np.testing.assert_array_equal(np.asarray(im.get_array()), m)
        assert im.get_clim() == (0.0, top)
        assert im.get_cmap().name.startswith("cet_fire")
        assert [t.get_text() for t in ax.get_yticklabels()] == labels
        assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert fig._suptitle.get_text() == "T"
    # one colour bar for the three panels
    assert len(fig.axes) == len(panels) + 1


def test_count_labels():
    assert plots.count_labels(["Classification", "GAN-Generator"], {"GAN-Generator": 24, "Classification": 555}) == [
        "Classification (555)",
        "GAN-Generator (24)",
    ]
    assert plots.count_labels(["[0.0, 0.1]"], None) == ["[0.0, 0.1]"]
    with pytest.raises(KeyError):
        plots.count_labels(["missing"], {"other": 1})


def _expected_figure(res, axes, title=plots.COMBINED_TITLE):
    """The figure rebuilt from the output tables, read with plain pandas, labels formatted here."""
    panels = []
    for axis, panel_title in axes:
        drift = pd.read_csv(res / "drift" / f"{axis}.tsv", sep="\t", dtype={"group": str}, keep_default_na=False)
        groups = pd.read_csv(res / "groups" / f"{axis}.tsv", sep="\t", dtype={"group": str}, keep_default_na=False)
        names = drift["group"].tolist()
        assert list(drift.columns[1:]) == names
        d = drift[names].to_numpy(np.float64)
        if axis == "depth":
            labels = names
        else:
            n = dict(zip(groups["group"], groups["n_models"]))
            labels = [f"{g} ({n[g]})" for g in names]
        panels.append((panel_title, labels, d))
    return plots.drift_combined(panels, title=title), panels


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")
@pytest.mark.parametrize("layout", ["v1.0", "v0.1"])
def test_workflow_figure_equals_the_tables(tmp_path, layout):
    db = tmp_path / "dataset.h5"
    write_synth_db(db, layout=layout, seed=5, n_models=12)
    res = tmp_path / "res"
    out = [str(res / "figures" / f"kl_combined.{e}") for e in ("svg", "png")]
    r = run_workflow(tmp_path, db, res, targets=out)
    assert r.returncode == 0, r.stderr[-3000:]
    fig, panels = _expected_figure(res, STUDY_PANELS)
    # the counts are those of the groups tables and add up to the models of the DB
    meta = pd.read_hdf(db, "meta").reset_index()
    task_counts = [int(lab.rsplit("(", 1)[1].rstrip(")")) for lab in panels[0][1]]
    assert sum(task_counts) == meta["model_id"].nunique()
    for ext in ("svg", "png"):
        plots.save(fig, tmp_path / f"expected.{ext}")
        assert (tmp_path / f"expected.{ext}").read_bytes() == (res / "figures" / f"kl_combined.{ext}").read_bytes()


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")
def test_configured_axes_and_unknown_axis(tmp_path):
    db = tmp_path / "dataset.h5"
    write_synth_db(db, layout="v1.0", seed=6, n_models=10)
    res = tmp_path / "res"
    extra = tmp_path / "combined.yaml"
    extra.write_text("figures:\n  combined:\n    axes: [architecture, depth]\n    title: ''\n")
    target = [str(res / "figures" / "kl_combined.svg")]
    r = run_workflow(tmp_path, db, res, "--configfile", str(ROOT / "config.yaml"), str(extra), targets=target)
    assert r.returncode == 0, r.stderr[-3000:]
    fig, _ = _expected_figure(res, [("architecture", "Name"), ("depth", "Relative Depth of Convolution Layer")], "")
    plots.save(fig, tmp_path / "expected.svg")
    assert (tmp_path / "expected.svg").read_bytes() == Path(target[0]).read_bytes()

    extra.write_text("figures:\n  combined:\n    axes: [task, colour]\n")
    r = run_workflow(tmp_path, db, res, "--configfile", str(ROOT / "config.yaml"), str(extra), targets=target)
    assert r.returncode != 0
    assert "figures/combined/axes: 'colour' is not an axis of the axes mapping" in r.stderr
