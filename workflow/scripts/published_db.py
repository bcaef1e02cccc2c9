"""Rule published_db: download the published CNN-Filter-DB file (filterdb.fetch.fetch).

params.url (http(s) or file://), params.md5 (of the download), params.keep_compressed; the
decompressed DB goes to output.db. Progress bars and every step go to the log; the terminal gets
one line where to follow it (and, on failure, glue's one-line error).
"""

import sys

from filterdb.fetch import fetch
from filterdb.glue import main


def run():
    p = snakemake.params
    print(f"published_db: {p.url} -> {snakemake.output.db} (progress: {snakemake.log[0]})", flush=True)
    fetch(
        p.url,
        p.md5,
        snakemake.output.db,
        keep_compressed=p.keep_compressed,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )


main(snakemake, run)
