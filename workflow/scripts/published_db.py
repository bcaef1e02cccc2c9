"""Rule published_unpack: the checked archive (rule published_download) decompressed to the DB
(filterdb.fetch.unpack: free disk checked first, nothing half-made under the DB's path).

input.archive, params.url (for the terminal line); output.db. Progress bars and every step go to
the log; the terminal gets one line where to follow it (and, on failure, glue's one-line error).
"""

import sys

from filterdb.fetch import unpack
from filterdb.glue import main


def run():
    print(f"published_db: {snakemake.params.url} -> {snakemake.output.db} (progress: {snakemake.log[0]})", flush=True)
    unpack(snakemake.input.archive, snakemake.output.db, log=lambda line: print(line, file=sys.stderr, flush=True))


main(snakemake, run)
