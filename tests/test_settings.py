"""Configuration defaults live in the schema once: config.yaml agrees with them, inspect reads them."""

from pathlib import Path

import pytest
import yaml

from filterdb import cli, settings
from filterdb.axes import STUDY_AXES

ROOT = Path(__file__).resolve().parents[1]


def defaults_and_values(schema, config, where=""):
    """(key path, schema default, config.yaml value) for every key present in both, recursively."""
    out = []
    for name, sub in (schema.get("properties") or {}).items():
        if name not in config:
            continue
        path = f"{where}/{name}"
        if "default" in sub and sub["default"] != {}:
            out.append((path, sub["default"], config[name]))
        if isinstance(config[name], dict):
            # (entries under additionalProperties, the axes, are choices per axis, not defaults)
            out += defaults_and_values(sub, config[name], path)
    return out


def test_schema_defaults_equal_config_yaml():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    pairs = defaults_and_values(schema, config)
    assert len(pairs) >= 15  # the check does reach into the nested sections
    assert {p for p, _, _ in pairs} >= {
        "/histogram/eps",
        "/histogram/floor",
        "/histogram/bins",
        "/quality/eps",
        "/quality/thresholds/sparse",
    }
    bad = [(p, d, v) for p, d, v in pairs if d != v]
    assert not bad, f"schema default != config.yaml value: {bad}"


def test_fill_defaults_like_snakemake():
    cfg = settings.fill_defaults({"histogram": {"bins": 20}, "axes": {"t": {"column": "Task"}}})
    assert cfg["histogram"] == {"bins": 20, "eps": 1.1920928955078125e-07, "floor": "density", "fine_bins": 1024}
    assert cfg["axes"]["t"]["kind"] == "categorical" and cfg["axes"]["t"]["min_models"] == 1
    assert cfg["quality"]["thresholds"]["random_like"] == 1.0
    with pytest.raises(ValueError, match="histogram/floor"):
        settings.fill_defaults({"histogram": {"floor": "counts"}})
    with pytest.raises(ValueError, match="required"):
        settings.fill_defaults({}, require=True)
    full = settings.load_config(ROOT / "config.yaml", require=True)
    assert full["histogram"]["floor"] == "density"


def test_inspect_reads_schema_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./config.yaml
    kw = cli.inspect_settings(None)
    d = settings.schema_defaults()
    assert kw["eps"] == d["quality"]["eps"]
    assert kw["thresholds"] == {**d["quality"]["thresholds"], "rule": d["quality"]["rule"]}  # with quality.rule
    assert kw["hist_eps"] == d["histogram"]["eps"] and kw["floor"] == d["histogram"]["floor"]
    assert [a.name for a in kw["axes"]] == list(STUDY_AXES)
    (tmp_path / "c.yaml").write_text("histogram: {floor: probability}\nquality: {thresholds: {sparse: 0.3}}\n")
    kw = cli.inspect_settings(str(tmp_path / "c.yaml"))
    assert kw["floor"] == "probability" and kw["thresholds"]["sparse"] == 0.3
    assert kw["thresholds"]["low_diversity"] == d["quality"]["thresholds"]["low_diversity"]


def test_missing_schema_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.SCHEMA_ENV, str(tmp_path / "nope.yaml"))
    with pytest.raises(FileNotFoundError, match="config schema not found"):
        settings.load_schema()


def test_is_filter_db(synth_db, tmp_path):
    from filterdb.db import find_column, is_filter_db

    _, path, _ = synth_db
    assert is_filter_db(path)
    (tmp_path / "x.onnx").write_bytes(b"not hdf5")
    assert not is_filter_db(tmp_path / "x.onnx")
    assert find_column(["Datatype"], "Visual Category") == "Datatype"
    assert find_column(["Visual Category"], "Datatype") == "Visual Category"
    assert find_column(["Task"], "Name") is None
