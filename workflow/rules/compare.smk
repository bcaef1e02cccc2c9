# Your own models against a reference (docs/method.md §12; filterdb.compare, also the command
# `filterdb compare`): every model of the sheet compare.sheet is projected onto the reference run's
# PCA basis and coefficient range (compare.reference; null = this run's own results, so one run
# analyses the DB and compares the sheet against it). Reads the reference's tables, never its
# filters. Active when compare.sheet is set. Outputs, inputs and targets: compare_* in common.smk.

COMPARE = config["compare"]
_COMPARE_FILES = compare_files()
_COMPARE_ITEMS = {
    "drift": ("compare_drift.rst", "Models", "model x model drift (table)"),
    "heatmap_svg": ("compare_drift.rst", "Models", "model x model drift (heatmap)"),
    "models": ("compare_models.rst", "Models", "models against the reference"),
    "groups": ("compare_groups.rst", "Groups", "drift to every reference group"),
    "layer_drift": ("compare_layers.rst", "Layers", "drift of matching layers"),
    "unmatched": ("compare_layers.rst", "Layers", "layers without a partner"),
    "depth_drift": ("compare_depth.rst", "Layers", "drift per depth bin"),
    "quality_layers": ("compare_quality.rst", "Quality", "quality per layer"),
    "quality_models": ("compare_quality.rst", "Quality", "quality per model"),
    "trajectory": ("compare_trajectory.rst", "Trajectory", "trajectory (table)"),
    "trajectory_svg": ("compare_trajectory.rst", "Trajectory", "trajectory (figure)"),
}
COMPARE_OUTPUTS = dict(_COMPARE_FILES)
for _name, (_caption, _sub, _label) in _COMPARE_ITEMS.items():
    if _name in COMPARE_OUTPUTS:
        COMPARE_OUTPUTS[_name] = report(
            _COMPARE_FILES[_name],
            caption=f"../report/{_caption}",
            category="Compare",
            subcategory=_sub,
            labels={"output": _label},
        )


if COMPARE["sheet"]:

    rule compare:
        input:
            unpack(compare_inputs),
        output:
            **COMPARE_OUTPUTS,
        log:
            str(P.log("compare")),
        conda:
            "../envs/filterdb.yaml"
        params:
            # the reference results folder, from its tables' paths
            reference=lambda w, input: os.path.dirname(os.path.dirname(input.basis)),
            order=COMPARE["order"],
            precision=compare_precision(),
            axes=axis_configs(),
            quality_eps=config["quality"]["eps"],
            thresholds=config["quality"]["thresholds"],
            hist_eps=config["histogram"]["eps"],
            floor=config["histogram"]["floor"],
        script:
            "../scripts/compare.py"
