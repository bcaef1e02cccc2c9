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


def test_settings_from_a_partial_config_take_the_schema_defaults():
    """settings.Settings: a partial config filled from the schema; every value read from the
    filled config (none of its own), and the passes' settings made from it."""
    from filterdb.accumulate import PassSettings

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]
    s = settings.Settings.from_config({"histogram": {"bins": 60}, "quality": {"enabled": False}})
    assert s.bins == 60
    assert s.fine_bins == props["histogram"]["properties"]["fine_bins"]["default"]
    assert s.eps == props["histogram"]["properties"]["eps"]["default"]
    assert s.floor == props["histogram"]["properties"]["floor"]["default"]
    assert s.quality is None
    assert s.axes == {
        k: settings.fill_defaults({"axes": {k: v}})["axes"][k] for k, v in props["axes"]["default"].items()
    }
    assert s.depth_bins == props["axes"]["default"]["depth"]["bins"]
    assert settings.schema_default("density.extent") == props["density"]["properties"]["extent"]["default"]
    assert (
        settings.schema_default("axes.*.bins") == props["axes"]["additionalProperties"]["properties"]["bins"]["default"]
    )
    with pytest.raises(KeyError, match="histogram.nope"):
        settings.schema_default("histogram.nope")
    ps = PassSettings.from_settings(
        settings.Settings.from_config({"stream": {"block_rows": 1000, "bypass_page_cache": True}}), threads=3
    )
    stream = props["stream"]["properties"]
    assert (ps.block_rows, ps.threads, ps.bypass_cache) == (1000, 3, True)
    assert (ps.precision, ps.nonfinite) == (stream["precision"]["default"], stream["nonfinite"]["default"])
    q = props["quality"]["properties"]
    assert ps.quality_eps == q["eps"]["default"]
    assert list(ps.quality_eps_grid) == q["sensitivity"]["properties"]["eps"]["default"]
    assert ps.density_bins == props["density"]["properties"]["bins"]["default"]
    assert list(ps.density_extent) == props["density"]["properties"]["extent"]["default"]
    # a dataclass built without the settings takes the same defaults from the schema
    bare = PassSettings()
    assert (bare.block_rows, bare.precision, bare.density_bins) == (
        stream["block_rows"]["default"],
        stream["precision"]["default"],
        props["density"]["properties"]["bins"]["default"],
    )


def test_step_slices_hold_only_the_keys_a_step_reads():
    """Each rule of the chain hands its job only the keys its step reads (so that another key does not
    rerun it); a per-axis step only its axis."""
    cfg = settings.fill_defaults({"histogram": {"bins": 50}})
    s = settings.Settings(cfg)
    drift = s.step("drift", "task")
    assert drift == {
        "axes": {"task": cfg["axes"]["task"]},
        "histogram": {"eps": cfg["histogram"]["eps"], "floor": cfg["histogram"]["floor"]},
    }
    sums = s.step("sums")
    assert set(sums) == {"stream", "quality"} and "bins" not in str(sums)
    assert sums["quality"]["sensitivity"] == {"eps": cfg["quality"]["sensitivity"]["eps"]}
    hist = s.step("hist")
    assert hist["histogram"] == {"bins": 50, "fine_bins": cfg["histogram"]["fine_bins"]}
    assert hist["density"] == cfg["density"] and hist["models"] == {"range": cfg["models"]["range"]}
    table = s.step("layer_table")
    assert set(table) == {"axes", "checks"}
    assert table["axes"]["depth"] == {k: cfg["axes"]["depth"][k] for k in ("column", "kind", "bins")}
    one = s.step("analyse")
    for part in ("layer_table", "sums", "hist"):
        for key, value in s.step(part).items():
            for k, v in value.items():
                assert one[key][k] == v, (part, key, k)
    # a slice read back: the same values as the whole config for what the step reads
    back = settings.Settings.from_config(hist, filled=True)
    assert (back.bins, back.fine_bins, back.fixed_range) == (50, s.fine_bins, s.fixed_range)


@pytest.mark.parametrize(
    ("filters", "cores", "shards", "block_rows", "expected"),
    [
        (200_469, 2, 1, 1_048_576, 1),  # the default sample: less than a block
        (1_048_576, 2, 1, 1_048_576, 1),  # exactly one block
        (1_048_577, 2, 1, 1_048_576, 2),  # one row into a second block
        (2_000_000, 8, 1, 1_048_576, 2),  # two blocks: two of the eight cores
        (10_000_000, 8, 2, 1_048_576, 4),  # 5 M per shard (5 blocks), but 8 cores / 2 shards = 4
        (10_000_000, 2, 3, 1_048_576, 1),  # more shards than cores
        (0, 2, 1, 1_048_576, 1),  # an empty DB still gets one thread
        (None, 2, 1, 1_048_576, 2),  # a DB the run has not built yet: the cores a shard gets
        (None, 8, 3, 1_048_576, 2),
        (999, 4, 1, 100, 4),  # 10 blocks of 100 rows, 4 cores
    ],
)
def test_auto_threads_is_the_cores_a_shard_gets_at_most_one_per_block(filters, cores, shards, block_rows, expected):
    assert settings.auto_threads(filters, cores, shards, block_rows) == expected


@pytest.mark.parametrize("synth_db", ["v1.0"], indirect=True)
def test_pass_threads_reads_the_filter_count_of_the_db(synth_db, tmp_path):
    import h5py

    from filterdb import jobs

    _, path, _ = synth_db
    with h5py.File(path, "r") as f:
        n = f["filters"].shape[0]
    # blocks of a third of the rows (rounded up): three blocks, whatever the cores beyond three
    block = -(-n // 3)
    assert jobs.pass_threads(path, 8, 1, block) == 3
    assert jobs.pass_threads(path, 2, 1, block) == 2
    assert jobs.pass_threads(path, 8, 1, n) == 1
    assert jobs.pass_threads(path, 8, 3, block) == 1  # a shard of a third of the rows is one block
    assert jobs.pass_threads(tmp_path / "not-built-yet.h5", 8, 2, block) == 4


def test_cancel_pending_timers_lets_the_process_exit_at_once():
    import threading

    from filterdb import jobs

    fired = []
    t = threading.Timer(60, lambda: fired.append(1))
    t.start()
    assert jobs.cancel_pending_timers() >= 1
    t.join(5)
    assert not t.is_alive() and not fired
    assert jobs.cancel_pending_timers() == 0
