"""The campaign loop: starts scheduled campaigns, takes recipient snapshots, marks campaigns sent.

Each step is one short transaction. A campaign needing work (scheduled and due, or sending with
its snapshot unfinished) is leased to this worker (``lease_owner``/``lease_until``, taken with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two workers never snapshot one campaign at once;
the lease is renewed by every batch and given back when the snapshot is done or the loop stops;
a worker that died loses it when it runs out, and the next worker resumes from the cursor.
Between snapshots the loop marks ``sent`` the campaigns with nothing left to send, and puts
back on hold (or skips) emails that escaped a pause (or a cancel) while they were in flight.

Run by ``hookhub serve`` and ``hookhub worker`` under the supervisor. It must never send email
(the email worker does), and never hold a transaction across batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hookhub.config import Settings
from hookhub.email.campaigns import CANCELLED_REASON, sender_defaults
from hookhub.store.campaign_emails import CampaignEmails
from hookhub.store.campaigns import CampaignStore
from hookhub.store.database import Database
from hookhub.supervisor import Backoff, Heartbeat

log = logging.getLogger("hookhub.campaigns")

BATCH = 2000
"""Recipients per snapshot transaction (at least, of one list; at most, of each)."""
LEASE = 30.0
"""Seconds a worker holds a campaign without renewing it (each batch renews it)."""
SWEEP_EVERY = 5.0
"""Seconds between two looks for emails that escaped a pause or a cancel (each look reads the
campaign's queued emails; for one email lease and a minute after the pause or cancel)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class CampaignLoop:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        owner: str | None = None,
        batch: int = BATCH,
        lease: float = LEASE,
        poll_interval: float | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings
        self.owner = owner or f"campaigns-{os.getpid()}-{os.urandom(4).hex()}"
        self.batch = batch
        self.lease = lease
        self.poll_interval = settings.poll_interval if poll_interval is None else poll_interval
        self.clock = clock
        self.heartbeat = Heartbeat()
        self._current: int | None = None
        self._stopping = threading.Event()
        self._wake: asyncio.Event | None = None
        self._backoff = Backoff(0.25, 5.0)
        self._next_sweep = 0.0

    # -- one step, in a thread ----------------------------------------------------------------

    def step(self) -> bool:
        """Do one piece of work; whether more is waiting right now."""
        if self._current is None:
            self._settle()
            self._current = self._lease()
            if self._current is None:
                return False
        return self._snapshot_batch(self._current)

    def _lease(self) -> int | None:
        now = self.clock()
        at = now.timestamp()
        with self.db.write() as conn:
            store = CampaignStore(conn)
            campaign = store.lease_next(self.owner, at, at + self.lease)
            if campaign is None:
                return None
            if campaign.status == "scheduled":
                store.start(campaign.id, now)
                log.info("campaign.started", extra={"campaign_id": campaign.id})
            return campaign.id

    def _snapshot_batch(self, campaign_id: int) -> bool:
        now = self.clock()
        with self.db.write() as conn:
            store = CampaignStore(conn)
            campaign = store.get(campaign_id, lock=True)
            if (
                campaign is None
                or campaign.lease_owner != self.owner
                or campaign.status != "sending"
                or campaign.snapshot_done
            ):
                # Paused, cancelled or deleted meanwhile, or the lease was lost: let go.
                if campaign is not None:
                    store.release(campaign_id, self.owner)
                self._current = None
                return True
            step = CampaignEmails(conn).snapshot_batch(
                campaign,
                sender_defaults(campaign, self.settings),
                size=self.batch,
                now=now,
                lease_until=now.timestamp() + self.lease,
            )
        if step.done:
            self._current = None
            log.info("campaign.snapshot_done", extra={"campaign_id": campaign_id})
        return True

    def _settle(self) -> None:
        """Mark finished campaigns sent; hold or skip emails that escaped a recent pause or
        cancel (an attempt in flight that ended deferred or was given back)."""
        now = self.clock()
        at = now.timestamp()
        sweep = time.monotonic() >= self._next_sweep
        with self.db.read() as conn:
            store = CampaignStore(conn)
            queued = CampaignEmails(conn)
            finished = store.finished()
            escaped: list[tuple[int, str]] = []
            if sweep:
                self._next_sweep = time.monotonic() + SWEEP_EVERY
                since = now - timedelta(seconds=self.settings.email_lease + 60)
                escaped = [
                    (campaign_id, status)
                    for campaign_id, status in store.recently_stopped(since)
                    if queued.has_idle_pending(campaign_id, at, held=status == "paused")
                ]
        if not finished and not escaped:
            return
        with self.db.write() as conn:
            store = CampaignStore(conn)
            queued = CampaignEmails(conn)
            for campaign_id, status in escaped:
                current = store.get(campaign_id, lock=True)
                if current is None or current.status != status:
                    continue
                if status == "paused":
                    queued.hold_emails(campaign_id, at)
                else:
                    queued.skip_emails(campaign_id, CANCELLED_REASON, at)
            if finished:
                store.mark_sent(finished, now)
        for campaign_id in finished:
            log.info("campaign.sent", extra={"campaign_id": campaign_id})

    def release(self) -> None:
        """Give the campaign being snapshotted back (stopping): another worker goes on at once."""
        campaign_id, self._current = self._current, None
        if campaign_id is not None:
            with self.db.write() as conn:
                CampaignStore(conn).release(campaign_id, self.owner)

    # -- the loop -----------------------------------------------------------------------------

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self.wake()

    async def run(self) -> None:
        self._wake = asyncio.Event()
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                self.heartbeat.beat()
                try:
                    more = await asyncio.to_thread(self.step)
                except Exception as exc:
                    self._current = None  # lease it again: the cursor says where to go on
                    delay = self.heartbeat.retry_later(
                        "campaigns", exc, self._backoff, log, "campaign.step_failed"
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                    continue
                self._backoff.reset()
                self.heartbeat.recovered("campaigns")
                if more:
                    await asyncio.sleep(0)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.release)
