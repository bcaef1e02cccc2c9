"""``--config`` strings read by the config schema's types (filterdb.settings.coerce_to_schema).

Snakemake parses a nested ``--config`` value with YAML's BaseLoader, so every nested scalar arrives
as a string; the configs here are built exactly as Snakemake builds them (its ``parse_config`` of
the command line merged into config.yaml with its ``update_config``) and checked with its own
``validate`` against the real schema.
"""

import copy
import json
import math
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from snakemake.cli import parse_config
from snakemake.common.configfile import load_configfile
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from filterdb.settings import coerce_to_schema, fill_defaults, load_schema, schema_error_line

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
CONFIG = ROOT / "config.yaml"


def snakemake_config(*entries: str) -> dict:
    """config.yaml updated with ``--config ENTRY...`` as Snakemake's ``workflow.configfile`` does it."""
    config = load_configfile(str(CONFIG))
    update_config(config, parse_config(list(entries)))
    return config


def snakemake_validate(config: dict) -> dict:
    """Snakemake's own validation (fills the defaults in place); the one line common.smk reports."""
    try:
        validate(config, str(SCHEMA))
    except WorkflowError as exc:
        raise ValueError(schema_error_line(exc.__context__)) from None
    return config


def at(config: dict, key: str):
    for part in key.split("/"):
        config = config[int(part)] if isinstance(config, list) else config[part]
    return config


def same(a, b) -> bool:
    """Equal values of equal JSON types (1, 1.0 and True differ)."""
    return json.dumps(a) == json.dumps(b)


def walk_types(schema) -> set:
    """Every ``type`` value the schema uses (a list as a tuple) and whether it uses ``enum``."""
    out = set()
    if isinstance(schema, dict):
        for k, v in schema.items():
            if k == "type":
                out.add(tuple(v) if isinstance(v, list) else v)
            elif k == "enum":
                out.add("enum")
            if k not in ("default", "enum"):
                out |= walk_types(v)
    elif isinstance(schema, list):
        for v in schema:
            out |= walk_types(v)
    return out


# (--config entry as the shell hands it to Snakemake, key, value after coercion)
COERCED = [
    # boolean
    ("uncertainty={enabled: true}", "uncertainty/enabled", True),
    ("grids={enabled: false}", "grids/enabled", False),
    ("quality={orthogonality: False}", "quality/orthogonality", False),
    ("published={keep_compressed: TRUE}", "published/keep_compressed", True),
    ("sample={digits: {train: no}}", "sample/digits/train", False),  # YAML 1.1, as in a config file
    ("quality={enabled: off}", "quality/enabled", False),
    # integer
    ("synthetic={models: 8}", "synthetic/models", 8),
    ("uncertainty={seed: -3}", "uncertainty/seed", -3),
    ("synthetic={seed: +3}", "synthetic/seed", 3),
    ("histogram={bins: 080}", "histogram/bins", 80),  # decimal, not YAML 1.1 octal
    ("stream={block_rows: 4096}", "stream/block_rows", 4096),
    ("uncertainty={bootstrap: 0}", "uncertainty/bootstrap", 0),
    # number
    ("histogram={eps: 1e-7}", "histogram/eps", 1e-7),
    ("quality={eps: 2.5E-3}", "quality/eps", 0.0025),
    ("uncertainty={level: .5}", "uncertainty/level", 0.5),
    ("figures={ridge_overlap: 1}", "figures/ridge_overlap", 1),  # an integer is a number
    ("quality={thresholds: {low_diversity: -3.3}}", "quality/thresholds/low_diversity", -3.3),
    ("quality={thresholds: {random_like: .inf}}", "quality/thresholds/random_like", math.inf),
    ("quality={thresholds: {sparse: 5.}}", "quality/thresholds/sparse", 5.0),
    # "auto" or integer
    ("stream={threads: 2}", "stream/threads", 2),
    ("stream={single_job_filters: 0}", "stream/single_job_filters", 0),
    # "auto" or boolean
    ("models={enabled: true}", "models/enabled", True),
    ("models={enabled: False}", "models/enabled", False),
    ("stream={bypass_page_cache: false}", "stream/bypass_page_cache", False),
    ("models={optimal_ordering: true}", "models/optimal_ordering", True),
    # null or string
    ("compare={sheet: null}", "compare/sheet", None),
    ("compare={order: ~}", "compare/order", None),
    ("compare={reference: }", "compare/reference", None),
    ("sample={sheet: NULL}", "sample/sheet", None),
    # list of numbers ("auto" or list, and list alone)
    ("models={range: [-3, 3]}", "models/range", [-3, 3]),
    ("models={range: [-2.5, 1e1]}", "models/range", [-2.5, 10.0]),
    ("density={extent: [-3.3, 3.3]}", "density/extent", [-3.3, 3.3]),
    ("quality={sensitivity: {eps: [0.001, 1e-2], model_share: [1, 0.5]}}", "quality/sensitivity/eps", [0.001, 0.01]),
    ("quality={sensitivity: {model_share: [1, 0.5]}}", "quality/sensitivity/model_share", [1, 0.5]),
    # list of lists of integers
    ("density={pairs: [[0, 1], [2, 8]]}", "density/pairs", [[0, 1], [2, 8]]),
    # the axes mapping: an axis given on the command line
    ("axes={mine: {column: Task, kind: binned, bins: '10'}}", "axes/mine/bins", 10),
    ("axes={mine: {column: Task, min_models: 2, min_filters: 0}}", "axes/mine/min_models", 2),
    # a flow sequence handed over as a whole string (a top-level value is already parsed by Snakemake)
    ("density={pairs: '[[3, 4]]'}", "density/pairs", [[3, 4]]),
]

