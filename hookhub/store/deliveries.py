"""The delivery queue: every query that claims, acknowledges or inspects deliveries.

A delivery is *due* when its status is ``pending`` or ``failed`` and ``next_attempt_at`` has
passed. Claiming leases it: ``lease_owner`` names the worker and ``next_attempt_at`` becomes the
lease's expiry, so a worker that dies leaves a delivery that simply falls due again. Only the
lease owner's acknowledgement is applied. On PostgreSQL claims use ``FOR UPDATE SKIP LOCKED`` so
that concurrent workers never claim the same row; on SQLite the claim is one ``UPDATE`` inside a
``BEGIN IMMEDIATE`` transaction, which other processes wait for.

The claim SQL lives here and nowhere else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, func, insert, or_, select, text, update

from hookhub.records.outbound import Attempt, Delivery
from hookhub.store.schema import UTCDateTime, deliveries, delivery_attempts

# Literal, not bound: SQLite only uses a partial index when the query repeats its condition.
_DUE_STATUS = text("deliveries.status IN ('pending', 'failed')")


# Statements run often but not per delivery are built once (see store/contacts.py).
_INSERT = insert(deliveries)
_NOT_ON_ITS_OWN = ("waiting", "collapsed")  # sent after, or as part of, another delivery


# The hottest statements (every claim, every recorded batch) go to the driver directly:
# SQLAlchemy's per-row parameter handling cost more than the database work itself (a batch
# of 40 outcomes: 96 us a row through Core). They are written once, with ``?`` placeholders,
# and given to the driver in its own parameter style.
_DUE_SQL = (
    "SELECT d.id, d.endpoint_id FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id"
    " WHERE d.status IN ('pending', 'failed') AND e.enabled AND {where}"
    " ORDER BY d.next_attempt_at LIMIT ?"
)
_SQL = {
    "any": _DUE_SQL.format(where="d.next_attempt_at <= ?{busy}"),
    "one": _DUE_SQL.format(where="d.endpoint_id = ? AND d.next_attempt_at <= ?"),
    "fresh": (
        "SELECT d.id, d.endpoint_id FROM deliveries d"
        " WHERE d.status IN ('pending', 'failed') AND d.endpoint_id = ?"
        " AND d.attempt_count = 0 AND d.lease_owner IS NULL AND d.next_attempt_at <= ?"
        " ORDER BY d.next_attempt_at LIMIT ?"
    ),
    "lease": (
        "UPDATE deliveries SET lease_owner = ?, next_attempt_at = ? WHERE id IN ({ids})"
        " RETURNING id, endpoint_id, message_id, attempt_count, status, contact_id, payload"
    ),
    "payloads": "SELECT id, type, payload, created_at FROM messages WHERE id IN ({ids})",
    "owners": "SELECT id, lease_owner FROM deliveries WHERE id IN ({ids})",
    "attempt": (
        "INSERT INTO delivery_attempts (delivery_id, attempted_at, status_code, duration_ms,"
        " error, error_detail, response_body) VALUES (?, ?, ?, ?, ?, ?, ?)"
    ),
    "acknowledge": (
        "UPDATE deliveries SET status = ?, attempt_count = ?, next_attempt_at = ?,"
        " last_status_code = ?, lease_owner = NULL, updated_at = ? WHERE id = ?"
    ),
}
_PG_LOCK = " FOR UPDATE OF d SKIP LOCKED"
_PG_ATTEMPTS = (
    "INSERT INTO delivery_attempts (delivery_id, attempted_at, status_code, duration_ms, error,"
    " error_detail, response_body) SELECT * FROM unnest(%s::bigint[], %s::float8[], %s::int[],"
    " %s::float8[], %s::text[], %s::text[], %s::text[])"
)
_PG_ACKNOWLEDGE = (
    "UPDATE deliveries AS d SET status = v.status, attempt_count = v.attempt_count,"
    " next_attempt_at = v.next_attempt_at, last_status_code = v.code, lease_owner = NULL,"
    " updated_at = %s FROM unnest(%s::text[], %s::int[], %s::float8[], %s::int[], %s::bigint[])"
    " AS v(status, attempt_count, next_attempt_at, code, id) WHERE d.id = v.id"
)
_UTC = UTCDateTime()


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> tuple[list[Any], ...]:
    """Rows as one list per column (PostgreSQL array parameters)."""
    columns: tuple[list[Any], ...] = tuple([] for _ in range(width))
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    endpoint_id: int
    message_id: str
    attempt_count: int
    status: str
    contact_id: int | None = None  # ordered and collapsing endpoints (store/delivery_keys.py)
    payload: str | None = None  # a collapsed burst's merged message, sent instead


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """What one attempt decided for its delivery."""

    delivery_id: int
    status: str  # succeeded, failed, exhausted
    attempt_count: int
    next_attempt_at: float | None
    status_code: int | None
    attempted_at: float
    duration_ms: float
    error: str | None
    error_detail: str | None
    response_body: str | None


def _row_to_delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        message_id=row.message_id,
        endpoint_id=row.endpoint_id,
        status=row.status,
        attempt_count=row.attempt_count,
        next_attempt_at=row.next_attempt_at,
        in_flight=row.lease_owner is not None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class DeliveryStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    # -- writing the queue -----------------------------------------------------------------

    def insert_many(self, rows: list[dict[str, Any]]) -> None:
        """rows: message_id, endpoint_id, next_attempt_at, created_at."""
        if rows:
            for row in rows:
                row.setdefault("status", "pending")
                row.setdefault("attempt_count", 0)
                row.setdefault("updated_at", row["created_at"])
            self.conn.execute(_INSERT, rows)

    def _sql(self, text_: str) -> str:
        """``text_`` in the driver's parameter style (psycopg wants ``%s``)."""
        return text_.replace("?", "%s") if self._pg else text_

    def claim_due(
        self,
        *,
        now: float,
        lease_until: float,
        owner: str,
        limit: int,
        exclude_endpoints: Sequence[int] = (),
        room: Mapping[int, int] | None = None,
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries of any endpoint, the longest due first.

        ``exclude_endpoints`` are skipped (their lanes are full); ``room`` caps how many are
        leased for each endpoint it names, so nothing is leased only to be given back.
        """
        busy = list(exclude_endpoints)
        clause = f" AND d.endpoint_id NOT IN ({_placeholders(len(busy))})" if busy else ""
        sql = _SQL["any"].format(busy=clause)
        return self._lease(sql, (now, *busy, limit), room or {}, lease_until, owner)

    def claim_for_endpoint(
        self, *, endpoint_id: int, now: float, lease_until: float, owner: str, limit: int
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries of one endpoint (an index range, not a scan)."""
        return self._lease(_SQL["one"], (endpoint_id, now, limit), {}, lease_until, owner)

    def claim_fresh(
        self,
        *,
        endpoint_id: int,
        horizon: float,
        lease_until: float,
        owner: str,
        limit: int,
    ) -> list[ClaimedDelivery]:
        """First attempts for ``endpoint_id`` due before ``horizon``: the rest of a batch."""
        return self._lease(_SQL["fresh"], (endpoint_id, horizon, limit), {}, lease_until, owner)

    def _lease(
        self,
        candidates: str,
        params: tuple[Any, ...],
        room: Mapping[int, int],
        lease_until: float,
        owner: str,
    ) -> list[ClaimedDelivery]:
        """Lease the candidates that fit each endpoint's room, in the same transaction.

        On PostgreSQL the candidates are locked ``FOR UPDATE SKIP LOCKED``: another worker's
        concurrent claim skips them, and those not kept are unlocked when this transaction ends.
        """
        if self._pg:
            candidates += _PG_LOCK
        left = dict(room)
        chosen: list[int] = []
        for row_id, endpoint_id in self.conn.exec_driver_sql(self._sql(candidates), params):
            space = left.get(endpoint_id)
            if space is None:
                chosen.append(row_id)
            elif space > 0:
                chosen.append(row_id)
                left[endpoint_id] = space - 1
        if not chosen:
            return []
        sql = self._sql(_SQL["lease"].format(ids=_placeholders(len(chosen))))
        rows = self.conn.exec_driver_sql(sql, (owner, lease_until, *chosen))
        claimed = [ClaimedDelivery(*row) for row in rows]
        claimed.sort(key=lambda c: c.id)
        return claimed

    def release(self, ids: Sequence[int], *, owner: str, next_attempt_at: float) -> None:
        """Give claimed deliveries back unattempted, due again at ``next_attempt_at``."""
        if ids:
            self.conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(list(ids)), deliveries.c.lease_owner == owner)
                .values(lease_owner=None, next_attempt_at=next_attempt_at)
            )

    def release_owner(self, owner: str, *, next_attempt_at: float) -> int:
        result = self.conn.execute(
            update(deliveries)
            .where(deliveries.c.lease_owner == owner)
            .values(lease_owner=None, next_attempt_at=next_attempt_at)
        )
        return int(result.rowcount)

    def record(self, updates: Sequence[DeliveryUpdate], *, owner: str, now: float) -> set[int]:
        """Store attempts and apply updates; answers the ids whose lease was still ours.

        Deliveries deleted meanwhile (with their endpoint) are skipped: their attempts have
        nowhere to go, and they must not fail the others' acknowledgements.
        """
        if not updates:
            return set()
        ids = [o.delivery_id for o in updates]
        existing: set[int] = set()
        owned: set[int] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = _SQL["owners"].format(ids=_placeholders(len(chunk)))
            if self._pg:  # hold off a concurrent delete until the attempts are in
                sql += " FOR UPDATE"
            for row_id, lease_owner in self.conn.exec_driver_sql(self._sql(sql), tuple(chunk)):
                existing.add(row_id)
                if lease_owner == owner:
                    owned.add(row_id)
        attempts = [
            (
                o.delivery_id,
                o.attempted_at,
                o.status_code,
                o.duration_ms,
                o.error,
                o.error_detail,
                o.response_body,
            )
            for o in updates
            if o.delivery_id in existing
        ]
        acknowledged = [
            (o.status, o.attempt_count, o.next_attempt_at, o.status_code, now, o.delivery_id)
            for o in updates
            if o.delivery_id in owned
        ]
        if self._pg:
            # One statement each, the rows as arrays: executemany would send a statement a
            # row, and on PostgreSQL that per-row round of work is what a busy worker pays for.
            if attempts:
                self.conn.exec_driver_sql(_PG_ATTEMPTS, _columns(attempts, 7))
            if acknowledged:
                status, count, next_at, code, _now, ids = _columns(acknowledged, 6)
                self.conn.exec_driver_sql(_PG_ACKNOWLEDGE, (now, status, count, next_at, code, ids))
            return owned
        if attempts:
            self.conn.exec_driver_sql(_SQL["attempt"], attempts)
        if acknowledged:
            self.conn.exec_driver_sql(_SQL["acknowledge"], acknowledged)
        return owned

    def requeue(self, delivery_id: int, now: float) -> bool:
        """Make a delivery due now, unless a worker holds it (an attempt may be under way).

        Answers whether it was requeued; False for an unknown id as for a leased, waiting or
        collapsed one (tell them apart with :meth:`get`). Requeuing a leased delivery would let
        a second worker send it while the first is still sending.
        """
        result = self.conn.execute(
            update(deliveries)
            .where(
                deliveries.c.id == delivery_id,
                or_(deliveries.c.lease_owner.is_(None), deliveries.c.next_attempt_at <= now),
                deliveries.c.status.not_in(_NOT_ON_ITS_OWN),
            )
            .values(
                status="pending",
                attempt_count=0,  # the full retry schedule again, then one delivery.exhausted
                next_attempt_at=now,
                lease_owner=None,
                updated_at=now,
            )
        )
        return bool(result.rowcount)

    def requeue_failed(self, endpoint_id: int, since: float, until: float, now: float) -> int:
        result = self.conn.execute(
            update(deliveries)
            .where(
                deliveries.c.endpoint_id == endpoint_id,
                deliveries.c.status.in_(("failed", "exhausted")),
                deliveries.c.lease_owner.is_(None),
                deliveries.c.created_at >= since,
                deliveries.c.created_at < until,
            )
            .values(status="pending", attempt_count=0, next_attempt_at=now, updated_at=now)
        )
        return int(result.rowcount)

    def backfill(
        self,
        endpoint_id: int,
        *,
        message_ids: Sequence[str],
        now: float,
    ) -> int:
        """Deliveries to ``endpoint_id`` for messages it never had one for."""
        if not message_ids:
            return 0
        have: set[str] = set()
        for start in range(0, len(message_ids), 500):
            query = select(deliveries.c.message_id).where(
                deliveries.c.endpoint_id == endpoint_id,
                deliveries.c.message_id.in_(message_ids[start : start + 500]),
            )
            have.update(self.conn.execute(query).scalars())
        missing = [m for m in message_ids if m not in have]
        self.insert_many(
            [
                {
                    "message_id": m,
                    "endpoint_id": endpoint_id,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for m in missing
            ]
        )
        return len(missing)

    # -- reading ---------------------------------------------------------------------------

    def payloads(self, message_ids: Sequence[str]) -> dict[str, tuple[str, bytes, float]]:
        """Type, stored body and creation time (epoch seconds) of each message."""
        found: dict[str, tuple[str, bytes, float]] = {}
        ids = sorted(set(message_ids))
        dialect = self.conn.dialect
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            sql = self._sql(_SQL["payloads"].format(ids=_placeholders(len(chunk))))
            for row_id, kind, payload, created in self.conn.exec_driver_sql(sql, tuple(chunk)):
                moment = _UTC.process_result_value(created, dialect)
                assert moment is not None
                found[row_id] = (kind, payload.encode(), moment.timestamp())
        return found

    def get(self, delivery_id: int) -> Delivery | None:
        row = self.conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
        if row is None:
            return None
        delivery = _row_to_delivery(row)
        self.attach_attempts([delivery])
        return delivery

    def page(
        self,
        *,
        endpoint_id: int | None = None,
        message_id: str | None = None,
        status: str | None = None,
        after_id: int | None = None,
        limit: int = 50,
        with_bodies: bool = True,
    ) -> list[Delivery]:
        """Newest first; ``with_bodies=False`` never reads the attempts' response bodies."""
        query = select(deliveries).order_by(deliveries.c.id.desc()).limit(limit)
        if endpoint_id is not None:
            query = query.where(deliveries.c.endpoint_id == endpoint_id)
        if message_id is not None:
            query = query.where(deliveries.c.message_id == message_id)
        if status is not None:
            query = query.where(deliveries.c.status == status)
        if after_id is not None:
            query = query.where(deliveries.c.id < after_id)
        items = [_row_to_delivery(row) for row in self.conn.execute(query)]
        self.attach_attempts(items, with_bodies=with_bodies)
        return items

    def attach_attempts(self, items: Sequence[Delivery], *, with_bodies: bool = True) -> None:
        by_id: dict[int, list[Attempt]] = defaultdict(list)
        ids = [d.id for d in items]
        columns = [
            c
            for c in delivery_attempts.c
            if with_bodies or c is not delivery_attempts.c.response_body
        ]
        for start in range(0, len(ids), 500):
            query = (
                select(*columns)
                .where(delivery_attempts.c.delivery_id.in_(ids[start : start + 500]))
                .order_by(delivery_attempts.c.id)
            )
            for row in self.conn.execute(query):
                by_id[row.delivery_id].append(
                    Attempt(
                        at=row.attempted_at,
                        status_code=row.status_code,
                        duration_ms=row.duration_ms,
                        error=row.error,
                        error_detail=row.error_detail,
                        response_body=row.response_body if with_bodies else None,
                    )
                )
        for delivery in items:
            delivery.attempts = by_id.get(delivery.id, [])

    def counts_by_status(self, endpoint_id: int | None = None) -> dict[str, int]:
        query = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        if endpoint_id is not None:
            query = query.where(deliveries.c.endpoint_id == endpoint_id)
        return {row[0]: int(row[1]) for row in self.conn.execute(query)}

    def leased_count(self) -> int:
        query = select(func.count()).where(deliveries.c.lease_owner.is_not(None))
        return int(self.conn.execute(query).scalar_one())
