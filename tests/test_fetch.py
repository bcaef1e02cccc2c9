"""filterdb.fetch and rule published_db, end to end against a local HTTP server (never the network).

The server (http.server on 127.0.0.1, started here) serves an xz-compressed small DB written by the
test; its variants: with byte ranges, without (answers 200 to a Range request), cutting the
connection after N bytes once, stating an md5 in its ETag (as Zenodo does).
"""

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
from filterdb.fetch import FetchError, fetch, xz_uncompressed_size
from filterdb.synth import write_synth_db

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
CUT = 20_000  # bytes the cutting server sends before dropping the connection
FAST = {"backoff": 0.0, "chunk": 4096, "progress": None}  # no pauses between retries, small chunks


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.seen.append(rng)
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
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def seen(self):
        return self.httpd.seen

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


def test_success_byte_identical_and_opens(db, serve, tmp_path):
    raw, xz, md5 = db
    s = serve()
    out = tmp_path / "pub" / "dataset.h5"
    lines = []
    assert fetch(s.url("dataset.h5.xz"), md5, out, log=lines.append, **FAST) == out
    assert out.read_bytes() == raw
    assert files_in(out.parent) == ["dataset.h5"]  # compressed file deleted, no partial
    opened = open_db(out)
    assert opened.n_rows > 0 and len(opened.layers) > 0
    assert s.seen[0] == "bytes=-65536" and s.seen[-1] is None  # probe of the tail, then the download
    assert any("peak disk use" in line for line in lines)


def test_keep_compressed_and_rerun_reuses_it(db, serve, tmp_path):
    raw, xz, md5 = db
    s = serve()
    out = tmp_path / "dataset.h5"
    fetch(s.url("dataset.h5.xz"), md5, out, keep_compressed=True, log=lambda _: None, **FAST)
    assert files_in(tmp_path) == ["dataset.h5", "dataset.h5.xz"]
    assert (tmp_path / "dataset.h5.xz").read_bytes() == xz
    out.unlink()
    n = len(s.seen)
    lines = []
    fetch(s.url("dataset.h5.xz"), md5, out, keep_compressed=False, log=lines.append, **FAST)
    assert len(s.seen) == n, "a checked compressed file is not downloaded again"
    assert out.read_bytes() == raw and files_in(tmp_path) == ["dataset.h5"]


def test_wrong_md5_one_line_nothing_left(db, serve, tmp_path):
    _, xz, md5 = db
    s = serve()
    url = s.url("dataset.h5.xz")
    wrong = "0" * 32
    with pytest.raises(FetchError) as err:
        fetch(url, wrong, tmp_path / "dataset.h5", log=lambda _: None, **FAST)
    msg = str(err.value)
    assert "\n" not in msg and wrong in msg and md5 in msg and url in msg
    assert files_in(tmp_path) == []


def test_cut_connection_then_resume_next_run(db, serve, tmp_path):
    raw, xz, md5 = db
    s = serve(cut=CUT)
    out = tmp_path / "dataset.h5"
    with pytest.raises(FetchError, match="no retry"):
        fetch(s.url("dataset.h5.xz"), md5, out, retries=0, log=lambda _: None, **FAST)
    assert files_in(tmp_path) == ["dataset.h5.xz.partial"]
    kept = (tmp_path / "dataset.h5.xz.partial").read_bytes()
    n = len(kept)  # what arrived before the cut, in whole chunks
    assert 0 < n <= CUT and kept == xz[:n]
    lines = []
    fetch(s.url("dataset.h5.xz"), md5, out, log=lines.append, **FAST)
    assert s.seen[-1] == f"bytes={n}-"
    assert out.read_bytes() == raw and files_in(tmp_path) == ["dataset.h5"]
    assert any("resuming" in line and f"from byte {n} " in line for line in lines)


def test_cut_connection_resumed_by_retry(db, serve, tmp_path):
    raw, _, md5 = db
    s = serve(cut=CUT)
    out = tmp_path / "dataset.h5"
    lines = []
    fetch(s.url("dataset.h5.xz"), md5, out, log=lines.append, **FAST)
    assert s.seen[-2] is None and re.fullmatch(r"bytes=(\d+)-", s.seen[-1])
    assert 0 < int(s.seen[-1][6:-1]) <= CUT
    assert out.read_bytes() == raw and files_in(tmp_path) == ["dataset.h5"]
    assert any("retrying" in line for line in lines)


def test_truncated_partial_of_earlier_run_resumed(db, serve, tmp_path):
    raw, xz, md5 = db
    s = serve()
    (tmp_path / "dataset.h5.xz.partial").write_bytes(xz[:12345])
    fetch(s.url("dataset.h5.xz"), md5, tmp_path / "dataset.h5", log=lambda _: None, **FAST)
    assert s.seen[-1] == "bytes=12345-"
    assert (tmp_path / "dataset.h5").read_bytes() == raw and files_in(tmp_path) == ["dataset.h5"]


def test_server_without_ranges_restarts_from_zero(db, serve, tmp_path):
    raw, xz, md5 = db
    s = serve(ranges=False)
    (tmp_path / "dataset.h5.xz.partial").write_bytes(xz[:12345])
    lines = []
    fetch(s.url("dataset.h5.xz"), md5, tmp_path / "dataset.h5", log=lines.append, **FAST)
    assert s.seen[-1] == "bytes=12345-"  # asked for the rest, got the whole file with 200
    assert any("restarting the download from zero" in line for line in lines)
    assert any("decompressed size is checked after the download" in line for line in lines)
    assert (tmp_path / "dataset.h5").read_bytes() == raw and files_in(tmp_path) == ["dataset.h5"]


