"""The configuration reference (``config/README.md``) written from the config schema.

Every key of ``workflow/schemas/config.schema.yaml`` with its type, default and description, one
table per top-level block, so that the page cannot drift from what ``validate()`` accepts. The
Snakemake workflow catalog shows ``config/README.md`` as a workflow's configuration instructions.
``python3 -m filterdb.configdoc > config/README.md`` rewrites it; a test checks it is current.
"""

from __future__ import annotations

import json

#: Schema keywords the page describes (anything else in a key's schema is an error: a typo, or a
#: description broken by YAML flow syntax into a key of its own).
KNOWN = {
    "type",
    "description",
    "default",
    "properties",
    "additionalProperties",
    "required",
    "items",
    "enum",
    "oneOf",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "minProperties",
    "propertyNames",
    "pattern",
    "$schema",
}

INTRO = """\
# Configuration

Generated from `workflow/schemas/config.schema.yaml` by `python3 -m filterdb.configdoc > config/README.md`
(do not edit by hand). `config.yaml` (top level; `config/config.yaml` points at it) holds every key with the
study's values; `snakemake` validates the configuration against the schema and fills in every default, so
a config only needs the keys it changes. Only `dataset` has no default.

Set keys in a config file (`--configfile my.yaml`, or the `config:` handed to this workflow used as a
module) or on the command line: `--config results=out dataset=/data/dataset.h5` for top-level keys and
`--config uncertainty='{enabled: true, bootstrap: 200}'` for nested ones (a nested block given this way
is merged into the configured one; its values are read by the types below, so `true`, `8`, `1e-7`,
`[-3, 3]` and `null` mean what they say).
"""


class SchemaDocError(ValueError):
    """A key of the schema the page cannot describe (no description, an unknown keyword)."""


def _type(node: dict) -> str:
    """The accepted values of a key, in words: type, enum, bounds, alternatives."""
    if "oneOf" in node:
        return " or ".join(_type(alt) for alt in node["oneOf"])
    if "enum" in node:
        return " | ".join(f"`{json.dumps(v)}`" if not isinstance(v, str) else f"`{v}`" for v in node["enum"])
    t = node.get("type", "any")
    t = " or ".join(t) if isinstance(t, list) else t
    if t == "array" and "items" in node:
        t = f"list of {_type(node['items'])}"
        lo, hi = node.get("minItems"), node.get("maxItems")
        if lo is not None and lo == hi:
            t += f" ({lo} items)"
        elif lo:
            t += f" (at least {lo})"
    bounds = []
    for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in node:
            bounds.append(f"{sign} {node[key]}")
    if bounds:
        t += " " + ", ".join(bounds)
    if "pattern" in node:
        t += f" matching `{node['pattern']}`"
    return t


def _default(node: dict) -> str:
    if "default" not in node:
        return "(required)" if node.get("_required") else ""
    d = node["default"]
    if isinstance(d, dict) and node.get("type") == "object" and "properties" in node:
        return ""  # a block: its keys carry their defaults
    if d is None:
        return "`null`"
    if isinstance(d, str):
        return f"`{d}`" if d else '`""`'
    return f"`{json.dumps(d, ensure_ascii=False)}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _rows(node: dict, path: list[str], rows: list) -> None:
    unknown = set(node) - KNOWN - {"_required"}
    where = "/".join(path) or "(top level)"
    if unknown:
        raise SchemaDocError(f"config schema key {where}: unknown keyword(s) {sorted(unknown)}")
    if path and not node.get("description"):
        raise SchemaDocError(f"config schema key {where}: no description")
    if path:
        rows.append((where, _type(node), _default(node), node["description"]))
    required = set(node.get("required", []))
    for key, sub in node.get("properties", {}).items():
        _rows({**sub, "_required": key in required}, [*path, key], rows)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in extra:
        # a mapping of user-named entries (the axes): the keys of one entry
        _rows({**extra, "description": f"One entry of {where} (any name)."}, [*path, "<name>"], rows)


def render(schema: dict | None = None) -> str:
    """The Markdown page: the introduction, then one table per top-level key (scalars first).

    Parameters
    ----------
    schema : dict, optional
        The parsed config schema; default: :func:`filterdb.settings.load_schema`.

    Returns
    -------
    str

    Raises
    ------
    SchemaDocError
        For a key without a description or with a keyword this page does not know.
    """
    if schema is None:
        from .settings import load_schema

        schema = load_schema()
    rows: list = []
    _rows(schema, [], rows)
    out = [INTRO]
    top = [r for r in rows if "/" not in r[0]]
    blocks = {}
    for r in rows:
        blocks.setdefault(r[0].split("/")[0], []).append(r)
    head = "| key | values | default | description |\n|---|---|---|---|\n"
    singles = [r for r in top if len(blocks[r[0]]) == 1]
    if singles:
        out.append("## Top-level keys\n\n" + head + "".join(_line(r) for r in singles))
    for r in top:
        if len(blocks[r[0]]) > 1:
            own = blocks[r[0]][0]  # the block's own row: only when it has a default of its own (axes)
            body = "".join(_line(x) for x in blocks[r[0]][0 if own[2] else 1 :])
            out.append(f"## `{r[0]}`\n\n{_cell(r[3])}\n\n{head}{body}")
    return "\n".join(out)


def _line(r) -> str:
    key, values, default, desc = r
    return f"| `{key}` | {_cell(values)} | {_cell(default)} | {_cell(desc)} |\n"


if __name__ == "__main__":
    print(render(), end="")
