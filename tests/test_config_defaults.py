"""The library's defaults are the workflow's: one set of values, checked against the config schema."""

from pathlib import Path

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


def test_axis_bins_default_equals_schema():
    axis = yaml.safe_load(SCHEMA.read_text())["properties"]["axes"]["additionalProperties"]
    assert axis["properties"]["bins"]["default"] == Axis.bins
