"""Every Snakemake command the README shows, tried as a new user would type it (dry runs).

The commands are read from README.md itself: each line of a code block that starts with
``snakemake``, each inline ``snakemake ...`` span, and each inline ``--config ...`` /
``--set-scatter ...`` option (appended to ``snakemake --cores 2``). Each runs with ``-n`` in a
folder of its own (``--directory``), with the README's paths kept: relative ones point into that
folder, where a small generated DB stands in for the user's; ``/data/`` is moved into it too.
"""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from filterdb.synth import write_synth_db

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake")
pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed")

# what the README's placeholders stand for
PLACEHOLDERS = {"<md5 from the record>": "0123456789abcdef0123456789abcdef", "shards=N": "shards=2"}


def readme_commands(text):
    """The README's snakemake commands, in order, each as it is written (comments dropped)."""
    out = []
    for block in re.finditer(r"```\w*\n(.*?)```", text, re.S):
        out += [line.strip() for line in block.group(1).splitlines() if line.strip().startswith("snakemake")]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.finditer(r"`([^`\n]+)`", prose):
        code = span.group(1).strip()
        if code.startswith("snakemake "):
            out.append(code)
        elif code.startswith(("--config ", "--set-scatter ")):
            out.append(f"snakemake --cores 2 {code}")
    return list(dict.fromkeys(out))


COMMANDS = readme_commands((ROOT / "README.md").read_text())


def test_the_readme_shows_commands():
    """The extraction finds what the README is known to show (the guard against a silent zero)."""
    assert len(COMMANDS) >= 20
    assert "snakemake --cores 2" in COMMANDS
    assert any("uncertainty='{enabled: true}'" in c for c in COMMANDS)
    assert any(c.startswith("snakemake --profile profiles/slurm") for c in COMMANDS)


@pytest.fixture(scope="module")
def user_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("readme_db") / "dataset.h5"
    write_synth_db(path, layout="v1.0", seed=2, n_models=6)
    return path


@pytest.fixture(scope="module")
def server(user_db):
    """A local HTTP server holding the generated DB: the README's example URL points at it."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(user_db.parent)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def argv(command, folder, server=None):
    for k, v in PLACEHOLDERS.items():
        command = command.replace(k, v)
    command = command.replace("/data/", f"{folder}/data/")
    if server:
        command = re.sub(r"https://host/[^ ]*/(\w+\.h5)", f"{server}/dataset.h5", command)
    args = shlex.split(command, comments=True)
    assert args[0] == "snakemake"
    return args[1:]


def user_files(args, folder, db):
    """The DB files a command names (dataset=..., the published DB's path) made in its folder."""
    names = {"resources/published/dataset.h5"}
    for a in args:
        m = re.match(r"^dataset=(.+)$", a)
        if m:
            names.add(m.group(1))
    for name in names:
        p = Path(name) if Path(name).is_absolute() else folder / name
        if "synthetic" in name or "sample" in name or "://" in name:
            continue  # the workflow makes these itself
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(db, p)


def snakemake(args, folder, timeout=300):
    extra = ["-s", str(ROOT / "Snakefile"), "--directory", str(folder)]
    if "--configfile" not in args:
        extra += ["--configfile", str(ROOT / "config.yaml")]
    return subprocess.run([SNAKEMAKE, *args, *extra], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, user_db):
    """A folder where the workflow ran (on the generated DB): what a report command follows."""
    folder = tmp_path_factory.mktemp("readme_run")
    res = snakemake(["--cores", "2", "--config", f"dataset={user_db}"], folder, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return folder


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_dry_runs(command, tmp_path, user_db, request):
    url = "https://host/" in command  # the README's example of a DB in remote storage: served here
    args = argv(command, tmp_path, request.getfixturevalue("server") if url else None)
    if "--report" in args:
        # a report follows a run: the README's command, in the folder of a finished run, of its DB
        tmp_path = request.getfixturevalue("finished_run")
        args += ["--config", f"dataset={user_db}"]
    else:
        user_files(args, tmp_path, user_db)
        if "--unlock" not in args:
            args.append("-n")
    res = snakemake(args, tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"{command}\n{out[-3000:]}"
    assert "Error" not in out and "invalid config" not in out, out[-3000:]
