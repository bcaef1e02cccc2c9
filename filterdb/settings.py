"""Configuration defaults from the workflow's schema, outside Snakemake.

The one place the defaults live is ``workflow/schemas/config.schema.yaml`` (``default:`` keys).
Snakemake fills them in with ``snakemake.utils.validate(config, schema)``; code running outside
the workflow (``filterdb inspect``) calls :func:`load_config` / :func:`fill_defaults`, which do
the same: the schema's ``properties`` validator is extended to ``setdefault`` every property
with a ``default`` (the jsonschema FAQ recipe Snakemake uses), so nested objects whose default
is ``{}`` are created and then filled, and entries under ``additionalProperties`` (the axes) get
their per-key defaults too.

The schema is found relative to the package (the repository is installed editable:
``<repo>/filterdb/settings.py`` → ``<repo>/workflow/schemas/config.schema.yaml``); the
environment variable ``FILTERDB_SCHEMA`` overrides the path.
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
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"config schema not found at {path}: filterdb reads its configuration defaults from the "
            f"repository's workflow/schemas/config.schema.yaml (install the repository editable, "
            f"pip install -e ., or set {SCHEMA_ENV} to the schema file)"
        )
    return path


@lru_cache(maxsize=4)
def _load_schema(path: str) -> dict:
    import yaml

    with open(path) as fh:
        return yaml.safe_load(fh)


def load_schema() -> dict:
    """The parsed schema (a fresh copy).

    Returns
    -------
    dict
    """
    return copy.deepcopy(_load_schema(str(schema_path())))


def _validator(schema: dict):
    from jsonschema import Draft202012Validator, validators

    props = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from props(validator, properties, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})(schema)


def fill_defaults(config: dict, require: bool = False, schema: dict | None = None) -> dict:
    """Validate ``config`` against the schema and fill in its defaults, as Snakemake's ``validate``.

    Parameters
    ----------
    config : dict
        A workflow configuration (possibly empty); not modified.
    require : bool
        Enforce the schema's top-level ``required`` keys (``dataset``, ``results``, ``axes``).
        ``False`` for tools that need only some sections (``filterdb inspect``).
    schema : dict, optional
        The schema (default: :func:`load_schema`).

    Returns
    -------
    dict
        A deep copy of ``config`` with every default filled in.

    Raises
    ------
    ValueError
        When the configuration does not match the schema (one line naming the key).
    """
    import jsonschema

    schema = copy.deepcopy(schema) if schema is not None else load_schema()
    if not require:
        schema.pop("required", None)
    out = copy.deepcopy(config or {})
    try:
        _validator(schema).validate(out)
    except jsonschema.ValidationError as exc:
        raise ValueError(schema_error_line(exc)) from None
    return out


def schema_error_line(exc) -> str:
    """One line for a configuration that fails the schema: the key and what was expected.

    Parameters
    ----------
    exc : jsonschema.ValidationError
        The first error of the validation (Snakemake's ``validate`` raises it as the context of
        its ``WorkflowError``).

    Returns
    -------
    str
        ``configuration key <a/b/c>: <message>`` (e.g. ``configuration key stream/nonfinite:
        'skip' is not one of ['error', 'drop']``), whitespace collapsed to single spaces.
    """
    where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
    return f"configuration key {where}: {' '.join(str(exc.message).split())}"


def load_config(path: str | os.PathLike | None = None, require: bool = False) -> dict:
    """Read a workflow config file (YAML) and fill in the schema's defaults.

    Parameters
    ----------
    path : str or Path, optional
        The config file; ``None`` gives the defaults alone.
    require : bool
        As :func:`fill_defaults`.

    Returns
    -------
    dict
    """
    cfg = {}
    if path is not None:
        import yaml

        with open(path) as fh:
            cfg = yaml.safe_load(fh) or {}
        if not isinstance(cfg, dict):
            raise ValueError(f"{path}: not a YAML mapping")
    return fill_defaults(cfg, require=require)


def schema_defaults(schema: dict | None = None) -> dict:
    """Every default of the schema as a nested dict (what :func:`load_config` gives for ``{}``).

    Returns
    -------
    dict
    """
    return fill_defaults({}, schema=schema)
