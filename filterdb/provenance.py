"""Provenance of a run: which DB, which settings, which code made the numbers.

``{results}/provenance.json`` (rule ``provenance``) records the input DB (path, the URL it was
read from when ``dataset`` is one, size, modification time, a content hash of its meta table and a
hash of a fixed sample of its filter rows), the effective configuration (defaults filled), the
versions of Python and of the packages that compute or draw, the PCA sign convention, and the git
revision of the workflow when it is a git checkout.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
from importlib import metadata

import numpy as np

SIGN_CONVENTION = (
    "each principal component is flipped so that its loading of largest magnitude is positive "
    "(on exact ties, the first such pixel in row-major order decides)"
)
PACKAGES = ["filterdb", "numpy", "scipy", "pandas", "h5py", "tables", "numba", "snakemake", "matplotlib", "KDEpy"]


def meta_sha256(path: str) -> str:
    """SHA-256 of the DB's meta table: pandas' row hashes (index and values) of ``meta``, read by
    the DB's one reader (:func:`filterdb.db.read_meta`: no code from the file runs)."""
    import pandas as pd

    from .db import read_meta

    meta = read_meta(path)
    rows = pd.util.hash_pandas_object(meta.astype(str), index=True).to_numpy()
    return hashlib.sha256(rows.tobytes()).hexdigest()


def sample_rows(n_rows: int, samples: int = 64, rows: int = 256) -> list[tuple[int, int]]:
    """The row ranges hashed by :func:`filters_sample_sha256`: ``samples`` runs of ``rows`` rows,
    evenly spaced from the first row to the last (fewer when the DB is small)."""
    if n_rows <= samples * rows:
        return [(0, n_rows)] if n_rows else []
    starts = np.linspace(0, n_rows - rows, samples).astype(np.int64)
    return [(int(a), int(a) + rows) for a in starts]


def filters_sample_sha256(path: str, key: str) -> str:
    """SHA-256 of a fixed sample of filter rows (float32 bytes of :func:`sample_rows`)."""
    import h5py

    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        ds = f[key]
        for a, b in sample_rows(int(ds.shape[0])):
            h.update(np.ascontiguousarray(ds[a:b], dtype=np.float32).reshape(b - a, -1).tobytes())
    return h.hexdigest()


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def _git(workflow_dir) -> dict | None:
    try:
        rev = subprocess.run(
            ["git", "-C", str(workflow_dir), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if rev.returncode:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(workflow_dir), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"revision": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return None


def provenance(db_path: str, config: dict, workflow_dir=None) -> dict:
    """The provenance record of a run.

    Parameters
    ----------
    db_path : str
        The analysed DB.
    config : dict
        The effective configuration (Snakemake's ``config`` after validation: defaults filled).
    workflow_dir : str, optional
        The workflow's folder, for its git revision.

    Returns
    -------
    dict (JSON-serialisable): ``db``, ``config``, ``versions``, ``sign_convention``, ``workflow``.
    """
    from .db import open_db

    checks = (config or {}).get("checks") or {}
    db = open_db(db_path, checks={k: "warn" for k in checks})  # findings recorded below, not raised here
    key, n = db.key, db.n_rows
    st = os.stat(db_path)
    source = str((config or {}).get("dataset", ""))  # a URL: path is the storage plugin's local copy
    return {
        "db": {
            "path": os.path.abspath(db_path),
            "url": source if "://" in source and not source.startswith("file://") else None,
            "size_bytes": st.st_size,
            "modified": datetime.datetime.fromtimestamp(st.st_mtime, datetime.UTC).isoformat(),
            "filter_dataset": key,
            "n_filters": int(n),
            "meta_sha256": meta_sha256(db_path),
            "filters_sample_sha256": filters_sample_sha256(db_path, key),
            "filters_sample": f"{len(sample_rows(int(n)))} evenly spaced runs of rows (provenance.sample_rows)",
            "filter_dtype": db.dtype,
            "coverage": db.coverage.as_dict(),
        },
        "config": config,
        "versions": _versions(),
        "sign_convention": SIGN_CONVENTION,
        "workflow": {
            "dir": str(workflow_dir) if workflow_dir else None,
            "git": _git(workflow_dir) if workflow_dir else None,
        },
    }
