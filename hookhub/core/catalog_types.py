"""What every entry of the event catalog is made of: :class:`EventType` and the schema pieces
entries share (a timestamp, a contact reference, a change, the origin). ``catalog.py`` holds the
entries; nothing here names an event type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TS = {"type": "string", "format": "date-time"}
CONTACT_REF: dict[str, Any] = {
    "contact_id": {"type": "integer"},
    "email": {"type": "string", "format": "email"},
}
ORIGIN: dict[str, Any] = {
    "description": "What caused the message; null when nothing known did (an operator's "
    "command, an operational event).",
    "type": ["object", "null"],
    "properties": {
        "type": {"enum": ["api", "inbound", "automation", "campaign", "import", "tracking"]},
        "id": {"type": ["integer", "string", "null"]},
        "name": {"type": ["string", "null"]},
    },
    "required": ["type", "id", "name"],
}
EXAMPLE_ORIGIN = {"type": "api", "id": 1, "name": "crm-sync"}
CHANGE = {"type": "object", "properties": {"old": {}, "new": {}}, "required": ["old", "new"]}


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    description: str
    properties: dict[str, Any]
    required: tuple[str, ...]
    example: dict[str, Any]
    operational: bool = False
    erasable: bool = False
    """``data`` may instead be ``{contact_id, erased: true}`` (an erased contact's
    ``contact.deleted``)."""

    def data_schema(self) -> dict[str, Any]:
        if not self.erasable:
            return {
                "type": "object",
                "properties": self.properties,
                "required": list(self.required),
            }
        rest = [name for name in self.required if name != "contact_id"]
        return {
            "type": "object",
            "properties": {**self.properties, "erased": {"const": True}},
            "required": ["contact_id"],
            "anyOf": [{"required": rest}, {"required": ["erased"]}],
        }

    def schema(self) -> dict[str, Any]:
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.name,
            "type": "object",
            "properties": {
                "type": {"const": self.name},
                "timestamp": TS,
                "data": self.data_schema(),
                "origin": ORIGIN,
            },
            "required": ["type", "timestamp", "data", "origin"],
        }

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "operational": self.operational,
            "schema": self.schema(),
            "example": {
                "type": self.name,
                "timestamp": "2026-01-15T09:30:00.000Z",
                "data": self.example,
                "origin": EXAMPLE_ORIGIN,
            },
        }
