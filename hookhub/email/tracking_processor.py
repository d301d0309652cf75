"""Turns tracking hits into email events, from the durable log, in batches.

:class:`TrackingApplier` takes up to ``batch`` of the oldest hits (deleting them) and applies
them through :class:`~hookhub.email.ledger.EmailLedger` in the same transaction: opens and clicks
flag ``first`` (the ledger) and ``proxy`` (:class:`~hookhub.core.tracking_flags.ProxyJudge`),
clicks carry their link's URL, unsubscribes go through the contacts core (so
``contact.unsubscribed`` names the email and campaign). A hit whose email no longer exists, or
whose link the email no longer has, is dropped and counted. A batch that fails rolls back whole:
its hits wait for the next try. On PostgreSQL, workers taking at once skip each other's hits
(``TrackingHitStore.take``), and each batch is applied in email order, so two workers lock
emails in the same order.

:class:`TrackingProcessor` is the supervised loop (``hookhub serve``, ``hookhub worker``): woken
after the receiver's commits in this process, polling otherwise (hits received by other
processes); while the receiver of this process is busy, it applies in the gaps, at least one
batch a second. It must never apply a hit twice, nor lose one it did not apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hookhub.core.origin import TRACKING
from hookhub.core.tracking_flags import ProxyJudge
from hookhub.crm.operations import CrmTx
from hookhub.email.ledger import EmailLedger, crm_unsubscriber
from hookhub.outbound.outbox import Outbox
from hookhub.records.email import Email
from hookhub.store.database import Database
from hookhub.store.tracking import TrackingHit, TrackingHitStore
from hookhub.supervisor import Backoff, Heartbeat

log = logging.getLogger("hookhub.tracking")

BATCH = 200
"""Hits applied per transaction (each costs a few statements: a batch is about a tenth of a
second, and on SQLite the receiver's commits wait for it, one writer)..."""
BUSY_BATCH = 20
"""...and while the receiver of this process is busy."""
QUIET = 0.05
"""While the receiver of this process committed within this many seconds, it is busy..."""
MAX_DEFER = 1.0
"""...and applying waits for it, but never longer than this between two batches."""
_REPORTS = {"o": "opened", "c": "clicked", "u": "unsubscribed"}
MAX_AGENT_KEPT = 256
"""Characters of a hit's User-Agent kept on the email's timeline."""


class TrackingApplier:
    """One batch of hits at a time, applied in one transaction (blocking: run it in a thread)."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        *,
        batch: int = BATCH,
        judge: ProxyJudge | None = None,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.batch = batch
        self.judge = judge or ProxyJudge()
        self.applied = 0
        self.dropped = 0
        """Hits dropped since start: their email (or its link) no longer exists."""

    def apply_batch(self, limit: int | None = None) -> int:
        """Apply up to ``limit`` (``batch``) hits; how many were taken (0: none waiting)."""
        with self.db.write() as conn:
            store = TrackingHitStore(conn)
            hits = store.take(limit or self.batch)
            if not hits:
                return 0
            hits.sort(key=lambda hit: (hit.email_id, hit.id))  # one lock order for all workers
            found = store.emails({hit.email_id for hit in hits})
            outbox = self.outbox.writer(conn, origin=TRACKING)
            applied = dropped = 0
            for hit in hits:
                email = found.get(hit.email_id)
                at = datetime.fromtimestamp(hit.received_at, UTC)
                detail = self._detail(hit, email)
                if email is None or detail is None:
                    dropped += 1
                    continue
                unsubscribe = None
                if hit.kind == "u":
                    unsubscribe = crm_unsubscriber(CrmTx(conn, outbox, at))
                ledger = EmailLedger(conn, outbox, at, unsubscribe=unsubscribe)
                ledger.report(email, _REPORTS[hit.kind], detail)
                if hit.kind == "c" and email.opened_at is None:
                    email.opened_at = hit.received_at  # the ledger marked it opened
                applied += 1
        self.applied += applied
        if dropped:
            self.dropped += dropped
            log.info("tracking.hits_dropped", extra={"count": dropped, "total": self.dropped})
        return len(hits)

    def _detail(self, hit: TrackingHit, email: Email | None) -> dict[str, Any] | None:
        """What the ledger gets for ``hit``; None when its link is gone."""
        if email is None:
            return None
        if hit.kind == "u":
            return {"source": "email"}
        detail: dict[str, Any] = {}
        if hit.kind == "c":
            links = email.links or []
            if hit.link is None or not 0 <= hit.link < len(links):
                return None
            detail["url"] = links[hit.link]
        sent_at = email.sent_at.timestamp() if email.sent_at is not None else None
        reason = self.judge.reason(
            hit.kind,
            hit.email_id,
            at=hit.received_at,
            sent_at=sent_at,
            user_agent=hit.user_agent,
            link=hit.link,
        )
        detail["proxy"] = reason is not None
        if reason is not None:
            detail["proxy_reason"] = reason
        if hit.user_agent:
            detail["user_agent"] = hit.user_agent[:MAX_AGENT_KEPT]
        return detail


class TrackingProcessor:
    """The supervised loop around a :class:`TrackingApplier`."""

    def __init__(
        self,
        applier: TrackingApplier,
        *,
        poll_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        receiving: Callable[[], bool] = lambda: False,
    ) -> None:
        """``receiving()``: whether the receiver of this process has hits on their way to
        the log (then it is busy, even if its last commit was a while ago)."""
        self.applier = applier
        self.receiving = receiving
        self.poll_interval = poll_interval
        self.clock = clock
        self.heartbeat = Heartbeat()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._received_at = 0.0
        self._ran_at = 0.0
        self._backoff = Backoff(0.25, 5.0)

    def wake(self) -> None:
        """Thread-safe: hits may be waiting (the receiver of this process just stored some)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._received)

    def _received(self) -> None:
        self._received_at = self.clock()
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _yield_to_receiver(self) -> int | None:
        """Answering comes first: while hits stream in, apply in the gaps (one writer on
        SQLite, and the same CPU), but at least a small batch every MAX_DEFER. The batch size
        to apply now: None for a full one, BUSY_BATCH while the receiver is still busy."""
        while not self._stopping:
            now = self.clock()
            quiet_for = 0.0 if self.receiving() else now - self._received_at
            waited = now - self._ran_at
            if quiet_for >= QUIET:
                return None
            if waited >= MAX_DEFER:
                return BUSY_BATCH
            await asyncio.sleep(min(QUIET - quiet_for, MAX_DEFER - waited))
        return None

    async def run(self) -> None:
        """Apply until :meth:`stop` is called; may be called again after it raised."""
        self._loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            self.heartbeat.beat()
            try:
                limit = await self._yield_to_receiver()
                taken = await asyncio.to_thread(self.applier.apply_batch, limit)
                self._ran_at = self.clock()
            except Exception as exc:
                delay = self.heartbeat.retry_later(
                    "apply", exc, self._backoff, log, "tracking.apply_failed"
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped(), delay)
                continue
            self._backoff.reset()
            self.heartbeat.recovered("apply")
            if taken:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def _stopped(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self._wake.wait()
