"""When to try a failed delivery again, and what an attempt's outcome means for its endpoint.

The schedule is configuration data (``HOOKHUB_RETRY_SCHEDULE``); this module turns it, the
attempt's outcome and a receiver's ``Retry-After`` into the next delay. It is pure: it must
never read the clock, draw randomness of its own or sleep; callers hand in ``now`` and a
``random.Random``, so every decision is reproducible in tests.
"""

from __future__ import annotations

import enum
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["THROTTLING_STATUSES", "Outcome", "RetryPolicy", "classify", "parse_retry_after"]

THROTTLING_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses that say "not now": the endpoint is slowed down, not only this delivery retried."""

_DELTA_SECONDS = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


class Outcome(enum.Enum):
    SUCCESS = "success"
    """2xx: delivered."""
    GONE = "gone"
    """410: the receiver asks never to be called again; the endpoint is disabled."""
    THROTTLED = "throttled"
    """429, 502, 503, 504: retry later and slow the endpoint down."""
    FAILURE = "failure"
    """Anything else, 3xx and network errors included: retry on the schedule."""


def classify(status: int | None, error: str | None) -> Outcome:
    """The outcome of one attempt from its HTTP status (None when none arrived) and error class.

    A 2xx whose response could not be read to the end (``error`` set) is not a success:
    success means a 2xx within the timeout.
    """
    if status is None:
        return Outcome.FAILURE
    if 200 <= status < 300:
        return Outcome.SUCCESS if error is None else Outcome.FAILURE
    if status == 410:
        return Outcome.GONE
    if status in THROTTLING_STATUSES:
        return Outcome.THROTTLED
    return Outcome.FAILURE


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays between attempts: the first attempt is immediate, then ``schedule`` with jitter.

    ``schedule[n-1]`` is the delay after the n-th failed attempt, spread uniformly by
    ``± jitter`` (a fraction) so that endpoints that failed together do not retry together.
    """

    schedule: Sequence[float]
    jitter: float = 0.2
    min_backoff: float = 5.0
    """Floor after a timeout or a 429: a struggling receiver gets at least this long."""
    max_retry_after: float = 3600.0
    """A ``Retry-After`` is honoured up to this many seconds, so a receiver cannot park us."""

    def __post_init__(self) -> None:
        schedule = tuple(float(delay) for delay in self.schedule)
        if any(not math.isfinite(delay) or delay < 0 for delay in schedule):
            raise ValueError("retry delays must be finite and >= 0 seconds")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be a fraction in [0, 1)")
        if self.min_backoff < 0 or self.max_retry_after < 0:
            raise ValueError("min_backoff and max_retry_after must be >= 0 seconds")
        object.__setattr__(self, "schedule", schedule)

    @property
    def max_attempts(self) -> int:
        """The immediate attempt plus one per scheduled retry."""
        return len(self.schedule) + 1

    def next_delay(
        self,
        attempts_made: int,
        rng: random.Random,
        *,
        status: int | None,
        retry_after: float | None,
        timed_out: bool,
    ) -> float | None:
        """Seconds to wait after the ``attempts_made``-th failed attempt; None when exhausted."""
        if attempts_made < 1:
            raise ValueError("attempts_made counts attempts already made; it starts at 1")
        if attempts_made > len(self.schedule):
            return None
        delay = self.schedule[attempts_made - 1]
        if self.jitter:
            delay *= 1 + rng.uniform(-self.jitter, self.jitter)
        if retry_after is not None and not math.isnan(retry_after):
            delay = max(delay, min(max(retry_after, 0.0), self.max_retry_after))
        if timed_out or status == 429:
            delay = max(delay, self.min_backoff)
        return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks us to wait: delta-seconds or an HTTP-date.

    Garbage gives None (the header is ignored); a negative delay or a past date gives 0.
    ``now`` must be timezone-aware.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if _DELTA_SECONDS.fullmatch(value):
        return max(float(value), 0.0)  # absurdly long values become inf, capped by the policy
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime dates carry no zone; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
