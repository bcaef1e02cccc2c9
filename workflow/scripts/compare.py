"""Rule compare: the models of compare.sheet against the reference run (filterdb.compare,
docs/method.md §12)."""

import sys
from pathlib import Path

from filterdb.glue import main


def run():
    from filterdb import compare, inspect
    from filterdb.axes import axes_from_config

    inp, par, out = snakemake.input, snakemake.params, snakemake.output
    ref = inspect.load_reference(par.reference)
    c = compare.compare(
        inp.sheet,
        ref,
        axes_from_config({k: dict(v) for k, v in dict(par.axes).items()}),
        order=par.order or None,
        eps=float(par.quality_eps),
        thresholds=dict(par.thresholds),
        hist_eps=float(par.hist_eps),
        floor=str(par.floor),
        precision=par.precision or None,
        log=lambda line: print(line, file=sys.stderr),
    )
    written = compare.write_outputs(c, Path(out.drift).parent, reference=par.reference)
    missing = sorted(set(map(str, out)) - {str(p) for p in written})
    if missing:
        raise ValueError(f"rule compare declares outputs that filterdb.compare did not write: {', '.join(missing)}")
    for line in compare.summary_lines(c):
        print(line, file=sys.stderr)


main(snakemake, run)
