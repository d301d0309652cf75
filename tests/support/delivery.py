"""Helpers for outbound tests: services with tuned settings, an in-process worker, scripted
receivers that remember when each request arrived and how many were open at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook

from hookhub.outbound.worker import DeliveryWorker
from hookhub.services import Services, build_services, build_worker
from hookhub.store.migrate import migrate
from tests.conftest import API_KEY, make_settings
from tests.support.receiver import Received


@contextlib.contextmanager
def tuned_services(db_url: str, **overrides: Any) -> Iterator[Services]:
    """Services on ``db_url`` with settings overrides (``make_settings`` defaults otherwise)."""
    services = build_services(make_settings(db_url, **overrides))
    migrate(services.db)
    services.keys.adopt("tests", API_KEY)
    try:
        yield services
    finally:
        services.close()


@contextlib.asynccontextmanager
async def running_worker(services: Services) -> AsyncIterator[DeliveryWorker]:
    worker = build_worker(services)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await worker.transport.close()


def verify(secret: str, request: Received) -> Any:
    """The payload, if the request's Standard Webhooks signature verifies with ``secret``."""
    return Webhook(secret).verify(request.body, request.headers)


def create_contact(services: Services, email: str, **attributes: Any) -> int:
    with services.crm.transaction() as crm:
        contact, _ = crm.create_contact(email, attributes=attributes or None)
    return contact.id


def create_contacts(services: Services, count: int, prefix: str = "c") -> None:
    with services.crm.transaction() as crm:
        for n in range(count):
            crm.create_contact(f"{prefix}{n}@example.com")


async def eventually(
    check: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` (run in a thread: it may query the database) until it answers truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        await asyncio.sleep(interval)


@dataclass
class Script:
    """A receiver's behaviour: the statuses (and delays) to answer in turn, then ``then`` (and
    ``delay``); and a record of when each request arrived and how many were open at once."""

    statuses: list[int] = field(default_factory=list)
    then: int = 200
    delays: list[float] = field(default_factory=list)
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    hold: asyncio.Event | None = None
    """When set, requests wait for this event (at most ``hold_at_most`` seconds)."""
    hold_at_most: float = 30.0
    arrivals: list[float] = field(default_factory=list)
    open_now: int = 0
    most_open: int = 0

    async def __call__(self, _request: Received) -> web.StreamResponse:
        self.arrivals.append(time.monotonic())
        status = self.statuses.pop(0) if self.statuses else self.then
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            if self.hold is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.hold.wait(), self.hold_at_most)
            delay = self.delays.pop(0) if self.delays else self.delay
            if delay:
                await asyncio.sleep(delay)
        finally:
            self.open_now -= 1
        return web.Response(status=status, headers=self.headers)

    def gaps(self) -> list[float]:
        return [later - earlier for earlier, later in itertools.pairwise(self.arrivals)]


class ConnectionCounter:
    """A plain TCP listener that only counts connections (and closes them)."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    @contextlib.asynccontextmanager
    async def listening(self, host: str) -> AsyncIterator[int]:
        self.server = await asyncio.start_server(self._accept, host, 0)
        port: int = self.server.sockets[0].getsockname()[1]
        try:
            yield port
        finally:
            self.server.close()
            await self.server.wait_closed()


@contextlib.contextmanager
def api_client(services: Services, *, key: str | None = API_KEY) -> Iterator[Any]:
    """A TestClient on ``services``; with ``key=None`` it sends no Authorization header."""
    from fastapi.testclient import TestClient

    from hookhub.api.app import create_app

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with TestClient(create_app(services), headers=headers) as client:
        yield client
