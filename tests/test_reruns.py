"""Interrupted and repeated workflow runs give the same outputs as one uninterrupted run.

* A run interrupted with Ctrl-C (SIGINT) or killed outright (SIGKILL of its whole process group),
  after the first shard jobs have finished and while a gather runs, is resumed with the README's
  recovery ("Interrupted runs": the same command; after a hard kill ``--unlock`` first) and ends
  with the outputs of an uninterrupted run, no temporary files and no stale Snakemake markers.
* Every output (TSVs, figures, npz/npy) is identical across reruns (the resumed run above starts
  in a fresh folder), and for 3 shards on 2 cores and 1 shard on 1 core.

Slow (several workflow runs; each Snakemake start costs seconds): ``-m "not slow"`` skips them.

Compared: every file under the results folder except ``logs/`` and ``benchmarks/`` (timings,
process ids, peak memory). TSVs, SVGs, PNGs byte by byte; npz/npy array by array (names, dtypes,
shapes, values); ``provenance.json`` in full except its ``workflow`` entry (the checkout's git
state, which may change while the tests run): the runs read the same DB file, so its recorded path
and modification time agree.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from filterdb import results
from filterdb.synth import write_synth_db

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
needs_snakemake = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")
IGNORED = ("logs", "benchmarks")


def command(workdir, db, *extra, shards=3, cores=2):
    """The README's command (default target: every output) on ``db``, results in ``workdir/res``."""
    return [
        SNAKEMAKE,
        "--cores",
        str(cores),
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(ROOT / "config.yaml"),
        "--config",
        f"dataset={db}",
        "results=res",
        "--set-scatter",
        f"shards={shards}",
        *extra,
    ]


def run(cmd, log):
    """Run to the end (from the repository, as a user does: profiles/default applies)."""
    with open(log, "w") as out:
        res = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=900)
    assert res.returncode == 0, Path(log).read_text()[-3000:]


def outputs(res):
    return {
        p.relative_to(res).as_posix(): p
        for p in sorted(Path(res).rglob("*"))
        if p.is_file()
        and p.relative_to(res).parts[0] not in IGNORED
        and p.relative_to(res).parts[:2] != ("stats", "totals")  # one file per shard: named by the shard count
    }


def assert_same_outputs(ref, other):
    a, b = outputs(ref), outputs(other)
    assert sorted(a) == sorted(b)
    kinds = {}
    for rel, p in a.items():
        q = b[rel]
        ext = p.suffix
        kinds[ext] = kinds.get(ext, 0) + 1
        if ext == ".npz":
            x, y = results.load_npz(p), results.load_npz(q)
            assert sorted(x) == sorted(y), rel
            for k in x:
                assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape, (rel, k)
                assert np.array_equal(x[k], y[k], equal_nan=x[k].dtype.kind in "fc"), (rel, k)
        elif ext == ".npy":
            x, y = np.load(p), np.load(q)
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), rel
        elif rel == "provenance.json":
            x, y = json.loads(p.read_text()), json.loads(q.read_text())
            x.pop("workflow"), y.pop("workflow")
            assert x == y
        else:
            assert p.read_bytes() == q.read_bytes(), rel
    # every kind of output was compared (the default target makes all of them)
    assert kinds[".tsv"] >= 30 and kinds[".svg"] >= 20 and kinds[".png"] >= 20, kinds
    assert kinds[".npz"] == 4 and kinds[".npy"] == 1, kinds


def assert_clean(workdir):
    """No temporary files of ours (atomic writes, shard parts) nor Snakemake's markers of running
    jobs or locks are left."""
    res = Path(workdir) / "res"
    left = [p for p in res.rglob("*") if ".partial" in p.name or p.name.endswith((".appending", ".building"))]
    assert left == []
    assert not any(p.is_file() for p in (res / "shards").rglob("*")), "shard parts (temp) left"
    for sub in ("incomplete", "locks"):
        d = Path(workdir) / ".snakemake" / sub
        assert not d.exists() or not any(d.iterdir()), sub


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("reruns") / "dataset.h5"
    write_synth_db(path, layout="v1.0", seed=11, n_models=10)
    return path


@pytest.fixture(scope="module")
def reference(db, tmp_path_factory):
    """One uninterrupted run: 3 shards, 2 cores."""
    wd = tmp_path_factory.mktemp("reference")
    run(command(wd, db), wd / "run.log")
    assert_clean(wd)
    return wd


# ---------------------------------------------------------------------------------------------
# Interruptions


