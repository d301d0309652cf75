"""The automations REST API on each backend: definitions validated at save, counts, edits that
keep enrollments by step id, pause and resume, delete, scopes.

The step machine lands beside this API, so enrollments are moved along here with the stores
(the step log and the enrollment row), the way a worker would leave them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from hookhub.clock import FakeClock
from hookhub.keys import Scope
from hookhub.services import Services
from hookhub.store.schema import endpoints
from hookhub.store.schema_automation import automation_enrollments, automation_step_log
from tests.support.automations import (
    DAY,
    START,
    A,
    a_list,
    automation,
    clock,
    contact,
    count,
    enrol,
    log,
    move,
    series,
    template,
)

__all__ = ["clock"]  # the fixture, used by name

# -- definitions ------------------------------------------------------------------------------


def test_a_saved_automation_reads_back_normalized(client: Any) -> None:
    leads = a_list(client)
    created = automation(
        client,
        series(template(client)),
        trigger={"type": "list.contact_added", "list_id": leads},
        filter="contact.attributes.COUNTRY == 'IT'",
        reentry="after_exit",
    )
    assert created["trigger"] == {"type": "list.contact_added", "list_id": leads}
    assert created["filter"] == "contact.attributes.COUNTRY == 'IT'"
    assert created["reentry"] == "after_exit"
    assert created["exit_on_unsubscribe"] is True
    assert created["enabled"] is True
    assert created["version"] == 1
    assert created["steps"][2]["then"][0]["id"] == "track_event-1"  # made from kind and order
    again = client.get(f"{A}/{created['id']}").json()
    assert {k: v for k, v in again.items() if k != "counts"} == {
        k: v for k, v in created.items() if k != "counts"
    }
    assert list(again["counts"]["steps"]) == [
        "hello",
        "pause",
        "plan",
        "track_event-1",
        "order",
        "thanks",
        "nudge",
        "done",
    ]
    listed = client.get(A).json()
    assert [a["id"] for a in listed["data"]] == [created["id"]]
    assert listed["data"][0]["counts"] is None


@pytest.mark.parametrize(
    ("steps", "trigger", "path", "words"),
    [
        ([{"send_later": {}}], None, "steps[0]", "unknown step kind"),
        ([{"wait": "1d"}, {"if": "contact.(("}], None, "steps[1].if", ""),
        (
            [{"id": "a", "wait": "1d"}, {"if": "`true`", "then": [{"id": "a", "exit": True}]}],
            None,
            "steps[1].then[0].id",
            "'a' is the id of another step",
        ),
        ([{"send_email": {"template_id": 4242}}], None, "steps[0].send_email.template_id", "4242"),
        (
            [{"wait": "1h"}, {"if": "`true`", "else": [{"id": "join", "add_to_list": 777}]}],
            None,
            "steps[1].else[0].add_to_list",
            "no list 777 (step 'join')",
        ),
        ([{"wait": "1h"}], {"type": "list.contact_added", "list_id": 31337}, "trigger.list_id", ""),
        (
            [{"wait_until": {"time": "09:00", "timezone": "Mars/Olympus_Mons"}}],
            None,
            "steps[0].wait_until.timezone",
            "time zone",
        ),
        ([{"wait": "2 fortnights"}], None, "steps[0].wait", "duration"),
        ([{"wait": "1h"}], {"type": "page.viewed"}, "trigger.type", "not one of"),
    ],
)
def test_an_invalid_definition_is_a_422_naming_the_place(
    client: Any,
    services: Services,
    steps: list[dict[str, Any]],
    trigger: dict[str, Any] | None,
    path: str,
    words: str,
) -> None:
    body = {"name": "bad", "trigger": trigger or {"type": "manual"}, "steps": steps}
    response = client.post(A, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"]["path"] == path
    assert error["message"].startswith(f"{path}: ")
    assert words in error["message"]
    assert count(services, automation_step_log) == 0
    assert client.get(A).json()["data"] == []


def test_a_missing_template_says_which_step_refers_to_it(client: Any) -> None:
    steps = [
        {"wait": "1h"},
        {"if": "`true`", "then": [{"id": "mail", "send_email": {"template_id": 9}}]},
    ]
    error = client.post(A, json={"name": "x", "trigger": {"type": "manual"}, "steps": steps})
    details = error.json()["error"]["details"]
    assert details == {
        "path": "steps[1].then[0].send_email.template_id",
        "step_id": "mail",
        "template_id": 9,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"trigger": {"type": "manual"}, "steps": [{"wait": "1h"}]},
        {"name": "x", "trigger": {"type": "manual"}, "steps": []},
        {"name": "x", "trigger": {"type": "manual"}, "steps": {"wait": "1h"}},
        {"name": "x", "trigger": "manual", "steps": [{"wait": "1h"}]},
        {"name": "x", "trigger": {"type": "manual"}, "steps": [{"wait": "1h"}], "enabled": "yes"},
        {"name": "x", "trigger": {"type": "manual"}, "steps": [{"wait": "1h"}], "reentry": "x"},
        {"name": "x", "trigger": {"type": "manual"}, "steps": [1]},
        {"name": " ", "trigger": {"type": "manual"}, "steps": [{"wait": "1h"}]},
        {"name": "x", "trigger": {"type": "manual"}, "steps": [{"wait": "1h"}], "color": "red"},
    ],
)
def test_malformed_bodies_are_422(client: Any, body: dict[str, Any]) -> None:
    response = client.post(A, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


def test_bad_json_is_a_400_and_nothing_is_a_500(client: Any) -> None:
    automation_id = automation(client, [{"wait": "1h"}])["id"]
    for method, path in (
        ("POST", A),
        ("PATCH", f"{A}/{automation_id}"),
        ("POST", f"{A}/{automation_id}/enrollments"),
    ):
        response = client.request(
            method, path, content=b'{"name": ', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (method, path, response.text)
        assert response.json()["error"]["code"] == "invalid_json"
    for path, params in (
        (A, {"cursor": "nonsense"}),
        (f"{A}/{automation_id}/enrollments", {"status": "asleep"}),
        (f"{A}/{automation_id}/enrollments", {"contact": "nobody"}),
        ("/api/v1/contacts/nobody/automations", {}),
        (f"{A}/0", {}),
        (f"{A}/{2**63}", {}),
    ):
        response = client.get(path, params=params)
        assert 400 <= response.status_code < 500, (path, params, response.text)
        assert "error" in response.json()


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ('[{"add_to_list": 9223372036854775808}]', "steps[0].add_to_list"),
        ('[{"send_email": {"template_id": 1' + "0" * 30 + "}}]", "steps[0].send_email.template_id"),
        ('[{"wait": 1' + "0" * 400 + "}]", "steps[0].wait"),
        ('[{"wait": 1e400}]', "steps[0].wait"),
        ('[{"wait": -5}]', "steps[0].wait"),
        ('[{"id": "a\\n", "wait": "1d"}]', "steps[0].id"),
    ],
)
def test_numbers_out_of_range_are_422_naming_the_place(client: Any, raw: str, path: str) -> None:
    body = '{"name": "x", "trigger": {"type": "manual"}, "steps": ' + raw + "}"
    response = client.post(A, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["path"] == path


def test_unknown_ids_are_404(client: Any) -> None:
    someone = contact(client, "ada@example.com")
    for method, path, body in (
        ("GET", f"{A}/999", None),
        ("PATCH", f"{A}/999", {"name": "x"}),
        ("DELETE", f"{A}/999", None),
        ("GET", f"{A}/999/enrollments", None),
        ("POST", f"{A}/999/enrollments", {"contact": someone}),
        ("DELETE", f"{A}/999/enrollments/1", None),
        ("GET", "/api/v1/contacts/nobody@example.com/automations", None),
    ):
        response = client.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    automation_id = automation(client, [{"wait": "1h"}])["id"]
    response = client.post(
        f"{A}/{automation_id}/enrollments", json={"contact": "ghost@example.com"}
    )
    assert response.status_code == 404
    assert "ghost@example.com" in response.json()["error"]["message"]
    response = client.delete(f"{A}/{automation_id}/enrollments/12345")
    assert response.status_code == 404


# -- counts -----------------------------------------------------------------------------------


def test_counts_per_step_and_in_total(client: Any, services: Services, clock: FakeClock) -> None:
    steps = [
        {"id": "a", "send_email": {"template_id": template(client)}},
        {"id": "b", "wait": "1d"},
        {"id": "c", "track_event": {"name": "welcomed"}},
    ]
    automation_id = automation(client, steps)["id"]
    people = [enrol(client, automation_id, contact(client, f"p{i}@example.com")) for i in range(5)]
    now = START
    for person in people:
        log(services, person, "a", "send_email", "completed", now)
    for waiting in people[:3]:
        move(services, waiting["id"], step_id="b", step_started_at=now, due_at=now + DAY)
    log(services, people[3], "b", "wait", "completed", now + DAY)
    log(services, people[3], "c", "track_event", "completed", now + DAY)
    move(
        services,
        people[3]["id"],
        status="completed",
        step_id=None,
        due_at=None,
        finished_at=now + DAY,
        exit_reason="completed",
    )
    log(services, people[4], "b", "wait", "completed", now + DAY)
    log(services, people[4], "c", "track_event", "failed", now + DAY)
    move(
        services,
        people[4]["id"],
        status="failed",
        step_id="c",
        due_at=None,
        finished_at=now + DAY,
        exit_reason="failed",
    )
    assert client.delete(f"{A}/{automation_id}/enrollments/{people[0]['id']}").status_code == 204

    counts = client.get(f"{A}/{automation_id}").json()["counts"]
    assert {k: counts[k] for k in ("entered", "active", "completed", "exited", "failed")} == {
        "entered": 5,
        "active": 2,
        "completed": 1,
        "exited": 1,
        "failed": 1,
    }
    assert counts["steps"]["a"] == {
        "kind": "send_email",
        "entered": 5,
        "waiting": 0,
        "completed": 5,
        "skipped": 0,
        "failed": 0,
        "exited": 0,
    }
    assert counts["steps"]["b"] == {
        "kind": "wait",
        "entered": 5,
        "waiting": 2,
        "completed": 2,
        "skipped": 0,
        "failed": 0,
        "exited": 1,  # removed by hand while waiting
    }
    assert counts["steps"]["c"] == {
        "kind": "track_event",
        "entered": 2,
        "waiting": 0,
        "completed": 1,
        "skipped": 0,
        "failed": 1,
        "exited": 0,
    }


# -- edits, pause and resume ------------------------------------------------------------------


def test_an_edit_keeps_enrollments_by_step_id_and_ends_those_on_removed_steps(
    client: Any, services: Services, outbox: Any, clock: FakeClock
) -> None:
    steps = [
        {"id": "first", "wait": "1d"},
        {"id": "second", "wait": "2d"},
        {"id": "third", "exit": True},
    ]
    automation_id = automation(client, steps)["id"]
    stays = enrol(client, automation_id, contact(client, "stays@example.com"))
    goes = enrol(client, automation_id, contact(client, "goes@example.com"))
    move(services, stays["id"], step_id="first", step_started_at=START, due_at=START + DAY)
    move(services, goes["id"], step_id="second", step_started_at=START, due_at=START + DAY)
    clock.advance(60)

    edited = client.patch(
        f"{A}/{automation_id}",
        json={"steps": [{"id": "first", "wait": "3d"}, {"id": "third", "exit": True}]},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2
    assert edited.json()["counts"]["exited"] == 1

    rows = {e["id"]: e for e in client.get(f"{A}/{automation_id}/enrollments").json()["data"]}
    assert rows[stays["id"]]["status"] == "active"
    assert rows[stays["id"]]["step_id"] == "first"
    assert rows[stays["id"]]["step_kind"] == "wait"
    assert rows[goes["id"]]["status"] == "exited"
    assert rows[goes["id"]]["exit_reason"] == "step_removed"
    assert rows[goes["id"]]["finished_at"] == "2026-01-01T00:01:00.000Z"
    exits = [m["data"] for m in outbox("automation.exited")]
    assert exits == [
        {
            "contact_id": goes["contact_id"],
            "email": "goes@example.com",
            "automation_id": automation_id,
            "automation_name": "Welcome series",
            "enrollment_id": goes["id"],
            "reason": "step_removed",
            "step_id": "second",
            "error": None,
        }
    ]


def test_an_edit_stranding_many_ends_them_all_in_its_transaction(
    client: Any, services: Services, outbox: Any
) -> None:
    services.automations.end_batch = 2
    created = automation(client, [{"id": "old", "wait": "1d"}, {"id": "kept", "wait": "1d"}])
    people = [enrol(client, created["id"], contact(client, f"p{i}@example.com")) for i in range(5)]
    move(services, people[0]["id"], step_id="kept")
    edited = client.patch(f"{A}/{created['id']}", json={"steps": [{"id": "kept", "wait": "1d"}]})
    assert edited.status_code == 200, edited.text
    counts = edited.json()["counts"]
    assert (counts["active"], counts["exited"]) == (1, 4)
    assert counts["steps"] == {
        "kept": {
            "kind": "wait",
            "entered": 1,
            "waiting": 1,
            "completed": 0,
            "skipped": 0,
            "failed": 0,
            "exited": 0,
        }
    }
    exits = [m["data"] for m in outbox("automation.exited")]
    assert sorted(e["enrollment_id"] for e in exits) == [p["id"] for p in people[1:]]
    assert {(e["reason"], e["step_id"]) for e in exits} == {("step_removed", "old")}


def test_an_edit_that_does_not_validate_changes_nothing(client: Any, services: Services) -> None:
    created = automation(client, [{"id": "first", "wait": "1d"}, {"id": "second", "wait": "1d"}])
    enrolled = enrol(client, created["id"], contact(client, "ada@example.com"))
    move(services, enrolled["id"], step_id="second")
    response = client.patch(
        f"{A}/{created['id']}", json={"steps": [{"id": "first", "wait": "soon"}]}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"]["path"] == "steps[0].wait"
    for field in ("name", "steps", "trigger", "enabled", "reentry"):
        refused = client.patch(f"{A}/{created['id']}", json={field: None})
        assert refused.status_code == 422, field
    after = client.get(f"{A}/{created['id']}").json()
    assert after["version"] == 1
    assert after["steps"] == created["steps"]
    assert after["counts"]["active"] == 1


def test_a_patch_changes_what_is_given(client: Any) -> None:
    leads = a_list(client)
    created = automation(client, [{"wait": "1h"}], filter="contact.attributes.A == 'b'")
    patched = client.patch(
        f"{A}/{created['id']}",
        json={
            "name": "Renamed",
            "trigger": {"type": "list.contact_removed", "list_id": leads},
            "filter": None,
            "reentry": "always",
            "exit_on_unsubscribe": False,
        },
    ).json()
    assert patched["name"] == "Renamed"
    assert patched["trigger"] == {"type": "list.contact_removed", "list_id": leads}
    assert patched["filter"] is None
    assert patched["reentry"] == "always"
    assert patched["exit_on_unsubscribe"] is False
    assert patched["steps"] == created["steps"]


def test_disabling_holds_enrollments_and_enabling_resumes(client: Any, services: Services) -> None:
    created = automation(client, [{"id": "hold", "wait": "1d"}, {"id": "next", "wait": "1d"}])
    enrolled = enrol(client, created["id"], contact(client, "ada@example.com"))
    paused = client.patch(f"{A}/{created['id']}", json={"enabled": False}).json()
    assert paused["enabled"] is False
    assert paused["steps"] == created["steps"]
    [held] = client.get(f"{A}/{created['id']}/enrollments").json()["data"]
    assert (held["status"], held["step_id"], held["due_at"]) == (
        "active",
        "hold",
        enrolled["due_at"],
    )
    # A paused automation still takes contacts by hand: they wait with the others.
    enrol(client, created["id"], contact(client, "grace@example.com"))
    resumed = client.patch(f"{A}/{created['id']}", json={"enabled": True}).json()
    assert resumed["enabled"] is True
    assert resumed["counts"]["active"] == 2
    assert resumed["version"] == 3


# -- delete -----------------------------------------------------------------------------------


def test_delete_ends_active_enrollments_in_batches_then_goes_with_its_endpoints(
    client: Any, services: Services, outbox: Any
) -> None:
    services.automations.end_batch = 2
    created = automation(client, [{"id": "w", "wait": "1d"}])
    people = [enrol(client, created["id"], contact(client, f"p{i}@example.com")) for i in range(5)]
    move(
        services, people[4]["id"], status="completed", step_id=None, due_at=None, finished_at=START
    )
    other = automation(client, [{"wait": "1d"}], name="Other")
    with services.db.write() as conn:
        for owner in (created["id"], other["id"]):
            conn.execute(
                insert(endpoints).values(
                    url="https://crm.example.com/hook",
                    event_types="[]",
                    headers="{}",
                    secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    created_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                    automation_id=owner,
                    automation_step="webhook-1",
                )
            )

    assert client.delete(f"{A}/{created['id']}").status_code == 204
    assert client.get(f"{A}/{created['id']}").status_code == 404
    exits = [m["data"] for m in outbox("automation.exited")]
    assert sorted(e["enrollment_id"] for e in exits) == [p["id"] for p in people[:4]]
    assert {e["reason"] for e in exits} == {"removed"}
    assert {e["step_id"] for e in exits} == {"w"}
    with services.db.read() as conn:
        owners = [row.automation_id for row in conn.execute(select(endpoints.c.automation_id))]
        left = conn.execute(select(func.count()).select_from(automation_enrollments)).scalar_one()
    assert owners == [other["id"]]
    assert left == 0
    assert client.delete(f"{A}/{created['id']}").status_code == 404


# -- scopes -----------------------------------------------------------------------------------


def test_a_read_key_reads_and_cannot_change(
    client: Any, anonymous: Any, services: Services
) -> None:
    created = automation(client, [{"wait": "1d"}])
    ada = contact(client, "ada@example.com")
    enrolled = enrol(client, created["id"], ada)
    _, read_key = services.keys.create("reader", scope=Scope.READ)
    _, write_key = services.keys.create("writer", scope=Scope.WRITE)
    reader = {"Authorization": f"Bearer {read_key}"}
    writer = {"Authorization": f"Bearer {write_key}"}
    for path in (
        A,
        f"{A}/{created['id']}",
        f"{A}/{created['id']}/enrollments",
        f"/api/v1/contacts/{ada}/automations",
    ):
        assert anonymous.get(path, headers=reader).status_code == 200, path
    for method, path, body in (
        ("POST", A, {"name": "x", "trigger": {"type": "manual"}, "steps": [{"wait": "1d"}]}),
        ("PATCH", f"{A}/{created['id']}", {"enabled": False}),
        ("POST", f"{A}/{created['id']}/enrollments", {"contact": ada}),
        ("DELETE", f"{A}/{created['id']}/enrollments/{enrolled['id']}", None),
        ("DELETE", f"{A}/{created['id']}", None),
    ):
        response = anonymous.request(method, path, headers=reader, json=body)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "forbidden"
    assert client.get(f"{A}/{created['id']}").json()["counts"]["active"] == 1
    patched = anonymous.patch(f"{A}/{created['id']}", headers=writer, json={"enabled": False})
    assert patched.status_code == 200
