"""Limits on sign-in attempts: failures per email and per client address, in this process.

After ``per_email`` failures for one email, or ``per_client`` failures from one address, within
``window`` seconds, further attempts are refused (429) until the oldest failure ages out. A
successful sign-in clears the email's failures. Kept in memory: a restart forgets, which only
ever helps someone who is locked out.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MAX_KEYS = 10_000
"""Distinct emails or addresses remembered; beyond this the oldest are forgotten."""


class SignInLimiter:
    def __init__(
        self,
        *,
        per_email: int = 5,
        per_client: int = 20,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_email = per_email
        self.per_client = per_client
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def refused(self, email: str, client: str) -> int | None:
        """Seconds to wait when this attempt must be refused, else None."""
        now = self.clock()
        with self._lock:
            waits = [
                self._wait(f"email:{email}", self.per_email, now),
                self._wait(f"client:{client}", self.per_client, now),
            ]
        found = [w for w in waits if w is not None]
        return max(found) if found else None

    def failed(self, email: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (f"email:{email}", f"client:{client}"):
                self._failures.setdefault(key, deque()).append(now)
            while len(self._failures) > MAX_KEYS:
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, email: str) -> None:
        with self._lock:
            self._failures.pop(f"email:{email}", None)

    def _wait(self, key: str, limit: int, now: float) -> int | None:
        times = self._failures.get(key)
        if not times:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        if len(times) < limit:
            return None
        return max(1, int(times[0] + self.window - now) + 1)
