"""List endpoints never carry bodies, on each backend: the request log lists body sizes, the
deliveries list leaves response bodies out (the single-item GETs keep both), and a page of
messages stops at about 4 MiB of payloads, whatever the limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hookhub.outbound.messages import PAGE_BYTES
from hookhub.services import Services
from tests.support.delivery import api_client, tuned_services
from tests.support.inbound import create_hook, fixture, raw_client, requests_of
from tests.support.retention import seed_message

API = "/api/v1"
STRIPE_EVENT = fixture("stripe_customer_created")


@pytest.fixture
def tuned(db_url: str) -> Iterator[tuple[Services, Any]]:
    with tuned_services(db_url) as services, api_client(services) as client:
        yield services, client


def test_request_log_lists_body_sizes_and_the_single_get_the_body(
    tuned: tuple[Services, Any],
) -> None:
    _services, client = tuned
    hook = create_hook(client, "stripe")
    with raw_client(client) as sender:
        sent = sender.post(hook.path, content=STRIPE_EVENT, headers=hook.sign(STRIPE_EVENT))
    assert sent.status_code == 202, sent.text
    [listed] = requests_of(client, hook)
    assert "body" not in listed
    assert listed["body_size"] == len(STRIPE_EVENT)
    one = client.get(f"{API}/inbound-webhooks/{hook.id}/requests/{listed['id']}").json()
    assert one["body"] == STRIPE_EVENT.decode()
    assert one["body_size"] == len(STRIPE_EVENT)
    assert {k: v for k, v in one.items() if k != "body"} == listed


def test_deliveries_list_leaves_response_bodies_to_the_single_get(
    tuned: tuple[Services, Any],
) -> None:
    services, client = tuned
    webhook = client.post(
        f"{API}/webhooks", json={"url": "https://a.example.com/in", "events": ["*"]}
    ).json()
    message_id = seed_message(
        services, "contact.created", age_days=0, outcomes={webhook["id"]: "succeeded"}
    )
    [listed] = client.get(f"{API}/webhooks/{webhook['id']}/deliveries").json()["data"]
    [attempt] = listed["attempts"]
    assert "response_body" not in attempt
    assert attempt["status_code"] == 200
    one = client.get(f"{API}/deliveries/{listed['id']}")
    assert one.status_code == 200, one.text
    assert [a["response_body"] for a in one.json()["attempts"]] == ["ok"]
    assert {k: v for k, v in one.json().items() if k != "attempts"} == {
        k: v for k, v in listed.items() if k != "attempts"
    }
    [state] = client.get(f"{API}/messages/{message_id}").json()["deliveries"]
    assert [a["response_body"] for a in state["attempts"]] == ["ok"]
    missing = client.get(f"{API}/deliveries/999999")
    assert missing.status_code == 404
    assert missing.json()["error"]["details"] == {"delivery_id": 999999}


def test_a_page_of_messages_stops_at_about_4_mib_of_payloads(
    tuned: tuple[Services, Any],
) -> None:
    services, client = tuned
    blob = "x" * (PAGE_BYTES // 4 - 1024)  # four fit in a page, a fifth does not
    big = [
        seed_message(services, "event.tracked", age_days=0, data={"blob": blob}) for _ in range(6)
    ]
    small = seed_message(services, "event.tracked", age_days=0)

    first = client.get(f"{API}/messages", params={"limit": 1000}).json()
    assert [m["id"] for m in first["data"]] == big[:4]
    assert first["next_cursor"] is not None
    assert all(m["payload"]["data"]["blob"] == blob for m in first["data"])
    rest = client.get(f"{API}/messages", params={"limit": 1000, "cursor": first["next_cursor"]})
    assert [m["id"] for m in rest.json()["data"]] == [*big[4:], small]
    assert rest.json()["next_cursor"] is None
    # The limit still applies below the cap.
    two = client.get(f"{API}/messages", params={"limit": 2}).json()
    assert [m["id"] for m in two["data"]] == big[:2]
    after = client.get(f"{API}/messages", params={"limit": 2, "cursor": two["next_cursor"]})
    assert [m["id"] for m in after.json()["data"]] == big[2:4]
