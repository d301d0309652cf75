"""Operational endpoints, on each backend: health, readiness, Prometheus metrics, OpenAPI and
the docs page; none of them needs an API key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from hookhub.api.app import create_app
from hookhub.services import build_services
from tests.conftest import make_settings


def test_healthz_answers_without_a_key(anonymous: Any) -> None:
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_names_the_reachable_backend(anonymous: Any, db_url: str) -> None:
    response = anonymous.get("/readyz")
    assert response.status_code == 200
    expected = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    assert response.json() == {
        "status": "ready",
        "database": {"backend": expected, "reachable": True, "writable": True, "error": None},
        "loops": {},
    }


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    services = build_services(make_settings(f"sqlite:///{tmp_path / 'missing' / 'hookhub.db'}"))
    try:
        with TestClient(create_app(services)) as client:
            assert client.get("/healthz").status_code == 200
            response = client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["database"]["reachable"] is False
        assert body["database"]["error"] == (
            "Unavailable: The database is unreachable."
            " (OperationalError: unable to open database file)"
        )
    finally:
        services.close()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one Prometheus sample in the text format, or None if it is absent."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return None


def test_metrics_count_requests_by_route_template_and_status(client: Any, anonymous: Any) -> None:
    client.post("/api/v1/contacts", json={"email": "ada@example.com"})
    client.get("/api/v1/contacts/ada@example.com")
    client.get("/api/v1/contacts/1")
    client.get("/api/v1/contacts/nobody@example.com")
    anonymous.get("/api/v1/contacts")
    client.get("/no/such/path")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    requests = "hookhub_http_requests_total"
    ref = "/api/v1/contacts/{ref}"
    assert sample(text, requests, route=ref, method="GET", status="200") == 2
    assert sample(text, requests, route=ref, method="GET", status="404") == 1
    assert sample(text, requests, route="/api/v1/contacts", method="POST", status="201") == 1
    assert sample(text, requests, route="/api/v1/contacts", method="GET", status="401") == 1
    assert sample(text, requests, route="unmatched", method="GET", status="404") == 1
    latency = "hookhub_http_request_duration_seconds"
    assert sample(text, f"{latency}_count", route=ref) == 3
    assert sample(text, f"{latency}_bucket", route=ref, le="+Inf") == 3
    assert sample(text, "hookhub_messages_created_total", type="contact.created") == 1


def test_metrics_keep_raw_paths_out_of_the_labels(client: Any) -> None:
    client.get("/api/v1/contacts/secret.person@example.com")
    assert "secret.person" not in client.get("/metrics").text


def test_openapi_documents_the_contacts_core(anonymous: Any) -> None:
    response = anonymous.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path, methods in {
        "/api/v1/contacts": {"get", "post"},
        "/api/v1/contacts/{ref}": {"get", "patch", "delete"},
        "/api/v1/lists": {"get", "post"},
        "/api/v1/lists/{list_id}": {"get", "patch", "delete"},
        "/api/v1/lists/{list_id}/contacts": {"post"},
        "/api/v1/lists/{list_id}/contacts/{ref}": {"delete"},
        "/api/v1/events": {"get", "post"},
        "/api/v1/messages": {"get"},
        "/api/v1/messages/{message_id}": {"get"},
    }.items():
        assert methods <= set(paths[path]), path


def test_docs_page_is_served(anonymous: Any) -> None:
    response = anonymous.get("/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "/openapi.json" in response.text


def test_openapi_describes_response_bodies(anonymous: Any) -> None:
    document = anonymous.get("/openapi.json").json()
    get_contact = document["paths"]["/api/v1/contacts/{ref}"]["get"]
    schema = get_contact["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ContactOut"}
