"""The shipped JSON schemas, and a small validator for the subset of JSON Schema they use.

Why not the ``jsonschema`` package: reports need only the standard library at run time,
and the error a user sees should be one sentence naming the JSON path and the rule
(``$.verdicts[2].verdict must be one of "pass", ..., not "maybe"``) rather than a schema
dump.  The test suite checks the shipped schema with ``jsonschema`` when it is installed and
that both validators agree on generated documents, so this subset cannot drift.

Supported keywords (any other keyword in a shipped schema is a test failure): ``type``,
``const``, ``enum``, ``properties``, ``required``, ``additionalProperties``, ``items``,
``minimum``, ``anyOf``, ``$ref`` (to ``#/$defs/...``), and the annotations ``$schema``,
``$id``, ``$defs``, ``title``, ``description``, ``format``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import cast

__all__ = ["SUPPORTED_KEYWORDS", "SchemaViolation", "load_schema", "validate"]

SUPPORTED_KEYWORDS = frozenset(
    {
        "type",
        "const",
        "enum",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minimum",
        "anyOf",
        "$ref",
        "$schema",
        "$id",
        "$defs",
        "title",
        "description",
        "format",
    }
)

Schema = Mapping[str, object]


class SchemaViolation(Exception):
    """Internal: where a document breaks its schema (turned into a ReportError by callers)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path} {message}")
        self.path = path
        self.message = message


@cache
def load_schema(name: str) -> Schema:
    """A schema shipped in ``reports/schema/`` (e.g. ``result-v1.json``)."""
    schema_dir = files("aioctx_verify.reports").joinpath("schema")
    text = schema_dir.joinpath(name).read_text(encoding="utf-8")
    return cast(Schema, json.loads(text))


_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_name(value: object) -> str:
    t = _json_type(value)
    return _TYPE_NAMES.get(t, t)


def _is_type(value: object, t: str) -> bool:
    actual = _json_type(value)
    if t == "number":
        return actual in ("integer", "number")
    if t == "integer":
        return actual == "integer" or (actual == "number" and cast(float, value).is_integer())
    return actual == t


def _show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=True) if _json_type(value) in _TYPE_NAMES else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _key(path: str, k: str) -> str:
    if k.isidentifier():
        return f"{path}.{k}"
    return f"{path}[{json.dumps(k, ensure_ascii=True)}]"


def validate(document: object, schema: Schema, *, path: str = "$") -> None:
    """Raise :class:`SchemaViolation` for the first place ``document`` breaks ``schema``."""
    _validate(document, schema, schema, path)


def _resolve(ref: str, root: Schema) -> Schema:
    prefix = "#/$defs/"
    if not ref.startswith(prefix):
        raise ValueError(f"unsupported $ref {ref!r}")
    defs = cast(Mapping[str, Schema], root["$defs"])
    return defs[ref[len(prefix) :]]


def _validate(value: object, schema: Schema, root: Schema, path: str) -> None:
    if "$ref" in schema:
        _validate(value, _resolve(cast(str, schema["$ref"]), root), root, path)
    if "anyOf" in schema:
        _any_of(value, cast(list[Schema], schema["anyOf"]), root, path)
    if "type" in schema:
        types = schema["type"]
        allowed = [types] if isinstance(types, str) else cast(list[str], types)
        if not any(_is_type(value, t) for t in allowed):
            want = " or ".join(_TYPE_NAMES[t] for t in allowed)
            raise SchemaViolation(path, f"must be {want}, not {_type_name(value)}")
    if "const" in schema and not _same(value, schema["const"]):
        raise SchemaViolation(path, f"must be {_show(schema['const'])}, not {_show(value)}")
    if "enum" in schema:
        options = cast(list[object], schema["enum"])
        if not any(_same(value, o) for o in options):
            listed = ", ".join(_show(o) for o in options)
            raise SchemaViolation(path, f"must be one of {listed}, not {_show(value)}")
    if "minimum" in schema and _json_type(value) in ("integer", "number"):
        low = cast(float, schema["minimum"])
        if cast(float, value) < low:
            raise SchemaViolation(path, f"must be >= {low}, not {_show(value)}")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SchemaViolation(path, "holds a lone surrogate, which is not text") from None
    if isinstance(value, dict):
        _object(value, schema, root, path)
    if isinstance(value, list) and "items" in schema:
        items = cast(Schema, schema["items"])
        for i, item in enumerate(value):
            _validate(item, items, root, f"{path}[{i}]")


def _same(a: object, b: object) -> bool:
    # JSON equality: true is not 1, 1.0 is 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _object(value: dict[object, object], schema: Schema, root: Schema, path: str) -> None:
    props = cast(Mapping[str, Schema], schema.get("properties", {}))
    for name in cast(list[str], schema.get("required", [])):
        if name not in value:
            raise SchemaViolation(path, f"lacks the required field {_show(name)}")
    extra = schema.get("additionalProperties", True)
    for k, v in value.items():
        key = str(k)
        if key in props:
            _validate(v, props[key], root, _key(path, key))
        elif extra is False:
            allowed = ", ".join(props)
            raise SchemaViolation(path, f"has an unknown field {_show(key)} (allowed: {allowed})")
        elif isinstance(extra, Mapping):
            _validate(v, cast(Schema, extra), root, _key(path, key))


def _any_of(value: object, options: list[Schema], root: Schema, path: str) -> None:
    errors: list[SchemaViolation] = []
    for option in options:
        try:
            _validate(value, option, root, path)
        except SchemaViolation as e:
            errors.append(e)
        else:
            return
    # Report the branch that got furthest into the value (the one the author meant).
    deepest = max(errors, key=lambda e: len(e.path))
    if deepest.path != path:
        raise deepest
    wants = []
    for option in options:
        target = _resolve(cast(str, option["$ref"]), root) if "$ref" in option else option
        t = target.get("type")
        wants.append(_TYPE_NAMES.get(t, "a value") if isinstance(t, str) else "a value")
    raise SchemaViolation(path, f"must be {' or '.join(wants)}, not {_type_name(value)}")
