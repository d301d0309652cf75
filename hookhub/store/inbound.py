"""Queries on inbound webhooks, their request log and their dedupe keys.

The receive path writes through :meth:`InboundRequestStore.append`, a few statements for a whole
group of requests; processing reads the ``received`` backlog in arrival order per webhook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, select, text, update

from hookhub.store.config_versions import ConfigKind, bump
from hookhub.store.schema import inbound_requests, inbound_unlogged, inbound_webhooks

_PENDING = text("inbound_requests.status = 'received'")
_CLAIM_DEDUPE = (
    "INSERT INTO inbound_dedupe (webhook_id, dedupe_key, request_id, received_at)"
    " VALUES {rows} ON CONFLICT DO NOTHING RETURNING webhook_id, dedupe_key"
)
_INSERT_REQUEST = (
    "INSERT INTO inbound_requests (id, webhook_id, received_at, status, http_status, headers,"
    " body, event_type, dedupe_key, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_NEXT_IDS_PG = (
    "SELECT nextval(pg_get_serial_sequence('inbound_requests', 'id'))"
    " FROM generate_series(1, %s) ORDER BY 1"
)
_LAST_ID_SQLITE = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'inbound_requests'), 0),"
    " coalesce((SELECT max(id) FROM inbound_requests), 0))"
)
_LIVE_WEBHOOKS = "SELECT id FROM inbound_webhooks WHERE id IN ({ids})"
# Of a webhook that still exists (a deleted one's count would fail the whole group commit).
_ADD_UNLOGGED = (
    "INSERT INTO inbound_unlogged (webhook_id, minute, reason, count)"
    " SELECT id, ?, ?, ? FROM inbound_webhooks WHERE id = ?"
    " ON CONFLICT (webhook_id, minute, reason)"
    " DO UPDATE SET count = inbound_unlogged.count + excluded.count"
)


# Processing runs these for every request: built once (see store/contacts.py).
# The webhooks with requests to process, by a loose index scan: one seek into the partial
# pending index per webhook. A GROUP BY read every pending entry, so with a backlog of 40,000
# each batch of 10 scanned 40,000 index entries (a drain that slowed as the backlog grew).
_WITH_BACKLOG = text(
    "WITH RECURSIVE pending(webhook_id) AS ("
    " SELECT min(webhook_id) FROM inbound_requests WHERE status = 'received'"
    " UNION ALL SELECT (SELECT min(r.webhook_id) FROM inbound_requests r"
    " WHERE r.status = 'received' AND r.webhook_id > pending.webhook_id)"
    " FROM pending WHERE pending.webhook_id IS NOT NULL)"
    " SELECT webhook_id FROM pending WHERE webhook_id IS NOT NULL LIMIT :limit"
)
_BACKLOG = (
    select(inbound_requests)
    .where(_PENDING, inbound_requests.c.webhook_id == bindparam("webhook_id"))
    .order_by(inbound_requests.c.id)
    .limit(bindparam("limit"))
)
# The same on SQLite, naming its index: the planner sees two (webhook_id, id) indexes and,
# without statistics, took the full one, walking every processed request of the webhook
# before the first pending one; each batch got slower as the log grew.
_BACKLOG_SQLITE = text(
    "SELECT "
    + ", ".join(inbound_requests.c.keys())
    + " FROM inbound_requests INDEXED BY ix_inbound_requests_pending"
    " WHERE status = 'received' AND webhook_id = :webhook_id ORDER BY id LIMIT :limit"
).columns(*inbound_requests.c)
_FINISH = (
    "UPDATE inbound_requests SET status = ?, error = ?, error_expression = ?, actions = ?,"
    " processed_at = ? WHERE id = ?"
)


@dataclass(slots=True)
class Outcome:
    """What running one request's rules came to, as the request log records it."""

    request_id: int
    status: str  # processed or failed
    error: str | None
    error_expression: str | None
    actions: str | None  # JSON: what the rules did
    processed_at: float


@dataclass(slots=True)
class LogEntry:
    """One request to write to the log; ``status`` may become ``duplicate`` on append, or
    ``gone`` (and the entry is not written) when its webhook was deleted meanwhile."""

    webhook_id: int
    received_at: float
    status: str
    http_status: int
    headers: str
    body: bytes | None
    event_type: str | None = None
    dedupe_key: str | None = None
    body_key: str | None = None
    """A second dedupe key, from the body's hash (see ``Provider.dedupes_body``); not stored
    on the entry, only claimed."""
    error: str | None = None
    id: int = 0

    def keys(self) -> tuple[str, ...]:
        """The dedupe keys this entry claims."""
        if self.body_key is None:
            return () if self.dedupe_key is None else (self.dedupe_key,)
        return (self.body_key,) if self.dedupe_key is None else (self.dedupe_key, self.body_key)


class InboundWebhookStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    def insert(self, values: dict[str, Any]) -> int:
        statement = insert(inbound_webhooks).values(values).returning(inbound_webhooks.c.id)
        webhook_id = int(self.conn.execute(statement).scalar_one())
        bump(self.conn, ConfigKind.INBOUND_WEBHOOKS)
        return webhook_id

    def get(self, webhook_id: int) -> Row[Any] | None:
        query = select(inbound_webhooks).where(inbound_webhooks.c.id == webhook_id)
        return self.conn.execute(query).first()

    def by_token(self, token: str) -> Row[Any] | None:
        query = select(inbound_webhooks).where(inbound_webhooks.c.token == token)
        return self.conn.execute(query).first()

    def update(self, webhook_id: int, values: dict[str, Any]) -> None:
        self.conn.execute(
            update(inbound_webhooks).where(inbound_webhooks.c.id == webhook_id).values(values)
        )
        bump(self.conn, ConfigKind.INBOUND_WEBHOOKS)

    def delete(self, webhook_id: int) -> bool:
        result = self.conn.execute(
            delete(inbound_webhooks).where(inbound_webhooks.c.id == webhook_id)
        )
        if not result.rowcount:
            return False
        bump(self.conn, ConfigKind.INBOUND_WEBHOOKS)
        return True

    def page(self, *, after_id: int | None, limit: int) -> list[Row[Any]]:
        query = select(inbound_webhooks).order_by(inbound_webhooks.c.id).limit(limit)
        if after_id is not None:
            query = query.where(inbound_webhooks.c.id > after_id)
        return list(self.conn.execute(query))

    def add_unlogged(self, counts: dict[tuple[int, str], int], at: float) -> None:
        """Add ``counts`` of requests not logged, by (webhook, reason), to the minute of ``at``."""
        minute = int(at // 60)
        sql = _ADD_UNLOGGED.replace("?", "%s") if self._pg else _ADD_UNLOGGED
        rows = [(minute, why, n, webhook_id) for (webhook_id, why), n in sorted(counts.items())]
        self.conn.exec_driver_sql(sql, rows)

    def unlogged(self, webhook_id: int, since: float) -> dict[str, int]:
        """Requests of ``webhook_id`` not logged from the minute of ``since`` on, by reason."""
        table = inbound_unlogged
        query = (
            select(table.c.reason, func.sum(table.c.count))
            .where(table.c.webhook_id == webhook_id, table.c.minute >= int(since // 60))
            .group_by(table.c.reason)
        )
        return {reason: int(count) for reason, count in self.conn.execute(query)}

    def lock_for_processing(self, webhook_id: int) -> Row[Any] | None:
        """The webhook, locked so that one processor at a time works through its backlog.

        FOR NO KEY UPDATE, not FOR UPDATE: it excludes other processors just as well, but not
        the FOR KEY SHARE lock that every request-log insert takes on this row (its foreign
        key), so the receive path never waits for a processing batch to commit.
        """
        query = select(inbound_webhooks).where(inbound_webhooks.c.id == webhook_id)
        if self._pg:
            query = query.with_for_update(skip_locked=True, key_share=True)
        return self.conn.execute(query).first()


class InboundRequestStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    def append(self, entries: Sequence[LogEntry]) -> None:
        """Log a group of requests; one that repeats a known dedupe key becomes ``duplicate``.

        Dedupe keys are claimed with INSERT ... ON CONFLICT DO NOTHING, so of two identical
        events arriving together (in this group, or in another process) exactly one wins.

        This is the receive path's whole database cost, so it speaks to the driver directly
        (through SQLAlchemy Core it cost more per request than everything else the receiver
        does): a few statements per group, whatever the group's size.
        """
        entries = self._of_live_webhooks(entries)
        if not entries:
            return
        cursor = self.conn.connection.cursor()  # the same connection, the same transaction
        try:
            # Ids first, so each dedupe key is claimed already naming its request.
            for entry, new_id in zip(entries, self._next_ids(cursor, len(entries)), strict=True):
                entry.id = new_id
            self._claim_dedupe_keys(cursor, entries)
            self._insert_requests(cursor, entries)
        finally:
            cursor.close()

    def _next_ids(self, cursor: Any, count: int) -> range | list[int]:
        """``count`` fresh request ids, in order."""
        if self._pg:
            cursor.execute(_NEXT_IDS_PG, (count,))
            return [row[0] for row in cursor.fetchall()]
        # Under BEGIN IMMEDIATE nothing else inserts, and AUTOINCREMENT goes on from the
        # highest id it ever gave (sqlite_sequence has no row until the first insert).
        cursor.execute(_LAST_ID_SQLITE)
        last = int(cursor.fetchone()[0])
        return range(last + 1, last + 1 + count)

    def _sql(self, text_: str) -> str:
        return text_.replace("?", "%s") if self._pg else text_

    def _claim_dedupe_keys(self, cursor: Any, entries: Sequence[LogEntry]) -> set[Any]:
        """Claim each entry's keys; an entry that does not win every one is a duplicate."""
        keyed = [(e, e.keys()) for e in entries if e.status == "received"]
        keyed = [(e, keys) for e, keys in keyed if keys]
        if not keyed:
            return set()
        first: dict[tuple[int, str], LogEntry] = {}
        for entry, keys in keyed:
            for key in keys:
                first.setdefault((entry.webhook_id, key), entry)
        rows = ", ".join(["(?, ?, ?, ?)"] * len(first))
        params = [v for (w, k), e in first.items() for v in (w, k, e.id, e.received_at)]
        cursor.execute(self._sql(_CLAIM_DEDUPE.format(rows=rows)), params)
        won = {(w, k) for w, k in cursor.fetchall()}
        for entry, keys in keyed:
            for key in keys:
                claim = (entry.webhook_id, key)
                if claim not in won or first[claim] is not entry:
                    entry.status, entry.http_status = "duplicate", 200
                    break
        return won

    def _insert_requests(self, cursor: Any, entries: Sequence[LogEntry]) -> None:
        rows = [
            (
                e.id,
                e.webhook_id,
                e.received_at,
                e.status,
                e.http_status,
                e.headers,
                e.body,
                e.event_type,
                e.dedupe_key,
                e.error,
            )
            for e in entries
        ]
        cursor.executemany(self._sql(_INSERT_REQUEST), rows)

    def _of_live_webhooks(self, entries: Sequence[LogEntry]) -> Sequence[LogEntry]:
        """The entries whose webhook still exists; the others become ``gone``.

        A receiver may have looked its webhook up (or cached it, in another process) before it
        was deleted. Its entry would fail the foreign key, and with it the whole group commit.
        On PostgreSQL the rows are held FOR KEY SHARE, as the foreign key check would hold
        them, so a deletion waits for this commit instead (processors' FOR NO KEY UPDATE does
        not conflict with it).
        """
        wanted = sorted({entry.webhook_id for entry in entries})
        sql = _LIVE_WEBHOOKS.format(ids=", ".join("?" * len(wanted)))
        if self._pg:
            sql += " FOR KEY SHARE"
        live = {row[0] for row in self.conn.exec_driver_sql(self._sql(sql), tuple(wanted))}
        if len(live) == len(wanted):
            return entries
        for entry in entries:
            if entry.webhook_id not in live:
                entry.status = "gone"
        return [entry for entry in entries if entry.status != "gone"]

    def webhooks_with_backlog(self, limit: int = 100) -> list[int]:
        return list(self.conn.execute(_WITH_BACKLOG, {"limit": limit}).scalars())

    def backlog(self, webhook_id: int, limit: int) -> list[Row[Any]]:
        query = _BACKLOG if self._pg else _BACKLOG_SQLITE
        return list(self.conn.execute(query, {"webhook_id": webhook_id, "limit": limit}))

    def finish_many(self, outcomes: Sequence[Outcome]) -> None:
        """Record what processing did to these requests: one statement for a whole batch,
        through the driver (per row, a Core execution cost more than the update itself)."""
        if not outcomes:
            return
        rows = [
            (o.status, o.error, o.error_expression, o.actions, o.processed_at, o.request_id)
            for o in outcomes
        ]
        cursor = self.conn.connection.cursor()  # the same connection, the same transaction
        try:
            cursor.executemany(self._sql(_FINISH), rows)
        finally:
            cursor.close()

    def get(self, webhook_id: int, request_id: int) -> Row[Any] | None:
        query = select(inbound_requests).where(
            inbound_requests.c.id == request_id, inbound_requests.c.webhook_id == webhook_id
        )
        return self.conn.execute(query).first()

    def page(
        self, webhook_id: int, *, status: str | None, before_id: int | None, limit: int
    ) -> list[Row[Any]]:
        """Newest first, each with ``body_size`` instead of its body (which is never read)."""
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
        if before_id is not None:
            query = query.where(inbound_requests.c.id < before_id)
        return list(self.conn.execute(query))

    def count_pending(self) -> int:
        query = select(inbound_requests.c.id).where(_PENDING)
        return len(self.conn.execute(query).all())
