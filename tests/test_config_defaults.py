"""The library's defaults are the workflow's: one set of values, written once in the config schema.

The library reads them from the schema (filterdb.schema): a schema with other defaults
(``$FILTERDB_SCHEMA``) changes what every function called without the keyword computes, checked
here against plain computations; no function repeats a config default as a literal.
"""

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import yaml

from filterdb import quality
from filterdb.axes import Axis
from filterdb.quality_tables import thresholds_with_defaults

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def schema_defaults(node: dict) -> dict:
    """The defaults of an object schema's properties, nested objects filled recursively."""
    out = {}
    for key, sub in node.get("properties", {}).items():
        if sub.get("type") == "object" and "properties" in sub:
            out[key] = {**sub.get("default", {}), **schema_defaults(sub)}
        elif "default" in sub:
            out[key] = sub["default"]
    return out


def test_quality_defaults_equal_schema():
    q = schema_defaults(yaml.safe_load(SCHEMA.read_text())["properties"]["quality"])
    assert set(q) == {"enabled", "eps", "orthogonality", "thresholds", "rule", "sensitivity"}, (
        "every quality key has a schema default"
    )
    assert q["eps"] == quality.DEFAULT_EPS
    assert q["thresholds"] == quality.DEFAULT_THRESHOLDS
    assert thresholds_with_defaults(None) == {**q["thresholds"], "rule": q["rule"]}
    assert q["rule"] in quality.RULES and q["eps"] in q["sensitivity"]["eps"]
    from filterdb.accumulate import PassSettings

    assert q["orthogonality"] == PassSettings().orthogonality


def test_axis_defaults_equal_schema():
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]["axes"]
    props = schema["additionalProperties"]["properties"]
    a = Axis("a", "Task")
    for key in ("kind", "bins", "relabel", "fold", "min_models", "min_filters"):
        assert getattr(a, key) == props[key]["default"], key
    from filterdb.axes import STUDY_AXES

    assert STUDY_AXES == schema["default"]


# Each changed default, and (in the child) what the library computes without the keyword.
CHANGED = {
    ("quality", "eps"): 0.2,
    ("quality", "thresholds", "sparse"): 0.3,
    ("quality", "rule"): "cvpr_reanalysis",
    ("histogram", "eps"): 0.001,
    ("histogram", "floor"): "probability",
    ("stream", "block_rows"): 5,
    ("uncertainty", "bootstrap"): 7,
    ("uncertainty", "seed"): 3,
}

CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from filterdb import divergence, quality, uncertainty
    from filterdb.axes import Axis
    from filterdb.quality_tables import thresholds_with_defaults
    from filterdb.stream import plan_blocks

    W = np.array(json.loads(sys.argv[1]))
    counts = np.array([[0.0, 3.0, 1.0, 0.0], [2.0, 2.0, 0.0, 4.0]])
    edges = np.array([0.0, 0.5, 1.5, 2.0, 4.0])
    starts = np.arange(0, 12, 2)
    uc = np.arange(4 * 2 * 4, dtype=float).reshape(4, 2, 4) % 5
    boot = uncertainty.bootstrap(uc, np.array([0, 0, 1, 1]), 2, np.array([0.7, 0.3]), edges=edges)
    print(json.dumps({
        "sparsity": quality.sparsity(W),
        "eps_attr": quality.DEFAULT_EPS,
        "thresholds": thresholds_with_defaults(None),
        "p": divergence.probabilities(counts, edges=edges).tolist(),
        "blocks": plan_blocks(starts, starts + 2),
        "bins": Axis("d", "conv_depth_norm", kind="binned").bins,
        "boot_shape": list(boot.shape),
        "boot": boot.tolist(),
    }))
    """
)


def test_library_reads_its_defaults_from_the_schema(tmp_path):
    schema = yaml.safe_load(SCHEMA.read_text())
    for path, value in CHANGED.items():
        node = schema
        for part in path[:-1]:
            node = node["properties"][part]
        node["properties"][path[-1]]["default"] = value
    changed = tmp_path / "schema.yaml"
    changed.write_text(yaml.safe_dump(schema))
    rng = np.random.default_rng(5)
    W = rng.normal(size=(40, 9)) * rng.choice([1.0, 0.1, 0.01], size=(40, 1))
    env = {**os.environ, "FILTERDB_SCHEMA": str(changed)}
    run = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(W.tolist())], env=env, capture_output=True, text=True, check=True
    )
    got = json.loads(run.stdout)
    # quality.eps = 0.2: a filter is sparse when all its |w| < 0.2 max|W|
    peak = np.abs(W).max(axis=1)
    assert got["sparsity"] == np.mean(peak < 0.2 * peak.max())
    assert got["sparsity"] != np.mean(peak < 0.01 * peak.max()), "the data must tell the two eps apart"
    assert got["eps_attr"] == 0.2
    assert got["thresholds"]["sparse"] == 0.3 and got["thresholds"]["rule"] == "cvpr_reanalysis"
    assert (
        got["thresholds"]["low_diversity"]
        == schema["properties"]["quality"]["properties"]["thresholds"]["properties"]["low_diversity"]["default"]
    )
    # histogram floor = probability, eps = 1e-3: counts / n, empty bins 1e-3, renormalised
    counts = np.array([[0.0, 3.0, 1.0, 0.0], [2.0, 2.0, 0.0, 4.0]])
    v = counts / counts.sum(axis=1, keepdims=True)
    v[v == 0] = 0.001
    np.testing.assert_array_equal(np.array(got["p"]), v / v.sum(axis=1, keepdims=True))
    # block_rows = 5: layers of 2 rows, two whole layers (4 rows) per block
    assert [tuple(b) for b in got["blocks"]] == [(0, 4, 0, 2), (4, 8, 2, 4), (8, 12, 4, 6)]
    assert got["bins"] == 10  # not changed
    # uncertainty.bootstrap = 7 replicates, seeded by uncertainty.seed = 3
    assert got["boot_shape"] == [7, 2, 2]
    from filterdb import uncertainty

    uc = np.arange(4 * 2 * 4, dtype=float).reshape(4, 2, 4) % 5
    edges = np.array([0.0, 0.5, 1.5, 2.0, 4.0])
    same = uncertainty.bootstrap(uc, np.array([0, 0, 1, 1]), 2, np.array([0.7, 0.3]), 7, 3, 0.001, "probability", edges)
    np.testing.assert_array_equal(np.array(got["boot"]), same)


# Parameters whose defaults are config values: their defaults must be None (read from the schema).
CONFIG_PARAMETERS = {
    "eps", "hist_eps", "floor", "block_rows", "overlap", "thresholds", "bootstrap_replicates",
    "permutations", "level", "correction", "alpha", "equal_size",
}  # fmt: skip


def test_no_function_repeats_a_config_default():
    found = []
    for path in sorted((ROOT / "filterdb").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            a = node.args
            pos = a.posonlyargs + a.args
            pairs = list(zip(pos[len(pos) - len(a.defaults) :], a.defaults)) + list(zip(a.kwonlyargs, a.kw_defaults))
            for arg, default in pairs:
                if arg.arg in CONFIG_PARAMETERS and isinstance(default, ast.Constant) and default.value is not None:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({arg.arg}={default.value!r})")
    assert not found, "config defaults repeated in code (use None and filterdb.schema): " + "; ".join(found)
