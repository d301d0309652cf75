"""The delivery worker: claims due deliveries, signs and sends them, records every attempt.

Flow: wake (a commit in this process, a PostgreSQL NOTIFY, or the polling backstop) -> claim a
batch of due deliveries under a lease -> hand each to its endpoint's :class:`Lane` -> send with
a fresh Standard Webhooks signature over the stored bytes -> buffer the outcome -> record
outcomes in batches, in one transaction each, with the operational events they cause.

Isolation: each endpoint has a lane with its own concurrency cap, optional rate limit and
back-off. A lane holds at most five times its cap (a rate-limited one: what its rate lets start
under the lease); what it cannot take is given back to the queue unattempted, so one slow or
black-holed endpoint never holds the others' work, and no attempt starts that its lease
cannot cover.

What this module must never do: write SQL (``hookhub.store.deliveries`` owns it), send a body
other than the stored bytes, or acknowledge a delivery whose lease it no longer holds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import random
import socket
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from hookhub import __version__
from hookhub.config import Settings
from hookhub.core import jsoncodec, signing
from hookhub.core.retry import Outcome, RetryPolicy, classify, parse_retry_after
from hookhub.core.urlguard import redact_url
from hookhub.metrics import Metrics
from hookhub.outbound.outbox import Outbox, OutboxWriter
from hookhub.outbound.transport import AttemptResult, Transport
from hookhub.records.outbound import Endpoint
from hookhub.store.database import Database
from hookhub.store.deliveries import ClaimedDelivery, DeliveryStore, DeliveryUpdate
from hookhub.store.endpoints import EndpointStore
from hookhub.store.notify import NotificationListener

log = logging.getLogger("hookhub.worker")

CLAIM_BATCH = 256
FLUSH_BATCH = 512
FLUSH_GATHER = 0.02
RELEASE_DELAY = 0.25
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


@dataclass(slots=True)
class EndpointEffect:
    """What this flush learned about an endpoint."""

    succeeded: bool = False
    failed_at: float | None = None
    gone: bool = False


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

    def wants_refill(self, batch_size: int, now: float) -> int:
        """Room worth a claim of its own: two caps' worth, when more may be due.

        A busy lane asks while two caps' worth are still queued, so its slots keep sending
        while the claim runs instead of finishing and being started again, and each claim
        is a transaction of two caps' worth of rows rather than one.
        """
        if not self.more_due or self.blocked(now):
            return 0
        room = self.room(batch_size)
        return room if room * 5 >= 2 * self.capacity(batch_size) else 0

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


def default_worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{os.urandom(3).hex()}"


def batch_body(jobs: list[Job]) -> tuple[str, bytes]:
    """The id and body of a batch: the same for the same members, on every attempt."""
    digest = hashlib.sha256(",".join(j.message_id for j in jobs).encode()).digest()
    batch_id = "msg_batch_" + base64.b32encode(digest[:15]).decode().lower()
    stamp = jsoncodec.isoformat(datetime.fromtimestamp(min(j.created_at for j in jobs), UTC))
    body = b"".join(
        [
            b'{"type":"batch","timestamp":"',
            stamp.encode(),
            b'","data":[',
            b",".join(j.payload for j in jobs),
            b"]}",
        ]
    )
    return batch_id, body


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        settings: Settings,
        transport: Transport,
        *,
        metrics: Metrics | None = None,
        worker_id: str | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.settings = settings
        self.transport = transport
        self.metrics = metrics
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.rng = rng or random.Random()
        self.policy = RetryPolicy(
            settings.retry_schedule,
            jitter=settings.retry_jitter,
            min_backoff=settings.retry_min_backoff,
        )
        self.lanes: dict[int, Lane] = {}
        self._updates: list[tuple[DeliveryUpdate, int, Job, Outcome]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._flush_wake = asyncio.Event()
        self._stopping = False
        self._new_work = True
        self._flushing_done = False
        self._failing: set[int] = set()  # endpoints this worker has recorded as failing
        self._sends: set[asyncio.Task[None]] = set()
        self._attempt_counters: dict[Outcome, Any] = {}  # labelled children, looked up once
        self._user_agent = f"hookhub/{__version__}"
        # An attempt started with less lease than this left could outlive the lease.
        self._lease_margin = min(settings.delivery_timeout, settings.lease_seconds / 2)
        self._listener: NotificationListener | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def wake(self, *_args: Any) -> None:
        """Thread-safe: new work may be due now (a commit here, or a notification)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake_for_new_work)

    def _wake_for_new_work(self) -> None:
        self._new_work = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until :meth:`stop` is called."""
        self._loop = asyncio.get_running_loop()
        self.outbox.add_listener(self.wake)
        self._start_listener()
        flusher = asyncio.create_task(self._flush_loop(), name="hookhub-flush")
        log.info("worker.started", extra={"worker_id": self.worker_id})
        try:
            loop = self._loop
            while not self._stopping:
                # Look across all endpoints when something new may be due (a commit, a
                # notification, the polling backstop for retries); otherwise a finished send
                # only tops up lanes that have room for a worthwhile claim of their own.
                everything = self._new_work
                self._new_work = False
                await self._claim_and_dispatch(everything)
                timer = loop.call_later(self._next_wait(), self._wake_for_new_work)
                await self._wake.wait()
                timer.cancel()
                self._wake.clear()
        finally:
            await self._drain()
            self._flushing_done = True
            self._flush_wake.set()
            await flusher
            if self._listener is not None:
                self._listener.stop()
            await asyncio.to_thread(self._release_all)
            log.info("worker.stopped", extra={"worker_id": self.worker_id})

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _drain(self) -> None:
        """Give back what was not started; let in-flight attempts finish within a bound."""
        queued = [(lane, job) for lane in self.lanes.values() for job in lane.queue]
        for lane in self.lanes.values():
            lane.queue.clear()
        if queued:
            now = self.clock()
            await asyncio.to_thread(self._release, [job.delivery_id for _, job in queued], now)
        if self._sends:
            bound = self.settings.delivery_timeout + 2
            _done, pending = await asyncio.wait(self._sends, timeout=bound)
            for task in pending:
                task.cancel()

    def _next_wait(self) -> float:
        wait = self.settings.poll_interval
        now = self.clock()
        for lane in self.lanes.values():
            if lane.queue and lane.blocked_until > now:
                wait = min(wait, lane.blocked_until - now)
        return max(wait, 0.001)

    def _start_listener(self) -> None:
        if self.db.backend != "postgresql":
            return
        from hookhub.outbound.fanout import NOTIFY_CHANNEL

        self._listener = NotificationListener(
            self.db.url, {NOTIFY_CHANNEL: self.wake}, on_reconnect=self.wake
        )
        self._listener.start()

    # -- claiming --------------------------------------------------------------------------

    async def _claim_and_dispatch(self, everything: bool) -> None:
        batch = self.settings.batch_max_messages
        capacity = self.settings.worker_concurrency * 2
        while not self._stopping:
            load = sum(lane.in_flight + len(lane.queue) for lane in self.lanes.values())
            free = capacity - load
            now = self.clock()
            refills = {
                eid: min(room, free)
                for eid, lane in self.lanes.items()
                if (room := lane.wants_refill(batch, now))
            }
            if free <= 0 or not (everything or refills):
                # Full of queued work (e.g. waiting for rate tokens): it must still be started.
                self._pump()
                break
            # Claim no more for a lane than it takes: the rest would only be given back.
            rooms = {
                eid: lane.room(batch)
                for eid, lane in self.lanes.items()
                if not lane.blocked(now) and eid not in refills
            }
            limit = min(free, CLAIM_BATCH) if everything else 0
            jobs, taken = await asyncio.to_thread(self._claim, now, refills, limit, rooms)
            for eid, lane in self.lanes.items():
                if eid in refills:
                    lane.more_due = taken.get(eid, 0) >= refills[eid]
                elif eid in rooms and everything:
                    # Full lanes were left out: what is due for them is still waiting.
                    lane.more_due = rooms[eid] == 0 or taken.get(eid, 0) >= rooms[eid]
            if jobs:
                await self._dispatch(jobs)
            self._pump()
            # Another round only while claims came back full: more may be due right now.
            everything = (
                everything and sum(n for eid, n in taken.items() if eid not in refills) >= limit > 0
            )
            if not everything and not any(
                lane.wants_refill(batch, now) for lane in self.lanes.values()
            ):
                break

    def _claim(
        self, now: float, refills: dict[int, int], limit: int, rooms: dict[int, int]
    ) -> tuple[list[tuple[Endpoint, Job]], dict[int, int]]:
        """Per-lane top-ups, then (with a limit) a claim across endpoints; one transaction."""
        lease_until = now + self.settings.lease_seconds
        owner = self.worker_id
        with self.db.write() as conn:
            store = DeliveryStore(conn)
            claimed = []
            for endpoint_id, room in refills.items():
                claimed += store.claim_for_endpoint(
                    endpoint_id=endpoint_id,
                    now=now,
                    lease_until=lease_until,
                    owner=owner,
                    limit=room,
                )
            if limit:
                busy = [eid for eid, left in rooms.items() if left == 0] + list(refills)
                claimed += store.claim_due(
                    now=now,
                    lease_until=lease_until,
                    owner=owner,
                    limit=limit,
                    exclude_endpoints=busy,
                    room=rooms,
                )
            if not claimed:
                return [], {}
            taken = Counter(c.endpoint_id for c in claimed)
            endpoints = EndpointStore(conn).get_many(list(taken))
            for endpoint in endpoints.values():
                if endpoint.batched:  # fill the batch with fresh messages not yet due
                    room = self.settings.batch_max_messages - taken[endpoint.id]
                    if room > 0:
                        claimed += store.claim_fresh(
                            endpoint_id=endpoint.id,
                            horizon=now + self.settings.batch_window,
                            lease_until=lease_until,
                            owner=owner,
                            limit=room,
                        )
            payloads = store.payloads([c.message_id for c in claimed])
        jobs = [
            (endpoints[c.endpoint_id], self._job(c, payloads, lease_until))
            for c in claimed
            if c.endpoint_id in endpoints and c.message_id in payloads
        ]
        return jobs, dict(taken)

    @staticmethod
    def _job(
        claimed: ClaimedDelivery, payloads: dict[str, tuple[str, bytes, float]], lease_until: float
    ) -> Job:
        event_type, payload, created_at = payloads[claimed.message_id]
        return Job(
            delivery_id=claimed.id,
            message_id=claimed.message_id,
            event_type=event_type,
            payload=payload,
            created_at=created_at,
            attempt_count=claimed.attempt_count,
            lease_until=lease_until,
        )

    async def _dispatch(self, jobs: list[tuple[Endpoint, Job]]) -> None:
        now = self.clock()
        give_back: dict[float, list[int]] = {}
        for endpoint, job in jobs:
            lane = self.lanes.get(endpoint.id)
            if lane is None:
                lane = self.lanes[endpoint.id] = Lane(
                    endpoint,
                    self.settings.endpoint_concurrency,
                    horizon=self.settings.lease_seconds - self._lease_margin,
                )
                lane.refilled_at = now
                lane.tokens = min(1.0, endpoint.rate_limit or 0.0)
            lane.endpoint = endpoint  # the newest configuration (secret, url, headers)
            if lane.blocked(now) or lane.room(self.settings.batch_max_messages) <= 0:
                when = lane.blocked_until if lane.blocked(now) else now + RELEASE_DELAY
                give_back.setdefault(round(when, 3), []).append(job.delivery_id)
            else:
                lane.queue.append(job)
        for when, ids in give_back.items():
            await asyncio.to_thread(self._release, ids, when)

    def _release(self, ids: list[int], when: float) -> None:
        with self.db.write() as conn:
            DeliveryStore(conn).release(ids, owner=self.worker_id, next_attempt_at=when)

    def _release_all(self) -> None:
        with self.db.write() as conn:
            released = DeliveryStore(conn).release_owner(
                self.worker_id, next_attempt_at=self.clock()
            )
        if released:
            log.info("worker.released", extra={"worker_id": self.worker_id, "count": released})

    # -- sending ---------------------------------------------------------------------------

    def _pump(self) -> None:
        """Start as many sends as lanes allow."""
        now = self.clock()
        for lane in self.lanes.values():
            self._pump_lane(lane, now)

    def _pump_lane(self, lane: Lane, now: float) -> None:
        """Open send slots (tasks) up to the lane's cap while it has work that may start."""
        if lane.blocked(now):
            self._give_back_queue(lane)
            return
        while lane.in_flight < lane.cap:
            group = self._next_group(lane, now)
            if group is None:
                return
            lane.in_flight += 1
            self._track(asyncio.create_task(self._send_slot(lane, group)))

    def _next_group(self, lane: Lane, now: float) -> list[Job] | None:
        """The next jobs one send may carry now, or None (empty, blocked or rate-limited)."""
        if lane.blocked(now):
            self._give_back_queue(lane)
            return None
        self._drop_stale(lane, now)
        if not lane.queue:
            return None
        wait = lane.take_token(now)
        if wait > 0:
            self._loop_call_later(wait)
            return None
        per_send = self.settings.batch_max_messages if lane.endpoint.batched else 1
        return [lane.queue.popleft() for _ in range(min(per_send, len(lane.queue)))]

    def _give_back_queue(self, lane: Lane) -> None:
        """A blocked lane's queued jobs go back, due when the lane opens again."""
        if lane.queue:
            ids = [job.delivery_id for job in lane.queue]
            lane.queue.clear()
            self._track(
                asyncio.create_task(asyncio.to_thread(self._release, ids, lane.blocked_until))
            )

    def _drop_stale(self, lane: Lane, now: float) -> None:
        """Take out queued jobs whose lease would end before an attempt started now could.

        Sending one could overlap the send of whoever claims it next. One still well within
        its lease is given back now; one about to expire (or expired) is left to fall due.
        Jobs queue in claim order, so their leases end in order too.
        """
        give_back: list[int] = []
        while lane.queue and lane.queue[0].lease_until < now + self._lease_margin:
            job = lane.queue.popleft()
            if job.lease_until > now + 1.0:
                give_back.append(job.delivery_id)
        if give_back:
            self._track(asyncio.create_task(asyncio.to_thread(self._release, give_back, now)))

    def _loop_call_later(self, delay: float) -> None:
        if self._loop is not None:
            self._loop.call_later(delay, self._wake.set)

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send_slot(self, lane: Lane, jobs: list[Job]) -> None:
        """One of the lane's concurrent slots: sends, then takes the lane's next queued work.

        A slot lives as long as its lane has work it may start, so a busy lane costs one task
        per slot, not one per delivery. The claim loop is woken only when the lane has emptied
        enough for a claim of its own to be worth a transaction.
        """
        metrics = self.metrics
        if metrics:
            metrics.deliveries_in_flight.inc()
        group: list[Job] | None = jobs
        try:
            while group is not None:
                await self._send(lane, group)
                now = self.clock()
                keep = not self._stopping and lane.in_flight <= lane.cap
                group = self._next_group(lane, now) if keep else None
                if group is None:
                    lane.in_flight -= 1  # this slot ends; the lane's room counts it free
                if lane.wants_refill(self.settings.batch_max_messages, now) or not lane.queue:
                    self._wake.set()
        finally:
            if group is not None:  # cancelled mid-send
                lane.in_flight -= 1
            if metrics:
                metrics.deliveries_in_flight.dec()

    async def _send(self, lane: Lane, jobs: list[Job]) -> None:
        endpoint = lane.endpoint
        try:
            if endpoint.batched:
                msg_id, body = batch_body(jobs)
            else:
                msg_id, body = jobs[0].message_id, jobs[0].payload
            started = self.clock()
            headers = self._headers(lane, msg_id, body, started)
            result = await self.transport.post(
                endpoint.url, body, headers, self.settings.delivery_timeout
            )
            self._settle(lane, jobs, result, started)
        except Exception:  # a bug must not lose the deliveries: their lease will expire
            log.exception("worker.send_failed", extra={"webhook_id": endpoint.id})

    def _headers(self, lane: Lane, msg_id: str, body: bytes, now: float) -> dict[str, str]:
        endpoint = lane.endpoint
        if lane.base_headers_of is not endpoint:
            lane.base_headers = self._base_headers(endpoint)
            lane.base_headers_of = endpoint
        headers = lane.base_headers.copy()
        headers.update(signing.headers(endpoint.signing_secrets(now), msg_id, int(now), body))
        return headers

    def _base_headers(self, endpoint: Endpoint) -> dict[str, str]:
        """What every request to ``endpoint`` carries, built once per configuration."""
        # Custom headers keep the letter case they were configured with: some receivers
        # compare names exactly. One of them replaces the default of the same name.
        headers = {"accept-encoding": "identity"}
        for name, value in endpoint.headers.items():
            headers.pop(name.lower(), None)
            headers[name] = value
        headers["content-type"] = "application/json"
        headers["user-agent"] = self._user_agent
        auth = endpoint.auth
        if auth is not None and auth["type"] == "bearer":
            headers["authorization"] = f"Bearer {auth['token']}"
        elif auth is not None and auth["type"] == "basic":
            pair = f"{auth['username']}:{auth['password']}".encode()
            headers["authorization"] = "Basic " + base64.b64encode(pair).decode()
        return headers

    def _settle(self, lane: Lane, jobs: list[Job], result: AttemptResult, started: float) -> None:
        now = self.clock()
        outcome = classify(result.status_code, result.error)
        retry_after = None
        if result.retry_after is not None:
            retry_after = parse_retry_after(result.retry_after, datetime.fromtimestamp(now, UTC))
        lane.observe(outcome, retry_after, started, now)
        if self.metrics:
            self.metrics.delivery_latency.observe(result.duration_ms / 1000)
        for job in jobs:
            attempts = job.attempt_count + 1
            if outcome is Outcome.SUCCESS:
                status, next_at = "succeeded", None
            else:
                delay = self.policy.next_delay(
                    attempts,
                    self.rng,
                    status=result.status_code,
                    retry_after=retry_after,
                    timed_out=result.error == "timeout",
                )
                status, next_at = ("exhausted", None) if delay is None else ("failed", now + delay)
            update = DeliveryUpdate(
                delivery_id=job.delivery_id,
                status=status,
                attempt_count=attempts,
                next_attempt_at=next_at,
                status_code=result.status_code,
                attempted_at=started,
                duration_ms=result.duration_ms,
                error=result.error,
                error_detail=result.error_detail,
                response_body=result.response_body,
            )
            self._updates.append((update, lane.endpoint.id, job, outcome))
        self._flush_wake.set()

    # -- recording -------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        """Group commit: each flush records everything that finished while the last one ran."""
        while not (self._flushing_done and not self._updates):
            await self._flush_wake.wait()
            if len(self._updates) < FLUSH_BATCH // 4 and not self._flushing_done:
                # Nobody waits on an outcome (the attempt has happened; its lease runs for
                # tens of seconds), so let a little more gather: fewer, larger transactions.
                await asyncio.sleep(FLUSH_GATHER)
            self._flush_wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        while self._updates:
            batch, self._updates = self._updates[:FLUSH_BATCH], self._updates[FLUSH_BATCH:]
            if self.metrics:
                self._count_attempts(batch)
            try:
                await asyncio.to_thread(self._record, batch)
            except Exception:
                # The leases are still ours until they expire; the attempts are lost from the
                # log but the deliveries are not: they will be retried.
                log.exception("worker.record_failed", extra={"count": len(batch)})
                await asyncio.sleep(0.5)

    def _count_attempts(self, batch: list[tuple[DeliveryUpdate, int, Job, Outcome]]) -> None:
        """Attempts by outcome, counted once a batch instead of once a send."""
        assert self.metrics is not None
        for outcome, count in Counter(outcome for *_, outcome in batch).items():
            counter = self._attempt_counters.get(outcome)
            if counter is None:
                counter = self.metrics.delivery_attempts.labels(outcome=outcome.value)
                self._attempt_counters[outcome] = counter
            counter.inc(count)

    def _record(self, batch: list[tuple[DeliveryUpdate, int, Job, Outcome]]) -> None:
        now = self.clock()
        effects: dict[int, EndpointEffect] = {}
        for update, endpoint_id, _job, outcome in batch:
            effect = effects.setdefault(endpoint_id, EndpointEffect())
            if outcome is Outcome.SUCCESS:
                effect.succeeded, effect.failed_at = True, None
            else:
                effect.failed_at = effect.failed_at or update.attempted_at
                effect.gone = effect.gone or outcome is Outcome.GONE
        with self.db.write() as conn:
            owned = DeliveryStore(conn).record(
                [u for u, *_ in batch], owner=self.worker_id, now=now
            )
            writer = self.outbox.writer(conn)
            occurred = datetime.fromtimestamp(now, UTC)
            for update, endpoint_id, job, _outcome in batch:
                if update.status == "exhausted" and update.delivery_id in owned:
                    writer.emit(
                        "delivery.exhausted",
                        {
                            "webhook_id": endpoint_id,
                            "delivery_id": update.delivery_id,
                            "message_id": job.message_id,
                            "event_type": job.event_type,
                            "attempts": update.attempt_count,
                        },
                        occurred,
                        about_endpoint=endpoint_id,
                    )
            self._apply_effects(conn, effects, writer, now, occurred)

    def _apply_effects(
        self,
        conn: Connection,
        effects: dict[int, EndpointEffect],
        writer: OutboxWriter,
        now: float,
        occurred: datetime,
    ) -> None:
        store = EndpointStore(conn)
        for endpoint_id, effect in effects.items():
            reason: str | None = None
            if effect.gone:
                reason = "the endpoint answered 410 Gone"
            elif effect.failed_at is None:
                # Healthy endpoints are the common case: write only when a streak ends.
                lane = self.lanes.get(endpoint_id)
                believed = lane is not None and lane.endpoint.failing_since is not None
                if believed or endpoint_id in self._failing:
                    store.set_failing(endpoint_id, None)
                    self._failing.discard(endpoint_id)
                continue
            else:
                store.set_failing(endpoint_id, effect.failed_at)
                self._failing.add(endpoint_id)
                endpoint = store.get(endpoint_id)
                since = endpoint.failing_since if endpoint else None
                if since is not None and now - since >= self.settings.endpoint_disable_after:
                    reason = "failing since " + jsoncodec.isoformat(
                        datetime.fromtimestamp(since, UTC)
                    )
            if reason is not None and store.disable(endpoint_id, reason):
                endpoint = store.get(endpoint_id)
                log.warning("webhook.disabled", extra={"webhook_id": endpoint_id, "reason": reason})
                writer.emit(
                    "webhook.disabled",
                    {
                        "webhook_id": endpoint_id,
                        "url": redact_url(endpoint.url) if endpoint else None,
                        "reason": reason,
                    },
                    occurred,
                    about_endpoint=endpoint_id,
                )
