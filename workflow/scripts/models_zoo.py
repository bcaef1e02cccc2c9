"""Rule ``models``: the model x model drift matrix, its clustering, embedding and nearest models, and
their figures (docs/method.md §11; filterdb.zoo)."""

import sys
import time

import numpy as np

from filterdb import plots, results, zoo
from filterdb.glue import main


def log(text):
    print(text, file=sys.stderr)


def write_without_models(out, label_axes, why):
    """models.enabled auto on a DB whose model count was not known when the run was planned and is
    outside 3 .. models.max_models: every table with its header only, every figure saying why."""
    log(f"no model x model analysis: {why}")
    for name, table in zoo.empty_frames(label_axes, why).items():
        results.write_tsv(table, out[name], floats=name != "summary")
    fig = plots.models_note(f"No model x model analysis: {why}.", title="Drift D between models")
    plots.save_all(fig, [out.svg_heatmap, out.png_heatmap])
    for a in label_axes:
        plots.save_all(fig, [out[f"svg_{a}"], out[f"png_{a}"]])


def run():
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    t0 = time.perf_counter()
    layers = results.read_layers(inp.layers)
    label_axes = list(p.label_axes)
    binned = [a for a in p.axes if a not in label_axes]
    if binned:
        log(f"binned axes {', '.join(binned)}: layer properties, not model labels: no embedding figure")
    names = zoo.model_names(layers)
    if p.enabled == "auto" and not (zoo.MIN_MODELS <= len(names) <= p.max_models):
        bound = f"fewer than {zoo.MIN_MODELS}" if len(names) < zoo.MIN_MODELS else f"more than {p.max_models}"
        write_without_models(out, label_axes, f"{len(names)} models with filters, {bound} (models.enabled auto)")
        return
    s = zoo.ZooSettings.from_config(p.settings)
    z = zoo.analyse(layers, results.load_npz(inp.hist), results.read_evr(inp.basis), s, p.eps, p.floor, str(inp.hist))
    sm = z.summary
    log(
        f"{sm['n_models']} models (column {sm['model_column']!r}), weights {s.weights}, range "
        f"[{sm['range_lo']:.6g}, {sm['range_hi']:.6g}] ({sm['range']}, {sm['bins']} bins): drift, {s.linkage} linkage, "
        f"MDS in {time.perf_counter() - t0:.1f} s"
    )
    if sm["outside_range_share"] > 0:
        share = 100 * sm["outside_range_share"]
        log(f"fixed range: {share:.3g}% of the coefficient values lie outside it (not counted)")
    log(
        f"cophenetic correlation {sm['cophenetic_correlation']:.4f}; MDS: 2-D shows {100 * sm['mds_shown_share']:.1f}% "
        f"of the positive spectrum, negative eigenvalues {100 * sm['mds_negative_share']:.2f}% of sum |eigenvalues|"
    )
    results.write_tsv(zoo.drift_frame(z.d, z.names), out.drift)
    results.write_tsv(zoo.linkage_frame(z.linkage), out.linkage)
    results.write_tsv(zoo.order_frame(z.order, z.names), out.order)
    emb = zoo.embedding_frame(z, layers, {a: p.axes[a] for a in label_axes})
    results.write_tsv(emb, out.embedding)
    results.write_tsv(z.nearest, out.nearest)
    results.write_tsv(zoo.summary_frame(sm), out.summary, floats=False)
    log(f"tables written ({time.perf_counter() - t0:.1f} s)")

    o = z.order
    title = f"Drift D between models ({s.linkage} linkage, weights {s.weights})"
    fig = plots.models_heatmap(z.d[np.ix_(o, o)], [z.names[k] for k in o], zoo.dendrogram_lines(z.linkage, o), title)
    plots.save_all(fig, [out.svg_heatmap, out.png_heatmap])
    share = [max(v, 0.0) / max(z.eigenvalues[z.eigenvalues > 0].sum(), 1e-300) for v in z.eigenvalues[:2]]
    axis_labels = (f"MDS 1 ({100 * share[0]:.1f}%)", f"MDS 2 ({100 * share[1]:.1f}%)")
    for a in label_axes:
        col = p.axes[a]["column"]
        fig = plots.models_embedding(
            z.coords,
            emb[a].tolist(),
            names=z.names,
            title=f"Models by drift D (classical MDS), coloured by {a} ({col})",
            axis_labels=axis_labels,
        )
        plots.save_all(fig, [out[f"svg_{a}"], out[f"png_{a}"]])
        labelled = emb[a].notna().sum()
        log(f"axis {a}: {labelled} of {len(emb)} models carry a single label, {emb[a].nunique()} groups")
    log(f"models: {time.perf_counter() - t0:.1f} s")


main(snakemake, run)
