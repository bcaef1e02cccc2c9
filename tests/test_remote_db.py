"""The DB from remote storage: ``dataset: http(s)://...`` through Snakemake's storage plugin
(snakemake-storage-plugin-http), served here by a local HTTP server on 127.0.0.1."""

import shutil
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from filterdb.synth import write_synth_db

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
pytest.importorskip("snakemake_storage_plugin_http")
pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")

TABLES = ["pca/basis.tsv", "pca/mean.tsv", "pca/range.tsv", "drift/task.tsv", "groups/task.tsv", "stats/layers.tsv"]


class Logged(SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, fmt, *args):
        Logged.requests.append(self.command)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    write_synth_db(root / "db.h5", layout="v1.0", seed=5, n_models=8)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Logged, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def run(folder, dataset, results, *extra):
    cmd = [SNAKEMAKE, *[f"{results}/{t}" for t in TABLES], "--cores", "2", "-s", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(folder), "--configfile", str(ROOT / "config.yaml")]
    cmd += ["--config", f"dataset={dataset}", f"results={results}", *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_remote_db_equals_local_and_is_downloaded_once(server, tmp_path):
    root, url = server
    Logged.requests.clear()
    res = run(tmp_path, f"{url}/db.h5", "remote")
    assert res.returncode == 0, res.stderr[-3000:]
    assert Logged.requests.count("GET") == 1  # one download
    local = run(tmp_path, root / "db.h5", "local")
    assert local.returncode == 0, local.stderr[-3000:]
    for t in TABLES:
        assert (tmp_path / "remote" / t).read_bytes() == (tmp_path / "local" / t).read_bytes(), t
    # the local copy is kept (keep_local) and reused: a forced rerun reads it, no second download
    copy = tmp_path / ".snakemake" / "storage" / "http" / url.split("://")[1] / "db.h5"
    assert copy.read_bytes() == (root / "db.h5").read_bytes()
    Logged.requests.clear()
    res = run(tmp_path, f"{url}/db.h5", "remote", "--forcerun", "analyse")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "analyse" in res.stderr and Logged.requests.count("GET") == 0


def test_missing_remote_db_one_clear_error(server, tmp_path):
    _, url = server
    res = run(tmp_path, f"{url}/nothing.h5", "res")
    assert res.returncode != 0
    assert "nothing.h5" in res.stderr and "Missing input files" in res.stderr
    assert not (tmp_path / "res" / "pca").exists()