def test_not_enough_disk_nothing_downloaded(db, serve, tmp_path, monkeypatch):
    raw, xz, md5 = db
    s = serve()
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=1000))
    with pytest.raises(FetchError) as err:
        fetch(s.url("dataset.h5.xz"), md5, tmp_path / "dataset.h5", log=lambda _: None, **FAST)
    msg = str(err.value)
    need = fetchmod.human_bytes(len(xz) + len(raw))
    assert "\n" not in msg and f"{need} needed at the peak" in msg and "1.0 kB free" in msg, msg
    assert files_in(tmp_path) == []
    assert all(r is not None and not r.endswith("-") for r in s.seen), "only the tail was read"


def test_xz_index_read_by_range_requests(db, serve, tmp_path, monkeypatch):
    raw, xz, md5 = db
    s = serve()
    monkeypatch.setattr(fetchmod, "TAIL_BYTES", 16)  # the index is not in the probed tail
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=len(xz) + len(raw) - 1))
    with pytest.raises(FetchError, match="needed at the peak"):
        fetch(s.url("dataset.h5.xz"), md5, tmp_path / "dataset.h5", log=lambda _: None, **FAST)
    assert any(re.fullmatch(r"bytes=\d+-\d+", r or "") for r in s.seen)


def test_etag_md5_differs_stops_before_download(db, serve, tmp_path):
    _, xz, md5 = db
    s = serve(etag='"md5:' + "f" * 32 + '"')
    with pytest.raises(FetchError, match="f{32}.*" + md5):
        fetch(s.url("dataset.h5.xz"), md5, tmp_path / "dataset.h5", log=lambda _: None, **FAST)
    assert files_in(tmp_path) == []


def test_plain_file_url_no_decompression(db, tmp_path):
    raw, xz, _ = db
    src = tmp_path / "src" / "dataset.h5"
    src.parent.mkdir()
    src.write_bytes(raw)
    out = tmp_path / "out" / "dataset.h5"
    fetch(src.as_uri(), hashlib.md5(raw).hexdigest(), out, log=lambda _: None, **FAST)
    assert out.read_bytes() == raw and files_in(out.parent) == ["dataset.h5"]


def test_file_url_xz(db, tmp_path):
    raw, xz, md5 = db
    src = tmp_path / "dataset.h5.xz"
    src.write_bytes(xz)
    out = tmp_path / "out" / "dataset.h5"
    fetch(src.as_uri(), md5, out, log=lambda _: None, **FAST)
    assert out.read_bytes() == raw and files_in(out.parent) == ["dataset.h5"]


def test_invalid_xz_leaves_nothing_under_path(tmp_path):
    bad = lzma.compress(b"x" * 100_000)
    bad = bad[:40] + bytes(b ^ 0xFF for b in bad[40:60]) + bad[60:]  # damaged block, index intact
    src = tmp_path / "bad.h5.xz"
    src.write_bytes(bad)
    out = tmp_path / "out" / "dataset.h5"
    with pytest.raises(FetchError, match="not valid xz data"):
        fetch(src.as_uri(), hashlib.md5(bad).hexdigest(), out, log=lambda _: None, **FAST)
    assert not out.exists() and not (out.parent / "dataset.h5.partial").exists()


def test_xz_uncompressed_size_streams_and_padding():
    data = lzma.compress(b"a" * 5000) + b"\0" * 8 + lzma.compress(b"b" * 123, preset=9) + b"\0" * 4
    assert xz_uncompressed_size(lambda off, n: data[off : off + n], len(data)) == 5123
    with pytest.raises(ValueError, match="not an xz file"):
        xz_uncompressed_size(lambda off, n: b"q" * n, 100)


def test_bad_md5_argument():
    with pytest.raises(FetchError, match="32 hex digits"):
        fetch("file:///nonexistent.xz", "abc", "/nonexistent/x.h5", log=lambda _: None)


# ---------------------------------------------------------------------------------------------
# Through Snakemake


def run_published_db(tmp, published):
    cfg = tmp / "published.yaml"
    cfg.write_text(yaml.safe_dump({"published": published}))
    cmd = [SNAKEMAKE, "published_db", "--cores", "1", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp)]
    cmd += ["--configfile", str(ROOT / "config.yaml"), str(cfg)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")
def test_snakemake_published_db(db, serve, tmp_path):
    raw, xz, md5 = db
    s = serve()
    url = s.url("dataset.h5.xz")
    res = run_published_db(tmp_path, {"url": url, "md5": "0" * 32, "path": "pub/dataset.h5"})
    assert res.returncode != 0
    line = [x for x in res.stderr.splitlines() if "filterdb error in rule published_db" in x]
    assert len(line) == 1 and "0" * 32 in line[0] and md5 in line[0] and url in line[0], res.stderr[-3000:]
    assert not (tmp_path / "pub").exists() or files_in(tmp_path / "pub") == []

    res = run_published_db(tmp_path, {"url": url, "md5": md5, "path": "pub/dataset.h5"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "pub/dataset.h5").read_bytes() == raw
    assert files_in(tmp_path / "pub") == ["dataset.h5"]
    log = (tmp_path / "results/logs/published_db.log").read_text()
    assert "md5 " + md5 + " as expected" in log and "download" in log
    assert (tmp_path / "results/benchmarks/published_db.tsv").exists()
