"""Custom events through the REST API, on each backend, with Brevo's request body: how the
contact is found or created, what is validated, what is announced, and how events are listed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Outbox, RowCounts

E = "/api/v1/events"


def track(client: Any, **body: Any) -> dict[str, Any]:
    response = client.post(E, json=body)
    assert response.status_code == 201, response.text
    event: dict[str, Any] = response.json()
    return event


def test_event_for_an_unknown_email_creates_the_contact(client: Any, outbox: Outbox) -> None:
    event = track(
        client,
        event_name="order_completed",
        identifiers={"email": " Ada@Example.com "},
        contact_properties={"firstname": "Ada"},
        event_properties={"order_id": "A-1", "amount": 42.5, "items": [{"sku": "x"}]},
        event_date="2026-01-15T10:30:00+01:00",
    )
    contact = client.get("/api/v1/contacts/ada@example.com").json()
    assert contact["attributes"] == {"FIRSTNAME": "Ada"}
    assert event["contact_id"] == contact["id"]
    assert event["event_name"] == "order_completed"
    assert event["event_properties"] == {"order_id": "A-1", "amount": 42.5, "items": [{"sku": "x"}]}
    assert event["event_date"] == "2026-01-15T09:30:00.000Z"
    assert set(event) >= {"id", "created_at"}
    assert sorted(m["type"] for m in outbox()) == ["contact.created", "event.tracked"]
    [tracked] = outbox("event.tracked")
    assert tracked["data"] == {
        "contact_id": contact["id"],
        "email": "ada@example.com",
        "event_id": event["id"],
        "event_name": "order_completed",
        "event_properties": event["event_properties"],
        "event_date": "2026-01-15T09:30:00.000Z",
    }


def test_event_without_a_date_happens_now(client: Any) -> None:
    event = track(client, event_name="login", identifiers={"email": "ada@example.com"})
    assert event["event_date"] == event["created_at"]
    assert event["event_properties"] == {}


def test_event_finds_the_contact_by_contact_id_or_ext_id(client: Any, outbox: Outbox) -> None:
    ada = client.post(
        "/api/v1/contacts", json={"email": "ada@example.com", "ext_id": "cus_1"}
    ).json()
    by_id = track(client, event_name="a", identifiers={"contact_id": ada["id"]})
    by_ext = track(client, event_name="b", identifiers={"ext_id": "cus_1"})
    by_email = track(client, event_name="c", identifiers={"email": "ADA@example.com"})
    assert by_id["contact_id"] == by_ext["contact_id"] == by_email["contact_id"] == ada["id"]
    assert len(outbox("contact.created")) == 1
    assert len(outbox("event.tracked")) == 3


def test_unknown_ext_id_with_an_email_creates_the_contact_with_that_ext_id(client: Any) -> None:
    event = track(
        client, event_name="signup", identifiers={"ext_id": "cus_7", "email": "new@example.com"}
    )
    contact = client.get(f"/api/v1/contacts/{event['contact_id']}").json()
    assert (contact["email"], contact["ext_id"]) == ("new@example.com", "cus_7")


def test_contact_properties_update_the_contact(client: Any, outbox: Outbox) -> None:
    client.post("/api/v1/contacts", json={"email": "ada@example.com", "attributes": {"PLAN": "a"}})
    track(
        client,
        event_name="upgraded",
        identifiers={"email": "ada@example.com"},
        contact_properties={"plan": "b"},
    )
    assert client.get("/api/v1/contacts/ada@example.com").json()["attributes"] == {"PLAN": "b"}
    [updated] = outbox("contact.updated")
    assert updated["data"]["changes"] == {"PLAN": {"old": "a", "new": "b"}}


@pytest.mark.parametrize(
    ("identifiers", "status", "details"),
    [
        ({"contact_id": 999}, 404, {"contact_id": 999}),
        ({"ext_id": "nobody"}, 404, {"ext_id": "nobody"}),
        ({}, 422, {"field": "identifiers"}),
        ({"email": "not-an-email"}, 422, {"field": "email"}),
    ],
)
def test_unusable_identifiers_are_4xx_and_write_nothing(
    client: Any,
    row_counts: RowCounts,
    identifiers: dict[str, Any],
    status: int,
    details: dict[str, Any],
) -> None:
    before = row_counts()
    response = client.post(E, json={"event_name": "x", "identifiers": identifiers})
    assert response.status_code == status
    assert response.json()["error"]["details"] == details
    assert row_counts() == before


@pytest.mark.parametrize("name", ["", "has space", "dots.are.out", "x" * 256, "emoji_🎉"])
def test_bad_event_name_is_422(client: Any, row_counts: RowCounts, name: str) -> None:
    before = row_counts()
    response = client.post(E, json={"event_name": name, "identifiers": {"email": "a@example.com"}})
    assert response.status_code == 422
    assert "event_name" in response.json()["error"]["message"]
    assert row_counts() == before


def test_longest_allowed_event_name_is_accepted(client: Any) -> None:
    name = "A-z_0" * 51
    assert len(name) == 255
    assert (
        track(client, event_name=name, identifiers={"email": "a@example.com"})["event_name"] == name
    )


def test_event_properties_up_to_50_kb_are_kept_and_bigger_is_422(
    client: Any, row_counts: RowCounts
) -> None:
    overhead = len('{"blob":""}')
    fits = {"blob": "x" * (50 * 1024 - overhead)}
    event = track(
        client, event_name="big", identifiers={"email": "a@example.com"}, event_properties=fits
    )
    assert event["event_properties"] == fits
    before = row_counts()
    too_big = {"blob": "x" * (50 * 1024 - overhead + 1)}
    response = client.post(
        E,
        json={
            "event_name": "big",
            "identifiers": {"email": "b@example.com"},
            "event_properties": too_big,
        },
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"field": "event_properties"}
    assert row_counts() == before
    assert client.get("/api/v1/contacts/b@example.com").status_code == 404


def test_wrong_contact_property_type_rejects_the_whole_event(
    client: Any, row_counts: RowCounts
) -> None:
    client.post("/api/v1/contacts", json={"email": "a@example.com", "attributes": {"AGE": 3}})
    before = row_counts()
    response = client.post(
        E,
        json={
            "event_name": "x",
            "identifiers": {"email": "a@example.com"},
            "contact_properties": {"age": "three"},
        },
    )
    assert response.status_code == 422
    assert "AGE" in response.json()["error"]["message"]
    assert row_counts() == before


@pytest.mark.parametrize(
    "raw_properties",
    [b'{"n": NaN}', b'{"n": [Infinity]}', b'{"n": -Infinity}', b'{"n": 123456789012345678901234}'],
)
def test_numbers_json_cannot_hold_in_event_properties_are_422(
    client: Any, row_counts: RowCounts, raw_properties: bytes
) -> None:
    before = row_counts()
    body = b'{"event_name": "x", "identifiers": {"email": "a@example.com"}, "event_properties": '
    response = client.post(
        E, content=body + raw_properties + b"}", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert row_counts() == before


@pytest.mark.parametrize("date", ["yesterday", "2026-13-01", "9999-12-31T23:59:59-05:00"])
def test_unusable_event_date_is_422(client: Any, date: str) -> None:
    response = client.post(
        E, json={"event_name": "x", "identifiers": {"email": "a@example.com"}, "event_date": date}
    )
    assert response.status_code == 422


def test_events_are_listed_by_contact_and_by_name_page_by_page(client: Any) -> None:
    ada = track(client, event_name="paid", identifiers={"email": "ada@example.com"})["contact_id"]
    grace = track(client, event_name="paid", identifiers={"email": "grace@example.com"})[
        "contact_id"
    ]
    track(client, event_name="refunded", identifiers={"contact_id": ada})
    track(client, event_name="paid", identifiers={"contact_id": ada})

    def names(**params: Any) -> list[tuple[int, str]]:
        data = client.get(E, params=params).json()["data"]
        return [(e["contact_id"], e["event_name"]) for e in data]

    assert names(contact="ada@example.com") == [(ada, "paid"), (ada, "refunded"), (ada, "paid")]
    assert names(contact=str(grace)) == [(grace, "paid")]
    assert names(event_name="paid") == [(ada, "paid"), (grace, "paid"), (ada, "paid")]
    assert names(contact=str(ada), event_name="refunded") == [(ada, "refunded")]
    first = client.get(E, params={"limit": 3}).json()
    rest = client.get(E, params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert len(first["data"]) == 3
    assert len(rest["data"]) == 1
    assert rest["next_cursor"] is None
    assert client.get(E, params={"contact": "nobody@example.com"}).status_code == 404
