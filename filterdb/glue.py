"""Helpers for the workflow scripts: logging to the rule's log, one-line errors."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux ``VmHWM``: this process only, unlike
    ``getrusage``, which also counts what the parent held before ``exec``); NaN elsewhere."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main(snakemake, fn: Callable[[], None]) -> None:
    """Run ``fn`` with stderr sent to the rule's log, then log the job's peak memory. Input errors
    (DBError, ValueError, KeyError) and file-system errors (OSError: an unreadable or damaged file,
    a full disk) end the job with one line naming the problem, on the terminal and in the log (the
    traceback goes to the log only)."""
    terminal = sys.stderr
    log = open(snakemake.log[0], "w", buffering=1) if snakemake.log else terminal
    sys.stderr = log
    try:
        fn()
        print(f"peak memory of this job: {peak_rss_mb():.0f} MiB", file=log)
    except (ValueError, KeyError, OSError) as exc:  # filterdb.db.DBError is a ValueError (not imported: h5py)
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        line = f"filterdb error in rule {snakemake.rule}: {msg}"
        traceback.print_exc(file=log)
        print(line, file=log)
        print(line, file=terminal)
        sys.exit(1)
    except Exception:  # a bug: its traceback in the log too, then on the terminal
        traceback.print_exc(file=log)
        raise
    finally:
        sys.stderr = terminal
        if log is not terminal:
            log.close()
