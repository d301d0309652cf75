"""Fixtures for API tests: what the outbox holds, how many rows each table has, a keyless client.

These read through the public API (``GET /api/v1/messages``) where a user would, and through the
database where the point is that nothing was written at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from hookhub.services import Services
from hookhub.store.schema import (
    attribute_definitions,
    contacts,
    custom_events,
    list_members,
    lists,
    messages,
)

Outbox = Callable[..., list[dict[str, Any]]]
RowCounts = Callable[[], dict[str, int]]

_CORE_TABLES = (contacts, lists, list_members, custom_events, attribute_definitions, messages)


@pytest.fixture
def outbox(client: Any) -> Outbox:
    """Payloads of the outbox messages so far (optionally of one type), read via the API.

    Messages of one transaction share a millisecond and are not ordered among themselves, so
    tests compare those as sets.
    """

    def read(event_type: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 1000}
        if event_type is not None:
            params["event_type"] = event_type
        response = client.get("/api/v1/messages", params=params)
        assert response.status_code == 200, response.text
        return [m["payload"] for m in response.json()["data"]]

    return read


@pytest.fixture
def row_counts(services: Services) -> RowCounts:
    """Rows per contacts-core table, straight from the database."""

    def count() -> dict[str, int]:
        with services.db.read() as conn:
            return {
                table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for table in _CORE_TABLES
            }

    return count


@pytest.fixture
def anonymous(services: Services) -> Iterator[Any]:
    """A client that sends no Authorization header unless a test gives one."""
    from fastapi.testclient import TestClient

    from hookhub.api.app import create_app

    with TestClient(create_app(services), raise_server_exceptions=True) as test_client:
        yield test_client


@pytest.fixture
def dashboard_client(services: Services) -> Iterator[Callable[[str], Any]]:
    """``dashboard_client("admin" | "viewer")``: a TestClient signed in to the dashboard through
    the sign-in form (tests.support.dashboard.DashboardClient: ``.csrf_token``, ``.submit()``);
    runs once per backend like ``services``."""
    from hookhub.api.app import create_app
    from tests.support.dashboard import DashboardClient, signed_in_client

    app = create_app(services)
    opened: list[DashboardClient] = []

    def make(role: str = "admin") -> DashboardClient:
        client = signed_in_client(app, services, role)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)
