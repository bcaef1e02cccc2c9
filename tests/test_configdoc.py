"""config/README.md, the configuration reference, is the schema's: every key with its default."""

import json
import re
from pathlib import Path

import pytest

from filterdb.configdoc import SchemaDocError, render
from filterdb.settings import fill_defaults, load_schema

ROOT = Path(__file__).resolve().parents[1]


def page_rows(text):
    """{key: default cell} of the page's tables."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\| `([^`]+)` \| (.*) \| (.*) \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = m.group(3)
    return rows


def leaves(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key != "axes":
            yield from leaves(v, key + "/")
        else:
            yield key, v


def test_page_is_current():
    assert (ROOT / "config" / "README.md").read_text() == render(), (
        "config/README.md is out of date: python3 -m filterdb.configdoc > config/README.md"
    )


def test_every_default_on_the_page_equals_the_filled_config():
    rows = page_rows(render())
    filled = fill_defaults({"dataset": "x.h5"})
    checked = 0
    for key, value in leaves({k: v for k, v in filled.items() if k != "dataset"}):
        if isinstance(value, dict) and value == {}:
            continue
        if key == "axes":
            cell = rows["axes"]
            assert json.loads(cell.strip("`")).keys() == value.keys()
            checked += 1
            continue
        assert key in rows, key
        cell = rows[key].strip("`")
        want = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if value is None:
            want = "null"
        assert cell == (want if want != "" else '""'), (key, cell, want)
        checked += 1
    assert checked > 60
    assert rows["dataset"] == "(required)"


def test_a_key_without_description_or_with_an_unknown_keyword_is_refused():
    schema = load_schema()
    schema["properties"]["stream"]["properties"]["block_rows"].pop("description")
    with pytest.raises(SchemaDocError, match="stream/block_rows: no description"):
        render(schema)
    schema = load_schema()
    # what YAML makes of `{type: number, description: flagged, or crosses}`: a key of its own
    schema["properties"]["quality"]["properties"]["eps"]["or crosses"] = None
    with pytest.raises(SchemaDocError, match=r"quality/eps: unknown keyword\(s\) \['or crosses'\]"):
        render(schema)