# strings valid where they stand stay strings
KEPT = [
    ("stream={precision: float32}", "stream/precision", "float32"),
    ("paper={release: v1.0}", "paper/release", "v1.0"),
    ("stream={threads: auto}", "stream/threads", "auto"),
    ("models={enabled: auto}", "models/enabled", "auto"),
    ("compare={sheet: models.tsv}", "compare/sheet", "models.tsv"),
    ("compare={sheet: 'true'}", "compare/sheet", "true"),
    ("published={md5: 11111111111111111111111111111111}", "published/md5", "1" * 32),
    ("grids={model: 5}", "grids/model", "5"),  # a model name ([string, integer]: the string is valid)
    ("grids={axes: [task, depth]}", "grids/axes", ["task", "depth"]),
    ("models={axes: {include: all}}", "models/axes/include", "all"),
    ("axes={mine: {column: '1', bins: 3}}", "axes/mine/column", "1"),
    ("axes={mine: {column: Task, relabel: {'1': '2'}}}", "axes/mine/relabel", {"1": "2"}),
    ("figures={combined: {title: ''}}", "figures/combined/title", ""),  # null not allowed: stays ""
    ("figures={combined: {axes: ['true', '8']}}", "figures/combined/axes", ["true", "8"]),
    ("dataset=true", "dataset", "true"),  # a path (Snakemake itself reads only True/False as booleans)
]

# strings no reading makes valid: they stay, and the one error line names the key
INVALID = [
    ("uncertainty={enabled: maybe}", "uncertainty/enabled", "'maybe' is not of type 'boolean'"),
    ("published={keep_compressed: 1}", "published/keep_compressed", "'1' is not of type 'boolean'"),
    ("uncertainty={bootstrap: true}", "uncertainty/bootstrap", "'true' is not of type 'integer'"),
    ("synthetic={models: 8.5}", "synthetic/models", "'8.5' is not of type 'integer'"),
    ("synthetic={models: 0}", "synthetic/models", "'0' is not of type 'integer'"),
    ("histogram={eps: nan}", "histogram/eps", "'nan' is not of type 'number'"),
    ("histogram={eps: 1_0}", "histogram/eps", "'1_0' is not of type 'number'"),
    ("stream={threads: many}", "stream/threads", "'many' is not valid under any of the given schemas"),
    ("models={enabled: yes please}", "models/enabled", "'yes please' is not one of ['auto', True, False]"),
    ("stream={precision: float8}", "stream/precision", "'float8' is not one of ['float32', 'float16', 'float64']"),
    ("density={pairs: [[0, -1]]}", "density/pairs/0/1", "'-1' is not of type 'integer'"),
    ("axes={mine: {column: Task, bins: ten}}", "axes/mine/bins", "'ten' is not of type 'integer'"),
    ("synthetic={layout: null}", "synthetic/layout", "'null' is not one of ['v0.1', 'v1.0']"),  # null not allowed
]


