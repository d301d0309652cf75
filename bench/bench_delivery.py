"""Outbound delivery benchmarks: throughput, end-to-end latency, fan-out, a black-holed endpoint.

Scenarios, each run alone by its subcommand:

- ``throughput``: N contact.created messages (about 1 KB each) for one endpoint are written
  through Hookhub's services before timing; then ``hookhub worker`` (pinned to core 0) drains
  them to a fast aiohttp receiver (bench/delivery_receiver.py, pinned to core 1) until every
  delivery is ``succeeded`` in the database. Side by side in the same run, the baseline: a bare
  aiohttp sender (bench/delivery_sender.py, core 0, no database) posts the same bodies, signed
  the Standard Webhooks way, to the same receiver with the same concurrency. Rates and the ratio.
- ``latency``: ``hookhub serve`` on SQLite (core 0); the load generator (bench/delivery_load.py,
  core 1) creates contacts with ``POST /api/v1/contacts`` at a steady, open-loop rate and its
  own receiver times each signed contact.created from the API call to its arrival.
- ``fanout``: one event to 100 endpoints (one receiver, 100 paths): time from the API call to
  the 100th delivery for events sent one at a time, the drain rate of a burst, and steady rates
  (fractions of that drain rate).
- ``blackhole``: 50 healthy endpoints with and without one black-holed endpoint (it accepts the
  connection and never answers), same steady rate: the healthy deliveries' latency compared.

Traffic goes to 127.0.0.1 only; every process is ended and every database removed at the end.

    .venv/bin/python bench/bench_delivery.py throughput --backend sqlite [--messages 20000]
    .venv/bin/python bench/bench_delivery.py throughput --backend postgresql
    .venv/bin/python bench/bench_delivery.py throughput --compare-source /path/to/other/checkout
    .venv/bin/python bench/bench_delivery.py latency [--rate 200 --duration 30]
    .venv/bin/python bench/bench_delivery.py fanout
    .venv/bin/python bench/bench_delivery.py blackhole [--rate 4 --duration 30 --timeout 15]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    DEFAULT_POSTGRES_URL,
    Proc,
    Server,
    free_port,
    fresh_database,
    hookhub_command,
    machine_info,
    median,
    pinned,
    postgres_reachable,
    print_machine,
    process_cpu_seconds,
)
from delivery_scenarios import add_scenario_commands
from delivery_support import CoreWatch, contact_data, wait_until

SENDER_CORE = 0
RECEIVER_CORE = 1
BENCH = Path(__file__).resolve().parent
PRIVATE = "127.0.0.0/8"


@dataclass
class Drain:
    who: str
    delivered: int
    seconds: float
    cpu_seconds: float
    wall_seconds: float
    """From starting the process to seeing the work done (includes its start-up)."""
    postgres_cpu_seconds: float = 0.0
    receiver_cpu_seconds: float = 0.0
    others_sender_core: float = 0.0
    """Share of the sender's core that other processes used meanwhile (0..1)."""
    others_receiver_core: float = 0.0

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else float("nan")


# -- the database and its messages ----------------------------------------------------------------


def prefill(
    url: str, receiver_url: str, count: int, size: int, out: Path, options: str | None = None
) -> str:
    """One endpoint and ``count`` messages for it, through Hookhub's services; its secret.

    The messages are written with the transactional outbox in transactions of 1,000, so the
    fan-out creates the deliveries exactly as it does for real events. Their bodies are also
    written to ``out`` (JSON lines) for the bare sender.
    """
    from datetime import UTC, datetime

    from hookhub.config import load_settings
    from hookhub.outbound.outbox import build_message
    from hookhub.services import build_services
    from hookhub.store.migrate import migrate
    from hookhub.store.schema import messages

    settings = load_settings(database_url=url, allow_private_destinations=(PRIVATE,))
    services = build_services(settings)
    try:
        migrate(services.db)
        spec = {"url": receiver_url, "events": ["contact.created"], **json.loads(options or "{}")}
        endpoint = services.endpoints.create(spec)
        for start in range(0, count, 1000):
            batch = [
                build_message("contact.created", contact_data(i, size), datetime.now(UTC))
                for i in range(start, min(count, start + 1000))
            ]
            with services.db.write() as conn:
                services.outbox.writer(conn).write(batch)
        with services.db.read() as conn, out.open("w") as lines:
            query = messages.select().with_only_columns(messages.c.id, messages.c.payload)
            for row in conn.execute(query.order_by(messages.c.id)):
                lines.write(json.dumps({"id": row.id, "body": row.payload}) + "\n")
        return str(endpoint.secret)
    finally:
        services.close()


