"""The one clock: what time it is, as epoch seconds, handed to whatever needs "now".

Code that schedules (automation timers, and what comes after them) takes a :class:`Clock`
instead of calling ``time.time()``, so that tests move time with :class:`FakeClock` instead of
sleeping. Nothing else belongs here.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock that moves only when told to (tests, benchmarks that replay time)."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        self._now += seconds
        return self._now

    def set(self, moment: float | datetime) -> None:
        self._now = moment.timestamp() if isinstance(moment, datetime) else moment

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self._now, UTC)


SYSTEM_CLOCK = SystemClock()
