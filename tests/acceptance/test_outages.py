"""The database goes away under load and comes back: nothing is lost, nothing is stuck.

A real ``hookhub serve`` process delivers to a real receiver on loopback while an inbound
burst arrives, and in the middle of both the database becomes unavailable:

- PostgreSQL (a private throwaway cluster, never the shared server) is stopped with
  ``pg_ctl stop -m fast`` for several seconds, then started again;
- SQLite is locked exclusively by another process (``BEGIN EXCLUSIVE``) for 10 seconds.

While it lasts ``/readyz`` answers 503; afterwards 200 with both loops running, without any
help: every delivery arrives at the receiver, and every inbound request that was acknowledged
(202) is processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest
from aiohttp import web
from sqlalchemy import select

from hookhub.inbound.providers import get_provider
from hookhub.services import Services
from hookhub.store.schema import deliveries, inbound_requests
from tests.conftest import API_KEY, make_settings
from tests.support import processes
from tests.support.pgcluster import find_bindir, private_cluster
from tests.support.receiver import Received, running_receiver

pytestmark = pytest.mark.slow

STRIPE_SECRET = "whsec_outage_test_secret"
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "stripe_customer_created.json"
CONTACTS = 600
INBOUND = 120
SERVE_ENV = {
    "HOOKHUB_API_KEY": API_KEY,
    "HOOKHUB_POLL_INTERVAL": "0.2",
    "HOOKHUB_DELIVERY_TIMEOUT": "2",
    "HOOKHUB_DELIVERY_LEASE": "6",
    "HOOKHUB_RETRY_SCHEDULE": ",".join(["0.5"] * 30),
    "HOOKHUB_RETRY_MIN_BACKOFF": "0.2",
    "HOOKHUB_ENDPOINT_CONCURRENCY": "4",
    "HOOKHUB_INBOUND_RATE_LIMIT": "0",
    "HOOKHUB_READINESS_TIMEOUT": "1",
    "HOOKHUB_LOG_LEVEL": "INFO",
}


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        answer = await check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.2)


def stripe_event(n: int) -> bytes:
    event = orjson.loads(FIXTURE.read_bytes())
    event["id"] = f"evt_outage_{n}"
    event["data"]["object"]["id"] = f"cus_outage_{n}"
    event["data"]["object"]["email"] = f"inbound{n}@example.com"
    return orjson.dumps(event)


class InboundBurst:
    """Signed Stripe requests, one after another, until told to stop after ``count``."""

    def __init__(self, hook_url: str, count: int) -> None:
        self.hook_url = hook_url
        self.count = count
        self.accepted: list[int] = []
        self.refused: list[int] = []
        self.sent = 0

    async def run(self) -> None:
        provider = get_provider("stripe")
        async with httpx.AsyncClient(timeout=40) as client:
            for n in range(self.count):
                body = stripe_event(n)
                headers = provider.sign(body, STRIPE_SECRET, time.time(), {})
                headers["content-type"] = "application/json"
                try:
                    answer = await client.post(self.hook_url, content=body, headers=headers)
                except httpx.HTTPError:
                    self.refused.append(n)
                else:
                    if answer.status_code == 202:
                        self.accepted.append(answer.json()["request_id"])
                    else:
                        assert answer.status_code == 503, answer.text
                        self.refused.append(n)
                self.sent += 1
                await asyncio.sleep(0.05)


async def readyz(base: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(f"{base}/readyz")


def observed(services: Services, accepted: list[int]) -> tuple[set[str], dict[str, int]]:
    """The message ids with a delivery, and the statuses of the accepted inbound requests."""
    with services.db.read() as conn:
        message_ids = {row[0] for row in conn.execute(select(deliveries.c.message_id))}
        statuses: dict[str, int] = {}
        for start in range(0, len(accepted), 500):
            chunk = accepted[start : start + 500]
            query = select(inbound_requests.c.status).where(inbound_requests.c.id.in_(chunk))
            for (status,) in conn.execute(query):
                statuses[status] = statuses.get(status, 0) + 1
    return message_ids, statuses


async def slow_ok(_request: Received) -> web.StreamResponse:
    await asyncio.sleep(0.05)  # so that deliveries are still under way when the outage starts
    return web.Response(status=200, text="ok")


@contextlib.asynccontextmanager
async def scenario(database_url: str, tmp: Path) -> AsyncIterator[dict[str, Any]]:
    """Serve with an endpoint subscribed to everything and an inbound Stripe webhook."""
    async with running_receiver(slow_ok) as receiver:
        with processes.serving(database_url, tmp, **SERVE_ENV) as base:
            auth = {"Authorization": f"Bearer {API_KEY}"}
            async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as api:
                endpoint = await api.post(
                    "/api/v1/webhooks", json={"url": receiver.url, "events": ["*"]}
                )
                assert endpoint.status_code == 201, endpoint.text
                hook = await api.post(
                    "/api/v1/inbound-webhooks",
                    json={"name": "stripe", "source": "stripe", "secret": STRIPE_SECRET},
                )
                assert hook.status_code == 201, hook.text
                yield {"base": base, "api": api, "receiver": receiver, "hook": hook.json()}


def produce_directly(services: Services, prefix: str, count: int) -> None:
    """Contacts (each a contact.created message) written straight to the database."""
    for start in range(0, count, 200):
        with services.crm.transaction() as crm:
            for n in range(start, min(count, start + 200)):
                crm.create_contact(f"{prefix}{n}@example.com")


async def produce(api: httpx.AsyncClient, prefix: str, count: int) -> None:
    for n in range(count):
        answer = await api.post("/api/v1/contacts", json={"email": f"{prefix}{n}@example.com"})
        assert answer.status_code == 201, answer.text


async def ride_out(
    database_url: str,
    tmp: Path,
    begin_outage: Callable[[], Awaitable[None]],
    end_outage: Callable[[], Awaitable[None]],
    database_error: str,
) -> None:
    """The scenario common to both backends; the outage is the backend's own."""
    services = processes_services(database_url)
    try:
        async with scenario(database_url, tmp) as ctx:
            base, api, receiver = ctx["base"], ctx["api"], ctx["receiver"]
            await asyncio.to_thread(produce_directly, services, "before", CONTACTS)
            burst = InboundBurst(ctx["hook"]["url"], INBOUND)
            bursting = asyncio.create_task(burst.run())
            await receiver.wait_for(30, timeout=60)
            await until(lambda: _true(burst.sent >= 10), "inbound burst under way")
            assert len(receiver.requests) < CONTACTS, "the outage must start mid-delivery"

            await begin_outage()
            during = await until(lambda: _unready(base), "/readyz reporting the outage", timeout=30)
            body = during.json()
            assert body["status"] == "unavailable"
            assert body["database"]["writable"] is False
            assert database_error in (body["database"]["error"] or ""), body
            await end_outage()

            after = await until(lambda: _ready(base), "/readyz ready again", timeout=60)
            loops = {
                "delivery",
                "inbound",
                "retention",
                "campaigns",
                "tracking",
                "email",
                "automation-dates",
                "automations",
            }
            assert set(after.json()["loops"]) == loops
            await produce(api, "after", 20)  # the loops work on new work too
            await asyncio.wait_for(bursting, 120)
            assert burst.accepted, "no inbound request was acknowledged"

            async def settled() -> bool:
                message_ids, statuses = await asyncio.to_thread(observed, services, burst.accepted)
                arrived = {r.headers["webhook-id"] for r in receiver.requests}
                # Contacts made before and after, and by each processed inbound request.
                return (
                    statuses == {"processed": len(burst.accepted)}
                    and len(message_ids) >= CONTACTS + 20 + len(burst.accepted)
                    and message_ids <= arrived
                )

            await until(settled, "every delivery arrived, every request processed", 180)
            final = (await readyz(base)).json()
            assert all(loop["state"] == "running" for loop in final["loops"].values()), final
    finally:
        services.close()


