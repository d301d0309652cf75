"""Secrets at rest, on each backend: a dump of the database holds no secret, a wrong key stops
a process with a clear message, a key rotation re-encrypts everything, and the upgrade encrypts
what older versions stored in plaintext."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from hookhub import cli
from hookhub.core.crypto import Keyring, new_key, parse_key
from hookhub.errors import SecretKeyError
from hookhub.secretkey import key_file_path, load_keyring
from hookhub.services import Services, build_services
from hookhub.store.database import Database
from hookhub.store.migrate import migrate
from hookhub.store.schema import metadata
from hookhub.store.secrets import SecretBox, check_readable
from tests.conftest import SECRET_KEY, make_settings

API = "/api/v1"
OWN_SECRET = "whsec_" + "c2VjcmV0LW9mLXRoZS1lbmRwb2ludC0xMjM0NTY3OA=="
BEARER = "bearer-token-nobody-should-read-0001"
PASSWORD = "basic-password-nobody-should-read-0002"
INBOUND_SECRET = "inbound-shared-secret-nobody-should-read-0003"


def dump(db: Database) -> str:
    """Every row of every table as the database holds it (what a backup would hand out)."""
    parts = []
    with db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(text(f"SELECT * FROM {table.name}")):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


def fill(client: Any) -> dict[str, Any]:
    bearer = client.post(
        f"{API}/webhooks",
        json={
            "url": "https://example.com/a",
            "events": ["*"],
            "secret": OWN_SECRET,
            "auth": {"type": "bearer", "token": BEARER},
        },
    )
    assert bearer.status_code == 201, bearer.text
    basic = client.post(
        f"{API}/webhooks",
        json={
            "url": "https://example.com/b",
            "events": ["*"],
            "auth": {"type": "basic", "username": "ada", "password": PASSWORD},
        },
    )
    assert basic.status_code == 201, basic.text
    rotated = client.post(f"{API}/webhooks/{basic.json()['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    inbound = client.post(
        f"{API}/inbound-webhooks",
        json={"name": "shop", "source": "shopify", "secret": INBOUND_SECRET},
    )
    assert inbound.status_code == 201, inbound.text
    return {
        "secrets": [OWN_SECRET, basic.json()["secret"], rotated.json()["secret"]],
        "ids": [bearer.json()["id"], basic.json()["id"]],
        "inbound": inbound.json()["id"],
    }


def test_a_database_dump_holds_no_secret(client: Any, services: Services) -> None:
    made = fill(client)
    dumped = dump(services.db)
    for secret in [*made["secrets"], BEARER, PASSWORD, INBOUND_SECRET]:
        assert secret not in dumped
        assert secret.removeprefix("whsec_") not in dumped
    assert "enc:v1:" in dumped
    # Hookhub itself still reads them.
    first, second = made["ids"]
    assert client.get(f"{API}/webhooks/{first}/secret").json() == {"secret": OWN_SECRET}
    assert client.get(f"{API}/webhooks/{second}/secret").json() == {"secret": made["secrets"][2]}
    with services.db.read() as conn:
        from hookhub.store.endpoints import EndpointStore

        endpoint = EndpointStore(conn).get(first)
        assert endpoint is not None
        assert endpoint.auth == {"type": "bearer", "token": BEARER}
    assert services.inbound.get(made["inbound"]).secret == INBOUND_SECRET


def _runner(**env: str) -> CliRunner:
    return CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", **env})


def test_a_wrong_key_stops_with_a_clear_message(
    client: Any, services: Services, db_url: str
) -> None:
    fill(client)
    other = new_key()
    result = _runner(HOOKHUB_SECRET_KEY=other).invoke(
        cli.app, ["secrets", "status", "--database-url", db_url]
    )
    assert result.exit_code == 2, result.output
    assert "HOOKHUB_SECRET_KEY" in result.output
    assert Keyring(parse_key(SECRET_KEY)).current.id in result.output  # the key it needs
    assert other not in result.output
    with services.db.read() as conn, pytest.raises(SecretKeyError, match="encrypted with key"):
        check_readable(conn, Keyring(parse_key(other)))


def test_rotating_the_key_reencrypts_every_secret(
    client: Any, services: Services, db_url: str
) -> None:
    made = fill(client)
    old_id = Keyring(parse_key(SECRET_KEY)).current.id
    new = new_key()
    new_id = Keyring(parse_key(new)).current.id
    rotating = _runner(HOOKHUB_SECRET_KEY=new, HOOKHUB_SECRET_KEY_PREVIOUS=SECRET_KEY)
    status = rotating.invoke(cli.app, ["secrets", "status", "--database-url", db_url])
    assert status.exit_code == 0, status.output
    assert old_id in status.output
    assert new_id in status.output
    rotated = rotating.invoke(cli.app, ["secrets", "rotate-key", "--database-url", db_url])
    assert rotated.exit_code == 0, rotated.output
    assert "Re-encrypted 6 secret(s)" in rotated.output
    dumped = dump(services.db)
    assert f"enc:v1:{new_id}:" in dumped
    assert f"enc:v1:{old_id}:" not in dumped
    # The new key alone now opens everything; the old one alone no longer does.
    alone = _runner(HOOKHUB_SECRET_KEY=new)
    assert alone.invoke(cli.app, ["secrets", "status", "--database-url", db_url]).exit_code == 0
    with tuned_services(db_url, secret_key=new) as after:
        assert after.endpoints.get(made["ids"][0]).secret == OWN_SECRET
        assert after.inbound.get(made["inbound"]).secret == INBOUND_SECRET
    old_alone = _runner(HOOKHUB_SECRET_KEY=SECRET_KEY)
    refused = old_alone.invoke(cli.app, ["secrets", "status", "--database-url", db_url])
    assert refused.exit_code == 2, refused.output


class tuned_services:  # a context manager, named like the function it stands for
    def __init__(self, db_url: str, **overrides: Any) -> None:
        self.services = build_services(make_settings(db_url, **overrides))

    def __enter__(self) -> Services:
        return self.services

    def __exit__(self, *_exc: object) -> None:
        self.services.close()


def test_generate_key_prints_a_usable_key() -> None:
    result = _runner().invoke(cli.app, ["secrets", "generate-key"])
    assert result.exit_code == 0, result.output
    assert len(parse_key(result.stdout.strip())) == 32


def test_postgresql_refuses_to_start_without_a_key() -> None:
    settings = make_settings("postgresql://postgres@127.0.0.1:5432/test", secret_key=None)
    with pytest.raises(SecretKeyError, match="HOOKHUB_SECRET_KEY is required with PostgreSQL"):
        load_keyring(settings)
    result = _runner().invoke(
        cli.app, ["secrets", "status", "--database-url", "postgresql://postgres@127.0.0.1:5432/x"]
    )
    assert result.exit_code == 2
    assert "HOOKHUB_SECRET_KEY is required with PostgreSQL" in result.output


def test_sqlite_keeps_a_generated_key_beside_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hookhub.db'}"
    settings = make_settings(url, secret_key=None)
    first = load_keyring(settings)
    path = key_file_path(url)
    assert path == tmp_path / "hookhub.db.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_keyring(settings).current.id == first.current.id  # kept, not made again
    # Once HOOKHUB_SECRET_KEY is set, the file's key still opens what it sealed.
    later = load_keyring(make_settings(url, secret_key=new_key()))
    assert first.current.id in later.ids
    assert later.current.id != first.current.id


def test_malformed_keys_are_refused_with_the_variable_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hookhub.db'}"
    with pytest.raises(SecretKeyError, match="HOOKHUB_SECRET_KEY is not a valid key"):
        load_keyring(make_settings(url, secret_key="too-short"))
    with pytest.raises(SecretKeyError, match="HOOKHUB_SECRET_KEY_PREVIOUS is not a valid key"):
        load_keyring(make_settings(url, secret_key_previous=f"{new_key()},nope"))


def test_the_upgrade_encrypts_secrets_stored_in_plaintext(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.engine.begin() as conn:  # an empty database at the schema before sealing
            for table in reversed(metadata.sorted_tables):
                conn.execute(text(f"DROP TABLE IF EXISTS {table.name}"))
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        migrate(db, "0004")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO endpoints (url, description, event_types, headers, auth, secret,"
                    " previous_secret, previous_secret_until, batched, enabled, created_at,"
                    " updated_at) VALUES ('https://example.com', '', '[\"*\"]', '{}',"
                    " :auth, :secret, :previous, 4102444800, false, true, :now, :now)"
                ),
                {
                    "auth": f'{{"type": "bearer", "token": "{BEARER}"}}',
                    "secret": OWN_SECRET,
                    "previous": "whsec_" + "b2xkLXNlY3JldC1vZi10aGUtZW5kcG9pbnQtOTk5OQ==",
                    "now": "2026-01-01 00:00:00",
                },
            )
            conn.execute(
                text(
                    "INSERT INTO inbound_webhooks (name, source, token, secret, options, rules,"
                    " enabled, created_at, updated_at) VALUES ('old', 'generic',"
                    " 'tok_0123456789abcdef', :secret, '{}', '[]', true, :now, :now)"
                ),
                {"secret": INBOUND_SECRET, "now": "2026-01-01 00:00:00"},
            )
        db.use_secrets(SecretBox(Keyring(parse_key(SECRET_KEY))))
        migrate(db)
        dumped = dump(db)
        for secret in (OWN_SECRET, BEARER, INBOUND_SECRET, "b2xkLXNlY3JldC1vZi10aGUt"):
            assert secret not in dumped
    finally:
        db.dispose()
    with tuned_services(db_url) as services:
        [endpoint] = services.endpoints.page(after_id=None, limit=10)
        assert endpoint.secret == OWN_SECRET
        assert endpoint.auth == {"type": "bearer", "token": BEARER}
        assert endpoint.signing_secrets(0)[1].startswith("whsec_b2xk")
        [inbound] = services.inbound.page(after_id=None, limit=10)
        assert inbound.secret == INBOUND_SECRET
