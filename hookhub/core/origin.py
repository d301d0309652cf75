"""What caused a message (its ``origin``) and the ``ignore_origins`` rules that match it.

Pure: no database, no framework. Entry points (the API, the inbound processor, the automation
engine, the campaign loop, an import, the tracking processor) each make an :class:`Origin` and
hand it to the outbox writer; the fan-out asks :func:`ignored` whether an endpoint skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookhub.errors import ValidationFailed

ORIGIN_TYPES = ("api", "inbound", "automation", "campaign", "import", "tracking")
MAX_IGNORE_RULES = 50


@dataclass(frozen=True, slots=True)
class Origin:
    type: str
    id: int | str | None = None
    """An integer id, or the import's string id (``imp_...``); None for tracking."""
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "id": self.id, "name": self.name}


TRACKING = Origin("tracking")
"""Email outcomes, opens and clicks (a campaign's emails' are the campaign's)."""

IgnoreRules = tuple[tuple[str, int | str | None], ...]
"""(type, id or None for every one of that type) pairs."""


def ignored(rules: IgnoreRules, origin: Origin | None) -> bool:
    """True when a rule matches ``origin``; a message without an origin is never ignored."""
    if origin is None:
        return False
    for kind, ident in rules:
        if kind == origin.type and (ident is None or ident == origin.id):
            return True
    return False


def ignored_json(rules: IgnoreRules, origin: Any) -> bool:
    """:func:`ignored` for an origin read back from a stored body (a dict, or null)."""
    if not isinstance(origin, dict):
        return False
    ident = origin.get("id")
    return ignored(
        rules, Origin(str(origin.get("type")), ident if isinstance(ident, int | str) else None)
    )


def parse_ignore_origins(value: Any, *, field: str = "ignore_origins") -> IgnoreRules:
    """Validate an endpoint's ``ignore_origins`` (a 422 names the bad entry)."""
    if not isinstance(value, list):
        raise ValidationFailed(f"{field} must be a list of {{type, id?}} objects.")
    if len(value) > MAX_IGNORE_RULES:
        raise ValidationFailed(f"{field} takes at most {MAX_IGNORE_RULES} entries.")
    rules: list[tuple[str, int | str | None]] = []
    for i, entry in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(entry, dict):
            raise ValidationFailed(f'{where} must be an object like {{"type": "inbound"}}.')
        unknown = set(entry) - {"type", "id"}
        if unknown:
            raise ValidationFailed(f"{where} has unknown keys: {', '.join(sorted(unknown))}.")
        kind = entry.get("type")
        if kind not in ORIGIN_TYPES:
            raise ValidationFailed(f"{where}.type must be one of {', '.join(ORIGIN_TYPES)}.")
        ident = entry.get("id")
        if kind == "import":
            if ident is not None and (not isinstance(ident, str) or not 0 < len(ident) <= 64):
                raise ValidationFailed(f"{where}.id must be an import's id (or absent: any).")
        elif ident is not None and (
            isinstance(ident, bool) or not isinstance(ident, int) or ident < 1
        ):
            raise ValidationFailed(f"{where}.id must be a positive integer (or absent: any).")
        if kind == "tracking" and ident is not None:
            raise ValidationFailed(f"{where}.id: tracking origins have no id.")
        rules.append((kind, ident))
    return tuple(rules)


def rules_json(rules: IgnoreRules) -> list[dict[str, Any]]:
    return [{"type": k} if i is None else {"type": k, "id": i} for k, i in rules]
