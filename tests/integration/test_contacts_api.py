"""Contacts through the REST API, on each backend: the contract of DESIGN.md."""

from __future__ import annotations

from typing import Any

import orjson


def messages(client: Any, event_type: str | None = None) -> list[dict[str, Any]]:
    params = {"limit": 1000, **({"event_type": event_type} if event_type else {})}
    response = client.get("/api/v1/messages", params=params)
    assert response.status_code == 200
    return [m["payload"] for m in response.json()["data"]]


def test_create_normalizes_email_and_emits_contact_created(client: Any) -> None:
    created = client.post(
        "/api/v1/contacts",
        json={"email": "  Ada@Example.COM ", "attributes": {"firstname": "Ada", "age": 36}},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["email"] == "ada@example.com"
    assert body["attributes"] == {"FIRSTNAME": "Ada", "AGE": 36}
    [payload] = messages(client)
    assert payload["type"] == "contact.created"
    assert payload["data"]["contact_id"] == body["id"]
    assert payload["data"]["email"] == "ada@example.com"
    assert payload["timestamp"].endswith("Z")


def test_duplicate_email_is_409_and_upsert_updates(client: Any) -> None:
    client.post("/api/v1/contacts", json={"email": "a@example.com", "attributes": {"PLAN": "free"}})
    again = client.post("/api/v1/contacts", json={"email": "A@example.com"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    upserted = client.post(
        "/api/v1/contacts?upsert=true",
        json={"email": "a@example.com", "attributes": {"PLAN": "pro"}},
    )
    assert upserted.status_code == 200
    assert upserted.json()["attributes"] == {"PLAN": "pro"}
    [update] = messages(client, "contact.updated")
    assert update["data"]["changes"] == {"PLAN": {"old": "free", "new": "pro"}}


def test_change_that_changes_nothing_emits_nothing(client: Any) -> None:
    client.post("/api/v1/contacts", json={"email": "a@example.com", "attributes": {"PLAN": "x"}})
    same = client.patch("/api/v1/contacts/a@example.com", json={"attributes": {"PLAN": "x"}})
    assert same.status_code == 200
    assert [m["type"] for m in messages(client)] == ["contact.created"]


def test_wrong_attribute_type_is_rejected_and_nothing_written(client: Any) -> None:
    client.post("/api/v1/contacts", json={"email": "a@example.com", "attributes": {"AGE": 3}})
    bad = client.post(
        "/api/v1/contacts", json={"email": "b@example.com", "attributes": {"AGE": "three"}}
    )
    assert bad.status_code == 422
    assert "AGE" in bad.json()["error"]["message"]
    assert client.get("/api/v1/contacts/b@example.com").status_code == 404
    assert len(messages(client)) == 1


def test_unknown_list_is_404_and_nothing_written(client: Any) -> None:
    response = client.post("/api/v1/contacts", json={"email": "a@example.com", "list_ids": [99]})
    assert response.status_code == 404
    assert response.json()["error"]["details"] == {"list_ids": [99]}
    assert client.get("/api/v1/contacts").json()["data"] == []
    assert messages(client) == []


def test_payload_is_stored_bytes(client: Any) -> None:
    client.post("/api/v1/contacts", json={"email": "a@example.com"})
    listing = client.get("/api/v1/messages").content
    payload = orjson.loads(listing)["data"][0]["payload"]
    assert orjson.dumps(payload) in listing
