"""Enrollments through the REST API on each backend: listed and filtered, added by hand
(reentry honoured, the filter not), removed; and a contact's journey through its automations.

Enrollments are moved along with the stores, the way a worker would leave them.
"""

from __future__ import annotations

from typing import Any

from hookhub.clock import FakeClock
from hookhub.services import Services
from tests.support.automations import (
    DAY,
    START,
    A,
    automation,
    clock,
    contact,
    enrol,
    log,
    move,
    series,
    template,
)

__all__ = ["clock"]  # the fixture, used by name


# -- enrollments ------------------------------------------------------------------------------


def test_enrollments_list_filter_and_page(client: Any, services: Services) -> None:
    created = automation(client, [{"id": "w", "wait": "1d"}], reentry="always")
    ada = contact(client, "ada@example.com")
    grace = contact(client, "grace@example.com")
    first = enrol(client, created["id"], ada)
    second = enrol(client, created["id"], "GRACE@example.com")
    third = enrol(client, created["id"], ada)  # reentry always
    assert second["email"] == "grace@example.com"
    assert second["contact_id"] == grace
    assert client.delete(f"{A}/{created['id']}/enrollments/{first['id']}").status_code == 204
    path = f"{A}/{created['id']}/enrollments"

    def ids(**params: Any) -> list[int]:
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["data"]]

    assert ids() == [first["id"], second["id"], third["id"]]
    assert ids(contact="ada@example.com") == [first["id"], third["id"]]
    assert ids(contact=str(grace)) == [second["id"]]
    assert ids(status="active") == [second["id"], third["id"]]
    assert ids(status="exited", contact=ada) == [first["id"]]
    assert ids(status="completed") == []
    page = client.get(path, params={"limit": 2}).json()
    rest = client.get(path, params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [e["id"] for e in page["data"] + rest["data"]] == ids()
    assert rest["next_cursor"] is None
    [removed] = client.get(path, params={"status": "exited"}).json()["data"]
    assert removed["exit_reason"] == "removed"
    assert removed["due_at"] is None


def test_adding_by_hand_honours_reentry_not_the_filter(client: Any, outbox: Any) -> None:
    picky = automation(
        client, [{"wait": "1d"}], filter="contact.attributes.PLAN == 'pro'", reentry="never"
    )
    free = contact(client, "free@example.com", PLAN="free")
    added = enrol(client, picky["id"], free)
    assert added["status"] == "active"
    assert added["trigger"] == {"type": "manual", "data": {"source": "api"}}
    [entered] = [m["data"] for m in outbox("automation.entered")]
    assert entered["enrollment_id"] == added["id"]
    assert entered["trigger"] == "manual"
    again = client.post(f"{A}/{picky['id']}/enrollments", json={"contact": free})
    assert again.status_code == 409
    assert "reentry is 'never'" in again.json()["error"]["message"]
    assert client.delete(f"{A}/{picky['id']}/enrollments/{added['id']}").status_code == 204
    assert client.post(f"{A}/{picky['id']}/enrollments", json={"contact": free}).status_code == 409

    after_exit = automation(client, [{"wait": "1d"}], reentry="after_exit", name="Again")
    one = enrol(client, after_exit["id"], free)
    refused = client.post(f"{A}/{after_exit['id']}/enrollments", json={"contact": free})
    assert refused.status_code == 409
    assert "enrolled now" in refused.json()["error"]["message"]
    assert client.delete(f"{A}/{after_exit['id']}/enrollments/{one['id']}").status_code == 204
    assert enrol(client, after_exit["id"], free)["id"] > one["id"]


def test_removing_twice_or_from_another_automation(client: Any, outbox: Any) -> None:
    first = automation(client, [{"wait": "1d"}])
    second = automation(client, [{"wait": "1d"}], name="Second")
    added = enrol(client, first["id"], contact(client, "ada@example.com"))
    response = client.delete(f"{A}/{second['id']}/enrollments/{added['id']}")
    assert response.status_code == 404
    assert client.delete(f"{A}/{first['id']}/enrollments/{added['id']}").status_code == 204
    response = client.delete(f"{A}/{first['id']}/enrollments/{added['id']}")
    assert response.status_code == 409
    assert "already ended (removed)" in response.json()["error"]["message"]
    [exited] = [m["data"] for m in outbox("automation.exited")]
    assert (exited["reason"], exited["email"]) == ("removed", "ada@example.com")


# -- a contact's journey ----------------------------------------------------------------------


def test_a_contacts_journey_says_where_what_was_done_and_what_comes_next(
    client: Any, services: Services, clock: FakeClock
) -> None:
    welcome = automation(client, series(template(client)))
    short = automation(client, [{"id": "only", "wait": "1h"}], name="Short")
    pending = automation(client, [{"id": "ping", "track_event": {"name": "x"}}], name="Pending")
    ada = contact(client, "ada@example.com")
    waiting = enrol(client, welcome["id"], ada)
    log(services, waiting, "hello", "send_email", "completed", START)
    log(services, waiting, "pause", "wait", "completed", START + 2 * DAY)
    log(services, waiting, "plan", "if", "completed", START + 2 * DAY)
    move(
        services,
        waiting["id"],
        step_id="order",
        step_started_at=START + 2 * DAY,
        due_at=START + 9 * DAY,
        waiting_for="order_placed",
    )
    finished = enrol(client, short["id"], ada)
    log(services, finished, "only", "wait", "completed", START + 3600)
    move(
        services,
        finished["id"],
        status="completed",
        step_id=None,
        due_at=None,
        finished_at=START + 3600,
        exit_reason="completed",
    )
    clock.advance(10)
    fresh = enrol(client, pending["id"], "ada@example.com")

    response = client.get(f"/api/v1/contacts/{ada}/automations")
    assert response.status_code == 200, response.text
    journey = response.json()["data"]
    assert [j["enrollment_id"] for j in journey] == [fresh["id"], finished["id"], waiting["id"]]
    now_due, done, in_wait_for = journey

    assert now_due["automation_name"] == "Pending"
    assert now_due["current"] == {"step_id": "ping", "kind": "track_event", "started_at": None}
    assert now_due["next"] == {
        "step_id": "ping",
        "kind": "track_event",
        "at": "2026-01-01T00:00:10.000Z",
        "running": False,
        "waiting_for": None,
    }

    assert done["status"] == "completed"
    assert done["current"] is None
    assert done["next"] is None
    assert done["done"] == [
        {
            "step_id": "only",
            "kind": "wait",
            "outcome": "completed",
            "at": "2026-01-01T01:00:00.000Z",
            "detail": {"note": "only completed"},
        }
    ]

    assert in_wait_for["automation_name"] == "Welcome series"
    assert [d["step_id"] for d in in_wait_for["done"]] == ["hello", "pause", "plan"]
    assert in_wait_for["current"] == {
        "step_id": "order",
        "kind": "wait_for",
        "started_at": "2026-01-03T00:00:00.000Z",
    }
    assert in_wait_for["next"] == {
        "step_id": "nudge",
        "kind": "send_email",
        "at": "2026-01-10T00:00:00.000Z",
        "running": False,
        "waiting_for": {
            "event_name": "order_placed",
            "timeout_at": "2026-01-10T00:00:00.000Z",
            "matched": False,
            "on_event": {"step_id": "thanks", "kind": "track_event", "at": None},
            "on_timeout": {"step_id": "nudge", "kind": "send_email", "at": None},
        },
    }
    page = client.get(f"/api/v1/contacts/{ada}/automations", params={"limit": 2}).json()
    rest = client.get(
        "/api/v1/contacts/ada@example.com/automations",
        params={"limit": 2, "cursor": page["next_cursor"]},
    ).json()
    assert [j["enrollment_id"] for j in page["data"] + rest["data"]] == [
        j["enrollment_id"] for j in journey
    ]


def test_a_journey_in_a_wait_names_the_step_after_it(
    client: Any, services: Services, clock: FakeClock
) -> None:
    created = automation(client, [{"id": "pause", "wait": "2d"}])
    enrolled = enrol(client, created["id"], contact(client, "ada@example.com"))
    move(services, enrolled["id"], step_started_at=START, due_at=START + 2 * DAY)
    [item] = client.get("/api/v1/contacts/ada@example.com/automations").json()["data"]
    assert item["next"] == {
        "step_id": None,  # the automation completes once the wait is over
        "kind": None,
        "at": "2026-01-03T00:00:00.000Z",
        "running": False,
        "waiting_for": None,
    }


# -- enrolled by a trigger, and a contact deleted ---------------------------------------------


def test_a_trigger_enrollment_shows_in_the_api_and_a_deleted_contact_leaves_it_ended(
    client: Any,
) -> None:
    leads = int(client.post("/api/v1/lists", json={"name": "leads"}).json()["id"])
    created = automation(
        client,
        [{"id": "hold", "wait": "1d"}],
        trigger={"type": "list.contact_added", "list_id": leads},
    )
    ada = client.post("/api/v1/contacts", json={"email": "ada@example.com", "list_ids": [leads]})
    assert ada.status_code == 201, ada.text
    [enrolled] = client.get(f"{A}/{created['id']}/enrollments").json()["data"]
    assert enrolled["trigger"]["type"] == "list.contact_added"
    assert enrolled["trigger"]["data"]["list_id"] == leads
    assert (enrolled["status"], enrolled["step_id"]) == ("active", "hold")
    [item] = client.get("/api/v1/contacts/ada@example.com/automations").json()["data"]
    assert item["enrollment_id"] == enrolled["id"]

    assert client.delete("/api/v1/contacts/ada@example.com").status_code == 204
    [ended] = client.get(f"{A}/{created['id']}/enrollments").json()["data"]
    assert ended["email"] is None  # the contact is gone; its enrollment stays for the counts
    by_id = client.get(f"{A}/{created['id']}/enrollments", params={"contact": ended["contact_id"]})
    assert [e["id"] for e in by_id.json()["data"]] == [ended["id"]]
    by_email = client.get(f"{A}/{created['id']}/enrollments", params={"contact": "ada@example.com"})
    assert by_email.status_code == 404
    assert (ended["status"], ended["exit_reason"]) == ("exited", "contact_deleted")
    counts = client.get(f"{A}/{created['id']}").json()["counts"]
    assert counts["steps"]["hold"]["exited"] == 1
    assert client.get("/api/v1/contacts/ada@example.com/automations").status_code == 404
    removed = client.delete(f"{A}/{created['id']}/enrollments/{ended['id']}")
    assert removed.status_code == 409
