"""The DB from remote storage: ``dataset: http(s)://...`` through Snakemake's storage plugin
(snakemake-storage-plugin-http), served here by a local HTTP server on 127.0.0.1 that records
every request."""

import json
import os
import shutil
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from filterdb.synth import write_synth_db

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
pytest.importorskip("snakemake_storage_plugin_http")
pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")

TABLES = ["pca/basis.tsv", "pca/mean.tsv", "pca/range.tsv", "drift/task.tsv", "groups/task.tsv", "stats/layers.tsv"]
TARGETS = [*TABLES, "stats/hist.npz", "provenance.json"]


class Logged(SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, fmt, *args):
        Logged.requests.append(self.command)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    write_synth_db(root / "db.h5", layout="v1.0", seed=5, n_models=45)  # 18,528 filters
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Logged, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run(folder, dataset, results, *extra):
    cmd = [SNAKEMAKE, *[f"{results}/{t}" for t in TARGETS], "--cores", "2", "-s", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(folder), "--configfile", str(ROOT / "config.yaml")]
    cmd += ["--config", f"dataset={dataset}", f"results={results}", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_remote_db_equals_local_and_is_downloaded_once(server, tmp_path):
    root, url = server
    Logged.requests.clear()
    res = run(tmp_path, f"{url}/db.h5", "remote")
    assert res.returncode == 0, res.stderr[-3000:]
    assert Logged.requests.count("GET") == 1  # one download
    local = run(tmp_path, (root / "db.h5").as_uri(), "local")  # a file:// URL is the local file
    assert local.returncode == 0, local.stderr[-3000:]
    for t in TABLES:
        assert (tmp_path / "remote" / t).read_bytes() == (tmp_path / "local" / t).read_bytes(), t
    with np.load(tmp_path / "remote/stats/hist.npz") as a, np.load(tmp_path / "local/stats/hist.npz") as b:
        assert sorted(a) == sorted(b) and "counts" in a
        for k in a:
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    # provenance: the URL beside the local copy that was read; the same DB by its hashes
    copy = tmp_path / ".snakemake" / "storage" / "http" / url.split("://")[1] / "db.h5"
    remote_db = json.loads((tmp_path / "remote/provenance.json").read_text())["db"]
    local_db = json.loads((tmp_path / "local/provenance.json").read_text())["db"]
    assert remote_db["url"] == f"{url}/db.h5" and remote_db["path"] == str(copy)
    assert local_db["url"] is None and local_db["path"] == str(root / "db.h5")
    for k in ("size_bytes", "n_filters", "meta_sha256", "filters_sample_sha256"):
        assert remote_db[k] == local_db[k], k
    assert local_db["n_filters"] == 18528
    # the local copy is kept (keep_local) and reused: a forced rerun reads it, no second download
    assert copy.read_bytes() == (root / "db.h5").read_bytes()
    Logged.requests.clear()
    res = run(tmp_path, f"{url}/db.h5", "remote", "--forcerun", "analyse")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "analyse" in res.stderr and Logged.requests.count("GET") == 0 and Logged.requests.count("HEAD") > 0

    # a copy left short (a killed download; its date is newer than the remote's): one line naming it
    good = copy.read_bytes()
    copy.write_bytes(good[: len(good) // 2])
    res = run(tmp_path, f"{url}/db.h5", "remote", "-n")
    assert res.returncode != 0
    out = res.stdout + res.stderr
    line = [x for x in out.splitlines() if "the local copy" in x]
    assert len(line) == 1 and str(copy) in line[0] and f"has {len(good) // 2} bytes" in line[0], out[-3000:]
    assert f"states {len(good)}" in line[0] and "delete it" in line[0]
    os.remove(copy)  # as the message says; a job that reads the DB downloads it again, none here does
    Logged.requests.clear()
    res = run(tmp_path, f"{url}/db.h5", "remote")
    assert res.returncode == 0 and "Nothing to be done" in res.stderr, res.stderr[-3000:]
    assert Logged.requests.count("GET") == 0 and not copy.exists()


def test_missing_remote_db_one_clear_error(server, tmp_path):
    _, url = server
    res = run(tmp_path, f"{url}/nothing.h5", "res")
    assert res.returncode != 0
    assert "nothing.h5" in res.stderr and "Missing input files" in res.stderr
    assert not (tmp_path / "res" / "pca").exists()
