"""A real HTTP receiver on loopback for outbound tests: records every request it gets.

Behaviour is scripted with ``respond``: a callable given each request that answers a status,
sleeps (to simulate a slow or black-holed endpoint), or drops the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


Responder = Callable[[Received], Awaitable[web.StreamResponse | None]]


async def ok(_request: Received) -> web.StreamResponse:
    return web.Response(status=200, text="ok")


@dataclass
class Receiver:
    respond: Responder = ok
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = Received(request.path, dict(request.headers), await request.read())
        self.requests.append(received)
        self.arrived.set()
        response = await self.respond(received)
        if response is None:  # drop the connection without an answer
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise web.HTTPInternalServerError()
        return response

    async def wait_for(self, count: int, timeout: float = 20.0) -> None:
        async def until() -> None:
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), timeout)


@contextlib.asynccontextmanager
async def running_receiver(respond: Responder = ok) -> AsyncIterator[Receiver]:
    receiver = Receiver(respond)
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", receiver._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    receiver.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield receiver
    finally:
        await runner.cleanup()
