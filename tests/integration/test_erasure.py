"""Erasure (``POST /contacts/{ref}/erase``): the contact is deleted and its personal data goes
from every place Hookhub keeps some; what was not sent yet is never sent (DESIGN.md,
"Origins and erasure")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hookhub.core.catalog import CATALOG
from hookhub.crm.erasure import ContactEraser
from hookhub.services import Services
from hookhub.store.schema import custom_events, deliveries, inbound_requests
from hookhub.store.schema_automation import automation_enrollments
from hookhub.store.schema_email import emails
from tests.support.delivery import api_client, running_worker, verify
from tests.support.inbound import create_hook, messages_of, raw_client
from tests.support.receiver import running_receiver
from tests.support.schema_check import errors

ADA = "ada@example.com"


def _seed(client: Any, services: Services) -> int:
    """Ada with messages, an email, an inbound request, events and an enrollment; Bob with a
    message of his own that must survive."""
    list_id = client.post("/api/v1/lists", json={"name": "VIP"}).json()["id"]
    automation = client.post(
        "/api/v1/automations",
        json={
            "name": "Welcome",
            "trigger": {"type": "list.contact_added", "list_id": list_id},
            "steps": [{"wait": "1d"}],
        },
    )
    assert automation.status_code == 201, automation.text
    hook = create_hook(client, "generic", name="shop", rules=[{"contact": {"email": "email"}}])
    with raw_client(client) as sender:
        sent = sender.post(hook.path, json={"email": ADA, "note": "ordered shoes"})
        assert sent.status_code == 202, sent.text
    assert services.inbound.process_backlog() == 1
    ada = client.get(f"/api/v1/contacts/{ADA}").json()["id"]
    patched = client.patch(
        f"/api/v1/contacts/{ada}", json={"attributes": {"FIRSTNAME": "Ada"}, "list_ids": [list_id]}
    )
    assert patched.status_code == 200, patched.text
    for name in ("viewed", "ordered"):
        tracked = client.post(
            "/api/v1/events", json={"event_name": name, "identifiers": {"email": ADA}}
        )
        assert tracked.status_code == 201, tracked.text
    queued = client.post(
        "/api/v1/emails",
        json={"to": [{"email": ADA, "name": "Ada"}], "subject": "Hi Ada", "html": "<p>Hi</p>"},
    )
    assert queued.status_code == 202, queued.text
    assert client.post("/api/v1/contacts", json={"email": "bob@example.com"}).status_code == 201
    return int(ada)


def _rows(services: Services, query: Any) -> list[Any]:
    with services.db.read() as conn:
        return list(conn.execute(query))


async def test_erase_cancels_pending_deliveries_and_sends_only_the_id(
    services: Services,
) -> None:
    async with running_receiver() as receiver:
        endpoint = services.endpoints.create({"url": receiver.url, "events": ["contact.*"]})
        with api_client(services) as client:
            ada = _seed(client, services)
            pending = _rows(services, select(deliveries.c.status))
            assert pending
            assert {r.status for r in pending} == {"pending"}
            erased = client.post(f"/api/v1/contacts/{ADA}/erase")
            assert erased.status_code == 200, erased.text
            counts = erased.json()
            assert client.get(f"/api/v1/contacts/{ada}").status_code == 404
        # Ada's deliveries are cancelled before any worker runs: only Bob's contact.created
        # and the erasure's contact.deleted are sent.
        async with running_worker(services):
            await receiver.wait_for(2)
    bodies = [verify(endpoint.secret, r) for r in receiver.requests]
    by_type = {b["type"]: b for b in bodies}
    assert sorted(by_type) == ["contact.created", "contact.deleted"]
    assert by_type["contact.created"]["data"]["email"] == "bob@example.com"
    assert by_type["contact.deleted"]["data"] == {"contact_id": ada, "erased": True}
    for body in bodies:  # the erased shape is one the catalog documents
        assert errors(body, CATALOG[body["type"]].schema()) == [], body
    assert counts["deliveries_cancelled"] == len(pending) - 1  # all but Bob's
    statuses = [r.status for r in _rows(services, select(deliveries.c.status))]
    assert statuses.count("cancelled") == counts["deliveries_cancelled"]


def test_erase_removes_personal_data_everywhere_and_counts_it(
    client: Any, services: Services
) -> None:
    ada = _seed(client, services)
    answer = client.post(f"/api/v1/contacts/{ada}/erase")
    assert answer.status_code == 200, answer.text
    counts = answer.json()
    assert counts["contact_id"] == ada
    assert counts["emails"] == 1
    assert counts["inbound_requests"] == 1
    assert counts["events"] == 2
    assert counts["enrollments_ended"] == 1
    # contact.created, .updated, list.contact_added, automation.entered, 2 x event.tracked,
    # email.queued (whatever the exact set, it is every message that named Ada)
    assert counts["messages"] >= 6

    payloads = messages_of(client)
    about_ada = [p for p in payloads if p["data"].get("contact_id") == ada]
    for payload in about_ada:
        assert ADA not in str(payload), payload
    erased = [p for p in about_ada if p["data"].get("erased")]
    assert len(erased) == counts["messages"] + 1  # and contact.deleted itself
    assert all(p["data"] == {"contact_id": ada, "erased": True} for p in erased)
    [deleted] = [p for p in payloads if p["type"] == "contact.deleted"]
    assert deleted["data"] == {"contact_id": ada, "erased": True}
    assert any(p["data"].get("email") == "bob@example.com" for p in payloads)

    [email] = _rows(services, select(emails))
    assert (email.to_email, email.subject, email.raw, email.content) == ("", None, None, None)
    assert email.status == "skipped"
    [request] = _rows(services, select(inbound_requests))
    assert request.body is None
    assert request.actions is None
    assert _rows(services, select(custom_events)) == []
    [enrollment] = _rows(services, select(automation_enrollments))
    assert enrollment.status == "exited"
    assert enrollment.exit_reason == "contact_deleted"
    assert enrollment.trigger == "{}"


def test_erase_in_pages_gives_the_same_answer(client: Any, services: Services) -> None:
    ada = _seed(client, services)
    for n in range(5):
        client.patch(f"/api/v1/contacts/{ada}", json={"attributes": {"N": n}})
    counts = ContactEraser(services.crm, page=2).erase(ada)
    assert counts["messages"] >= 11
    about_ada = [p for p in messages_of(client) if p["data"].get("contact_id") == ada]
    # what is left unerased was written by the erasure itself (automation.exited, without
    # the email) and names nothing personal
    for payload in about_ada:
        assert payload["data"].get("erased") or payload["type"] == "automation.exited", payload
        assert ADA not in str(payload), payload
        assert "FIRSTNAME" not in str(payload), payload


def test_inbound_bodies_that_only_mention_the_email_are_dropped(
    client: Any, services: Services
) -> None:
    """A request whose rules never touched the contact still named it: its body goes."""
    ada = client.post("/api/v1/contacts", json={"email": ADA}).json()["id"]
    hook = create_hook(client, "generic", name="log only", rules=[])
    with raw_client(client) as sender:
        for payload in ({"customer": ADA, "total": 12}, {"customer": "bob@example.com"}):
            assert sender.post(hook.path, json=payload).status_code == 202
    assert services.inbound.process_backlog() == 2
    counts = client.post(f"/api/v1/contacts/{ada}/erase").json()
    assert counts["inbound_requests"] == 1
    bodies = sorted((r.body or b"") for r in _rows(services, select(inbound_requests.c.body)))
    assert bodies == [b"", b'{"customer":"bob@example.com"}']


def test_erase_of_an_unknown_contact_is_404(client: Any) -> None:
    for ref in ("nobody@example.com", "424242"):
        response = client.post(f"/api/v1/contacts/{ref}/erase")
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
