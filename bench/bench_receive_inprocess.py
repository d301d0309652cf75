"""The receive path without the kernel: Hookhub's receiver called in-process, 64 at a time.

``bench_inbound.py`` measures receiving through uvicorn and the kernel, where others' load moves
single runs by 10-20 %. This isolates what Hookhub itself adds per request, in this process
pinned to core 0, on uvloop, with signed Stripe ``customer.created`` requests (unique ids,
bench/inbound_requests.py), against a fresh SQLite file, including its group commits (in a
worker thread, as in the server). Prints CPU time per request (all threads) per run, and the
wall time per request: more than the CPU time when the process waits (a commit's fsync with
every connection waiting for its answer); both a request.

``--via protocol`` (the default): the request bytes are fed to the HTTP protocol ``hookhub
serve`` runs (``hookhub.api.http``), on 64 connections whose transports are in memory, each
sending its next request when it has its answer, as wrk does: HTTP parsing, the receiver and
the response bytes, everything but the sockets. ``--via asgi``: the receiver called directly
as an ASGI app (``hookhub.inbound.receiver.InboundReceiver``), no HTTP at all.

Each run is a fresh process. ``--compare-source DIR`` also runs the ``hookhub`` package found
in DIR (a checkout of another commit: ``git archive <rev> hookhub | tar -x -C DIR``),
alternating with this one, so a change is measured before and after in the same minutes; the
summary gives medians and minimums (on a busy machine the minimum is the least disturbed run)
and the ratio of CPU per request of each pair of runs.
``--no-database`` replaces the log write with a stub that only numbers the entries: the
receiver's own share.

    .venv/bin/python bench/bench_receive_inprocess.py [--requests 20000] [--runs 3] [--via asgi]
    .venv/bin/python bench/bench_receive_inprocess.py --compare-source /tmp/before
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import uvloop
from common import machine_info, median, print_machine
from inbound_requests import customer_created_bodies

from hookhub.config import load_settings
from hookhub.inbound.receiver import InboundReceiver
from hookhub.services import build_services
from hookhub.store.inbound import LogEntry
from hookhub.store.migrate import migrate

CONCURRENCY = 64


def requests(token: str, secret: str, count: int) -> list[tuple[dict[str, Any], bytes]]:
    stamp = str(int(time.time())).encode()
    made = []
    for body in customer_created_bodies("inproc", count):
        v1 = hmac.new(secret.encode(), stamp + b"." + body, hashlib.sha256).hexdigest().encode()
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"Stripe/1.0 (+https://stripe.com/docs/webhooks)"),
            (b"content-type", b"application/json; charset=utf-8"),
            (b"stripe-signature", b"t=" + stamp + b",v1=" + v1),
            (b"content-length", str(len(body)).encode()),
        ]
        scope = {"type": "http", "method": "POST", "path": "/in/" + token, "headers": headers}
        made.append((scope, body))
    return made


async def drive(receiver: InboundReceiver, batch: list[tuple[dict[str, Any], bytes]]) -> list[int]:
    statuses: list[int] = []

    async def one(scope: dict[str, Any], body: bytes) -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await receiver(scope, receive, send)

    for start in range(0, len(batch), CONCURRENCY):
        await asyncio.gather(*(one(*r) for r in batch[start : start + CONCURRENCY]))
    return statuses


class MemoryTransport:
    """A connection's transport in memory: each answer written makes the client send again."""

    def __init__(self, on_answer: Any) -> None:
        self.on_answer = on_answer
        self.closing = False

    def write(self, data: bytes) -> None:
        self.on_answer(self, data)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def wire_requests(batch: list[tuple[dict[str, Any], bytes]]) -> list[bytes]:
    """The same requests as bytes on the wire."""
    made = []
    for scope, body in batch:
        head = b"POST %s HTTP/1.1\r\n" % scope["path"].encode()
        head += b"".join(name + b": " + value + b"\r\n" for name, value in scope["headers"])
        made.append(head + b"\r\n" + body)
    return made


async def drive_protocol(app: Any, wire: list[bytes]) -> list[int]:
    """Feed ``wire`` to the HTTP protocol on CONCURRENCY connections, closed loop."""
    import uvicorn
    from uvicorn.server import ServerState

    from hookhub.api import http

    # The protocol ``hookhub serve`` runs; an older package's name for it, if given one.
    protocol_class = getattr(http, "HookhubHttpProtocol", None) or http.GatheringHttpToolsProtocol
    config = uvicorn.Config(
        app,
        http=protocol_class,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="off",
    )
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    statuses: list[int] = []
    queue = iter(wire)
    protocols: dict[MemoryTransport, Any] = {}

    def send_next(transport: MemoryTransport) -> None:
        request = next(queue, None)
        if request is not None:
            protocols[transport].data_received(request)

    def on_answer(transport: MemoryTransport, data: bytes) -> None:
        if data.startswith(b"HTTP/1.1 100 "):
            return
        statuses.append(int(data[9:12]))
        if len(statuses) == len(wire):
            done.set_result(None)
        else:
            loop.call_soon(send_next, transport)

    for _ in range(min(CONCURRENCY, len(wire))):
        transport = MemoryTransport(on_answer)
        protocol = protocol_class(config=config, server_state=state, app_state={}, _loop=loop)
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocols[transport] = protocol
        send_next(transport)
    await done
    for protocol in protocols.values():
        protocol._unset_keepalive_if_required()
    return statuses


