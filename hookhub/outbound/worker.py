"""The delivery worker: claims due deliveries, signs and sends them, records every attempt.

Flow: wake (a commit in this process, a PostgreSQL NOTIFY, or the polling backstop) -> claim a
batch of due deliveries under a lease -> hand each to its endpoint's :class:`Lane` -> send with
a fresh Standard Webhooks signature over the stored bytes (a transformed endpoint's: rendered
at the first attempt, then stored) -> buffer the outcome -> record
outcomes in batches, in one transaction each, with the operational events they cause.

Isolation: each endpoint has a lane with its own concurrency cap, optional rate limit and
back-off. A lane holds at most five times its cap (a rate-limited one: what its rate lets start
under the lease); what it cannot take is given back to the queue unattempted, so one slow or
black-holed endpoint never holds the others' work, and no attempt starts that its lease
cannot cover.

Outages: a claim that fails because the database is away or busy is retried with backoff
(0.25 s doubling to 5 s) and the worker says so on its heartbeat; nothing it leased is lost (a
lease that cannot be given back expires) and outcomes wait in the recorder until they can be
written. Lanes live in ``lanes``, leases in ``leases``, request headers in ``request``, what
an attempt's result decides in ``settling``, recording in ``recording`` and endpoint health in
``endpoint_health``.

What this module must never do: write SQL (``hookhub.store.deliveries`` owns it), send a body
other than the stored bytes, or acknowledge a delivery whose lease it no longer holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from hookhub import __version__
from hookhub.config import Settings
from hookhub.core.retry import RetryPolicy
from hookhub.metrics import Metrics
from hookhub.outbound.endpoint_health import EndpointHealth
from hookhub.outbound.lanes import Job, Lane
from hookhub.outbound.leases import Leases, default_worker_id
from hookhub.outbound.outbox import Outbox
from hookhub.outbound.recording import OutcomeRecorder
from hookhub.outbound.request import batch_body, request_headers
from hookhub.outbound.settling import Settler
from hookhub.outbound.transforms import TransformFailed, job_body
from hookhub.outbound.transport import Transport
from hookhub.records.outbound import Endpoint
from hookhub.store.database import Database, is_transient
from hookhub.store.notify import NotificationListener
from hookhub.supervisor import Backoff, Heartbeat

__all__ = ["DeliveryWorker", "batch_body", "default_worker_id"]

log = logging.getLogger("hookhub.worker")

CLAIM_BATCH = 256
RELEASE_DELAY = 0.25


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
        self.heartbeat = Heartbeat()
        self.leases = Leases(db, settings, self.worker_id)
        self.health = EndpointHealth(settings.endpoint_disable_after, self._believed_failing)
        self.recorder = OutcomeRecorder(
            db,
            outbox,
            self.worker_id,
            self.health,
            clock=clock,
            metrics=metrics,
            heartbeat=self.heartbeat,
        )
        self.settler = Settler(
            self.recorder, self.policy, clock=clock, rng=self.rng, metrics=metrics
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._new_work = True
        self._listening = False
        self._sends: set[asyncio.Task[None]] = set()
        self._user_agent = f"hookhub/{__version__}"
        # An attempt started with less lease than this left could outlive the lease.
        self._lease_margin = min(settings.delivery_timeout, settings.lease_seconds / 2)
        self._listener: NotificationListener | None = None
        self._claim_backoff = Backoff(0.25, 5.0)

    def _believed_failing(self, endpoint_id: int) -> bool:
        lane = self.lanes.get(endpoint_id)
        return lane is not None and lane.endpoint.failing_since is not None

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
        """Deliver until :meth:`stop` is called; may be called again after it raised."""
        self._loop = asyncio.get_running_loop()
        self._stopped.clear()
        if not self._listening:
            self.outbox.add_listener(self.wake)
            self._listening = True
        self._start_listener()
        self.recorder.reopen()
        flusher = asyncio.create_task(self.recorder.run(), name="hookhub-flush")
        log.info("worker.started", extra={"worker_id": self.worker_id})
        try:
            loop = self._loop
            while not self._stopping:
                # Look across all endpoints when something new may be due (a commit, a
                # notification, the polling backstop for retries); otherwise a finished send
                # only tops up lanes that have room for a worthwhile claim of their own.
                everything = self._new_work
                self._new_work = False
                wait = await self._claim_or_back_off(everything)
                self.heartbeat.beat()
                if wait is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopped.wait(), wait)
                    continue
                timer = loop.call_later(self._next_wait(), self._wake_for_new_work)
                await self._wake.wait()
                timer.cancel()
                self._wake.clear()
        finally:
            await self._drain()
            self.recorder.finish()
            await flusher
            if self._listener is not None:
                self._listener.stop()
                self._listener = None
            await asyncio.to_thread(self.leases.release_all, self.clock())
            log.info("worker.stopped", extra={"worker_id": self.worker_id})

    async def _claim_or_back_off(self, everything: bool) -> float | None:
        """Claim and dispatch; when the database is away, answer how long to wait first."""
        try:
            await self._claim_and_dispatch(everything)
        except Exception as exc:
            if not is_transient(exc):
                raise  # a bug: the supervisor logs it and restarts the worker
            self._new_work = True  # whatever was due still is
            return self.heartbeat.retry_later(
                "claim", exc, self._claim_backoff, log, "worker.claim_failed"
            )
        self._claim_backoff.reset()
        self.heartbeat.recovered("claim")
        return None

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    async def _drain(self) -> None:
        """Give back what was not started; let in-flight attempts finish within a bound."""
        queued = [(lane, job) for lane in self.lanes.values() for job in lane.queue]
        for lane in self.lanes.values():
            lane.queue.clear()
        if queued:
            now = self.clock()
            ids = [job.delivery_id for _, job in queued]
            await asyncio.to_thread(self.leases.release, ids, now)
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
                if (room := lane.refill_room(batch, now))
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
            jobs, taken = await asyncio.to_thread(self.leases.claim, now, refills, limit, rooms)
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
                lane.refill_room(batch, now) for lane in self.lanes.values()
            ):
                break

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
            await asyncio.to_thread(self.leases.release, ids, when)

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
        if ids := lane.take_queue():
            self._give_back(ids, lane.blocked_until)

    def _drop_stale(self, lane: Lane, now: float) -> None:
        if ids := lane.take_stale(now, self._lease_margin):
            self._give_back(ids, now)

    def _give_back(self, ids: list[int], when: float) -> None:
        self._track(asyncio.create_task(asyncio.to_thread(self.leases.release, ids, when)))

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
                if lane.refill_room(self.settings.batch_max_messages, now) or not lane.queue:
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
                if endpoint.transform is not None:
                    try:
                        body = job_body(endpoint.transform, jobs[0])
                    except TransformFailed as exc:
                        self.settler.render_failed(lane, jobs[0], exc)
                        return
            started = self.clock()
            headers = request_headers(lane, msg_id, body, started, self._user_agent)
            result = await self.transport.post(
                endpoint.url, body, headers, self.settings.delivery_timeout
            )
            self.settler.settle(lane, jobs, result, started)
        except Exception:  # a bug must not lose the deliveries: their lease will expire
            log.exception("worker.send_failed", extra={"webhook_id": endpoint.id})
