"""`filterdb inspect`: a model already in the DB is at drift ~0 from itself and its own nearest."""

import json

import numpy as np
import pandas as pd
import pytest

from filterdb import cli, divergence, inspect, pipeline, quality, quality_tables, results
from filterdb.axes import axes_from_config
from filterdb.db import open_db, read_rows, write_db
from filterdb.results import basis_table, mean_table
from filterdb.synth import write_synth_db
from tests.conftest import DEFAULT_AXES


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A small DB analysed in process, its results written as the workflow writes them."""
    tmp = tmp_path_factory.mktemp("inspect")
    db = tmp / "dataset.h5"
    write_synth_db(db, layout="v1.0", seed=7, n_models=6)
    axes = axes_from_config(DEFAULT_AXES)
    a = pipeline.analyse(str(db), axes, quality={"eps": 0.01})
    res = tmp / "results"
    write_results(a, res)
    return tmp, db, res, a


def write_results(a, res):
    """The files `inspect` reads, as the workflow writes them."""
    (res / "stats").mkdir(parents=True)
    (res / "pca").mkdir()
    a.db.layers.to_csv(res / "stats/layers.tsv", sep="\t", index=False)
    basis_table(a.pca).to_csv(res / "pca/basis.tsv", sep="\t", index=False, float_format="%.17g")
    mean_table(a.pca).to_csv(res / "pca/mean.tsv", sep="\t", index=False, float_format="%.17g")
    results.write_range(res / "pca/range.tsv", *a.range)
    results.save_npz(res / "stats/hist.npz", {"counts": a.hist["counts"], "edges": a.hist["edges"]})


def one_model_file(db, model, path):
    """The layers of one DB model written as a single-model DB (its 'model file')."""
    import h5py

    layers = open_db(db).layers
    sel = layers[layers["model"] == model].reset_index(drop=True)
    with h5py.File(db, "r") as f:
        w = [read_rows(f["filters"], int(s), int(e)) for s, e in zip(sel["row_start"], sel["row_end"])]
    n = sel["n_filters"].to_numpy()
    sel["row_start"] = np.concatenate([[0], np.cumsum(n)[:-1]])
    sel["row_end"] = np.cumsum(n)
    write_db(path, w, sel.drop(columns=["layer", "n_filters", "meta_row"]))


def test_self_inspection(analysed, tmp_path, capsys):
    tmp, db, res, a = analysed
    name = str(a.db.layers["model"].iloc[a.db.layers["n_filters"].idxmax()])
    mf = tmp_path / "model.h5"
    one_model_file(db, name, mf)
    out = tmp_path / "out"
    rc = cli.main(["inspect", str(mf), "--db", str(db), "--results", str(res), "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert name in printed
    models = pd.read_csv(out / "models.tsv", sep="\t")
    assert models["model"].iloc[0] == name
    assert abs(models["drift"].iloc[0]) < 1e-12
    assert (models["drift"].iloc[1:] > 0).all()
    groups = pd.read_csv(out / "groups.tsv", sep="\t")
    assert set(groups["axis"]) == set(DEFAULT_AXES)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["nearest_models"][0]["model"] == name
    assert summary["coefficients_outside_range"] == 0
    # layer quality equals the streamed pass on the DB
    lt = pd.read_csv(out / "layers.tsv", sep="\t")
    q = quality_tables.quality_arrays(a.sums)
    idx = np.flatnonzero(a.db.layers["model"].to_numpy() == name)
    for m in quality.METRICS:
        np.testing.assert_allclose(lt[m].to_numpy(), q[m][idx], rtol=0, atol=1e-12)


def test_drift_row_is_drift_matrix_row(analysed):
    _, _, _, a = analysed
    counts = a.hist["counts"]
    rng = np.random.default_rng(0)
    groups = np.stack([counts[rng.choice(len(counts), 4)].sum(axis=0) for _ in range(5)])
    evr = a.pca.explained_variance_ratio
    edges = a.hist["edges"]
    for floor in ("density", "probability"):
        d = divergence.drift_matrix(groups, evr, floor=floor, edges=edges)
        np.testing.assert_allclose(
            inspect.drift_row(groups[0], groups[1:], evr, floor=floor, edges=edges), d[0, 1:], rtol=1e-13, atol=0
        )


def test_group_drift_matches_pipeline(analysed, tmp_path):
    """Drift of a whole group's histogram to the groups equals that row of the axis drift matrix."""
    tmp, db, res, a = analysed
    ref = inspect.load_reference(res)
    axis = axes_from_config(DEFAULT_AXES)[0]
    dm = a.drift[axis.name]
    names = list(dm["group"])
    from filterdb.axes import layer_labels

    gc = divergence.group_counts(ref.counts, layer_labels(ref.layers, axis), names)
    row = inspect.drift_row(gc[0], gc, ref.evr, edges=ref.edges)
    np.testing.assert_allclose(row, dm.iloc[0, 1:].to_numpy(np.float64), rtol=1e-12, atol=1e-15)


def test_errors(analysed, tmp_path):
    tmp, db, res, a = analysed
    assert cli.main(["inspect", str(db), "--results", str(res), "--out", str(tmp_path / "o")]) == 1
    assert cli.main(["inspect", str(db), "--results", str(tmp_path / "none")]) == 1


def test_self_inspection_from_onnx_file(tmp_path):
    """A model file (ONNX) whose model was built into the DB: drift 0 to itself, nearest itself."""
    from filterdb.ingest.build import build
    from tests.test_ingest_build import _onnx_model, _row, _sheet

    rows = []
    for k in range(4):
        _onnx_model(tmp_path / f"m{k}.onnx", seed=10 * k)
        rows.append(_row(f"toy{k}", f"m{k}.onnx", task=["Classification", "Detection"][k % 2]))
    db = tmp_path / "db.h5"
    build(_sheet(tmp_path, rows), str(db), log=lambda m: None)
    axes = {k: v for k, v in DEFAULT_AXES.items() if k != "training_dataset"}
    a = pipeline.analyse(str(db), axes_from_config(axes), quality={"eps": 0.01})
    res = tmp_path / "results"
    write_results(a, res)
    out = tmp_path / "out"
    rc = cli.main(["inspect", str(tmp_path / "m2.onnx"), "--db", str(db), "--results", str(res), "--out", str(out)])
    assert rc == 0
    models = pd.read_csv(out / "models.tsv", sep="\t")
    assert models["model"].iloc[0] == "toy2" and abs(models["drift"].iloc[0]) < 1e-12
    assert (models["drift"].iloc[1:] > 0).all()
