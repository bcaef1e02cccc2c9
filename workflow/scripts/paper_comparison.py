"""paper/comparison.tsv: the numbers the studies publish beside this run's (filterdb.paper,
docs/method.md §10)."""

import sys

from filterdb import paper
from filterdb.glue import main


def run():
    inp, par = snakemake.input, snakemake.params
    release = paper.detect_release(paper.db_facts(inp.db), par.release, origin=par.origin or None)
    axes = list(par.axes)
    outputs = paper.RunOutputs(
        basis=inp.basis,
        mean=inp.mean,
        sums=inp.sums,
        summary=inp.summary,
        drift=dict(zip(axes, inp.drift)),
        groups=dict(zip(axes, inp.groups)),
        subsets=dict(zip(axes, inp.subsets)),
    )
    table = paper.comparison(release, outputs, dict(par.axes), dict(par.settings))
    paper.write_comparison(table, snakemake.output.comparison)
    line = paper.summary_line(table, release)
    print(release.statement(), file=sys.stderr)  # the rule's log
    print(line, file=sys.stderr)
    print(line)


main(snakemake, run)