def test_table_covers_every_type_of_the_schema():
    """Each type (and enum) the real schema uses has a row that coerces to it or keeps it."""
    used = walk_types(load_schema())
    got = set()
    for _, _, value in COERCED + KEPT:
        got.add({bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}.get(type(value)))
    assert {"boolean", "integer", "number", "string", "null"} <= got
    # everything the schema names is among these (plus array/object and [string, integer|null])
    assert used <= {"boolean", "integer", "number", "string", "array", "object", "enum"} | {
        ("string", "null"),
        ("string", "integer"),
    }, used


@pytest.mark.parametrize("entry, key, expected", COERCED, ids=[c[0] for c in COERCED])
def test_string_coerces_to_typed_value(entry, key, expected):
    raw = snakemake_config(entry)
    assert isinstance(json.loads(json.dumps(at(raw, key))), (str, list)), "Snakemake hands it over as text"
    if expected is None:  # valid as given, but the string "null" (a sheet path "null")
        assert at(snakemake_validate(copy.deepcopy(raw)), key) in ("null", "~", "", "NULL")
    else:
        with pytest.raises(ValueError, match=re.escape(f"configuration key {key.split('/')[0]}")):
            snakemake_validate(copy.deepcopy(raw))
    before = copy.deepcopy(raw)
    out = coerce_to_schema(raw)
    assert same(at(out, key), expected), (at(out, key), expected)
    assert same(raw, before), "input not modified"
    filled = snakemake_validate(copy.deepcopy(out))
    assert same(at(filled, key), expected)
    assert same(fill_defaults(out, require=True), filled), "filterdb's defaults are Snakemake's"


@pytest.mark.parametrize("entry, key, expected", KEPT, ids=[k[0] for k in KEPT])
def test_valid_string_stays(entry, key, expected):
    raw = snakemake_config(entry)
    assert same(at(raw, key), expected)
    out = coerce_to_schema(raw)
    assert same(at(out, key), expected)
    snakemake_validate(out)


@pytest.mark.parametrize("entry, key, message", INVALID, ids=[i[0] for i in INVALID])
def test_invalid_string_stays_and_error_names_key(entry, key, message):
    raw = snakemake_config(entry)
    out = coerce_to_schema(raw)
    assert same(at(out, key), at(raw, key)), "no reading: the value as given"
    with pytest.raises(ValueError) as err:
        snakemake_validate(out)
    line = str(err.value)
    assert line.startswith(f"configuration key {key}: {message}"), line
    assert "\n" not in line
    with pytest.raises(ValueError, match=re.escape(f"configuration key {key}:")):
        fill_defaults(out, require=True)


def test_whole_config_unchanged_and_not_shared():
    """config.yaml (already typed) comes back equal; the copy shares no dict or list with the input."""
    config = load_configfile(str(CONFIG))
    before = copy.deepcopy(config)
    out = coerce_to_schema(config)
    assert same(out, before) and same(config, before)
    ids = set()

    def containers(x):
        if isinstance(x, (dict, list)):
            ids.add(id(x))
            for v in x.values() if isinstance(x, dict) else x:
                containers(v)

    containers(config)
    mine = set(ids)
    ids.clear()
    containers(out)
    assert not mine & ids
    out["axes"]["depth"]["bins"] = 3
    out["density"]["pairs"][0][0] = 5
    assert same(config, before)


