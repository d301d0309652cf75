"""The delivery worker's retry and 410 decisions, on the in-memory transport (no sockets).

The real worker, outbox and database run; only the network is :class:`RecordingTransport`,
which answers each POST from a script and records what was sent and when. The same decisions
over loopback are in ``test_delivery_semantics.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from hookhub.outbound.transport import AttemptResult, RecordedPost, RecordingTransport, respond
from hookhub.outbound.worker import DeliveryWorker
from hookhub.services import Services
from tests.support.delivery import create_contact, eventually, tuned_services

FAST = {"poll_interval": 0.1, "retry_jitter": 0, "retry_min_backoff": 0.1, "delivery_timeout": 2}
ENDPOINT = "https://receiver.example/hook"
OPS = "https://ops.example/hook"


@pytest.fixture
def services(db_url: str) -> Iterator[Services]:
    with tuned_services(db_url, **FAST, retry_schedule="0.3,0.6") as built:
        yield built


@contextlib.asynccontextmanager
async def worker_on(services: Services, transport: RecordingTransport) -> AsyncIterator[None]:
    worker = DeliveryWorker(
        services.db, services.outbox, services.settings, transport, metrics=services.metrics
    )
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await transport.close()


class Timed:
    """Answers ``statuses`` in turn at ``ENDPOINT`` (then 200), 200 elsewhere; notes when."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.at: list[float] = []

    def __call__(self, post: RecordedPost) -> AttemptResult:
        if post.url != ENDPOINT:
            return respond(200)
        self.at.append(time.monotonic())
        return respond(self.statuses.pop(0) if self.statuses else 200, "no")


def bodies(transport: RecordingTransport, url: str) -> list[bytes]:
    return [post.body for post in transport.posts_to(url)]


def types_sent(transport: RecordingTransport, url: str) -> list[str]:
    return [json.loads(body)["type"] for body in bodies(transport, url)]


def deliveries(services: Services, endpoint_id: int) -> list[Any]:
    return services.endpoints.deliveries(endpoint_id, status=None, before_id=None, limit=100)


async def test_server_errors_are_retried_on_the_schedule(services: Services) -> None:
    script = Timed(503, 500)
    transport = RecordingTransport(script)
    async with worker_on(services, transport):
        endpoint = services.endpoints.create({"url": ENDPOINT, "events": ["contact.created"]})
        create_contact(services, "retry@example.com")
        await eventually(
            lambda: [d.status for d in deliveries(services, endpoint.id)] == ["succeeded"]
        )
    posts = transport.posts_to(ENDPOINT)
    assert len(posts) == 3
    # The same message, signed anew for each attempt, same webhook-id.
    assert len({p.body for p in posts}) == 1
    assert len({p.headers["webhook-id"] for p in posts}) == 1
    assert json.loads(posts[0].body)["data"]["email"] == "retry@example.com"
    first_gap, second_gap = script.at[1] - script.at[0], script.at[2] - script.at[1]
    assert first_gap >= 0.3 - 0.05, script.at  # the schedule's first delay, then its second
    assert second_gap >= 0.6 - 0.05, script.at
    [delivery] = deliveries(services, endpoint.id)
    assert delivery.attempt_count == 3
    assert [a.status_code for a in delivery.attempts] == [503, 500, 200]


async def test_a_410_disables_the_endpoint_and_nothing_more_is_sent(services: Services) -> None:
    transport = RecordingTransport(Timed(410))
    async with worker_on(services, transport):
        endpoint = services.endpoints.create({"url": ENDPOINT, "events": ["contact.created"]})
        services.endpoints.create({"url": OPS, "events": ["webhook.disabled", "contact.created"]})
        create_contact(services, "gone@example.com")
        await eventually(lambda: "webhook.disabled" in types_sent(transport, OPS))
        create_contact(services, "after@example.com")
        await eventually(lambda: types_sent(transport, OPS).count("contact.created") == 2)
    disabled = services.endpoints.get(endpoint.id)
    assert not disabled.enabled
    assert "410" in (disabled.disabled_reason or "")
    assert len(transport.posts_to(ENDPOINT)) == 1  # never retried, never sent the next one
    [event] = [
        e for e in map(json.loads, bodies(transport, OPS)) if e["type"] == "webhook.disabled"
    ]
    assert event["data"]["webhook_id"] == endpoint.id
    [first] = [d for d in deliveries(services, endpoint.id) if d.attempts]
    assert [a.status_code for a in first.attempts] == [410]
