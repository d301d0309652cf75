"""Origins: every message says what caused it, and an endpoint's ``ignore_origins`` breaks
two-way sync loops (DESIGN.md, "Origins and erasure").

The loop test is a real round trip: a payload comes into an inbound webhook, its rule creates a
contact, and the delivery worker posts ``contact.created`` to a loopback receiver, except to the
endpoint that ignores that inbound webhook.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from hookhub.clock import FakeClock
from hookhub.core.origin import TRACKING, Origin
from hookhub.crm.importer import ContactImporter
from hookhub.services import Services
from hookhub.store.schema import deliveries
from hookhub.store.tracking import TrackingHit, TrackingHitStore
from tests.support.automation_engine import Automations
from tests.support.delivery import api_client, running_worker, verify
from tests.support.inbound import create_hook, messages_of, raw_client
from tests.support.receiver import running_receiver
from tests.support.tracking import apply_all, make_campaign, sent_email

RULES = [{"name": "sync", "contact": {"email": "email"}}]


def _key_id(services: Services) -> int:
    [key] = [k for k in services.keys.list() if k.name == "tests"]
    return key.id


def _origins(client: Any, event_type: str) -> list[Any]:
    return [m["origin"] for m in messages_of(client, event_type)]


def test_api_messages_name_the_key(client: Any, services: Services) -> None:
    response = client.post("/api/v1/contacts", json={"email": "ada@example.com"})
    assert response.status_code == 201, response.text
    assert _origins(client, "contact.created") == [
        {"type": "api", "id": _key_id(services), "name": "tests"}
    ]


def test_inbound_messages_name_the_inbound_webhook(client: Any, services: Services) -> None:
    hook = create_hook(client, "generic", name="shop", rules=RULES)
    with raw_client(client) as sender:
        assert sender.post(hook.path, json={"email": "ada@example.com"}).status_code == 202
    assert services.inbound.process_backlog() == 1
    assert _origins(client, "contact.created") == [
        {"type": "inbound", "id": hook.id, "name": "shop"}
    ]


def test_import_messages_name_the_import(client: Any, services: Services) -> None:
    csv = b"email\nada@example.com\nbob@example.com\n"
    report = ContactImporter(services.crm).run(io.BytesIO(csv), name="people.csv")
    assert report.created == 2
    assert report.id.startswith("imp_")
    assert (
        _origins(client, "contact.created")
        == [{"type": "import", "id": report.id, "name": "people.csv"}] * 2
    )


def test_writers_carry_automation_campaign_and_tracking_origins(
    client: Any, services: Services
) -> None:
    """The engine, the email ledger and the tracking processor hand these to their writers;
    an explicit origin wins over the API request's."""
    for origin in (
        Origin("automation", 4, "Welcome"),
        Origin("campaign", 7, "Spring"),
        TRACKING,
    ):
        with services.crm.transaction(origin) as tx:
            tx.create_contact(f"{origin.type}@example.com")
    assert sorted(_origins(client, "contact.created"), key=lambda o: o["type"]) == [
        {"type": "automation", "id": 4, "name": "Welcome"},
        {"type": "campaign", "id": 7, "name": "Spring"},
        {"type": "tracking", "id": None, "name": None},
    ]


def test_the_engine_the_ledger_and_the_tracking_processor_set_theirs(
    client: Any, services: Services
) -> None:
    """Through the real components: an automation's step, a campaign email's and a
    transactional email's outcome, and an open applied by the tracking processor."""
    auto = Automations(services, FakeClock())
    list_id = client.post("/api/v1/lists", json={"name": "VIP"}).json()["id"]
    contact_id = client.post("/api/v1/contacts", json={"email": "ada@example.com"}).json()["id"]
    automation = auto.create([{"id": "join", "add_to_list": list_id}], name="Onboarding")
    auto.enroll(automation, contact_id)
    assert auto.engine.run_due() == 1
    assert _origins(client, "list.contact_added") == [
        {"type": "automation", "id": automation.id, "name": "Onboarding"}
    ]
    assert _origins(client, "automation.exited") == [
        {"type": "automation", "id": automation.id, "name": "Onboarding"}
    ]

    campaign_id = make_campaign(services, "Spring")
    in_campaign = sent_email(services, "ada@example.com", campaign_id=campaign_id)
    transactional = sent_email(services, "bob@example.com")
    with services.db.write() as conn:
        TrackingHitStore(conn).append(
            [
                TrackingHit("o", email_id, None, time.time(), "Firefox/120.0", "127.0.0.1")
                for email_id in (in_campaign, transactional)
            ]
        )
    apply_all(services)
    by_email = {m["data"]["email"]: m["origin"] for m in messages_of(client, "email.opened")}
    assert by_email == {
        "ada@example.com": {"type": "campaign", "id": campaign_id, "name": "Spring"},
        "bob@example.com": {"type": "tracking", "id": None, "name": None},
    }
    sent = {m["data"]["email"]: m["origin"] for m in messages_of(client, "email.sent")}
    assert sent["ada@example.com"] == {"type": "campaign", "id": campaign_id, "name": "Spring"}


