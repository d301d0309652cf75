"""What a sender without the secret can make a receive URL store, and replays with a new id.

A request refused before it is accepted (bad signature, unparseable, too large) is logged with a
prefix of its body only (``HOOKHUB_REJECTED_BODY_PREFIX``, 4 KiB); one refused by the rate limit
is counted, not logged; forged requests never spend a webhook's rate limit (verification comes
first). For providers whose event id is an unsigned header (GitHub, Shopify, generic with
``dedupe_header``), a captured request replayed with a new id is a duplicate by its body's hash.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hookhub.services import Services
from tests.support.inbound import Hook, create_hook, fixture, log_statuses, raw_client, requests_of

STRIPE_EVENT = fixture("stripe_customer_created")
GITHUB_PUSH = fixture("github_push")
SHOPIFY_ORDER = fixture("shopify_orders_create")


@pytest.fixture
def sender(client: Any) -> Iterator[Any]:
    with raw_client(client) as raw:
        yield raw


def _counted(
    client: Any, hook: Hook, expected: int, reason: str = "rate_limited", seconds: float = 5
) -> int:
    """The webhook's count of requests not logged for ``reason``, once it reaches ``expected``
    (or ``seconds`` have passed)."""
    deadline = time.monotonic() + seconds
    while True:
        answer = client.get(f"/api/v1/inbound-webhooks/{hook.id}").json()
        counted = int(answer["unlogged_24h"][reason])
        if counted >= expected or time.monotonic() > deadline:
            return counted
        time.sleep(0.05)


def test_a_forged_request_keeps_only_a_prefix_of_its_body(client: Any, sender: Any) -> None:
    hook = create_hook(client, "stripe", secret="whsec_bounded")
    body = b'{"id": "evt_forged", "pad": "' + b"x" * (512 * 1024) + b'"}'
    forged = sender.post(hook.path, content=body, headers={"stripe-signature": "t=1,v1=00"})
    assert forged.status_code == 401
    [listed] = requests_of(client, hook)
    assert (listed["status"], listed["body_size"]) == ("rejected", 4096)
    entry = client.get(f"/api/v1/inbound-webhooks/{hook.id}/requests/{listed['id']}").json()
    assert entry["body"] == body[:4096].decode()
    unparseable = b"{" + b"y" * 100_000
    refused = sender.post(hook.path, content=unparseable, headers=hook.sign(unparseable))
    assert refused.status_code == 400
    assert requests_of(client, hook)[0]["body_size"] == 4096


def test_a_rejected_request_keeps_few_short_headers(client: Any, sender: Any) -> None:
    hook = create_hook(client, "stripe", secret="whsec_bounded")
    headers = {f"x-pad-{i}": "p" * 1000 for i in range(60)}
    assert sender.post(hook.path, content=b"{}", headers=headers).status_code == 401
    [entry] = requests_of(client, hook)
    kept = entry["headers"]
    assert len(kept) <= 32
    assert all(len(value) <= 256 for value in kept.values())


def test_forged_requests_do_not_spend_the_rate_limit(client: Any, sender: Any) -> None:
    # A burst of one, then one request per 100 s.
    hook = create_hook(client, "stripe", secret="whsec_bounded", rate_limit=0.01)
    for _ in range(5):
        forged = sender.post(hook.path, content=STRIPE_EVENT, headers={"stripe-signature": "v1=0"})
        assert forged.status_code == 401
    genuine = sender.post(hook.path, content=STRIPE_EVENT, headers=hook.sign(STRIPE_EVENT))
    assert genuine.status_code == 202, "the forged ones left the genuine sender's budget alone"
    again = STRIPE_EVENT.replace(b"evt_1NG8Du2eZvKYlo2CUI79vXWy", b"evt_again")
    assert sender.post(hook.path, content=again, headers=hook.sign(again)).status_code == 429


def test_rate_limited_requests_are_counted_not_logged(
    client: Any, sender: Any, services: Services
) -> None:
    hook = create_hook(client, "stripe", secret="whsec_bounded", rate_limit=0.01)
    statuses = []
    for n in range(30):
        body = STRIPE_EVENT.replace(b"evt_1NG8Du2eZvKYlo2CUI79vXWy", b"evt_flood_%d" % n)
        answer = sender.post(hook.path, content=body, headers=hook.sign(body))
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert answer.json()["error"]["code"] == "rate_limited"
            assert int(answer.headers["retry-after"]) >= 1
    assert statuses == [202] + [429] * 29
    assert log_statuses(services) == ["received"]  # one row, not thirty
    assert _counted(client, hook, 29) == 29


@pytest.mark.parametrize(
    ("source", "body", "options"),
    [
        ("github", GITHUB_PUSH, {}),
        ("shopify", SHOPIFY_ORDER, {}),
        ("generic", b'{"email": "replay@example.com"}', {"dedupe_header": "x-delivery-id"}),
    ],
)
def test_a_replay_with_a_new_id_is_a_duplicate(
    client: Any, sender: Any, source: str, body: bytes, options: dict[str, Any]
) -> None:
    hook = create_hook(client, source, secret="bounded-secret", options=options or None)
    first = sender.post(hook.path, content=body, headers=hook.sign(body))
    assert first.status_code == 202, first.text
    replayed = hook.sign(body)  # the same bytes, signed as before, under a fresh delivery id
    again = sender.post(hook.path, content=body, headers=replayed)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    other = json.dumps({**json.loads(body), "note": "another event"}).encode()
    assert sender.post(hook.path, content=other, headers=hook.sign(other)).status_code == 202
    assert [r["status"] for r in requests_of(client, hook)] == ["received", "duplicate", "received"]


def test_without_an_unsigned_id_the_same_body_is_not_deduped(client: Any, sender: Any) -> None:
    hook = create_hook(client, "generic", secret="bounded-secret")
    body = b'{"email": "twice@example.com"}'
    for _ in range(2):
        assert sender.post(hook.path, content=body, headers=hook.sign(body)).status_code == 202


def test_refusals_past_the_number_logged_a_minute_are_counted(
    client: Any, sender: Any, services: Services
) -> None:
    hook = create_hook(client, "stripe", secret="whsec_bounded")
    answers = [
        sender.post(hook.path, content=b"{}", headers={"stripe-signature": "v1=0"})
        for _ in range(80)
    ]
    assert {a.status_code for a in answers} == {401}
    assert all(a.json()["error"]["code"] == "invalid_signature" for a in answers)
    logged = [a for a in answers if "request_id" in a.json()]
    assert 60 <= len(logged) < 80  # a minute's worth (and what refilled meanwhile)
    assert len(log_statuses(services)) == len(logged)
    assert _counted(client, hook, 80 - len(logged), reason="refused") == 80 - len(logged)
    genuine = sender.post(hook.path, content=STRIPE_EVENT, headers=hook.sign(STRIPE_EVENT))
    assert genuine.status_code == 202, "accepted requests are always logged"
