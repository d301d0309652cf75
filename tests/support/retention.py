"""Retention tests' vocabulary: messages and requests made as they would have been days ago.

Messages are written through the outbox with an old creation time (their ids carry it), and
fan-out makes their deliveries; the deliveries' outcomes are then set as a worker would have
left them. Requests are received over HTTP and then aged in the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from hookhub.outbound.outbox import build_message
from hookhub.services import Services
from hookhub.store.schema import (
    deliveries,
    delivery_attempts,
    inbound_dedupe,
    inbound_requests,
    messages,
)

DAY = 24 * 3600.0


def seed_message(
    services: Services,
    event_type: str,
    *,
    age_days: float,
    outcomes: Mapping[int, str] | None = None,
    data: dict[str, Any] | None = None,
) -> str:
    """A message created ``age_days`` ago, fanned out to its subscribers; ``outcomes`` sets the
    status of the delivery to each endpoint named (a final one with its attempt recorded)."""
    at = datetime.now(UTC) - timedelta(days=age_days)
    message = build_message(event_type, data or {"email": "old@example.com"}, at)
    with services.db.write() as conn:
        services.outbox.writer(conn).write([message])
        for endpoint_id, status in (outcomes or {}).items():
            (delivery_id,) = conn.execute(
                select(deliveries.c.id).where(
                    deliveries.c.message_id == message.id, deliveries.c.endpoint_id == endpoint_id
                )
            ).one()
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(status=status, attempt_count=0 if status == "pending" else 1)
            )
            if status != "pending":
                conn.execute(
                    insert(delivery_attempts).values(
                        delivery_id=delivery_id,
                        attempted_at=at.timestamp(),
                        status_code=200 if status == "succeeded" else 500,
                        duration_ms=1.0,
                        response_body="ok" if status == "succeeded" else "no",
                    )
                )
    return message.id


def age_requests(services: Services, request_ids: Sequence[int], days: float) -> None:
    """Make requests (and the dedupe keys they claimed) look ``days`` older."""
    with services.db.write() as conn:
        for table, column in (
            (inbound_requests, inbound_requests.c.id),
            (inbound_dedupe, inbound_dedupe.c.request_id),
        ):
            conn.execute(
                update(table)
                .where(column.in_(list(request_ids)))
                .values(received_at=table.c.received_at - days * DAY)
            )


def row_counts(services: Services) -> dict[str, int]:
    """Rows in the tables retention deletes from."""
    tables = (inbound_requests, inbound_dedupe, messages, deliveries, delivery_attempts)
    with services.db.read() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in tables
        }


def message_ids(services: Services) -> set[str]:
    with services.db.read() as conn:
        return set(conn.execute(select(messages.c.id)).scalars())
