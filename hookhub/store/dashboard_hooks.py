"""Reads the dashboard's webhook pages need and the API does not: recent health, time ranges.

Every query here walks an existing ``(webhook_id, id)`` or ``(endpoint_id, id)`` index
backwards from the newest row and stops after a bounded number of rows, so a page answers in
the same time with a hundred rows or a million. What this module must never do: write, or
count a whole table (``counts_by_status`` over a million deliveries is for the CLI, not a page).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, func, select

from hookhub.store.schema import deliveries, inbound_requests

__all__ = ["RecentStatuses", "recent_delivery_statuses", "recent_request_statuses", "request_page"]

RECENT = 100
"""How many of the newest requests or deliveries the list pages summarise."""


@dataclass(slots=True)
class RecentStatuses:
    """The statuses of the newest :data:`RECENT` rows of one webhook or endpoint."""

    counts: dict[str, int] = field(default_factory=dict)
    last_at: float | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, *statuses: str) -> float | None:
        """The fraction of these rows in ``statuses`` (None without rows)."""
        total = self.total
        if not total:
            return None
        return sum(self.counts.get(s, 0) for s in statuses) / total


def recent_request_statuses(
    conn: Connection, webhook_ids: Sequence[int]
) -> dict[int, RecentStatuses]:
    """Per inbound webhook, the statuses of its newest requests and when the last arrived."""
    answer: dict[int, RecentStatuses] = {}
    for webhook_id in webhook_ids:
        newest = (
            select(inbound_requests.c.status, inbound_requests.c.received_at)
            .where(inbound_requests.c.webhook_id == webhook_id)
            .order_by(inbound_requests.c.id.desc())
            .limit(RECENT)
        )
        recent = RecentStatuses()
        for row in conn.execute(newest):
            if recent.last_at is None:
                recent.last_at = float(row.received_at)
            recent.counts[row.status] = recent.counts.get(row.status, 0) + 1
        answer[webhook_id] = recent
    return answer


def recent_delivery_statuses(
    conn: Connection, endpoint_ids: Sequence[int]
) -> dict[int, RecentStatuses]:
    """Per outbound endpoint, the statuses of its newest deliveries and when the last changed."""
    answer: dict[int, RecentStatuses] = {}
    for endpoint_id in endpoint_ids:
        newest = (
            select(deliveries.c.status, deliveries.c.updated_at)
            .where(deliveries.c.endpoint_id == endpoint_id)
            .order_by(deliveries.c.id.desc())
            .limit(RECENT)
        )
        recent = RecentStatuses()
        for row in conn.execute(newest):
            if recent.last_at is None:
                recent.last_at = float(row.updated_at)
            recent.counts[row.status] = recent.counts.get(row.status, 0) + 1
        answer[endpoint_id] = recent
    return answer


def request_page(
    conn: Connection,
    webhook_id: int,
    *,
    status: str | None,
    since: float | None,
    until: float | None,
    before_id: int | None,
    limit: int,
) -> list[Row[Any]]:
    """Newest first, like ``InboundRequestStore.page``, also bounded by ``received_at``
    (``since`` inclusive, ``until`` exclusive); each row has ``body_size``, not the body."""
    columns = [c for c in inbound_requests.c if c is not inbound_requests.c.body]
    size = func.length(inbound_requests.c.body).label("body_size")
    query = (
        select(*columns, size)
        .where(inbound_requests.c.webhook_id == webhook_id)
        .order_by(inbound_requests.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(inbound_requests.c.status == status)
    if since is not None:
        query = query.where(inbound_requests.c.received_at >= since)
    if until is not None:
        query = query.where(inbound_requests.c.received_at < until)
    if before_id is not None:
        query = query.where(inbound_requests.c.id < before_id)
    return list(conn.execute(query))