def _group_gone(pgid, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def interrupt(cmd, log, marker, sig, timeout=600):
    """Start ``cmd`` in its own process group, wait until ``marker()`` is true, send ``sig`` to the
    whole group, and wait until every process of the group has ended."""
    with open(log, "w") as out:
        # SIGINT as a terminal delivers it, even when this suite runs in the background (a
        # non-interactive shell starts background commands with SIGINT ignored, and children inherit it)
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + timeout
        while not marker():
            assert proc.poll() is None, f"the run ended before the marker:\n{Path(log).read_text()[-3000:]}"
            assert time.monotonic() < deadline, "marker not reached"
            time.sleep(0.002)
        os.killpg(proc.pid, sig)
        rc = proc.wait(timeout=300)
        assert _group_gone(proc.pid), "processes of the interrupted run are still running"
    finally:
        if not _group_gone(proc.pid, 0):  # only on a failed assertion above
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert rc != 0, "the interrupted run reported success"


@needs_snakemake
@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_outputs(db, reference, tmp_path):
    """One run interrupted four times, each time resumed as the README says ("Interrupted runs":
    after Ctrl-C the same command; after a hard kill ``--unlock``, then the same command):

    1. SIGINT after the first shard_sums job has finished;
    2. SIGINT while gather_sums runs, after it wrote its first output (stats/sums.npz) and before
       its last (pca/mean.tsv, written ~1 s later, after importing pandas);
    3. SIGKILL while gather_sums runs again (its script has reopened the rule's log);
    4. SIGKILL after the first shard_hist job has finished.

    The resumed run ends with the outputs of the uninterrupted run and leaves no temporary files.
    (The faster gathers finish within ~0.1 s of their script starting: too short to hit reliably.)"""
    wd, res = tmp_path, tmp_path / "res"
    stats, pca = res / "stats", res / "pca"
    gather_log = res / "logs" / "gather_sums.log"
    cmd = command(wd, db)
    logs = (wd / f"run{k}.log" for k in range(100))

    def first_part(kind):
        return lambda: any((res / "shards" / kind).glob("*-of-3.npz"))

    def log_written_since(t):
        return lambda: gather_log.exists() and gather_log.stat().st_mtime > t

    # 1. Ctrl-C after the first shard job of the first pass has finished
    interrupt(cmd, next(logs), first_part("sums"), signal.SIGINT)
    assert not gather_log.exists() and not (stats / "sums.npz").exists()
    # 2. the same command; Ctrl-C between gather_sums' first and last output
    interrupt(cmd, next(logs), (stats / "sums.npz").exists, signal.SIGINT)
    assert not (pca / "mean.tsv").exists()
    # 3. the same command (gather_sums is redone); kill -9 of the whole group once its script runs
    interrupt(cmd, next(logs), log_written_since(time.time()), signal.SIGKILL)
    assert not (pca / "mean.tsv").exists()
    run([*cmd, "--unlock"], next(logs))  # the killed run's lock is left behind
    # 4. the same command; kill -9 after the first shard job of the last pass has finished
    interrupt(cmd, next(logs), first_part("hist"), signal.SIGKILL)
    assert not (stats / "cell_hist.npy").exists()  # (gather_sums may or may not have run: it is off the chain)
    run([*cmd, "--unlock"], next(logs))
    # the same command completes the run
    run(cmd, next(logs))
    assert_clean(wd)
    assert_same_outputs(reference / "res", res)


def test_readme_recovery_is_what_the_test_does():
    """README "Interrupted runs": after a kill, the same command with ``--unlock``, then the same
    command; the workflow profile (applied to every run, also with ``--profile``) sets
    ``rerun-incomplete`` and no other profile turns it off."""
    import yaml

    text = (ROOT / "README.md").read_text()
    section = text.split("## Interrupted runs\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2 and block[0] == block[1] + " --unlock", block
    assert block[1].startswith("snakemake ")
    profiles = sorted((ROOT / "profiles").glob("*/config.yaml"))
    assert {p.parent.name for p in profiles} >= {"default", "slurm", "slurm-local"}
    for p in profiles:
        value = yaml.safe_load(p.read_text()).get("rerun-incomplete")
        assert value is True if p.parent.name == "default" else value in (None, True), p


def test_killed_writer_leaves_no_temporary_file_after_rewrite(tmp_path):
    """atomic_write removes the temporary file of a writer killed by SIGKILL when the same file is
    written again; a running writer's temporary file is kept."""
    target = tmp_path / "x.tsv"
    code = (
        "import sys, time; from filterdb import results\n"
        "def w(tmp):\n    open(tmp, 'w').write('half'); print('ready', flush=True); time.sleep(600)\n"
        f"results.atomic_write({str(target)!r}, w)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        dead, alive = procs
        dead.kill()
        dead.wait()
        names = {p.pid: tmp_path / f".x.tsv.{p.pid}.partial.tsv" for p in procs}
        assert all(n.exists() for n in names.values())
        assert results.stale_partials(target) == [names[dead.pid]]
        results.atomic_write(target, lambda tmp: Path(tmp).write_text("whole\n"))
        assert target.read_text() == "whole\n"
        assert not names[dead.pid].exists() and names[alive.pid].exists()
    finally:
        for p in procs:
            p.kill()
            p.wait()


# ---------------------------------------------------------------------------------------------
# Determinism


@needs_snakemake
@pytest.mark.slow
def test_same_outputs_for_one_shard_on_one_core(db, reference, tmp_path):
    """One shard on one core (jobs one after another, one compute thread) against three shards on
    two cores (jobs in parallel): every output is identical. (Shards alone: test_workflow.py; more
    threads in a shard job: test_scale.py.)"""
    run(command(tmp_path, db, shards=1, cores=1), tmp_path / "run.log")
    assert "hist 1/1: " in (tmp_path / "res/logs/analyse.log").read_text()  # one shard: the one-job path
    assert_clean(tmp_path)
    assert_same_outputs(reference / "res", tmp_path / "res")


@needs_snakemake
@pytest.mark.slow
def test_one_job_path_killed_resumes_to_the_same_outputs(db, reference, tmp_path):
    """The one-job path (one shard, rule analyse) on two cores (two threads in the job: set, as
    stream.threads auto gives a DB smaller than a block one), killed with SIGKILL once it has
    written its first gathered output (stats/sums.npz), then resumed as the README says: every
    output equals the three-shard run's, no temporary file is left."""
    res = tmp_path / "res"
    cmd = command(tmp_path, db, "--set-threads", "analyse=2", shards=1, cores=2)
    interrupt(cmd, tmp_path / "run1.log", (res / "stats" / "sums.npz").exists, signal.SIGKILL)
    assert not (res / "stats" / "hist.npz").exists()
    run([*cmd, "--unlock"], tmp_path / "run2.log")
    run(cmd, tmp_path / "run3.log")
    assert "2 thread(s)" in (res / "logs/analyse.log").read_text()
    assert_clean(tmp_path)
    assert_same_outputs(reference / "res", res)
