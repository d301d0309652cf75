"""Delivery semantics end to end, in one process: outbox -> worker -> real receivers on loopback.

What a receiver notices: which headers arrive, which statuses count as failures, how long the
worker waits between attempts, when it gives up or disables an endpoint, how fast and how
concurrently it calls one endpoint, and that a dead endpoint never holds up a healthy one.
Time bounds are generous lower bounds on spacing, never speed targets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from hookhub.core.catalog import CATALOG
from hookhub.services import Services
from hookhub.store.deliveries import DeliveryStore
from tests.support.delivery import (
    Script,
    create_contact,
    create_contacts,
    eventually,
    running_worker,
    tuned_services,
    verify,
)
from tests.support.receiver import Received, running_receiver
from tests.support.schema_check import errors

FAST = {
    "poll_interval": 0.1,
    "retry_jitter": 0,
    "retry_min_backoff": 0.1,
    "delivery_timeout": 2,
}


@pytest.fixture
def tuned(db_url: str) -> Iterator[Callable[..., Services]]:
    """Services on this test's database with FAST settings plus the test's own overrides."""
    with contextlib.ExitStack() as stack:

        def make(**overrides: Any) -> Services:
            return stack.enter_context(tuned_services(db_url, **{**FAST, **overrides}))

        yield make


def deliveries_of(services: Services, endpoint_id: int) -> list[Any]:
    return services.endpoints.deliveries(endpoint_id, status=None, before_id=None, limit=1000)


def statuses(services: Services, endpoint_id: int) -> list[str]:
    return sorted(d.status for d in deliveries_of(services, endpoint_id))


def assert_matches_catalog(payload: dict[str, Any]) -> None:
    kind = CATALOG[payload["type"]]
    assert errors(payload, kind.schema()) == [], payload


# -- headers and statuses ---------------------------------------------------------------------


async def test_custom_headers_and_auth_arrive(tuned: Any) -> None:
    services = tuned()
    async with (
        running_receiver() as bearer,
        running_receiver() as basic,
        running_worker(services),
    ):
        with_token = services.endpoints.create(
            {
                "url": bearer.url,
                "events": ["contact.created"],
                "headers": {"X-Team": "growth", "X-Trace": "a b;c=d"},
                "auth": {"type": "bearer", "token": "tok_3f9a"},
            }
        )
        with_password = services.endpoints.create(
            {
                "url": basic.url,
                "events": ["contact.*"],
                "auth": {"type": "basic", "username": "hook", "password": "p:ss wörd"},
            }
        )
        create_contact(services, "h@example.com")
        await bearer.wait_for(1)
        await basic.wait_for(1)
    [first] = bearer.requests
    assert verify(with_token.secret, first)["type"] == "contact.created"
    assert first.headers["X-Team"] == "growth"
    assert first.headers["X-Trace"] == "a b;c=d"
    assert first.headers["Authorization"] == "Bearer tok_3f9a"
    [second] = basic.requests
    verify(with_password.secret, second)
    scheme, _, encoded = second.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "hook:p:ss wörd"


async def test_redirect_is_a_failure_and_is_not_followed(tuned: Any) -> None:
    services = tuned(retry_schedule="0.2")
    async with running_receiver() as target:

        async def redirect(_request: Received) -> web.StreamResponse:
            return web.Response(status=307, headers={"Location": target.url})

        async with running_receiver(redirect) as mover, running_worker(services):
            endpoint = services.endpoints.create({"url": mover.url, "events": ["*"]})
            create_contact(services, "r@example.com")
            await eventually(lambda: statuses(services, endpoint.id) == ["exhausted"])
    assert target.requests == []
    assert len(mover.requests) == 2
    [delivery] = deliveries_of(services, endpoint.id)
    assert [a.status_code for a in delivery.attempts] == [307, 307]
    assert all(a.error is None for a in delivery.attempts)


async def test_retry_after_delays_the_retry_and_slows_the_endpoint(tuned: Any) -> None:
    services = tuned(retry_schedule="0.1,0.1")
    script = Script(statuses=[429], headers={"Retry-After": "2"})
    async with running_receiver(script) as receiver, running_worker(services):
        endpoint = services.endpoints.create({"url": receiver.url, "events": ["*"]})
        create_contact(services, "first@example.com")
        await receiver.wait_for(1)
        await eventually(lambda: statuses(services, endpoint.id) == ["failed"])
        create_contact(services, "second@example.com")  # due now, but the endpoint is slowed
        await receiver.wait_for(3)
        await eventually(lambda: statuses(services, endpoint.id) == ["succeeded", "succeeded"])
    throttled_at = script.arrivals[0]
    assert all(later - throttled_at >= 1.9 for later in script.arrivals[1:]), script.gaps()
    emails = [r.json()["data"]["email"] for r in receiver.requests]
    assert sorted(emails[1:]) == ["first@example.com", "second@example.com"]


async def test_an_absurd_retry_after_is_bounded(tuned: Any) -> None:
    services = tuned()
    script = Script(then=503, headers={"Retry-After": "99999999"})
    async with running_receiver(script) as receiver, running_worker(services):
        endpoint = services.endpoints.create({"url": receiver.url, "events": ["*"]})
        create_contact(services, "later@example.com")
        await eventually(lambda: statuses(services, endpoint.id) == ["failed"])
    [delivery] = deliveries_of(services, endpoint.id)
    assert delivery.next_attempt_at is not None
    wait = delivery.next_attempt_at - time.time()
    assert 3000 < wait <= 3600 + 5, wait


async def test_timeout_is_retried_after_the_minimum_backoff(tuned: Any) -> None:
    services = tuned(delivery_timeout=0.5, retry_min_backoff=1.5, retry_schedule="0.1")
    script = Script(delays=[1.0])  # the first answer comes after the timeout
    async with running_receiver(script) as receiver, running_worker(services):
        endpoint = services.endpoints.create({"url": receiver.url, "events": ["*"]})
        create_contact(services, "slow@example.com")
        await eventually(lambda: statuses(services, endpoint.id) == ["succeeded"])
    assert len(receiver.requests) == 2
    [gap] = script.gaps()
    assert gap >= 0.5 + 1.5 - 0.1, gap
    [delivery] = deliveries_of(services, endpoint.id)
    assert [a.error for a in delivery.attempts] == ["timeout", None]


async def test_retry_schedule_then_exhausted_with_an_operational_event(tuned: Any) -> None:
    services = tuned(retry_schedule="0.5,1")
    script = Script(then=500)
    async with (
        running_receiver(script) as failing,
        running_receiver() as ops,
        running_worker(services),
    ):
        endpoint = services.endpoints.create({"url": failing.url, "events": ["contact.created"]})
        watcher = services.endpoints.create({"url": ops.url, "events": ["delivery.exhausted"]})
        create_contact(services, "gone@example.com")
        await ops.wait_for(1)
    assert len(failing.requests) == 3
    first, second = script.gaps()
    assert first >= 0.45, script.gaps()
    assert second >= 0.95, script.gaps()
    assert first < second + 0.5, "the schedule's delays are used in order"
    [delivery] = deliveries_of(services, endpoint.id)
    assert delivery.status == "exhausted"
    assert delivery.attempt_count == 3
    assert delivery.to_api()["next_attempt_at"] is None
    payload = verify(watcher.secret, ops.requests[0])
    assert_matches_catalog(payload)
    assert payload["data"] == {
        "webhook_id": endpoint.id,
        "delivery_id": delivery.id,
        "message_id": delivery.message_id,
        "event_type": "contact.created",
        "attempts": 3,
    }


# -- operational events and endpoint health ---------------------------------------------------


async def test_operational_events_skip_their_subject_and_the_wildcard(tuned: Any) -> None:
    services = tuned(retry_schedule="0.2")
    async with (
        running_receiver(Script(then=500)) as subject,
        running_receiver() as everything,
        running_receiver() as ops,
        running_worker(services),
    ):
        failing = services.endpoints.create(
            {
                "url": subject.url,
                "events": ["contact.created", "delivery.exhausted", "webhook.disabled"],
            }
        )
        star = services.endpoints.create({"url": everything.url, "events": ["*"]})
        watcher = services.endpoints.create(
            {"url": ops.url, "events": ["delivery.exhausted", "webhook.disabled"]}
        )
        create_contact(services, "ops@example.com")
        await ops.wait_for(1)
        await asyncio.sleep(0.5)  # time for anything misrouted to arrive too
    [exhausted] = [verify(watcher.secret, r) for r in ops.requests]
    assert exhausted["type"] == "delivery.exhausted"
    assert exhausted["data"]["webhook_id"] == failing.id
    assert {r.json()["type"] for r in subject.requests} == {"contact.created"}
    assert [verify(star.secret, r)["type"] for r in everything.requests] == ["contact.created"]
    with services.db.read() as conn:
        mine = DeliveryStore(conn).page(endpoint_id=failing.id, limit=100)
        payloads = DeliveryStore(conn).payloads([d.message_id for d in mine])
    assert {kind for kind, _body, _at in payloads.values()} == {"contact.created"}


async def test_endpoint_failing_too_long_is_disabled(tuned: Any) -> None:
    services = tuned(retry_schedule=",".join(["0.3"] * 30), endpoint_disable_after=2)
    failing = Script(then=500)
    async with (
        running_receiver(failing) as dead,
        running_receiver() as ops,
        running_worker(services),
    ):
        endpoint = services.endpoints.create({"url": dead.url, "events": ["contact.created"]})
        watcher = services.endpoints.create({"url": ops.url, "events": ["webhook.disabled"]})
        started = time.monotonic()
        create_contact(services, "down@example.com")
        await ops.wait_for(1)
        disabled_after = time.monotonic() - started
        attempts_then = len(dead.requests)
        create_contact(services, "after@example.com")
        await asyncio.sleep(1.0)
    assert disabled_after >= 2.0 - 0.1
    payload = verify(watcher.secret, ops.requests[0])
    assert_matches_catalog(payload)
    assert payload["data"]["webhook_id"] == endpoint.id
    # The URL may be a capability (Slack, Zapier): only where it points is shown to others.
    assert payload["data"]["url"] == f"http://127.0.0.1:{dead.port}/…"
    assert "/hook" not in ops.requests[0].body.decode()
    assert payload["data"]["reason"].startswith("failing since ")
    refreshed = services.endpoints.get(endpoint.id)
    assert not refreshed.enabled
    assert refreshed.disabled_reason == payload["data"]["reason"]
    assert len(dead.requests) <= attempts_then + 1, "a disabled endpoint is not called again"
    assert all(r.json()["data"]["email"] == "down@example.com" for r in dead.requests)


# -- pace: rate limit, concurrency, isolation -------------------------------------------------


async def test_rate_limit_is_respected(tuned: Any) -> None:
    rate, count = 5.0, 15
    services = tuned()
    script = Script()
    async with running_receiver(script) as receiver, running_worker(services):
        services.endpoints.create({"url": receiver.url, "events": ["*"], "rate_limit": rate})
        create_contacts(services, count)
        await receiver.wait_for(count)
    span = script.arrivals[-1] - script.arrivals[0]
    # At most one second's worth may go in a burst; the rest waits for the rate.
    assert span >= (count - 1 - rate) / rate * 0.9, span
    for start in script.arrivals:
        in_window = sum(1 for at in script.arrivals if start <= at < start + 1.0)
        assert in_window <= 2 * rate + 1, in_window


async def test_rate_limit_below_one_per_second_still_delivers(tuned: Any) -> None:
    services = tuned()
    script = Script()
    async with running_receiver(script) as receiver, running_worker(services):
        services.endpoints.create({"url": receiver.url, "events": ["*"], "rate_limit": 0.5})
        create_contacts(services, 2)
        await receiver.wait_for(2, timeout=15)
    [gap] = script.gaps()
    assert gap >= 2 * 0.9, gap


async def test_rate_limited_endpoint_on_a_worker_at_capacity_keeps_going(tuned: Any) -> None:
    """Queued work waiting for its rate limit must still be started when nothing is in flight."""
    services = tuned(worker_concurrency=1)
    async with running_receiver() as receiver, running_worker(services):
        services.endpoints.create({"url": receiver.url, "events": ["*"], "rate_limit": 4})
        create_contacts(services, 6)
        await receiver.wait_for(6, timeout=15)


async def test_a_rate_limited_backlog_longer_than_the_lease_is_sent_once_each(
    tuned: Any,
) -> None:
    """Work queued for its rate limit must not outlive its lease: it would be claimed again."""
    count = 8
    services = tuned(delivery_lease=2)
    async with running_receiver() as receiver, running_worker(services):
        services.endpoints.create({"url": receiver.url, "events": ["*"], "rate_limit": 2})
        create_contacts(services, count)
        await receiver.wait_for(count)
        await asyncio.sleep(2.5)  # past the last lease: a duplicate would have arrived
    sent = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert len(sent) == count
    assert set(sent.values()) == {1}, sent


async def test_concurrency_cap_is_never_exceeded(tuned: Any) -> None:
    services = tuned(endpoint_concurrency=3)
    capped, defaulted = Script(delay=0.3), Script(delay=0.3)
    async with (
        running_receiver(capped) as narrow,
        running_receiver(defaulted) as wide,
        running_worker(services),
    ):
        services.endpoints.create({"url": narrow.url, "events": ["*"], "max_concurrency": 2})
        services.endpoints.create({"url": wide.url, "events": ["*"]})
        create_contacts(services, 10)
        await narrow.wait_for(10)
        await wide.wait_for(10)
    assert 1 <= capped.most_open <= 2
    assert 2 <= defaulted.most_open <= 3, "the default cap applies, and does allow parallel sends"


async def test_black_holed_endpoint_does_not_hold_up_a_healthy_one(tuned: Any) -> None:
    count = 40
    services = tuned(delivery_timeout=1, worker_concurrency=4, endpoint_concurrency=2)
    hole = Script(hold=asyncio.Event(), hold_at_most=10)
    assert hole.hold is not None
    async with running_receiver(hole) as dark, running_receiver() as healthy:
        try:
            async with running_worker(services):
                services.endpoints.create({"url": dark.url, "events": ["*"]})
                services.endpoints.create({"url": healthy.url, "events": ["*"]})
                create_contacts(services, count)
                await healthy.wait_for(count, timeout=20)
        finally:
            hole.hold.set()
    assert len({r.headers["webhook-id"] for r in healthy.requests}) == count
    assert dark.requests, "the black hole was tried too"


async def test_endpoint_deleted_mid_delivery_leaves_the_queue_consistent(
    tuned: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The in-flight attempt of a deleted endpoint must not sink the others' acknowledgements."""
    services = tuned(delivery_lease=3)
    gate = asyncio.Event()
    slow, fine = Script(hold=gate, hold_at_most=10), Script(hold=gate, hold_at_most=10)
    caplog.set_level(logging.WARNING, logger="hookhub.worker")
    async with (
        running_receiver(slow) as doomed,
        running_receiver(fine) as kept,
        running_worker(services),
    ):
        doomed_endpoint = services.endpoints.create({"url": doomed.url, "events": ["*"]})
        kept_endpoint = services.endpoints.create({"url": kept.url, "events": ["*"]})
        create_contacts(services, 3)
        await doomed.wait_for(3)
        await kept.wait_for(3)
        services.endpoints.delete(doomed_endpoint.id)
        gate.set()
        await eventually(lambda: statuses(services, kept_endpoint.id) == ["succeeded"] * 3)
        await asyncio.sleep(3.2)  # past the lease: an unacknowledged delivery would go again
    assert len(kept.requests) == 3
    assert not [r for r in caplog.records if r.getMessage() == "worker.record_failed"]
    kept_deliveries = deliveries_of(services, kept_endpoint.id)
    assert [len(d.attempts) for d in kept_deliveries] == [1, 1, 1]
