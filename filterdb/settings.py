"""Configuration defaults from the workflow's schema, outside Snakemake.

The one place the defaults live is ``workflow/schemas/config.schema.yaml`` (``default:`` keys).
Snakemake fills them in with ``snakemake.utils.validate(config, schema)``; code running outside
the workflow (``filterdb inspect``) calls :func:`load_config` / :func:`fill_defaults`, which do
the same: the schema's ``properties`` validator is extended to ``setdefault`` every property
with a ``default`` (the jsonschema FAQ recipe Snakemake uses), so nested objects whose default
is ``{}`` are created and then filled, and entries under ``additionalProperties`` (the axes) get
their per-key defaults too.

Snakemake hands nested ``--config`` values over as text (it parses them with YAML's
``BaseLoader``): :func:`coerce_to_schema` reads such strings as the typed values the schema
expects (``uncertainty={enabled: true}`` -> ``True``) before the workflow validates its config.

The schema is found relative to the package (the repository is installed editable:
``<repo>/filterdb/settings.py`` → ``<repo>/workflow/schemas/config.schema.yaml``); the
environment variable ``FILTERDB_SCHEMA`` overrides the path.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .schema import SCHEMA_ENV, _load_schema, load_schema, schema_default, schema_path  # noqa: F401 (re-exported)


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


#: The config keys each step of the analysis chain reads (dotted; ``*``: every entry of a mapping,
#: ``{axis}``: the one axis of a per-axis job). A step's rule hands over only these (its params),
#: so that changing another key does not rerun it; ``analyse`` runs the first four in one job.
STEP_KEYS = {
    "layer_table": ("axes.*.column", "axes.*.kind", "axes.*.bins", "checks"),
    "sums": (
        "stream.block_rows",
        "stream.precision",
        "stream.nonfinite",
        "stream.bypass_page_cache",
        "quality.enabled",
        "quality.eps",
        "quality.orthogonality",
        "quality.sensitivity.eps",
    ),
    "range": ("stream.block_rows", "stream.precision", "stream.nonfinite", "stream.bypass_page_cache"),
    "hist": (
        "stream.block_rows",
        "stream.precision",
        "stream.nonfinite",
        "stream.bypass_page_cache",
        "histogram.bins",
        "histogram.fine_bins",
        "density",
        "models.range",
    ),
    "drift": ("axes.{axis}", "histogram.eps", "histogram.floor"),
}
STEP_KEYS["analyse"] = tuple(dict.fromkeys(STEP_KEYS["layer_table"] + STEP_KEYS["sums"] + STEP_KEYS["hist"]))


def _pick(config: Mapping, parts: list[str], out: dict) -> None:
    """Copy the value at ``parts`` of ``config`` into ``out`` (``*``: every key); missing keys skipped."""
    head, rest = parts[0], parts[1:]
    for k in list(config) if head == "*" else [head]:
        if k not in config:
            continue
        if not rest:
            out[k] = copy.deepcopy(config[k])
        elif isinstance(config[k], Mapping):
            _pick(config[k], rest, out.setdefault(k, {}))


@dataclass(frozen=True)
class Settings:
    """The settings of the analysis chain, read from a config whose defaults are filled in.

    The one object the chain's steps take (:class:`filterdb.pipeline.Chain`): the library entry
    point builds it from a (partial) config mapping, filled from the schema; a workflow job from
    its step's slice of the workflow's filled config (:meth:`step`, the rule's params). No value
    here has a default of its own: every default is the schema's.

    Parameters
    ----------
    config : mapping
        A filled config (:func:`fill_defaults`), or a step's slice of one.

    Examples
    --------
    >>> Settings.from_config({"histogram": {"bins": 60}}).bins
    60
    """

    config: Mapping

    @classmethod
    def from_config(cls, config: Mapping | None = None, filled: bool = False) -> Settings:
        """The settings of a config mapping.

        Parameters
        ----------
        config : mapping, optional
            A partial config: its missing keys are filled from the schema (validated).
        filled : bool
            ``config`` is already filled (a workflow's config, or a step's slice of it, as the
            rules hand it over): used as it is, without validating again.

        Returns
        -------
        Settings
        """
        return cls(copy.deepcopy(dict(config or {})) if filled else fill_defaults(dict(config or {})))

    def step(self, name: str, axis: str | None = None) -> dict:
        """The slice of the config that step ``name`` (:data:`STEP_KEYS`) reads: a rule's params.

        Parameters
        ----------
        name : str
            ``layer_table``, ``sums``, ``range``, ``hist``, ``analyse`` or ``drift``.
        axis : str, optional
            The axis of a per-axis step (``drift``).

        Returns
        -------
        dict
            A nested dict in the config's shape, with only those keys.
        """
        out: dict = {}
        for key in STEP_KEYS[name]:
            _pick(self.config, key.replace("{axis}", str(axis)).split("."), out)
        return out

    def _section(self, name: str) -> dict:
        return dict(self.config.get(name) or {})

    @property
    def axes(self) -> dict:
        """Axis name -> its config (``axes``)."""
        return {k: dict(v) for k, v in self._section("axes").items()}

    @property
    def columns(self) -> list[str]:
        """The meta columns the axes read."""
        return [cfg["column"] for cfg in self.axes.values()]

    @property
    def depth_bins(self) -> int:
        """Depth bins of the fine histogram cells: those of the first binned axis on
        ``conv_depth_norm``, else the schema's default of an axis's ``bins``."""
        for cfg in self.axes.values():
            if cfg.get("kind") == "binned" and cfg["column"] == "conv_depth_norm":
                return int(cfg.get("bins", schema_default("axes.*.bins")))
        return int(schema_default("axes.*.bins"))

    @property
    def checks(self) -> dict:
        """``checks``: rows of no layer, empty layers."""
        return self._section("checks")

    @property
    def stream(self) -> dict:
        """``stream``: how the passes read the DB."""
        return self._section("stream")

    @property
    def histogram(self) -> dict:
        """``histogram``: bins, fine bins, the floor of empty bins."""
        return self._section("histogram")

    @property
    def bins(self) -> int:
        return int(self.histogram["bins"])

    @property
    def fine_bins(self) -> int:
        return int(self.histogram["fine_bins"])

    @property
    def eps(self) -> float:
        return float(self.histogram["eps"])

    @property
    def floor(self) -> str:
        return str(self.histogram["floor"])

    @property
    def density(self) -> dict:
        """``density``: the 2-D histograms' pairs, bins and extent."""
        return self._section("density")

    @property
    def quality(self) -> dict | None:
        """``quality`` when enabled (the sums pass computes the metrics), else None."""
        q = self._section("quality")
        return q if q.get("enabled") else None

    @property
    def fixed_range(self):
        """``models.range``: ``[lo, hi]``, ``auto``, or None when the slice lacks it (a step that
        makes no fixed-range histograms)."""
        return self._section("models").get("range")


# --- coercion of --config strings by the schema's types ---

#: Spellings of null (PyYAML's, and YAML 1.2 core's; the empty string too).
_NULLS = frozenset(["", "~", "null", "Null", "NULL"])
#: Spellings of true/false: the YAML 1.1 ones that PyYAML's ``safe_load``, and so a config file, reads
#: as booleans (YAML 1.2 core's true/false plus yes/no/on/off), each lower case, capitalised, upper case.
_BOOLS = {
    form: value
    for word, value in {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}.items()
    for form in (word, word.capitalize(), word.upper())
}
#: Decimal integers (YAML 1.2 core; no octal/hex/underscores/sexagesimal).
_INT = re.compile(r"[-+]?[0-9]+")
#: Decimal floats (YAML 1.2 core, exponent without a dot allowed: 1e-7) and infinities
#: (.inf, inf, -.Inf, ...); never NaN, which would pass every minimum/maximum.
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"([-+]?)\.?(inf|Inf|INF)")


