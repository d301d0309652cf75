"""Endpoint secret rotation as a value: a list of replaced secrets with expiries, at most ten."""

from __future__ import annotations

from datetime import UTC, datetime

from hookhub.records.outbound import MAX_PREVIOUS_SECRETS, Endpoint


def endpoint(secret: str = "s0") -> Endpoint:
    now = datetime.now(UTC)
    return Endpoint(
        id=1,
        url="https://example.com",
        description="",
        event_types=["*"],
        headers={},
        auth=None,
        secret=secret,
        previous_secrets=[],
        batched=False,
        enabled=True,
        disabled_reason=None,
        rate_limit=None,
        max_concurrency=None,
        failing_since=None,
        created_at=now,
        updated_at=now,
    )


def test_a_second_rotation_in_the_overlap_keeps_both_older_secrets() -> None:
    e = endpoint()
    e.rotate("s1", now=1000, overlap=100)
    e.rotate("s2", now=1050, overlap=100)
    assert e.signing_secrets(1060) == ["s2", "s1", "s0"]
    assert e.signing_secrets(1100) == ["s2", "s1"]  # s0's overlap ended at 1100
    assert e.signing_secrets(1150) == ["s2"]


def test_expired_secrets_are_dropped_when_rotating_or_saving() -> None:
    e = endpoint()
    e.rotate("s1", now=1000, overlap=100)
    e.rotate("s2", now=2000, overlap=100)
    assert e.previous_secrets == [("s1", 2100)]
    e.drop_expired_secrets(2100)
    assert e.previous_secrets == []


def test_at_most_ten_previous_secrets_are_kept_newest_first() -> None:
    e = endpoint()
    for n in range(1, 15):
        e.rotate(f"s{n}", now=1000 + n, overlap=1000)
    assert len(e.previous_secrets) == MAX_PREVIOUS_SECRETS
    assert [s for s, _ in e.previous_secrets] == [f"s{n}" for n in range(13, 3, -1)]


def test_no_overlap_keeps_nothing() -> None:
    e = endpoint()
    e.rotate("s1", now=1000, overlap=0)
    assert e.signing_secrets(1000) == ["s1"]
