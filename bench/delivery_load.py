"""Load generator and receivers for the end-to-end delivery benchmarks (one process, loopback).

Given a running ``hookhub serve`` (``base_url``, ``api_key``), it starts in this process:

- a receiver on one port whose paths ``/ep/0`` .. ``/ep/{healthy-1}`` are the healthy endpoints;
  each request's Standard Webhooks signature is verified and its arrival time taken;
- optionally a black hole: a TCP server that accepts connections, reads, and never answers;

registers one endpoint per path (``contact.created``) through ``POST /api/v1/webhooks``, then runs
the phases of the spec in order, each creating contacts with ``POST /api/v1/contacts``:

- ``steady``: open loop at ``rate`` contacts/s (or ``fraction`` of the events/s the last burst
  drained) for ``duration`` s; each request is fired at its
  scheduled time whether or not earlier ones have been answered, and latencies count from that
  scheduled time (no coordinated omission);
- ``single``: ``count`` contacts one at a time, each after the previous one was delivered to every
  healthy endpoint;
- ``burst``: ``count`` contacts as fast as ``concurrency`` connections allow, then the time until
  every delivery arrived.

Latency = arrival at the receiver - the moment the API call was due (one process, one clock).
Prints one JSON line with a summary of each phase. Every phase is bounded in time.

    python bench/delivery_load.py '{"base_url": ..., "api_key": ..., "healthy": 1, ...}'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp import web
from delivery_support import secret_key, summarize, verify

clock = time.perf_counter


@dataclass
class Event:
    email: str
    phase: str
    due: float
    answered: float = 0.0
    status: int = 0
    arrivals: list[float] = field(default_factory=list)


@dataclass
class BlackHole:
    connections: int = 0
    bytes_read: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        while chunk := await reader.read(65536):
            self.bytes_read += len(chunk)


class Load:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.base_url: str = spec["base_url"].rstrip("/")
        self.healthy: int = spec["healthy"]
        self.verify: bool = spec.get("verify", True)
        self.events: dict[str, Event] = {}
        self.keys: dict[str, bytes] = {}
        self.seen: set[tuple[str, str]] = set()
        self.duplicates = 0
        self.bad_signatures = 0
        self.unknown = 0
        self.arrived = asyncio.Event()
        self.hole = BlackHole()
        self.session: aiohttp.ClientSession | None = None
        self.counter = 0

    # -- receiving --------------------------------------------------------------------------

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = clock()
        path = request.path
        key = self.keys.get(path)
        if key is None:
            self.unknown += 1
            return web.Response(status=404)
        if self.verify and not verify(key, request.headers, body):
            self.bad_signatures += 1
        email = orjson.loads(body)["data"]["email"]
        event = self.events.get(email)
        if event is None:
            self.unknown += 1
        elif (email, path) in self.seen:
            self.duplicates += 1
        else:
            self.seen.add((email, path))
            event.arrivals.append(now)
            self.arrived.set()
        return web.Response(text="ok")

    # -- the API ----------------------------------------------------------------------------

    async def api(self, method: str, path: str, payload: Any) -> tuple[int, Any]:
        assert self.session is not None
        async with self.session.request(
            method, self.base_url + path, data=orjson.dumps(payload)
        ) as response:
            return response.status, await response.json(content_type=None)

    async def register(self, receiver_port: int, hole_port: int | None) -> None:
        targets = [
            (f"/ep/{n}", f"http://127.0.0.1:{receiver_port}/ep/{n}") for n in range(self.healthy)
        ]
        if hole_port is not None:
            targets.append(("/hole", f"http://127.0.0.1:{hole_port}/hole"))
        for path, url in targets:
            status, body = await self.api(
                "POST", "/api/v1/webhooks", {"url": url, "events": ["contact.created"]}
            )
            if status != 201:
                raise RuntimeError(f"creating the endpoint {url} answered {status}: {body}")
            self.keys[path] = secret_key(body["secret"])

    def new_event(self, phase: str, due: float) -> Event:
        self.counter += 1
        event = Event(f"load{self.counter:07d}@example.com", phase, due)
        self.events[event.email] = event
        return event

    async def create(self, event: Event) -> None:
        try:
            event.status, _ = await self.api("POST", "/api/v1/contacts", {"email": event.email})
        except (aiohttp.ClientError, TimeoutError):
            event.status = -1
        event.answered = clock()

    async def until_delivered(self, events: list[Event], timeout: float) -> bool:
        deadline = clock() + timeout
        while any(len(e.arrivals) < self.healthy for e in events if e.status == 201):
            remaining = deadline - clock()
            if remaining <= 0:
                return False
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(remaining, 0.5))
        return True

    # -- phases -----------------------------------------------------------------------------

    async def steady(self, name: str, rate: float, duration: float, drain: float) -> dict[str, Any]:
        count = round(rate * duration)
        start = clock() + 0.05
        tasks: list[asyncio.Task[None]] = []
        events: list[Event] = []
        lag = 0.0
        for n in range(count):
            due = start + n / rate
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = max(lag, clock() - due)
            event = self.new_event(name, due)
            events.append(event)
            tasks.append(asyncio.create_task(self.create(event)))
        sent_for = clock() - start
        await asyncio.wait(tasks, timeout=drain)
        complete = await self.until_delivered(events, drain)
        return self.report(name, events, complete, rate=rate, sent_for=sent_for, lag=lag)

    async def single(self, name: str, count: int, gap: float, timeout: float) -> dict[str, Any]:
        events: list[Event] = []
        complete = True
        for _ in range(count):
            event = self.new_event(name, clock())
            events.append(event)
            await self.create(event)
            complete = await self.until_delivered([event], timeout) and complete
            await asyncio.sleep(gap)
        return self.report(name, events, complete)

    async def burst(self, name: str, count: int, concurrency: int, drain: float) -> dict[str, Any]:
        pending = [self.new_event(name, 0.0) for _ in range(count)]
        queue = iter(pending)
        start = clock()

        async def lane() -> None:
            for event in queue:
                event.due = clock()
                await self.create(event)

        await asyncio.gather(*(lane() for _ in range(concurrency)))
        created = clock()
        complete = await self.until_delivered(pending, drain)
        last = max((t for e in pending for t in e.arrivals), default=clock())
        report = self.report(name, pending, complete)
        delivered = report["delivered"]
        report.update(
            create_seconds=created - start,
            drain_seconds=last - start,
            deliveries_per_s=delivered / (last - start),
            events_per_s=delivered / self.healthy / (last - start),
        )
        return report

    def report(
        self, name: str, events: list[Event], complete: bool, **extra: float
    ) -> dict[str, Any]:
        ok = [e for e in events if e.status == 201]
        latencies = [t - e.due for e in ok for t in e.arrivals]
        whole = [max(e.arrivals) - e.due for e in ok if len(e.arrivals) >= self.healthy]
        first = [min(e.arrivals) - e.due for e in ok if e.arrivals]
        return {
            "phase": name,
            "events": len(events),
            "api_errors": len(events) - len(ok),
            "api_statuses": sorted({e.status for e in events}),
            "api_latency": summarize([e.answered - e.due for e in events]),
            "delivery_latency": summarize(latencies),
            "first_delivery_latency": summarize(first),
            "all_delivered_latency": summarize(whole),
            "delivered": len(latencies),
            "expected": len(ok) * self.healthy,
            "complete": complete,
            **extra,
        }


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    load = Load(spec)
    app = web.Application()
    app.router.add_post("/{tail:.*}", load.hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    hole_server: asyncio.Server | None = None
    hole_port: int | None = None
    if spec.get("blackhole"):
        hole_server = await asyncio.start_server(load.hole.handle, "127.0.0.1", 0)
        hole_port = hole_server.sockets[0].getsockname()[1]
    connector = aiohttp.TCPConnector(limit=spec.get("connections", 256))
    load.session = aiohttp.ClientSession(
        connector=connector,
        headers={
            "Authorization": f"Bearer {spec['api_key']}",
            "Content-Type": "application/json",
        },
        timeout=aiohttp.ClientTimeout(total=30),
    )
    results: list[dict[str, Any]] = []
    burst_rate = 1.0
    try:
        await load.register(port, hole_port)
        for phase in spec["phases"]:
            kind = phase["kind"]
            cpu_before = _cpu()
            started = clock()
            if kind == "steady":
                # A rate given as a fraction of what the last burst drained, or in events/s.
                rate = phase.get("rate") or phase["fraction"] * burst_rate
                result = await load.steady(
                    phase["name"], rate, phase["duration"], phase.get("drain", 30.0)
                )
            elif kind == "single":
                result = await load.single(
                    phase["name"],
                    phase["count"],
                    phase.get("gap", 0.2),
                    phase.get("timeout", 10.0),
                )
            else:
                result = await load.burst(
                    phase["name"],
                    phase["count"],
                    phase.get("concurrency", 16),
                    phase.get("drain", 120.0),
                )
                burst_rate = result["events_per_s"]
            result["load_cpu_share"] = (_cpu() - cpu_before) / (clock() - started)
            results.append(result)
    finally:
        await load.session.close()
        if hole_server is not None:
            hole_server.close()
            for writer in load.hole.writers:
                writer.close()
        await runner.cleanup()
    return {
        "phases": results,
        "bad_signatures": load.bad_signatures,
        "duplicates": load.duplicates,
        "unknown": load.unknown,
        "blackhole_connections": load.hole.connections,
        "blackhole_bytes": load.hole.bytes_read,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    spec = json.loads(sys.argv[1])
    result = uvloop.run(run(spec))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
