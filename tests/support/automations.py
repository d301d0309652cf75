"""Helpers for the automations API tests: build templates, lists, contacts and automations
through the API, and leave enrollments where a worker would have (their rows and step log),
since those tests check the API, not the step machine; and automations stored straight through
the store, for the trigger tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update

from hookhub.automation.definition import parse_definition
from hookhub.clock import FakeClock
from hookhub.core import jsoncodec
from hookhub.services import Services
from hookhub.store.automations import AutomationStore
from hookhub.store.enrollments import EnrollmentStore
from hookhub.store.schema_automation import automation_enrollments

A = "/api/v1/automations"
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0


@pytest.fixture
def clock(services: Services) -> FakeClock:
    fake = FakeClock(START)
    services.automations.clock = fake
    return fake


def post(client: Any, path: str, body: Any, status: int = 201) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


def template(client: Any) -> int:
    body = {"name": "welcome", "subject": "Hi", "html": "<p>Hi {{ contact.email }}</p>"}
    return int(post(client, "/api/v1/email-templates", body)["id"])


def a_list(client: Any, name: str = "leads") -> int:
    return int(post(client, "/api/v1/lists", {"name": name})["id"])


def contact(client: Any, email: str, **attributes: Any) -> int:
    return int(post(client, "/api/v1/contacts", {"email": email, "attributes": attributes})["id"])


def automation(client: Any, steps: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    body = {"name": "Welcome series", "trigger": {"type": "manual"}, "steps": steps, **fields}
    return post(client, A, body)


def enrol(client: Any, automation_id: int, ref: int | str) -> dict[str, Any]:
    return post(client, f"{A}/{automation_id}/enrollments", {"contact": ref})


def move(services: Services, enrollment_id: int, **values: Any) -> None:
    """Leave an enrollment where a worker would have (its row only)."""
    with services.db.write() as conn:
        conn.execute(
            update(automation_enrollments)
            .where(automation_enrollments.c.id == enrollment_id)
            .values(**values)
        )


def log(
    services: Services, enrollment: dict[str, Any], step_id: str, kind: str, outcome: str, at: float
) -> None:
    with services.db.write() as conn:
        EnrollmentStore(conn).log_steps(
            [
                {
                    "enrollment_id": enrollment["id"],
                    "automation_id": enrollment["automation_id"],
                    "step_id": step_id,
                    "kind": kind,
                    "outcome": outcome,
                    "at": at,
                    "detail": {"note": f"{step_id} {outcome}"},
                }
            ]
        )


def count(services: Services, table: Any) -> int:
    with services.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


SERIES = [
    {"id": "hello", "send_email": {"template_id": 0}},
    {"id": "pause", "wait": "2d"},
    {
        "id": "plan",
        "if": "contact.attributes.PLAN == 'pro'",
        "then": [{"track_event": {"name": "pro_welcomed"}}],
        "else": [
            {
                "id": "order",
                "wait_for": {"event_name": "order_placed", "timeout": "7d"},
                "then": [{"id": "thanks", "track_event": {"name": "converted"}}],
                "else": [{"id": "nudge", "send_email": {"template_id": 0}}],
            }
        ],
    },
    {"id": "done", "update_contact": {"attributes": {"STAGE": "'onboarded'"}}},
]


def series(template_id: int) -> list[dict[str, Any]]:
    steps = copy.deepcopy(SERIES)
    steps[0]["send_email"]["template_id"] = template_id
    steps[2]["else"][0]["else"][0]["send_email"]["template_id"] = template_id
    return steps


# -- stored straight through the store (the trigger tests) ---------------------------------


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
    query = select(automation_enrollments).order_by(automation_enrollments.c.id)
    if automation_id is not None:
        query = query.where(automation_enrollments.c.automation_id == automation_id)
    with services.db.read() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
    for row in rows:
        row["trigger"] = jsoncodec.loads(row["trigger"])
    return rows
