"""Rules: what an inbound webhook does with a payload (DESIGN.md, "Rules").

Driven through a generic webhook without authentication, so each test is a JSON payload in and
contacts, lists, events and messages out. Broken rules are refused when saved, with the path of
the faulty part, rather than failing later when a provider calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hookhub.services import Services
from tests.support.inbound import (
    Hook,
    create_hook,
    messages_of,
    raw_client,
    requests_of,
    side_effects,
)


@pytest.fixture
def sender(client: Any) -> Iterator[Any]:
    with raw_client(client) as raw:
        yield raw


@pytest.fixture
def lists(client: Any) -> dict[str, int]:
    ids = {}
    for name in ("customers", "vip"):
        response = client.post("/api/v1/lists", json={"name": name})
        assert response.status_code == 201, response.text
        ids[name] = int(response.json()["id"])
    return ids


def _deliver(client: Any, sender: Any, services: Services, hook: Hook, *payloads: Any) -> list[Any]:
    """Send each payload, process them, and answer each request's actions in order."""
    for payload in payloads:
        response = sender.post(hook.path, json=payload)
        assert response.status_code == 202, response.text
    assert services.inbound.process_backlog() == len(payloads)
    done = sorted(requests_of(client, hook), key=lambda r: r["id"])[-len(payloads) :]
    assert [r["status"] for r in done] == ["processed"] * len(payloads), done
    return [r["actions"] for r in done]