def auto_threads(filters: int | None, cores: int, shards: int, block_rows: int) -> int:
    """The compute threads of a pass job under ``stream.threads: auto``.

    The cores a shard gets (``cores // shards``, at least 1), but no more than one thread per
    ``block_rows`` filters of its shard: a lane (:class:`filterdb.passes.PassSettings`) that streams
    less than a block gains nothing from a second thread (measured on the 200,000-filter sample and
    1 M- and 2 M-filter DBs: one thread as fast below a block, two 17 % faster at two blocks), while
    its core can run another job beside it.

    Parameters
    ----------
    filters : int or None
        Filters of the DB; None when it is not there yet (a DB the run builds): the cores a shard gets.
    cores, shards, block_rows : int

    Returns
    -------
    int
    """
    per_shard = max(1, int(cores) // max(int(shards), 1))
    if filters is None:
        return per_shard
    rows = -(-int(filters) // max(int(shards), 1))
    return max(1, min(per_shard, -(-rows // max(int(block_rows), 1))))


def _readings(text: str):
    """Typed readings of a string, in the order they are tried (null is handled by the caller)."""
    if text in _BOOLS:
        yield _BOOLS[text]
    if _INT.fullmatch(text):
        yield int(text)
    if _FLOAT.fullmatch(text):
        yield float(text)
    m = _INF.fullmatch(text)
    if m:
        yield float(f"{m.group(1)}inf")
    if text.lstrip()[:1] in ("[", "{"):
        import yaml

        try:
            # BaseLoader as Snakemake's own --config parser: every scalar inside stays a string and is
            # read by these same rules (safe_load would read "010" as 8 and "1e-7" as a string)
            value = yaml.load(text, Loader=yaml.BaseLoader)
        except yaml.YAMLError:
            return
        if isinstance(value, (list, dict)):
            yield value


class _Coercer:
    """One walk of a config against a schema; validators of sub-schemas cached by identity."""

    def __init__(self, schema: dict):
        from jsonschema import Draft202012Validator
        from jsonschema.validators import validator_for

        self.root = validator_for(schema, default=Draft202012Validator)(schema)
        self.cache: dict[int, object] = {}
        self.joined: dict[tuple, dict] = {}

    def valid(self, value, schema) -> bool:
        v = self.cache.get(id(schema))
        if v is None:
            v = self.cache[id(schema)] = self.root.evolve(schema=schema)
        return v.is_valid(value)

    def all_of(self, subs: list) -> dict:
        """``{"allOf": subs}``, one object per list of sub-schemas (validators are cached by identity)."""
        key = tuple(map(id, subs))
        if key not in self.joined:
            self.joined[key] = {"allOf": list(subs)}
        return self.joined[key]

    def resolve(self, ref: str):
        """The sub-schema a ``$ref`` names: a local JSON pointer (``#/$defs/x``), else what the
        validator's resolver finds; ``None`` when unresolvable (not walked; validation reports it)."""
        if ref == "#" or ref.startswith("#/"):
            from urllib.parse import unquote

            node = self.root.schema
            for part in ref[2:].split("/") if ref != "#" else []:
                part = unquote(part).replace("~1", "/").replace("~0", "~")
                try:
                    node = node[int(part)] if isinstance(node, list) else node[part]
                except (KeyError, IndexError, ValueError, TypeError):
                    return None
            return node
        try:
            return self.root._resolver.lookup(ref).contents
        except Exception:
            return None

    def string(self, text: str, schema):
        if text in _NULLS and self.valid(None, schema):
            # null where null is allowed, even where a string is too (compare.sheet: null), as a
            # config file would read it
            return None
        if self.valid(text, schema):
            return text
        for value in _readings(text):
            if isinstance(value, (list, dict)):
                value = self.walk(value, schema)
            if self.valid(value, schema):
                return value
        return text

    def walk(self, value, schema):
        if not isinstance(schema, dict):  # True/False schemas: nothing to read by
            return copy.deepcopy(value)
        if isinstance(value, str):
            return self.string(value, schema)
        if not isinstance(value, (dict, list)):
            return value
        out = value
        if "$ref" in schema:
            target = self.resolve(schema["$ref"])
            if target is not None:
                out = self.walk(out, target)
        if isinstance(out, dict):
            props = schema.get("properties") or {}
            patterns = schema.get("patternProperties") or {}
            extra = schema.get("additionalProperties")
            new = {}
            for key, item in out.items():
                subs = [props[key]] if key in props else []
                subs += [sub for pattern, sub in patterns.items() if re.search(pattern, str(key))]
                if not subs:
                    subs = [extra if isinstance(extra, dict) else True]
                new[key] = self.walk(item, subs[0] if len(subs) == 1 else self.all_of(subs))
            out = new
        elif isinstance(out, list):
            items = schema.get("items")
            if isinstance(items, list):  # draft 7 and older: items as a tuple, then additionalItems
                prefix, rest = items, schema.get("additionalItems")
            else:
                prefix, rest = schema.get("prefixItems") or [], items
            out = [
                self.walk(item, prefix[i] if i < len(prefix) else rest if isinstance(rest, dict) else True)
                for i, item in enumerate(out)
            ]
        for sub in schema.get("allOf") or []:
            out = self.walk(out, sub)
        for key in ("anyOf", "oneOf"):
            for sub in schema.get(key) or []:
                candidate = self.walk(out, sub)
                if self.valid(candidate, schema):
                    out = candidate
                    break
        return out


def coerce_to_schema(config: dict, schema: dict | str | os.PathLike | None = None) -> dict:
    """Read the strings of a config that the schema wants as other types (``--config`` values).

    Snakemake parses a nested ``--config`` value with YAML's ``BaseLoader``, so
    ``--config uncertainty='{enabled: true}'`` arrives as ``{"enabled": "true"}`` and fails the schema
    (``'true' is not of type 'boolean'``). This returns a copy of ``config`` in which every string
    that does not validate against its sub-schema is replaced by the first of its readings that does:

    * ``true``/``false`` and YAML 1.1's ``yes``/``no``/``on``/``off`` (lower case, Capitalised, UPPER),
      as PyYAML reads a config file;
    * decimal integers (``8``, ``-3``, ``+3``), then decimal floats (``1e-7``, ``1.5``, ``.5``, ``-3.3``,
      ``inf``/``.inf``; never NaN);
    * flow sequences and mappings (``[-3, 3]``, ``{enabled: true}``), parsed as Snakemake parses them
      (``BaseLoader``) and then read by these rules, item by item.

    ``null``, ``Null``, ``NULL``, ``~`` and the empty string become ``None`` wherever the schema allows
    null, even where a string is allowed too (``compare.sheet``), as a config file reads them. Any
    other string valid where it stands stays a string (an md5 of digits, an axis ``column: "1"``,
    ``grids.model: "5"``); one that no reading makes valid stays as it is, so that validation still
    reports it. Booleans and integers are never read as each other (the schema's validator, draft
    2020-12, holds ``True`` not an integer).

    The schema is walked through ``properties``, ``patternProperties``, ``additionalProperties``
    (a schema; e.g. the user-named axes), ``items``/``prefixItems`` (nested lists too), ``$ref`` (any
    reference the validator resolves: ``#/$defs/...``, ``#/definitions/...``) and ``allOf``
    (each in turn), ``anyOf``/``oneOf`` (the first alternative whose reading validates against the
    whole schema there; none: the value as it was). Other keywords (``if``/``then``, ``not``,
    ``dependentSchemas``, ``unevaluated*``) only take part in the validity checks.

    Parameters
    ----------
    config : dict
        The configuration as Snakemake hands it to the workflow; not modified.
    schema : dict or path, optional
        The parsed schema or its file (default: :func:`load_schema`'s).

    Returns
    -------
    dict
        A copy of ``config`` (new dicts and lists throughout) with the strings read.
    """
    if schema is None:
        schema = _load_schema(str(schema_path()))
    elif not isinstance(schema, dict):
        schema = _load_schema(str(Path(schema)))
    return _Coercer(schema).walk(dict(config or {}), schema)
