"""Lists through the REST API, on each backend: CRUD, contact_count, and membership changes,
which are all-or-nothing and announced in the outbox."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Outbox, RowCounts

L = "/api/v1/lists"


def make_list(client: Any, name: str) -> dict[str, Any]:
    response = client.post(L, json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def make_contact(client: Any, email: str) -> int:
    response = client.post("/api/v1/contacts", json={"email": email})
    assert response.status_code == 201, response.text
    contact_id: int = response.json()["id"]
    return contact_id


def test_created_list_has_the_contract_fields_and_a_trimmed_name(client: Any) -> None:
    body = make_list(client, "  Newsletter  ")
    assert body["name"] == "Newsletter"
    assert body["contact_count"] == 0
    assert body["created_at"].endswith("Z")
    assert client.get(f"{L}/{body['id']}").json() == body


@pytest.mark.parametrize("name", ["", "   ", "x" * 256, None, 5])
def test_blank_or_bad_list_name_is_422(client: Any, name: Any) -> None:
    assert client.post(L, json={"name": name}).status_code == 422
    assert client.get(L).json()["data"] == []


def test_duplicate_list_name_is_409_on_create_and_on_rename(client: Any) -> None:
    make_list(client, "VIP")
    other = make_list(client, "Leads")
    duplicate = client.post(L, json={"name": " VIP "})
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "conflict"
    renamed = client.patch(f"{L}/{other['id']}", json={"name": "VIP"})
    assert renamed.status_code == 409
    assert client.get(f"{L}/{other['id']}").json()["name"] == "Leads"


def test_rename_trims_like_create(client: Any) -> None:
    created = make_list(client, "Leads")
    renamed = client.patch(f"{L}/{created['id']}", json={"name": "  Hot leads "})
    assert renamed.status_code == 200
    assert renamed.json() == {**created, "name": "Hot leads"}
    blank = client.patch(f"{L}/{created['id']}", json={"name": "  "})
    assert blank.status_code == 422


def test_lists_paginate(client: Any) -> None:
    ids = [make_list(client, f"list {i}")["id"] for i in range(5)]
    first = client.get(L, params={"limit": 2}).json()
    second = client.get(L, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = client.get(L, params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [x["id"] for x in first["data"] + second["data"] + third["data"]] == ids
    assert third["next_cursor"] is None


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_list_is_404(client: Any, method: str) -> None:
    kwargs = {"json": {"name": "x"}} if method == "patch" else {}
    response = getattr(client, method)(f"{L}/4242", **kwargs)
    assert response.status_code == 404
    assert response.json()["error"]["details"] == {"list_id": 4242}


def test_adding_contacts_by_email_and_id_counts_and_announces_them(
    client: Any, outbox: Outbox
) -> None:
    vip = make_list(client, "VIP")
    ada = make_contact(client, "ada@example.com")
    grace = make_contact(client, "grace@example.com")
    response = client.post(
        f"{L}/{vip['id']}/contacts",
        json={"emails": ["ADA@example.com"], "contact_ids": [grace, grace]},
    )
    assert response.status_code == 201
    assert sorted(response.json()["added"]) == sorted([ada, grace])
    assert response.json()["already_members"] == []
    assert client.get(f"{L}/{vip['id']}").json()["contact_count"] == 2
    assert client.get(f"/api/v1/contacts/{ada}").json()["list_ids"] == [vip["id"]]
    added = outbox("list.contact_added")
    assert sorted((m["data"]["contact_id"], m["data"]["email"]) for m in added) == [
        (ada, "ada@example.com"),
        (grace, "grace@example.com"),
    ]
    assert {m["data"]["list_id"] for m in added} == {vip["id"]}
    assert {m["data"]["list_name"] for m in added} == {"VIP"}


def test_adding_members_again_adds_nothing_and_emits_nothing(client: Any, outbox: Outbox) -> None:
    vip = make_list(client, "VIP")
    ada = make_contact(client, "ada@example.com")
    client.post(f"{L}/{vip['id']}/contacts", json={"contact_ids": [ada]})
    again = client.post(f"{L}/{vip['id']}/contacts", json={"emails": ["ada@example.com"]})
    assert again.json() == {"added": [], "already_members": [ada]}
    assert len(outbox("list.contact_added")) == 1


def test_one_unknown_contact_means_nobody_is_added(
    client: Any, outbox: Outbox, row_counts: RowCounts
) -> None:
    vip = make_list(client, "VIP")
    ada = make_contact(client, "ada@example.com")
    before = row_counts()
    response = client.post(
        f"{L}/{vip['id']}/contacts",
        json={"emails": ["ada@example.com", "ghost@example.com"], "contact_ids": [ada, 999]},
    )
    assert response.status_code == 404
    assert response.json()["error"]["details"] == {
        "emails": ["ghost@example.com"],
        "contact_ids": [999],
    }
    assert row_counts() == before
    assert client.get(f"{L}/{vip['id']}").json()["contact_count"] == 0
    assert outbox("list.contact_added") == []


def test_adding_to_an_unknown_list_or_with_a_bad_email_is_4xx(client: Any) -> None:
    make_contact(client, "ada@example.com")
    unknown = client.post(f"{L}/4242/contacts", json={"emails": ["ada@example.com"]})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["details"] == {"list_ids": [4242]}
    vip = make_list(client, "VIP")
    bad = client.post(f"{L}/{vip['id']}/contacts", json={"emails": ["not an email"]})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"] == {"field": "email"}


def test_removing_a_member_by_email_or_id(client: Any, outbox: Outbox) -> None:
    vip = make_list(client, "VIP")
    ada = make_contact(client, "ada@example.com")
    grace = make_contact(client, "grace@example.com")
    client.post(f"{L}/{vip['id']}/contacts", json={"contact_ids": [ada, grace]})
    assert client.delete(f"{L}/{vip['id']}/contacts/Ada@Example.com").status_code == 204
    assert client.delete(f"{L}/{vip['id']}/contacts/{grace}").status_code == 204
    assert client.get(f"{L}/{vip['id']}").json()["contact_count"] == 0
    removed = outbox("list.contact_removed")
    assert sorted(m["data"]["contact_id"] for m in removed) == sorted([ada, grace])
    assert {m["data"]["list_name"] for m in removed} == {"VIP"}


@pytest.mark.parametrize(
    ("list_exists", "ref"),
    [(True, "ada@example.com"), (True, "ghost@example.com"), (False, "ada@example.com")],
)
def test_removing_a_non_member_is_404_and_emits_nothing(
    client: Any, outbox: Outbox, list_exists: bool, ref: str
) -> None:
    vip = make_list(client, "VIP")
    make_contact(client, "ada@example.com")
    list_id = vip["id"] if list_exists else 4242
    response = client.delete(f"{L}/{list_id}/contacts/{ref}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert outbox("list.contact_removed") == []


def test_deleting_a_list_keeps_its_contacts(client: Any) -> None:
    vip = make_list(client, "VIP")
    ada = make_contact(client, "ada@example.com")
    client.post(f"{L}/{vip['id']}/contacts", json={"contact_ids": [ada]})
    assert client.delete(f"{L}/{vip['id']}").status_code == 204
    assert client.get(f"{L}/{vip['id']}").status_code == 404
    contact = client.get(f"/api/v1/contacts/{ada}")
    assert contact.status_code == 200
    assert contact.json()["list_ids"] == []
    assert make_list(client, "VIP")["name"] == "VIP"
