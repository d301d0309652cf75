"""Runs inbound rules on acknowledged requests, from the durable log, as they arrive.

Woken by the receiver of this process after each group commit, and by polling otherwise (for
requests received by other processes), so an acknowledged request is processed within a
second under normal load. A failing batch is logged and retried with backoff (0.25 s doubling
to 5 s); it is never skipped, and nothing is lost meanwhile: each webhook's batch is one
transaction, so a database that goes away mid-batch leaves its requests waiting. While the
receiver of the same process is busy, processing runs in its gaps (see _yield_to_receiver).
(Old dedupe keys are forgotten by retention, ``hookhub/retention.py``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from hookhub.inbound.service import InboundService
from hookhub.supervisor import Backoff, Heartbeat

log = logging.getLogger("hookhub.inbound")


QUIET = 0.05
"""While the receiver of this process committed within this many seconds, it is busy..."""
MAX_DEFER = 1.0
"""...and processing waits for it, but never longer than this between two batches."""


class InboundProcessor:
    def __init__(
        self,
        service: InboundService,
        *,
        poll_interval: float = 0.5,
    ) -> None:
        self.service = service
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._received_at = 0.0
        self._ran_at = 0.0
        self.heartbeat = Heartbeat()
        self._backoff = Backoff(0.25, 5.0)

    def wake(self) -> None:
        """Thread-safe: requests may be waiting (the receiver of this process just logged)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._received)

    def _received(self) -> None:
        self._received_at = time.monotonic()
        self._wake.set()

    async def _yield_to_receiver(self) -> None:
        """Acknowledging comes first: while requests are streaming in, process in the gaps.

        Rules take the database's write lock (one writer on SQLite) and the CPU the receiver
        needs; so a burst is acknowledged first and processed right after, with at least one
        batch every MAX_DEFER so that the backlog always moves.
        """
        while not self._stopping:
            now = time.monotonic()
            quiet_for = now - self._received_at
            waited = now - self._ran_at
            if quiet_for >= QUIET or waited >= MAX_DEFER:
                return
            await asyncio.sleep(min(QUIET - quiet_for, MAX_DEFER - waited))

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Process until :meth:`stop` is called; may be called again after it raised."""
        self._loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            self.heartbeat.beat()
            try:
                await self._yield_to_receiver()
                done = await asyncio.to_thread(self.service.process_backlog)
                self._ran_at = time.monotonic()  # the receiver's turn starts now
            except Exception as exc:
                # The database away (retried quietly) or a bug (logged with its traceback);
                # either way the batch rolled back and its requests wait for the next try.
                delay = self.heartbeat.retry_later(
                    "process", exc, self._backoff, log, "inbound.process_failed"
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped(), delay)
                continue
            self._backoff.reset()
            self.heartbeat.recovered("process")
            if done:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def _stopped(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self._wake.wait()
