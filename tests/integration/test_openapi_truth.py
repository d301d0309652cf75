"""What ``/openapi.json`` says matches what the API answers (the contract test's findings, pinned).

Each test names an answer schemathesis found undocumented or wrong, and checks both sides: the
document lists it, and the API really gives it.
"""

from __future__ import annotations

from typing import Any

import pytest

from hookhub.core.catalog import CATALOG, subscription_patterns


@pytest.fixture
def document(client: Any) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def _responses(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][path][method]["responses"]
    return found


def test_a_bad_cursor_is_a_documented_400(client: Any, document: dict[str, Any]) -> None:
    for path in ("/api/v1/contacts", "/api/v1/lists", "/api/v1/messages", "/api/v1/webhooks"):
        assert "400" in _responses(document, "get", path), path
        answer = client.get(path, params={"cursor": "not-a-cursor"})
        assert answer.status_code == 400, path
        assert answer.json()["error"]["details"] == {"field": "cursor"}


def test_every_api_operation_documents_auth_scope_and_outage_answers(
    document: dict[str, Any],
) -> None:
    for path, item in document["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in item.items():
            responses = operation["responses"]
            for status in ("401", "403", "503"):
                assert status in responses, (method, path, status)
            if "requestBody" in operation:
                for status in ("400", "413", "422"):
                    assert status in responses, (method, path, status)
            assert responses["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorOut"
            }


def test_a_405_names_every_method_the_path_serves(client: Any) -> None:
    answer = client.request("OPTIONS", "/api/v1/contacts/ada@example.com")
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"
    assert {m.strip() for m in answer.headers["allow"].split(",")} == {"GET", "PATCH", "DELETE"}
    answer = client.put("/api/v1/webhooks/1", json={})
    assert {m.strip() for m in answer.headers["allow"].split(",")} == {"GET", "PATCH", "DELETE"}


def test_metrics_documents_the_prometheus_text_it_answers(
    client: Any, document: dict[str, Any]
) -> None:
    content = _responses(document, "get", "/metrics")["200"]["content"]
    assert list(content) == ["text/plain"]
    answer = client.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain")


def test_readyz_documents_its_503(document: dict[str, Any]) -> None:
    assert "503" in _responses(document, "get", "/readyz")


def test_an_existing_attribute_is_a_documented_200(client: Any, document: dict[str, Any]) -> None:
    assert "200" in _responses(document, "post", "/api/v1/attributes")
    body = {"name": "plan", "type": "string"}
    assert client.post("/api/v1/attributes", json=body).status_code == 201
    assert client.post("/api/v1/attributes", json=body).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/contacts", {"email": "a@example.com", "unsubscribed": 0}, "unsubscribed"),
        ("/api/v1/contacts", {"email": "a@example.com", "list_ids": [True]}, "list_ids"),
        ("/api/v1/contacts", {"email": "a@example.com", "list_ids": [1.0]}, "list_ids"),
        ("/api/v1/contacts", {"email": "a@example.com", "ext_id": ""}, "ext_id"),
        ("/api/v1/webhooks/1/recover", {"since": 1_700_000_000}, "since"),
        ("/api/v1/inbound-webhooks", {"source": "stripe", "enabled": "yes"}, "enabled"),
    ],
)
def test_bodies_are_not_coerced_into_what_the_document_refuses(
    client: Any, path: str, body: dict[str, Any], field: str
) -> None:
    answer = client.post(path, json=body)
    assert answer.status_code == 422, answer.text
    assert any(field in detail["loc"] for detail in answer.json()["error"]["details"])


def test_documented_patterns_are_the_ones_enforced(client: Any, document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["AttributeCreate"]["properties"]["name"]["pattern"]
    assert schemas["EventCreate"]["properties"]["event_name"]["pattern"]
    events = schemas["WebhookCreate"]["properties"]["events"]["items"]
    assert events["enum"] == subscription_patterns()
    assert set(CATALOG) <= set(events["enum"])
    for name in ("", "1abc", "a b", "A" * 65, "NAME\n"):
        answer = client.post("/api/v1/attributes", json={"name": name, "type": "string"})
        assert answer.status_code == 422, name


def test_an_identifier_email_is_checked_even_beside_a_contact_id(client: Any) -> None:
    contact = client.post("/api/v1/contacts", json={"email": "ada@example.com"}).json()
    answer = client.post(
        "/api/v1/events",
        json={
            "event_name": "signed_up",
            "identifiers": {"contact_id": contact["id"], "email": "not-an-address"},
        },
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["details"]["field"] == "email"


def test_rate_limits_below_the_documented_minimum_are_refused(client: Any) -> None:
    answer = client.post(
        "/api/v1/inbound-webhooks",
        json={"source": "stripe", "secret": "whsec_test", "rate_limit": 5e-324},
    )
    assert answer.status_code == 422
