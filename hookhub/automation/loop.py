"""The automation loop: runs the step machine whenever enrollments are due.

Flow: wake (a commit in this process that made enrollments due, ``store.enrollments.on_due``;
a PostgreSQL ``NOTIFY`` on ``hookhub_automation`` from another process; or the next due time)
-> claim a batch and run it (``AutomationEngine``, in a thread: the database calls block) ->
again at once while batches come back full, otherwise sleep until the soonest due time, at
most :data:`MAX_SLEEP` seconds, so that a timer falls due within a second even when nothing
wakes the loop.

Outages: a claim or a run the database refuses is retried with backoff (0.25 s doubling to
5 s), said on the heartbeat; a batch whose run failed that way is run again as it is (its
leases are still this worker's). Stopping gives back every lease still held. Anything else
raised ends :meth:`AutomationLoop.run` for the supervisor to log and restart.

This module must never write SQL or decide what a step does (``engine.py`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hookhub.automation.engine import AutomationEngine
from hookhub.store.database import is_transient
from hookhub.store.enrollments import AUTOMATION_CHANNEL, Claimed, on_due
from hookhub.store.notify import NotificationListener
from hookhub.supervisor import Backoff, Heartbeat

log = logging.getLogger("hookhub.automation")

MAX_SLEEP = 1.0
"""Longest sleep between looks at the queue (seconds): the bound on how late a timer runs
when nothing else wakes the loop (a clock moved by a test, a NOTIFY lost in a reconnect)."""
MIN_SLEEP = 0.01


class AutomationLoop:
    def __init__(self, engine: AutomationEngine, *, max_sleep: float = MAX_SLEEP) -> None:
        self.engine = engine
        self.max_sleep = max_sleep
        self.heartbeat = Heartbeat()
        self.steps = 0
        """Steps this loop has run (tests and benchmarks read it)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._pending: list[Claimed] = []
        self._listener: NotificationListener | None = None
        self._backoff = Backoff(0.25, 5.0)

    def wake(self, *_args: object) -> None:
        """Thread-safe: enrollments may be due now (a commit here, or a notification)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    async def run(self) -> None:
        """Run due enrollments until :meth:`stop`; may be called again after it raised."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._stopped.clear()
        db = self.engine.db
        forget = on_due(db.engine, self.wake)
        if db.backend == "postgresql":
            self._listener = NotificationListener(
                db.url,
                {AUTOMATION_CHANNEL: self.wake},
                on_reconnect=self.wake,
                name="hookhub-automation",
            )
            self._listener.start()
        log.info("automation.loop_started", extra={"worker_id": self.engine.worker_id})
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    full = await asyncio.to_thread(self._step)
                except Exception as exc:
                    if not is_transient(exc):
                        raise  # a bug: the supervisor logs it and restarts the loop
                    delay = self.heartbeat.retry_later(
                        "run", exc, self._backoff, log, "automation.run_failed"
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopped.wait(), delay)
                    continue
                self._backoff.reset()
                self.heartbeat.recovered("run")
                self.heartbeat.beat()
                if not full:
                    await self._sleep()
        finally:
            forget()
            if self._listener is not None:
                self._listener.stop()
                self._listener = None
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.engine.release)
            self._pending = []
            log.info("automation.loop_stopped", extra={"worker_id": self.engine.worker_id})

    def _step(self) -> bool:
        """Claim a batch (or take the one a failed run left) and run it; whether it was full
        (more may be due at once)."""
        if not self._pending:
            self._pending = self.engine.claim()
        claimed = self._pending
        if not claimed:
            return False
        self.steps += self.engine.run(claimed)
        self._pending = []
        return len(claimed) >= self.engine.batch

    async def _sleep(self) -> None:
        wait = self.max_sleep
        try:
            next_due = await asyncio.to_thread(self.engine.next_due)
        except Exception as exc:
            if not is_transient(exc):
                raise
            next_due = None  # the next claim will meet the outage and back off
        if next_due is not None:
            # At least 10 ms: what is due may be locked by another worker's claim right now.
            wait = min(wait, max(next_due - self.engine.clock.now(), MIN_SLEEP))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), wait)