def one_run(count: int, no_database: bool, via: str) -> tuple[float, float]:
    """CPU and wall seconds per request of one run on a fresh database."""
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-receive-") as tmp:
        settings = load_settings(database_url=f"sqlite:///{Path(tmp) / 'hookhub.db'}")
        services = build_services(settings)
        try:
            migrate(services.db)
            secret = "whsec_" + os.urandom(16).hex()
            webhook, _ = services.inbound.create(
                {"name": "bench", "source": "stripe", "secret": secret}
            )
            receiver = InboundReceiver(
                services.inbound,
                max_body=settings.max_body_bytes,
                default_rate_limit=None,
                metrics=services.metrics,
            )
            if no_database:
                numbers = itertools.count(1)

                def numbered(_self: object, entries: list[LogEntry], *_counts: Any) -> None:
                    for entry in entries:
                        entry.id = next(numbers)

                receiver.journal._write = numbered.__get__(receiver.journal)  # type: ignore[method-assign]
            batch = requests(webhook.token, secret, count + 1)
            if via == "protocol":
                from hookhub.api.app import create_app

                app = create_app(services)
                app.receiver = receiver  # the one whose log write may be stubbed

                async def run_all() -> list[int]:
                    await drive_protocol(app, wire_requests(batch[:1]))  # warm
                    wire = wire_requests(batch[1:])
                    started = time.process_time(), time.perf_counter()
                    statuses = await drive_protocol(app, wire)
                    used.append(time.process_time() - started[0])
                    used.append(time.perf_counter() - started[1])
                    return statuses

                used: list[float] = []
                statuses = uvloop.run(run_all())[:count]
                elapsed, wall = used
            else:
                uvloop.run(drive(receiver, batch[:1]))  # warm: caches, first statement compiles
                started = time.process_time(), time.perf_counter()
                statuses = uvloop.run(drive(receiver, batch[1:]))
                elapsed = time.process_time() - started[0]
                wall = time.perf_counter() - started[1]
        finally:
            services.close()
    if set(statuses) != {202} or len(statuses) != count:
        raise RuntimeError(f"unexpected answers: {sorted(set(statuses))}, {len(statuses)}")
    return elapsed / count, wall / count


def measure(args: argparse.Namespace, source: str | None) -> tuple[float, float]:
    """One run in a fresh process (with the package in ``source`` first on its path)."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = source
    argv = [sys.executable, __file__, "--one-run", "--requests", str(args.requests)]
    argv += ["--via", args.via]
    if args.no_database:
        argv.append("--no-database")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=True)
    cpu, wall = done.stdout.strip().splitlines()[-1].split()
    return float(cpu), float(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-database", action="store_true")
    parser.add_argument("--via", choices=("protocol", "asgi"), default="protocol")
    parser.add_argument("--compare-source", help="a directory holding another hookhub package")
    parser.add_argument("--one-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    if args.one_run:
        print(*one_run(args.requests, args.no_database, args.via))
        return
    print_machine(machine_info(None))
    what = "receiver only (log write stubbed)" if args.no_database else "receiver + SQLite log"
    what += ", through the HTTP protocol" if args.via == "protocol" else ", called as ASGI app"
    print(f"\n{what}: {args.requests:,} signed Stripe requests, {CONCURRENCY} at a time, core 0\n")
    contenders: dict[str, str | None] = {"hookhub": None}
    if args.compare_source:
        contenders[f"hookhub from {args.compare_source}"] = args.compare_source
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for run in range(1, args.runs + 1):
        order = list(contenders.items())
        if run % 2 == 0:
            order.reverse()
        for name, source in order:
            cpu, wall = measure(args, source)
            figures[name].append((cpu, wall))
            print(f"  run {run}: {name:<40} {cpu * 1e6:6.1f} us CPU, {wall * 1e6:6.1f} us wall")
    print(f"\nmedians (and minimums) of {args.runs} runs:")
    for name, values in figures.items():
        cpu, wall = median([v[0] for v in values]), median([v[1] for v in values])
        least = min(v[0] for v in values), min(v[1] for v in values)
        print(
            f"  {name:<40} {cpu * 1e6:6.1f} us CPU, {wall * 1e6:6.1f} us wall"
            f"  (min {least[0] * 1e6:6.1f} us CPU, {least[1] * 1e6:6.1f} us wall)"
        )
    if len(figures) == 2:
        ours, theirs = figures.values()
        per_run = [a[0] / b[0] for a, b in zip(ours, theirs, strict=True)]
        print(
            "  CPU per request, this checkout / the other, per run: "
            + ", ".join(f"{r:.3f}" for r in per_run)
            + f" (median {median(per_run):.3f})"
        )


if __name__ == "__main__":
    main()
