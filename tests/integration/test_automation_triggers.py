"""Automation triggers on both backends: the change that fires a trigger enrols the contact in
its own transaction (and rolls back with it); deleting and unsubscribing end enrollments with
``automation.exited``; a tracked event wakes ``wait_for``; every path that writes the messages
(API, CSV import, tracking hits) fires them."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import func, select

from hookhub.crm.importer import ContactImporter
from hookhub.errors import Conflict
from hookhub.services import Services
from hookhub.store.schema_automation import automation_enrollments as enrollments_table
from tests.support.automations import (
    delete_automation,
    enrollments_of,
    make_automation,
    update_automation,
)
from tests.support.tracking import apply_all, make_campaign, path, sent_email

WAIT_FOR = [
    {
        "id": "await",
        "wait_for": {"event_name": "order_placed", "timeout": "7d"},
        "then": [],
        "else": [],
    },
]


def _contact(client: Any, email: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/v1/contacts", json={"email": email, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _list(client: Any, name: str) -> int:
    response = client.post("/api/v1/lists", json={"name": name})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _track(client: Any, email: str, name: str, **properties: Any) -> None:
    response = client.post(
        "/api/v1/events",
        json={"event_name": name, "identifiers": {"email": email}, "event_properties": properties},
    )
    assert response.status_code == 201, response.text


def _exits(outbox: Any) -> list[tuple[int, str]]:
    return sorted(
        (p["data"]["contact_id"], p["data"]["reason"]) for p in outbox("automation.exited")
    )


def test_contact_created_enrols_with_the_message_as_trigger(
    services: Services, client: Any, outbox: Any
) -> None:
    automation = make_automation(services, {"trigger": {"type": "contact.created"}})
    contact = _contact(client, "ada@example.com", attributes={"PLAN": "pro"})
    [enrollment] = enrollments_of(services, automation)
    assert enrollment["contact_id"] == contact["id"]
    assert enrollment["status"] == "active"
    assert enrollment["step_id"] == "pause"
    trigger = enrollment["trigger"]
    assert trigger["type"] == "contact.created"
    assert trigger["data"]["email"] == "ada@example.com"
    assert trigger["data"]["attributes"] == {"PLAN": "pro"}
    [entered] = outbox("automation.entered")
    assert entered["data"]["enrollment_id"] == enrollment["id"]
    assert entered["data"]["trigger"] == "contact.created"


def test_disabled_and_other_triggers_do_not_enrol(services: Services, client: Any) -> None:
    make_automation(services, {"trigger": {"type": "contact.created"}, "enabled": False})
    make_automation(services, {"trigger": {"type": "manual"}})
    make_automation(services, {"trigger": {"type": "event.tracked", "event_name": "x"}})
    _contact(client, "ada@example.com")
    assert enrollments_of(services) == []


@pytest.mark.parametrize(
    ("flt", "entered"),
    [
        ("contact.attributes.PLAN == 'pro'", True),
        ("contact.attributes.PLAN == 'free'", False),
        ("trigger.attributes.PLAN == 'pro' && contact.email == 'ada@example.com'", True),
        # Fails on this contact (a number compared with a string): keeps it out, fails nothing.
        ("contact.attributes.PLAN > `3`", False),
    ],
)
def test_filter_decides_entry(services: Services, client: Any, flt: str, entered: bool) -> None:
    automation = make_automation(services, {"trigger": {"type": "contact.created"}, "filter": flt})
    _contact(client, "ada@example.com", attributes={"PLAN": "pro"})
    assert len(enrollments_of(services, automation)) == (1 if entered else 0)


def test_list_triggers_match_their_list(services: Services, client: Any) -> None:
    wanted, other = _list(client, "wanted"), _list(client, "other")
    added = make_automation(
        services, {"trigger": {"type": "list.contact_added", "list_id": wanted}}
    )
    any_list = make_automation(services, {"trigger": {"type": "list.contact_added"}})
    removed = make_automation(
        services, {"trigger": {"type": "list.contact_removed", "list_id": wanted}}
    )
    contact = _contact(client, "ada@example.com")
    client.post(f"/api/v1/lists/{other}/contacts", json={"contact_ids": [contact["id"]]})
    assert enrollments_of(services, added) == []
    assert len(enrollments_of(services, any_list)) == 1
    client.post(f"/api/v1/lists/{wanted}/contacts", json={"emails": ["ada@example.com"]})
    [enrollment] = enrollments_of(services, added)
    assert enrollment["trigger"]["data"]["list_id"] == wanted
    assert enrollment["trigger"]["data"]["list_name"] == "wanted"
    assert enrollments_of(services, removed) == []
    response = client.delete(f"/api/v1/lists/{other}/contacts/{contact['id']}")
    assert response.status_code == 204, response.text
    assert enrollments_of(services, removed) == []
    response = client.delete(f"/api/v1/lists/{wanted}/contacts/{contact['id']}")
    assert response.status_code == 204, response.text
    [enrollment] = enrollments_of(services, removed)
    assert enrollment["trigger"]["type"] == "list.contact_removed"


def test_a_contact_created_in_a_list_fires_list_triggers(services: Services, client: Any) -> None:
    wanted = _list(client, "wanted")
    automation = make_automation(
        services,
        {
            "trigger": {"type": "list.contact_added", "list_id": wanted},
            "filter": f"contains(contact.list_ids, `{wanted}`)",
        },
    )
    _contact(client, "ada@example.com", list_ids=[wanted])
    assert len(enrollments_of(services, automation)) == 1


def test_event_tracked_matches_its_name(services: Services, client: Any) -> None:
    automation = make_automation(
        services,
        {
            "trigger": {"type": "event.tracked", "event_name": "order_placed"},
            "filter": "trigger.event_properties.total > `10`",
        },
    )
    _contact(client, "ada@example.com")
    _track(client, "ada@example.com", "page_viewed", total=50)
    _track(client, "ada@example.com", "order_placed", total=5)
    assert enrollments_of(services, automation) == []
    _track(client, "ada@example.com", "order_placed", total=50)
    [enrollment] = enrollments_of(services, automation)
    assert enrollment["trigger"]["data"]["event_name"] == "order_placed"


@pytest.mark.parametrize(("reentry", "expected"), [("never", 1), ("after_exit", 1), ("always", 3)])
def test_reentry_while_enrolled(
    services: Services, client: Any, reentry: str, expected: int
) -> None:
    automation = make_automation(
        services,
        {"trigger": {"type": "event.tracked", "event_name": "visit"}, "reentry": reentry},
    )
    _contact(client, "ada@example.com")
    for _ in range(3):
        _track(client, "ada@example.com", "visit")
    assert len(enrollments_of(services, automation)) == expected


@pytest.mark.parametrize(("reentry", "expected"), [("never", 1), ("after_exit", 2)])
def test_reentry_after_exit(services: Services, client: Any, reentry: str, expected: int) -> None:
    wanted = _list(client, "wanted")
    automation = make_automation(
        services,
        {
            "trigger": {"type": "list.contact_added", "list_id": wanted},
            "reentry": reentry,
            "exit_on_unsubscribe": True,
        },
    )
    contact = _contact(client, "ada@example.com", list_ids=[wanted])
    client.patch(f"/api/v1/contacts/{contact['id']}", json={"unsubscribed": True})
    client.delete(f"/api/v1/lists/{wanted}/contacts/{contact['id']}")
    client.post(f"/api/v1/lists/{wanted}/contacts", json={"contact_ids": [contact["id"]]})
    rows = enrollments_of(services, automation)
    assert len(rows) == expected
    assert rows[0]["status"] == "exited"


def test_enrollment_rolls_back_with_its_change(services: Services, client: Any) -> None:
    automation = make_automation(services, {"trigger": {"type": "contact.created"}})
    seen: list[int] = []

    def create_then_fail() -> None:
        with services.crm.transaction() as tx:
            tx.create_contact("ada@example.com")
            query = select(func.count()).select_from(enrollments_table)
            seen.append(int(tx.conn.execute(query).scalar_one()))
            raise Conflict("changed my mind")

    with pytest.raises(Conflict):
        create_then_fail()
    assert seen == [1]  # enrolled in the change's transaction...
    assert enrollments_of(services, automation) == []
    _contact(client, "ada@example.com")
    assert len(enrollments_of(services, automation)) == 1


def test_deleting_a_contact_ends_its_enrollments(
    services: Services, client: Any, outbox: Any
) -> None:
    first = make_automation(services, {"trigger": {"type": "contact.created"}})
    second = make_automation(
        services, {"trigger": {"type": "contact.created"}, "exit_on_unsubscribe": False}
    )
    ada = _contact(client, "ada@example.com")
    bob = _contact(client, "bob@example.com")
    update_automation(services, second, {"enabled": False})  # held, but still ended
    services.automation_registry.invalidate()
    response = client.delete(f"/api/v1/contacts/{ada['id']}")
    assert response.status_code == 204, response.text
    for automation in (first, second):
        by_contact = {e["contact_id"]: e for e in enrollments_of(services, automation)}
        assert by_contact[ada["id"]]["status"] == "exited"
        assert by_contact[ada["id"]]["exit_reason"] == "contact_deleted"
        assert by_contact[bob["id"]]["status"] == "active"
    assert _exits(outbox) == [(ada["id"], "contact_deleted")] * 2
    exited = outbox("automation.exited")[0]["data"]
    assert exited["email"] == "ada@example.com"
    assert exited["step_id"] == "pause"


def test_unsubscribing_ends_only_exit_on_unsubscribe_and_enrols_unsubscribe_triggers(
    services: Services, client: Any, outbox: Any
) -> None:
    exits = make_automation(services, {"trigger": {"type": "contact.created"}})
    stays = make_automation(
        services, {"trigger": {"type": "contact.created"}, "exit_on_unsubscribe": False}
    )
    # Triggered by the unsubscribe itself: enrols even though it exits on unsubscribe.
    goodbye = make_automation(services, {"trigger": {"type": "contact.unsubscribed"}})
    ada = _contact(client, "ada@example.com")
    response = client.patch(f"/api/v1/contacts/{ada['id']}", json={"unsubscribed": True})
    assert response.status_code == 200, response.text
    [ended] = enrollments_of(services, exits)
    assert (ended["status"], ended["exit_reason"]) == ("exited", "unsubscribed")
    assert enrollments_of(services, stays)[0]["status"] == "active"
    [entered] = enrollments_of(services, goodbye)
    assert entered["status"] == "active"
    assert entered["trigger"]["data"]["source"] == "api"
    assert _exits(outbox) == [(ada["id"], "unsubscribed")]


def test_tracked_event_wakes_wait_for(services: Services, client: Any) -> None:
    automation = make_automation(
        services, {"trigger": {"type": "contact.created"}, "steps": WAIT_FOR}
    )
    ada = _contact(client, "ada@example.com")
    bob = _contact(client, "bob@example.com")
    with services.db.write() as conn:  # both wait, as the engine leaves them
        conn.execute(
            enrollments_table.update().values(
                waiting_for="order_placed", step_started_at=1.0, due_at=9e9
            )
        )
    _track(client, "ada@example.com", "page_viewed")
    _track(client, "ada@example.com", "order_placed")
    by_contact = {e["contact_id"]: e for e in enrollments_of(services, automation)}
    assert by_contact[ada["id"]]["matched"]
    assert by_contact[ada["id"]]["due_at"] < 9e9
    assert not by_contact[bob["id"]]["matched"]
    assert by_contact[bob["id"]]["due_at"] == 9e9


def test_a_deleted_automation_is_not_enrolled_into_from_a_stale_cache(
    services: Services, client: Any
) -> None:
    automation = make_automation(services, {"trigger": {"type": "contact.created"}})
    services.automation_registry.index()  # cached
    delete_automation(services, automation)  # another process, say: this cache is stale
    _contact(client, "ada@example.com")
    assert enrollments_of(services) == []


def test_an_edited_automation_is_used_as_stored(services: Services, client: Any) -> None:
    automation = make_automation(
        services, {"trigger": {"type": "contact.created"}, "filter": "`true`"}
    )
    services.automation_registry.index()
    update_automation(services, automation, {"filter": "contact.attributes.PLAN == 'pro'"})
    _contact(client, "ada@example.com", attributes={"PLAN": "free"})
    _contact(client, "bob@example.com", attributes={"PLAN": "pro"})
    [enrollment] = enrollments_of(services, automation)
    assert enrollment["trigger"]["data"]["email"] == "bob@example.com"


def test_csv_import_fires_created_and_list_triggers(services: Services, client: Any) -> None:
    wanted = _list(client, "wanted")
    created = make_automation(
        services,
        {"trigger": {"type": "contact.created"}, "filter": "contact.attributes.CITY == 'Rome'"},
    )
    added = make_automation(
        services, {"trigger": {"type": "list.contact_added", "list_id": wanted}}
    )
    _contact(client, "old@example.com")
    rows = "email,city\n" + "".join(
        f"c{n}@example.com,{'Rome' if n % 2 else 'Oslo'}\n" for n in range(40)
    )
    rows += "old@example.com,Rome\n"
    importer = ContactImporter(services.crm, batch_size=7)
    report = importer.run(io.BytesIO(rows.encode()), list_id=wanted)
    assert report.created == 40
    assert len(enrollments_of(services, created)) == 20
    assert len(enrollments_of(services, added)) == 41


def test_opens_and_clicks_match_their_campaign(services: Services, client: Any) -> None:
    campaign = make_campaign(services)
    other = make_campaign(services, "Spring sale")
    opened = make_automation(
        services, {"trigger": {"type": "email.opened", "campaign_id": campaign}}
    )
    clicked = make_automation(services, {"trigger": {"type": "email.clicked"}})
    mine = sent_email(services, "ada@example.com", campaign_id=campaign)
    theirs = sent_email(services, "bob@example.com", campaign_id=other)
    stranger = sent_email(services, "eve@example.com", contact=False)
    for email_id in (theirs, mine, stranger):
        assert client.get(path(services, "o", email_id)).status_code == 200
    assert client.get(path(services, "c", theirs), follow_redirects=False).status_code == 302
    apply_all(services)
    [enrollment] = enrollments_of(services, opened)
    assert enrollment["trigger"]["data"]["email"] == "ada@example.com"
    assert enrollment["trigger"]["data"]["campaign_id"] == campaign
    [enrollment] = enrollments_of(services, clicked)
    assert enrollment["trigger"]["data"]["email"] == "bob@example.com"
    assert enrollment["trigger"]["data"]["url"].startswith("https://shop.example.com/")


def test_unsubscribe_link_ends_enrollments(services: Services, client: Any, outbox: Any) -> None:
    automation = make_automation(services, {"trigger": {"type": "contact.created"}})
    email_id = sent_email(services, "ada@example.com")
    response = client.post(path(services, "u", email_id), content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 200
    apply_all(services)
    [enrollment] = enrollments_of(services, automation)
    assert enrollment["exit_reason"] == "unsubscribed"


def test_inbound_rules_fire_triggers_and_a_failing_rule_enrols_nobody(
    services: Services, client: Any
) -> None:
    from tests.support.inbound import create_hook, raw_client

    members = _list(client, "members")
    created = make_automation(services, {"trigger": {"type": "contact.created"}})
    added = make_automation(
        services, {"trigger": {"type": "list.contact_added", "list_id": members}}
    )
    doomed = make_automation(services, {"trigger": {"type": "manual"}})
    rules = [
        {"contact": {"email": "email"}, "add_to_lists": [members]},
        # Fails at run time, after the first rule created the contact: all of it rolls back.
        {"when": "fail", "contact": {"email": "email"}, "start_automation": doomed},
    ]
    hook = create_hook(client, "generic", rules=rules)
    delete_automation(services, doomed)
    with raw_client(client) as provider:
        for body in ({"email": "ada@example.com"}, {"email": "bob@example.com", "fail": True}):
            assert provider.post(hook.url, json=body).status_code == 202
    services.inbound.runner.process_backlog()
    statuses = sorted(
        r["status"]
        for r in client.get(f"/api/v1/inbound-webhooks/{hook.id}/requests").json()["data"]
    )
    assert statuses == ["failed", "processed"]
    assert client.get("/api/v1/contacts/bob@example.com").status_code == 404
    ada = client.get("/api/v1/contacts/ada@example.com").json()
    assert [e["contact_id"] for e in enrollments_of(services, created)] == [ada["id"]]
    assert [e["contact_id"] for e in enrollments_of(services, added)] == [ada["id"]]


def test_steps_fire_triggers_and_wake_wait_for(services: Services, client: Any) -> None:
    """A track_event step of one automation enrols into another and wakes a third's wait_for,
    with the real engine on an injected clock."""
    import time

    from hookhub.automation.engine import AutomationEngine
    from hookhub.clock import FakeClock

    waiting = make_automation(
        services, {"trigger": {"type": "list.contact_added"}, "steps": WAIT_FOR}
    )
    welcome = make_automation(
        services,
        {
            "trigger": {"type": "event.tracked", "event_name": "go"},
            "steps": [{"id": "mark", "track_event": {"name": "order_placed"}}],
        },
    )
    follow = make_automation(
        services, {"trigger": {"type": "event.tracked", "event_name": "order_placed"}}
    )
    members = _list(client, "members")
    clock = FakeClock(time.time() + 1)
    engine = AutomationEngine(
        services.db,
        services.outbox,
        services.automation_registry,
        clock,
        email_from="shop@example.com",
    )
    ada = _contact(client, "ada@example.com", list_ids=[members])
    engine.run_due()
    [waits] = enrollments_of(services, waiting)
    assert waits["waiting_for"] == "order_placed"
    assert not waits["matched"]
    _track(client, "ada@example.com", "go")
    clock.set(time.time() + 1)
    engine.run_due()  # welcome tracks order_placed: follow enrols, the wait_for is matched
    [done] = enrollments_of(services, welcome)
    assert done["status"] == "completed"
    [entered] = enrollments_of(services, follow)
    assert entered["contact_id"] == ada["id"]
    assert entered["trigger"]["data"]["event_name"] == "order_placed"
    [waits] = enrollments_of(services, waiting)
    assert waits["matched"]
    clock.advance(1)
    engine.run_due()
    [waits] = enrollments_of(services, waiting)
    assert waits["status"] == "completed"


@pytest.mark.parametrize(
    ("reentry", "entry_key", "expected"),
    [
        ("never", None, [1, 3]),  # bob was enrolled once before
        ("after_exit", None, [1, 2, 3]),  # bob's earlier enrollment has ended
        ("always", None, [1, 1, 2, 3]),
        ("always", "k", [1, 2, 3]),  # once per key
    ],
)
def test_a_batch_enrols_as_one_enroll_after_another(
    services: Services, client: Any, reentry: str, entry_key: str | None, expected: list[int]
) -> None:
    from datetime import UTC, datetime

    from hookhub.automation.batch_entry import Entry, enroll_many
    from hookhub.automation.enroll import end_enrollments, enroll

    automation = make_automation(
        services,
        {"trigger": {"type": "manual"}, "reentry": reentry, "filter": "trigger.skip != `true`"},
    )
    compiled = services.automation_registry.index().by_id[automation]
    now = datetime.now(UTC)
    with services.crm.transaction() as tx:
        ada, bob, eve = (tx.create_contact(f"{n}@example.com")[0] for n in ("ada", "bob", "eve"))
        enroll(tx, compiled, bob, trigger_type="manual", trigger={})
        end_enrollments(tx, contact_id=bob.id, email=bob.email, reason="removed")
        entries = [
            Entry(ada, {"n": 1}, now),
            Entry(ada, {"n": 1}, now),
            Entry(ada, {"skip": True}, now),
            Entry(bob, {"n": 2}, now),
            Entry(eve, {"n": 3}, now),
        ]
        enroll_many(tx, compiled, entries, trigger_type="manual", entry_key=entry_key)
    rows = enrollments_of(services, automation)[1:]  # after bob's first
    by_id = {ada.id: 1, bob.id: 2, eve.id: 3}
    assert [by_id[r["contact_id"]] for r in rows] == expected
    assert all(r["entry_key"] == entry_key and r["status"] == "active" for r in rows)
    assert [r["trigger"]["data"]["n"] for r in rows] == expected
