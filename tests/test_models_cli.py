"""`filterdb models DB`: the models table from the meta alone, checked against a plain pandas
computation on the DB's raw meta; hostile DBs are refused as by every other command."""

import numpy as np
import pandas as pd
import pytest

from filterdb import cli
from filterdb.synth import write_synth_db
from tests.fixtures.hostile_dbs import HOSTILE, marker


@pytest.mark.parametrize("layout", ["v0.1", "v1.0"])
def test_models_table_equals_plain_computation(tmp_path, capsys, layout):
    db = tmp_path / "db.h5"
    write_synth_db(db, layout=layout, seed=2, n_models=7)
    out = tmp_path / "models.tsv"
    assert cli.main(["models", str(db), "-o", str(out)]) == 0
    printed = capsys.readouterr()
    got = pd.read_csv(out, sep="\t", keep_default_na=False, na_values=[""])
    meta = pd.read_hdf(db, "meta").reset_index()  # a benign file the test wrote: pandas as the reference

    def n_filters(cell):
        if isinstance(cell, str):
            a, b = (int(v) for v in cell.split(":"))
            return b - a + 1
        return len(cell)

    meta["n"] = [n_filters(c) for c in meta["filter_ids"]]
    cat = "Datatype" if layout == "v0.1" else "Visual Category"
    ref = meta.groupby("model_id", sort=True).agg(
        model=("model", "first"),
        Name=("Name", "first"),
        Task=("Task", "first"),
        cat=(cat, "first"),
        layers=("n", "size"),
        filters=("n", "sum"),
    )
    assert got["model_id"].tolist() == ref.index.tolist()
    assert got["model"].tolist() == ref["model"].tolist()
    assert got["Name"].tolist() == ref["Name"].tolist() and got["Task"].tolist() == ref["Task"].tolist()
    assert got["Visual Category"].tolist() == ref["cat"].tolist()
    assert got["layers"].tolist() == ref["layers"].tolist() and got["filters_3x3"].tolist() == ref["filters"].tolist()
    assert int(got["filters_3x3"].sum()) == int(meta["n"].sum())
    assert np.isnan(got["share_3x3"]).all()  # the synthetic meta has no 3x3_filter_share column
    assert printed.out.count("\n") == len(ref) + 1 and ref["model"].iloc[0] in printed.out
    layers, filters = int(ref["layers"].sum()), int(meta["n"].sum())
    assert printed.err.strip() == f"{len(ref)} models, {layers} 3x3 conv layers, {filters} filters"


@pytest.mark.parametrize("name", ["pickle_text_column", "attr_fixed_meta", "external_link_meta", "huge_meta"])
def test_models_refuses_hostile_dbs(tmp_path, capsys, name):
    path, expected = HOSTILE[name](tmp_path)
    out = tmp_path / "models.tsv"
    assert cli.main(["models", str(path), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("filterdb models: ") and expected in err[0]
    assert not marker(tmp_path).exists() and not out.exists()


def test_workflow_writes_the_models_table(tmp_path):
    """Rule models_table writes dataset/models.tsv (a report entry), equal to the command's table."""
    from tests.test_workflow import SNAKEMAKE, run_workflow

    if SNAKEMAKE is None:
        pytest.skip("snakemake not installed")
    db = tmp_path / "db.h5"
    write_synth_db(db, layout="v1.0", seed=3, n_models=5)
    res = tmp_path / "res"
    run = run_workflow(tmp_path, db, res, targets=[str(res / "dataset/models.tsv")])
    assert run.returncode == 0, run.stderr[-2000:]
    assert cli.main(["models", str(db), "-o", str(tmp_path / "cli.tsv"), "-q"]) == 0
    assert (res / "dataset/models.tsv").read_bytes() == (tmp_path / "cli.tsv").read_bytes()
