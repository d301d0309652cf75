"""Attribute types: a payload never fixes one, names are exact, the type cache never lies.

- An inbound rule writing an attribute nobody declared declares it as text: one payload with
  ``"first_name": 1`` must not make FIRSTNAME a number and break every later request. The API's
  own writes keep typing an attribute by its first value.
- Attribute and event names are checked to their very end: ``"NAME\\n"`` is a 422 (it used to
  pass the ``$`` anchor and reach PostgreSQL as a name one character too long: a 500).
- The process's cache of attribute types only learns a type once its definition is committed:
  a definition rolled back with a failed request's savepoint is not remembered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from hookhub.services import Services
from tests.support.inbound import Hook, create_hook, raw_client, requests_of

SECRET = "s3cret-shared-with-the-sender"


@pytest.fixture
def sender(client: Any) -> Iterator[Any]:
    with raw_client(client) as raw:
        yield raw


def _send(sender: Any, hook: Hook, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    response = sender.post(hook.path, content=body, headers=hook.sign(body))
    assert response.status_code == 202, response.text


def _types(client: Any) -> dict[str, str]:
    response = client.get("/api/v1/attributes")
    assert response.status_code == 200, response.text
    return {a["name"]: a["type"] for a in response.json()["data"]}


def test_a_payloads_number_does_not_make_an_attribute_numeric(
    client: Any, sender: Any, services: Services
) -> None:
    hook = create_hook(client, "generic", secret=SECRET)  # the preset maps first_name
    _send(sender, hook, {"email": "one@example.com", "first_name": 1})
    _send(sender, hook, {"email": "ada@example.com", "first_name": "Ada"})
    _send(sender, hook, {"email": "yes@example.com", "first_name": True})

    assert services.inbound.process_backlog() == 3

    assert [r["status"] for r in requests_of(client, hook)] == ["processed"] * 3
    assert _types(client) == {"FIRSTNAME": "string"}
    names = {
        c["email"]: c["attributes"]["FIRSTNAME"]
        for c in client.get("/api/v1/contacts").json()["data"]
    }
    assert names == {"one@example.com": "1", "ada@example.com": "Ada", "yes@example.com": "true"}


def test_api_writes_still_type_an_attribute_by_its_first_value(client: Any) -> None:
    response = client.post(
        "/api/v1/contacts", json={"email": "a@example.com", "attributes": {"AGE": 36}}
    )
    assert response.status_code == 201, response.text
    assert _types(client) == {"AGE": "number"}
    refused = client.post(
        "/api/v1/contacts", json={"email": "b@example.com", "attributes": {"AGE": "old"}}
    )
    assert refused.status_code == 422, refused.text


NAME = "A" * 64


@pytest.mark.parametrize("name", ["PLAN\n", NAME + "\n", "PLAN\n\n"])
def test_a_trailing_newline_in_a_name_is_refused_not_a_server_error(client: Any, name: str) -> None:
    declared = client.post("/api/v1/attributes", json={"name": name, "type": "string"})
    assert declared.status_code == 422, declared.text
    written = client.post(
        "/api/v1/contacts", json={"email": "a@example.com", "attributes": {name: "x"}}
    )
    assert written.status_code == 422, written.text
    tracked = client.post(
        "/api/v1/events",
        json={"event_name": name, "identifiers": {"email": "a@example.com"}},
    )
    assert tracked.status_code == 422, tracked.text
    rule = {"contact": {"email": "email", "attributes": {name: "plan"}}}
    hook = client.post(
        "/api/v1/inbound-webhooks", json={"source": "generic", "secret": SECRET, "rules": [rule]}
    )
    assert hook.status_code == 422, hook.text
    assert _types(client) == {}
    assert client.get("/api/v1/contacts").json()["data"] == []


def test_a_type_defined_by_a_failed_request_is_not_remembered(
    client: Any, sender: Any, services: Services
) -> None:
    rule = {
        "name": "order",
        "contact": {"email": "email", "attributes": {"AMOUNT": "amount"}},
        "add_to_lists": [987654],  # no such list: the request fails after AMOUNT was defined
    }
    hook = create_hook(client, "generic", secret=SECRET, rules=[rule])
    _send(sender, hook, {"email": "a@example.com", "amount": "12"})
    assert services.inbound.process_backlog() == 1
    [failed] = requests_of(client, hook)
    assert failed["status"] == "failed"
    assert _types(client) == {}, "the definition was rolled back with the request"

    # So AMOUNT is still free to become a number, in this process as in any other.
    response = client.post(
        "/api/v1/contacts", json={"email": "b@example.com", "attributes": {"AMOUNT": 5}}
    )
    assert response.status_code == 201, response.text
    assert _types(client) == {"AMOUNT": "number"}
