"""Preview: a dry run of an inbound webhook's rules on a body the user pastes.

It shows which rules match, the values their expressions resolve to, the actions and the
outbound messages a real request would produce, or the error and the expression at fault; and
it changes nothing at all: no contact, no message, no request-log entry.
"""

from __future__ import annotations

import json
from typing import Any

from hookhub.services import Services
from tests.support.inbound import NOTHING, create_hook, fixture, log_statuses, side_effects

STRIPE_EVENT = json.loads(fixture("stripe_customer_created"))


def _preview(client: Any, hook_id: int, body: Any, **extra: Any) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/inbound-webhooks/{hook_id}/preview", json={"body": body, **extra}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_preview_shows_matches_values_actions_and_messages(client: Any, services: Services) -> None:
    list_id = client.post("/api/v1/lists", json={"name": "customers"}).json()["id"]
    hook = create_hook(client, "stripe")
    rules = client.get(f"/api/v1/inbound-webhooks/{hook.id}").json()["rules"]
    rules[0]["add_to_lists"] = [list_id]
    client.patch(f"/api/v1/inbound-webhooks/{hook.id}", json={"rules": rules})

    answer = _preview(client, hook.id, STRIPE_EVENT)

    assert answer["error"] is None
    assert answer["event_type"] == "customer.created"
    assert answer["matched"] == [
        {
            "rule": "customer created",
            "contact": {
                "email": "jenny.rosen@example.com",
                "ext_id": None,
                "mode": "upsert",
                "attributes": {
                    "FIRSTNAME": "Jenny",
                    "LASTNAME": "Rosen",
                    "SMS": "+15555550123",
                    "STRIPE_CUSTOMER_ID": "cus_NhD8HD2bY8dP3V",
                },
            },
            "add_to_lists": [list_id],
            "event": {
                "name": "stripe_customer_created",
                "properties": {"customer": "cus_NhD8HD2bY8dP3V", "livemode": False},
                "date": "2023-06-06T22:19:30+00:00",
            },
        }
    ]
    [action] = answer["actions"]
    assert action["contact"] == "created"
    assert action["lists_added"] == [list_id]
    assert sorted(m["type"] for m in answer["messages"]) == [
        "contact.created",
        "event.tracked",
        "list.contact_added",
    ]
    created = next(m for m in answer["messages"] if m["type"] == "contact.created")
    assert created["payload"]["data"]["email"] == "jenny.rosen@example.com"

    assert side_effects(services) == NOTHING
    assert log_statuses(services) == []
    assert client.get("/api/v1/contacts").json()["data"] == []
    assert client.get("/api/v1/messages").json()["data"] == []
    assert client.get("/api/v1/attributes").json()["data"] == []

    # Nothing previewed stands in the way of the real thing.
    again = _preview(client, hook.id, STRIPE_EVENT)
    assert again["actions"][0]["contact"] == "created"


def test_preview_errors_point_at_the_expression(client: Any, services: Services) -> None:
    client.post("/api/v1/attributes", json={"name": "SEATS", "type": "number"})
    rules = [
        {
            "name": "signup",
            "contact": {"email": "user.email", "attributes": {"SEATS": "plan.seats"}},
            "event": {"name": "signed_up", "date": "at"},
        }
    ]
    hook = create_hook(client, "generic", rules=rules)
    good = {"user": {"email": "p@example.com"}, "plan": {"seats": "3"}, "at": 1700000000}

    cases = [
        ({**good, "user": {}}, "rules[0].contact.email resolved to null", "user.email", False),
        ({**good, "at": "yesterday"}, "rules[0].event.date is not a date", "at", False),
        (
            {**good, "plan": {"seats": "many"}},
            "Attribute SEATS must be a number",
            "plan.seats",
            True,
        ),
    ]
    for body, message, expression, matched in cases:
        answer = _preview(client, hook.id, body)
        assert answer["error"]["rule"] == "signup", body
        assert answer["error"]["expression"] == expression, body
        assert message in answer["error"]["message"], body
        assert bool(answer["matched"]) == matched, "resolving fails before matching completes"
        assert answer["actions"] == answer["messages"] == [], body

    fine = _preview(client, hook.id, good)
    assert fine["error"] is None
    assert fine["matched"][0]["contact"]["attributes"] == {"SEATS": "3"}, "resolved, not coerced"
    assert fine["actions"][0]["contact"] == "created"
    assert side_effects(services) == {**NOTHING, "attribute_definitions": 1}


def test_preview_of_raw_text_bodies_and_bad_input(client: Any, services: Services) -> None:
    hook = create_hook(client, "generic")
    form = _preview(
        client,
        hook.id,
        "email=form%40example.com&first_name=Fay",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form["error"] is None
    assert form["matched"][0]["contact"]["attributes"] == {"FIRSTNAME": "Fay"}

    for body in ("{not json", ["a list"], "", None, "\u0000"):
        answer = _preview(client, hook.id, body)
        assert answer["actions"] == [], body
    # A lone surrogate is valid JSON text but no Unicode: it cannot become the raw body.
    lone = client.post(
        f"/api/v1/inbound-webhooks/{hook.id}/preview",
        content=b'{"body": "\\ud800"}',
        headers={"Content-Type": "application/json"},
    )
    assert lone.status_code == 422, lone.text
    assert lone.json()["error"]["details"][0]["loc"] == ["body", "body"]
    unparseable = _preview(client, hook.id, "{not json")
    assert unparseable["error"]["message"].startswith("The body is not valid JSON")

    stripe = create_hook(client, "stripe")
    assert _preview(client, stripe.id, [1, 2])["error"]["message"]
    assert (
        client.post("/api/v1/inbound-webhooks/99999/preview", json={"body": {}}).status_code == 404
    )
    assert side_effects(services) == NOTHING
