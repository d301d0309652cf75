"""The email worker: claims due emails, renders them, sends them, records what happened.

Flow: wake (a commit in this process that queued email, a PostgreSQL NOTIFY on
``hookhub_email``, or the next due time / polling backstop) -> claim up to ``email_batch`` due
emails under a lease (one short write transaction) -> render them (``compose``; a read
transaction for their contacts and content) -> send them over the transport's pooled
connections (``send_many``) -> record every outcome with the ledger in one write transaction
per batch. While a batch is sending the next one is claimed and rendered (at most two batches
in flight), so the connections never wait for the database.

Outages: a claim or a record that fails because the database is away is retried with backoff
(0.25 s doubling to 5 s), said on the heartbeat; outcomes wait in memory until they can be
written (a lease that runs out meanwhile lets another worker send again: at-least-once, same
Message-ID, same bytes). Stopping lets batches in flight finish (within the SMTP timeout),
records them and gives back every lease still held.

What this module must never do: write SQL (``hookhub.store.emails`` owns it), change an
email's status other than through the ledger, or send bytes other than the stored ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hookhub.config import Settings
from hookhub.core.origin import TRACKING
from hookhub.email.compose import Composer, Prepared
from hookhub.email.ledger import Attempt, EmailLedger
from hookhub.email.outcomes import attempted, not_sent
from hookhub.email.transport import MailTransport
from hookhub.outbound.leases import default_worker_id
from hookhub.outbound.outbox import Outbox
from hookhub.store.database import Database, is_transient
from hookhub.store.email_reads import EmailReads
from hookhub.store.emails import EMAIL_CHANNEL, EmailStore, on_queued
from hookhub.store.notify import NotificationListener
from hookhub.supervisor import Backoff, Heartbeat

log = logging.getLogger("hookhub.email")

BATCHES_IN_FLIGHT = 2


@dataclass(slots=True)
class Claim:
    prepared: list[Prepared]
    next_due: float | None = None


class EmailWorker:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        settings: Settings,
        transport: MailTransport,
        composer: Composer,
        *,
        worker_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.settings = settings
        self.transport = transport
        self.composer = composer
        self.worker_id = "email-" + (worker_id or default_worker_id())
        self.clock = clock
        self.heartbeat = Heartbeat()
        self.sent = 0
        """Emails this worker has recorded as sent (tests and benchmarks read it)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._batches: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        self._listener: NotificationListener | None = None
        self._claim_backoff = Backoff(0.25, 5.0)

    # -- lifecycle ----------------------------------------------------------------------------

    def wake(self, *_args: Any) -> None:
        """Thread-safe: email may be due now (a commit here, or a notification)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    async def run(self) -> None:
        """Send until :meth:`stop`; may be called again after it raised."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._stopped.clear()
        self._slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        forget = on_queued(self.db.engine, self.wake)
        self._start_listener()
        log.info(
            "email.worker_started",
            extra={"worker_id": self.worker_id, "transport": self.transport.describe()},
        )
        try:
            while not self._stopping:
                self._wake.clear()
                claim = await self._claim_or_back_off()
                self.heartbeat.beat()
                if claim is None:  # the database is away: wait, then try again
                    continue
                if claim.prepared:
                    await self._slots.acquire()
                    task = asyncio.create_task(self._send_batch(claim.prepared))
                    self._batches.add(task)
                    task.add_done_callback(self._batches.discard)
                    continue  # claim the next batch while this one sends
                await self._sleep(claim.next_due)
        finally:
            forget()
            if self._batches:
                bound = self.settings.smtp_timeout * 2 + 5
                _done, pending = await asyncio.wait(set(self._batches), timeout=bound)
                for task in pending:
                    task.cancel()
            if self._listener is not None:
                self._listener.stop()
                self._listener = None
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._release)
            log.info("email.worker_stopped", extra={"worker_id": self.worker_id})

    async def _sleep(self, next_due: float | None) -> None:
        wait = self.settings.poll_interval * 4
        if next_due is not None:
            wait = min(wait, max(next_due - self.clock(), 0.0))
        if wait <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait)

    def _start_listener(self) -> None:
        if self.db.backend != "postgresql":
            return
        self._listener = NotificationListener(
            self.db.url, {EMAIL_CHANNEL: self.wake}, on_reconnect=self.wake, name="hookhub-email"
        )
        self._listener.start()

    def _release(self) -> None:
        with self.db.write() as conn:
            EmailStore(conn).release(self.worker_id)

    # -- claiming -----------------------------------------------------------------------------

    async def _claim_or_back_off(self) -> Claim | None:
        try:
            claim = await asyncio.to_thread(self._claim)
        except Exception as exc:
            if not is_transient(exc):
                raise  # a bug: the supervisor logs it and restarts the worker
            delay = self.heartbeat.retry_later(
                "claim", exc, self._claim_backoff, log, "email.claim_failed"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
            return None
        self._claim_backoff.reset()
        self.heartbeat.recovered("claim")
        return claim

    def _claim(self) -> Claim:
        now = self.clock()
        settings = self.settings
        with self.db.write() as conn:
            store = EmailStore(conn)
            claimed = store.claim_due(
                self.worker_id, now, now + settings.email_lease, settings.email_batch
            )
            if not claimed:
                return Claim([], store.next_due())
        with self.db.read() as conn:
            prepared = self.composer.prepare(
                EmailReads(conn), claimed, datetime.fromtimestamp(now, UTC)
            )
        return Claim(prepared)

    # -- sending and recording ----------------------------------------------------------------

    async def _send_batch(self, batch: list[Prepared]) -> None:
        try:
            ready = [p for p in batch if p.data is not None]
            attempts = [not_sent(p) for p in batch if p.data is None]
            if ready:
                results = await self.transport.send_many([p.envelope() for p in ready])
                now = self.clock()
                schedule = self.settings.email_retry_schedule
                attempts += [
                    attempted(p, r, schedule, now) for p, r in zip(ready, results, strict=True)
                ]
            await self._record(attempts)
        except Exception:  # a bug must not lose the emails: their lease will expire
            log.exception("email.batch_failed", extra={"worker_id": self.worker_id})
        finally:
            self._slots.release()
            self._wake.set()

    async def _record(self, attempts: list[Attempt]) -> None:
        backoff = Backoff(0.25, 5.0)
        while True:
            try:
                recorded = await asyncio.to_thread(self._record_now, attempts)
            except Exception as exc:
                if not is_transient(exc) or self._stopping:
                    raise
                delay = self.heartbeat.retry_later(
                    "record", exc, backoff, log, "email.record_failed"
                )
                await asyncio.sleep(delay)
                continue
            self.heartbeat.recovered("record")
            self.heartbeat.beat()
            self.sent += sum(
                1 for a in attempts if a.email.id in recorded and a.update.status == "sent"
            )
            return

    def _record_now(self, attempts: list[Attempt]) -> set[int]:
        now = datetime.fromtimestamp(self.clock(), UTC)
        with self.db.write() as conn:
            ledger = EmailLedger(conn, self.outbox.writer(conn, origin=TRACKING), now)
            return ledger.record_attempts(self.worker_id, attempts)
