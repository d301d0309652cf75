"""Creates committed in groups (``POST /api/v1/contacts``): each request answered as if alone.

``create_many`` runs a group in one transaction; these check, on both backends, that every
request of a group gets what ``create_contact`` would have given it alone (created, updated,
409, 404, 422), that a refused request leaves nothing behind (no row, no message, no attribute
declared), that messages carry their own request's origin, and that the API's fast path hands
what it does not take to the framework route unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from hookhub.api.app import create_app
from hookhub.core.origin import Origin
from hookhub.crm.create_many import CreateRequest, create_many
from hookhub.errors import Conflict, NotFound, ValidationFailed
from hookhub.keys import Scope
from hookhub.services import Services
from tests.conftest import API_KEY

ALICE = Origin("api", 1, "alice")
BOB = Origin("api", 2, "bob")


def _payloads(client: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/messages", params={"limit": 1000})
    assert response.status_code == 200
    return [m["payload"] for m in response.json()["data"]]


def test_a_group_answers_every_request_as_if_alone(services: Services, client: Any) -> None:
    list_id = client.post("/api/v1/lists", json={"name": "news"}).json()["id"]
    taken = client.post(
        "/api/v1/contacts", json={"email": "taken@example.com", "attributes": {"AGE": 30}}
    ).json()
    before = len(_payloads(client))
    requests = [
        CreateRequest("New@Example.com", attributes={"AGE": 1}, origin=ALICE),  # 0 created
        CreateRequest("taken@example.com", attributes={"NEWATTR": "x"}, origin=ALICE),  # 1 409
        CreateRequest("taken@example.com", attributes={"AGE": 31}, upsert=True, origin=BOB),
        CreateRequest("nolist@example.com", list_ids=[999], origin=ALICE),  # 3 404
        CreateRequest("badage@example.com", attributes={"AGE": "three"}, origin=ALICE),  # 4 422
        CreateRequest("fresh@example.com", attributes={"COLOR": "red"}, origin=BOB),  # 5 created
        CreateRequest("new@example.com", origin=BOB),  # 6 409: request 0 took it
        CreateRequest(
            "member@example.com", list_ids=[list_id, list_id], unsubscribed=True, origin=BOB
        ),  # 7 created, in the list, unsubscribed
        CreateRequest("not an email", origin=ALICE),  # 8 422
        CreateRequest("ext1@example.com", ext_id="E1", origin=ALICE),  # 9 created
        CreateRequest("ext2@example.com", ext_id="E1", origin=ALICE),  # 10 409: ext_id taken
    ]
    outcomes = create_many(services.crm, requests)

    def created(i: int) -> bool:
        outcome = outcomes[i]
        assert not isinstance(outcome, BaseException), outcome
        return outcome[1]

    assert [created(i) for i in (0, 5, 7, 9)] == [True] * 4
    assert created(2) is False
    assert isinstance(outcomes[1], Conflict)
    assert isinstance(outcomes[3], NotFound)
    assert isinstance(outcomes[4], ValidationFailed)
    assert isinstance(outcomes[6], Conflict)
    assert isinstance(outcomes[8], ValidationFailed)
    assert isinstance(outcomes[10], Conflict)
    member = outcomes[7]
    assert not isinstance(member, BaseException)
    assert member[0].list_ids == [list_id]
    assert member[0].unsubscribed
    upserted = outcomes[2]
    assert not isinstance(upserted, BaseException)
    assert upserted[0].id == taken["id"]
    assert upserted[0].attributes == {"AGE": 31}

    # What was refused left nothing: no contact, no declared attribute.
    assert client.get("/api/v1/contacts/nolist@example.com").status_code == 404
    assert client.get("/api/v1/contacts/badage@example.com").status_code == 404
    assert client.get("/api/v1/contacts/ext2@example.com").status_code == 404
    names = {a["name"] for a in client.get("/api/v1/attributes").json()["data"]}
    assert "COLOR" in names
    assert "NEWATTR" not in names
    got = client.get("/api/v1/contacts/member@example.com").json()
    assert got["list_ids"] == [list_id]
    assert got["unsubscribed"] is True

    messages = _payloads(client)[before:]
    seen = sorted((m["type"], m["data"]["email"], m["origin"]["name"]) for m in messages)
    assert seen == sorted(
        [
            ("contact.created", "new@example.com", "alice"),
            ("contact.updated", "taken@example.com", "bob"),
            ("contact.created", "fresh@example.com", "bob"),
            ("contact.created", "member@example.com", "bob"),
            ("list.contact_added", "member@example.com", "bob"),
            ("contact.unsubscribed", "member@example.com", "bob"),
            ("contact.created", "ext1@example.com", "alice"),
        ]
    )


async def _post(app: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One POST /api/v1/contacts through the ASGI app, as the HTTP server would make it."""
    raw = orjson.dumps(body)
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/contacts",
        "raw_path": b"/api/v1/contacts",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"test"),
            (b"authorization", f"Bearer {API_KEY}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, orjson.loads(payload)


def test_concurrent_creates_through_the_api(services: Services, client: Any) -> None:
    """Creates sent together (one group): each answered after its commit, one 201 per email."""
    app = create_app(services)
    client.get("/api/v1/contacts")  # the key is checked once, and cached, by the route

    async def send_all() -> list[tuple[int, dict[str, Any]]]:
        bodies = [{"email": f"c{i % 15}@example.com", "attributes": {"N": i}} for i in range(30)]
        return await asyncio.gather(*(_post(app, b) for b in bodies))

    answers = asyncio.run(send_all())
    assert sorted(status for status, _ in answers) == [201] * 15 + [409] * 15
    for status, body in answers:
        if status == 201:
            assert body["attributes"]["N"] in range(15)
        else:
            assert body["error"]["code"] == "conflict"
    with services.crm.reader() as crm:
        assert crm.contacts.count() == 15


@pytest.mark.parametrize(
    ("query", "headers", "body", "status", "code"),
    [
        ("", {"Authorization": "Bearer nope"}, b'{"email": "a@example.com"}', 401, None),
        ("", {}, b'{"email": "a@example.com"', 400, "invalid_json"),
        ("", {}, b'{"email": "a@example.com", "extra": 1}', 422, "validation_error"),
        ("?upsert=maybe", {}, b'{"email": "a@example.com"}', 422, "validation_error"),
        ("?upsert=1", {}, b'{"email": "a@example.com"}', 201, None),
        ("", {"Content-Type": "text/plain"}, b'{"email": "a@example.com"}', None, None),
    ],
)
def test_what_the_fast_path_does_not_take_the_route_answers(
    services: Services,
    client: Any,
    query: str,
    headers: dict[str, str],
    body: bytes,
    status: int | None,
    code: str | None,
) -> None:
    sent = {"Content-Type": "application/json", **headers}
    answer = client.post("/api/v1/contacts" + query, content=body, headers=sent)
    if status is None:  # whatever the route answers, never a 500
        assert answer.status_code < 500
        return
    assert answer.status_code == status, answer.text
    if code is not None:
        assert answer.json()["error"]["code"] == code


def test_a_read_key_may_not_create(services: Services, client: Any) -> None:
    _info, read_key = services.keys.create("reader", scope=Scope.READ)
    answer = client.post(
        "/api/v1/contacts",
        json={"email": "a@example.com"},
        headers={"Authorization": f"Bearer {read_key}"},
    )
    assert answer.status_code == 403
    assert client.get("/api/v1/contacts/a@example.com").status_code == 404


def test_list_pages_walk_only_the_members_in_id_order(client: Any) -> None:
    list_id = client.post("/api/v1/lists", json={"name": "some"}).json()["id"]
    members = []
    for i in range(12):
        made = client.post("/api/v1/contacts", json={"email": f"p{i}@example.com"}).json()
        if i % 3 == 1:
            members.append(made["id"])
    added = client.post(
        f"/api/v1/lists/{list_id}/contacts", json={"contact_ids": members}
    ).status_code
    assert added == 201
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"list_id": list_id, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/contacts", params=params).json()
        seen.extend(c["id"] for c in page["data"])
        assert all(list_id in c["list_ids"] for c in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(members)
    one = client.get(
        "/api/v1/contacts", params={"list_id": list_id, "email": "p4@example.com"}
    ).json()["data"]
    assert [c["email"] for c in one] == ["p4@example.com"]
    none = client.get(
        "/api/v1/contacts", params={"list_id": list_id, "email": "p3@example.com"}
    ).json()["data"]
    assert none == []
