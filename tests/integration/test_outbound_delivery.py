"""Outbound delivery end to end in one process: outbox -> worker -> a real receiver.

Every delivery is verified with the public ``standardwebhooks`` library, as a receiver would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hookhub.services import Services
from tests.support.delivery import create_contact, running_worker, verify
from tests.support.receiver import running_receiver


async def test_contact_created_is_delivered_signed(services: Services) -> None:
    async with running_receiver() as receiver, running_worker(services):
        endpoint = services.endpoints.create({"url": receiver.url, "events": ["contact.created"]})
        create_contact(services, "ada@example.com", FIRSTNAME="Ada")
        await receiver.wait_for(1)
    [request] = receiver.requests
    payload = verify(endpoint.secret, request)
    assert payload["type"] == "contact.created"
    assert payload["data"]["email"] == "ada@example.com"
    assert request.headers["User-Agent"].startswith("hookhub/")
    assert request.headers["Content-Type"] == "application/json"


async def test_unsubscribed_types_and_later_endpoints_get_nothing(services: Services) -> None:
    async with running_receiver() as receiver, running_worker(services):
        create_contact(services, "early@example.com")
        services.endpoints.create({"url": receiver.url, "events": ["list.contact_added"]})
        create_contact(services, "late@example.com")
        await asyncio.sleep(1.0)
    assert receiver.requests == []


async def test_failures_are_retried_on_the_schedule_then_succeed(services: Services) -> None:
    calls = 0

    async def flaky(_request: Any) -> Any:
        nonlocal calls
        calls += 1
        from aiohttp import web

        return web.Response(status=500 if calls < 3 else 204)

    async with running_receiver(flaky) as receiver, running_worker(services):
        endpoint = services.endpoints.create({"url": receiver.url, "events": ["*"]})
        create_contact(services, "retry@example.com")
        await receiver.wait_for(3, timeout=15)
        await asyncio.sleep(0.3)
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(ids) == 1, "webhook-id is stable across retries"
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1, "the body is byte-for-byte the same on every attempt"
    [delivery] = services.endpoints.deliveries(endpoint.id, status=None, before_id=None, limit=10)
    assert delivery.status == "succeeded"
    assert [a.status_code for a in delivery.attempts] == [500, 500, 204]


async def test_exhausted_delivery_fires_operational_event(services: Services) -> None:
    from aiohttp import web

    async def always_500(_request: Any) -> Any:
        return web.Response(status=500)

    async with (
        running_receiver(always_500) as dead,
        running_receiver() as ops,
        running_worker(services),
    ):
        services.endpoints.create({"url": dead.url, "events": ["contact.created"]})
        watcher = services.endpoints.create({"url": ops.url, "events": ["delivery.exhausted"]})
        create_contact(services, "x@example.com")
        await ops.wait_for(1, timeout=20)
    payload = verify(watcher.secret, ops.requests[0])
    assert payload["type"] == "delivery.exhausted"
    assert payload["data"]["attempts"] == 4
    assert len(dead.requests) == 4


@pytest.mark.parametrize("status", [410])
async def test_gone_disables_the_endpoint(services: Services, status: int) -> None:
    from aiohttp import web

    async def gone(_request: Any) -> Any:
        return web.Response(status=status)

    async with running_receiver(gone) as receiver, running_worker(services):
        endpoint = services.endpoints.create({"url": receiver.url, "events": ["*"]})
        create_contact(services, "g@example.com")
        await receiver.wait_for(1)
        for _ in range(50):
            if not services.endpoints.get(endpoint.id).enabled:
                break
            await asyncio.sleep(0.1)
        create_contact(services, "h@example.com")
        await asyncio.sleep(0.5)
    refreshed = services.endpoints.get(endpoint.id)
    assert not refreshed.enabled
    assert "410" in (refreshed.disabled_reason or "")
    assert len(receiver.requests) == 1


async def test_rotation_signs_with_both_secrets(services: Services) -> None:
    async with running_receiver() as receiver, running_worker(services):
        endpoint = services.endpoints.create({"url": receiver.url, "events": ["*"]})
        old = endpoint.secret
        rotated = services.endpoints.rotate_secret(endpoint.id)
        create_contact(services, "r@example.com")
        await receiver.wait_for(1)
    request = receiver.requests[0]
    verify(old, request)
    verify(rotated.secret, request)
    assert len(request.headers["webhook-signature"].split(" ")) == 2


async def test_batched_endpoint_gets_one_signed_batch(services: Services, settings: Any) -> None:
    async with running_receiver() as receiver, running_worker(services):
        endpoint = services.endpoints.create(
            {"url": receiver.url, "events": ["contact.created"], "batched": True}
        )
        for n in range(5):
            create_contact(services, f"b{n}@example.com")
        await receiver.wait_for(1, timeout=settings.batch_window + 10)
        await asyncio.sleep(0.2)
    payloads = [verify(endpoint.secret, r) for r in receiver.requests]
    assert all(p["type"] == "batch" for p in payloads)
    emails = [m["data"]["email"] for p in payloads for m in p["data"]]
    assert sorted(emails) == sorted(f"b{n}@example.com" for n in range(5))
