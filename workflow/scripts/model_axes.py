"""Rule ``model_axes``: which meta-parameter explains the model-to-model drift (PERMANOVA and
nearest-neighbour label agreement per axis, docs/method.md §11)."""

import sys
import time

from filterdb import distance_tests, plots, results, zoo
from filterdb.axes import Axis
from filterdb.glue import main


def run():
    inp, out, params = snakemake.input, snakemake.output, snakemake.params
    t0 = time.perf_counter()
    settings = distance_tests.AxesTestSettings(**dict(params.options or {}))
    models, d = zoo.read_drift(inp.drift)
    d = distance_tests.check_matrix(d, where=str(inp.drift), names=models)
    layers = results.read_layers(inp.layers)
    names = distance_tests.selected_axes(params.axes, settings.include)
    labels, columns, notes = {}, {}, {}
    for name in names:
        axis = Axis.from_config(name, dict(params.axes[name]))
        columns[name] = axis.column
        if axis.kind == "binned":
            labels[name] = None
            notes[name] = f"binned axis ({axis.column}): a layer property, no model labels"
            continue
        labels[name] = zoo.model_labels(layers, axis)
    known = set().union(*(set(map(str, s.index)) for s in labels.values() if s is not None))
    missing = [m for m in models if m not in known] if known else []
    if missing:  # the matrix and the layer table come from different runs
        raise ValueError(
            f"{inp.drift}: model {missing[0]!r} ({len(missing)} of its {len(models)} models) is not a model "
            f"of {inp.layers}: remake the model x model matrix (rule models)"
        )
    print(
        f"{len(models)} models, {len(names)} axes, {settings.permutations} permutations, "
        f"distance {settings.distance}, seed {settings.seed}",
        file=sys.stderr,
    )
    table = distance_tests.axes_table(models, d, labels, columns, settings, notes, progress=True)
    results.write_tsv(table, out.table, floats=False)  # shortest round-trip repr: p = 0.021
    fig = plots.model_axes_ranking(
        table["axis"],
        table["R2"],
        table["R2_expected"],
        table["p"],
        table["nn_agreement"],
        table["nn_expected"],
        table["nn_p"],
        pseudo_f=table["pseudo_F"],
        n_groups=table["n_groups"],
    )
    plots.save_all(fig, [out.svg, out.png])
    for row in table.itertuples(index=False):
        print(
            f"axis {row.axis}: {row.n_models} models, {row.n_groups} groups, pseudo-F {row.pseudo_F:.4g}, "
            f"R2 {row.R2:.4g}, p {row.p:.4g}, nn {row.nn_agreement:.3g} (expected {row.nn_expected:.3g}, "
            f"p {row.nn_p:.4g}){'; ' + row.note if row.note else ''}",
            file=sys.stderr,
        )
    print(f"model axes: {time.perf_counter() - t0:.1f} s", file=sys.stderr)


main(snakemake, run)