def test_messages_without_a_cause_say_null(client: Any, services: Services) -> None:
    with services.crm.transaction() as tx:  # an operator's command: no request, no origin
        tx.create_contact("cli@example.com")
    assert _origins(client, "contact.created") == [None]


def test_automation_entered_keeps_the_request_origin(client: Any, services: Services) -> None:
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
    response = client.post(
        "/api/v1/contacts", json={"email": "ada@example.com", "list_ids": [list_id]}
    )
    assert response.status_code == 201, response.text
    api = {"type": "api", "id": _key_id(services), "name": "tests"}
    assert _origins(client, "automation.entered") == [api]
    assert _origins(client, "list.contact_added") == [api]


def test_ignore_origins_is_validated_at_save(client: Any) -> None:
    url = "https://example.com/hook"
    for bad in (
        [{"type": "shop"}],
        [{"type": "inbound", "id": "3"}],
        [{"type": "inbound", "id": 0}],
        [{"type": "inbound", "extra": 1}],
        [{"type": "tracking", "id": 2}],
        ["inbound"],
    ):
        response = client.post(
            "/api/v1/webhooks", json={"url": url, "events": ["*"], "ignore_origins": bad}
        )
        assert response.status_code == 422, (bad, response.text)
        assert "ignore_origins" in response.json()["error"]["message"], response.text
    created = client.post(
        "/api/v1/webhooks",
        json={"url": url, "events": ["*"], "ignore_origins": [{"type": "automation"}]},
    )
    assert created.status_code == 201, created.text
    assert created.json()["ignore_origins"] == [{"type": "automation"}]
    webhook_id = created.json()["id"]
    bad = client.patch(f"/api/v1/webhooks/{webhook_id}", json={"ignore_origins": [{"id": 1}]})
    assert bad.status_code == 422, bad.text
    patched = client.patch(
        f"/api/v1/webhooks/{webhook_id}", json={"ignore_origins": [{"type": "inbound", "id": 3}]}
    )
    assert patched.status_code == 200, patched.text
    assert client.get(f"/api/v1/webhooks/{webhook_id}").json()["ignore_origins"] == [
        {"type": "inbound", "id": 3}
    ]
    cleared = client.patch(f"/api/v1/webhooks/{webhook_id}", json={"ignore_origins": None})
    assert cleared.json()["ignore_origins"] == []


async def test_an_inbound_round_trip_skips_the_endpoint_that_ignores_it(
    services: Services,
) -> None:
    with api_client(services) as client:
        shop = create_hook(client, "generic", name="shop", rules=RULES)
        other = create_hook(client, "generic", name="other", rules=RULES)
        async with running_receiver() as receiver, running_worker(services):
            looped = services.endpoints.create(
                {
                    "url": receiver.url + "-shop",
                    "events": ["contact.created"],
                    "ignore_origins": [{"type": "inbound", "id": shop.id}],
                }
            )
            plain = services.endpoints.create(
                {"url": receiver.url + "-plain", "events": ["contact.created"]}
            )
            with raw_client(client) as sender:
                sender.post(shop.path, json={"email": "from-shop@example.com"})
                sender.post(other.path, json={"email": "from-other@example.com"})
            assert services.inbound.process_backlog() == 2
            # plain gets both; the shop's endpoint only the one the shop did not cause
            await receiver.wait_for(3)
    got: dict[str, list[str]] = {"shop": [], "plain": []}
    for request in receiver.requests:
        endpoint = looped if request.path.endswith("-shop") else plain
        body = verify(endpoint.secret, request)
        got["shop" if endpoint is looped else "plain"].append(body["data"]["email"])
    assert sorted(got["plain"]) == ["from-other@example.com", "from-shop@example.com"]
    assert got["shop"] == ["from-other@example.com"]
    with services.db.read() as conn:
        counts = conn.execute(deliveries.select()).fetchall()
    assert len(counts) == 3  # no delivery was even queued for the ignored one


def test_recover_honours_ignore_origins(client: Any, services: Services) -> None:
    hook = create_hook(client, "generic", name="shop", rules=RULES)
    start = datetime.now(UTC) - timedelta(minutes=1)
    with raw_client(client) as sender:
        sender.post(hook.path, json={"email": "from-shop@example.com"})
    assert services.inbound.process_backlog() == 1
    client.post("/api/v1/contacts", json={"email": "from-api@example.com"})
    endpoint = services.endpoints.create(
        {
            "url": "https://example.com/hook",
            "events": ["contact.created"],
            "ignore_origins": [{"type": "inbound"}],
        }
    )
    response = client.post(
        f"/api/v1/webhooks/{endpoint.id}/recover", json={"since": start.isoformat()}
    )
    assert response.status_code == 202, response.text
    assert response.json()["backfilled"] == 1
    [delivery] = services.endpoints.deliveries(endpoint.id, status=None, before_id=None, limit=10)
    [message] = [
        m for m in client.get("/api/v1/messages").json()["data"] if m["id"] == delivery.message_id
    ]
    assert message["payload"]["data"]["email"] == "from-api@example.com"
