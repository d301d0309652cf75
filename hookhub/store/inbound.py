"""Queries on inbound webhooks, their request log and their dedupe keys.

The receive path writes through :meth:`InboundRequestStore.append`, a few statements for a whole
group of requests; processing reads the ``received`` backlog in arrival order per webhook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from hookhub.store.schema import inbound_dedupe, inbound_requests, inbound_webhooks

_PENDING = text("inbound_requests.status = 'received'")


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
    error: str | None = None
    id: int = 0


class InboundWebhookStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pg = conn.dialect.name == "postgresql"

    def insert(self, values: dict[str, Any]) -> int:
        statement = insert(inbound_webhooks).values(values).returning(inbound_webhooks.c.id)
        return int(self.conn.execute(statement).scalar_one())

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

    def delete(self, webhook_id: int) -> bool:
        result = self.conn.execute(
            delete(inbound_webhooks).where(inbound_webhooks.c.id == webhook_id)
        )
        return bool(result.rowcount)

    def page(self, *, after_id: int | None, limit: int) -> list[Row[Any]]:
        query = select(inbound_webhooks).order_by(inbound_webhooks.c.id).limit(limit)
        if after_id is not None:
            query = query.where(inbound_webhooks.c.id > after_id)
        return list(self.conn.execute(query))

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
        """
        entries = self._of_live_webhooks(entries)
        if not entries:
            return
        keyed = [e for e in entries if e.dedupe_key is not None and e.status == "received"]
        won: set[tuple[int, str]] = set()
        if keyed:
            first: dict[tuple[int, str], LogEntry] = {}
            for entry in keyed:
                assert entry.dedupe_key is not None
                first.setdefault((entry.webhook_id, entry.dedupe_key), entry)
            dialect_insert = postgresql.insert if self._pg else sqlite.insert
            # One statement with a parameter list, not .values([...]): SQLAlchemy still sends a
            # single multi-row INSERT, but compiles it once instead of once per group.
            statement = (
                dialect_insert(inbound_dedupe)
                .on_conflict_do_nothing()
                .returning(inbound_dedupe.c.webhook_id, inbound_dedupe.c.dedupe_key)
            )
            rows = self.conn.execute(
                statement,
                [
                    {"webhook_id": w, "dedupe_key": k, "request_id": 0,
                     "received_at": e.received_at}
                    for (w, k), e in first.items()
                ],
            )
            won = {(row.webhook_id, row.dedupe_key) for row in rows}
            winners = {key: entry for key, entry in first.items() if key in won}
            for entry in keyed:
                key = (entry.webhook_id, entry.dedupe_key or "")
                if winners.get(key) is not entry:
                    entry.status, entry.http_status = "duplicate", 200
        result = self.conn.execute(
            insert(inbound_requests).returning(
                inbound_requests.c.id, sort_by_parameter_order=True
            ),
            [
                {
                    "webhook_id": e.webhook_id,
                    "received_at": e.received_at,
                    "status": e.status,
                    "http_status": e.http_status,
                    "headers": e.headers,
                    "body": e.body,
                    "event_type": e.event_type,
                    "dedupe_key": e.dedupe_key,
                    "error": e.error,
                }
                for e in entries
            ],
        )
        for entry, new_id in zip(entries, result.scalars(), strict=True):
            entry.id = new_id
        if won:
            self.conn.execute(
                update(inbound_dedupe)
                .where(
                    inbound_dedupe.c.webhook_id == bindparam("b_webhook"),
                    inbound_dedupe.c.dedupe_key == bindparam("b_key"),
                )
                .values(request_id=bindparam("b_id")),
                [
                    {"b_webhook": e.webhook_id, "b_key": e.dedupe_key, "b_id": e.id}
                    for e in keyed
                    if e.status == "received"
                ],
            )

    def _of_live_webhooks(self, entries: Sequence[LogEntry]) -> Sequence[LogEntry]:
        """The entries whose webhook still exists; the others become ``gone``.

        A receiver may have looked its webhook up (or cached it, in another process) before it
        was deleted. Its entry would fail the foreign key, and with it the whole group commit.
        On PostgreSQL the rows are held FOR KEY SHARE, as the foreign key check would hold
        them, so a deletion waits for this commit instead (processors' FOR NO KEY UPDATE does
        not conflict with it).
        """
        wanted = {entry.webhook_id for entry in entries}
        query = select(inbound_webhooks.c.id).where(inbound_webhooks.c.id.in_(wanted))
        if self._pg:
            query = query.with_for_update(read=True, key_share=True)
        live = set(self.conn.execute(query).scalars())
        if len(live) == len(wanted):
            return entries
        for entry in entries:
            if entry.webhook_id not in live:
                entry.status = "gone"
        return [entry for entry in entries if entry.status != "gone"]

    def webhooks_with_backlog(self, limit: int = 100) -> list[int]:
        query = (
            select(inbound_requests.c.webhook_id)
            .where(_PENDING)
            .group_by(inbound_requests.c.webhook_id)
            .order_by(inbound_requests.c.webhook_id)
            .limit(limit)
        )
        return list(self.conn.execute(query).scalars())

    def backlog(self, webhook_id: int, limit: int) -> list[Row[Any]]:
        query = (
            select(inbound_requests)
            .where(_PENDING, inbound_requests.c.webhook_id == webhook_id)
            .order_by(inbound_requests.c.id)
            .limit(limit)
        )
        return list(self.conn.execute(query))

    def finish(self, request_id: int, values: dict[str, Any]) -> None:
        self.conn.execute(
            update(inbound_requests).where(inbound_requests.c.id == request_id).values(values)
        )

    def get(self, webhook_id: int, request_id: int) -> Row[Any] | None:
        query = select(inbound_requests).where(
            inbound_requests.c.id == request_id, inbound_requests.c.webhook_id == webhook_id
        )
        return self.conn.execute(query).first()

    def page(
        self, webhook_id: int, *, status: str | None, before_id: int | None, limit: int
    ) -> list[Row[Any]]:
        query = (
            select(inbound_requests)
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

    def purge_dedupe(self, older_than: float) -> int:
        result = self.conn.execute(
            delete(inbound_dedupe).where(inbound_dedupe.c.received_at < older_than)
        )
        return int(result.rowcount)
