"""Nothing is lost: ``hookhub worker`` processes against a chaotic receiver, SIGKILLs, and rivals.

Each test writes 5,000 outbox messages for one endpoint, runs real ``hookhub worker`` processes
against a real receiver on loopback, and checks from both sides (the receiver's log, the
database) that every message arrived with a valid signature.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from hookhub.services import Services
from hookhub.store.deliveries import DeliveryStore
from hookhub.store.schema import deliveries, delivery_attempts
from tests.support import processes
from tests.support.receiver import Received, running_receiver

MESSAGES = 5000
WORKER_ENV = {
    "HOOKHUB_DELIVERY_TIMEOUT": "1",
    "HOOKHUB_DELIVERY_LEASE": "4",
    "HOOKHUB_RETRY_SCHEDULE": ",".join(["0.2"] * 4 + ["0.5"] * 16),
    "HOOKHUB_RETRY_MIN_BACKOFF": "0.2",
    "HOOKHUB_POLL_INTERVAL": "0.2",
}

pytestmark = pytest.mark.slow


def produce(services: Services, url: str) -> str:
    """One endpoint and MESSAGES contact.created messages for it; answers its secret."""
    endpoint = services.endpoints.create({"url": url, "events": ["contact.created"]})
    for start in range(0, MESSAGES, 500):
        with services.crm.transaction() as crm:
            for n in range(start, start + 500):
                crm.create_contact(f"c{n}@example.com")
    return endpoint.secret


def queue_state(services: Services) -> tuple[dict[str, int], int]:
    with services.db.read() as conn:
        store = DeliveryStore(conn)
        return store.counts_by_status(), store.leased_count()


async def wait_all_succeeded(services: Services, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts, leased = await asyncio.to_thread(queue_state, services)
        if counts.get("succeeded") == MESSAGES and leased == 0:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"not all delivered in {timeout} s: {counts}, {leased} leased")


def check_signed_once_each(
    secret: str, requests: list[Received], answered: set[int]
) -> Counter[str]:
    """Every message id arrived; answers how often each id was answered with a 2xx."""
    verifier = Webhook(secret)
    successes: Counter[str] = Counter()
    seen: set[str] = set()
    for index, request in enumerate(requests):
        payload = verifier.verify(request.body, request.headers)
        assert payload["type"] == "contact.created"
        message_id = request.headers["webhook-id"]
        seen.add(message_id)
        if index in answered:
            successes[message_id] += 1
    assert len(seen) == MESSAGES, f"{MESSAGES - len(seen)} messages never arrived"
    return successes


def worker_view(services: Services) -> tuple[Counter[str], Counter[str]]:
    """Per message: attempts the worker saw answered 2xx, and attempts whose answer it lost."""
    query = select(
        deliveries.c.message_id, delivery_attempts.c.status_code, delivery_attempts.c.error
    ).join(deliveries, deliveries.c.id == delivery_attempts.c.delivery_id)
    seen_2xx: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    with services.db.read() as conn:
        for message_id, status, error in conn.execute(query):
            if status is not None and 200 <= status < 300 and error is None:
                seen_2xx[message_id] += 1
            elif error is not None:
                lost[message_id] += 1
    return seen_2xx, lost


def worker(db_url: str, log: Any, **env: str) -> Any:
    return processes.start(["worker"], processes.hookhub_env(db_url, **WORKER_ENV, **env), log)


async def test_chaos_receiver_loses_nothing(
    services: Services, db_url: str, tmp_path: Path
) -> None:
    """~30% of requests fail (500, timeout, reset); all arrive, duplicates only on lost answers."""
    rng = random.Random(7)
    answered_ok: set[int] = set()
    behaviour: Counter[str] = Counter()

    async def chaos(request: Received) -> web.StreamResponse | None:
        index = len(chaotic.requests) - 1
        roll = rng.random()
        if roll < 0.10:
            behaviour["500"] += 1
            return web.Response(status=500)
        if roll < 0.20:
            behaviour["timeout"] += 1
            await asyncio.sleep(1.5)  # past the worker's 1 s timeout: the answer is lost
            return web.Response(status=200)
        if roll < 0.30:
            behaviour["reset"] += 1
            return None
        answered_ok.add(index)
        return web.Response(status=204)

    async with running_receiver(chaos) as chaotic:
        secret = await asyncio.to_thread(produce, services, chaotic.url)
        with (tmp_path / "worker.log").open("wb") as log:
            process = worker(db_url, log, HOOKHUB_ENDPOINT_CONCURRENCY="64")
            try:
                await wait_all_succeeded(services, timeout=240)
            finally:
                assert processes.stop(process) == 0
    successes = check_signed_once_each(secret, chaotic.requests, answered_ok)
    # The worker's own record: each delivery got exactly one 2xx, on its last attempt, and a
    # message the receiver answered 2xx more than once had that many answers lost on the way
    # (the worker recorded a timeout or an error for them, never a 2xx).
    seen_2xx, lost = worker_view(services)
    assert set(seen_2xx.values()) == {1}, "a delivery was sent again after a 2xx reached it"
    for message_id, answered in successes.items():
        assert answered - 1 <= lost[message_id], f"{message_id} was sent again needlessly"
    assert behaviour["500"]
    assert behaviour["timeout"]
    assert behaviour["reset"]
    assert queue_state(services) == ({"succeeded": MESSAGES}, 0)


async def test_sigkilled_workers_lose_nothing(
    services: Services, db_url: str, tmp_path: Path
) -> None:
    """SIGKILL the worker five times mid-stream and restart it: every message still arrives."""
    answered: set[int] = set()

    async def slow_ok(_request: Received) -> web.StreamResponse:
        answered.add(len(receiver.requests) - 1)
        await asyncio.sleep(0.005)
        return web.Response(status=200)

    async with running_receiver(slow_ok) as receiver:
        secret = await asyncio.to_thread(produce, services, receiver.url)
        kills = 0
        with (tmp_path / "worker.log").open("wb") as log:
            process = worker(db_url, log, HOOKHUB_ENDPOINT_CONCURRENCY="8")
            try:
                for kills in range(1, 6):
                    await receiver.wait_for(kills * MESSAGES // 7, timeout=120)
                    process.send_signal(signal.SIGKILL)
                    process.wait(10)
                    process = worker(db_url, log, HOOKHUB_ENDPOINT_CONCURRENCY="8")
                await wait_all_succeeded(services, timeout=240)
            finally:
                processes.stop(process)
        assert kills == 5
    check_signed_once_each(secret, receiver.requests, answered)
    assert queue_state(services) == ({"succeeded": MESSAGES}, 0)


@pytest.mark.postgres
async def test_two_workers_never_send_twice(
    postgres_database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two workers sharing PostgreSQL, no faults: each message is sent exactly once."""
    from tests.conftest import _truncate_postgres, make_settings

    _truncate_postgres(postgres_database)
    from hookhub.services import build_services

    services = build_services(make_settings(postgres_database))
    request.addfinalizer(services.close)
    async with running_receiver() as receiver:
        secret = await asyncio.to_thread(produce, services, receiver.url)
        with (tmp_path / "workers.log").open("wb") as log:
            first, second = worker(postgres_database, log), worker(postgres_database, log)
            try:
                await wait_all_succeeded(services, timeout=240)
            finally:
                assert processes.stop(first) == 0
                assert processes.stop(second) == 0
    successes = check_signed_once_each(
        secret, receiver.requests, set(range(len(receiver.requests)))
    )
    assert len(receiver.requests) == MESSAGES
    assert set(successes.values()) == {1}
