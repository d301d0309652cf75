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

from sqlalchemy import Connection, Row, bindparam, func, select

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
    return _recent(conn, webhook_ids, inbound_requests.c.webhook_id, inbound_requests.c.received_at)


def recent_delivery_statuses(
    conn: Connection, endpoint_ids: Sequence[int]
) -> dict[int, RecentStatuses]:
    """Per outbound endpoint, the statuses of its newest deliveries and when the last changed."""
    return _recent(conn, endpoint_ids, deliveries.c.endpoint_id, deliveries.c.updated_at)


def _recent(
    conn: Connection, owner_ids: Sequence[int], owner: Any, when: Any
) -> dict[int, RecentStatuses]:
    """The statuses of each owner's newest RECENT rows (by id), and the newest row's time."""
    table = owner.table
    answer: dict[int, RecentStatuses] = {}
    for owner_id in owner_ids:
        newest = (
            select(table.c.status, when)
            .where(owner == owner_id)
            .order_by(table.c.id.desc())
            .limit(RECENT)
        )
        recent = RecentStatuses()
        for status, at in conn.execute(newest):
            if recent.last_at is None:
                recent.last_at = float(at)
            recent.counts[status] = recent.counts.get(status, 0) + 1
        answer[owner_id] = recent
    return answer


ORDER_SLACK = 60.0
"""Seconds by which a request's ``received_at`` may run behind one with a smaller id: ids are
taken when the receive path's group commit writes, in arrival order, so the two orders differ by
at most a commit's latency. Time bounds become id bounds widened by this much."""


def _first_id_at(conn: Connection, webhook_id: int, moment: float) -> int | None:
    """About the smallest id of ``webhook_id``'s requests received at ``moment`` or later
    (``received_at`` rises with the id, up to :data:`ORDER_SLACK`), by bisecting the ids: a
    few dozen index seeks instead of a scan of the log. None when every request is older."""
    table = inbound_requests.c
    # min() and max() apart: together they read the whole index range, apart one seek each.
    mine = table.webhook_id == webhook_id
    low = conn.execute(select(func.min(table.id)).where(mine)).scalar()
    high = conn.execute(select(func.max(table.id)).where(mine)).scalar()
    if low is None or high is None:
        return None
    # The id from the (webhook_id, id) index, then the row by its key (a bare "id >= ? ORDER
    # BY id" lets SQLite walk the table's key range through every webhook's requests).
    first = select(func.min(table.id)).where(mine, table.id >= bindparam("at")).scalar_subquery()
    probe = select(table.id, table.received_at).where(table.id == first)

    def first_from(at: int) -> Any:
        """The webhook's first request with an id of ``at`` or more (there is one up to
        ``high``): its ``received_at`` never falls as ``at`` rises, up to the slack."""
        return conn.execute(probe, {"at": at}).one()

    if first_from(high).received_at < moment:
        return None
    while low < high:  # the smallest ``at`` whose first request is recent enough
        middle = (low + high) // 2
        if first_from(middle).received_at >= moment:
            high = middle
        else:
            low = middle + 1
    return int(first_from(low).id)


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
    (``since`` inclusive, ``until`` exclusive); each row has ``body_size``, not the body.

    A time bound also bounds the ids (see :func:`_first_id_at`), so the index on
    ``(webhook_id, id)`` starts and stops near the window instead of walking the whole log.
    """
    table = inbound_requests.c
    columns = [c for c in inbound_requests.c if c is not table.body]
    size = func.length(table.body).label("body_size")
    query = (
        select(*columns, size)
        .where(table.webhook_id == webhook_id)
        .order_by(table.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(table.status == status)
    if since is not None:
        query = query.where(table.received_at >= since)
        start = _first_id_at(conn, webhook_id, since - ORDER_SLACK)
        if start is None:
            return []
        query = query.where(table.id >= start)
    if until is not None:
        query = query.where(table.received_at < until)
        stop = _first_id_at(conn, webhook_id, until + ORDER_SLACK)
        if stop is not None:
            query = query.where(table.id < stop)
    if before_id is not None:
        query = query.where(table.id < before_id)
    return list(conn.execute(query))
