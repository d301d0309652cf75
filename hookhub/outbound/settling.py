"""Settling attempts: what one attempt's result decides for each delivery it carried.

The worker sends; a :class:`Settler` turns the result into one :class:`DeliveryUpdate` per
delivery (succeeded, failed with its next attempt, or exhausted), tells the lane what it saw,
and hands the updates to the recorder, which writes them in batches. A body that cannot be
rendered fails its delivery once, without an attempt on the wire.

What this module must never do: write to the database itself (the recorder does), or decide a
retry for a delivery the retry policy says is exhausted.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

from hookhub.core.retry import Outcome, RetryPolicy, classify, parse_retry_after
from hookhub.metrics import Metrics
from hookhub.outbound.lanes import Job, Lane
from hookhub.outbound.recording import OutcomeRecorder, clean_text
from hookhub.outbound.transforms import TRANSFORM_FAILED, TransformFailed
from hookhub.outbound.transport import AttemptResult
from hookhub.store.deliveries import DeliveryUpdate

__all__ = ["Settler"]


class Settler:
    def __init__(
        self,
        recorder: OutcomeRecorder,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        metrics: Metrics | None = None,
    ) -> None:
        self.recorder = recorder
        self.policy = policy
        self.clock = clock
        self.rng = rng
        self.metrics = metrics

    def render_failed(self, lane: Lane, job: Job, exc: TransformFailed) -> None:
        """A body that cannot be rendered fails its delivery once: no retry would render it."""
        now = self.clock()
        update = DeliveryUpdate(
            delivery_id=job.delivery_id,
            status="exhausted",
            attempt_count=job.attempt_count + 1,
            next_attempt_at=None,
            status_code=None,
            attempted_at=now,
            duration_ms=0.0,
            error=TRANSFORM_FAILED,
            error_detail=clean_text(exc.message),
            response_body=None,
        )
        self.recorder.add(update, lane.endpoint.id, job, Outcome.FAILURE)
        self.recorder.wake()

    def settle(self, lane: Lane, jobs: list[Job], result: AttemptResult, started: float) -> None:
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
                error_detail=clean_text(result.error_detail),
                response_body=clean_text(result.response_body),
            )
            self.recorder.add(update, lane.endpoint.id, job, outcome)
        self.recorder.wake()
