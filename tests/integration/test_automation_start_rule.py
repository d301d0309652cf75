"""The inbound rule action start_automation: a Typeform lead starts a welcome series.

The contact is enrolled in the rule's transaction (a failing rule enrols nobody), with trigger
type ``inbound`` and the request as trigger data; the automation's filter applies; the preview
shows the enrollment without keeping it; an automation that does not exist is refused when the
rules are saved and fails the request when it was deleted since.
"""

from __future__ import annotations

from typing import Any

from hookhub.services import Services
from tests.support.automations import (
    delete_automation,
    enrollments_of,
    make_automation,
    update_automation,
)
from tests.support.inbound import create_hook, raw_client


def lead_rule(automation_id: int) -> dict[str, Any]:
    return {
        "name": "new lead",
        "when": "form_response.answers[?field.ref=='email'] | [0].email != null",
        "contact": {
            "email": "form_response.answers[?field.ref=='email'] | [0].email",
            "attributes": {"PLAN": "form_response.hidden.plan"},
        },
        "start_automation": automation_id,
    }


def lead(email: str, plan: str = "pro") -> dict[str, Any]:
    return {
        "event_type": "form_response",
        "form_response": {
            "form_id": "lT4Z3j",
            "hidden": {"plan": plan},
            "answers": [{"type": "email", "email": email, "field": {"ref": "email"}}],
        },
    }


def _requests(client: Any, hook_id: int) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/inbound-webhooks/{hook_id}/requests")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def _send(client: Any, services: Services, url: str, *bodies: dict[str, Any]) -> None:
    with raw_client(client) as provider:
        for body in bodies:
            assert provider.post(url, json=body).status_code == 202
    services.inbound.runner.process_backlog()


def test_a_lead_enrols_its_contact_with_the_request_as_trigger(
    client: Any, services: Services
) -> None:
    automation = make_automation(
        services,
        {"trigger": {"type": "manual"}, "filter": "trigger.payload.form_response.hidden.plan"},
    )
    hook = create_hook(client, "generic", rules=[lead_rule(automation)])
    _send(client, services, hook.url, lead("ada@example.com"))
    [enrollment] = enrollments_of(services, automation)
    [request] = _requests(client, hook.id)
    assert request["status"] == "processed", request
    contact = client.get("/api/v1/contacts/ada@example.com").json()
    assert enrollment["contact_id"] == contact["id"]
    assert enrollment["status"] == "active"
    assert enrollment["trigger"] == {
        "type": "inbound",
        "data": {
            "inbound_webhook_id": hook.id,
            "request_id": request["id"],
            "payload": lead("ada@example.com"),
        },
    }
    [action] = request["actions"]
    assert action["start_automation"] == {
        "automation_id": automation,
        "status": "entered",
        "enrollment_id": enrollment["id"],
    }
    entered = client.get("/api/v1/messages", params={"event_type": "automation.entered"})
    [message] = entered.json()["data"]
    assert message["payload"]["data"]["trigger"] == "inbound"


def test_the_filter_applies_and_reentry_too(client: Any, services: Services) -> None:
    automation = make_automation(
        services,
        {
            "trigger": {"type": "contact.unsubscribed"},  # any automation may be started so
            "filter": "contact.attributes.PLAN == 'pro'",
        },
    )
    hook = create_hook(client, "generic", rules=[lead_rule(automation)])
    _send(
        client,
        services,
        hook.url,
        lead("free@example.com", "free"),
        lead("ada@example.com"),
        lead("ada@example.com"),  # reentry never: once
    )
    [enrollment] = enrollments_of(services, automation)
    assert enrollment["trigger"]["data"]["payload"]["form_response"]["hidden"]["plan"] == "pro"
    statuses = [r["actions"][0]["start_automation"]["status"] for r in _requests(client, hook.id)]
    assert sorted(statuses) == [
        "entered",
        "not entered: its filter or reentry kept the contact out",
        "not entered: its filter or reentry kept the contact out",
    ]


def test_a_failing_rule_enrols_nobody(client: Any, services: Services) -> None:
    automation = make_automation(services, {"trigger": {"type": "manual"}})
    rule = lead_rule(automation)
    rule["event"] = {"name": "lead", "date": "form_response.hidden.when"}
    hook = create_hook(client, "generic", rules=[rule])
    body = lead("ada@example.com")
    body["form_response"]["hidden"]["when"] = "not a date"
    _send(client, services, hook.url, body)
    [request] = _requests(client, hook.id)
    assert request["status"] == "failed"
    assert enrollments_of(services) == []


def test_preview_shows_the_enrollment_without_keeping_it(client: Any, services: Services) -> None:
    automation = make_automation(services, {"trigger": {"type": "manual"}})
    hook = create_hook(client, "generic", rules=[lead_rule(automation)])
    answer = client.post(
        f"/api/v1/inbound-webhooks/{hook.id}/preview", json={"body": lead("ada@example.com")}
    )
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert preview["error"] is None
    assert preview["matched"][0]["start_automation"] == {"automation_id": automation}
    assert preview["actions"][0]["start_automation"]["status"] == "entered"
    assert "automation.entered" in [m["type"] for m in preview["messages"]]
    assert enrollments_of(services) == []


def test_a_missing_automation_is_refused_at_save(client: Any, services: Services) -> None:
    answer = client.post(
        "/api/v1/inbound-webhooks", json={"source": "generic", "rules": [lead_rule(4242)]}
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["details"]["path"] == "rules[0].start_automation"
    assert "4242" in error["message"]
    hook = create_hook(client, "generic", rules=[])
    answer = client.patch(f"/api/v1/inbound-webhooks/{hook.id}", json={"rules": [lead_rule(4242)]})
    assert answer.status_code == 422, answer.text
    answer = client.post(
        "/api/v1/inbound-webhooks",
        json={"source": "generic", "rules": [{**lead_rule(1), "contact": None}]},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"]["path"] == "rules[0].start_automation"
    answer = client.post(
        "/api/v1/inbound-webhooks",
        json={"source": "generic", "rules": [lead_rule("1")]},  # type: ignore[arg-type]
    )
    assert answer.status_code == 422, answer.text


def test_a_deleted_automation_fails_the_request_and_a_disabled_one_starts_nobody(
    client: Any, services: Services
) -> None:
    automation = make_automation(services, {"trigger": {"type": "manual"}})
    hook = create_hook(client, "generic", rules=[lead_rule(automation)])
    update_automation(services, automation, {"enabled": False})
    _send(client, services, hook.url, lead("ada@example.com"))
    [request] = _requests(client, hook.id)
    assert request["status"] == "processed"
    assert request["actions"][0]["start_automation"]["status"] == (
        "not started: the automation is disabled"
    )
    delete_automation(services, automation)
    _send(client, services, hook.url, lead("bob@example.com"))
    failed = [r for r in _requests(client, hook.id) if r["status"] == "failed"]
    assert len(failed) == 1
    assert f"no automation {automation}" in failed[0]["error"]
    assert client.get("/api/v1/contacts/bob@example.com").status_code == 404
    assert enrollments_of(services) == []
