"""Retention: deletes the request log, messages, deliveries, attempts, emails and finished
automation enrollments once they are old.

:class:`RetentionService` purges now (``hookhub purge``); :class:`RetentionLoop` purges every
``HOOKHUB_RETENTION_INTERVAL`` seconds in ``serve`` and ``worker``. Deletion goes in batches of
``HOOKHUB_RETENTION_BATCH`` rows, each its own short transaction, so the receive path and the
delivery queue only ever wait for one small batch. On PostgreSQL one process purges at a time.

It must never delete pending work: unprocessed requests, messages with a delivery that is
not final, emails still to be sent and active enrollments stay, however old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from hookhub.config import Settings
from hookhub.store.database import Database
from hookhub.store.email_idempotency import IDEMPOTENCY_WINDOW, EmailIdempotency
from hookhub.store.email_retention import EmailRetentionStore
from hookhub.store.enrollment_retention import EnrollmentRetentionStore
from hookhub.store.retention import RetentionStore, purge_lock

log = logging.getLogger("hookhub.retention")

__all__ = ["PurgeCounts", "RetentionLoop", "RetentionService"]


@dataclass(slots=True)
class PurgeCounts:
    """Rows deleted (or, in a dry run, that would be)."""

    requests: int = 0
    dedupe_keys: int = 0
    unlogged_counts: int = 0
    """Per-minute counts of requests refused without a log row (rate limited, past the cap)."""
    messages: int = 0
    deliveries: int = 0
    attempts: int = 0
    emails: int = 0
    email_events: int = 0
    idempotency_keys: int = 0
    """``Idempotency-Key`` answers of ``POST /emails`` past their 24 hours."""
    enrollments: int = 0
    """Finished automation enrollments (completed, exited, failed)."""
    step_logs: int = 0
    skipped: bool = False
    """Another process was purging (PostgreSQL): this one deleted nothing."""

    def total(self) -> int:
        return (
            self.requests
            + self.dedupe_keys
            + self.unlogged_counts
            + self.messages
            + self.deliveries
            + self.attempts
            + self.emails
            + self.email_events
            + self.idempotency_keys
            + self.enrollments
            + self.step_logs
        )


class RetentionService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        pause: float = 0.0,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.pause = pause
        """Seconds between two batches, so that other writers get the database in between."""

    def purge(
        self,
        *,
        requests: bool = True,
        messages: bool = True,
        emails: bool = True,
        automations: bool = True,
        dry_run: bool = False,
        interrupt: threading.Event | None = None,
    ) -> PurgeCounts:
        """Delete what is past its retention, batch by batch, until nothing is left or
        ``interrupt`` is set; answers how many rows of each kind went."""
        counts = PurgeCounts()
        interrupt = interrupt or threading.Event()
        with purge_lock(self.db) as allowed:
            if not allowed:
                counts.skipped = True
                return counts
            now = self.clock()
            if requests:
                self._requests(now, counts, dry_run, interrupt)
                self._dedupe_keys(now, counts, dry_run, interrupt)
                self._unlogged_counts(now, counts, dry_run, interrupt)
            if messages:
                self._messages(now, counts, dry_run, interrupt)
            if emails:
                self._emails(now, counts, dry_run, interrupt)
                self._idempotency_keys(now, counts, dry_run, interrupt)
            if automations:
                self._enrollments(now, counts, dry_run, interrupt)
        if counts.total() and not dry_run:
            log.info("retention.purged", extra=asdict(counts))
        return counts

    def _between_batches(self) -> None:
        if self.pause:
            time.sleep(self.pause)

    def _requests(
        self, now: float, counts: PurgeCounts, dry_run: bool, interrupt: threading.Event
    ) -> None:
        retention = self.settings.retention_requests
        if not retention:
            return
        cutoff, after = now - retention, 0
        while not interrupt.is_set():
            with self.db.read() if dry_run else self.db.write() as conn:
                store = RetentionStore(conn)
                batch = store.request_batch(
                    after_id=after, cutoff=cutoff, limit=self.settings.retention_batch
                )
                if dry_run:
                    counts.requests += len(batch.expired)
                else:
                    counts.requests += store.delete_requests(batch.expired)
            if batch.reached_recent or batch.last_id is None:
                return
            after = batch.last_id
            self._between_batches()

    def _dedupe_keys(
        self, now: float, counts: PurgeCounts, dry_run: bool, interrupt: threading.Event
    ) -> None:
        """Provider event ids are remembered for the dedupe window, whatever the log keeps."""
        cutoff = now - self.settings.dedupe_retention
        self._by_age(
            "dedupe_keys",
            lambda conn, limit, dry: RetentionStore(conn).delete_dedupe_keys(
                cutoff=cutoff, limit=limit, dry_run=dry
            ),
            counts,
            dry_run,
            interrupt,
        )

    def _unlogged_counts(
        self, now: float, counts: PurgeCounts, dry_run: bool, interrupt: threading.Event
    ) -> None:
        """The counts of unlogged requests are kept as long as the request log itself."""
        retention = self.settings.retention_requests
        if not retention:
            return
        cutoff = now - retention
        self._by_age(
            "unlogged_counts",
            lambda conn, limit, dry: RetentionStore(conn).delete_unlogged_counts(
                cutoff=cutoff, limit=limit, dry_run=dry
            ),
            counts,
            dry_run,
            interrupt,
        )

    def _by_age(
        self,
        field: str,
        delete_oldest: Callable[[Connection, int, bool], int],
        counts: PurgeCounts,
        dry_run: bool,
        interrupt: threading.Event,
    ) -> None:
        """Delete rows found by age alone, ``retention_batch`` a transaction, counting them in
        ``counts.<field>`` (a dry run counts them all at once)."""
        if dry_run:
            with self.db.read() as conn:
                setattr(counts, field, delete_oldest(conn, 2**62, True))
            return
        limit = self.settings.retention_batch
        while not interrupt.is_set():
            with self.db.write() as conn:
                deleted = delete_oldest(conn, limit, False)
            setattr(counts, field, getattr(counts, field) + deleted)
            if deleted < limit:
                return
            self._between_batches()

    def _messages(
        self, now: float, counts: PurgeCounts, dry_run: bool, interrupt: threading.Event
    ) -> None:
        retention = self.settings.retention_messages
        if not retention:
            return
        cutoff, after = datetime.fromtimestamp(now - retention, UTC), ""
        while not interrupt.is_set():
            with self.db.read() if dry_run else self.db.write() as conn:
                store = RetentionStore(conn)
                batch = store.message_batch(
                    after_id=after, cutoff=cutoff, limit=self.settings.retention_batch
                )
                if dry_run:
                    counts.messages += len(batch.message_ids)
                    counts.deliveries += batch.deliveries
                    counts.attempts += batch.attempts
                else:
                    gone, deliveries, attempts = store.delete_messages(batch.message_ids)
                    counts.messages += gone
                    counts.deliveries += deliveries
                    counts.attempts += attempts
            if batch.reached_recent or batch.last_id is None:
                return
            after = batch.last_id
            self._between_batches()

    def _emails(
        self, now: float, counts: PurgeCounts, dry_run: bool, interrupt: threading.Event
    ) -> None:
        retention = self.settings.retention_emails
        if not retention:
            return
        cutoff, after = datetime.fromtimestamp(now - retention, UTC), 0
        while not interrupt.is_set():
            with self.db.read() if dry_run else self.db.write() as conn:
                store = EmailRetentionStore(conn)
                batch = store.email_batch(
                    after_id=after, cutoff=cutoff, limit=self.settings.retention_batch
                )
                if dry_run:
                    counts.emails += len(batch.expired)
                    counts.email_events += batch.events
                else:
                    gone, events = store.delete_emails(batch.expired)
                    counts.emails += gone
                    counts.email_events += events
            if batch.reached_recent or batch.last_id is None:
                return
            after = batch.last_id
            self._between_batches()

    def _idempotency_keys(
        self, now: float, counts: PurgeCounts, dry_run: bool, interrupt: threading.Event
    ) -> None:
        """Kept for their 24 hours, whatever the emails' retention."""
        cutoff = now - IDEMPOTENCY_WINDOW
        self._by_age(
            "idempotency_keys",
            lambda conn, limit, dry: EmailIdempotency(conn).delete_older(
                cutoff=cutoff, limit=limit, dry_run=dry
            ),
            counts,
            dry_run,
            interrupt,
        )

    def _enrollments(
        self, now: float, counts: PurgeCounts, dry_run: bool, interrupt: threading.Event
    ) -> None:
        """Finished enrollments go with their step logs; active ones stay, however old."""
        retention = self.settings.retention_automations
        if not retention:
            return
        cutoff = now - retention
        if dry_run:
            with self.db.read() as conn:
                counts.enrollments, counts.step_logs = EnrollmentRetentionStore(
                    conn
                ).delete_finished(cutoff=cutoff, limit=2**62, dry_run=True)
            return
        limit = self.settings.retention_batch
        while not interrupt.is_set():
            with self.db.write() as conn:
                gone, logs = EnrollmentRetentionStore(conn).delete_finished(
                    cutoff=cutoff, limit=limit, dry_run=False
                )
            counts.enrollments += gone
            counts.step_logs += logs
            if gone < limit:
                return
            self._between_batches()


class RetentionLoop:
    """Purges every ``interval`` seconds until stopped; a failed purge is logged and retried at
    the next interval, never ends the loop."""

    def __init__(self, service: RetentionService, *, interval: float) -> None:
        self.service = service
        self.interval = interval
        self._stopping = threading.Event()  # read by the purge's thread between batches
        self._wake: asyncio.Event | None = None
        self.runs = 0

    async def run(self) -> None:
        self._wake = asyncio.Event()
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(self.service.purge, interrupt=self._stopping)
                self.runs += 1
            except Exception:
                log.exception("retention.purge_failed")
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    def stop(self) -> None:
        self._stopping.set()
        if self._wake is not None:
            self._wake.set()
