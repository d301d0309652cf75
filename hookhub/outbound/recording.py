"""Recording delivery outcomes: group commits of attempts, acknowledgements and their events.

Each flush records everything that finished while the last one ran, in one transaction with
the operational events it causes (``delivery.exhausted``, ``webhook.disabled``). Two ways a
flush can fail, handled apart:

- the database is away or busy (a restart, ``database is locked``): the outcomes are kept and
  written again with backoff, in order, never twice;
- a row the database refuses (a data error): the batch is halved until the bad row stands
  alone, so it never fails the others' acknowledgements; that row is then written without its
  response body, and dropped (its lease expires and the delivery is retried) only if even that
  fails.

Response text is cleaned before it is queued: PostgreSQL refuses NUL in text, and strings
that do not encode as UTF-8 cannot be stored on either backend.

What this module must never do: acknowledge a delivery whose lease is no longer ours (the
store checks the owner), or record one outcome twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hookhub.core.retry import Outcome
from hookhub.logs import describe_error
from hookhub.metrics import Metrics
from hookhub.outbound.endpoint_health import EndpointEffect, EndpointHealth
from hookhub.outbound.lanes import Job
from hookhub.outbound.outbox import Outbox
from hookhub.outbound.transforms import TRANSFORM_FAILED
from hookhub.store.database import Database, is_transient
from hookhub.store.deliveries import DeliveryStore, DeliveryUpdate
from hookhub.store.delivery_bodies import store_bodies
from hookhub.store.delivery_keys import DeliveryKeys
from hookhub.supervisor import Backoff, Heartbeat

__all__ = ["FLUSH_BATCH", "OutcomeRecorder", "Pending", "clean_text"]

log = logging.getLogger("hookhub.worker")

FLUSH_BATCH = 512
FLUSH_GATHER = 0.02
GIVE_UP_WHEN_STOPPING = 3
"""Flushes tried while stopping with the database away; then the leases are left to expire."""

Pending = tuple[DeliveryUpdate, int, Job, Outcome]
"""An outcome waiting to be recorded: the update, its endpoint id, the job, the outcome."""
_FINAL = frozenset({"succeeded", "exhausted"})
"""Statuses after which an ordered contact's next delivery may go."""


def clean_text(value: str | None) -> str | None:
    """``value`` as text both databases store: NUL replaced, invalid code points replaced."""
    if value is None or (value.isascii() and "\x00" not in value):
        return value
    value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


