"""The automations API beside the real step machine, on each backend: what the counts and a
contact's journey say while the engine moves contacts through waits, branches and a wait_for,
and that disabling holds them. The engine runs with the test's clock (no sleeping)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from hookhub.automation.engine import AutomationEngine
from hookhub.clock import FakeClock
from hookhub.services import Services
from tests.support.automations import A, a_list, automation, contact, enrol

DAY = 86400.0


@pytest.fixture
def clock(services: Services) -> FakeClock:
    # Real time: the API's own writes (events, contacts) stamp with the system clock.
    fake = FakeClock(time.time())
    services.automations.clock = fake
    return fake


@pytest.fixture
def engine(services: Services, clock: FakeClock) -> AutomationEngine:
    return AutomationEngine(
        services.db,
        services.outbox,
        services.automation_registry,
        clock,
        email_from=services.settings.email_from,
        worker_id="api-test",
    )


def run(engine: AutomationEngine, clock: FakeClock, seconds: float = 1.0) -> None:
    clock.advance(seconds)
    while engine.run_due():
        pass


def journey(client: Any, ref: int) -> dict[str, Any]:
    [item] = client.get(f"/api/v1/contacts/{ref}/automations").json()["data"]
    return dict(item)


def test_counts_and_journeys_follow_the_engine(
    client: Any, services: Services, engine: AutomationEngine, clock: FakeClock
) -> None:
    pros = a_list(client, "pros")
    steps = [
        {"id": "hello", "track_event": {"name": "welcomed"}},
        {"id": "pause", "wait": "2d"},
        {
            "id": "plan",
            "if": "contact.attributes.PLAN == 'pro'",
            "then": [{"id": "vip", "add_to_list": pros}],
            "else": [
                {
                    "id": "order",
                    "wait_for": {"event_name": "order_placed", "timeout": "7d"},
                    "then": [{"id": "thanks", "track_event": {"name": "converted"}}],
                    "else": [{"id": "nudge", "track_event": {"name": "nudged"}}],
                }
            ],
        },
        {"id": "done", "update_contact": {"attributes": {"STAGE": "'onboarded'"}}},
    ]
    created = automation(client, steps)
    pro = contact(client, "pro@example.com", PLAN="pro")
    buyer = contact(client, "buyer@example.com", PLAN="free")
    idle = contact(client, "idle@example.com", PLAN="free")
    for ref in (pro, buyer, idle):
        enrol(client, created["id"], ref)

    run(engine, clock)
    counts = client.get(f"{A}/{created['id']}").json()["counts"]
    assert counts["steps"]["hello"]["completed"] == 3
    assert counts["steps"]["pause"]["waiting"] == 3
    waiting = journey(client, pro)
    assert [d["step_id"] for d in waiting["done"]] == ["hello"]
    assert waiting["current"]["step_id"] == "pause"
    assert waiting["current"]["started_at"] is not None
    assert (waiting["next"]["step_id"], waiting["next"]["kind"]) == ("plan", "if")

    run(engine, clock, 2 * DAY)
    assert journey(client, pro)["status"] == "completed"
    assert [d["step_id"] for d in journey(client, pro)["done"]] == [
        "hello",
        "pause",
        "plan",
        "vip",
        "done",
    ]
    in_wait = journey(client, idle)
    assert in_wait["current"]["step_id"] == "order"
    assert in_wait["next"]["waiting_for"]["event_name"] == "order_placed"
    assert in_wait["next"]["waiting_for"]["on_event"]["step_id"] == "thanks"
    assert in_wait["next"]["waiting_for"]["on_timeout"]["step_id"] == "nudge"
    assert in_wait["next"]["step_id"] == "nudge"
    assert in_wait["next"]["at"] == in_wait["next"]["waiting_for"]["timeout_at"]

    bought = client.post(
        "/api/v1/events",
        json={"event_name": "order_placed", "identifiers": {"contact_id": buyer}},
    )
    assert bought.status_code == 201, bought.text
    run(engine, clock)
    assert journey(client, buyer)["status"] == "completed"
    assert "thanks" in [d["step_id"] for d in journey(client, buyer)["done"]]

    # Paused: the timeout comes and goes, the contact stays where it was.
    assert client.patch(f"{A}/{created['id']}", json={"enabled": False}).status_code == 200
    run(engine, clock, 8 * DAY)
    held = journey(client, idle)
    assert (held["status"], held["current"]["step_id"]) == ("active", "order")
    assert client.patch(f"{A}/{created['id']}", json={"enabled": True}).status_code == 200
    run(engine, clock)
    assert journey(client, idle)["status"] == "completed"

    counts = client.get(f"{A}/{created['id']}").json()["counts"]
    assert {k: counts[k] for k in ("entered", "active", "completed", "exited", "failed")} == {
        "entered": 3,
        "active": 0,
        "completed": 3,
        "exited": 0,
        "failed": 0,
    }
    passed = {step_id: step["completed"] for step_id, step in counts["steps"].items()}
    assert passed == {
        "hello": 3,
        "pause": 3,
        "plan": 3,
        "vip": 1,
        "order": 2,
        "thanks": 1,
        "nudge": 1,
        "done": 3,
    }
    assert all(step["entered"] == step["completed"] for step in counts["steps"].values())


def test_a_step_that_fails_counts_as_failed_on_its_step(
    client: Any, services: Services, engine: AutomationEngine, clock: FakeClock
) -> None:
    created = automation(
        client,
        [{"id": "calc", "update_contact": {"attributes": {"SCORE": "abs(contact.email)"}}}],
    )
    ada = contact(client, "ada@example.com")
    enrol(client, created["id"], ada)
    run(engine, clock)
    counts = client.get(f"{A}/{created['id']}").json()["counts"]
    assert (counts["failed"], counts["steps"]["calc"]["failed"]) == (1, 1)
    failed = journey(client, ada)
    assert failed["status"] == "failed"
    assert failed["error"]["step_id"] == "calc"
    assert failed["next"] is None