def _contact(client: Any, email: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/contacts/{email}")
    assert response.status_code == 200, response.text
    contact: dict[str, Any] = response.json()
    return contact


def test_when_and_event_types_choose_the_rules_that_run(
    client: Any, sender: Any, services: Services
) -> None:
    rules = [
        {"name": "paid", "when": "amount > `0`", "contact": {"email": "email"}},
        {
            "name": "typed",
            "event_types": ["order.paid"],
            "contact": {"email": "email", "attributes": {"LAST_ORDER": "id"}},
        },
        {"name": "never", "when": "missing.field", "contact": {"email": "email"}},
    ]
    hook = create_hook(client, "generic", rules=rules, options={"event_type_path": "type"})
    free, paid, other = _deliver(
        client,
        sender,
        services,
        hook,
        {"type": "order.paid", "id": "o1", "email": "free@example.com", "amount": 0},
        {"type": "order.paid", "id": "o2", "email": "paid@example.com", "amount": 12},
        {"type": "order.refunded", "id": "o3", "email": "other@example.com", "amount": 5},
    )
    assert [a["rule"] for a in free] == ["typed"]
    assert [a["rule"] for a in paid] == ["paid", "typed"]
    assert [a["rule"] for a in other] == ["paid"]
    assert _contact(client, "paid@example.com")["attributes"] == {"LAST_ORDER": "o2"}
    assert _contact(client, "other@example.com")["attributes"] == {}


def test_several_rules_act_in_order_with_lists_and_a_dated_event(
    client: Any, sender: Any, services: Services, lists: dict[str, int]
) -> None:
    rules = [
        {
            "name": "customer",
            "contact": {
                "email": "customer.email",
                "attributes": {"FIRSTNAME": "customer.first", "CITY": "customer.address.city"},
            },
            "add_to_lists": [lists["customers"]],
        },
        {
            "name": "big spender",
            "when": "total >= `100`",
            "contact": {"email": "customer.email"},
            "add_to_lists": [lists["vip"]],
            "event": {
                "name": "order_placed",
                "properties": {
                    "total": "total",
                    "skus": "items[].sku",
                    "first_item": "items[0].title",
                    "coupon": "coupon",
                },
                "date": "placed_at",
            },
        },
    ]
    hook = create_hook(client, "generic", rules=rules)
    order = {
        "customer": {"email": "Ann@Example.com", "first": "Ann", "address": {"city": "Turin"}},
        "total": 120.5,
        "items": [{"sku": "A-1", "title": "Kettle"}, {"sku": "B-2", "title": "Mug"}],
        "placed_at": "2024-05-01T10:00:00+02:00",
    }
    [actions] = _deliver(client, sender, services, hook, order)
    assert [a["rule"] for a in actions] == ["customer", "big spender"]
    assert actions[0]["contact"] == "created"
    assert actions[1]["contact"] == "unchanged"
    assert actions[1]["lists_added"] == [lists["vip"]]

    contact = _contact(client, "ann@example.com")
    assert contact["attributes"] == {"FIRSTNAME": "Ann", "CITY": "Turin"}
    assert sorted(contact["list_ids"]) == sorted(lists.values())
    [event] = client.get("/api/v1/events", params={"contact": "ann@example.com"}).json()["data"]
    assert event["event_name"] == "order_placed"
    assert event["event_properties"] == {
        "total": 120.5,
        "skus": ["A-1", "B-2"],
        "first_item": "Kettle",
        "coupon": None,
    }
    assert event["event_date"] == "2024-05-01T08:00:00.000Z"

    added = {m["data"]["list_id"] for m in messages_of(client, "list.contact_added")}
    assert added == set(lists.values())
    [created] = messages_of(client, "contact.created")
    assert created["data"]["list_ids"] == [lists["customers"]]
    assert len(messages_of(client, "event.tracked")) == 1


def test_event_date_in_unix_seconds_and_missing_date_means_now(
    client: Any, sender: Any, services: Services
) -> None:
    rules = [{"contact": {"email": "email"}, "event": {"name": "ping", "date": "at"}}]
    hook = create_hook(client, "generic", rules=rules)
    _deliver(
        client,
        sender,
        services,
        hook,
        {"email": "u@example.com", "at": 1700000000},
        {"email": "u@example.com"},
    )
    events = client.get("/api/v1/events", params={"contact": "u@example.com"}).json()["data"]
    dates = sorted(e["event_date"] for e in events)
    assert dates[0] == "2023-11-14T22:13:20.000Z"
    assert dates[1] > "2025", "no date in the payload: the time it was processed"


def test_modes_upsert_update_only_and_create_only(
    client: Any, sender: Any, services: Services
) -> None:
    existing = client.post(
        "/api/v1/contacts", json={"email": "known@example.com", "attributes": {"PLAN": "free"}}
    )
    assert existing.status_code == 201
    before = len(messages_of(client))

    def rule(mode: str) -> dict[str, Any]:
        return {
            "name": mode,
            "when": f"mode == '{mode}'",
            "contact": {"email": "email", "attributes": {"PLAN": "plan"}, "mode": mode},
            "event": {"name": f"seen_{mode}"},
        }

    hook = create_hook(
        client, "generic", rules=[rule("upsert"), rule("update_only"), rule("create_only")]
    )
    results = _deliver(
        client,
        sender,
        services,
        hook,
        {"mode": "update_only", "email": "stranger@example.com", "plan": "pro"},
        {"mode": "create_only", "email": "known@example.com", "plan": "pro"},
        {"mode": "update_only", "email": "known@example.com", "plan": "team"},
        {"mode": "create_only", "email": "new@example.com", "plan": "pro"},
        {"mode": "upsert", "email": "known@example.com", "plan": "enterprise"},
    )
    outcomes = [actions[0]["contact"] for actions in results]
    assert outcomes == [
        "skipped: no such contact (update_only)",
        "unchanged: exists (create_only)",
        "updated",
        "created",
        "updated",
    ]
    assert "event_id" not in results[0][0], "a skipped contact gets no event either"
    assert client.get("/api/v1/contacts/stranger@example.com").status_code == 404
    assert _contact(client, "known@example.com")["attributes"] == {"PLAN": "enterprise"}
    assert _contact(client, "new@example.com")["attributes"] == {"PLAN": "pro"}

    updates = [m["data"]["changes"]["PLAN"] for m in messages_of(client, "contact.updated")]
    assert sorted((c["old"], c["new"]) for c in updates) == [
        ("free", "team"),
        ("team", "enterprise"),
    ]
    assert len(messages_of(client)) == before + 2 + 1 + 4  # 2 updates, 1 created, 4 events


def test_values_are_coerced_to_declared_attribute_types(
    client: Any, sender: Any, services: Services
) -> None:
    for name, kind in (("SCORE", "number"), ("OPTED_IN", "boolean"), ("COUNT", "string")):
        response = client.post("/api/v1/attributes", json={"name": name, "type": kind})
        assert response.status_code == 201, response.text
    rules = [
        {
            "contact": {
                "email": "email",
                "attributes": {
                    "SCORE": "score",
                    "OPTED_IN": "opted_in",
                    "COUNT": "count",
                    "UNDECLARED": "count",
                },
            }
        }
    ]
    hook = create_hook(client, "generic", rules=rules)
    _deliver(
        client,
        sender,
        services,
        hook,
        {"email": "c@example.com", "score": "42", "opted_in": "yes", "count": 7},
    )
    attributes = _contact(client, "c@example.com")["attributes"]
    # An attribute nobody declared is text: a payload's value does not fix its type.
    assert attributes == {"SCORE": 42, "OPTED_IN": True, "COUNT": "7", "UNDECLARED": "7"}


def test_form_fields_as_attributes(client: Any, sender: Any, services: Services) -> None:
    """A form-encoded body parses to strings; attributes_from maps every field at once."""
    rules = [{"contact": {"email": "email", "attributes_from": ["@"]}}]
    hook = create_hook(client, "generic", rules=rules)
    response = sender.post(
        hook.path,
        content=b"email=f%40example.com&plan=pro&utm_source=ads&2bad=x&tags=a&tags=b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 202
    services.inbound.process_backlog()
    [request] = requests_of(client, hook)
    [action] = request["actions"]
    assert sorted(action["skipped_attributes"]) == ["2bad", "email"]
    # A repeated field is a list, and lists are no attribute value: it is left out.
    assert _contact(client, "f@example.com")["attributes"] == {"PLAN": "pro", "UTM_SOURCE": "ads"}


def test_attributes_from_objects_with_explicit_mappings_winning(
    client: Any, sender: Any, services: Services
) -> None:
    rules = [
        {
            "contact": {
                "email": "email",
                "attributes_from": ["profile", "missing"],
                "attributes": {"PLAN": "upper(profile.plan)"},
            }
        }
    ]
    hook = create_hook(client, "generic", rules=rules)
    _deliver(
        client,
        sender,
        services,
        hook,
        {
            "email": "o@example.com",
            "profile": {"plan": "pro", "seats": 3, "nested": {"no": 1}, "gone": None},
        },
    )
    assert _contact(client, "o@example.com")["attributes"] == {"PLAN": "PRO", "SEATS": "3"}


INVALID_RULES = [
    ({"when": "type == "}, "rules[0].when"),
    ({"contact": {"email": "data.["}}, "rules[0].contact.email"),
    ({"contact": {"email": "email"}, "colour": "red"}, "rules[0]"),
    ({"contact": {"email": "email", "phone": "phone"}}, "rules[0].contact"),
    ({"contact": {"email": "email"}, "event": {"name": "x", "when": "y"}}, "rules[0].event"),
    (
        {"contact": {"email": "email"}, "send_email": {"template_id": 2}},
        "rules[0].send_email.template_id",
    ),
    ({"send_email": {"template_id": 2}}, "rules[0].send_email"),
    ({"contact": {"email": "email"}, "send_email": {"template": 2}}, "rules[0].send_email"),
    ({"contact": {"email": "email"}, "start_automation": 5}, "rules[0].start_automation"),
    ({"contact": {"email": "email", "mode": "merge"}}, "rules[0].contact.mode"),
    ({"contact": {"email": "email"}, "add_to_lists": ["vip"]}, "rules[0].add_to_lists"),
    ({"contact": {"email": "email"}, "event": {"name": "has space"}}, "rules[0].event.name"),
    ({"contact": {"attributes": {"A": "a"}}}, "rules[0].contact"),
    ({"add_to_lists": [1]}, "rules[0]"),
    (
        {"contact": {"email": "email", "attributes": {"1ST": "a"}}},
        "rules[0].contact.attributes.1ST",
    ),
    ({"contact": {"email": "email"}, "event_types": "push"}, "rules[0].event_types"),
    ({"when": "kind == 'a\u0000'", "contact": {"email": "email"}}, "rules[0].when"),
]


def test_invalid_rules_are_refused_with_the_path(client: Any, services: Services) -> None:
    good = {"name": "fine", "contact": {"email": "email"}}
    hook = create_hook(client, "generic", rules=[good])
    for rule, path in INVALID_RULES:
        created = client.post(
            "/api/v1/inbound-webhooks", json={"source": "generic", "rules": [rule]}
        )
        assert created.status_code == 422, (rule, created.text)
        error = created.json()["error"]
        assert error["code"] == "validation_error"
        assert error["details"]["path"] == path, rule
        assert error["message"].startswith(path), rule

        patched = client.patch(f"/api/v1/inbound-webhooks/{hook.id}", json={"rules": [good, rule]})
        assert patched.status_code == 422, (rule, patched.text)
        assert patched.json()["error"]["details"]["path"] == path.replace("rules[0]", "rules[1]")

    assert client.get(f"/api/v1/inbound-webhooks/{hook.id}").json()["rules"] == [good]
    assert [w["id"] for w in client.get("/api/v1/inbound-webhooks").json()["data"]] == [hook.id]
    assert side_effects(services)["contacts"] == 0
