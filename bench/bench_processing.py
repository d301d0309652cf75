"""Inbound rules processing: how fast ``hookhub worker`` drains a backlog of Stripe events.

The other half of the inbound benchmark (bench_inbound.py measures receiving): a backlog of N
acknowledged Stripe ``customer.created`` requests (unique ids and emails, the bodies of
bench/inbound_requests.py) is written straight into a fresh database's request log, as the
receiver would have logged it, under one inbound webhook with the Stripe preset rules. Then
``hookhub worker`` (pinned to core 0) is started and the backlog is timed until no request is
left ``received``: requests/s from the worker's start (start-up included, as in a real
restart) and the worker's CPU time per request. Every request must end ``processed``, with its
contact and custom event.

``--compare-source DIR`` also drains with the ``hookhub`` package found in DIR (e.g. a
checkout of an earlier commit: ``git archive <rev> hookhub | tar -x -C DIR``), alternating
with this one in each run, so a change is measured before and after on the same machine.

    .venv/bin/python bench/bench_processing.py [--requests 20000] [--runs 3]
    .venv/bin/python bench/bench_processing.py --backend postgresql
    .venv/bin/python bench/bench_processing.py --compare-source /tmp/before
    .venv/bin/python bench/bench_processing.py --history 0,2000000 --requests 20000

Besides the start-to-drained figures, each drain is also measured from its first committed
batch ("steady", start-up left out: the worker's imports cost as much as a few thousand
requests). In the same runs, bench/processing_baseline.py drains the same backlog with the
driver alone (the bare loop): the ratio of CPU per request is Hookhub's cost against it.
``--history`` puts that many already-processed requests in the log first (several sizes,
comma-separated, each measured in every run): per-request cost must not grow with the log.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    DEFAULT_POSTGRES_URL,
    Proc,
    database_name,
    fresh_database,
    hookhub_command,
    machine_info,
    median,
    pinned,
    postgres_cpu_by_pid,
    postgres_reachable,
    print_machine,
    process_cpu_seconds,
)
from delivery_support import wait_until
from inbound_backlog import RequestLog

WORKER_CORE = 0
TAG = "proc"  # the emails are proc-<n>@..., the event ids evt_proc...

PREFILL = """
import json, sys, time
sys.path.insert(0, {bench!r})
from inbound_requests import customer_created_bodies
from hookhub.config import load_settings
from hookhub.services import build_services
from hookhub.store.inbound import InboundRequestStore, LogEntry
from hookhub.store.migrate import migrate

services = build_services(load_settings(database_url={url!r}))
try:
    migrate(services.db)
    hook, _ = services.inbound.create(
        {{"name": "bench", "source": "stripe", "secret": "whsec_" + "ab" * 16}}
    )
    # History: requests processed long ago, only there to make the log as large as asked.
    history_sql = (
        "INSERT INTO inbound_requests (webhook_id, received_at, status, http_status, headers,"
        " body, event_type, dedupe_key, actions, processed_at)"
        " VALUES (?, ?, 'processed', 202, '[]', ?, 'customer.created', ?, '[]', ?)"
    )
    if services.db.backend == "postgresql":
        history_sql = history_sql.replace("?", "%s")
    for start in range(0, {history}, 20000):
        old = customer_created_bodies("hist", min(20000, {history} - start), start=start)
        with services.db.write() as conn:
            cursor = conn.connection.cursor()
            then = time.time() - 86400
            cursor.executemany(
                history_sql,
                [
                    (hook.id, then, body, "evt_hist%d" % (start + n), then)
                    for n, body in enumerate(old)
                ],
            )
            cursor.close()
    bodies = customer_created_bodies({tag!r}, {count})
    for start in range(0, len(bodies), 1000):
        entries = [
            LogEntry(
                webhook_id=hook.id,
                received_at=time.time(),
                status="received",
                http_status=202,
                headers="[]",
                body=body,
                event_type="customer.created",
                dedupe_key=json.loads(body)["id"],
            )
            for body in bodies[start : start + 1000]
        ]
        with services.db.write() as conn:
            InboundRequestStore(conn).append(entries)
finally:
    services.close()
