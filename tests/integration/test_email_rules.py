"""The inbound rule action send_email: a Stripe checkout sends an order confirmation.

The email is queued in the rule's transaction (a failing rule queues nothing), shows in the
preview (which queues nothing), refers to a template that must exist when the rules are saved,
and goes out through the worker like any other email.
"""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from typing import Any

from hookhub.services import Services
from tests.support.email import create_template, email_worker, emails_of, wait_for_status
from tests.support.inbound import create_hook, fixture, raw_client

CHECKOUT = json.loads(fixture("stripe_checkout_session_completed"))
SUBJECT = "Order {{ params.order_id }} confirmed"
HTML = (
    "<p>Thanks {{ contact.FIRSTNAME }}! {{ params.amount }} {{ params.currency | upper }}</p>"
    '<p><a href="https://shop.example.com/orders/{{ params.order_id }}">Your order</a></p>'
)


def order_confirmation(template_id: int) -> dict[str, Any]:
    """The README's example rule: a paid checkout upserts the customer and confirms the order."""
    return {
        "name": "order confirmation",
        "when": "type == 'checkout.session.completed' && data.object.payment_status == 'paid'",
        "contact": {
            "email": "data.object.customer_details.email || data.object.customer_email",
            "attributes": {"FIRSTNAME": "data.object.customer_details.name"},
        },
        "send_email": {
            "template_id": template_id,
            "params": {
                "order_id": "data.object.id",
                "amount": "data.object.amount_total",
                "currency": "data.object.currency",
            },
        },
    }


def _emails(client: Any) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = client.get("/api/v1/emails").json()["data"]
    return data


def test_a_checkout_queues_an_order_confirmation_that_is_sent(
    client: Any, services: Services
) -> None:
    template = create_template(services, SUBJECT, HTML)
    hook = create_hook(client, "generic", rules=[order_confirmation(template)])
    with raw_client(client) as provider:
        assert provider.post(hook.url, json=CHECKOUT).status_code == 202
    services.inbound.runner.process_backlog()
    [queued] = _emails(client)
    assert queued["to"] == "jenny.rosen@example.com"
    assert queued["status"] == "queued"
    with email_worker(services):
        [email] = wait_for_status(services, [queued["id"]], {"sent"})
    assert email.subject == "Order cs_test_a1b2c3d4e5f6g7h8i9j0 confirmed"
    assert email.template_id == template
    contact = client.get("/api/v1/contacts/jenny.rosen@example.com").json()
    assert email.contact_id == contact["id"]
    raw = client.get(f"/api/v1/emails/{email.id}/raw").content
    html = message_from_bytes(raw, policy=policy.default).get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Thanks Jenny Rosen! 4200 EUR" in html
    [request] = client.get(f"/api/v1/inbound-webhooks/{hook.id}/requests").json()["data"]
    [action] = request["actions"]
    assert action["send_email"] == {"email_id": email.id, "to": email.to_email, "status": "queued"}


def test_preview_shows_the_email_and_queues_nothing(client: Any, services: Services) -> None:
    template = create_template(services, SUBJECT, HTML)
    hook = create_hook(client, "generic", rules=[order_confirmation(template)])
    answer = client.post(f"/api/v1/inbound-webhooks/{hook.id}/preview", json={"body": CHECKOUT})
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["error"] is None
    assert preview["matched"][0]["send_email"] == {
        "template_id": template,
        "to": None,
        "params": {"order_id": "cs_test_a1b2c3d4e5f6g7h8i9j0", "amount": 4200, "currency": "eur"},
    }
    assert preview["actions"][0]["send_email"]["to"] == "jenny.rosen@example.com"
    assert _emails(client) == []


def test_an_explicit_recipient_and_a_failing_rule(client: Any, services: Services) -> None:
    template = create_template(services, SUBJECT, HTML)
    rule = {
        "name": "notify ops",
        "send_email": {"template_id": template, "to": "data.object.metadata.notify"},
    }
    hook = create_hook(client, "generic", rules=[rule])
    with raw_client(client) as provider:
        body = {"data": {"object": {"metadata": {"notify": "ops@example.com"}}}}
        assert provider.post(hook.url, json=body).status_code == 202
        bad = {"data": {"object": {"metadata": {"notify": "not an address"}}}}
        assert provider.post(hook.url, json=bad).status_code == 202
    services.inbound.runner.process_backlog()
    [queued] = _emails(client)
    assert queued["to"] == "ops@example.com"
    assert emails_of(services, [queued["id"]])[0].contact_id is None  # no contact is created
    failed = client.get(
        f"/api/v1/inbound-webhooks/{hook.id}/requests", params={"status": "failed"}
    ).json()["data"]
    assert len(failed) == 1
    assert failed[0]["error_expression"] == "data.object.metadata.notify"


def test_rules_naming_an_unknown_template_are_refused(client: Any) -> None:
    rule = order_confirmation(12345)
    answer = client.post("/api/v1/inbound-webhooks", json={"source": "stripe", "rules": [rule]})
    assert answer.status_code == 422
    assert answer.json()["error"]["details"]["path"] == "rules[0].send_email.template_id"
    assert "12345" in answer.json()["error"]["message"]
