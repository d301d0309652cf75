"""Aggregate reads for the dashboard's overview: counts, and activity over a time window.

Activity is read as one bounded, indexed GROUP BY per kind: rows whose time falls in
``[start, end)`` (an index range on the time column), grouped by time bucket and by latency
bucket (the edges in :data:`LATENCY_EDGES_MS`), summing successes and failures. Percentiles are
then read off that histogram by the caller; no row is ever sent to Python one by one.

- deliveries: delivery attempts (``attempted_at``); success = 2xx without an error; latency =
  the attempt's duration.
- inbound: inbound requests (``received_at``); success = processed (or a duplicate); failure =
  failed or rejected; latency = processing time (``processed_at - received_at``).
- emails: emails by ``created_at``; success = sent or delivered; failure = bounced or failed;
  latency = ``sent_at - created_at`` (queue to SMTP).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Integer,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)

from hookhub.store.schema import (
    contacts,
    delivery_attempts,
    endpoints,
    inbound_requests,
    inbound_webhooks,
    lists,
)
from hookhub.store.schema_email import emails

LATENCY_EDGES_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000)
"""Upper bounds of the latency buckets, in milliseconds; one more bucket holds the rest."""

KINDS = ("deliveries", "inbound", "emails")

_COUNTED: dict[str, Table] = {
    "contacts": contacts,
    "lists": lists,
    "endpoints": endpoints,
    "inbound_webhooks": inbound_webhooks,
    "emails": emails,
}


@dataclass(frozen=True, slots=True)
class ActivityCell:
    """The rows of one time bucket and one latency bucket (-1: no latency yet)."""

    bucket: int
    latency_bucket: int
    total: int
    ok: int
    failed: int


def counts(conn: Connection) -> dict[str, int]:
    """How many contacts, lists, outbound endpoints, inbound webhooks and emails there are
    (hidden automation endpoints not counted)."""
    found = {}
    for name, table in _COUNTED.items():
        query = select(func.count()).select_from(table)
        if table is endpoints:
            query = query.where(endpoints.c.automation_id.is_(None))
        found[name] = int(conn.execute(query).scalar_one())
    return found


def _epoch(conn: Connection, column: Any) -> ColumnElement[Any]:
    """A UTCDateTime column as epoch seconds (SQLite keeps it as text)."""
    if conn.dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer) + 0.0
    return func.extract("epoch", column)


def _bucket(conn: Connection, seconds: ColumnElement[Any], start: float, width: float) -> Any:
    position = (seconds - literal(start)) / literal(width)
    if conn.dialect.name == "sqlite":
        return cast(position, Integer)  # truncates; positions are never negative here
    return cast(func.floor(position), BigInteger)


def _latency_bucket(latency_ms: ColumnElement[Any]) -> Any:
    whens: list[tuple[ColumnElement[bool], Any]] = [(latency_ms.is_(None), literal(-1))]
    whens += [(latency_ms < edge, literal(i)) for i, edge in enumerate(LATENCY_EDGES_MS)]
    return case(*whens, else_=literal(len(LATENCY_EDGES_MS)))


def activity(
    conn: Connection, kind: str, start: float, end: float, width: float
) -> list[ActivityCell]:
    """Rows of ``kind`` in ``[start, end)`` (epoch seconds) by ``width``-second bucket and
    latency bucket."""
    window: ColumnElement[bool]
    if kind == "deliveries":
        t = delivery_attempts.c
        moment: ColumnElement[Any] = t.attempted_at
        window = and_(t.attempted_at >= start, t.attempted_at < end)
        ok = and_(t.error.is_(None), t.status_code >= 200, t.status_code < 300)
        failed = or_(t.error.is_not(None), t.status_code.is_(None), t.status_code >= 300)
        latency: ColumnElement[Any] = t.duration_ms
        table: Table = delivery_attempts
    elif kind == "inbound":
        r = inbound_requests.c
        moment = r.received_at
        window = and_(r.received_at >= start, r.received_at < end)
        ok = r.status.in_(("processed", "duplicate"))
        failed = r.status.in_(("failed", "rejected"))
        latency = (r.processed_at - r.received_at) * 1000.0
        table = inbound_requests
    elif kind == "emails":
        e = emails.c
        created = _epoch(conn, e.created_at)
        moment = created
        window = and_(e.created_at >= _as_datetime(start), e.created_at < _as_datetime(end))
        ok = e.status.in_(("sent", "delivered"))
        failed = e.status.in_(("bounced", "failed"))
        latency = case(
            (e.sent_at.is_(None), None), else_=(_epoch(conn, e.sent_at) - created) * 1000.0
        )
        table = emails
    else:
        raise ValueError(f"unknown activity kind {kind!r}")
    bucket = _bucket(conn, moment, start, width).label("bucket")
    lat = _latency_bucket(latency).label("lat")
    query = (
        select(
            bucket,
            lat,
            func.count().label("total"),
            func.sum(case((ok, 1), else_=0)).label("ok"),
            func.sum(case((failed, 1), else_=0)).label("failed"),
        )
        .select_from(table)
        .where(window)
        .group_by(bucket, lat)
    )
    return [
        ActivityCell(
            bucket=int(row.bucket),
            latency_bucket=int(row.lat),
            total=int(row.total),
            ok=int(row.ok or 0),
            failed=int(row.failed or 0),
        )
        for row in conn.execute(query)
    ]


def _as_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
