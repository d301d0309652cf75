"""Shared fixtures: a database per backend, the services built on it, and an API client.

Integration tests take the ``db_url`` fixture and run once per backend: SQLite always,
PostgreSQL when ``HOOKHUB_TEST_POSTGRES_URL`` names a server (otherwise those runs are skipped
with the reason). Each PostgreSQL test gets an empty schema by truncation of a database created
for this test session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hookhub.config import Settings, load_settings
from hookhub.core.crypto import Keyring, parse_key
from hookhub.services import Services, build_services
from hookhub.store.database import Database, normalize_url
from hookhub.store.migrate import migrate
from hookhub.store.schema import metadata
from hookhub.store.secrets import SecretBox

POSTGRES_ENV = "HOOKHUB_TEST_POSTGRES_URL"
API_KEY = "hh_test_key_0123456789abcdefghijklmnopqrstuvwxyz"
# Seals secrets at rest in tests (PostgreSQL requires one; SQLite would make a key file).
SECRET_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def postgres_server_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session (dropped at the end)."""
    server = postgres_server_url()
    if server is None:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}=postgresql://user@host:port/db")
    admin = create_engine(normalize_url(server), isolation_level="AUTOCOMMIT")
    name = f"hookhub_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"{POSTGRES_ENV} is set but PostgreSQL is unreachable: {exc}")
    url = make_url(normalize_url(server)).set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    db.use_secrets(SecretBox(Keyring(parse_key(SECRET_KEY))))
    migrate(db)
    db.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database URL; the test runs once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hookhub.db'}"
    url: str = request.getfixturevalue("postgres_database")
    _truncate_postgres(url)
    return url


def make_settings(db_url: str, **overrides: Any) -> Settings:
    defaults: dict[str, Any] = {
        "database_url": db_url,
        "api_key": API_KEY,
        "secret_key": SECRET_KEY,
        "retry_schedule": "1,1,1",
        "allow_private_destinations": "127.0.0.0/8,::1/128",
        "log_format": "text",
    }
    defaults.update(overrides)
    return load_settings(**defaults)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    migrate(built.db)
    assert settings.api_key is not None
    built.keys.adopt("tests", settings.api_key.get_secret_value())
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from hookhub.api.app import create_app

    with TestClient(
        create_app(services),
        headers={"Authorization": f"Bearer {API_KEY}"},
        raise_server_exceptions=True,
    ) as test_client:
        yield test_client
