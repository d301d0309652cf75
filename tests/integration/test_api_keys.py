"""API keys, on each backend: every /api/v1 route refuses requests without a valid key with the
JSON error shape, revocation takes effect at once in the revoking process, and only hashes of
keys are stored."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hookhub import cli
from hookhub.keys import ApiKeys
from hookhub.services import Services
from hookhub.store.apikeys import ApiKeyStore
from hookhub.store.schema import api_keys
from tests.conftest import API_KEY, SECRET_KEY


def api_routes(client: Any) -> list[tuple[str, str]]:
    """(method, concrete path) for every route under /api/v1 that the OpenAPI document lists,
    path parameters filled in."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, operations in paths.items()
        if path.startswith("/api/v1/")
        for method in operations
    ]


BAD_HEADERS = {
    "missing": None,
    "empty": "",
    "wrong scheme": f"Basic {API_KEY}",
    "no key": "Bearer ",
    "key without scheme": API_KEY,
    "unknown key": "Bearer hh_unknown_0123456789abcdefghijklmnopqrstuv",
    "oversized key": "Bearer " + "k" * 600,
}


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_every_api_route_is_401_without_a_valid_key(anonymous: Any, header: str | None) -> None:
    routes = api_routes(anonymous)
    assert ("POST", "/api/v1/contacts") in routes
    assert ("GET", "/api/v1/messages/1") in routes
    headers = {} if header is None else {"Authorization": header}
    for method, path in routes:
        response = anonymous.request(method, path, headers=headers, json={"email": "a@example.com"})
        assert response.status_code == 401, (method, path, response.text)
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details"}
        assert error["code"] == "unauthorized"
    assert (
        anonymous.get(
            "/api/v1/contacts", headers={"Authorization": f"Bearer {API_KEY}"}
        ).status_code
        == 200
    )


def test_every_api_route_is_401_with_a_revoked_key(anonymous: Any, services: Services) -> None:
    info, key = services.keys.create("revoked")
    headers = {"Authorization": f"Bearer {key}"}
    assert anonymous.get("/api/v1/contacts", headers=headers).status_code == 200
    services.keys.revoke(info.id)
    for method, path in api_routes(anonymous):
        response = anonymous.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"


def test_nothing_is_written_by_a_refused_request(anonymous: Any, services: Services) -> None:
    refused = anonymous.post("/api/v1/contacts", json={"email": "a@example.com"})
    assert refused.status_code == 401
    with services.crm.reader() as crm:
        assert crm.contacts.count() == 0


def test_scheme_is_case_insensitive(anonymous: Any) -> None:
    response = anonymous.get("/api/v1/contacts", headers={"Authorization": f"bearer {API_KEY}"})
    assert response.status_code == 200


def test_created_key_works_and_revoked_key_is_refused_at_once(
    anonymous: Any, services: Services
) -> None:
    info, key = services.keys.create("zapier")
    headers = {"Authorization": f"Bearer {key}"}
    assert anonymous.get("/api/v1/contacts", headers=headers).status_code == 200
    services.keys.revoke(info.id)
    refused = anonymous.get("/api/v1/contacts", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "The API key is unknown or revoked."
    assert (
        anonymous.get(
            "/api/v1/contacts", headers={"Authorization": f"Bearer {API_KEY}"}
        ).status_code
        == 200
    )


def test_revoking_during_a_key_check_does_not_leave_the_key_cached(
    anonymous: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    info, key = services.keys.create("race")
    real_lookup = ApiKeyStore.find_active

    def lookup_then_revoke(store: ApiKeyStore, digest: str) -> Any:
        row = real_lookup(store, digest)
        monkeypatch.setattr(ApiKeyStore, "find_active", real_lookup)
        services.keys.revoke(info.id)  # lands between the lookup and the caching
        return row

    monkeypatch.setattr(ApiKeyStore, "find_active", lookup_then_revoke)
    headers = {"Authorization": f"Bearer {key}"}
    assert anonymous.get("/api/v1/contacts", headers=headers).status_code == 200
    assert anonymous.get("/api/v1/contacts", headers=headers).status_code == 401


def test_revoking_an_unknown_or_revoked_key_is_not_found(services: Services) -> None:
    from hookhub.errors import NotFound

    info, _key = services.keys.create("once")
    services.keys.revoke(info.id)
    with pytest.raises(NotFound):
        services.keys.revoke(info.id)
    with pytest.raises(NotFound):
        services.keys.revoke(4242)


def stored_key_rows(services: Services) -> list[str]:
    with services.db.read() as conn:
        rows = conn.execute(select(api_keys)).all()
    return [" ".join(str(value) for value in row) for row in rows]


@pytest.mark.parametrize("adopted", ["shortkey", "s3cr3t-but-0nly-medium-length", API_KEY + "2"])
def test_keys_are_stored_only_as_hashes(services: Services, adopted: str) -> None:
    _info, created = services.keys.create("generated")
    services.keys.adopt("from environment", adopted)
    rows = stored_key_rows(services)
    assert len(rows) == 3
    for key in (API_KEY, created, adopted):
        assert not any(key in row for row in rows), key
    assert ApiKeys(services.db).adopt("again", adopted) is None
    services.keys.check(f"Bearer {adopted}")
    services.keys.check(f"Bearer {created}")


def test_cli_creates_lists_and_revokes_keys(
    anonymous: Any, services: Services, db_url: str
) -> None:
    runner = CliRunner(env={"HOOKHUB_SECRET_KEY": SECRET_KEY})
    created = runner.invoke(cli.app, ["keys", "create", "--name", "ci", "--database-url", db_url])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("hh_")
    assert (
        anonymous.get("/api/v1/lists", headers={"Authorization": f"Bearer {key}"}).status_code
        == 200
    )

    listed = runner.invoke(cli.app, ["keys", "list", "--database-url", db_url])
    assert listed.exit_code == 0, listed.output
    assert "ci" in listed.stdout
    assert key not in listed.stdout
    key_id = next(k.id for k in services.keys.list() if k.name == "ci")

    revoked = runner.invoke(cli.app, ["keys", "revoke", str(key_id), "--database-url", db_url])
    assert revoked.exit_code == 0, revoked.output
    assert services.keys.list()[-1].revoked_at is not None
    again = runner.invoke(cli.app, ["keys", "revoke", str(key_id), "--database-url", db_url])
    assert again.exit_code == 1


def test_key_from_the_environment_works_despite_surrounding_whitespace(
    anonymous: Any, services: Services
) -> None:
    services.keys.adopt("from a file", "  hh_from_env_file_0123456789abcdefghijklmnop\n")
    headers = {"Authorization": "Bearer hh_from_env_file_0123456789abcdefghijklmnop"}
    assert anonymous.get("/api/v1/contacts", headers=headers).status_code == 200
