"""Inbound webhook tests' vocabulary: create one over the API, sign like its provider, send, look.

Signing always goes through the provider module's own ``sign()``, the same code ``hookhub
inbound send`` uses, so a test that passes here is a request a real provider could make.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from hookhub.inbound.providers import get_provider
from hookhub.services import Services
from hookhub.store.schema import (
    attribute_definitions,
    contacts,
    custom_events,
    deliveries,
    inbound_requests,
    list_members,
    messages,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# Everything an inbound request can cause, apart from its own request-log entry.
SIDE_EFFECT_TABLES = (contacts, custom_events, list_members, attribute_definitions, messages)


def fixture(name: str) -> bytes:
    """A provider's real-shaped payload from tests/fixtures, byte for byte."""
    return (FIXTURES / f"{name}.json").read_bytes()


@dataclass
class Hook:
    """An inbound webhook as its creator sees it: the answer to POST /inbound-webhooks."""

    id: int
    source: str
    url: str
    secret: str | None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The receive path, for the in-process client (the URL's host is the public one)."""
        return "/in/" + self.url.split("/in/", 1)[1]

    @property
    def token(self) -> str:
        return self.url.rsplit("/", 1)[1]

    def sign(
        self,
        body: bytes,
        *,
        now: float | None = None,
        secret: str | None = None,
        **options: Any,
    ) -> dict[str, str]:
        """The headers the provider would send with ``body``."""
        return get_provider(self.source).sign(
            body,
            (self.secret or "") if secret is None else secret,
            time.time() if now is None else now,
            {**self.options, **options},
        )

    def signed(
        self,
        body: bytes,
        *,
        now: float | None = None,
        secret: str | None = None,
        **options: Any,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers the provider would send (Mailgun signs inside the body)."""
        return get_provider(self.source).signed_request(
            body,
            (self.secret or "") if secret is None else secret,
            time.time() if now is None else now,
            {**self.options, **options},
        )


def create_hook(client: Any, source: str, **spec: Any) -> Hook:
    if source == "generic" and not spec.get("secret"):  # unauthenticated, knowingly
        spec = {**spec, "options": {"auth": "none", **(spec.get("options") or {})}}
    response = client.post("/api/v1/inbound-webhooks", json={"source": source, **spec})
    assert response.status_code == 201, response.text
    answer = response.json()
    # Keys copied from a sender's dashboard are not echoed back: the test knows what it gave.
    secret = answer["secret"] or spec.get("secret")
    return Hook(answer["id"], source, answer["url"], secret, spec.get("options") or {})


def sendgrid_key_pair() -> tuple[str, str]:
    """``(private_key, public_key)`` in base64 DER: the public half as SendGrid shows it (the
    webhook's secret), the private half for the ``private_key`` signing option."""
    private = ec.generate_private_key(ec.SECP256R1())
    private_der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(private_der).decode(), base64.b64encode(public_der).decode()


@contextlib.contextmanager
def raw_client(client: Any) -> Iterator[Any]:
    """A client of the same app without the API key: what a provider's request looks like."""
    from fastapi.testclient import TestClient

    with TestClient(client.app, raise_server_exceptions=True) as sender:
        yield sender


def requests_of(client: Any, hook: Hook, **params: Any) -> list[dict[str, Any]]:
    """The request log of ``hook``, newest first, through the API."""
    response = client.get(
        f"/api/v1/inbound-webhooks/{hook.id}/requests", params={"limit": 500, **params}
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def messages_of(client: Any, event_type: str | None = None) -> list[dict[str, Any]]:
    """Payloads of the outbox messages so far, through the API."""
    params: dict[str, Any] = {"limit": 1000}
    if event_type is not None:
        params["event_type"] = event_type
    response = client.get("/api/v1/messages", params=params)
    assert response.status_code == 200, response.text
    return [m["payload"] for m in response.json()["data"]]


def side_effects(services: Services) -> dict[str, int]:
    """Rows in every table an accepted request can write to (the request log excepted)."""
    with services.db.read() as conn:
        counts = {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (*SIDE_EFFECT_TABLES, deliveries)
        }
    return counts


NOTHING = {table.name: 0 for table in (*SIDE_EFFECT_TABLES, deliveries)}


def log_statuses(services: Services) -> list[str]:
    """The status of every request-log entry, oldest first (straight from the database)."""
    with services.db.read() as conn:
        query = select(inbound_requests.c.status).order_by(inbound_requests.c.id)
        return list(conn.execute(query).scalars())
