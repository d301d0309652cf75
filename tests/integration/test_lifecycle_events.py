"""Messages that tell the truth about a contact's or a list's birth and death.

- A contact created unsubscribed: one ``contact.created`` saying ``"unsubscribed": true`` (and
  its lists' ``list.contact_added``) and one ``contact.unsubscribed``; never a ``contact.created``
  saying it is subscribed followed by a ``contact.updated`` that never happened.
- A deleted contact: ``contact.deleted`` names the lists it left (``list_ids``).
- A deleted list: ``list.deleted`` with its name and how many members it had; contacts remain.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hookhub.core.catalog import CATALOG
from tests.integration.conftest import Outbox
from tests.integration.test_outbox import assert_matches_catalog

C = "/api/v1/contacts"


def _list(client: Any, name: str) -> int:
    response = client.post("/api/v1/lists", json={"name": name})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _types(outbox: Outbox) -> list[str]:
    return sorted(m["type"] for m in outbox())


def test_a_contact_created_unsubscribed_is_announced_once_truthfully(
    client: Any, outbox: Outbox
) -> None:
    vip = _list(client, "VIP")
    response = client.post(
        C, json={"email": "ada@example.com", "unsubscribed": True, "list_ids": [vip]}
    )
    assert response.status_code == 201, response.text
    assert response.json()["unsubscribed"] is True

    assert _types(outbox) == ["contact.created", "contact.unsubscribed", "list.contact_added"]
    [created] = outbox("contact.created")
    assert_matches_catalog(created)
    assert created["data"]["unsubscribed"] is True
    assert created["data"]["list_ids"] == [vip]
    [unsubscribed] = outbox("contact.unsubscribed")
    assert_matches_catalog(unsubscribed)
    assert unsubscribed["data"]["contact_id"] == created["data"]["contact_id"]
    assert client.get(f"{C}/ada@example.com").json()["unsubscribed"] is True


def test_unsubscribing_an_existing_contact_still_says_so(client: Any, outbox: Outbox) -> None:
    client.post(C, json={"email": "ada@example.com"})
    response = client.post(
        C, params={"upsert": "true"}, json={"email": "ada@example.com", "unsubscribed": True}
    )
    assert response.status_code in (200, 201), response.text
    assert _types(outbox) == ["contact.created", "contact.unsubscribed", "contact.updated"]
    [created] = outbox("contact.created")
    assert created["data"]["unsubscribed"] is False


def test_contact_deleted_names_the_lists_it_left(client: Any, outbox: Outbox) -> None:
    first, second, other = _list(client, "first"), _list(client, "second"), _list(client, "other")
    ada = client.post(C, json={"email": "ada@example.com", "list_ids": [second, first]}).json()
    client.post(C, json={"email": "bob@example.com", "list_ids": [other]})

    assert client.delete(f"{C}/{ada['id']}").status_code == 204

    [deleted] = outbox("contact.deleted")
    assert_matches_catalog(deleted)
    assert deleted["data"]["contact_id"] == ada["id"]
    assert deleted["data"]["list_ids"] == sorted([first, second])
    assert outbox("list.contact_removed") == [], "contact.deleted says it, once"
    counts = {lst["id"]: lst["contact_count"] for lst in client.get("/api/v1/lists").json()["data"]}
    assert counts == {first: 0, second: 0, other: 1}


def test_deleting_a_list_emits_list_deleted_and_keeps_its_contacts(
    client: Any, outbox: Outbox
) -> None:
    doomed, kept = _list(client, "doomed"), _list(client, "kept")
    for email in ("ada@example.com", "bob@example.com"):
        client.post(C, json={"email": email, "list_ids": [doomed, kept]})
    before = Counter(_types(outbox))

    assert client.delete(f"/api/v1/lists/{doomed}").status_code == 204

    assert Counter(_types(outbox)) - before == Counter(["list.deleted"]), "one message, no more"
    [deleted] = outbox("list.deleted")
    assert deleted["data"] == {"list_id": doomed, "list_name": "doomed", "contact_count": 2}
    schema = CATALOG["list.deleted"].data_schema()
    assert set(schema["required"]) <= set(deleted["data"])
    contacts = client.get(C).json()["data"]
    assert sorted(c["email"] for c in contacts) == ["ada@example.com", "bob@example.com"]
    assert all(c["list_ids"] == [kept] for c in contacts)
    assert client.delete(f"/api/v1/lists/{doomed}").status_code == 404
    assert len(outbox("list.deleted")) == 1


def test_the_catalog_serves_list_deleted_and_list_family_subscribers_get_it(
    client: Any,
) -> None:
    types = {t["name"]: t for t in client.get("/api/v1/event-types").json()["data"]}
    assert types["list.deleted"]["operational"] is False
    data_schema = types["contact.deleted"]["schema"]["properties"]["data"]
    assert "list_ids" in data_schema["anyOf"][0]["required"]  # unless erased (id only)
    response = client.post(
        "/api/v1/webhooks", json={"url": "https://hooks.example.com/in", "events": ["list.deleted"]}
    )
    assert response.status_code == 201, response.text
