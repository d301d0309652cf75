"""The contacts core's value objects and their public JSON shapes (DESIGN.md, resource shapes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from hookhub.core.jsoncodec import isoformat


@dataclass(slots=True)
class Contact:
    id: int
    email: str
    ext_id: str | None
    attributes: dict[str, Any]
    unsubscribed: bool
    created_at: datetime
    updated_at: datetime
    list_ids: list[int] = field(default_factory=list)
    email_blocked: dict[str, Any] | None = None
    """``{"reason": "hard_bounce" | "complaint" | "manual", "at": ISO time}``: no email."""

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "ext_id": self.ext_id,
            "attributes": self.attributes,
            "list_ids": self.list_ids,
            "unsubscribed": self.unsubscribed,
            "email_blocked": self.email_blocked,
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
        }


@dataclass(slots=True)
class ContactList:
    id: int
    name: str
    contact_count: int
    created_at: datetime

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "contact_count": self.contact_count,
            "created_at": isoformat(self.created_at),
        }


@dataclass(slots=True)
class CustomEvent:
    id: int
    event_name: str
    contact_id: int
    event_properties: dict[str, Any]
    event_date: datetime
    created_at: datetime

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_name": self.event_name,
            "contact_id": self.contact_id,
            "event_properties": self.event_properties,
            "event_date": isoformat(self.event_date),
            "created_at": isoformat(self.created_at),
        }


T = TypeVar("T")


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
