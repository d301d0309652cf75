"""Queries on the outbox: one row per notification, its body stored as the exact bytes sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, LargeBinary, Row, bindparam, cast, false, func, insert, select

from hookhub.store.schema import messages

_INSERT = insert(messages)
_BY_ID = select(messages).where(messages.c.id == bindparam("id"))


class MessageStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert_many(self, rows: list[dict[str, Any]]) -> None:
        """rows: id, type, payload (JSON text), created_at."""
        if rows:
            self.conn.execute(_INSERT, rows)

    def get(self, message_id: str) -> Row[Any] | None:
        return self.conn.execute(_BY_ID, {"id": message_id}).first()

    def page_sizes(
        self, *, after_id: str | None, limit: int, event_type: str | None = None
    ) -> list[tuple[str, int]]:
        """Ids and payload sizes (bytes) of a page, in id order; the payloads are not sent."""
        if self.conn.dialect.name == "postgresql":
            size = func.octet_length(messages.c.payload)
        else:
            size = func.length(cast(messages.c.payload, LargeBinary))
        query = select(messages.c.id, size).order_by(messages.c.id).limit(limit)
        if after_id is not None:
            query = query.where(messages.c.id > after_id)
        if event_type is not None:
            query = query.where(messages.c.type == event_type)
        return [(row[0], int(row[1])) for row in self.conn.execute(query)]

    def many(self, message_ids: list[str]) -> list[Row[Any]]:
        """The messages, in id order."""
        if not message_ids:
            return []
        query = select(messages).where(messages.c.id.in_(message_ids)).order_by(messages.c.id)
        return list(self.conn.execute(query))

    def created_between(self, start: datetime, end: datetime) -> list[Row[Any]]:
        """Messages of the window that fan-out made (test sends are left out)."""
        query = (
            select(messages.c.id, messages.c.type)
            .where(
                messages.c.created_at >= start,
                messages.c.created_at < end,
                messages.c.is_test == false(),
            )
            .order_by(messages.c.id)
        )
        return list(self.conn.execute(query))
