"""The configuration schema, read where the defaults are needed: the one place every default lives.

``workflow/schemas/config.schema.yaml`` (shipped in the package as
``filterdb/data/config.schema.yaml``; ``$FILTERDB_SCHEMA`` overrides the path) holds the default of
every config key. Snakemake fills them in for the workflow; :mod:`filterdb.settings` fills a whole
config outside it; and the library functions whose keyword defaults are config values
(``quality.eps``, ``quality.thresholds``, ``histogram.eps`` / ``floor``, ``stream.block_rows``,
``stream.precision``, the ridge plot's ``figures.ridge_*``) read them here, through
:func:`schema_default` / :func:`schema_filled`, rather than repeating them. This module is the
lowest layer of the package (it imports nothing of it), so that every module can read it.

The file is parsed once per process (cached; ~3 ms with libyaml) and only when a default is asked
for, so importing a module costs nothing.
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path

SCHEMA_ENV = "FILTERDB_SCHEMA"


def schema_path() -> Path:
    """Path of ``config.schema.yaml``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        When neither ``$FILTERDB_SCHEMA`` nor the repository's schema exists (e.g. a non-editable
        install without the workflow folder).
    """
    env = os.environ.get(SCHEMA_ENV)
    # the package's copy (filterdb/data/config.schema.yaml: in the repository a link to the
    # workflow's schema, in a wheel the file itself), so a non-editable install has it too
    path = Path(env) if env else Path(__file__).resolve().parent / "data" / "config.schema.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"config schema not found at {path}: filterdb reads its configuration defaults from "
            f"workflow/schemas/config.schema.yaml, shipped as filterdb/data/config.schema.yaml "
            f"(reinstall the package, or set {SCHEMA_ENV} to the schema file)"
        )
    return path


@lru_cache(maxsize=4)
def _load_schema(path: str) -> dict:
    import yaml

    with open(path) as fh:
        # libyaml's loader when PyYAML has it (3 ms instead of 31 ms for this schema; same result)
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_schema() -> dict:
    """The parsed schema (a fresh copy).

    Returns
    -------
    dict
    """
    return copy.deepcopy(_load_schema(str(schema_path())))


def _node(key: str, schema: dict | None) -> dict:
    """The schema node of the dotted ``key`` (``*``: ``additionalProperties``); KeyError if none."""
    node = schema if schema is not None else _load_schema(str(schema_path()))
    for part in key.split("."):
        node = node.get("additionalProperties") if part == "*" else (node.get("properties") or {}).get(part)
        if not isinstance(node, dict):
            raise KeyError(f"config schema: no key {key}")
    return node


def schema_default(key: str, schema: dict | None = None):
    """The schema's ``default`` of one key, without validating anything (no jsonschema import).

    Parameters
    ----------
    key : str
        Dotted path of the key (``histogram.eps``); ``*`` steps into ``additionalProperties``
        (``axes.*.bins``: the default of an axis's ``bins``).
    schema : dict, optional
        The schema (default: :func:`load_schema`'s).

    Returns
    -------
    The default (a copy).

    Raises
    ------
    KeyError
        When the schema has no default for ``key``.
    """
    node = _node(key, schema)
    if "default" not in node:
        raise KeyError(f"config schema: no default for {key}")
    return copy.deepcopy(node["default"])


def schema_filled(key: str, schema: dict | None = None):
    """:func:`schema_default` of ``key`` with the defaults of its sub-keys filled in (an object
    whose default is ``{}``, e.g. ``quality.thresholds``, becomes the dict of its keys' defaults).

    Parameters
    ----------
    key : str
        Dotted path, as :func:`schema_default`.
    schema : dict, optional
        The schema (default: the package's).

    Returns
    -------
    The default (a copy), dicts filled recursively.
    """
    return _filled(_node(key, schema), key)


def _filled(node: dict, key: str):
    props = node.get("properties") or {}
    if "default" not in node and not props:
        raise KeyError(f"config schema: no default for {key}")
    value = copy.deepcopy(node.get("default", {}))
    if isinstance(value, dict):
        for name, sub in props.items():
            if name not in value and ("default" in sub or sub.get("properties")):
                value[name] = _filled(sub, f"{key}.{name}")
    return value


def or_default(value, key: str):
    """``value``, or :func:`schema_default` of ``key`` when it is None (a keyword left out)."""
    return schema_default(key) if value is None else value


def default_factory(key: str):
    """A dataclass ``default_factory``: :func:`schema_default` of ``key``, read when an instance
    is made without that field."""
    return lambda: schema_default(key)
