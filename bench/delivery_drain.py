"""Draining a prefilled delivery queue, timed: by ``hookhub worker`` or by the bare sender.

Shared by the scenarios of bench_delivery.py that compare a drain with another side by side
(``throughput``: Hookhub against a bare aiohttp sender; ``ordering``: an ordered endpoint
against an unordered one): filling a database through Hookhub's own services, starting the
drainer pinned to its core, waiting until the receiver has everything and every delivery is
recorded, and what each drain cost (CPU of the sender, its PostgreSQL backends and the
receiver; what other processes took of the pinned cores).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import Proc, hookhub_command, pinned, process_cpu_seconds
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
    url: str,
    receiver_url: str,
    count: int,
    size: int,
    out: Path,
    options: str | None = None,
    *,
    contacts: int = 0,
) -> str:
    """One endpoint and ``count`` messages for it, through Hookhub's services; its secret.

    The messages are written with the transactional outbox in transactions of 1,000, so the
    fan-out creates the deliveries exactly as it does for real events. Their bodies are also
    written to ``out`` (JSON lines) for the bare sender. Without ``contacts``: contact.created
    messages, each about a contact of its own; with: contact.updated messages about that many
    contacts, written in rounds (each contact's first, then each one's second, ...).
    """
    from datetime import UTC, datetime

    from hookhub.config import load_settings
    from hookhub.outbound.outbox import build_message
    from hookhub.services import build_services
    from hookhub.store.migrate import migrate
    from hookhub.store.schema import messages

    settings = load_settings(database_url=url, allow_private_destinations=(PRIVATE,))
    services = build_services(settings)
    kind = "contact.updated" if contacts else "contact.created"
    try:
        migrate(services.db)
        spec = {"url": receiver_url, "events": [kind], **json.loads(options or "{}")}
        endpoint = services.endpoints.create(spec)
        for start in range(0, count, 1000):
            batch = [
                build_message(kind, _data(i, size, contacts), datetime.now(UTC))
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


def _data(index: int, size: int, contacts: int) -> dict[str, Any]:
    """The ``index``-th message's data: a new contact, or the (index // contacts)-th change
    of contact ``index % contacts + 1``."""
    data = contact_data(index, size)
    if not contacts:
        return data
    step = index // contacts
    data["contact_id"] = index % contacts + 1
    data["changes"] = {"FIRSTNAME": {"old": f"v{step}", "new": f"v{step + 1}"}}
    return data


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
    argv = [
        sys.executable,
        str(BENCH / "bench_delivery.py"),
        "prefill",
        url,
        receiver_url,
        str(count),
        str(size),
        str(out),
    ]
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
