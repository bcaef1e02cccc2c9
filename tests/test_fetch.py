"""filterdb.fetch and rule published_db, end to end against a local HTTP server (never the network).

The archive is downloaded by Snakemake's storage plugin (snakemake-storage-plugin-http), the
mechanism of a `dataset` URL; filterdb.fetch.prepare checks and decompresses the local copy. The
server (http.server on 127.0.0.1, started here) serves an xz-compressed small DB written by the test
and records every request (GET and HEAD).
"""

import email.utils
import hashlib
import lzma
import re
import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from filterdb import fetch as fetchmod
from filterdb.db import open_db
from filterdb.fetch import FetchError, unpack, verify, xz_uncompressed_size
from filterdb.synth import write_synth_db

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
FAST = {"chunk": 4096, "progress": None}
QUIET = {"log": lambda _: None, **FAST}
LAST_MODIFIED = email.utils.formatdate(1_600_000_000, usegmt=True)  # older than any output


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_HEAD(self):
        srv = self.server
        srv.requests.append("HEAD")
        data = srv.files.get(self.path.split("?")[0])
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Last-Modified", LAST_MODIFIED)
        self.end_headers()

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.seen.append(rng)
        srv.requests.append("GET")
        data = srv.files.get(self.path.split("?")[0])
        if data is None:
            self.send_error(404)
            return
        start, end, status = 0, len(data), 200
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng or "")
        if m and srv.ranges:
            a, b = m.groups()
            if a == "":
                start = max(0, len(data) - int(b))
            else:
                start = int(a)
                end = min(len(data), int(b) + 1) if b else len(data)
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:end]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if srv.ranges else "none")
        self.send_header("Last-Modified", LAST_MODIFIED)
        if srv.etag:
            self.send_header("ETag", srv.etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()
        download = rng is None or rng.endswith("-")  # the download itself, not a probe of the tail
        if download and srv.cut is not None and len(body) > srv.cut:
            srv.cut = None  # once
            self.wfile.write(body[: srv.cut_at])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


class Server:
    """A local HTTP server in a thread: ``url(name)``, ``seen`` (the Range header of each GET)."""

    def __init__(self, files, ranges=True, cut=None, etag=None):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.files, self.httpd.ranges, self.httpd.etag = files, ranges, etag
        self.httpd.cut = self.httpd.cut_at = cut
        self.httpd.seen = []
        self.httpd.requests = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def seen(self):
        return self.httpd.seen

    @property
    def requests(self):
        return self.httpd.requests

    def url(self, name):
        host, port = self.httpd.server_address
        return f"http://{host}:{port}/{name}?download=1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """(raw DB bytes, its xz bytes, md5 of the xz)."""
    path = tmp_path_factory.mktemp("src") / "dataset.h5"
    write_synth_db(path, layout="v1.0", seed=1, n_models=3)
    raw = path.read_bytes()
    xz = lzma.compress(raw, preset=1)
    return raw, xz, hashlib.md5(xz).hexdigest()


@pytest.fixture
def serve(db):
    servers = []

    def start(**kw):
        raw, xz, _ = db
        s = Server({"/dataset.h5.xz": xz, "/dataset.h5": raw}, **kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def files_in(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def test_prepare_xz_byte_identical_and_opens(db, tmp_path):
    raw, xz, md5 = db
    archive = tmp_path / "dl" / "dataset.h5.xz"
    archive.parent.mkdir()
    archive.write_bytes(xz)
    out = tmp_path / "pub" / "dataset.h5"
    lines = []
    checked = out.with_name("dataset.h5.xz")
    url = "https://example.org/dataset.h5.xz?download=1"
    assert verify(archive, url, md5, checked, log=lines.append, **FAST) == checked
    assert checked.read_bytes() == xz and archive.exists()
    assert unpack(checked, out, log=lines.append, **FAST) == out
    assert out.read_bytes() == raw
    assert files_in(out.parent) == ["dataset.h5", "dataset.h5.xz"]
    opened = open_db(out)
    assert opened.n_rows > 0 and len(opened.layers) > 0
    assert any(f"md5 {md5} as expected" in x for x in lines)


def test_prepare_wrong_md5_one_line_names_the_file_nothing_left(db, tmp_path):
    raw, xz, md5 = db
    archive = tmp_path / "dataset.h5.xz"
    archive.write_bytes(xz[:-100])  # as a killed download leaves it
    out = tmp_path / "pub" / "dataset.h5"
    with pytest.raises(FetchError) as exc:
        verify(archive, "https://example.org/dataset.h5.xz", md5, out.with_name("dataset.h5.xz"), **QUIET)
    msg = str(exc.value)
    assert "\n" not in msg and md5 in msg and hashlib.md5(xz[:-100]).hexdigest() in msg
    assert str(archive) in msg and "delete it" in msg and "https://example.org/dataset.h5.xz" in msg
    assert not out.parent.exists() or files_in(out.parent) == []


def test_prepare_plain_file_is_copied(db, tmp_path):
    raw, _, _ = db
    archive = tmp_path / "dataset.h5"
    archive.write_bytes(raw)
    out = tmp_path / "pub" / "copy.h5"
    checked = verify(
        archive, archive.as_uri(), hashlib.md5(raw).hexdigest(), out.with_name("copy.h5.download"), **QUIET
    )
    unpack(checked, out, **QUIET)
    assert out.read_bytes() == raw and files_in(out.parent) == ["copy.h5", "copy.h5.download"]


def test_prepare_not_enough_disk_nothing_written(db, tmp_path, monkeypatch):
    raw, xz, md5 = db
    archive = tmp_path / "dataset.h5.xz"
    archive.write_bytes(xz)
    real = shutil.disk_usage
    monkeypatch.setattr(fetchmod.shutil, "disk_usage", lambda p: real(p)._replace(free=len(raw) - 1))
    out = tmp_path / "pub" / "dataset.h5"
    with pytest.raises(FetchError, match=r"not enough free disk space .* needed at the peak \(decompressed"):
        unpack(archive, out, **QUIET)
    assert files_in(out.parent) == []


def test_invalid_xz_leaves_nothing_under_path(tmp_path):
    bad = lzma.compress(b"x" * 100_000)
    bad = bad[:40] + bytes(b ^ 0xFF for b in bad[40:60]) + bad[60:]  # damaged block, index intact
    src = tmp_path / "bad.h5.xz"
    src.write_bytes(bad)
    out = tmp_path / "out" / "dataset.h5"
    with pytest.raises(FetchError, match="not valid xz data"):
        unpack(src, out, **QUIET)
    assert not out.exists() and not (out.parent / "dataset.h5.partial").exists()


def test_xz_uncompressed_size_streams_and_padding():
    data = lzma.compress(b"a" * 5000) + b"\0" * 8 + lzma.compress(b"b" * 123, preset=9) + b"\0" * 4
    assert xz_uncompressed_size(lambda off, n: data[off : off + n], len(data)) == 5123
    with pytest.raises(ValueError, match="not an xz file"):
        xz_uncompressed_size(lambda off, n: b"q" * n, 100)


def test_bad_md5_argument():
    with pytest.raises(FetchError, match="32 hex digits"):
        verify("/nonexistent.xz", "file:///nonexistent.xz", "abc", "/nonexistent/x.h5.xz", log=lambda _: None)


# ---------------------------------------------------------------------------------------------
# Through Snakemake: the storage plugin downloads, verify() checks, unpack() decompresses


def run_snakemake(tmp, published, *args):
    cfg = tmp / "published.yaml"
    cfg.write_text(yaml.safe_dump({"published": published}))
    cmd = [SNAKEMAKE, *(args or ["published_db"]), "--cores", "1", "-s", str(ROOT / "Snakefile")]
    cmd += ["--directory", str(tmp), "--configfile", str(ROOT / "config.yaml"), str(cfg)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")
def test_snakemake_published_db(db, serve, tmp_path):
    raw, xz, md5 = db
    s = serve()
    url = s.url("dataset.h5.xz")
    pub = {"url": url, "md5": "0" * 32, "path": "pub/dataset.h5"}
    res = run_snakemake(tmp_path, pub)
    assert res.returncode != 0
    line = [x for x in res.stderr.splitlines() if "filterdb error in rule published_download" in x]
    assert len(line) == 1 and "0" * 32 in line[0] and md5 in line[0] and url in line[0], res.stderr[-3000:]
    assert not (tmp_path / "pub").exists() or files_in(tmp_path / "pub") == []

    s.requests.clear()
    res = run_snakemake(tmp_path, {**pub, "md5": md5})
    assert res.returncode == 0, res.stderr[-3000:]
    assert s.requests.count("GET") == 1  # one download, by the storage plugin
    assert (tmp_path / "pub/dataset.h5").read_bytes() == raw
    assert files_in(tmp_path / "pub") == ["dataset.h5"]
    assert "md5 " + md5 + " as expected" in (tmp_path / "results/logs/published_download.log").read_text()
    assert "decompressing" in (tmp_path / "results/logs/published_db.log").read_text()
    assert (tmp_path / "results/benchmarks/published_db.tsv").exists()
    # keep_compressed false: the checked archive was temporary, Snakemake's local copy is gone too
    assert not list((tmp_path / ".snakemake" / "storage").rglob("dataset.h5.xz"))
    assert (tmp_path / "results/logs/published_download.log").exists()

    # the DB there: no request at all, neither for published_db nor for an analysis of it (offline)
    s.close()
    res = run_snakemake(tmp_path, {**pub, "md5": md5}, "published_db", "-n")
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr, res.stdout[-3000:]
    res = run_snakemake(tmp_path, {**pub, "md5": md5}, "results/pca/basis.tsv", "--config", "dataset=pub/dataset.h5")
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "results/pca/basis.tsv").exists()


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")
def test_snakemake_keep_compressed_and_file_url(db, serve, tmp_path):
    raw, xz, md5 = db
    s = serve()
    url = s.url("dataset.h5.xz")
    res = run_snakemake(tmp_path, {"url": url, "md5": md5, "path": "pub/dataset.h5", "keep_compressed": True})
    assert res.returncode == 0, res.stderr[-3000:]
    assert files_in(tmp_path / "pub") == ["dataset.h5", "dataset.h5.xz"]
    assert (tmp_path / "pub/dataset.h5.xz").read_bytes() == xz
    # a file:// URL (an archive downloaded by hand) takes no storage plugin
    local = tmp_path / "by_hand" / "dataset.h5.xz"
    local.parent.mkdir()
    local.write_bytes(xz)
    res = run_snakemake(tmp_path, {"url": local.as_uri(), "md5": md5, "path": "pub2/dataset.h5"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "pub2/dataset.h5").read_bytes() == raw and local.exists()
    # a URL not ending in .xz: checked and copied as it is, the temporary <path>.download removed
    s.requests.clear()
    plain = {"url": s.url("dataset.h5"), "md5": hashlib.md5(raw).hexdigest(), "path": "pub3/dataset.h5"}
    res = run_snakemake(tmp_path, plain)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "pub3/dataset.h5").read_bytes() == raw and files_in(tmp_path / "pub3") == ["dataset.h5"]
    assert s.requests.count("GET") == 1
