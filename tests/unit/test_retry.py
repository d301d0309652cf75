"""Retry decisions: the schedule with jitter, Retry-After, backoff floors, outcome classes."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hookhub.config import DEFAULT_RETRY_SCHEDULE
from hookhub.core.retry import Outcome, RetryPolicy, classify, parse_retry_after

NOW = datetime(2024, 11, 6, 8, 49, 37, tzinfo=UTC)


def delay(
    policy: RetryPolicy,
    attempts: int,
    rng: random.Random | None = None,
    *,
    status: int | None = 500,
    retry_after: float | None = None,
    timed_out: bool = False,
) -> float | None:
    return policy.next_delay(
        attempts,
        rng or random.Random(0),
        status=status,
        retry_after=retry_after,
        timed_out=timed_out,
    )


def test_default_schedule_with_jitter_stays_within_twenty_percent() -> None:
    policy = RetryPolicy(DEFAULT_RETRY_SCHEDULE)
    rng = random.Random(1234)
    assert policy.max_attempts == 8
    for n, scheduled in enumerate(DEFAULT_RETRY_SCHEDULE, start=1):
        for _ in range(200):
            got = delay(policy, n, rng)
            assert got is not None
            assert scheduled * 0.8 <= got <= scheduled * 1.2


def test_jitter_actually_spreads_and_is_reproducible_with_a_seed() -> None:
    policy = RetryPolicy([300.0], jitter=0.2)

    def draws(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [d for _ in range(50) if (d := delay(policy, 1, rng)) is not None]

    first = draws(7)
    assert first == draws(7)
    assert first != draws(8)
    assert len(set(first)) > 40
    assert min(first) < 280 < 320 < max(first)


def test_without_jitter_the_schedule_is_exact() -> None:
    policy = RetryPolicy([1, 2, 3], jitter=0)
    assert [delay(policy, n, status=400) for n in (1, 2, 3)] == [1.0, 2.0, 3.0]


def test_exhausted_after_the_last_scheduled_retry() -> None:
    policy = RetryPolicy([1, 1, 1], jitter=0)
    assert delay(policy, 3, status=400) == 1.0
    assert delay(policy, 4) is None
    assert delay(policy, 40, retry_after=5) is None
    assert RetryPolicy([]).max_attempts == 1
    assert delay(RetryPolicy([]), 1) is None


def test_attempts_made_starts_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        delay(RetryPolicy([1]), 0)


def test_retry_after_lengthens_but_never_shortens_the_schedule() -> None:
    policy = RetryPolicy([60, 60], jitter=0)
    assert delay(policy, 1, status=503, retry_after=120) == 120
    assert delay(policy, 1, status=503, retry_after=10) == 60
    assert delay(policy, 1, status=503, retry_after=0) == 60
    assert delay(policy, 1, status=503, retry_after=-5) == 60


def test_huge_retry_after_is_capped() -> None:
    policy = RetryPolicy([5], jitter=0, max_retry_after=3600)
    assert delay(policy, 1, status=429, retry_after=10**9) == 3600
    assert delay(policy, 1, status=429, retry_after=math.inf) == 3600
    assert delay(policy, 1, status=429, retry_after=math.nan) == 5


def test_min_backoff_after_a_timeout_or_a_429() -> None:
    policy = RetryPolicy([1, 1], jitter=0, min_backoff=5)
    assert delay(policy, 1, status=None, timed_out=True) == 5
    assert delay(policy, 1, status=429) == 5
    assert delay(policy, 1, status=500) == 1
    assert delay(policy, 1, status=None) == 1  # connection refused: no floor
    assert delay(RetryPolicy([30], jitter=0), 1, status=429) == 30  # floor, not a ceiling


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        RetryPolicy([1, -1])
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy([1], jitter=1.0)
    assert RetryPolicy([1, "2"]).schedule == (1.0, 2.0)  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("  7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("Wed, 06 Nov 2024 08:50:37 GMT", 60.0),
        ("Wednesday, 06-Nov-24 08:51:37 GMT", 120.0),
        ("Wed Nov  6 08:49:47 2024", 10.0),
        ("Wed, 06 Nov 2024 10:49:37 +0200", 0.0),
        ("Wed, 06 Nov 2024 08:00:00 GMT", 0.0),  # in the past
        ("99999999999999999999", 1e20),
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "12abc",
        "1e3",
        "+-5",
        "0x10",
        "nan",
        "inf",
        "Wed, 99 Foo",
        "\u0661\u0662",
    ],
)
def test_parse_retry_after_ignores_garbage(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_parse_retry_after_handles_other_timezones_for_now() -> None:
    now = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert parse_retry_after("Wed, 06 Nov 2024 08:50:37 GMT", now) == pytest.approx(60.0)
    assert parse_retry_after("9" * 400, NOW) == math.inf
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_retry_after("5", datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (200, None, Outcome.SUCCESS),
        (201, None, Outcome.SUCCESS),
        (204, None, Outcome.SUCCESS),
        (299, None, Outcome.SUCCESS),
        (200, "timeout", Outcome.FAILURE),  # 2xx but the body never finished
        (410, None, Outcome.GONE),
        (429, None, Outcome.THROTTLED),
        (502, None, Outcome.THROTTLED),
        (503, None, Outcome.THROTTLED),
        (504, None, Outcome.THROTTLED),
        (301, None, Outcome.FAILURE),
        (302, None, Outcome.FAILURE),
        (304, None, Outcome.FAILURE),
        (307, None, Outcome.FAILURE),
        (100, None, Outcome.FAILURE),
        (400, None, Outcome.FAILURE),
        (401, None, Outcome.FAILURE),
        (404, None, Outcome.FAILURE),
        (500, None, Outcome.FAILURE),
        (501, None, Outcome.FAILURE),
        (None, "timeout", Outcome.FAILURE),
        (None, "connect_error", Outcome.FAILURE),
        (None, "destination_refused", Outcome.FAILURE),
        (None, None, Outcome.FAILURE),
    ],
)
def test_classify(status: int | None, error: str | None, outcome: Outcome) -> None:
    assert classify(status, error) is outcome
