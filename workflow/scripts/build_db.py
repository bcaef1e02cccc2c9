"""Rule build_sample_db (and any sheets -> DB rule): ``filterdb build`` on input.sheets.

The sheets are merged into output.sheet first (:func:`filterdb.ingest.sheet.merge_sheets`: ``path``
re-anchored to it; columns united).

Writes output.db (published v1.0 layout) and output.skipped (models that could not be used, with
the reason). Fails only when no model could be built. `source` rows without a local file are
looked up in the archive cache params.archives (no download here: that is fetch_sample's job).
"""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)

import os  # noqa: E402

from filterdb.ingest.build import build  # noqa: E402
from filterdb.ingest.sheet import merge_sheets  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr)


sheet = snakemake.output.sheet  # the merged sheet actually built (paths relative to it)
merge_sheets(snakemake.input.sheets, sheet)
log(f"merged {len(snakemake.input.sheets)} sheet(s) into {sheet}")
members = snakemake.input.get("members") or os.path.join(os.path.dirname(snakemake.output.db), "members")
res = build(
    sheet,
    snakemake.output.db,
    skipped=snakemake.output.skipped,
    archives=snakemake.params.get("archives", "resources/archives"),
    members=members,
    download=False,
    log=log,
)
log(
    f"{snakemake.output.db}: {len(res.built)} models, {res.n_layers} layers, {res.n_filters} filters; "
    f"skipped {len(res.skipped)} (see {snakemake.output.skipped})"
)
for s in res.skipped:
    print(f"build_sample_db: skipped {s['model']}: {s['file']}: {s['reason']}", file=sys.__stderr__)
if not res.built:
    print(f"filterdb error in rule {snakemake.rule}: no model could be built from {sheet}", file=sys.__stderr__)
    sys.exit(1)
