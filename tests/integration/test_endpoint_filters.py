"""Endpoint filters: a JMESPath expression over the message decides which messages become
deliveries; checked when the endpoint is saved, and never failing the writer when it errors."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hookhub.services import Services

HOOK = "http://127.0.0.1:9/hook"


def _deliveries(client: Any, webhook_id: int) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", params={"limit": 100})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def _delivered_types(client: Any, webhook_id: int) -> list[str]:
    types = []
    for delivery in _deliveries(client, webhook_id):
        message = client.get(f"/api/v1/messages/{delivery['message_id']}").json()
        types.append(message["payload"]["type"])
    return sorted(types)


def _webhook(client: Any, **spec: Any) -> dict[str, Any]:
    response = client.post("/api/v1/webhooks", json={"url": HOOK, "events": ["*"], **spec})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _list(client: Any, name: str) -> int:
    response = client.post("/api/v1/lists", json={"name": name})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_only_matching_messages_become_deliveries(client: Any) -> None:
    wanted, other = _list(client, "wanted"), _list(client, "other")
    expression = f"type == 'list.contact_added' && data.list_id == `{wanted}`"
    filtered = _webhook(client, filter=expression)
    everything = _webhook(client)
    assert filtered["filter"] == expression
    client.post("/api/v1/contacts", json={"email": "ada@example.com"})
    client.post(f"/api/v1/lists/{other}/contacts", json={"emails": ["ada@example.com"]})
    client.post(f"/api/v1/lists/{wanted}/contacts", json={"emails": ["ada@example.com"]})

    [delivery] = _deliveries(client, filtered["id"])
    message = client.get(f"/api/v1/messages/{delivery['message_id']}").json()
    assert message["payload"]["type"] == "list.contact_added"
    assert message["payload"]["data"]["list_id"] == wanted
    assert _delivered_types(client, everything["id"]) == [
        "contact.created",
        "list.contact_added",
        "list.contact_added",
    ]


def test_a_filter_that_matches_nothing_delivers_nothing(client: Any) -> None:
    webhook = _webhook(client, filter="data.email == 'nobody@example.com'")
    client.post("/api/v1/contacts", json={"email": "ada@example.com"})
    assert _deliveries(client, webhook["id"]) == []


def test_jmespath_truth_decides_not_python_truth(client: Any) -> None:
    """0 is true in JMESPath; an empty list is false."""
    zero = _webhook(client, filter="`0`")
    empty = _webhook(client, filter="data.list_ids")
    client.post("/api/v1/contacts", json={"email": "ada@example.com"})
    assert len(_deliveries(client, zero["id"])) == 1
    assert _deliveries(client, empty["id"]) == []


def test_a_filter_failing_on_a_message_is_no_match_and_the_write_succeeds(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # abs() of a string is a JMESPath type error at evaluation time, not at save.
    failing = _webhook(client, filter="abs(data.email) > `1`")
    plain = _webhook(client)
    with caplog.at_level(logging.WARNING, logger="hookhub.fanout"):
        response = client.post("/api/v1/contacts", json={"email": "ada@example.com"})
    assert response.status_code == 201, response.text
    assert _deliveries(client, failing["id"]) == []
    assert len(_deliveries(client, plain["id"])) == 1
    assert any(r.getMessage() == "fanout.filter_failed" for r in caplog.records)


@pytest.mark.parametrize(
    "bad",
    ["type ==", "data.[", "   ", 42, "x" * 1001],
)
def test_invalid_filters_are_refused_at_save(client: Any, bad: Any) -> None:
    response = client.post("/api/v1/webhooks", json={"url": HOOK, "events": ["*"], "filter": bad})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "filter" in error["message"] or "filter" in str(error["details"])
    assert client.get("/api/v1/webhooks").json()["data"] == []


def test_patch_sets_and_clears_a_filter(client: Any) -> None:
    webhook = _webhook(client)
    url = f"/api/v1/webhooks/{webhook['id']}"
    refused = client.patch(url, json={"filter": "data.["})
    assert refused.status_code == 422
    assert "not a valid JMESPath expression" in refused.json()["error"]["message"]
    assert client.patch(url, json={"filter": "type == 'contact.deleted'"}).status_code == 200
    client.post("/api/v1/contacts", json={"email": "ada@example.com"})
    assert _deliveries(client, webhook["id"]) == []
    cleared = client.patch(url, json={"filter": None})
    assert cleared.status_code == 200
    assert cleared.json()["filter"] is None
    client.post("/api/v1/contacts", json={"email": "bob@example.com"})
    assert len(_deliveries(client, webhook["id"])) == 1


def test_recover_backfills_only_matching_messages(client: Any, services: Services) -> None:
    client.post("/api/v1/contacts", json={"email": "ada@example.com"})
    client.post("/api/v1/contacts", json={"email": "bob@example.com"})
    webhook = _webhook(client, filter="data.email == 'bob@example.com'")
    response = client.post(
        f"/api/v1/webhooks/{webhook['id']}/recover", json={"since": "2000-01-01T00:00:00Z"}
    )
    assert response.status_code == 202, response.text
    assert response.json()["backfilled"] == 1


def test_a_filter_sees_the_messages_origin(client: Any, services: Services) -> None:
    from tests.support.delivery import create_contact

    by_api = _webhook(client, filter="origin.type == 'api'")
    client.post("/api/v1/contacts", json={"email": "ada@example.com"})
    create_contact(services, "cli@example.com")  # no request: no origin
    [delivery] = _deliveries(client, by_api["id"])
    message = client.get(f"/api/v1/messages/{delivery['message_id']}").json()
    assert message["payload"]["data"]["email"] == "ada@example.com"