def test_many_strings_at_once_and_run_time():
    entries = [c[0] for c in COERCED if not c[0].startswith(("axes=", "density={pairs: '"))]
    config = snakemake_config(*entries, "axes={mine: {column: Task, kind: binned, bins: '10'}}")
    out = coerce_to_schema(config)
    snakemake_validate(copy.deepcopy(out))
    assert out["axes"]["mine"] == {"column": "Task", "kind": "binned", "bins": 10}
    assert out["axes"]["depth"] == {"column": "conv_depth_norm", "kind": "binned", "bins": 10}
    schema = load_schema()
    best = min(_timed(coerce_to_schema, config, schema) for _ in range(5))
    assert best < 0.05, f"{best * 1e3:.1f} ms"


def _timed(f, *args):
    t = time.perf_counter()
    f(*args)
    return time.perf_counter() - t


def test_schema_argument_forms():
    config = snakemake_config("uncertainty={enabled: true}")
    for schema in (None, load_schema(), SCHEMA, str(SCHEMA)):
        assert coerce_to_schema(config, schema)["uncertainty"]["enabled"] is True
    assert coerce_to_schema({}) == {}


# constructs the real schema does not use (yet): $ref/$defs/definitions, anyOf/allOf, patternProperties,
# prefixItems, additionalProperties false
SYNTH = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"count": {"type": "integer", "minimum": 0}, "flag": {"$ref": "#/definitions/bool"}},
    "definitions": {"bool": {"type": "boolean"}},
    "properties": {
        "n": {"$ref": "#/$defs/count"},
        "f": {"$ref": "#/$defs/flag"},
        "either": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
        "lists": {
            "oneOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "array", "items": {"type": "boolean"}}]
        },
        "both": {"allOf": [{"type": "number"}, {"minimum": 1}]},
        "tuple": {
            "type": "array",
            "prefixItems": [{"type": "string"}, {"type": "number"}],
            "items": {"type": "boolean"},
        },
        "closed": {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
        "nested": {"type": "array", "items": {"type": "array", "items": {"$ref": "#/$defs/count"}}},
        "maybe": {"type": ["number", "null"]},
    },
    "patternProperties": {"^x_": {"type": "number"}, "_n$": {"type": "integer"}},
    "additionalProperties": {"type": "boolean"},
}


@pytest.mark.parametrize(
    "given, expected",
    [
        ({"n": "7"}, {"n": 7}),
        ({"n": "-1"}, {"n": "-1"}),  # minimum 0: no reading valid
        ({"f": "true"}, {"f": True}),
        ({"either": "12"}, {"either": 12}),
        ({"either": "On"}, {"either": True}),
        ({"lists": ["1", "2"]}, {"lists": [1, 2]}),
        ({"lists": ["true", "no"]}, {"lists": [True, False]}),
        ({"lists": "[3, 4]"}, {"lists": [3, 4]}),
        ({"lists": ["1", "true"]}, {"lists": ["1", "true"]}),
        ({"both": "2.5"}, {"both": 2.5}),
        ({"both": "0.5"}, {"both": "0.5"}),
        ({"tuple": ["1", "2", "yes", "false"]}, {"tuple": ["1", 2, True, False]}),
        ({"closed": {"a": "1", "b": "2"}}, {"closed": {"a": 1, "b": "2"}}),
        ({"nested": [["1", "2"], ["3"]]}, {"nested": [[1, 2], [3]]}),
        ({"nested": "[[1, 2], [3]]"}, {"nested": [[1, 2], [3]]}),
        ({"maybe": ""}, {"maybe": None}),
        ({"maybe": "-.Inf"}, {"maybe": -math.inf}),
        ({"x_a": "1e3"}, {"x_a": 1000.0}),
        ({"x_n": "4"}, {"x_n": 4}),  # both patterns apply: integer
        ({"x_n": "4.5"}, {"x_n": "4.5"}),
        ({"other": "TRUE"}, {"other": True}),
        ({"other": "{a: 1}"}, {"other": "{a: 1}"}),
        ({"n": "[1]"}, {"n": "[1]"}),
    ],
)
def test_schema_constructs(given, expected):
    before = copy.deepcopy(given)
    assert same(coerce_to_schema(given, SYNTH), expected)
    assert same(given, before)


