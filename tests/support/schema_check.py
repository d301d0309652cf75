"""A small JSON Schema checker for the subset the event catalog uses (no extra dependency).

Supports ``type`` (one name or a list), ``const``, ``enum``, ``anyOf``, ``properties``,
``required``, ``additionalProperties``, ``items`` and the ``date-time``, ``email`` and ``uri``
formats.
Any other keyword fails loudly, so the catalog cannot outgrow the checker unnoticed.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

_KNOWN = {
    "$schema",
    "title",
    "description",
    "type",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "format",
    "enum",
    "anyOf",
}
_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$", re.IGNORECASE)


def errors(instance: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """What is wrong with ``instance`` against ``schema``; empty when it is valid."""
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"{path}: schema keywords this checker does not know: {unknown}")
    found: list[str] = []
    if "anyOf" in schema:
        options = [errors(instance, option, path) for option in schema["anyOf"]]
        if all(options):
            found.append(f"{path}: matches none of anyOf: {options}")
    if "enum" in schema and instance not in schema["enum"]:
        found.append(f"{path}: {instance!r} is not one of {schema['enum']}")
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_TYPES[name](instance) for name in names):
            return [f"{path}: {instance!r} is not of type {kinds}"]
    if "const" in schema and instance != schema["const"]:
        found.append(f"{path}: {instance!r} != {schema['const']!r}")
    if isinstance(instance, str) and "format" in schema:
        found.extend(_format(instance, schema["format"], path))
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in instance:
                found.append(f"{path}: {name!r} is required")
        extra = schema.get("additionalProperties", True)
        for name, value in instance.items():
            if name in properties:
                found.extend(errors(value, properties[name], f"{path}.{name}"))
            elif extra is False:
                found.append(f"{path}: {name!r} is not allowed")
            elif isinstance(extra, dict):
                found.extend(errors(value, extra, f"{path}.{name}"))
    if isinstance(instance, list) and "items" in schema:
        for index, value in enumerate(instance):
            found.extend(errors(value, schema["items"], f"{path}[{index}]"))
    return found


def _format(value: str, kind: str, path: str) -> list[str]:
    if kind == "date-time":
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return [f"{path}: {value!r} is not a date-time"]
        if moment.tzinfo is None:
            return [f"{path}: {value!r} has no time zone"]
        return []
    if kind == "email":
        return [] if _EMAIL.match(value) else [f"{path}: {value!r} is not an email"]
    if kind == "uri":
        return [] if _URI.match(value) else [f"{path}: {value!r} is not a URI"]
    raise ValueError(f"{path}: unknown format {kind!r}")
