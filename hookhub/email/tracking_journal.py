"""Group commits of tracking hits, off the event loop: how the tracking routes write.

Like the inbound request journal (``hookhub.inbound.journal``), but for ``tracking_hits`` rows
and nothing else: every hit queued while the commits in flight run goes into the next one, and
each hit's callback hears, after its commit, whether it failed. Unlike requests, hits need no
order among themselves, so on PostgreSQL up to ``IN_FLIGHT_POSTGRES`` commits run at once: a
commit there waits mostly on round trips, and the next group need not wait for them. SQLite has
one writer, so one commit at a time. (The request journal also keeps per-webhook counts of
unlogged requests; generalising it would put a second row type through the inbound hot path.)

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

IN_FLIGHT_POSTGRES = 3
"""Group commits running at once on PostgreSQL (SQLite: 1)."""

Stored = Callable[[BaseException | None], None]
Batch = list[tuple[TrackingHit, Stored]]


class TrackingJournal:
    """:meth:`add` queues a hit; ``stored(None)`` once committed, ``stored(error)`` if not."""

    def __init__(self, db: Database, on_commit: Callable[[], None]) -> None:
        self.db = db
        self.on_commit = on_commit
        self.max_in_flight = 1 if db.is_sqlite else IN_FLIGHT_POSTGRES
        self._pending: Batch = []
        self._in_flight = 0

    def busy(self) -> bool:
        """Whether hits are being written or waiting to be (a thread may ask)."""
        return self._in_flight > 0 or bool(self._pending)

    def add(self, hit: TrackingHit, stored: Stored) -> None:
        self._pending.append((hit, stored))
        if self._in_flight < self.max_in_flight:
            self._start()

    def _start(self) -> None:
        batch, self._pending = self._pending, []
        self._in_flight += 1
        loop = asyncio.get_running_loop()
        try:
            writing = loop.run_in_executor(None, self._write, batch)
        except RuntimeError:  # the executor is shut down: the server is stopping
            self._in_flight -= 1
            _tell(batch, Unavailable("The server is shutting down."))
            return
        writing.add_done_callback(lambda done: self._written(batch, done))

    def _written(self, batch: Batch, done: asyncio.Future[None]) -> None:
        self._in_flight -= 1
        error: BaseException | None
        if done.cancelled():
            error = Unavailable("The server is shutting down.")
        else:
            error = done.exception()
        # The next group starts before this one is answered: answering takes a while.
        if self._pending and self._in_flight < self.max_in_flight:
            self._start()
        _tell(batch, error)
        if error is None:
            self.on_commit()
        if self._pending and self._in_flight < self.max_in_flight:  # answers pipelined more
            self._start()

    def _write(self, batch: Batch) -> None:
        with self.db.write() as conn:
            TrackingHitStore(conn).append([hit for hit, _ in batch])


def _tell(batch: Batch, error: BaseException | None) -> None:
    for _, stored in batch:
        try:
            stored(error)
        except Exception:  # one answer's failure must not keep the others waiting
            log.exception("tracking.answer_failed")
