"""The request log's group commits, off the event loop, and the count of rate-limited requests.

:class:`RequestJournal` is how the receive path writes: every entry queued while a commit runs
goes into the next one, and each entry's callback hears, after its commit, whether it failed.
Requests that are not written one row each (refused by the rate limit, or refused past the
number logged a minute: a flood would fill the disk) are counted per webhook and reason, and the
counts are added to ``inbound_unlogged`` with the next group commit, or within
``COUNT_FLUSH_SECONDS`` when no entry comes.

It must never answer an entry before its commit, nor lose the arrival order of entries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from hookhub.errors import Unavailable
from hookhub.store.database import Database
from hookhub.store.inbound import InboundRequestStore, InboundWebhookStore, LogEntry

log = logging.getLogger("hookhub.inbound")
COUNT_FLUSH_SECONDS = 1.0
"""Longest an unlogged request's count waits for a group commit to go out with."""

Logged = Callable[[BaseException | None], None]


class RequestJournal:
    """Group commit of request-log entries (and counts of unlogged requests), off the loop.

    :meth:`add` queues an entry with a callback; every entry queued while a commit runs
    goes into the next one, and each callback hears, after its commit, whether it failed.
    """

    def __init__(self, db: Database, on_commit: Callable[[], None]) -> None:
        self.db = db
        self.on_commit = on_commit
        self._pending: list[tuple[LogEntry, Logged]] = []
        self._unlogged: dict[tuple[int, str], int] = {}
        self._count_timer: asyncio.TimerHandle | None = None
        self._flushing = False
        self._task: asyncio.Task[None] | None = None

    def add(self, entry: LogEntry, logged: Logged) -> None:
        """Queue ``entry``; ``logged(None)`` once it is committed, ``logged(error)`` if not."""
        self._pending.append((entry, logged))
        if not self._flushing:
            self._begin()

    def count_unlogged(self, webhook_id: int, reason: str) -> None:
        """One more request of ``webhook_id`` not logged, for ``reason`` (stored within 1 s)."""
        key = (webhook_id, reason)
        self._unlogged[key] = self._unlogged.get(key, 0) + 1
        if self._count_timer is None and not self._flushing:
            loop = asyncio.get_running_loop()
            self._count_timer = loop.call_later(COUNT_FLUSH_SECONDS, self._flush_counts)

    def _flush_counts(self) -> None:
        self._count_timer = None
        if self._unlogged and not self._flushing:
            self._begin()

    def _begin(self) -> None:
        self._flushing = True
        self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Commit groups one after the other while entries keep coming.

        One commit at a time (request ids must follow arrival order), but a group is answered
        while the next one is being written: answering 64 requests first and only then
        starting the next commit left PostgreSQL idle meanwhile.
        """
        batch, self._pending = self._pending, []
        writing: asyncio.Future[None] | None = self._start(batch)
        try:
            while writing is not None:
                error: BaseException | None = None
                try:
                    await writing
                except Exception as exc:
                    error = exc
                done, batch, self._pending = batch, self._pending, []
                writing = self._start(batch) if batch else None
                _tell(done, error)
                if error is None:
                    self.on_commit()
                elif not done:  # only counts were written: nobody else hears of it
                    log.warning("inbound.unlogged_count_lost", extra={"error": repr(error)})
                if writing is None and self._pending:  # answering started pipelined ones
                    batch, self._pending = self._pending, []
                    writing = self._start(batch)
        except BaseException:
            # Cancelled at shutdown: nobody may wait for ever. A commit that did land is
            # answered 503 too; the sender's retry then meets the dedupe key.
            _tell([*batch, *self._pending], Unavailable("The server is shutting down."))
            self._pending = []
            raise
        finally:
            self._flushing = False
            if self._unlogged and self._count_timer is None:
                loop = asyncio.get_running_loop()
                self._count_timer = loop.call_later(COUNT_FLUSH_SECONDS, self._flush_counts)

    def _start(self, batch: list[tuple[LogEntry, Logged]]) -> asyncio.Future[None]:
        """Write ``batch``'s entries and the counts so far in a thread; done once committed."""
        entries = [entry for entry, _ in batch]
        counts, self._unlogged = self._unlogged, {}
        if self._count_timer is not None:
            self._count_timer.cancel()
            self._count_timer = None
        return asyncio.get_running_loop().run_in_executor(None, self._write, entries, counts)

    def _write(self, entries: list[LogEntry], unlogged: dict[tuple[int, str], int]) -> None:
        with self.db.write() as conn:
            if entries:
                InboundRequestStore(conn).append(entries)
            if unlogged:
                InboundWebhookStore(conn).add_unlogged(unlogged, time.time())


def _tell(batch: list[tuple[LogEntry, Logged]], error: BaseException | None) -> None:
    for _, logged in batch:
        try:
            logged(error)
        except Exception:  # one answer's failure must not keep the others waiting
            log.exception("inbound.answer_failed")
