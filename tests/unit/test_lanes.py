"""A lane's rules as plain functions: what it takes, when it may send, when its breaker opens."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from hookhub.core.retry import Outcome
from hookhub.outbound.lanes import BREAKER_SAMPLE, MAX_LANE_BLOCK, Job, Lane
from hookhub.records.outbound import Endpoint


def endpoint(**given: Any) -> Endpoint:
    values: dict[str, Any] = {
        "id": 1,
        "url": "https://example.com/hook",
        "description": "",
        "event_types": ["*"],
        "headers": {},
        "auth": None,
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "batched": False,
        "enabled": True,
        "rate_limit": None,
        "max_concurrency": None,
        "failing_since": None,
        "created_at": datetime.now(UTC),
        "updated_at": datetime.now(UTC),
        **given,
    }
    names = {f.name for f in dataclasses.fields(Endpoint)}
    return Endpoint(**{name: values.get(name) for name in names})


def job(n: int) -> Job:
    return Job(n, f"msg_{n}", "contact.created", b"{}", 0.0, 0, lease_until=100.0)


def test_capacity_is_five_caps_and_batches_multiply_it() -> None:
    assert Lane(endpoint(), default_cap=4).capacity(batch_size=100) == 20
    assert Lane(endpoint(max_concurrency=2), default_cap=4).capacity(100) == 10
    assert Lane(endpoint(batched=True), default_cap=4).capacity(100) == 2000


def test_rate_limit_caps_what_a_lane_takes_to_what_its_lease_lets_start() -> None:
    lane = Lane(endpoint(rate_limit=2.0), default_cap=16, horizon=3.0)
    assert lane.capacity(1) == 6


def test_refill_room_is_a_count_worth_a_claim_of_its_own() -> None:
    lane = Lane(endpoint(), default_cap=4)  # capacity 20
    assert lane.refill_room(1, now=0.0) == 20
    lane.queue.extend(job(n) for n in range(12))  # room 8: at least two caps' worth
    assert lane.refill_room(1, now=0.0) == 8
    lane.queue.append(job(99))  # room 7: not worth a transaction
    assert lane.refill_room(1, now=0.0) == 0
    lane.queue.clear()
    lane.more_due = False
    assert lane.refill_room(1, now=0.0) == 0


def test_a_blocked_lane_wants_nothing() -> None:
    lane = Lane(endpoint(), default_cap=4, blocked_until=10.0)
    assert lane.blocked(5.0)
    assert lane.refill_room(1, now=5.0) == 0
    assert not lane.blocked(10.0)


def test_tokens_pace_a_rate_limited_lane() -> None:
    lane = Lane(endpoint(rate_limit=2.0), default_cap=4, tokens=1.0, refilled_at=0.0)
    assert lane.take_token(0.0) == 0.0
    assert lane.take_token(0.0) == 0.5  # the next token in half a second
    assert lane.take_token(0.5) == 0.0
    assert Lane(endpoint(), default_cap=4).take_token(0.0) == 0.0  # no limit


def test_breaker_opens_on_a_dead_endpoint_and_backs_off_doubling() -> None:
    lane = Lane(endpoint(), default_cap=4)
    for n in range(BREAKER_SAMPLE - 1):
        lane.observe(Outcome.FAILURE, None, started=float(n), now=float(n))
    assert not lane.blocked(9.0)
    lane.observe(Outcome.FAILURE, None, started=9.0, now=9.0)
    assert lane.blocked_until == 10.0  # open for a second
    for n in range(BREAKER_SAMPLE):
        lane.observe(Outcome.FAILURE, None, started=11.0 + n, now=11.0 + n)
    assert lane.blocked_until == 20.0 + 2.0  # open again: twice as long
    lane.observe(Outcome.SUCCESS, None, started=30.0, now=30.0)
    assert lane.backoff == 0.0
    assert not lane.blocked(30.0)


def test_breaker_ignores_a_flaky_endpoint() -> None:
    lane = Lane(endpoint(), default_cap=4)
    for n in range(40):
        outcome = Outcome.SUCCESS if n % 3 == 0 else Outcome.FAILURE
        lane.observe(outcome, None, started=float(n), now=float(n))
    assert not lane.blocked(40.0)


def test_results_of_attempts_started_before_the_breaker_opened_are_not_counted_twice() -> None:
    lane = Lane(endpoint(), default_cap=4)
    for _ in range(BREAKER_SAMPLE):
        lane.observe(Outcome.FAILURE, None, started=0.0, now=5.0)
    assert lane.blocked_until == 6.0
    for _ in range(BREAKER_SAMPLE):
        lane.observe(Outcome.FAILURE, None, started=1.0, now=7.0)  # sent before it opened
    assert lane.blocked_until == 6.0


def test_throttled_with_retry_after_blocks_for_that_long_within_bounds() -> None:
    lane = Lane(endpoint(), default_cap=4)
    lane.observe(Outcome.THROTTLED, 7.0, started=0.0, now=0.0)
    assert lane.blocked_until == 7.0
    lane.observe(Outcome.THROTTLED, 3600.0, started=1.0, now=1.0)
    assert lane.blocked_until == 1.0 + MAX_LANE_BLOCK


def test_stale_jobs_are_taken_out_and_only_those_well_within_their_lease_given_back() -> None:
    lane = Lane(endpoint(), default_cap=4)
    for n, lease_until in enumerate([10.5, 12.0, 14.0, 30.0]):
        lane.queue.append(dataclasses.replace(job(n), lease_until=lease_until))
    # At 10.0 with a 5 s margin, leases ending before 15.0 cannot cover an attempt.
    assert lane.take_stale(10.0, 5.0) == [1, 2]  # job 0 expires within a second: left to lapse
    assert [j.delivery_id for j in lane.queue] == [3]
    assert lane.take_queue() == [3]
    assert not lane.queue
