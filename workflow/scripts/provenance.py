"""provenance.json: the input DB, the effective config, package versions, sign convention, git revision."""

import json
from pathlib import Path

from filterdb import results
from filterdb.glue import main
from filterdb.provenance import provenance


def run():
    record = provenance(snakemake.input.db, dict(snakemake.params.config), snakemake.params.workflow_dir)
    text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    results.atomic_write(snakemake.output.json, lambda tmp: Path(tmp).write_text(text))
    db = record["db"]
    print(f"{snakemake.input.db}: meta {db['meta_sha256'][:12]}, sample {db['filters_sample_sha256'][:12]}")


main(snakemake, run)