def prefill_with(
    source: Path | None,
    url: str,
    receiver_url: str,
    count: int,
    size: int,
    out: Path,
    options: str | None = None,
) -> str:
    """:func:`prefill` by the package that will drain: the code under test, or (``source``) the
    ``--compare-source`` checkout in a subprocess, so that each version writes its own schema
    and its own form of the endpoint's secret (sealed at rest since issue 11)."""
    if source is None:
        return prefill(url, receiver_url, count, size, out, options)
    argv = [sys.executable, __file__, "prefill", url, receiver_url, str(count), str(size), str(out)]
    done = subprocess.run(
        argv,
        env={**os.environ, "PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def delivery_facts(url: str) -> dict[str, Any]:
    """Counts by status, attempts, and the first attempt and last record (worker's clock)."""
    from sqlalchemy import func, select

    from hookhub.store.database import Database
    from hookhub.store.deliveries import DeliveryStore
    from hookhub.store.schema import deliveries, delivery_attempts

    db = Database(url, pool_size=1)
    try:
        with db.read() as conn:
            first, attempts = conn.execute(
                select(func.min(delivery_attempts.c.attempted_at), func.count())
            ).one()
            last = conn.execute(select(func.max(deliveries.c.updated_at))).scalar_one()
            counts = DeliveryStore(conn).counts_by_status()
    finally:
        db.dispose()
    return {"counts": counts, "attempts": attempts, "first": first, "last": last}


def backends_cpu_seconds(url: str) -> float:
    """CPU time of the PostgreSQL backends serving the database at ``url`` (but this one)."""
    import psycopg

    from hookhub.store.database import normalize_url

    conninfo = normalize_url(url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(process_cpu_seconds(int(pid)) for (pid,) in rows)


# -- the receiver ---------------------------------------------------------------------------------


def receiver_call(port: int, path: str, body: bytes | None = None) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body)
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    return json.loads(text) if path == "/_stats" else {}


# -- one drain each -------------------------------------------------------------------------------


def run_bare_sender(
    port: int, receiver_pid: int, secret: str, messages: Path, count: int, concurrency: int
) -> Drain:
    receiver_call(port, "/_reset", secret.encode())
    argv = [
        *pinned(SENDER_CORE),
        sys.executable,
        str(BENCH / "delivery_sender.py"),
        f"--url=http://127.0.0.1:{port}/hook",
        f"--secret={secret}",
        f"--messages={messages}",
        f"--concurrency={concurrency}",
    ]
    receiver_cpu = process_cpu_seconds(receiver_pid)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cores = CoreWatch(SENDER_CORE).start(), CoreWatch(RECEIVER_CORE).start()
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    wall = time.monotonic() - started
    for watch in cores:
        watch.stop()
    receiver_used = process_cpu_seconds(receiver_pid) - receiver_cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"bare sender failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    stats = receiver_call(port, "/_stats")
    check_receiver(stats, count, "bare sender")
    if result["ok"] != count:
        raise RuntimeError(f"bare sender: {result['ok']} of {count} answered 2xx")
    return Drain(
        who="bare aiohttp sender",
        delivered=result["ok"],
        seconds=result["elapsed"],
        cpu_seconds=cpu,
        wall_seconds=wall,
        receiver_cpu_seconds=receiver_used,
        others_sender_core=cores[0].others(cpu),
        others_receiver_core=cores[1].others(receiver_used),
    )


def run_hookhub_worker(
    url: str,
    port: int,
    receiver_pid: int,
    secret: str,
    count: int,
    concurrency: int,
    workdir: Path,
    backend: str,
    source: Path | None = None,
) -> Drain:
    """Drain with ``hookhub worker``; ``source``: run the hookhub package found there instead."""
    receiver_call(port, "/_reset", secret.encode())
    env = {
        "HOOKHUB_DATABASE_URL": url,
        "HOOKHUB_ALLOW_PRIVATE_DESTINATIONS": PRIVATE,
        "HOOKHUB_ENDPOINT_CONCURRENCY": str(concurrency),
        "HOOKHUB_LOG_LEVEL": "WARNING",
    }
    if source is not None:
        env["PYTHONPATH"] = str(source)
    argv = [*pinned(SENDER_CORE), *hookhub_command(), "worker"]
    receiver_cpu = process_cpu_seconds(receiver_pid)
    cores = CoreWatch(SENDER_CORE).start(), CoreWatch(RECEIVER_CORE).start()
    started = time.monotonic()
    with Proc("hookhub worker", argv, log_path=workdir / "worker.log", env=env) as worker:
        deadline = max(120.0, count / 200)

        def received_all() -> bool:
            if not worker.alive():
                raise RuntimeError(f"hookhub worker exited:\n{worker.log()}")
            return int(receiver_call(port, "/_stats")["count"]) >= count

        if not wait_until(received_all, deadline, interval=0.1):
            raise RuntimeError(f"hookhub worker delivered too little in {deadline:.0f} s")

        def recorded_all() -> bool:
            return int(delivery_facts(url)["counts"].get("succeeded", 0)) >= count

        if not wait_until(recorded_all, 60, interval=0.05):
            raise RuntimeError("hookhub worker did not record every success within 60 s")
        wall = time.monotonic() - started
        cpu = process_cpu_seconds(worker.pid)
        for watch in cores:
            watch.stop()
        # The worker's own backends: they were started by it, so their CPU time is all its.
        pg_used = backends_cpu_seconds(url) if backend == "postgresql" else 0.0
        receiver_used = process_cpu_seconds(receiver_pid) - receiver_cpu
        worker.stop(signal.SIGTERM)
    facts = delivery_facts(url)
    check_receiver(receiver_call(port, "/_stats"), count, "hookhub worker")
    if facts["counts"] != {"succeeded": count} or facts["attempts"] != count:
        raise RuntimeError(f"unexpected delivery state: {facts}")
    return Drain(
        who=f"hookhub worker ({backend})" if source is None else f"hookhub from {source}",
        delivered=count,
        seconds=facts["last"] - facts["first"],
        cpu_seconds=cpu,
        wall_seconds=wall,
        postgres_cpu_seconds=pg_used,
        receiver_cpu_seconds=receiver_used,
        others_sender_core=cores[0].others(cpu),
        others_receiver_core=cores[1].others(receiver_used),
    )


def check_receiver(stats: dict[str, Any], count: int, who: str) -> None:
    if stats["bad_signatures"]:
        raise RuntimeError(f"{who}: {stats['bad_signatures']} signatures did not verify")
    if stats["distinct_ids"] != count:
        raise RuntimeError(f"{who}: receiver saw {stats['distinct_ids']} distinct ids, not {count}")


# -- the throughput scenario ----------------------------------------------------------------------


def throughput(args: argparse.Namespace) -> None:
    backend: str = args.backend
    if backend == "postgresql":
        problem = postgres_reachable(args.postgres_url)
        if problem:
            sys.exit(f"PostgreSQL is not reachable at {args.postgres_url}: {problem}")
    print_machine(machine_info(args.postgres_url))
    print(
        f"\nthroughput on {backend}: {args.messages} messages of ~{args.body_bytes} B to one"
        f" endpoint, concurrency {args.concurrency} (HOOKHUB_ENDPOINT_CONCURRENCY and the bare"
        f" sender's connections), sender on core {SENDER_CORE}, receiver on core"
        f" {RECEIVER_CORE}, {args.runs} runs\n",
        flush=True,
    )
    port = free_port()
    drains: dict[str, list[Drain]] = {"bare": [], "hookhub": [], "compare": []}
    contenders = ["bare", "hookhub", *(["compare"] if args.compare_source else [])]
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-delivery-") as tmp:
        workdir = Path(tmp)
        receiver_argv = [
            *pinned(RECEIVER_CORE),
            sys.executable,
            str(BENCH / "delivery_receiver.py"),
            f"--port={port}",
        ]
        health = f"http://127.0.0.1:{port}/_stats"
        log = workdir / "receiver.log"
        with Server("receiver", receiver_argv, health_url=health, log_path=log) as receiver:
            for run in range(args.runs):
                shift = run % len(contenders)
                for who in contenders[shift:] + contenders[:shift]:
                    # A fresh database for each contender, filled the same way before timing.
                    with fresh_database(backend, args.postgres_url, workdir, f"{who}{run}") as url:
                        messages = workdir / "messages.jsonl"
                        receiver_url = f"http://127.0.0.1:{port}/hook"
                        size = args.body_bytes
                        source = args.compare_source if who == "compare" else None
                        # --endpoint-options (filter, transform) apply to the code under test.
                        options = args.endpoint_options if who == "hookhub" else None
                        secret = prefill_with(
                            source, url, receiver_url, args.messages, size, messages, options
                        )
                        if who == "bare":
                            drain = run_bare_sender(
                                port,
                                receiver.pid,
                                secret,
                                messages,
                                args.messages,
                                args.concurrency,
                            )
                        else:
                            drain = run_hookhub_worker(
                                url,
                                port,
                                receiver.pid,
                                secret,
                                args.messages,
                                args.concurrency,
                                workdir,
                                backend,
                                source,
                            )
                    drains[who].append(drain)
                    print_drain(run, drain)
                ratio = drains["hookhub"][-1].rate / drains["bare"][-1].rate
                print(f"  run {run + 1}: hookhub / bare = {ratio:.2f}\n", flush=True)
    print_throughput_summary(backend, drains, args.goal)


def print_drain(run: int, drain: Drain) -> None:
    pg = f", PostgreSQL {drain.postgres_cpu_seconds:.1f} s" if drain.postgres_cpu_seconds else ""
    print(
        f"  run {run + 1}: {drain.who:<28} {drain.rate:8,.0f} deliveries/s"
        f"  ({drain.delivered} in {drain.seconds:.2f} s; process start to done"
        f" {drain.wall_seconds:.1f} s)\n"
        f"         CPU: sender {drain.cpu_seconds:.1f} s{pg}, receiver"
        f" {drain.receiver_cpu_seconds:.1f} s; other processes took"
        f" {drain.others_sender_core:.0%} of core {SENDER_CORE} and"
        f" {drain.others_receiver_core:.0%} of core {RECEIVER_CORE}",
        flush=True,
    )


def print_throughput_summary(backend: str, drains: dict[str, list[Drain]], goal: float) -> None:
    bare, hookhub, compare = drains["bare"], drains["hookhub"], drains["compare"]
    ratios = [h.rate / b.rate for h, b in zip(hookhub, bare, strict=True)]
    ratio = median(ratios)
    print(f"summary ({backend}, medians of {len(bare)} runs):")
    print(f"  bare aiohttp sender          {median([d.rate for d in bare]):8,.0f} signed POSTs/s")
    print(
        f"  hookhub worker ({backend:<10})  {median([d.rate for d in hookhub]):8,.0f}"
        " durable deliveries/s"
    )
    print(
        f"  ratio hookhub / bare         {ratio:8.2f}  (per run: "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f"; goal >= {goal:.2f}: {'met' if ratio >= goal else 'MISSED'})"
    )
    if compare:
        cmp_ratios = [c.rate / b.rate for c, b in zip(compare, bare, strict=True)]
        print(
            f"  {compare[0].who}: {median([d.rate for d in compare]):,.0f} deliveries/s,"
            f" ratio to bare {median(cmp_ratios):.2f} (per run: "
            + ", ".join(f"{r:.2f}" for r in cmp_ratios)
            + ")"
        )
    for drain_list in (bare, hookhub, compare):
        if drain_list:
            cpu = median([d.cpu_seconds / d.delivered * 1e6 for d in drain_list])
            print(f"  CPU per delivery, {drain_list[0].who}: {cpu:.0f} us")
    if backend == "postgresql":
        pg = median([d.postgres_cpu_seconds / d.delivered * 1e6 for d in hookhub])
        print(f"  CPU per delivery of the worker's PostgreSQL backends: {pg:.0f} us (not pinned)")


# -- command line ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="admin URL")
    commands = parser.add_subparsers(dest="scenario", required=True)
    tp = commands.add_parser("throughput", help="durable signed deliveries/s vs a bare sender")
    tp.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    tp.add_argument("--messages", type=int, default=20_000)
    tp.add_argument("--body-bytes", type=int, default=1024)
    tp.add_argument("--concurrency", type=int, default=64)
    tp.add_argument("--runs", type=int, default=3)
    tp.add_argument("--goal", type=float, default=0.6)
    tp.add_argument(
        "--compare-source",
        type=Path,
        default=None,
        help="also drain with the hookhub package in this directory (e.g. another checkout)",
    )
    tp.add_argument(
        "--endpoint-options",
        default=None,
        help='JSON merged into the endpoint, e.g. \'{"filter": "data.email", "transform":'
        ' {"preset": "slack"}}\' (the code under test only)',
    )
    tp.set_defaults(func=throughput)
    # Internal: --compare-source prefills its database with its own package (see prefill_with).
    pf = commands.add_parser("prefill")
    for name in ("url", "receiver_url", "count", "size", "out"):
        pf.add_argument(name)
    pf.set_defaults(
        func=lambda a: print(prefill(a.url, a.receiver_url, int(a.count), int(a.size), Path(a.out)))
    )
    add_scenario_commands(commands)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
