"""Queries on the outbox: one row per notification, its body stored as the exact bytes sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, false, insert, select

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

    def page(
        self, *, after_id: str | None, limit: int, event_type: str | None = None
    ) -> list[Row[Any]]:
        query = select(messages).order_by(messages.c.id).limit(limit)
        if after_id is not None:
            query = query.where(messages.c.id > after_id)
        if event_type is not None:
            query = query.where(messages.c.type == event_type)
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
