"""Supervised loops and /readyz: a loop that raises is restarted and logged, one that makes no
progress is reported stalled, and /readyz says so (503) with the shape operators rely on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy.exc import OperationalError

from hookhub.api.app import create_app
from hookhub.api.readiness import Readiness
from hookhub.services import Services
from hookhub.supervisor import Heartbeat, Supervisor
from tests.support.delivery import create_contacts, eventually, tuned_services
from tests.support.receiver import running_receiver


class ScriptedLoop:
    """Raises ``failures`` times, then runs (beating when ``beats``) until stopped."""

    def __init__(self, failures: int = 0, *, beats: bool = True) -> None:
        self.failures = failures
        self.beats = beats
        self.runs = 0
        self.heartbeat = Heartbeat()
        self._stop: asyncio.Event | None = None

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise RuntimeError("boom at postgresql://hookhub:hunter2@db/hookhub")
        self._stop = asyncio.Event()
        while not self._stop.is_set():
            if self.beats:
                self.heartbeat.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.02)

    def stop(self) -> None:
        self.failures = 0
        if self._stop is not None:
            self._stop.set()


@pytest.fixture
async def supervisor() -> AsyncIterator[Supervisor]:
    supervisor = Supervisor(
        stall_after=0.3, first_restart=0.01, most_restart=0.05, watch_every=0.02
    )
    yield supervisor
    supervisor.stop()
    await asyncio.wait_for(supervisor.wait(), 10)


async def until(check: Any) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_a_loop_that_raises_is_restarted_and_each_crash_logged(
    supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hookhub.supervisor")
    flaky = ScriptedLoop(failures=3)
    supervisor.add("flaky", flaky)
    supervisor.add("steady", ScriptedLoop())
    supervisor.start()
    await until(lambda: flaky.runs == 4 and supervisor.health()["flaky"].state == "running")
    health = supervisor.health()["flaky"]
    assert health.restarts == 3
    assert health.last_error == "RuntimeError: boom at postgresql://…@db/hookhub"
    crashes = [r for r in caplog.records if r.getMessage() == "loop.crashed"]
    assert [r.loop for r in crashes] == ["flaky"] * 3  # type: ignore[attr-defined]
    assert all("hunter2" not in r.error for r in crashes)  # type: ignore[attr-defined]
    assert supervisor.health()["steady"].restarts == 0
    assert supervisor.ready()


async def test_a_loop_without_progress_is_stalled_until_it_beats_again(
    supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hookhub.supervisor")
    quiet = ScriptedLoop(beats=False)
    supervisor.add("quiet", quiet)
    supervisor.start()
    await until(lambda: supervisor.health()["quiet"].state == "stalled")
    assert not supervisor.ready()
    await until(lambda: any(r.getMessage() == "loop.stalled" for r in caplog.records))
    quiet.beats = True
    await until(lambda: supervisor.health()["quiet"].state == "running")
    assert supervisor.ready()


async def test_a_loop_retrying_errors_itself_is_failing_with_its_error(
    supervisor: Supervisor,
) -> None:
    loop = ScriptedLoop()
    supervisor.add("delivery", loop)
    supervisor.start()
    await until(lambda: supervisor.health()["delivery"].state == "running")
    locked = OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))
    loop.heartbeat.failing("claim", locked)
    health = supervisor.health()["delivery"]
    assert (health.state, health.last_error) == ("failing", "OperationalError: database is locked")
    assert not supervisor.ready()
    loop.heartbeat.recovered("claim")
    assert supervisor.health()["delivery"].state == "running"


@pytest.fixture
def services(db_url: str) -> Iterator[Services]:
    with tuned_services(db_url) as built:
        yield built


async def readyz(services: Services, supervisor: Supervisor | None) -> httpx.Response:
    app = create_app(services)
    app.state.readiness = Readiness(services.db, 1.0, supervisor)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hookhub") as client:
        return await client.get("/readyz")


async def test_readyz_reports_database_and_loops(
    services: Services, supervisor: Supervisor
) -> None:
    supervisor.add("delivery", ScriptedLoop())
    supervisor.add("inbound", ScriptedLoop(failures=1000))
    supervisor.start()
    await until(lambda: supervisor.health()["inbound"].restarts >= 1)
    response = await readyz(services, supervisor)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == {
        "backend": services.db.backend,
        "reachable": True,
        "writable": True,
        "error": None,
    }
    delivery = body["loops"]["delivery"]
    assert delivery.pop("last_progress").endswith("+00:00")
    assert delivery == {"state": "running", "restarts": 0, "last_error": None}
    inbound = body["loops"]["inbound"]
    assert inbound["state"] in ("restarting", "running")
    assert inbound["restarts"] >= 1
    assert inbound["last_error"].startswith("RuntimeError: boom")
    supervisor.stop()
    await supervisor.wait()
    body = (await readyz(services, supervisor)).json()
    assert body["loops"]["delivery"]["state"] == "stopped"


async def test_readyz_is_200_with_every_loop_running(
    services: Services, supervisor: Supervisor
) -> None:
    supervisor.add("delivery", ScriptedLoop())
    supervisor.start()
    await until(lambda: supervisor.health()["delivery"].state == "running")
    response = await readyz(services, supervisor)
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_readyz_is_503_while_another_process_holds_sqlite_write_lock(
    tmp_path: Path,
) -> None:
    with tuned_services(f"sqlite:///{tmp_path / 'hookhub.db'}") as services:
        holder = sqlite3.connect(tmp_path / "hookhub.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            response = await readyz(services, None)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert response.status_code == 503
        body = response.json()
        assert body["database"]["reachable"] is True
        assert body["database"]["writable"] is False
        assert body["database"]["error"] == "OperationalError: database is locked"
        assert (await readyz(services, None)).status_code == 200


async def test_delivery_worker_retries_claims_and_records_while_the_database_fails(
    db_url: str,
) -> None:
    """Claims and outcome flushes that fail (database away) are retried: nothing is lost and
    nothing is sent or acknowledged twice."""
    with tuned_services(db_url, poll_interval=0.05) as services:
        from hookhub.services import build_worker

        worker = build_worker(services)
        outage = OperationalError("SELECT", {}, sqlite3.OperationalError("database is locked"))
        claim, record = worker.leases.claim, worker.recorder._record
        failures = {"claim": 3, "record": 3}
        seen_failing: set[str] = set()

        def failing(name: str, real: Any) -> Any:
            def call(*args: Any) -> Any:
                if failures[name] > 0:
                    failures[name] -= 1
                    seen_failing.update(worker.heartbeat.errors)
                    raise outage
                return real(*args)

            return call

        worker.leases.claim = failing("claim", claim)  # type: ignore[method-assign]
        worker.recorder._record = failing("record", record)  # type: ignore[method-assign]
        async with running_receiver() as receiver:
            services.endpoints.create({"url": receiver.url, "events": ["contact.created"]})
            create_contacts(services, 20)
            task = asyncio.create_task(worker.run())
            try:
                await receiver.wait_for(20)
                await eventually(lambda: _succeeded(services) == 20)
            finally:
                worker.stop()
                await asyncio.wait_for(task, 30)
                await worker.transport.close()
        assert len(receiver.requests) == 20
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 20
        assert seen_failing == {"claim", "record"}
        assert worker.heartbeat.errors == {}
        assert _attempts(services) == 20


def _succeeded(services: Services) -> int:
    from hookhub.store.deliveries import DeliveryStore

    with services.db.read() as conn:
        return DeliveryStore(conn).counts_by_status().get("succeeded", 0)


def _attempts(services: Services) -> int:
    from sqlalchemy import func, select

    from hookhub.store.schema import delivery_attempts

    with services.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(delivery_attempts)).scalar_one())


async def test_a_delivery_worker_that_raises_is_restarted_and_delivers_again(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the claim loop ends run(); under the supervisor it runs again and nothing it
    had leased is lost."""
    caplog.set_level(logging.WARNING, logger="hookhub.supervisor")
    with tuned_services(db_url, poll_interval=0.05, delivery_lease=3) as services:
        from hookhub.services import build_worker

        worker = build_worker(services)
        real = worker._claim_and_dispatch
        raised = []

        async def buggy(everything: bool) -> None:
            await real(everything)
            if not raised and worker.lanes:  # after a claim: jobs are leased and queued
                raised.append(True)
                raise RuntimeError("a bug in the claim loop")

        worker._claim_and_dispatch = buggy  # type: ignore[method-assign]
        supervisor = Supervisor(first_restart=0.05)
        supervisor.add("delivery", worker)
        async with running_receiver() as receiver:
            services.endpoints.create({"url": receiver.url, "events": ["contact.created"]})
            create_contacts(services, 30)
            supervisor.start()
            try:
                await until(lambda: supervisor.health()["delivery"].restarts == 1)
                create_contacts(services, 10, prefix="later")  # for the restarted worker
                await eventually(lambda: _succeeded(services) == 40)
            finally:
                supervisor.stop()
                await asyncio.wait_for(supervisor.wait(), 30)
                await worker.transport.close()
        assert raised
        assert supervisor.health()["delivery"].restarts == 1
        assert {r.headers["webhook-id"] for r in receiver.requests} == _message_ids(services)
        assert [r.getMessage() for r in caplog.records].count("loop.crashed") == 1


