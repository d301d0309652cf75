"""Pacing: at most so many events a second, for the email rate (``HOOKHUB_EMAIL_RATE``).

The clock and the sleep are handed in, so a test can check the pacing on a clock of its own
without timing anything. This module must never read the clock itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

__all__ = ["Clock", "Pacer", "Sleep"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Pacer:
    """At most ``rate`` events per second on average, bursts of ``burst`` events (GCRA).

    :meth:`wait` reserves the next slot and sleeps until it comes, so concurrent callers are
    spaced out in the order they asked; over any T seconds at most ``burst + rate * T`` pass.
    """

    def __init__(self, rate: float, *, burst: float, clock: Clock, sleep: Sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.interval = 1.0 / rate
        self.tolerance = (max(burst, 1.0) - 1.0) * self.interval
        self._clock = clock
        self._sleep = sleep
        self._tat = float("-inf")
        """The theoretical arrival time of the next event, were the rate exactly kept."""

    async def wait(self) -> None:
        now = self._clock()
        arrival = max(self._tat, now)
        self._tat = arrival + self.interval
        delay = arrival - self.tolerance - now
        if delay > 0:
            await self._sleep(delay)
