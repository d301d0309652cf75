"""Per-contact endpoint options: ``ordering`` and ``collapse`` (validation and merging).

``ordering: "contact"``: the deliveries of messages about one contact are sent one at a time,
in the order the messages were written; a later one is ``waiting`` until the one before it
succeeded, was exhausted or was cancelled. ``collapse``: a burst of messages of the named types
about one contact within ``window_ms`` becomes one delivery. The fan-out (``keyed_fanout``)
and the store (``hookhub.store.delivery_keys``) apply them; this module says what is valid and
how two messages of a burst merge.

What this module must never do: touch the database, or merge messages of different types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookhub.core.catalog import CATALOG
from hookhub.errors import ValidationFailed

__all__ = [
    "MAX_WINDOW_MS",
    "ORDERINGS",
    "contact_of",
    "keyed_types",
    "merge_bodies",
    "validate_collapse",
    "validate_ordering",
]

ORDERINGS = ("contact",)
MAX_WINDOW_MS = 3_600_000
MAX_COLLAPSE_TYPES = 50


def keyed_types() -> list[str]:
    """Event types whose messages are about one contact (their data names ``contact_id``)."""
    return [
        name
        for name, kind in CATALOG.items()
        if not kind.operational and "contact_id" in kind.required
    ]


def validate_ordering(value: Any) -> str | None:
    if value is None:
        return None
    if value not in ORDERINGS:
        raise ValidationFailed(
            f"ordering must be one of {', '.join(map(repr, ORDERINGS))} or null.",
            details={"field": "ordering", "allowed": list(ORDERINGS)},
        )
    return str(value)


def _collapse_fail(field: str, message: str, **extra: Any) -> ValidationFailed:
    return ValidationFailed(message, details={"field": f"collapse.{field}", **extra})


def validate_collapse(value: Any) -> dict[str, Any] | None:
    """The collapse to store (None: no collapsing), or a 422 naming the field at fault."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"event_types", "window_ms"}:
        raise ValidationFailed(
            'collapse must be {"event_types": [...], "window_ms": n}.',
            details={"field": "collapse"},
        )
    types = value.get("event_types")
    if not isinstance(types, list) or not types or len(types) > MAX_COLLAPSE_TYPES:
        raise _collapse_fail(
            "event_types", f"collapse.event_types must list 1 to {MAX_COLLAPSE_TYPES} event types."
        )
    keyed = set(keyed_types())
    for name in types:
        if not isinstance(name, str) or name not in CATALOG:
            raise _collapse_fail(
                "event_types", f"collapse.event_types: unknown event type {name!r}.", value=name
            )
        if name not in keyed:
            raise _collapse_fail(
                "event_types",
                f"collapse.event_types: {name!r} is not about a contact, so it has no bursts"
                " to collapse.",
                value=name,
            )
    window = value.get("window_ms")
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW_MS:
        raise _collapse_fail(
            "window_ms", f"collapse.window_ms must be an integer from 1 to {MAX_WINDOW_MS}."
        )
    return {"event_types": list(dict.fromkeys(types)), "window_ms": window}


def contact_of(body: Any) -> int | None:
    """The contact a parsed message body is about, or None (``data.contact_id``)."""
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    if not isinstance(data, dict):
        return None
    contact = data.get("contact_id")
    if isinstance(contact, bool) or not isinstance(contact, int):
        return None
    return contact


def merge_bodies(first: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """One message standing for ``first`` and then ``later`` (same type, same contact).

    The result is ``later`` (its timestamp, origin and data: the newest state), except that
    ``data.changes``, where both have one, runs from each field's first old value to its last
    new value; a field that ended where it started is left out (it did not change).
    """
    merged = dict(later)
    old_data, new_data = first.get("data"), later.get("data")
    if not isinstance(old_data, dict) or not isinstance(new_data, dict):
        return merged
    old_changes, new_changes = old_data.get("changes"), new_data.get("changes")
    if not isinstance(old_changes, dict) or not isinstance(new_changes, dict):
        return merged
    changes: dict[str, Any] = {}
    for name in [*old_changes, *(n for n in new_changes if n not in old_changes)]:
        before, after = old_changes.get(name), new_changes.get(name)
        if not isinstance(before, dict):
            changes[name] = after
            continue
        if not isinstance(after, dict):
            changes[name] = before
            continue
        span = {**after, "old": before.get("old")}
        if span.get("old") != span.get("new"):
            changes[name] = span
    merged["data"] = {**new_data, "changes": changes}
    return merged
