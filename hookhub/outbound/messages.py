"""Reading the outbox: what ``/api/v1/messages`` shows of the messages Hookhub sent or will send.

A page of messages is capped by the size of their payloads as well as by ``limit`` (a payload
may be up to a megabyte), so one list call never builds more than about ``PAGE_BYTES``; the
cursor then points at the first message left out. It never writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Row

from hookhub.core.jsoncodec import isoformat
from hookhub.errors import NotFound
from hookhub.store.database import Database
from hookhub.store.deliveries import DeliveryStore
from hookhub.store.messages import MessageStore

PAGE_BYTES = 4 * 1024 * 1024
"""Payload bytes a page of messages carries at most (a single larger message still comes alone)."""

MESSAGE_DELIVERIES = 1000
"""Deliveries shown with one message, at most (one per endpoint)."""


def message_to_api(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        # The stored bytes, embedded verbatim: exactly what endpoints receive.
        "payload": orjson.Fragment(row.payload),
        "created_at": isoformat(row.created_at),
    }


@dataclass(slots=True)
class MessagePage:
    items: list[dict[str, Any]]
    next_after: str | None
    """The id to continue after, when there is more."""


class MessageService:
    def __init__(self, db: Database, *, page_bytes: int = PAGE_BYTES) -> None:
        self.db = db
        self.page_bytes = page_bytes

    def page(self, *, after_id: str | None, limit: int, event_type: str | None) -> MessagePage:
        with self.db.read() as conn:
            store = MessageStore(conn)
            sizes = store.page_sizes(after_id=after_id, limit=limit, event_type=event_type)
            chosen: list[str] = []
            total = 0
            for message_id, size in sizes:
                if chosen and total + size > self.page_bytes:
                    break
                chosen.append(message_id)
                total += size
            items = store.many(chosen)
        more = len(chosen) < len(sizes) or len(sizes) == limit
        next_after = chosen[-1] if more and chosen else None
        return MessagePage([message_to_api(row) for row in items], next_after)

    def get(self, message_id: str) -> dict[str, Any]:
        """A message with each endpoint's delivery of it, attempts and response bodies included."""
        with self.db.read() as conn:
            row = MessageStore(conn).get(message_id)
            if row is None:
                raise NotFound(f"No message {message_id!r}.")
            found = DeliveryStore(conn).page(message_id=message_id, limit=MESSAGE_DELIVERIES)
        return {**message_to_api(row), "deliveries": [d.to_api() for d in found]}