"""


@dataclass
class Drain:
    who: str
    requests: int
    seconds: float
    cpu_seconds: float
    steady_requests: int = 0
    """From the first batch committed to the end: start-up left out."""
    steady_seconds: float = 0.0
    steady_cpu_seconds: float = 0.0
    steady_db_cpu_seconds: float | None = None
    """PostgreSQL: its backends' CPU over the same span (the benchmark database's only)."""

    @property
    def steady_rate(self) -> float:
        return self.steady_requests / self.steady_seconds if self.steady_seconds else 0.0

    @property
    def steady_db_cpu_us(self) -> float | None:
        if self.steady_db_cpu_seconds is None or not self.steady_requests:
            return None
        return self.steady_db_cpu_seconds / self.steady_requests * 1e6

    @property
    def steady_cpu_us(self) -> float:
        return self.steady_cpu_seconds / self.steady_requests * 1e6 if self.steady_requests else 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.requests * 1e6


def prefill(url: str, count: int, history: int = 0) -> None:
    """The backlog, written with this checkout's code (the schema is the same on both sides),
    after ``history`` requests processed a day ago."""
    script = PREFILL.format(
        bench=str(Path(__file__).parent), url=url, count=count, tag=TAG, history=history
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", script], check=True, env=env)


def drain(url: str, count: int, workdir: Path, source: Path | None, history: int = 0) -> Drain:
    log = RequestLog(url)
    env = {"HOOKHUB_DATABASE_URL": url, "HOOKHUB_LOG_LEVEL": "WARNING"}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    argv = [*pinned(WORKER_CORE), *hookhub_command(), "worker"]
    started = time.monotonic()
    with Proc("hookhub worker", argv, log_path=workdir / "worker.log", env=env) as worker:
        first: list[tuple[int, float, float]] = []  # pending, time, CPU at the first progress
        database = database_name(url) if not url.startswith("sqlite") else None
        db_first: dict[int, float] = {}

        def drained() -> bool:
            if not worker.alive():
                raise RuntimeError(f"hookhub worker exited:\n{worker.log()}")
            pending = log.pending()
            if not first and pending < count:
                first.append((pending, time.monotonic(), process_cpu_seconds(worker.pid)))
                if database is not None:
                    db_first.update(postgres_cpu_by_pid(database))
            return pending == 0

        if not wait_until(drained, max(300.0, count / 20), interval=0.05):
            raise RuntimeError(f"the backlog did not drain; {log.pending()} left")
        seconds = time.monotonic() - started
        cpu = process_cpu_seconds(worker.pid)
        db_cpu = None
        if database is not None:
            db_end = postgres_cpu_by_pid(database)
            db_cpu = sum(end - db_first.get(pid, 0.0) for pid, end in db_end.items())
        worker.stop(signal.SIGTERM)
    check(log, count, history)
    pending, at, cpu_at = first[0]
    return Drain(
        who="hookhub" if source is None else f"hookhub from {source}",
        requests=count,
        seconds=seconds,
        cpu_seconds=cpu,
        steady_requests=pending,
        steady_seconds=started + seconds - at,
        steady_cpu_seconds=cpu - cpu_at,
        steady_db_cpu_seconds=db_cpu,
    )


def bare(url: str, count: int, history: int) -> Drain:
    """The same backlog drained by processing_baseline.py (the driver alone), pinned likewise."""
    script = Path(__file__).parent / "processing_baseline.py"
    argv = [*pinned(WORKER_CORE), sys.executable, str(script), url]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=900)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    check(RequestLog(url), count, history)
    return Drain(
        who="bare driver loop",
        requests=figures["requests"],
        seconds=figures["seconds"],
        cpu_seconds=figures["cpu_seconds"],
        steady_requests=figures["requests"],
        steady_seconds=figures["seconds"],
        steady_cpu_seconds=figures["cpu_seconds"],
    )


def check(log: RequestLog, count: int, history: int = 0) -> None:
    messages, processed = log.totals()
    processed -= history
    contacts = len(log.contact_emails(TAG))
    events = log.events(TAG)
    if (processed, contacts, events) != (count, count, count):
        raise RuntimeError(
            f"{count} requests: {processed} processed, {contacts} contacts, {events} events"
        )
    if messages.get("contact.created") != count or messages.get("event.tracked") != count:
        raise RuntimeError(f"{count} requests wrote these outbox messages: {messages}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compare-source", type=Path, default=None)
    parser.add_argument(
        "--history",
        default="0",
        help="comma-separated sizes of processed history already in the log (e.g. 20000,2000000);"
        " each size is measured in every run",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the bare driver loop (processing_baseline.py)",
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.backend == "postgresql":
        problem = postgres_reachable(args.postgres_url)
        if problem:
            sys.exit(f"PostgreSQL is not reachable at {args.postgres_url}: {problem}")
    print_machine(machine_info(args.postgres_url if args.backend == "postgresql" else None))
    print(
        f"\nprocessing on {args.backend}: a backlog of {args.requests:,} Stripe customer.created"
        f" requests drained by hookhub worker on core {WORKER_CORE}, {args.runs} runs\n"
    )
    sources: list[Path | str | None] = [None]
    if args.compare_source is not None:
        sources.append(args.compare_source.resolve())
    if not args.no_baseline:
        sources.append("bare")
    histories = [int(h) for h in args.history.split(",")]
    results: dict[str, list[Drain]] = {}
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-processing-") as tmp:
        workdir = Path(tmp)
        for run in range(1, args.runs + 1):
            for history in histories:
                order = sources if run % 2 else list(reversed(sources))
                for number, source in enumerate(order):
                    label = f"hookhub_bench_processing_{run}_{number}"
                    with fresh_database(args.backend, args.postgres_url, workdir, label) as url:
                        prefill(url, args.requests, history)
                        if source == "bare":
                            result = bare(url, args.requests, history)
                        else:
                            assert not isinstance(source, str)
                            result = drain(url, args.requests, workdir, source, history)
                    result.who += f" (log {history + args.requests:,})"
                    results.setdefault(result.who, []).append(result)
                    print(
                        f"  run {run}: {result.who:<46} {result.rate:7,.0f} req/s"
                        f" ({result.requests:,} in {result.seconds:.1f} s,"
                        f" {result.cpu_us:,.0f} us CPU a request); after start-up:"
                        f" {result.steady_rate:7,.0f} req/s, {result.steady_cpu_us:,.0f} us CPU"
                        " a request"
                        + (
                            f" (+ {result.steady_db_cpu_us:,.0f} us in PostgreSQL)"
                            if result.steady_db_cpu_us is not None
                            else ""
                        )
                        + "; every request processed"
                    )
    print(f"\nsummary ({args.backend}, medians of {args.runs} runs; 'steady': start-up left out):")
    for who, drains in results.items():
        print(
            f"  {who:<46} {median([d.rate for d in drains]):7,.0f} req/s"
            f" {median([d.cpu_us for d in drains]):7,.0f} us CPU a request;"
            f" steady {median([d.steady_rate for d in drains]):7,.0f} req/s"
            f" {median([d.steady_cpu_us for d in drains]):7,.0f} us CPU a request"
            f" (one core's worth: {1e6 / median([d.steady_cpu_us for d in drains]):7,.0f}/s)"
        )
        db = [d.steady_db_cpu_us for d in drains if d.steady_db_cpu_us is not None]
        if db:
            both = median([d.steady_cpu_us + (d.steady_db_cpu_us or 0.0) for d in drains])
            print(
                f"  {'':<46} + {median(db):,.0f} us CPU a request in PostgreSQL"
                f" (worker and PostgreSQL on one core's worth: {1e6 / both:7,.0f}/s)"
            )
    bare_runs = {who: d for who, d in results.items() if who.startswith("bare")}
    for who, drains in results.items():
        if who.startswith("bare"):
            continue
        log_size = who[who.index("(log") :]
        base = next((d for w, d in bare_runs.items() if w.endswith(log_size)), None)
        if base is None:
            continue
        ratios = [b.steady_cpu_us / d.steady_cpu_us for d, b in zip(drains, base, strict=False)]
        rates = [d.steady_rate / b.steady_rate for d, b in zip(drains, base, strict=False)]
        print(
            f"  {who:<46} vs the bare loop of the same run: CPU {median(ratios):.2f}x"
            f" ({', '.join(f'{r:.2f}' for r in ratios)}), rate {median(rates):.2f}x"
            f" ({', '.join(f'{r:.2f}' for r in rates)})"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps({who: [vars(d) for d in drains] for who, drains in results.items()})
        )


if __name__ == "__main__":
    main()
