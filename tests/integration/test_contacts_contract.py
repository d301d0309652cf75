"""Contacts through the REST API, on each backend: identity, typed attributes, refs, PATCH
semantics, deletion, pagination and filters, as DESIGN.md's contract promises them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Outbox, RowCounts

C = "/api/v1/contacts"


def create(client: Any, email: str, **fields: Any) -> dict[str, Any]:
    response = client.post(C, json={"email": email, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def make_list(client: Any, name: str) -> int:
    response = client.post("/api/v1/lists", json={"name": name})
    assert response.status_code == 201, response.text
    list_id: int = response.json()["id"]
    return list_id


def types_of(outbox: Outbox) -> list[str]:
    return sorted(m["type"] for m in outbox())


# -- identity ---------------------------------------------------------------------------------


def test_created_contact_has_every_contract_field(client: Any) -> None:
    body = create(client, "ada@example.com", ext_id=" crm-1 ", attributes={"plan": "pro"})
    assert set(body) >= {
        "id",
        "email",
        "ext_id",
        "attributes",
        "list_ids",
        "unsubscribed",
        "created_at",
        "updated_at",
    }
    assert body["ext_id"] == "crm-1"
    assert body["list_ids"] == []
    assert body["unsubscribed"] is False
    assert body["created_at"] == body["updated_at"]
    assert body["created_at"].endswith("Z")


@pytest.mark.parametrize("email", ["not-an-email", "a@", "", "   ", "a@b@example.com"])
def test_invalid_email_is_422_naming_the_field_and_stores_nothing(
    client: Any, row_counts: RowCounts, email: str
) -> None:
    before = row_counts()
    response = client.post(C, json={"email": email})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == {"field": "email"}
    assert row_counts() == before


def test_ext_id_clash_is_409_on_create_and_on_patch(client: Any, outbox: Outbox) -> None:
    ada = create(client, "ada@example.com", ext_id="cus_1")
    grace = create(client, "grace@example.com")
    clash = client.post(C, json={"email": "alan@example.com", "ext_id": "cus_1"})
    assert clash.status_code == 409
    assert clash.json()["error"]["details"] == {"field": "ext_id", "contact_id": ada["id"]}
    patched = client.patch(f"{C}/{grace['id']}", json={"ext_id": " cus_1 "})
    assert patched.status_code == 409
    assert client.get(f"{C}/alan@example.com").status_code == 404
    assert client.get(f"{C}/{grace['id']}").json()["ext_id"] is None
    assert types_of(outbox) == ["contact.created", "contact.created"]


def test_ext_id_can_be_changed_and_cleared(client: Any) -> None:
    ada = create(client, "ada@example.com", ext_id="cus_1")
    assert client.patch(f"{C}/{ada['id']}", json={"ext_id": "cus_2"}).json()["ext_id"] == "cus_2"
    assert client.patch(f"{C}/{ada['id']}", json={"ext_id": None}).json()["ext_id"] is None
    listed = client.get(C, params={"ext_id": "cus_2"}).json()["data"]
    assert listed == []


def test_contact_is_addressed_by_id_or_by_email_in_any_case(client: Any) -> None:
    ada = create(client, "ada@example.com")
    by_id = client.get(f"{C}/{ada['id']}")
    by_email = client.get(f"{C}/ADA@Example.com")
    assert by_id.status_code == by_email.status_code == 200
    assert by_id.json() == by_email.json() == ada


@pytest.mark.parametrize("ref", ["999", "nobody@example.com", "no-at-sign", "²", "12a"])
def test_unknown_contact_ref_is_404_json(client: Any, ref: str) -> None:
    create(client, "ada@example.com")
    for response in (
        client.get(f"{C}/{ref}"),
        client.patch(f"{C}/{ref}", json={"attributes": {"A": "b"}}),
        client.delete(f"{C}/{ref}"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"


# -- create, upsert ---------------------------------------------------------------------------


def test_upsert_of_a_new_email_creates_with_201(client: Any, outbox: Outbox) -> None:
    response = client.post(f"{C}?upsert=true", json={"email": "new@example.com"})
    assert response.status_code == 201
    assert types_of(outbox) == ["contact.created"]


def test_upsert_that_changes_nothing_answers_200_and_emits_nothing(
    client: Any, outbox: Outbox
) -> None:
    create(client, "ada@example.com", attributes={"PLAN": "pro"})
    again = client.post(
        f"{C}?upsert=true", json={"email": "ADA@example.com", "attributes": {"plan": "pro"}}
    )
    assert again.status_code == 200
    assert again.json()["attributes"] == {"PLAN": "pro"}
    assert types_of(outbox) == ["contact.created"]


def test_upsert_adds_lists_and_sets_ext_id(client: Any, outbox: Outbox) -> None:
    list_id = make_list(client, "Customers")
    create(client, "ada@example.com")
    response = client.post(
        f"{C}?upsert=true",
        json={"email": "ada@example.com", "ext_id": "cus_9", "list_ids": [list_id]},
    )
    assert response.status_code == 200
    assert response.json()["list_ids"] == [list_id]
    assert response.json()["ext_id"] == "cus_9"
    [added] = outbox("list.contact_added")
    assert added["data"]["list_id"] == list_id
    [updated] = outbox("contact.updated")
    assert updated["data"]["changes"] == {"ext_id": {"old": None, "new": "cus_9"}}


def test_create_with_lists_makes_the_contact_a_member(client: Any, outbox: Outbox) -> None:
    first, second = make_list(client, "A"), make_list(client, "B")
    body = create(client, "ada@example.com", list_ids=[second, first, first])
    assert body["list_ids"] == [first, second]
    assert client.get(f"/api/v1/lists/{first}").json()["contact_count"] == 1
    created = outbox("contact.created")[0]["data"]
    assert created["list_ids"] == [first, second]
    added = outbox("list.contact_added")
    assert sorted(m["data"]["list_id"] for m in added) == [first, second]


def test_create_unsubscribed_contact_announces_the_unsubscription(
    client: Any, outbox: Outbox
) -> None:
    body = create(client, "ada@example.com", unsubscribed=True)
    assert body["unsubscribed"] is True
    assert client.get(f"{C}/ada@example.com").json()["unsubscribed"] is True
    assert len(outbox("contact.unsubscribed")) == 1


# -- typed attributes -------------------------------------------------------------------------


def test_declared_attribute_types_are_enforced(client: Any) -> None:
    for name, kind in [("birthday", "date"), ("vip", "boolean"), ("score", "number")]:
        assert (
            client.post("/api/v1/attributes", json={"name": name, "type": kind}).status_code == 201
        )
    body = create(
        client,
        "ada@example.com",
        attributes={"BIRTHDAY": "1815-12-10", "vip": True, "Score": 9.5, "nick": "Ada"},
    )
    assert body["attributes"] == {
        "BIRTHDAY": "1815-12-10",
        "VIP": True,
        "SCORE": 9.5,
        "NICK": "Ada",
    }
    listed = client.get("/api/v1/attributes").json()["data"]
    assert {a["name"]: a["type"] for a in listed} == {
        "BIRTHDAY": "date",
        "VIP": "boolean",
        "SCORE": "number",
        "NICK": "string",
    }


@pytest.mark.parametrize(
    ("name", "kind", "value"),
    [
        ("BIRTHDAY", "date", "10/12/1815"),
        ("BIRTHDAY", "date", 1815),
        ("VIP", "boolean", "yes"),
        ("VIP", "boolean", 1),
        ("SCORE", "number", "9.5"),
        ("SCORE", "number", True),
        ("SCORE", "number", 2**70),
        ("NICK", "string", 42),
        ("NICK", "string", ["a"]),
        ("TAGS", None, ["a", "b"]),
        ("META", None, {"a": 1}),
    ],
)
def test_attribute_type_mismatch_is_422_naming_the_attribute(
    client: Any, row_counts: RowCounts, name: str, kind: str | None, value: Any
) -> None:
    if kind is not None:
        client.post("/api/v1/attributes", json={"name": name, "type": kind})
    before = row_counts()
    for response in (
        client.post(C, json={"email": "ada@example.com", "attributes": {name: value}}),
        client.post(
            f"{C}?upsert=true", json={"email": "x@example.com", "attributes": {name: value}}
        ),
    ):
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert name in error["message"]
        assert error["details"]["attribute"] == name
    assert row_counts() == before


def test_first_value_fixes_an_undeclared_attribute_type(client: Any) -> None:
    create(client, "ada@example.com", attributes={"AGE": 36})
    bad = client.patch(f"{C}/ada@example.com", json={"attributes": {"age": "old"}})
    assert bad.status_code == 422
    assert "AGE" in bad.json()["error"]["message"]


def test_redeclaring_an_attribute_with_another_type_is_409(client: Any) -> None:
    assert (
        client.post("/api/v1/attributes", json={"name": "AGE", "type": "number"}).status_code == 201
    )
    same = client.post("/api/v1/attributes", json={"name": "age", "type": "number"})
    assert same.status_code == 200
    other = client.post("/api/v1/attributes", json={"name": "age", "type": "string"})
    assert other.status_code == 409
    assert other.json()["error"]["details"] == {"attribute": "AGE", "type": "number"}


@pytest.mark.parametrize("name", ["email", "EXT_ID"])
def test_reserved_names_are_not_attributes(client: Any, name: str) -> None:
    response = client.post(C, json={"email": "ada@example.com", "attributes": {name: "x"}})
    assert response.status_code == 422
    assert (
        client.post("/api/v1/attributes", json={"name": name, "type": "string"}).status_code == 422
    )


def test_same_attribute_twice_in_different_case_is_refused(client: Any) -> None:
    response = client.post(
        C, json={"email": "ada@example.com", "attributes": {"plan": "a", "PLAN": "b"}}
    )
    assert response.status_code == 422
    assert "PLAN" in response.json()["error"]["message"]


# -- PATCH ------------------------------------------------------------------------------------


def test_patch_merges_attributes_and_null_removes_one(client: Any, outbox: Outbox) -> None:
    create(client, "ada@example.com", attributes={"FIRSTNAME": "Ada", "PLAN": "free", "AGE": 36})
    response = client.patch(
        f"{C}/ada@example.com", json={"attributes": {"plan": "pro", "age": None, "city": "London"}}
    )
    assert response.status_code == 200
    assert response.json()["attributes"] == {"FIRSTNAME": "Ada", "PLAN": "pro", "CITY": "London"}
    assert client.get(f"{C}/ada@example.com").json()["attributes"] == response.json()["attributes"]
    [updated] = outbox("contact.updated")
    assert updated["data"]["changes"] == {
        "PLAN": {"old": "free", "new": "pro"},
        "AGE": {"old": 36, "new": None},
        "CITY": {"old": None, "new": "London"},
    }
    assert updated["data"]["attributes"] == response.json()["attributes"]


def test_patch_moves_updated_at_only_when_something_changes(client: Any) -> None:
    ada = create(client, "ada@example.com", attributes={"PLAN": "free"})
    same = client.patch(f"{C}/{ada['id']}", json={"attributes": {"PLAN": "free", "GONE": None}})
    assert same.json()["updated_at"] == ada["updated_at"]
    changed = client.patch(f"{C}/{ada['id']}", json={"attributes": {"PLAN": "pro"}})
    assert changed.json()["updated_at"] >= ada["updated_at"]
    assert changed.json()["created_at"] == ada["created_at"]


def test_patch_adds_and_unlinks_lists(client: Any, outbox: Outbox) -> None:
    first, second = make_list(client, "A"), make_list(client, "B")
    ada = create(client, "ada@example.com", list_ids=[first])
    response = client.patch(
        f"{C}/{ada['id']}", json={"list_ids": [second], "unlink_list_ids": [first]}
    )
    assert response.status_code == 200
    assert response.json()["list_ids"] == [second]
    assert client.get(f"{C}/{ada['id']}").json()["list_ids"] == [second]
    assert [m["data"]["list_id"] for m in outbox("list.contact_removed")] == [first]
    assert sorted(m["data"]["list_id"] for m in outbox("list.contact_added")) == [first, second]
    assert outbox("contact.updated") == []


def test_patch_unsubscribed_emits_contact_unsubscribed_once(client: Any, outbox: Outbox) -> None:
    ada = create(client, "ada@example.com")
    first = client.patch(f"{C}/{ada['id']}", json={"unsubscribed": True})
    assert first.json()["unsubscribed"] is True
    again = client.patch(f"{C}/{ada['id']}", json={"unsubscribed": True})
    assert again.status_code == 200
    [unsubscribed] = outbox("contact.unsubscribed")
    assert unsubscribed["data"]["contact_id"] == ada["id"]
    assert unsubscribed["data"]["email"] == "ada@example.com"
    [updated] = outbox("contact.updated")
    assert updated["data"]["changes"] == {"unsubscribed": {"old": False, "new": True}}
    resubscribed = client.patch(f"{C}/{ada['id']}", json={"unsubscribed": False})
    assert resubscribed.json()["unsubscribed"] is False
    assert len(outbox("contact.unsubscribed")) == 1


def test_patch_changes_the_email_and_refuses_a_taken_one(client: Any, outbox: Outbox) -> None:
    ada = create(client, "ada@example.com")
    create(client, "grace@example.com")
    taken = client.patch(f"{C}/{ada['id']}", json={"email": "GRACE@example.com"})
    assert taken.status_code == 409
    moved = client.patch(f"{C}/{ada['id']}", json={"email": " Ada.L@Example.com "})
    assert moved.status_code == 200
    assert moved.json()["email"] == "ada.l@example.com"
    assert client.get(f"{C}/ada@example.com").status_code == 404
    [updated] = outbox("contact.updated")
    assert updated["data"]["email"] == "ada.l@example.com"
    assert updated["data"]["previous_email"] == "ada@example.com"
    assert updated["data"]["changes"] == {
        "email": {"old": "ada@example.com", "new": "ada.l@example.com"}
    }


def test_patch_with_an_unknown_list_changes_nothing(
    client: Any, outbox: Outbox, row_counts: RowCounts
) -> None:
    ada = create(client, "ada@example.com", attributes={"PLAN": "free"})
    before = row_counts()
    response = client.patch(
        f"{C}/{ada['id']}",
        json={"attributes": {"PLAN": "pro"}, "unsubscribed": True, "list_ids": [4242]},
    )
    assert response.status_code == 404
    assert response.json()["error"]["details"] == {"list_ids": [4242]}
    assert client.get(f"{C}/{ada['id']}").json() == ada
    assert row_counts() == before
    assert types_of(outbox) == ["contact.created"]


# -- DELETE -----------------------------------------------------------------------------------


def test_delete_removes_the_contact_its_memberships_and_events(client: Any, outbox: Outbox) -> None:
    list_id = make_list(client, "A")
    ada = create(client, "ada@example.com", ext_id="cus_1", list_ids=[list_id])
    client.post(
        "/api/v1/events", json={"event_name": "paid", "identifiers": {"contact_id": ada["id"]}}
    )
    assert client.delete(f"{C}/ADA@example.com").status_code == 204
    assert client.get(f"{C}/{ada['id']}").status_code == 404
    assert client.get(f"/api/v1/lists/{list_id}").json()["contact_count"] == 0
    assert client.get("/api/v1/events").json()["data"] == []
    [deleted] = outbox("contact.deleted")
    assert deleted["data"]["contact_id"] == ada["id"]
    assert deleted["data"]["email"] == "ada@example.com"
    assert deleted["data"]["ext_id"] == "cus_1"
    assert client.delete(f"{C}/{ada['id']}").status_code == 404
    assert create(client, "ada@example.com", ext_id="cus_1")["email"] == "ada@example.com"


def test_deleted_contact_id_is_never_reused(client: Any) -> None:
    create(client, "first@example.com")
    last = create(client, "last@example.com")
    client.delete(f"{C}/{last['id']}")
    new = create(client, "new@example.com")
    assert new["id"] > last["id"]


# -- listing ----------------------------------------------------------------------------------


def test_pages_follow_next_cursor_until_none(client: Any) -> None:
    ids = [create(client, f"c{i}@example.com")["id"] for i in range(7)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get(C, params=params).json()
        seen += [c["id"] for c in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["data"]) == 3
    assert seen == ids
    assert pages == 3


def test_listing_filters_by_list_and_by_email(client: Any) -> None:
    list_id = make_list(client, "Customers")
    ada = create(client, "ada@example.com", list_ids=[list_id])
    create(client, "grace@example.com")
    alan = create(client, "alan@example.com", list_ids=[list_id])
    members = client.get(C, params={"list_id": list_id}).json()
    assert [c["id"] for c in members["data"]] == [ada["id"], alan["id"]]
    assert all(c["list_ids"] == [list_id] for c in members["data"])
    by_email = client.get(C, params={"email": " Grace@Example.com"}).json()["data"]
    assert [c["email"] for c in by_email] == ["grace@example.com"]
    both = client.get(C, params={"list_id": list_id, "email": "grace@example.com"}).json()
    assert both["data"] == []


def test_listing_a_list_page_by_page(client: Any) -> None:
    list_id = make_list(client, "Customers")
    members = [create(client, f"m{i}@example.com", list_ids=[list_id])["id"] for i in range(5)]
    create(client, "other@example.com")
    first = client.get(C, params={"list_id": list_id, "limit": 4}).json()
    second = client.get(
        C, params={"list_id": list_id, "limit": 4, "cursor": first["next_cursor"]}
    ).json()
    assert [c["id"] for c in first["data"] + second["data"]] == members
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"list_id": 4242}, 404),
        ({"list_id": 0}, 422),
        ({"limit": 0}, 422),
        ({"limit": 1001}, 422),
        ({"cursor": "garbage"}, 400),
        ({"email": "not-an-email"}, 422),
    ],
)
def test_bad_listing_parameters_are_4xx_json(
    client: Any, params: dict[str, Any], status: int
) -> None:
    response = client.get(C, params=params)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message", "details"}
