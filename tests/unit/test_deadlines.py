"""The swept deadlines of the HTTP protocol (hookhub.api.deadlines), on a loop whose clock and
timers the test moves by hand: an entry expires once its timeout has passed, never before,
unless discarded; one timer serves every entry and stops when none is left."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest

from hookhub.api.deadlines import SWEEP_INTERVAL, Deadlines


class ManualLoop:
    """``time()`` and ``call_later()`` as a loop offers them, moved by :meth:`advance`."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        self.timers.append((self.now + delay, callback))
        return object()

    def advance(self, seconds: float) -> None:
        """Move the clock, running every timer due on the way, in order."""
        end = self.now + seconds
        while True:
            due = sorted((t for t in self.timers if t[0] <= end), key=lambda t: t[0])
            if not due:
                break
            at, callback = due[0]
            self.timers.remove(due[0])
            self.now = at
            callback()
        self.now = end


class Entry:
    def __init__(self, name: str, expired: list[str]) -> None:
        self.name = name
        self.expired = expired

    def expire(self) -> None:
        self.expired.append(self.name)


@pytest.fixture
def loop() -> ManualLoop:
    return ManualLoop()


def deadlines(loop: ManualLoop, timeout: float) -> Deadlines:
    return Deadlines(cast(asyncio.AbstractEventLoop, loop), timeout)


def test_an_entry_expires_after_its_timeout_never_before(loop: ManualLoop) -> None:
    expired: list[str] = []
    swept = deadlines(loop, 5.0)
    swept.add(Entry("a", expired))
    loop.advance(4.99)
    assert expired == []
    loop.advance(SWEEP_INTERVAL + 0.02)
    assert expired == ["a"]


def test_a_discarded_entry_never_expires_and_the_timer_stops(loop: ManualLoop) -> None:
    expired: list[str] = []
    swept = deadlines(loop, 1.0)
    entry = Entry("a", expired)
    swept.add(entry)
    swept.discard(entry)
    swept.discard(entry)  # twice is harmless
    loop.advance(10.0)
    assert expired == []
    assert loop.timers == [], "no timer keeps running once nothing waits"


def test_one_timer_serves_every_entry(loop: ManualLoop) -> None:
    expired: list[str] = []
    swept = deadlines(loop, 2.0)
    for name in "abc":
        swept.add(Entry(name, expired))
    assert len(loop.timers) == 1
    loop.advance(2.5)
    assert expired == ["a", "b", "c"]
    assert len(swept) == 0


def test_entries_expire_in_the_order_of_their_deadlines(loop: ManualLoop) -> None:
    expired: list[str] = []
    swept = deadlines(loop, 1.0)
    first, second = Entry("first", expired), Entry("second", expired)
    swept.add(first)
    loop.advance(0.5)
    swept.add(second)
    loop.advance(0.6)  # 1.1 s after the first, 0.6 s after the second
    assert expired == ["first"]
    loop.advance(0.6)
    assert expired == ["first", "second"]


def test_adding_again_restarts_the_timeout(loop: ManualLoop) -> None:
    expired: list[str] = []
    swept = deadlines(loop, 1.0)
    again, other = Entry("again", expired), Entry("other", expired)
    swept.add(again)
    loop.advance(0.5)
    swept.add(other)
    loop.advance(0.25)
    swept.add(again)  # now due after other: the order by deadline holds
    loop.advance(0.5)  # 1.25 s after again was first added
    assert expired == []
    loop.advance(0.3)
    assert expired == ["other"]
    loop.advance(0.5)
    assert expired == ["other", "again"]


def test_the_sweep_is_a_fraction_of_a_short_timeout(loop: ManualLoop) -> None:
    expired: list[str] = []
    swept = deadlines(loop, 0.2)
    swept.add(Entry("a", expired))
    loop.advance(0.26)  # within a quarter of the timeout past it
    assert expired == ["a"]


def test_a_failing_entry_does_not_keep_the_others(
    loop: ManualLoop, caplog: pytest.LogCaptureFixture
) -> None:
    expired: list[str] = []

    class Failing:
        def expire(self) -> None:
            raise RuntimeError("boom")

    swept = deadlines(loop, 1.0)
    swept.add(Failing())
    swept.add(Entry("after", expired))
    loop.advance(1.5)
    assert expired == ["after"]
    assert "http.deadline_failed" in caplog.text


def test_a_tiny_timeout_does_not_sweep_in_a_busy_loop(loop: ManualLoop) -> None:
    expired: list[str] = []
    swept = deadlines(loop, 1e-6)
    swept.add(Entry("a", expired))
    assert swept.interval >= 0.01
    loop.advance(0.011)
    assert expired == ["a"]
