"""Queries that delete what is past its retention: the request log, dedupe keys, and messages
with their deliveries and attempts.

Every method works on one small batch, inside the caller's transaction; the caller commits
between batches so that a purge never holds the receive path or the delivery queue up for
long. Old rows are found by walking the primary key, which follows time (request ids grow as
requests arrive; message ids start with their creation millisecond), checking each row's own
time, and stopping at the first recent one: no index is added to the hot tables for the
purge's sake.

Never deletes pending work: a request not yet processed (``received``) stays, and so does a
message while any of its deliveries is not final.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, delete, exists, func, select, text, tuple_

from hookhub.store.database import Database
from hookhub.store.schema import (
    deliveries,
    delivery_attempts,
    inbound_dedupe,
    inbound_requests,
    inbound_unlogged,
    messages,
)

FINAL_DELIVERY_STATUSES = ("succeeded", "exhausted", "collapsed", "cancelled")
"""Delivery states nothing will change again (a retry or recover makes them pending first):
collapsed (merged into its burst's delivery) and cancelled (erasure) included."""

PENDING_REQUEST_STATUS = "received"

BATCH_BODY_BYTES = 32 * 1024 * 1024
"""Request bodies deleted per transaction at most (however many rows that is)."""

_ADVISORY_KEY = 0x686F6F6B68756231
"""PostgreSQL advisory lock key held while purging (any fixed 64-bit number, ours alone)."""

_ANY_DELIVERY = exists().where(deliveries.c.message_id == messages.c.id)
_UNFINISHED = exists().where(
    deliveries.c.message_id == messages.c.id,
    deliveries.c.status.not_in(FINAL_DELIVERY_STATUSES),
)


@dataclass(frozen=True, slots=True)
class RequestBatch:
    """The next requests by id: which of them may go, and whether the walk reached new ones."""

    last_id: int | None
    expired: list[int]
    reached_recent: bool


@dataclass(frozen=True, slots=True)
class MessageBatch:
    """Messages of one batch that may go, with how many deliveries and attempts go with them."""

    last_id: str | None
    message_ids: list[str]
    deliveries: int
    attempts: int
    reached_recent: bool


class RetentionStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- the request log -------------------------------------------------------------------

    def request_batch(
        self, *, after_id: int, cutoff: float, limit: int, max_bytes: int = BATCH_BODY_BYTES
    ) -> RequestBatch:
        """The requests after ``after_id`` received before ``cutoff`` that are processed.

        A batch also ends once its bodies reach ``max_bytes``: deleting a body means reading
        its pages (on SQLite), and a batch of large ones would hold the write lock for long.
        """
        size = func.coalesce(func.length(inbound_requests.c.body), 0)
        query = (
            select(
                inbound_requests.c.id,
                inbound_requests.c.received_at,
                inbound_requests.c.status,
                size.label("size"),
            )
            .where(inbound_requests.c.id > after_id)
            .order_by(inbound_requests.c.id)
            .limit(limit)
        )
        rows = list(self.conn.execute(query))
        expired: list[int] = []
        taken, last_id = 0, None
        for row in rows:
            if row.received_at >= cutoff:
                # Ids follow arrival to within a group commit: past the first recent request,
                # every later one is recent too (a straggler is taken by the next purge).
                return RequestBatch(last_id, expired, reached_recent=True)
            if row.status != PENDING_REQUEST_STATUS:
                if expired and taken + row.size > max_bytes:
                    return RequestBatch(last_id, expired, reached_recent=False)
                expired.append(row.id)
                taken += row.size
            last_id = row.id
        return RequestBatch(last_id, expired, reached_recent=len(rows) < limit)

    def delete_requests(self, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        result = self.conn.execute(
            delete(inbound_requests).where(
                inbound_requests.c.id.in_(list(ids)),
                inbound_requests.c.status != PENDING_REQUEST_STATUS,
            )
        )
        return int(result.rowcount)

    def delete_dedupe_keys(self, *, cutoff: float, limit: int, dry_run: bool = False) -> int:
        """Forget up to ``limit`` provider event ids first seen before ``cutoff``."""
        oldest = (
            select(inbound_dedupe.c.webhook_id, inbound_dedupe.c.dedupe_key)
            .where(inbound_dedupe.c.received_at < cutoff)
            .order_by(inbound_dedupe.c.received_at)
            .limit(limit)
        )
        if dry_run:
            counted = select(func.count()).select_from(oldest.subquery())
            return int(self.conn.execute(counted).scalar_one())
        key = tuple_(inbound_dedupe.c.webhook_id, inbound_dedupe.c.dedupe_key)
        result = self.conn.execute(delete(inbound_dedupe).where(key.in_(oldest)))
        return int(result.rowcount)

    def delete_unlogged_counts(self, *, cutoff: float, limit: int, dry_run: bool = False) -> int:
        """Forget up to ``limit`` per-minute counts of unlogged requests older than ``cutoff``."""
        table = inbound_unlogged
        oldest = (
            select(table.c.webhook_id, table.c.minute, table.c.reason)
            .where(table.c.minute < int(cutoff // 60))
            .order_by(table.c.minute)
            .limit(limit)
        )
        if dry_run:
            counted = select(func.count()).select_from(oldest.subquery())
            return int(self.conn.execute(counted).scalar_one())
        key = tuple_(table.c.webhook_id, table.c.minute, table.c.reason)
        result = self.conn.execute(delete(table).where(key.in_(oldest)))
        return int(result.rowcount)

    # -- messages, deliveries, attempts ----------------------------------------------------

    def message_batch(self, *, after_id: str, cutoff: datetime, limit: int) -> MessageBatch:
        """Of the next messages by id, those created before ``cutoff`` whose every delivery is
        final, and how many deliveries and attempts they have."""
        rows = list(
            self.conn.execute(
                select(messages.c.id, messages.c.created_at)
                .where(messages.c.id > after_id)
                .order_by(messages.c.id)
                .limit(limit)
            )
        )
        walked = [row.id for row in rows if row.created_at < cutoff]
        # Message ids start with their creation time: past the first recent message, every
        # later one is recent too.
        reached_recent = len(rows) < limit or len(walked) < len(rows)
        last_id = rows[-1].id if rows else None
        if not walked:
            return MessageBatch(last_id, [], 0, 0, reached_recent)
        done = list(
            self.conn.execute(
                select(messages.c.id).where(messages.c.id.in_(walked), ~_UNFINISHED)
            ).scalars()
        )
        theirs = select(deliveries.c.id).where(deliveries.c.message_id.in_(done))
        delivery_count = self.conn.execute(
            select(func.count()).select_from(theirs.subquery())
        ).scalar_one()
        attempt_count = self.conn.execute(
            select(func.count()).where(delivery_attempts.c.delivery_id.in_(theirs))
        ).scalar_one()
        return MessageBatch(last_id, done, int(delivery_count), int(attempt_count), reached_recent)

    def delete_messages(self, message_ids: Sequence[str]) -> tuple[int, int, int]:
        """Delete the messages with their deliveries and attempts; answers how many of each.

        Finality is checked again with the deliveries locked (on PostgreSQL): a retry may have
        made one pending since the batch was read, and then its message stays. A delivery added
        meanwhile (recover) keeps its message too.
        """
        if not message_ids:
            return 0, 0, 0
        ids = list(message_ids)
        states = self.conn.execute(
            select(deliveries.c.message_id, deliveries.c.status)
            .where(deliveries.c.message_id.in_(ids))
            .with_for_update()
        )
        unfinished = {row.message_id for row in states if row.status not in FINAL_DELIVERY_STATUSES}
        done = [message_id for message_id in ids if message_id not in unfinished]
        if not done:
            return 0, 0, 0
        final = and_(
            deliveries.c.message_id.in_(done), deliveries.c.status.in_(FINAL_DELIVERY_STATUSES)
        )
        attempts = self.conn.execute(
            delete(delivery_attempts).where(
                delivery_attempts.c.delivery_id.in_(select(deliveries.c.id).where(final))
            )
        ).rowcount
        removed = self.conn.execute(delete(deliveries).where(final)).rowcount
        gone = self.conn.execute(
            delete(messages).where(messages.c.id.in_(done), ~_ANY_DELIVERY)
        ).rowcount
        return int(gone), int(removed), int(attempts)


@contextlib.contextmanager
def purge_lock(db: Database) -> Iterator[bool]:
    """Whether this process may purge now: on PostgreSQL one process at a time does (a session
    advisory lock on a connection of its own, outside the batches' transactions). On SQLite
    writers queue anyway, so every process may."""
    if db.is_sqlite:
        yield True
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        got = bool(
            conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _ADVISORY_KEY}).scalar()
        )
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_KEY})
