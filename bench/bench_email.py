"""Campaign sending: one Hookhub email worker against a bare aiosmtplib sender, same sink.

**throughput** (the default): a campaign to N contacts (default 100,000), personalised (the
contact's name and a per-email param in the subject and the body, a tracked link and the open
pixel), queued in the database before the clock starts (a campaign row holding the content,
one ``emails`` row per contact, kind ``campaign``, as the campaigns code queues them). One
``EmailWorker`` in a process of its own, pinned to core 0, claims, renders, sends over
``--connections`` SMTP connections and records every outcome; the clock stops when the last
email is recorded ``sent``. The baseline, in another process pinned to core 0: ``connections``
``aiosmtplib.SMTP`` clients in a loop of ``sendmail`` over the same number of pre-serialized
messages (built before its clock starts). Both send to a fresh sink pinned to core 1 (Postfix's
``smtp-sink`` with ``--sink smtp-sink``, else ``bench/email_sink.py``, which checks that every
recipient's marker arrived exactly once). The ratio is worker/aiosmtplib messages per second;
sides alternate order from run to run.

**latency** (``--latency``): ``hookhub serve`` with the sink as its SMTP server; POST
/api/v1/emails of one email at ``--rate`` per second for ``--seconds``; each email's time from
the request to the end of its DATA at the sink (the sink runs in this process, so both times
come from one clock).

    .venv/bin/python bench/bench_email.py [--count 100000] [--connections 8] [--runs 3]
        [--sink asyncio|smtp-sink] [--database-url URL] [--profile]
    .venv/bin/python bench/bench_email.py --latency [--rate 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_email_transport import Sink, ensure_smtp_sink, send_aiosmtplib
from common import BENCH_DIR, machine_info, median, pinned, print_machine

from hookhub.email.transport import Envelope

SENDER = "shop@bench.example"
SUBJECT = "Hello {{ contact.FIRSTNAME }}, your code {{ params.code }}"
HTML = (
    "<html><body><p>Hello {{ contact.FIRSTNAME }},</p>"
    "<p>We have news for you this month: new arrivals, a sale, and a story. "
    "We have news for you this month: new arrivals, a sale, and a story. "
    "We have news for you this month: new arrivals, a sale, and a story.</p>"
    "<p>Your code: <b>{{ params.code }}</b>. {{ params.offer }}</p>"
    '<p><a href="https://shop.example/sale?utm_source=hookhub">Shop now</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
)


# -- the Hookhub side (a child process) ---------------------------------------------------------


def prepare(database_url: str, count: int, tag: str) -> None:
    """Contacts, a campaign and its queued emails (nothing timed)."""
    from sqlalchemy import insert

    from hookhub import ids
    from hookhub.core import jsoncodec
    from hookhub.store.database import Database
    from hookhub.store.email_rows import NewEmail
    from hookhub.store.emails import EmailStore
    from hookhub.store.migrate import migrate
    from hookhub.store.schema import contacts
    from hookhub.store.schema_email import campaigns

    db = Database(database_url)
    migrate(db)
    now = datetime.now(UTC)
    with db.write() as conn:
        rows = [
            {
                "email": f"contact{n}@bench.example",
                "attributes": jsoncodec.dumps({"FIRSTNAME": f"Name{n}"}).decode(),
                "unsubscribed": False,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(count)
        ]
        for start in range(0, count, 5000):
            conn.execute(insert(contacts), rows[start : start + 5000])
        campaign_id = conn.execute(
            insert(campaigns).returning(campaigns.c.id),
            {
                "name": "bench",
                "status": "sending",
                "subject": SUBJECT,
                "html": HTML,
                "params": jsoncodec.dumps({"offer": "20% off everything."}).decode(),
                "created_at": now,
                "updated_at": now,
            },
        ).scalar_one()
        first_id = conn.execute(
            contacts.select().with_only_columns(contacts.c.id).order_by(contacts.c.id).limit(1)
        ).scalar_one()
        store = EmailStore(conn)
        for start in range(0, count, 5000):
            store.insert_campaign_batch(
                [
                    NewEmail(
                        message_id=ids.email_message_id("bench.example"),
                        kind="campaign",
                        to_email=f"contact{n}@bench.example",
                        contact_id=first_id + n,
                        campaign_id=campaign_id,
                        sender={"email": SENDER, "name": "Shop"},
                        params={"code": f"C{n:06d}"},
                        headers={"X-Bench-Marker": f"{tag}-{n}"},
                        created_at=now,
                    )
                    for n in range(start, min(start + 5000, count))
                ]
            )
    db.dispose()


def run_worker(database_url: str, port: int, count: int, connections: int, profile: str) -> None:
    """Send every queued email; print {rate, cpu_per_message, rss_mb} as JSON."""
    import uvloop

    from hookhub.config import load_settings
    from hookhub.services import build_email_worker, build_services

    settings = load_settings(
        database_url=database_url,
        smtp_url=f"smtp://127.0.0.1:{port}?tls=off",
        smtp_connections=connections,
        public_url="https://hooks.bench.example",
        secret_key="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        log_level="WARNING",
    )
    services = build_services(settings)
    worker = build_email_worker(services)
    result: dict[str, float] = {}

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        cpu, wall = time.process_time(), time.perf_counter()
        while worker.sent < count:
            if task.done():
                task.result()
                raise SystemExit("the worker stopped")
            await asyncio.sleep(0.005)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        result.update(rate=count / wall, cpu_per_message=cpu / count, seconds=wall)
        worker.stop()
        await task
        await worker.transport.aclose()

    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    uvloop.run(main())
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    services.close()
    print(json.dumps(result), flush=True)


def run_bare(port: int, count: int, connections: int, tag: str) -> None:
    """aiosmtplib over pre-serialized messages; print {rate, cpu_per_message, rss_mb}."""
    from bench_email_transport import build_messages

    envelopes: list[Envelope] = build_messages(count, tag)
    cpu, wall = time.process_time(), time.perf_counter()
    sent = asyncio.run(send_aiosmtplib(port, envelopes, connections))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if sent != count:
        raise SystemExit(f"aiosmtplib sent {sent} of {count}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rate": count / wall, "cpu_per_message": cpu / count, "rss_mb": rss}))


def _child(args: list[str]) -> dict[str, float]:
    command = [*pinned(0), sys.executable, str(Path(__file__).resolve()), *args]
    out = subprocess.run(command, capture_output=True, check=False, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {out.stderr.decode()[-2000:]}")
    answer: dict[str, float] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return answer


def side(name: str, args: argparse.Namespace, workdir: Path, run: int) -> dict[str, float]:
    tag = f"r{run}{name[0]}"
    database_url = ""
    if name == "hookhub":
        if args.database_url:
            database_url = args.database_url
            _reset_postgres(database_url)
        else:
            database_url = f"sqlite:///{workdir / f'bench-{run}.db'}"
        prepare(database_url, args.count, tag)
    sink = Sink(args.sink, args.smtp_sink, workdir)
    try:
        if name == "hookhub":
            profile = str(workdir / "worker.prof") if args.profile and run == 0 else ""
            measured = _child(
                ["--child-worker", database_url, str(sink.port), str(args.count),
                 str(args.connections), profile]
            )  # fmt: skip
            if profile:
                stats = pstats.Stats(profile)
                stats.sort_stats("tottime").print_stats(25)
        else:
            measured = _child(
                ["--child-bare", str(sink.port), str(args.count), str(args.connections), tag]
            )
    finally:
        counted = sink.finish(args.count)
    if counted.messages != args.count:
        raise SystemExit(f"{name}: the sink counted {counted.messages} of {args.count}")
    if counted.unique is not None and (counted.unique, counted.duplicates) != (args.count, 0):
        raise SystemExit(f"{name}: {counted.unique} recipients, {counted.duplicates} duplicates")
    return measured


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def throughput(args: argparse.Namespace) -> None:
    args.smtp_sink = ensure_smtp_sink() if args.sink == "smtp-sink" else None
    if args.sink == "smtp-sink" and args.smtp_sink is None:
        raise SystemExit("smtp-sink is not installed and could not be (Debian package postfix)")
    info = machine_info(None)
    info["sink"] = args.smtp_sink if args.sink == "smtp-sink" else "bench/email_sink.py"
    info["database"] = "PostgreSQL" if args.database_url else "SQLite"
    print_machine(info)
    print(
        f"\na campaign to {args.count} contacts, {args.connections} connections;"
        f" senders pinned to core 0, sink to core 1\n"
    )
    ratios: list[float] = []
    runs: dict[str, list[dict[str, float]]] = {"hookhub": [], "aiosmtplib": []}
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-email-") as tmp:
        for run in range(args.runs):
            order = ["aiosmtplib", "hookhub"] if run % 2 == 0 else ["hookhub", "aiosmtplib"]
            measured = {name: side(name, args, Path(tmp), run) for name in order}
            for name, result in measured.items():
                runs[name].append(result)
            ratio = measured["hookhub"]["rate"] / measured["aiosmtplib"]["rate"]
            ratios.append(ratio)
            line = "  ".join(
                f"{name} {m['rate']:7.0f} msg/s {m['cpu_per_message'] * 1e6:6.1f} us CPU/msg"
                f" RSS {m['rss_mb']:.0f} MB"
                for name, m in measured.items()
            )
            print(f"run {run + 1}: {line}  ratio hookhub/aiosmtplib {ratio:.2f}x", flush=True)
    print("\nmedians:")
    for name, results in runs.items():
        print(
            f"  {name:<10} {median([r['rate'] for r in results]):7.0f} msg/s"
            f"  {median([r['cpu_per_message'] for r in results]) * 1e6:6.1f} us CPU/msg"
            f"  peak RSS {max(r['rss_mb'] for r in results):.0f} MB"
        )
    print(
        f"  ratio hookhub/aiosmtplib: median {median(ratios):.2f}x"
        f" of {[round(r, 2) for r in ratios]}"
    )


# -- latency -----------------------------------------------------------------------------------


class TimingSink(asyncio.Protocol):
    """Answers everything 250 and notes when each marked message's DATA ended."""

    arrivals: dict[str, float] = {}  # noqa: RUF012 (one sink per process)

    def __init__(self) -> None:
        self.buffer = b""
        self.in_data = False
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        buffer, out = self.buffer + data, []
        while buffer:
            if self.in_data:
                end = buffer.find(b"\r\n.\r\n")
                if end < 0:
                    break
                message, buffer = buffer[:end], buffer[end + 5 :]
                at = message.find(b"X-Bench-Marker: ")
                if at >= 0:
                    marker = message[at + 16 : message.find(b"\r\n", at)].decode()
                    self.arrivals[marker] = time.time()
                self.in_data = False
                out.append(b"250 2.0.0 Ok\r\n")
                continue
            end = buffer.find(b"\r\n")
            if end < 0:
                break
            command, buffer = buffer[:4].upper(), buffer[end + 2 :]
            if command == b"DATA":
                self.in_data = True
                out.append(b"354 go\r\n")
            elif command == b"EHLO":
                out.append(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif command == b"QUIT":
                out.append(b"221 bye\r\n")
            else:
                out.append(b"250 Ok\r\n")
        self.buffer = buffer
        if out:
            self.transport.write(b"".join(out))


async def _latency(args: argparse.Namespace, workdir: Path) -> list[float]:
    import httpx2 as httpx
    from common import free_port

    loop = asyncio.get_running_loop()
    sink_port = free_port()
    server = await loop.create_server(TimingSink, "127.0.0.1", sink_port)
    api_port = free_port()
    key = "hh_bench_key_0123456789abcdefghijklmnop"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOOKHUB_")},
        "HOOKHUB_DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'latency.db'}",
        "HOOKHUB_API_KEY": key,
        "HOOKHUB_SMTP_URL": f"smtp://127.0.0.1:{sink_port}?tls=off",
        "HOOKHUB_SECRET_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "HOOKHUB_LOG_LEVEL": "WARNING",
    }
    log = (workdir / "serve.log").open("wb")
    process = subprocess.Popen(
        [*pinned(0), sys.executable, "-m", "hookhub", "serve", "--port", str(api_port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{api_port}"
    sent: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{base}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            total = int(args.rate * args.seconds)
            started = time.perf_counter()

            async def one(n: int) -> None:
                marker = f"lat-{n}"
                body = {
                    "to": [{"email": f"user{n}@bench.example"}],
                    "subject": "Your order {{ params.n }}",
                    "html": '<p>Thanks! <a href="https://shop.example/o">Order</a></p>',
                    "params": {"n": n},
                    "headers": {"X-Bench-Marker": marker},
                }
                sent[marker] = time.time()
                answer = await client.post(f"{base}/api/v1/emails", json=body)
                if answer.status_code != 202:
                    raise SystemExit(f"POST /emails: {answer.status_code} {answer.text}")

            tasks = []
            for n in range(total):
                delay = started + n / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(n)))
            await asyncio.gather(*tasks)
            deadline = time.monotonic() + 30
            while len(TimingSink.arrivals) < total and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
    finally:
        process.terminate()
        process.wait(30)
        server.close()
    missing = [m for m in sent if m not in TimingSink.arrivals]
    if missing:
        raise SystemExit(f"{len(missing)} emails never reached the sink")
    return sorted((TimingSink.arrivals[m] - sent[m]) * 1000 for m in sent)


def latency(args: argparse.Namespace) -> None:
    print_machine(machine_info(None))
    print(f"\nPOST /api/v1/emails at {args.rate}/s for {args.seconds} s, hookhub serve on core 0\n")
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-latency-") as tmp:
        times = asyncio.run(_latency(args, Path(tmp)))

    def pct(p: float) -> float:
        return times[min(len(times) - 1, int(len(times) * p))]

    print(
        f"{len(times)} emails: p50 {pct(0.5):.1f} ms  p90 {pct(0.9):.1f} ms"
        f"  p99 {pct(0.99):.1f} ms  max {times[-1]:.1f} ms"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-worker":
        _, _, url, port, count, connections, profile = sys.argv
        run_worker(url, int(port), int(count), int(connections), profile)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--child-bare":
        _, _, port, count, connections, tag = sys.argv
        run_bare(int(port), int(count), int(connections), tag)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sink", choices=["asyncio", "smtp-sink"], default="asyncio")
    parser.add_argument("--database-url", help="PostgreSQL (emptied!); default: SQLite")
    parser.add_argument("--profile", action="store_true", help="cProfile the first worker run")
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH_DIR))
    if args.latency:
        latency(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
