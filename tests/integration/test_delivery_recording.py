"""Recording outcomes: one endpoint's answer never fails the acknowledgements of others.

PostgreSQL refuses NUL in text: a receiver answering ``ok\\x00`` used to fail the whole flush
of outcomes (every endpoint's), so all of them were sent again. Bodies are now cleaned, and a
row the database still refuses is written without its body, alone, while the rest go through.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from hookhub.core.retry import Outcome
from hookhub.outbound.recording import clean_text
from hookhub.outbound.transport import RecordingTransport
from hookhub.outbound.worker import DeliveryWorker
from hookhub.services import Services
from hookhub.store.deliveries import DeliveryUpdate
from tests.support.delivery import (
    api_client,
    create_contacts,
    eventually,
    running_worker,
    tuned_services,
)
from tests.support.receiver import Received, running_receiver


@pytest.fixture
def services(db_url: str) -> Iterator[Services]:
    with tuned_services(db_url, poll_interval=0.1) as built:
        yield built


def all_deliveries(services: Services, endpoint_id: int) -> list[Any]:
    return services.endpoints.deliveries(endpoint_id, status=None, before_id=None, limit=1000)


def test_clean_text_replaces_nul_and_what_utf8_cannot_encode() -> None:
    assert clean_text(None) is None
    assert clean_text("ok") == "ok"
    assert clean_text("a\x00b") == "a\ufffdb"
    assert clean_text("é\ud800") == "é?"
    assert clean_text("naïve") == "naïve"


async def test_a_nul_in_one_response_does_not_hold_back_other_acknowledgements(
    services: Services,
) -> None:
    async def nul(_request: Received) -> web.StreamResponse:
        return web.Response(status=200, body=b"ok\x00done")

    async with (
        running_receiver(nul) as odd,
        running_receiver() as plain,
        running_worker(services),
    ):
        odd_endpoint = services.endpoints.create({"url": odd.url, "events": ["*"]})
        plain_endpoint = services.endpoints.create({"url": plain.url, "events": ["*"]})
        create_contacts(services, 10)
        for endpoint in (odd_endpoint, plain_endpoint):
            await eventually(
                lambda e=endpoint: (
                    [d.status for d in all_deliveries(services, e.id)] == ["succeeded"] * 10
                )
            )
    assert len(odd.requests) == 10
    assert len(plain.requests) == 10
    with api_client(services) as client:
        delivery = all_deliveries(services, odd_endpoint.id)[0]
        shown = client.get(f"/api/v1/deliveries/{delivery.id}").json()
    assert [a["response_body"] for a in shown["attempts"]] == ["ok\ufffddone"]


def test_a_row_the_database_refuses_is_recorded_alone_without_its_body(
    services: Services,
) -> None:
    """Outcomes that reach the recorder uncleaned: halving isolates the refused row."""
    endpoint = services.endpoints.create({"url": "http://127.0.0.1:9/hook", "events": ["*"]})
    create_contacts(services, 8)
    worker = DeliveryWorker(services.db, services.outbox, services.settings, RecordingTransport())
    now = time.time()
    jobs, _taken = worker.leases.claim(now, {}, 100, {})
    assert len(jobs) == 8
    # NUL is refused by PostgreSQL; a lone surrogate cannot be encoded by either backend.
    refused = "bad\x00\ud800"
    for n, (_endpoint, job) in enumerate(jobs):
        update = DeliveryUpdate(
            delivery_id=job.delivery_id,
            status="succeeded",
            attempt_count=1,
            next_attempt_at=None,
            status_code=200,
            attempted_at=now,
            duration_ms=1.0,
            error=None,
            error_detail=None,
            response_body=refused if n == 5 else f"fine {n}",
        )
        worker.recorder.add(update, endpoint.id, job, Outcome.SUCCESS)
    left, error = worker.recorder._write(list(worker.recorder._pending))
    assert (left, error) == ([], None)
    bodies = {}
    for delivery in all_deliveries(services, endpoint.id):
        assert delivery.status == "succeeded"
        [attempt] = services.endpoints.delivery(delivery.id).attempts
        bodies[delivery.id] = attempt.response_body
    bad_id = jobs[5][1].delivery_id
    assert bodies.pop(bad_id) is None
    assert sorted(bodies.values()) == sorted(f"fine {n}" for n in range(8) if n != 5)