def _message_ids(services: Services) -> set[str]:
    from sqlalchemy import select

    from hookhub.store.schema import deliveries

    with services.db.read() as conn:
        return {row[0] for row in conn.execute(select(deliveries.c.message_id))}


async def test_a_delivery_worker_stops_while_the_database_is_away(db_url: str) -> None:
    """Stopping never waits for the database: outcomes it cannot record are left to their
    leases (the deliveries fall due again and are retried)."""
    with tuned_services(db_url, poll_interval=0.05) as services:
        from hookhub.services import build_worker

        worker = build_worker(services)
        outage = OperationalError("SELECT", {}, sqlite3.OperationalError("database is locked"))

        def away(*_args: Any) -> None:
            raise outage

        worker.recorder._record = away  # type: ignore[method-assign]
        async with running_receiver() as receiver:
            services.endpoints.create({"url": receiver.url, "events": ["contact.created"]})
            create_contacts(services, 5)
            task = asyncio.create_task(worker.run())
            await receiver.wait_for(5)
            await until(lambda: "record" in worker.heartbeat.errors)
            worker.stop()
            await asyncio.wait_for(task, 30)
            await worker.transport.close()
        assert _succeeded(services) == 0  # nothing acknowledged that was not recorded
        assert "record" not in worker.heartbeat.errors  # nothing waits: a restart starts well


async def test_a_delivery_worker_stopped_before_it_started_returns(db_url: str) -> None:
    with tuned_services(db_url) as services:
        from hookhub.services import build_worker

        worker = build_worker(services)
        worker.stop()
        await asyncio.wait_for(worker.run(), 30)
        await worker.transport.close()
