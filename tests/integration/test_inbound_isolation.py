"""One payload, one rule or one webhook's trouble fails that request alone, never the others.

Whatever a request's rules raise while they run (an OverflowError from ``floor`` of an
infinity, an expression whose value doubles at every step, a webhook whose stored settings no
longer load), that request is marked ``failed`` with the reason and an ``inbound.failed``
message, and every other request, of the same webhook or of others, is processed as usual.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from hookhub.services import Services
from hookhub.store.schema import inbound_requests, inbound_webhooks
from tests.support.inbound import Hook, create_hook, messages_of, raw_client, requests_of

SECRET = "s3cret-shared-with-the-sender"
AMOUNT_RULE = {
    "name": "order",
    "when": "email",
    "contact": {"email": "email", "attributes": {"AMOUNT": "floor(to_number(amount))"}},
}
# Every "|[@,@]" doubles the value: 2**40 copies of the payload, were it built.
DOUBLING = "@" + "|[@,@]" * 40


@pytest.fixture
def sender(client: Any) -> Iterator[Any]:
    with raw_client(client) as raw:
        yield raw


def _send(sender: Any, hook: Hook, payload: dict[str, Any]) -> int:
    body = json.dumps(payload).encode()
    response = sender.post(hook.path, content=body, headers=hook.sign(body))
    assert response.status_code == 202, response.text
    return int(response.json()["request_id"])


def _statuses(client: Any, hook: Hook) -> dict[int, tuple[str, str | None]]:
    return {r["id"]: (r["status"], r["error"]) for r in requests_of(client, hook)}


def _contacts(client: Any) -> dict[str, dict[str, Any]]:
    answer = client.get("/api/v1/contacts", params={"limit": 100}).json()["data"]
    return {c["email"]: c["attributes"] for c in answer}


def test_an_overflowing_value_fails_its_request_and_nothing_else(
    client: Any, sender: Any, services: Services
) -> None:
    first = create_hook(client, "generic", secret=SECRET, rules=[AMOUNT_RULE])
    second = create_hook(client, "generic", secret=SECRET, rules=[AMOUNT_RULE])
    before = _send(sender, first, {"email": "a@example.com", "amount": "12.5"})
    poison = _send(sender, first, {"email": "b@example.com", "amount": "1e999"})
    after = _send(sender, first, {"email": "c@example.com", "amount": "7"})
    other = _send(sender, second, {"email": "d@example.com", "amount": "3"})

    assert services.inbound.process_backlog() == 4

    statuses = _statuses(client, first)
    assert statuses[before] == ("processed", None)
    assert statuses[after] == ("processed", None)
    status, error = statuses[poison]
    assert status == "failed"
    assert error is not None
    assert "OverflowError" in error
    assert _statuses(client, second)[other] == ("processed", None)
    assert set(_contacts(client)) == {"a@example.com", "c@example.com", "d@example.com"}
    [failed] = messages_of(client, "inbound.failed")
    assert failed["data"]["request_id"] == poison
    assert failed["data"]["expression"] == "floor(to_number(amount))"
    assert failed["data"]["rule"] == "order"

    # Later requests of the same webhook are not held back either.
    later = _send(sender, first, {"email": "e@example.com", "amount": "1"})
    assert services.inbound.process_backlog() == 1
    assert _statuses(client, first)[later] == ("processed", None)


def test_an_expression_that_doubles_its_value_is_stopped_with_a_clear_reason(
    client: Any, sender: Any, services: Services
) -> None:
    rule = {
        "name": "doubling",
        "when": "email",
        "contact": {"email": "email"},
        "event": {"name": "signup", "properties": {"copies": DOUBLING}},
    }
    hook = create_hook(client, "generic", secret=SECRET, rules=[rule])
    other = create_hook(client, "generic", secret=SECRET, rules=[AMOUNT_RULE])
    poison = _send(sender, hook, {"email": "a@example.com", "padding": "x" * 1000})
    fine = _send(sender, other, {"email": "b@example.com", "amount": "2"})

    assert services.inbound.process_backlog() == 2

    status, error = _statuses(client, hook)[poison]
    assert status == "failed"
    assert error is not None
    assert "bytes of values" in error
    assert _statuses(client, other)[fine] == ("processed", None)
    assert set(_contacts(client)) == {"b@example.com"}

    preview = client.post(
        f"/api/v1/inbound-webhooks/{hook.id}/preview", json={"body": {"email": "a@example.com"}}
    )
    assert preview.status_code == 422, preview.text
    refused = preview.json()["error"]
    assert "bytes of values" in refused["message"]
    assert refused["details"]["expression"] == DOUBLING


def test_a_webhook_whose_settings_no_longer_load_does_not_hold_up_the_others(
    client: Any, sender: Any, services: Services
) -> None:
    broken = create_hook(client, "generic", secret=SECRET, rules=[AMOUNT_RULE])
    healthy = create_hook(client, "generic", secret=SECRET, rules=[AMOUNT_RULE])
    stuck = [_send(sender, broken, {"email": f"{n}@example.com", "amount": "1"}) for n in "ab"]
    fine = _send(sender, healthy, {"email": "c@example.com", "amount": "1"})
    with services.db.write() as conn:  # what no API call can write: the batch itself fails
        conn.execute(
            update(inbound_webhooks)
            .where(inbound_webhooks.c.id == broken.id)
            .values(options="{not json")
        )

    services.inbound.process_backlog()

    assert _statuses(client, healthy)[fine] == ("processed", None)
    statuses = _log(services, stuck)  # straight from the table: the API cannot load this hook
    assert [s for s, _ in statuses] == ["failed", "failed"]
    assert all(error and "JSON" in error for _, error in statuses)
    assert services.inbound.process_backlog() == 0, "nothing is left to retry forever"


def _log(services: Services, ids: list[int]) -> list[tuple[str, str | None]]:
    with services.db.read() as conn:
        query = (
            select(inbound_requests.c.status, inbound_requests.c.error)
            .where(inbound_requests.c.id.in_(ids))
            .order_by(inbound_requests.c.id)
        )
        return [(row.status, row.error) for row in conn.execute(query)]


@pytest.mark.parametrize(
    ("value", "matched"),
    [
        (0, True),
        (0.0, True),
        ("0", True),
        (False, False),
        (None, False),
        ("", False),
        ([], False),
        ({}, False),
        ([0], True),
    ],
)
def test_when_follows_jmespath_truthiness(client: Any, value: Any, matched: bool) -> None:
    rule = {"name": "flagged", "when": "flag", "contact": {"email": "email"}}
    hook = create_hook(client, "generic", secret=SECRET, rules=[rule])
    response = client.post(
        f"/api/v1/inbound-webhooks/{hook.id}/preview",
        json={"body": {"email": "a@example.com", "flag": value}},
    )
    assert response.status_code == 200, response.text
    assert [m["rule"] for m in response.json()["matched"]] == (["flagged"] if matched else [])


def test_a_zero_matches_when_a_request_is_processed(
    client: Any, sender: Any, services: Services
) -> None:
    rule = {"name": "free plan", "when": "seats", "contact": {"email": "email"}}
    hook = create_hook(client, "generic", secret=SECRET, rules=[rule])
    _send(sender, hook, {"email": "zero@example.com", "seats": 0})
    _send(sender, hook, {"email": "none@example.com", "seats": None})

    assert services.inbound.process_backlog() == 2

    assert set(_contacts(client)) == {"zero@example.com"}
