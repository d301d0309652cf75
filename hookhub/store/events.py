"""Queries on custom events (what contacts did, as reported by other apps)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from hookhub.core import jsoncodec
from hookhub.records.contacts import CustomEvent
from hookhub.store.schema import custom_events

_INSERT = insert(custom_events).returning(custom_events.c.id)


class EventStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def insert(
        self,
        *,
        event_name: str,
        contact_id: int,
        properties_json: str,
        event_date: datetime,
        now: datetime,
    ) -> int:
        values = {
            "event_name": event_name,
            "contact_id": contact_id,
            "event_properties": properties_json,
            "event_date": event_date,
            "created_at": now,
        }
        return int(self.conn.execute(_INSERT, values).scalar_one())

    def insert_many(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert events (rows of event_name, contact_id, event_properties as JSON text,
        event_date, created_at); their ids, in order."""
        if not rows:
            return []
        statement = insert(custom_events).returning(
            custom_events.c.id, sort_by_parameter_order=True
        )
        return [int(i) for i in self.conn.execute(statement, rows).scalars()]

    def page(
        self,
        *,
        after_id: int | None,
        limit: int,
        contact_id: int | None = None,
        event_name: str | None = None,
    ) -> list[CustomEvent]:
        query = select(custom_events).order_by(custom_events.c.id).limit(limit)
        if after_id is not None:
            query = query.where(custom_events.c.id > after_id)
        if contact_id is not None:
            query = query.where(custom_events.c.contact_id == contact_id)
        if event_name is not None:
            query = query.where(custom_events.c.event_name == event_name)
        return [_row_to_event(row) for row in self.conn.execute(query)]


def _row_to_event(row: Any) -> CustomEvent:
    return CustomEvent(
        id=row.id,
        event_name=row.event_name,
        contact_id=row.contact_id,
        event_properties=jsoncodec.loads(row.event_properties),
        event_date=row.event_date,
        created_at=row.created_at,
    )
