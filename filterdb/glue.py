"""Helpers for the workflow scripts: logging to the rule's log, one-line errors."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable


def main(snakemake, fn: Callable[[], None]) -> None:
    """Run ``fn`` with stderr sent to the rule's log. Input errors (DBError, ValueError, KeyError)
    end the job with one line naming the problem, on the terminal and in the log."""
    terminal = sys.stderr
    log = open(snakemake.log[0], "w", buffering=1) if snakemake.log else terminal
    sys.stderr = log
    try:
        fn()
    except (ValueError, KeyError) as exc:  # filterdb.db.DBError is a ValueError (not imported: h5py)
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        line = f"filterdb error in rule {snakemake.rule}: {msg}"
        traceback.print_exc(file=log)
        print(line, file=log)
        print(line, file=terminal)
        sys.exit(1)
    finally:
        sys.stderr = terminal
        if log is not terminal:
            log.close()
