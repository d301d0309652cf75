"""Group commits of tracking hits, off the event loop: how the tracking routes write.

Like the inbound request journal (``hookhub.inbound.journal``), but for ``tracking_hits`` rows
and nothing else: every hit queued while a commit runs goes into the next one, one commit at a
time, and each hit's callback hears, after its commit, whether it failed. (The request journal
also keeps per-webhook counts of unlogged requests; generalising it would put a second row type
through the inbound hot path for nothing.)

It must never answer a hit before its commit, and never leave a caller waiting for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hookhub.errors import Unavailable
from hookhub.store.database import Database
from hookhub.store.tracking import TrackingHit, TrackingHitStore

log = logging.getLogger("hookhub.tracking")

Stored = Callable[[BaseException | None], None]


class TrackingJournal:
    """:meth:`add` queues a hit; ``stored(None)`` once committed, ``stored(error)`` if not."""

    def __init__(self, db: Database, on_commit: Callable[[], None]) -> None:
        self.db = db
        self.on_commit = on_commit
        self._pending: list[tuple[TrackingHit, Stored]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None

    def busy(self) -> bool:
        """Whether hits are being written or waiting to be (a thread may ask)."""
        return self._flushing or bool(self._pending)

    def add(self, hit: TrackingHit, stored: Stored) -> None:
        self._pending.append((hit, stored))
        if not self._flushing:
            self._flushing = True
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Commit groups one after the other while hits keep coming; a group is answered
        while the next one is being written."""
        loop = asyncio.get_running_loop()
        batch, self._pending = self._pending, []
        writing: asyncio.Future[None] | None = loop.run_in_executor(None, self._write, batch)
        try:
            while writing is not None:
                error: BaseException | None = None
                try:
                    await writing
                except Exception as exc:
                    error = exc
                done, batch, self._pending = batch, self._pending, []
                writing = loop.run_in_executor(None, self._write, batch) if batch else None
                _tell(done, error)
                if error is None:
                    self.on_commit()
                if writing is None and self._pending:  # answering started pipelined ones
                    batch, self._pending = self._pending, []
                    writing = loop.run_in_executor(None, self._write, batch)
        except BaseException:
            # Cancelled at shutdown: nobody may wait for ever (a hit that did land is kept).
            _tell([*batch, *self._pending], Unavailable("The server is shutting down."))
            self._pending = []
            raise
        finally:
            self._flushing = False

    def _write(self, batch: list[tuple[TrackingHit, Stored]]) -> None:
        with self.db.write() as conn:
            TrackingHitStore(conn).append([hit for hit, _ in batch])


def _tell(batch: list[tuple[TrackingHit, Stored]], error: BaseException | None) -> None:
    for _, stored in batch:
        try:
            stored(error)
        except Exception:  # one answer's failure must not keep the others waiting
            log.exception("tracking.answer_failed")
