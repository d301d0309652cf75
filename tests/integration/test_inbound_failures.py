"""When rules fail after a request was acknowledged: nothing half-done, a clear reason, a replay.

The provider has its 2xx (the request is durable; failing it would only make the provider retry
into the same broken rule). The request is marked ``failed`` with the reason and the expression
at fault, an ``inbound.failed`` message tells whoever listens, and nothing the rule started is
kept. Once the rule is fixed, replaying the request runs the current rules on the logged body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from hookhub.services import Services
from tests.support.inbound import (
    create_hook,
    fixture,
    log_statuses,
    messages_of,
    raw_client,
    requests_of,
    side_effects,
)

STRIPE_EVENT = fixture("stripe_customer_created")


@pytest.fixture
def sender(client: Any) -> Iterator[Any]:
    with raw_client(client) as raw:
        yield raw


@pytest.fixture
def list_id(client: Any) -> int:
    response = client.post("/api/v1/lists", json={"name": "Stripe customers"})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _rule(list_id: int, **changes: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": "new customer",
        "when": "type == 'customer.created'",
        "contact": {
            "email": "data.object.email",
            "attributes": {"FIRSTNAME": "split(data.object.name, ' ')[0]"},
        },
        "add_to_lists": [list_id],
        "event": {"name": "stripe_customer_created", "properties": {"customer": "data.object.id"}},
    }
    for key, value in changes.items():
        if key != "contact":
            rule[key] = value
            continue
        contact = rule["contact"]
        for field, mapped in value.items():
            contact[field] = {**contact[field], **mapped} if field == "attributes" else mapped
    return rule


# Each: how the rule is broken, the error and expression the log shows, how it is fixed.
BROKEN = {
    "email resolves to null": (
        {"contact": {"email": "data.object.customer_email"}},
        "rules[0].contact.email resolved to null",
        "data.object.customer_email",
        {"contact": {"email": "data.object.customer_email || data.object.email"}},
    ),
    "attribute of the wrong type": (
        {"contact": {"attributes": {"PLAN": "data.object.metadata.plan"}}},
        "Attribute PLAN must be a number",
        "data.object.metadata.plan",
        {"contact": {"attributes": {"PLAN_NAME": "data.object.metadata.plan"}}},
    ),
    "list that does not exist": (
        {"add_to_lists": [987654]},
        "add_to_lists: No list with id 987654",
        None,
        {},
    ),
}


@pytest.mark.parametrize("broken", list(BROKEN), ids=list(BROKEN))
def test_failed_rule_keeps_nothing_then_replay_after_the_fix_acts(
    client: Any, sender: Any, services: Services, list_id: int, broken: str
) -> None:
    breakage, error, expression, fix = BROKEN[broken]
    declared = client.post("/api/v1/attributes", json={"name": "plan", "type": "number"})
    assert declared.status_code == 201, declared.text
    hook = create_hook(client, "stripe", rules=[_rule(list_id, **breakage)])

    response = sender.post(hook.path, content=STRIPE_EVENT, headers=hook.sign(STRIPE_EVENT))
    assert response.status_code == 202, "the provider is told it arrived"
    request_id = response.json()["request_id"]
    assert services.inbound.process_backlog() == 1

    logged = client.get(f"/api/v1/inbound-webhooks/{hook.id}/requests/{request_id}").json()
    assert logged["status"] == "failed"
    assert error in logged["error"]
    assert logged["error_expression"] == expression
    assert logged["actions"] is None
    [failed] = messages_of(client)
    assert failed["type"] == "inbound.failed"
    assert failed["data"] == {
        "inbound_webhook_id": hook.id,
        "request_id": request_id,
        "error": logged["error"],
        "expression": expression,
        "rule": "new customer",
    }
    counts = side_effects(services)
    assert counts["contacts"] == counts["custom_events"] == counts["list_members"] == 0
    assert counts["attribute_definitions"] == 1, "only PLAN, declared above"

    # The provider retrying does not run the broken rule again: that is what replay is for.
    retry = sender.post(hook.path, content=STRIPE_EVENT, headers=hook.sign(STRIPE_EVENT))
    assert retry.json()["status"] == "duplicate"

    patched = client.patch(
        f"/api/v1/inbound-webhooks/{hook.id}", json={"rules": [_rule(list_id, **fix)]}
    )
    assert patched.status_code == 200, patched.text
    replayed = client.post(f"/api/v1/inbound-webhooks/{hook.id}/requests/{request_id}/replay")
    assert replayed.status_code == 200, replayed.text
    answer = replayed.json()
    assert (answer["status"], answer["error"], answer["error_expression"]) == (
        "processed",
        None,
        None,
    )
    [action] = answer["actions"]
    assert action["contact"] == "created"
    assert action["lists_added"] == [list_id]

    contact = client.get("/api/v1/contacts/jenny.rosen@example.com").json()
    assert contact["list_ids"] == [list_id]
    assert contact["attributes"]["FIRSTNAME"] == "Jenny"
    assert [m["type"] for m in messages_of(client, "contact.created")] == ["contact.created"]
    assert len(messages_of(client, "event.tracked")) == 1
    assert len(messages_of(client, "list.contact_added")) == 1


def test_a_failed_request_leaves_no_trace_for_the_next_one_in_its_batch(
    client: Any, sender: Any, services: Services
) -> None:
    """The first request defines attribute COLOR, then fails; its savepoint takes the definition
    away. The second, processed in the same batch, must define COLOR again."""
    rules = [
        {
            "name": "broken",
            "when": "kind == 'bad'",
            "contact": {"email": "email", "attributes": {"COLOR": "color"}},
            "add_to_lists": [424242],
        },
        {
            "name": "fine",
            "when": "kind == 'good'",
            "contact": {"email": "email", "attributes": {"COLOR": "color"}},
        },
    ]
    hook = create_hook(client, "generic", rules=rules)
    for kind, email in (("bad", "bad@example.com"), ("good", "good@example.com")):
        body = {"kind": kind, "email": email, "color": "teal"}
        assert sender.post(hook.path, json=body).status_code == 202

    assert services.inbound.process_backlog() == 2
    assert log_statuses(services) == ["failed", "processed"]
    attributes = client.get("/api/v1/attributes").json()["data"]
    assert [(a["name"], a["type"]) for a in attributes] == [("COLOR", "string")]
    assert client.get("/api/v1/contacts/good@example.com").json()["attributes"] == {"COLOR": "teal"}
    assert client.get("/api/v1/contacts/bad@example.com").status_code == 404


# Payloads no rule can store, each with the error and expression its request is failed with.
UNSTORABLE = [
    # A date with no UTC form: it exists, but only at the edge of the calendar.
    (
        {"email": "a@example.com", "at": "0001-01-01T00:00:00+01:00"},
        "rules[0].event.date is not a date",
        "at",
    ),
    # PostgreSQL cannot even look up text with a NUL in it.
    ({"email": "a@example.com", "id": "cus\u0000"}, "contact.ext_id contains a NUL", "id"),
    ({"email": "a\u0000@example.com"}, "contact.email contains a NUL", "email"),
    ({"email": ["a@example.com"]}, "contact.email resolved to list", "email"),
    ({"email": "a@example.com", "id": True}, "contact.ext_id resolved to bool", "id"),
]


def test_payloads_no_rule_can_store_fail_alone(
    client: Any, sender: Any, services: Services
) -> None:
    """Bad requests in one batch with good ones: each fails on its own, none holds back the
    requests queued behind it (a failing batch is retried, so one poisoned request used to
    stall its webhook for good)."""
    rules = [
        {
            "name": "signup",
            "contact": {"email": "email", "ext_id": "id"},
            "event": {"name": "signed_up", "date": "at"},
        }
    ]
    hook = create_hook(client, "generic", rules=rules)
    for number, (body, _, _) in enumerate(UNSTORABLE):
        good = {"email": f"good{number}@example.com", "id": f"cus_{number}"}
        for payload in (body, good):
            response = sender.post(hook.path, content=json.dumps(payload).encode())
            assert response.status_code == 202

    assert services.inbound.process_backlog() == 2 * len(UNSTORABLE)
    done = sorted(requests_of(client, hook), key=lambda r: r["id"])
    for (body, error, expression), bad, good in zip(UNSTORABLE, done[::2], done[1::2], strict=True):
        assert bad["status"] == "failed", body
        assert error in bad["error"], body
        assert bad["error_expression"] == expression, body
        assert good["status"] == "processed", body
    counts = side_effects(services)
    assert (counts["contacts"], counts["custom_events"]) == (len(UNSTORABLE), len(UNSTORABLE))
    assert len(messages_of(client, "inbound.failed")) == len(UNSTORABLE)


def test_only_finished_requests_can_be_replayed(
    client: Any, sender: Any, services: Services
) -> None:
    hook = create_hook(client, "stripe")
    rejected = sender.post(hook.path, content=STRIPE_EVENT, headers={"Stripe-Signature": "t=1"})
    queued = sender.post(hook.path, content=STRIPE_EVENT, headers=hook.sign(STRIPE_EVENT))
    base = f"/api/v1/inbound-webhooks/{hook.id}/requests"

    answer = client.post(f"{base}/{rejected.json()['request_id']}/replay")
    assert answer.status_code == 422
    answer = client.post(f"{base}/{queued.json()['request_id']}/replay")
    assert answer.status_code == 409, "the processor will run it; replaying too could run it twice"
    assert client.post(f"{base}/999999/replay").status_code == 404
    other = create_hook(client, "stripe", name="other")
    wrong_hook = f"/api/v1/inbound-webhooks/{other.id}/requests/{queued.json()['request_id']}"
    assert client.post(f"{wrong_hook}/replay").status_code == 404
    assert side_effects(services)["contacts"] == 0

    services.inbound.process_backlog()
    again = client.post(f"{base}/{queued.json()['request_id']}/replay")
    assert again.status_code == 200
    [action] = again.json()["actions"]
    assert action["contact"] == "unchanged", "the same payload again changes nothing"
    assert side_effects(services)["contacts"] == 1
