"""Deadlines the HTTP protocol checks in one periodic sweep instead of an event-loop timer each.

A loop timer armed and cancelled for every request (uvicorn's keep-alive timeout after each
response, the receive path's body deadline) costs more than some of the request's own work:
with uvloop, ``call_later`` and ``cancel`` take a few microseconds, the price of parsing a
request's head. :class:`Deadlines` keeps the entries of one timeout in the order they were
added, so their deadlines are in order too, and one timer, running only while there are
entries, expires the due ones every ``interval`` (a quarter of the timeout, between
``MIN_SWEEP_INTERVAL`` and ``SWEEP_INTERVAL``): an entry expires between ``timeout`` and
``timeout + interval`` after it was added, never before.

It must never expire an entry early, nor keep a timer running when nothing waits.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol
from weakref import WeakKeyDictionary

log = logging.getLogger("hookhub.http")

SWEEP_INTERVAL = 0.25
"""Longest time between two sweeps (and so the longest an entry outlives its deadline)."""
MIN_SWEEP_INTERVAL = 0.01
"""Shortest, whatever the timeout: a tiny one must not turn the sweep into a busy loop."""


class Expiring(Protocol):
    def expire(self) -> None:
        """The entry's deadline has passed."""


class Deadlines:
    """Entries that expire ``timeout`` seconds after :meth:`add`, unless discarded before."""

    __slots__ = ("_due", "_timer", "interval", "loop", "timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.interval = max(MIN_SWEEP_INTERVAL, min(SWEEP_INTERVAL, timeout / 4))
        self._due: dict[Expiring, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, entry: Expiring) -> None:
        """Expire ``entry`` ``timeout`` seconds from now (again from now if it was waiting)."""
        due = self._due
        if entry in due:  # to the end: the dict stays in deadline order
            del due[entry]
        due[entry] = self.loop.time() + self.timeout
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval, self._sweep)

    def discard(self, entry: Expiring) -> None:
        """Forget ``entry`` (nothing happens if it is not waiting)."""
        self._due.pop(entry, None)

    def __len__(self) -> int:
        return len(self._due)

    def _sweep(self) -> None:
        now = self.loop.time()
        due = self._due
        expired = []
        for entry, deadline in due.items():
            if deadline > now:
                break
            expired.append(entry)
        for entry in expired:
            del due[entry]
        for entry in expired:
            try:
                entry.expire()
            except Exception:  # one entry's failure must not keep the others waiting
                log.exception("http.deadline_failed")
        self._timer = self.loop.call_later(self.interval, self._sweep) if due else None


_BY_OWNER: WeakKeyDictionary[object, dict[float, Deadlines]] = WeakKeyDictionary()


def deadlines_for(owner: object, loop: asyncio.AbstractEventLoop, timeout: float) -> Deadlines:
    """The :class:`Deadlines` of ``timeout`` that ``owner`` (a server's state) shares."""
    by_timeout = _BY_OWNER.get(owner)
    if by_timeout is None:
        by_timeout = _BY_OWNER[owner] = {}
    deadlines = by_timeout.get(timeout)
    if deadlines is None or deadlines.loop is not loop:
        deadlines = by_timeout[timeout] = Deadlines(loop, timeout)
    return deadlines