class OutcomeRecorder:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        owner: str,
        health: EndpointHealth,
        *,
        clock: Callable[[], float],
        metrics: Metrics | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.owner = owner
        self.health = health
        self.clock = clock
        self.metrics = metrics
        self.heartbeat = heartbeat
        self._pending: list[Pending] = []
        self._wake = asyncio.Event()
        self._finishing = False
        self._finished = asyncio.Event()
        self._backoff = Backoff(0.25, 5.0)
        self._attempt_counters: dict[Outcome, Any] = {}  # labelled children, looked up once

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, update: DeliveryUpdate, endpoint_id: int, job: Job, outcome: Outcome) -> None:
        self._pending.append((update, endpoint_id, job, outcome))

    def wake(self) -> None:
        self._wake.set()

    def reopen(self) -> None:
        """Make a finished recorder ready to :meth:`run` again (its worker restarts)."""
        self._finishing = False
        self._finished.clear()

    def finish(self) -> None:
        """Record what is pending, then let :meth:`run` return."""
        self._finishing = True
        self._finished.set()
        self._wake.set()

    async def run(self) -> None:
        """Group commit: each flush records everything that finished while the last one ran.

        Returns once :meth:`finish` was called and nothing is pending; call :meth:`reopen`
        before running it again.
        """
        failures_while_stopping = 0
        while not (self._finishing and not self._pending):
            await self._wake.wait()
            if len(self._pending) < FLUSH_BATCH // 4 and not self._finishing:
                # Nobody waits on an outcome (the attempt has happened; its lease runs for
                # tens of seconds), so let a little more gather: fewer, larger transactions.
                await asyncio.sleep(FLUSH_GATHER)
            self._wake.clear()
            if await self._flush():
                continue
            if self._finishing:
                failures_while_stopping += 1
                if failures_while_stopping >= GIVE_UP_WHEN_STOPPING:
                    log.warning("worker.record_abandoned", extra={"count": len(self._pending)})
                    self._pending.clear()
                    if self.heartbeat is not None:  # nothing is waiting to be retried
                        self.heartbeat.recovered("record")
                    break
            with contextlib.suppress(TimeoutError):  # stopping cuts the wait short
                await asyncio.wait_for(self._finished.wait(), self._backoff.next())
            self._wake.set()

    async def _flush(self) -> bool:
        """Record everything pending; False when the database is away (the rest is kept)."""
        while self._pending:
            batch, self._pending = self._pending[:FLUSH_BATCH], self._pending[FLUSH_BATCH:]
            try:
                left, error = await asyncio.to_thread(self._write, batch)
            except Exception:  # a bug: the leases are still ours until they expire
                log.exception("worker.record_failed", extra={"count": len(batch)})
                continue
            if self.metrics:
                self._count_attempts(batch[: len(batch) - len(left)])
            if error is not None:
                self._pending[:0] = left
                if self.heartbeat is not None:
                    self.heartbeat.failing("record", error)
                log.warning(
                    "worker.record_retrying",
                    extra={"count": len(self._pending), "error": describe_error(error)},
                )
                return False
            self._backoff.reset()
            if self.heartbeat is not None:
                self.heartbeat.recovered("record")
        return True

    def _write(self, batch: list[Pending]) -> tuple[list[Pending], Exception | None]:
        """Record ``batch``; answers what is left (in order) when the database went away."""
        todo = [batch]
        while todo:
            part = todo.pop(0)
            try:
                self._record(part)
                continue
            except Exception as exc:
                if is_transient(exc):
                    return [p for chunk in [part, *todo] for p in chunk], exc
                refused = exc
            if len(part) > 1:
                middle = len(part) // 2
                todo[:0] = [part[:middle], part[middle:]]
                continue
            update, endpoint_id, job, outcome = part[0]
            bare = replace(update, response_body=None, error_detail=None)
            log.warning(
                "worker.record_refused",
                extra={"delivery_id": update.delivery_id, "error": describe_error(refused)},
            )
            try:
                self._record([(bare, endpoint_id, job, outcome)])
            except Exception as exc:
                if is_transient(exc):
                    return [p for chunk in [part, *todo] for p in chunk], exc
                log.error(
                    "worker.record_dropped",
                    extra={"delivery_id": update.delivery_id, "error": describe_error(exc)},
                )
        return [], None

    def _count_attempts(self, batch: list[Pending]) -> None:
        """Attempts by outcome, counted once a batch instead of once a send."""
        assert self.metrics is not None
        for outcome, count in Counter(outcome for *_, outcome in batch).items():
            counter = self._attempt_counters.get(outcome)
            if counter is None:
                counter = self.metrics.delivery_attempts.labels(outcome=outcome.value)
                self._attempt_counters[outcome] = counter
            counter.inc(count)

    def _record(self, batch: list[Pending]) -> None:
        now = self.clock()
        effects: dict[int, EndpointEffect] = {}
        for update, endpoint_id, _job, outcome in batch:
            if update.error == TRANSFORM_FAILED:  # the template's fault, not the endpoint's
                continue
            effect = effects.setdefault(endpoint_id, EndpointEffect())
            if outcome is Outcome.SUCCESS:
                effect.succeeded, effect.failed_at = True, None
            else:
                effect.failed_at = effect.failed_at or update.attempted_at
                effect.gone = effect.gone or outcome is Outcome.GONE
        # Ordered endpoints: a contact's finished delivery lets its next one go.
        finished = [
            (endpoint_id, job.contact_id)
            for update, endpoint_id, job, _ in batch
            if job.contact_id is not None and update.status in _FINAL
        ]
        with self.db.write() as conn:
            keys = DeliveryKeys(conn) if finished else None
            if keys is not None:
                keys.lock(finished)
            owned = DeliveryStore(conn).record([u for u, *_ in batch], owner=self.owner, now=now)
            if keys is not None:
                keys.promote(
                    [
                        (endpoint_id, job.contact_id)
                        for update, endpoint_id, job, _ in batch
                        if job.contact_id is not None
                        and update.status in _FINAL
                        and update.delivery_id in owned
                    ],
                    now,
                )
            rendered = [
                (u.delivery_id, job.body)
                for u, _, job, _ in batch
                if job.rendered and job.body is not None and u.delivery_id in owned
            ]
            if rendered:
                store_bodies(conn, rendered)
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
            self.health.apply(conn, effects, writer, now, occurred)