def test_ref_to_missing_definition_is_left_to_validation():
    schema = {"type": "object", "properties": {"n": {"$ref": "#/$defs/absent"}, "m": {"$ref": "#/$defs/absent"}}}
    assert coerce_to_schema({"m": ["1"]}, schema) == {"m": ["1"]}


def readme_examples() -> list[list[str]]:
    """The ``--config`` entries of every README.md example, as the shell hands them to Snakemake."""
    out = []
    for line in (ROOT / "README.md").read_text().splitlines():
        for m in re.finditer(r"--config(?!file)(.*)", line):
            text = m.group(1).split("`")[0].split(" #")[0]
            text = text.replace("<md5 from the record>", "0123456789abcdef0123456789ABCDEF")
            entries = []
            for token in shlex.split(text):
                if token.startswith("-"):
                    break
                entries.append(token)
            if entries:
                out.append(entries)
    return out


def test_every_readme_config_example_validates():
    examples = readme_examples()
    flat = [e for entries in examples for e in entries]
    assert len(examples) >= 11, examples
    assert "uncertainty={enabled: true}" in flat and "stream={precision: float32}" in flat
    assert not [e for e in flat if "<" in e], "placeholders replaced"
    for entries in examples:
        config = coerce_to_schema(snakemake_config(*entries))
        snakemake_validate(config)
        for entry in entries:
            key, _, value = entry.partition("=")
            expected = yaml.safe_load(value)  # what the value would be in a config file
            got = config[key]
            if isinstance(expected, dict):
                got = {k: got[k] for k in expected}
            assert same(got, expected), (entry, got)


SNAKEFILE = """\
configfile: "{config}"


include: "rules/common.smk"


rule all:
    run:
        import json

        with open("config.json", "w") as fh:
            json.dump(config, fh)
"""

# what the lead adds to workflow/rules/common.smk before validate(config, ...)
COMMON = """\
from snakemake.utils import validate

from filterdb.settings import coerce_to_schema

# --config hands nested values over as text (YAML BaseLoader): read them by the schema's types
config.update(
    coerce_to_schema(config, workflow.source_path("../schemas/config.schema.yaml"))
)
validate(config, schema="../schemas/config.schema.yaml")
"""


@pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake not installed")
def test_snakemake_command_line(tmp_path):
    """The snippet for common.smk in a real (tiny) workflow, run by Snakemake from its command line."""
    (tmp_path / "workflow/rules").mkdir(parents=True)
    (tmp_path / "workflow/schemas").mkdir()
    shutil.copy(SCHEMA, tmp_path / "workflow/schemas/config.schema.yaml")
    (tmp_path / "workflow/Snakefile").write_text(SNAKEFILE.format(config=CONFIG))
    (tmp_path / "workflow/rules/common.smk").write_text(COMMON)
    args = [
        "uncertainty={enabled: true}",
        "models={enabled: false, range: [-3, 3]}",
        "synthetic={models: 8}",
        "histogram={eps: 1e-7}",
        "compare={sheet: null}",
        "stream={threads: 2}",
        "density={pairs: [[0, 1], [2, 3]]}",
        "axes={mine: {column: Task, bins: '10'}}",
    ]
    cmd = ["snakemake", "-s", "workflow/Snakefile", "--cores", "1", "--config", *args]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["uncertainty"]["enabled"] is True and config["models"]["enabled"] is False
    assert config["models"]["range"] == [-3, 3] and config["synthetic"]["models"] == 8
    assert config["histogram"]["eps"] == 1e-7 and config["compare"]["sheet"] is None
    assert config["stream"]["threads"] == 2 and config["density"]["pairs"] == [[0, 1], [2, 3]]
    assert config["axes"]["mine"] == {
        "column": "Task",
        "bins": 10,
        "kind": "categorical",
        "relabel": {},
        "fold": {},
        "min_models": 1,
        "min_filters": 0,
    }
    bad = subprocess.run(
        [*cmd[: -len(args)], "uncertainty={enabled: maybe}"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert bad.returncode != 0
    assert "'maybe' is not of type 'boolean'" in bad.stderr
