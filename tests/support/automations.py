"""Automations for tests: stored straight through the store (as the API stores them) and the
enrollments read back from the database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from hookhub.automation.definition import parse_definition
from hookhub.core import jsoncodec
from hookhub.services import Services
from hookhub.store.automations import AutomationStore
from hookhub.store.schema_automation import automation_enrollments as enrollments


def make_automation(services: Services, body: dict[str, Any]) -> int:
    """Store an automation from a ``POST /automations`` body; answers its id."""
    body = {"name": "test", "steps": [{"id": "pause", "wait": "1d"}], **body}
    definition = parse_definition(body)
    fields = {
        "name": definition.name,
        "enabled": body.get("enabled", True),
        "trigger": definition.trigger.to_json(),
        "filter": body.get("filter"),
        "reentry": definition.reentry,
        "exit_on_unsubscribe": definition.exit_on_unsubscribe,
        "steps": definition.steps_json,
    }
    with services.db.write() as conn:
        created = AutomationStore(conn).create(fields, datetime.now(UTC))
    services.automation_registry.invalidate()
    return created.id


def update_automation(services: Services, automation_id: int, fields: dict[str, Any]) -> None:
    with services.db.write() as conn:
        AutomationStore(conn).update(automation_id, fields, datetime.now(UTC))


def delete_automation(services: Services, automation_id: int) -> None:
    with services.db.write() as conn:
        AutomationStore(conn).delete(automation_id)


def enrollments_of(services: Services, automation_id: int | None = None) -> list[dict[str, Any]]:
    """Every enrollment (of one automation), oldest first, as dicts with ``trigger`` parsed."""
    query = select(enrollments).order_by(enrollments.c.id)
    if automation_id is not None:
        query = query.where(enrollments.c.automation_id == automation_id)
    with services.db.read() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
    for row in rows:
        row["trigger"] = jsoncodec.loads(row["trigger"])
    return rows
