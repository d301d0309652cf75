"""Helpers for the automations API tests: build templates, lists, contacts and automations
through the API, and leave enrollments where a worker would have (their rows and step log),
since those tests check the API, not the step machine."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import func, select, update

from hookhub.clock import FakeClock
from hookhub.services import Services
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
