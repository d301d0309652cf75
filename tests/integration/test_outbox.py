"""The transactional outbox, on each backend: every change commits one message per catalog event
together with the change, no-op changes emit nothing, failing requests write nothing, and
``/api/v1/messages`` serves the exact bodies."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from hookhub.core.catalog import CATALOG
from hookhub.services import Services
from hookhub.store.schema import messages
from tests.integration.conftest import Outbox, RowCounts

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "boolean": (bool,),
    "null": (type(None),),
}


def assert_matches_catalog(payload: dict[str, Any]) -> None:
    """The body shape of DESIGN.md, and the data fields the catalog entry documents."""
    assert set(payload) == {"type", "timestamp", "data", "origin"}
    assert TIMESTAMP.match(payload["timestamp"]), payload["timestamp"]
    entry = CATALOG[payload["type"]]
    data = payload["data"]
    assert isinstance(data["contact_id"], int)
    assert isinstance(data["email"], str)
    for name in entry.required:
        assert name in data, f"{payload['type']} lacks {name}"
    for name, schema in entry.properties.items():
        if name in data and "type" in schema:
            kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            allowed = tuple(t for k in kinds for t in _JSON_TYPES[k])
            assert isinstance(data[name], allowed), f"{payload['type']}.{name}: {data[name]!r}"


def exercise_every_contact_event(client: Any) -> None:
    list_id = client.post("/api/v1/lists", json={"name": "VIP"}).json()["id"]
    ada = client.post(
        "/api/v1/contacts", json={"email": "ada@example.com", "attributes": {"PLAN": "free"}}
    ).json()
    client.patch(f"/api/v1/contacts/{ada['id']}", json={"attributes": {"PLAN": "pro"}})
    client.patch(f"/api/v1/contacts/{ada['id']}", json={"unsubscribed": True})
    client.post(f"/api/v1/lists/{list_id}/contacts", json={"contact_ids": [ada["id"]]})
    client.delete(f"/api/v1/lists/{list_id}/contacts/{ada['id']}")
    client.post(
        "/api/v1/events",
        json={"event_name": "paid", "identifiers": {"contact_id": ada["id"]}},
    )
    client.delete(f"/api/v1/contacts/{ada['id']}")


def test_each_change_emits_its_catalog_event_with_contact_and_email(
    client: Any, outbox: Outbox
) -> None:
    exercise_every_contact_event(client)
    payloads = outbox()
    assert sorted(p["type"] for p in payloads) == sorted(
        [
            "contact.created",
            "contact.updated",
            "contact.updated",
            "contact.unsubscribed",
            "list.contact_added",
            "list.contact_removed",
            "event.tracked",
            "contact.deleted",
        ]
    )
    for payload in payloads:
        assert_matches_catalog(payload)
        assert payload["data"]["email"] == "ada@example.com"


def test_contact_updated_lists_each_change_with_old_and_new(client: Any, outbox: Outbox) -> None:
    client.post(
        "/api/v1/contacts",
        json={"email": "ada@example.com", "attributes": {"PLAN": "free", "AGE": 36}},
    )
    client.patch(
        "/api/v1/contacts/ada@example.com",
        json={"ext_id": "cus_1", "attributes": {"PLAN": "pro", "AGE": None, "VIP": True}},
    )
    [updated] = outbox("contact.updated")
    assert updated["data"]["changes"] == {
        "ext_id": {"old": None, "new": "cus_1"},
        "PLAN": {"old": "free", "new": "pro"},
        "AGE": {"old": 36, "new": None},
        "VIP": {"old": None, "new": True},
    }


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("patch", "/api/v1/contacts/ada@example.com", {"attributes": {"PLAN": "free"}}),
        ("patch", "/api/v1/contacts/ada@example.com", {"attributes": {"NEVER_SET": None}}),
        ("patch", "/api/v1/contacts/ada@example.com", {"email": "ADA@example.com"}),
        ("patch", "/api/v1/contacts/ada@example.com", {"unsubscribed": False, "ext_id": None}),
        ("patch", "/api/v1/contacts/ada@example.com", {"list_ids": [1]}),
        ("patch", "/api/v1/contacts/ada@example.com", {"unlink_list_ids": [2]}),
        ("patch", "/api/v1/contacts/ada@example.com", {}),
        ("post", "/api/v1/contacts?upsert=true", {"email": "ada@example.com", "list_ids": [1]}),
        ("post", "/api/v1/lists/1/contacts", {"emails": ["ada@example.com"]}),
        ("patch", "/api/v1/lists/1", {"name": "VIP"}),
    ],
)
def test_a_change_that_changes_nothing_emits_nothing(
    client: Any, row_counts: RowCounts, method: str, path: str, body: dict[str, Any]
) -> None:
    assert client.post("/api/v1/lists", json={"name": "VIP"}).json()["id"] == 1
    assert client.post("/api/v1/lists", json={"name": "Other"}).json()["id"] == 2
    client.post(
        "/api/v1/contacts",
        json={"email": "ada@example.com", "attributes": {"PLAN": "free"}, "list_ids": [1]},
    )
    before = row_counts()
    contact = client.get("/api/v1/contacts/ada@example.com").json()
    response = getattr(client, method)(path, json=body)
    assert response.status_code in (200, 201), response.text
    assert row_counts() == before
    assert client.get("/api/v1/contacts/ada@example.com").json() == contact


FAILING_REQUESTS = [
    (
        "post",
        "/api/v1/contacts",
        {"email": "new@example.com", "attributes": {"PLAN": "x"}, "list_ids": [1, 99]},
        404,
    ),
    (
        "post",
        "/api/v1/contacts?upsert=true",
        {"email": "ada@example.com", "attributes": {"PLAN": "pro", "AGE": "old"}},
        422,
    ),
    (
        "patch",
        "/api/v1/contacts/ada@example.com",
        {"attributes": {"PLAN": "pro"}, "unsubscribed": True, "unlink_list_ids": [99]},
        404,
    ),
    (
        "patch",
        "/api/v1/contacts/ada@example.com",
        {"attributes": {"PLAN": "pro"}, "email": "grace@example.com"},
        409,
    ),
    (
        "post",
        "/api/v1/lists/1/contacts",
        {"emails": ["grace@example.com", "ghost@example.com"]},
        404,
    ),
    (
        "post",
        "/api/v1/events",
        {
            "event_name": "x",
            "identifiers": {"email": "new@example.com"},
            "contact_properties": {"PLAN": "y", "NEWATTR": 1},
            "event_properties": {"blob": "x" * 60_000},
        },
        422,
    ),
    (
        "post",
        "/api/v1/events",
        {
            "event_name": "x",
            "identifiers": {"email": "ada@example.com"},
            "contact_properties": {"NEWATTR": "a", "AGE": "old"},
        },
        422,
    ),
    ("post", "/api/v1/contacts", {"email": "new@example.com", "attributes": {"Z": [1]}}, 422),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), FAILING_REQUESTS)
def test_a_failing_request_writes_neither_rows_nor_messages(
    client: Any,
    row_counts: RowCounts,
    outbox: Outbox,
    method: str,
    path: str,
    body: dict[str, Any],
    status: int,
) -> None:
    client.post("/api/v1/lists", json={"name": "VIP"})
    client.post(
        "/api/v1/contacts", json={"email": "ada@example.com", "attributes": {"PLAN": "a", "AGE": 1}}
    )
    client.post("/api/v1/contacts", json={"email": "grace@example.com"})
    before, messages_before = row_counts(), outbox()
    ada = client.get("/api/v1/contacts/ada@example.com").json()
    response = getattr(client, method)(path, json=body)
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert row_counts() == before
    assert outbox() == messages_before
    assert client.get("/api/v1/contacts/ada@example.com").json() == ada
    assert client.get("/api/v1/lists/1").json()["contact_count"] == 0


def test_messages_filter_by_type_and_paginate(client: Any) -> None:
    for i in range(5):
        client.post("/api/v1/contacts", json={"email": f"c{i}@example.com"})
    client.patch("/api/v1/contacts/c0@example.com", json={"attributes": {"A": "b"}})
    updated = client.get("/api/v1/messages", params={"event_type": "contact.updated"}).json()
    assert [m["type"] for m in updated["data"]] == ["contact.updated"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "event_type": "contact.created"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/messages", params=params).json()
        seen += [m["payload"]["data"]["email"] for m in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"c{i}@example.com" for i in range(5)]
    assert client.get("/api/v1/messages", params={"cursor": "nope"}).status_code == 400


def test_one_message_is_served_with_its_exact_stored_body(client: Any, services: Services) -> None:
    client.post("/api/v1/contacts", json={"email": "ada@example.com", "attributes": {"N": 1.5}})
    [listed] = client.get("/api/v1/messages").json()["data"]
    one = client.get(f"/api/v1/messages/{listed['id']}")
    assert one.status_code == 200
    fields = ("id", "type", "payload", "created_at")
    assert {k: one.json()[k] for k in fields} == {k: listed[k] for k in fields}
    with services.db.read() as conn:
        stored = conn.execute(select(messages.c.payload)).scalar_one()
    assert orjson.dumps(one.json()["payload"]) == stored.encode()
    assert stored.encode() in one.content
    missing = client.get("/api/v1/messages/msg_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_metrics_count_committed_messages_by_type(client: Any) -> None:
    exercise_every_contact_event(client)
    client.post("/api/v1/contacts", json={"email": "bad"})
    text = client.get("/metrics").text
    assert 'hookhub_messages_created_total{type="contact.created"} 1.0' in text
    assert 'hookhub_messages_created_total{type="contact.updated"} 2.0' in text
    assert 'hookhub_messages_created_total{type="list.contact_removed"} 1.0' in text
