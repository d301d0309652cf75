"""One endpoint's share of a delivery worker: its queue, concurrency cap, rate limit and breaker.

Pure bookkeeping: a :class:`Lane` is told the time and the outcome of each attempt and answers
how much it may take, whether it may send now, and when it opens again. It must never touch
the database, the network or a clock of its own (the worker passes ``now``), so its rules are
tested as plain functions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hookhub.core.retry import Outcome
from hookhub.records.outbound import Endpoint

__all__ = ["BREAKER_RATE", "BREAKER_SAMPLE", "MAX_LANE_BLOCK", "Job", "Lane"]

MAX_LANE_BLOCK = 60.0
BREAKER_SAMPLE = 10
BREAKER_RATE = 0.8


@dataclass(slots=True)
class Job:
    delivery_id: int
    message_id: str
    event_type: str
    payload: bytes
    created_at: float
    attempt_count: int
    lease_until: float
    body: bytes | None = None
    """A transformed endpoint's body: stored at the first attempt, or rendered for it."""
    rendered: bool = False
    """The body was rendered for this attempt and is to be stored with its outcome."""
    contact_id: int | None = None
    """An ordered or collapsing endpoint's delivery: the contact whose next one waits for it."""


@dataclass
class Lane:
    """One endpoint's share of this worker: cap, rate limit, circuit breaker.

    The breaker opens when at least ``BREAKER_SAMPLE`` recent attempts failed at a rate of
    ``BREAKER_RATE`` or more (a dead or black-holed endpoint, not a flaky one). While open, the
    lane sends nothing and its deliveries go back to the queue, due when it closes; each time
    it opens again without a success in between, it stays open twice as long (up to a minute).
    Results of attempts started before the breaker opened are not counted twice.
    """

    endpoint: Endpoint
    default_cap: int
    queue: deque[Job] = field(default_factory=deque)
    in_flight: int = 0
    blocked_until: float = 0.0
    blocked_at: float = 0.0
    backoff: float = 0.0
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=BREAKER_SAMPLE * 2))
    tokens: float = 0.0
    refilled_at: float = 0.0
    horizon: float = 0.0
    """Seconds a claimed job may wait here and still be sent under its lease."""
    more_due: bool = True
    """Whether the queue may hold more due work for this endpoint than the lane last took."""
    base_headers: dict[str, str] = field(default_factory=dict)
    base_headers_of: Endpoint | None = None
    """The configuration ``base_headers`` was built from (rebuilt when the endpoint changes)."""

    @property
    def cap(self) -> int:
        return self.endpoint.max_concurrency or self.default_cap

    def capacity(self, batch_size: int) -> int:
        """Jobs the lane holds when full: its cap in flight and four times that queued behind."""
        per_send = batch_size if self.endpoint.batched else 1
        sends = 5 * self.cap
        rate = self.endpoint.rate_limit
        if rate and self.horizon:
            # Take no more than the rate lets start within the horizon: the rest would wait
            # past its lease and be claimed again.
            sends = min(sends, max(1, int(rate * self.horizon)))
        return sends * per_send

    def room(self, batch_size: int) -> int:
        per_send = batch_size if self.endpoint.batched else 1
        return max(0, self.capacity(batch_size) - self.in_flight * per_send - len(self.queue))

    def refill_room(self, batch_size: int, now: float) -> int:
        """How many jobs a claim of the lane's own should take: its room, when that is two
        caps' worth or more and more may be due; else 0 (no claim is worth a transaction).

        A busy lane asks while two caps' worth are still queued, so its slots keep sending
        while the claim runs instead of finishing and being started again, and each claim
        is a transaction of two caps' worth of rows rather than one.
        """
        if not self.more_due or self.blocked(now):
            return 0
        room = self.room(batch_size)
        return room if room * 5 >= 2 * self.capacity(batch_size) else 0

    def take_queue(self) -> list[int]:
        """Empty the queue; answers the delivery ids it held (to give back)."""
        ids = [job.delivery_id for job in self.queue]
        self.queue.clear()
        return ids

    def take_stale(self, now: float, margin: float) -> list[int]:
        """Take out queued jobs whose lease would end before an attempt started now could
        (within ``margin``): sending one could overlap the send of whoever claims it next.

        Answers those still well within their lease, to give back now; one about to expire
        (or expired) is left to fall due. Jobs queue in claim order, so their leases end in
        order too.
        """
        give_back: list[int] = []
        while self.queue and self.queue[0].lease_until < now + margin:
            job = self.queue.popleft()
            if job.lease_until > now + 1.0:
                give_back.append(job.delivery_id)
        return give_back

    def blocked(self, now: float) -> bool:
        return self.blocked_until > now

    def take_token(self, now: float) -> float:
        """0 when a send may start now, else seconds to wait (rate limit)."""
        rate = self.endpoint.rate_limit
        if not rate:
            return 0.0
        # The bucket holds a second's worth, but never less than the one token a send needs.
        self.tokens = min(max(rate, 1.0), self.tokens + (now - self.refilled_at) * rate)
        self.refilled_at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / rate

    def observe(
        self, outcome: Outcome, retry_after: float | None, started: float, now: float
    ) -> None:
        if outcome is Outcome.SUCCESS:
            self.recent.append(True)
            self.backoff = 0.0
            self.blocked_until = 0.0  # it answers: whatever blocked it is over
            return
        if outcome is Outcome.THROTTLED and retry_after is not None:
            self._open(now, min(max(retry_after, 1.0), MAX_LANE_BLOCK))
            return
        if started < self.blocked_at:
            return  # sent before the breaker opened: already accounted for
        self.recent.append(False)
        failures = self.recent.count(False)
        if outcome is Outcome.THROTTLED or (
            len(self.recent) >= BREAKER_SAMPLE and failures >= BREAKER_RATE * len(self.recent)
        ):
            self._open(now, min(max(1.0, self.backoff * 2), MAX_LANE_BLOCK))

    def _open(self, now: float, duration: float) -> None:
        self.backoff = duration
        self.blocked_at = now
        self.blocked_until = max(self.blocked_until, now + duration)
        self.recent.clear()
