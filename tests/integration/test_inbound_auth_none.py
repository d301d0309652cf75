"""A generic inbound webhook without a secret accepts anyone: it is only made when asked for
explicitly (``"options": {"auth": "none"}``), and ones made before keep receiving."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from hookhub.services import Services
from hookhub.store.schema import inbound_webhooks
from tests.support.inbound import raw_client

API = "/api/v1/inbound-webhooks"


def test_a_secretless_generic_webhook_needs_auth_none(client: Any) -> None:
    for spec in ({}, {"options": {}}, {"options": {"auth": "hmac"}}, {"secret": None}):
        refused = client.post(API, json={"source": "generic", **spec})
        assert refused.status_code == 422, (spec, refused.text)
        error = refused.json()["error"]
        assert '"auth": "none"' in error["message"]
        assert error["details"] == {"field": "options.auth"}
    assert client.get(API).json()["data"] == []
    made = client.post(API, json={"source": "generic", "options": {"auth": "none"}})
    assert made.status_code == 201, made.text
    assert made.json()["secret"] is None
    signed = client.post(API, json={"source": "generic", "secret": "s3cret-shared"})
    assert signed.status_code == 201, signed.text


def test_secretless_webhooks_made_before_keep_receiving(client: Any, services: Services) -> None:
    made = client.post(API, json={"source": "generic", "options": {"auth": "none"}}).json()
    with services.db.write() as conn:  # as an older version stored it: no auth option at all
        conn.execute(
            update(inbound_webhooks).where(inbound_webhooks.c.id == made["id"]).values(options="{}")
        )
    path = made["url"].split("://", 1)[1].split("/", 1)[1]
    with raw_client(client) as sender:
        answer = sender.post(f"/{path}", json={"email": "old@example.com"})
    assert answer.status_code in (200, 202), answer.text