async def _true(value: bool) -> bool:
    return value


async def _unready(base: str) -> httpx.Response | None:
    with contextlib.suppress(httpx.HTTPError):
        answer = await readyz(base)
        if answer.status_code == 503:
            return answer
    return None


async def _ready(base: str) -> httpx.Response | None:
    with contextlib.suppress(httpx.HTTPError):
        answer = await readyz(base)
        if answer.status_code == 200:
            return answer
    return None


def processes_services(database_url: str) -> Services:
    """The test's own view of the database (to check rows); the server migrates it."""
    from hookhub.services import build_services
    from hookhub.store.migrate import migrate

    services = build_services(make_settings(database_url))
    migrate(services.db)
    return services


@pytest.fixture
def pg_cluster() -> Iterator[Any]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with private_cluster(bindir) as cluster:
        yield cluster


@pytest.mark.postgres
async def test_postgresql_stopped_and_started_again_mid_load(
    pg_cluster: Any, tmp_path: Path
) -> None:
    async def stop() -> None:
        await asyncio.to_thread(pg_cluster.stop)

    async def start() -> None:
        await asyncio.sleep(5)  # several seconds without a database
        await asyncio.to_thread(pg_cluster.start)

    try:
        await ride_out(pg_cluster.url, tmp_path, stop, start, "Error")
    except BaseException:
        print(pg_cluster.logs())
        _print_serve_logs(tmp_path)
        raise


LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
print("released", flush=True)
"""


async def test_sqlite_locked_by_another_process_for_ten_seconds(tmp_path: Path) -> None:
    path = tmp_path / "hookhub.db"
    locker: subprocess.Popen[str] | None = None

    async def lock() -> None:
        nonlocal locker
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(path), "10"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert locker.stdout is not None
        line = await asyncio.to_thread(locker.stdout.readline)
        assert line.strip() == "locked"

    async def unlock() -> None:
        assert locker is not None
        assert locker.stdout is not None
        line = await asyncio.to_thread(locker.stdout.readline)
        assert line.strip() == "released"
        await asyncio.to_thread(locker.wait, 30)

    try:
        await ride_out(f"sqlite:///{path}", tmp_path, lock, unlock, "database is locked")
    except BaseException:
        _print_serve_logs(tmp_path)
        raise
    finally:
        if locker is not None:
            if locker.poll() is None:
                locker.kill()
            locker.wait(10)
            if locker.stdout is not None:
                locker.stdout.close()


def _print_serve_logs(tmp: Path) -> None:
    for log in tmp.glob("serve-*.log"):
        print(log.read_text(errors="replace")[-6000:])
