"""This workflow used the way Snakemake users combine workflows: as a ``module`` of a project of
their own (what ``snakedeploy deploy-workflow`` writes), with their config, their DB, their results
folder and a rule of theirs that consumes one of its outputs; and run from any folder.
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from filterdb.synth import write_synth_db

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")

# the project's Snakefile: snakedeploy's module declaration (config/config.yaml, `use rule *`), with
# the module's snakefile where github("OWNER/filterdb", path="workflow/Snakefile", tag=...) resolves,
# and a rule of the project's own that reads the module's drift table
OUTER = """\
configfile: "config/config.yaml"


module filterdb:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from filterdb as filterdb_*


rule all:
    default_target: True
    input:
        rules.filterdb_all.input,
        "summary/task_drift.tsv",


rule task_drift:
    input:
        drift="out/filterdb/drift/task.tsv",
    output:
        "summary/task_drift.tsv",
    run:
        import pandas as pd

        d = pd.read_csv(input.drift, sep="\\t", index_col=0)
        pd.DataFrame({{"mean_D": d.mean(axis=1)}}).to_csv(output[0], sep="\\t")
"""

# files whose bytes differ between any two runs (times, absolute paths, the run's command)
VOLATILE = ("logs/", "benchmarks/", "provenance.json")


def run(cwd, *args, timeout=900):
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def tree(folder):
    """{relative path: bytes} of every file under folder but the volatile ones."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not str(p.relative_to(folder)).startswith(VOLATILE)
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder with this workflow as a module, run with --cores 2; and the same DB run
    from the checkout (the reference)."""
    tmp = tmp_path_factory.mktemp("module")
    proj = tmp / "project"
    (proj / "config").mkdir(parents=True)
    (proj / "workflow").mkdir()
    (proj / "data").mkdir()
    write_synth_db(proj / "data" / "db.h5", layout="v1.0", seed=5, n_models=8)
    # the project's own config: its DB and results folder (relative to the project), one key
    # changed, everything else from the schema's defaults (no copy of this workflow's config.yaml)
    (proj / "config" / "config.yaml").write_text("dataset: data/db.h5\nresults: out/filterdb\nhistogram:\n  bins: 60\n")
    (proj / "workflow" / "Snakefile").write_text(OUTER.format(snakefile=ROOT / "workflow" / "Snakefile"))
    res = run(proj, "--cores", "2")
    assert res.returncode == 0, res.stderr[-4000:]

    ref = tmp / "reference"
    ref.mkdir()
    (ref / "bins.yaml").write_text("histogram:\n  bins: 60\n")
    res = run(
        ROOT,
        "--cores",
        "2",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(ref),
        "--configfile",
        str(ROOT / "config.yaml"),
        str(ref / "bins.yaml"),
        "--config",
        f"dataset={proj / 'data' / 'db.h5'}",
        "results=res",
    )
    assert res.returncode == 0, res.stderr[-4000:]
    return proj, ref


def test_module_outputs_equal_a_run_from_the_checkout(project):
    proj, ref = project
    got, want = tree(proj / "out" / "filterdb"), tree(ref / "res")
    assert set(got) == set(want)
    assert len(got) > 100  # tables and figures of every rule
    different = [k for k in got if got[k] != want[k]]
    assert not different, different
    # the project's config reached the module: 60 bins, and the run's outputs are where it said
    with np.load(proj / "out" / "filterdb" / "stats" / "hist.npz") as h:
        assert h["counts"].shape[-1] == 60
    assert not (proj / "results").exists()  # nothing went to the workflow's default results folder


def test_provenance_names_the_projects_db(project):
    proj, _ = project
    prov = json.loads((proj / "out" / "filterdb" / "provenance.json").read_text())
    text = json.dumps(prov)
    assert "db.h5" in text
    assert prov["config"]["histogram"]["bins"] == 60
    # the revision of this workflow, not of the project that uses it (workflow.basedir is the project's)
    assert Path(prov["workflow"]["dir"]).resolve() == ROOT.resolve()
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if rev.returncode == 0:
        assert prov["workflow"]["git"]["revision"] == rev.stdout.strip()


def test_outer_rule_consumes_a_module_output(project):
    proj, _ = project
    drift = pd.read_csv(proj / "out" / "filterdb" / "drift" / "task.tsv", sep="\t", index_col=0)
    got = pd.read_csv(proj / "summary" / "task_drift.tsv", sep="\t", index_col=0)
    assert list(got.index) == list(drift.index)
    np.testing.assert_array_equal(got["mean_D"].to_numpy(), drift.to_numpy().mean(axis=1))


def test_report_from_the_project_folder(project):
    proj, _ = project
    html = proj / "report.html"
    res = run(proj, "--report", str(html))
    assert res.returncode == 0, res.stderr[-3000:]
    text = html.read_text()
    for fig in (
        "out/filterdb/figures/kl_combined.svg",
        "out/filterdb/figures/drift_task.svg",
        "out/filterdb/paper/comparison.tsv",
    ):
        assert fig in text, fig


def test_dry_run_is_clean_once_done(project):
    """A second run from the project folder has nothing to do (no input or parameter looks changed)."""
    proj, _ = project
    res = run(proj, "-n", "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Nothing to be done" in res.stdout + res.stderr


def test_workflow_files_found_from_any_folder(tmp_path):
    """Run from a folder holding nothing of this workflow (no config/, no resources/): the sample
    sheet the workflow ships comes from the workflow's own folder, the schema and the scripts too."""
    cfg = tmp_path / "my.yaml"
    cfg.write_text("dataset: results/sample/sample.h5\n")  # the sample DB, no sample block
    res = run(
        tmp_path, "-n", "-p", "--cores", "2", "-s", str(ROOT / "workflow" / "Snakefile"), "--configfile", str(cfg)
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    assert "rule fetch_sample" in out
    block = out[out.index("rule fetch_sample") :].split("\n\n")[0]
    sheet = str((ROOT / "config" / "sample_models.tsv").resolve())
    assert any(
        Path(line.split("input:")[1].split(" (")[0].strip()).resolve() == Path(sheet)
        for line in block.splitlines()
        if "input:" in line
    ), block
    # workflow/Snakefile (where snakedeploy and the catalog look) plans the jobs the top-level one does
    top = run(tmp_path, "-n", "--cores", "2", "-s", str(ROOT / "Snakefile"), "--configfile", str(cfg))
    assert top.returncode == 0, top.stderr[-3000:]

    def stats(text):
        rows = (line.split() for line in text[text.index("Job stats") :].split("\n\n")[0].splitlines()[3:])
        return {("all" if r[0] == "default" else r[0]): int(r[1]) for r in rows if len(r) == 2}

    assert len(stats(out)) > 10 and stats(top.stdout + top.stderr) == stats(out)


def test_config_dir_holds_the_config_snakedeploy_copies():
    """snakedeploy copies config/ into the project and its Snakefile reads config/config.yaml:
    that file is this workflow's config.yaml (a link, so there is one file), and the copy is a file."""
    link = ROOT / "config" / "config.yaml"
    assert link.is_symlink() and link.resolve() == (ROOT / "config.yaml").resolve()
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        shutil.copytree(ROOT / "config", Path(d) / "config")  # what snakedeploy's deploy_config does
        copied = Path(d) / "config" / "config.yaml"
        assert not copied.is_symlink() and copied.read_bytes() == (ROOT / "config.yaml").read_bytes()


def test_installed_package_carries_the_config_schema(tmp_path):
    """A module from GitHub runs its scripts with filterdb installed from a wheel (no workflow/ folder
    beside it): the package ships the schema its defaults come from, the workflow's own file."""
    import sys
    import zipfile

    res = subprocess.run(
        [sys.executable, "-m", "uv", "build", "--wheel", "-q", "-o", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("filterdb-*.whl")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path / "site")
    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    shipped = tmp_path / "site" / "filterdb" / "data" / "config.schema.yaml"
    assert not shipped.is_symlink() and shipped.read_bytes() == schema.read_bytes()
    code = (
        "import filterdb.settings as s; print(s.schema_path()); "
        "print(s.fill_defaults({'dataset': 'x'})['histogram']['bins'])"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "site")}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    path, bins = run.stdout.split()
    assert Path(path) == shipped and int(bins) == 70
