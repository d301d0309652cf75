"""API key scopes, on each backend: read keys only read and never see a secret, write keys change
things but reveal no secret, admin keys do everything; /metrics needs a key or its own token;
HOOKHUB_API_KEY must be long enough; the OpenAPI document names each operation's scope."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from hookhub import cli
from hookhub.api.app import create_app
from hookhub.keys import Scope
from hookhub.services import Services, build_services
from hookhub.store.migrate import migrate
from tests.conftest import API_KEY, SECRET_KEY, make_settings

API = "/api/v1"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def forbidden(response: Any) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert set(error) == {"code", "message", "details"}
    assert "scope" in error["message"]


@pytest.fixture
def keys(services: Services) -> dict[Scope, str]:
    return {scope: services.keys.create(scope.value, scope=scope)[1] for scope in Scope}


def test_a_read_key_reads_but_changes_nothing_and_sees_no_secret(
    client: Any, anonymous: Any, keys: dict[Scope, str]
) -> None:
    hook = client.post(f"{API}/webhooks", json={"url": "https://example.com/h", "events": ["*"]})
    wid = hook.json()["id"]
    read = bearer(keys[Scope.READ])
    assert anonymous.get(f"{API}/contacts", headers=read).status_code == 200
    shown = anonymous.get(f"{API}/webhooks/{wid}", headers=read)
    assert shown.status_code == 200
    assert "secret" not in shown.json()
    forbidden(anonymous.get(f"{API}/webhooks/{wid}/secret", headers=read))
    forbidden(anonymous.post(f"{API}/contacts", headers=read, json={"email": "r@example.com"}))
    forbidden(anonymous.post(f"{API}/webhooks/{wid}/rotate-secret", headers=read))
    forbidden(anonymous.delete(f"{API}/webhooks/{wid}", headers=read))
    assert client.get(f"{API}/contacts").json()["data"] == []
    assert client.get(f"{API}/webhooks/{wid}/secret").json() == {"secret": hook.json()["secret"]}


def test_a_write_key_changes_things_but_reveals_no_stored_secret(
    client: Any, anonymous: Any, keys: dict[Scope, str]
) -> None:
    write = bearer(keys[Scope.WRITE])
    created = anonymous.post(
        f"{API}/webhooks", headers=write, json={"url": "https://example.com/h", "events": ["*"]}
    )
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    patched = anonymous.patch(f"{API}/webhooks/{wid}", headers=write, json={"description": "x"})
    assert patched.status_code == 200, patched.text
    assert (
        anonymous.post(
            f"{API}/contacts", headers=write, json={"email": "w@example.com"}
        ).status_code
        == 201
    )
    forbidden(anonymous.get(f"{API}/webhooks/{wid}/secret", headers=write))
    forbidden(anonymous.post(f"{API}/webhooks/{wid}/rotate-secret", headers=write))
    admin = bearer(keys[Scope.ADMIN])
    assert anonymous.get(f"{API}/webhooks/{wid}/secret", headers=admin).status_code == 200
    assert anonymous.post(f"{API}/webhooks/{wid}/rotate-secret", headers=admin).status_code == 200


def test_every_operation_documents_its_scope_and_is_enforced(
    anonymous: Any, keys: dict[Scope, str]
) -> None:
    paths = anonymous.get("/openapi.json").json()["paths"]
    checked = 0
    for path, operations in paths.items():
        if not path.startswith(f"{API}/"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method, operation in operations.items():
            scope = Scope(operation["x-hookhub-scope"])
            assert "403" in operation["responses"], (method, path)
            assert scope is (Scope.READ if method == "get" else Scope.WRITE) or (
                scope is Scope.ADMIN and "secret" in path
            ), (method, path, scope)
            for weaker in (s for s in Scope if not s.allows(scope)):
                response = anonymous.request(
                    method.upper(), concrete, headers=bearer(keys[weaker]), json={}
                )
                forbidden(response)
                checked += 1
    assert checked > 20


def test_keys_are_created_with_a_scope_from_the_cli(anonymous: Any, db_url: str) -> None:
    runner = CliRunner(env={"HOOKHUB_SECRET_KEY": SECRET_KEY, "COLUMNS": "200"})
    made = {}
    for args in ([], ["--scope", "read"], ["--scope", "admin"]):
        result = runner.invoke(cli.app, ["keys", "create", "--database-url", db_url, *args])
        assert result.exit_code == 0, result.output
        made[args[-1] if args else "default"] = result.stdout.strip().splitlines()[-1]
    contact = {"email": "cli@example.com"}
    default = anonymous.post(f"{API}/contacts", headers=bearer(made["default"]), json=contact)
    assert default.status_code == 201, default.text  # write by default
    forbidden(anonymous.get(f"{API}/webhooks/1/secret", headers=bearer(made["default"])))
    forbidden(anonymous.post(f"{API}/contacts", headers=bearer(made["read"]), json=contact))
    assert (
        anonymous.get(f"{API}/webhooks/1/secret", headers=bearer(made["admin"])).status_code == 404
    )
    listed = runner.invoke(cli.app, ["keys", "list", "--database-url", db_url])
    assert listed.exit_code == 0, listed.output
    assert "read" in listed.stdout
    assert "admin" in listed.stdout
    assert "write" in listed.stdout
    refused = runner.invoke(
        cli.app, ["keys", "create", "--scope", "root", "--database-url", db_url]
    )
    assert refused.exit_code == 2


def test_the_environment_key_is_an_admin_key(anonymous: Any) -> None:
    assert anonymous.get(f"{API}/webhooks/1/secret", headers=bearer(API_KEY)).status_code == 404


@pytest.fixture
def metrics_app(db_url: str) -> Iterator[tuple[Services, TestClient]]:
    services = build_services(make_settings(db_url, metrics_token="prometheus-scrapes-0123456789"))
    migrate(services.db)
    with TestClient(create_app(services)) as client:
        yield services, client
    services.close()


def test_metrics_need_a_key_or_the_metrics_token(
    metrics_app: tuple[Services, TestClient],
) -> None:
    services, client = metrics_app
    for headers in ({}, bearer("wrong-token"), {"Authorization": "Basic x"}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "unauthorized"
    assert (
        client.get("/metrics", headers=bearer("prometheus-scrapes-0123456789")).status_code == 200
    )
    _info, read_key = services.keys.create("grafana", scope=Scope.READ)
    answer = client.get("/metrics", headers=bearer(read_key))
    assert answer.status_code == 200
    assert "hookhub" in answer.text
    assert client.get("/healthz").status_code == 200  # still open, for load balancers


def test_a_short_api_key_is_refused_at_start(db_url: str) -> None:
    with pytest.raises(ValidationError, match="at least 24 characters"):
        make_settings(db_url, api_key="short-key-0123456789")
    result = CliRunner(env={"HOOKHUB_API_KEY": "short-key-0123456789"}).invoke(
        cli.app, ["keys", "list", "--database-url", db_url]
    )
    assert result.exit_code == 2
    assert "at least 24 characters" in result.output
