"""Runs inbound rules on acknowledged requests, from the durable log, as they arrive.

Woken by the receiver of this process after each group commit, and by polling otherwise (for
requests received by other processes), so an acknowledged request is processed within a
second under normal load. A failing batch is logged and retried; it is never skipped. Every ten
minutes it also forgets dedupe keys older than the retention (30 days by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from hookhub.inbound.service import InboundService

log = logging.getLogger("hookhub.inbound")


PURGE_EVERY = 600.0


class InboundProcessor:
    def __init__(
        self,
        service: InboundService,
        *,
        poll_interval: float = 0.5,
        dedupe_retention: float = 30 * 24 * 3600,
    ) -> None:
        self.service = service
        self.poll_interval = poll_interval
        self.dedupe_retention = dedupe_retention
        self._purged_at = 0.0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    def wake(self) -> None:
        """Thread-safe: requests may be waiting."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            try:
                if time.monotonic() - self._purged_at > PURGE_EVERY:
                    self._purged_at = time.monotonic()
                    await asyncio.to_thread(self.service.purge_dedupe, self.dedupe_retention)
                done = await asyncio.to_thread(self.service.process_backlog)
            except Exception:
                log.exception("inbound.process_failed")
                done = 0
                await asyncio.sleep(1.0)
            if done:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
