"""Rule published_download: the md5 of the archive Snakemake's storage plugin downloaded (or a local
file), then the checked archive beside the DB (filterdb.fetch.verify).

input.archive, params.url (where it came from), params.md5; output.archive. Steps and the progress
bar go to the log; on failure glue's one-line error.
"""

import sys

from filterdb.fetch import verify
from filterdb.glue import main


def run():
    p = snakemake.params
    print(f"published_download: {p.url} (progress: {snakemake.log[0]})", flush=True)
    verify(
        snakemake.input.archive,
        p.url,
        p.md5,
        snakemake.output.archive,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )


main(snakemake, run)
