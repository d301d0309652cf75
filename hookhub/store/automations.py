"""Queries on automation definitions: every statement that reads or writes ``automations``.

JSON columns (``trigger``, ``steps``) are text written by ``hookhub.core.jsoncodec``. Every write
bumps ``version`` and the ``automations`` config version in the same transaction, so each
process drops its compiled programs once the change commits (``automation/registry.py``).
Enrollments are ``store/enrollments.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from hookhub.core import jsoncodec
from hookhub.records.automations import Automation
from hookhub.store.config_versions import ConfigKind, bump
from hookhub.store.schema_automation import automations

EDITABLE = frozenset(
    {"name", "enabled", "trigger", "filter", "reentry", "exit_on_unsubscribe", "steps"}
)


def row_to_automation(row: Row[Any]) -> Automation:
    return Automation(
        id=row.id,
        name=row.name,
        enabled=bool(row.enabled),
        trigger=jsoncodec.loads(row.trigger),
        filter=row.filter,
        reentry=row.reentry,
        exit_on_unsubscribe=bool(row.exit_on_unsubscribe),
        steps=jsoncodec.loads(row.steps),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    values = {key: fields[key] for key in EDITABLE if key in fields}
    for key in ("trigger", "steps"):
        if key in values:
            values[key] = jsoncodec.dumps(values[key]).decode()
    return values


class AutomationStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def create(self, fields: dict[str, Any], now: datetime) -> Automation:
        values = {"enabled": True, "filter": None, **fields}
        new_id = self.conn.execute(
            insert(automations)
            .values(**_columns(values), version=1, created_at=now, updated_at=now)
            .returning(automations.c.id)
        ).scalar_one()
        bump(self.conn, ConfigKind.AUTOMATIONS)
        created = self.get(new_id)
        assert created is not None
        return created

    def get(self, automation_id: int, *, lock: bool = False) -> Automation | None:
        query = select(automations).where(automations.c.id == automation_id)
        if lock and self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return None if row is None else row_to_automation(row)

    def all(self) -> list[Automation]:
        rows = self.conn.execute(select(automations).order_by(automations.c.id))
        return [row_to_automation(row) for row in rows]

    def names(self, automation_ids: Iterable[int]) -> dict[int, str]:
        wanted = sorted(set(automation_ids))
        if not wanted:
            return {}
        query = select(automations.c.id, automations.c.name).where(automations.c.id.in_(wanted))
        return {int(row.id): row.name for row in self.conn.execute(query)}

    def versions(self) -> dict[int, int]:
        """Every automation's id and version (what a cache checks before reloading)."""
        query = select(automations.c.id, automations.c.version)
        return {int(i): int(v) for i, v in self.conn.execute(query)}

    def page(self, *, after: int | None, limit: int) -> list[Automation]:
        query = select(automations).order_by(automations.c.id).limit(limit)
        if after is not None:
            query = query.where(automations.c.id > after)
        return [row_to_automation(row) for row in self.conn.execute(query)]

    def update(
        self, automation_id: int, fields: dict[str, Any], now: datetime
    ) -> Automation | None:
        result = self.conn.execute(
            update(automations)
            .where(automations.c.id == automation_id)
            .values(**_columns(fields), version=automations.c.version + 1, updated_at=now)
        )
        if not result.rowcount:
            return None
        bump(self.conn, ConfigKind.AUTOMATIONS)
        return self.get(automation_id)

    def delete(self, automation_id: int) -> bool:
        """Delete the automation; its enrollments and their logs go with it (cascade)."""
        result = self.conn.execute(delete(automations).where(automations.c.id == automation_id))
        if result.rowcount:
            bump(self.conn, ConfigKind.AUTOMATIONS)
        return bool(result.rowcount)
