"""What an endpoint would be sent, without sending: ``POST /webhooks/{id}/preview``.

The body is the catalog's example of an event type, or a stored message, through the
endpoint's transform if it has one; the headers are the ones a delivery carries, signed now.
What this module must never do: send anything, or show a credential (the Authorization
header's value is masked).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hookhub import __version__
from hookhub.core import jsoncodec, signing
from hookhub.core.catalog import CATALOG
from hookhub.errors import NotFound, ValidationFailed
from hookhub.outbound.outbox import build_message
from hookhub.outbound.request import base_headers
from hookhub.outbound.transforms import render
from hookhub.records.outbound import Endpoint
from hookhub.store.database import Database
from hookhub.store.messages import MessageStore

__all__ = ["preview"]

MASK = "********"


def _message(db: Database, event_type: str | None, message_id: str | None) -> tuple[str, bytes]:
    if (event_type is None) == (message_id is None):
        raise ValidationFailed(
            "Give either event_type or message_id.", details={"field": "event_type"}
        )
    if event_type is not None:
        kind = CATALOG.get(event_type)
        if kind is None:
            raise ValidationFailed(
                f"Unknown event type {event_type!r}.", details={"field": "event_type"}
            )
        message = build_message(event_type, dict(kind.example), datetime.now(UTC))
        return message.id, message.payload
    assert message_id is not None
    with db.read() as conn:
        row = MessageStore(conn).get(message_id)
    if row is None:
        raise NotFound(f"No message {message_id}.", details={"message_id": message_id})
    payload = row.payload
    return str(row.id), payload.encode() if isinstance(payload, str) else bytes(payload)


def preview(
    db: Database, endpoint: Endpoint, *, event_type: str | None, message_id: str | None
) -> dict[str, Any]:
    """``{"body": <JSON>, "headers": {...}}``: a 422 if the transform fails on the message."""
    msg_id, body = _message(db, event_type, message_id)
    if endpoint.transform is not None:
        body = render(endpoint.transform, jsoncodec.loads(body))
    now = datetime.now(UTC).timestamp()
    headers = base_headers(endpoint, f"hookhub/{__version__}")
    if "authorization" in headers:
        headers["authorization"] = MASK
    headers.update(signing.headers(endpoint.signing_secrets(now), msg_id, int(now), body))
    return {"body": jsoncodec.loads(body), "headers": headers}
