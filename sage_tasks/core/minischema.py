"""A small JSON Schema validator for the keywords our committed schema uses.

Supported: ``type``, ``enum``, ``pattern``, ``minLength``, ``maxLength``, ``minimum``,
``maxItems``, ``items``, ``required``, ``properties``, ``additionalProperties`` and local
``$ref`` (``#`` and ``#/$defs/...``). Semantics follow JSON Schema 2020-12 for these keywords
(the test suite checks that ``jsonschema`` agrees on generated documents); anything else in a
schema is a programming error and raises ``KeyError`` at load time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

SUPPORTED = {
    "$schema", "$id", "$defs", "$ref", "title", "description", "type", "enum", "pattern",
    "minLength", "maxLength", "minimum", "maxItems", "items", "required", "properties",
    "additionalProperties",
}  # fmt: skip

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    # JSON Schema: a number without a fractional part is an integer (1.0 included)
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


@lru_cache(maxsize=64)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: numbers compare by value, booleans are not numbers."""
    if _TYPES["number"](a) and _TYPES["number"](b):
        return bool(a == b)
    return type(a) is type(b) and a == b


def check_schema(schema: Mapping[str, Any]) -> None:
    """Refuse keywords this validator does not implement (so none is silently ignored)."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            unknown = set(node) - SUPPORTED
            if unknown:
                raise KeyError(f"unsupported schema keywords: {sorted(unknown)}")
            for key in ("properties", "$defs"):
                for sub in node.get(key, {}).values():
                    walk(sub)
            for key in ("items", "additionalProperties"):
                if isinstance(node.get(key), dict):
                    walk(node[key])

    walk(schema)


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        raise KeyError(f"only local references are supported: {ref}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def iter_errors(
    value: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, path: str = "$"
) -> Iterator[str]:
    """Yield one message per violation, each naming the JSON path."""
    root = schema if root is None else root
    if "$ref" in schema:
        yield from iter_errors(value, _resolve(root, schema["$ref"]), root, path)
    if "type" in schema:
        allowed = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in allowed):
            yield f"{path}: expected {' or '.join(allowed)}, got {type(value).__name__}"
            return
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        yield f"{path}: {value!r} is not one of {schema['enum']}"
    if isinstance(value, str):
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            yield f"{path}: {value[:80]!r} does not match {schema['pattern']}"
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield f"{path}: shorter than {schema['minLength']}"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield f"{path}: longer than {schema['maxLength']}"
    if _TYPES["number"](value) and "minimum" in schema and value < schema["minimum"]:
        yield f"{path}: {value} is less than {schema['minimum']}"
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield f"{path}: more than {schema['maxItems']} items"
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                yield from iter_errors(item, schema["items"], root, f"{path}[{i}]")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                yield f"{path}: missing required field '{key}'"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                yield from iter_errors(item, properties[key], root, f"{path}.{key}")
            elif extra is False:
                yield f"{path}: unexpected field '{key}'"
            elif isinstance(extra, dict):
                yield from iter_errors(item, extra, root, f"{path}.{key}")


def errors(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> list[str]:
    return list(iter_errors(value, schema, root))
