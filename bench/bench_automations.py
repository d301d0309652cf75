"""Automations: steps/s when a crowd of waiting enrollments comes due, the worker's memory with
a million waiting, and how late a due step runs.

**steps** (the default): N contacts (default 100,000) each enrolled in one automation and
waiting on its ``wait`` step (``pause``), all due at the same moment; after it come
``add_to_list``, ``track_event`` and ``update_contact``. Two sides, each on a fresh database
prefilled the same way, in this process pinned to one core, alternating order from run to run:

* ``hookhub``: ``AutomationEngine.run_due`` (what the worker loop calls) with a clock moved past
  the due time, until nothing is due; every enrollment ends ``completed`` having run the three
  steps (checked in the database: the list has N members, N events, N contacts updated);
* ``baseline``: the bare claim-and-update loop over the same rows: claim a batch of due rows
  (``UPDATE ... RETURNING`` on SQLite; ``SELECT ... FOR UPDATE SKIP LOCKED`` + ``UPDATE`` on
  PostgreSQL), then mark each finished (``executemany``), one transaction per batch, nothing
  else.

Steps/s counts Hookhub's three action steps per enrollment; the baseline's "steps" are its
row updates (one claim and one update of a row per step). The ratio is Hookhub's steps/s over
the baseline's rows/s; the enrollments/s ratio (a whole enrollment against one row) is printed
too.
CPU: this process (and PostgreSQL's server processes for that backend).

**memory** (``--memory``): 1,000,000 enrollments waiting (a tenth of them due now), a real
``hookhub worker`` process working through the due ones; its RSS sampled every 0.2 s.

**latency** (``--latency``): 100,000 enrollments waiting far in the future and ``--due`` more
whose waits end at moments spread over ``--seconds``; a real ``hookhub worker``; each due
enrollment's lateness is when its wait was recorded completed minus when it was due.

    .venv/bin/python bench/bench_automations.py [--count 100000] [--runs 3]
        [--backend sqlite|postgresql] [--postgres-url URL] [--batch 500]
    .venv/bin/python bench/bench_automations.py --memory [--count 1000000]
    .venv/bin/python bench/bench_automations.py --latency [--due 2000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import (
    BENCH_SECRET_KEY,
    DEFAULT_POSTGRES_URL,
    Proc,
    fresh_database,
    hookhub_command,
    machine_info,
    median,
    postgres_cpu_seconds,
    print_machine,
)
from sqlalchemy import Connection, func, insert, select, text

from hookhub.clock import FakeClock
from hookhub.config import load_settings
from hookhub.core import jsoncodec
from hookhub.services import Services, build_services
from hookhub.store.automations import AutomationStore
from hookhub.store.migrate import migrate
from hookhub.store.schema import contacts, custom_events, list_members, lists
from hookhub.store.schema_automation import automation_enrollments, automation_step_log

START = 1_800_000_000.0  # the enrollments' wait began here (epoch seconds, a fake clock)
WAIT = 86_400.0
CHUNK = 20_000


def steps(list_id: int) -> list[dict[str, Any]]:
    return [
        {"id": "pause", "wait": "1d"},
        {"id": "join", "add_to_list": list_id},
        {"id": "note", "track_event": {"name": "woke_up"}},
        {"id": "stage", "update_contact": {"attributes": {"STAGE": "'woken'"}}},
    ]


def prefill(services: Services, count: int, *, due_now: int | None = None) -> int:
    """N contacts, each waiting on ``pause`` (due at START + WAIT, or ``due_now`` of them due
    at once on the real clock and the rest a year later); answers the automation's id."""
    now = datetime.now(UTC)
    with services.db.write() as conn:
        list_id = int(
            conn.execute(
                insert(lists).values(name="Woken", created_at=now).returning(lists.c.id)
            ).scalar_one()
        )
        automation = AutomationStore(conn).create(
            {
                "name": "bench",
                "trigger": {"type": "manual"},
                "reentry": "never",
                "exit_on_unsubscribe": True,
                "steps": steps(list_id),
            },
            now,
        )
    for start in range(0, count, CHUNK):
        stop = min(count, start + CHUNK)
        with services.db.write() as conn:
            first = _insert_contacts(conn, start, stop, now)
            rows = []
            for n in range(stop - start):
                if due_now is None:
                    due = START + WAIT
                elif start + n < due_now:
                    due = time.time()
                else:
                    due = time.time() + 365 * 86400.0
                started = due - WAIT  # the wait's end is its start plus its length
                rows.append(
                    {
                        "automation_id": automation.id,
                        "contact_id": first + n,
                        "status": "active",
                        "step_id": "pause",
                        "step_started_at": started,
                        "matched": False,
                        "due_at": due,
                        "trigger": '{"type":"manual","data":{}}',
                        "entered_at": started,
                        "updated_at": started,
                    }
                )
            conn.execute(insert(automation_enrollments), rows)
    return automation.id


def _insert_contacts(conn: Connection, start: int, stop: int, now: datetime) -> int:
    rows = [
        {
            "email": f"c{n}@example.com",
            "attributes": jsoncodec.dumps({"FIRSTNAME": f"C{n}"}).decode(),
            "unsubscribed": False,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(start, stop)
    ]
    conn.execute(insert(contacts), rows)
    first = conn.execute(
        select(func.min(contacts.c.id)).where(contacts.c.email == f"c{start}@example.com")
    ).scalar_one()
    return int(first)


# -- the two sides -------------------------------------------------------------------------------


def run_hookhub(services: Services, batch: int) -> int:
    from hookhub.automation.engine import AutomationEngine

    clock = FakeClock(START + WAIT + 1)
    engine = AutomationEngine(
        services.db,
        services.outbox,
        services.automation_registry,
        clock,
        email_from=services.settings.email_from,
        batch=batch,
        worker_id="bench",
    )
    ran = 0
    while True:
        done = engine.run_due(batch)
        if not done:
            return ran
        ran += done


_CLAIM_SQLITE = text(
    "UPDATE automation_enrollments SET lease_owner = :owner, due_at = :lease "
    "WHERE id IN (SELECT id FROM automation_enrollments WHERE status = 'active' "
    "AND due_at <= :now ORDER BY due_at LIMIT :limit) RETURNING id"
)
_CLAIM_PG = text(
    "SELECT id FROM automation_enrollments WHERE status = 'active' AND due_at <= :now "
    "ORDER BY due_at LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_LEASE_PG = text(
    "UPDATE automation_enrollments SET lease_owner = :owner, due_at = :lease WHERE id = ANY(:ids)"
)
_FINISH = text(
    "UPDATE automation_enrollments SET status = 'completed', step_id = NULL, due_at = NULL, "
    "lease_owner = NULL, finished_at = :now, updated_at = :now "
    "WHERE id = :id AND lease_owner = :owner"
)


def run_baseline(services: Services, batch: int) -> int:
    now = START + WAIT + 1
    pg = not services.db.is_sqlite
    done = 0
    while True:
        with services.db.write() as conn:
            params = {"owner": "bench", "lease": now + 60, "now": now, "limit": batch}
            if pg:
                claimed = list(conn.execute(_CLAIM_PG, params).scalars())
                if claimed:
                    conn.execute(_LEASE_PG, {**params, "ids": claimed})
            else:
                claimed = list(conn.execute(_CLAIM_SQLITE, params).scalars())
            if not claimed:
                return done
            conn.execute(_FINISH, [{"id": i, "now": now, "owner": "bench"} for i in claimed])
            done += len(claimed)


def check(services: Services, count: int, target: str) -> None:
    with services.db.read() as conn:
        finished = conn.execute(
            select(func.count()).where(automation_enrollments.c.status == "completed")
        ).scalar_one()
        assert finished == count, (target, "completed", finished, count)
        if target != "hookhub":
            return
        members = conn.execute(select(func.count()).select_from(list_members)).scalar_one()
        events = conn.execute(select(func.count()).select_from(custom_events)).scalar_one()
        staged = conn.execute(
            select(func.count()).where(contacts.c.attributes.like('%"STAGE":"woken"%'))
        ).scalar_one()
        assert (members, events, staged) == (count, count, count), (members, events, staged)


def one(target: str, args: argparse.Namespace) -> tuple[float, float]:
    with (
        tempfile.TemporaryDirectory(prefix="hookhub-bench-automations-") as tmp,
        fresh_database(args.backend, args.postgres_url, Path(tmp), f"auto_{target}") as url,
    ):
        services = build_services(load_settings(database_url=url))
        try:
            migrate(services.db)
            prefill(services, args.count)
            pg = not services.db.is_sqlite
            server_cpu = postgres_cpu_seconds() if pg else 0.0
            wall = time.perf_counter()
            cpu = time.process_time()
            ran = (run_hookhub if target == "hookhub" else run_baseline)(services, args.batch)
            wall = time.perf_counter() - wall
            cpu = time.process_time() - cpu
            if pg:
                cpu += postgres_cpu_seconds() - server_cpu
            check(services, args.count, target)
            if target == "hookhub":
                print(f"      (engine reported {ran} steps)")
        finally:
            services.close()
    return wall, cpu


# -- memory and latency with a real worker -------------------------------------------------------


def worker(url: str, log: Path, **env: str) -> Proc:
    return Proc(
        "worker",
        [*hookhub_command(), "worker"],
        log_path=log,
        env={
            "HOOKHUB_DATABASE_URL": url,
            "HOOKHUB_SECRET_KEY": BENCH_SECRET_KEY,
            "HOOKHUB_LOG_LEVEL": "warning",
            **env,
        },
    )


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def memory(args: argparse.Namespace) -> None:
    count = args.count if args.count != 100_000 else 1_000_000
    due = count // 10
    with (
        tempfile.TemporaryDirectory(prefix="hookhub-bench-automations-") as tmp,
        fresh_database(args.backend, args.postgres_url, Path(tmp), "auto_mem") as url,
    ):
        services = build_services(load_settings(database_url=url))
        try:
            migrate(services.db)
            started = time.perf_counter()
            automation_id = prefill(services, count, due_now=due)
            print(
                f"prefilled {count:,} waiting enrollments ({due:,} due now) in "
                f"{time.perf_counter() - started:.0f} s"
            )
            samples: list[float] = []
            with worker(url, Path(tmp) / "worker.log") as proc:
                deadline = time.monotonic() + args.seconds + 600
                while time.monotonic() < deadline:
                    assert proc.alive(), proc.log()
                    samples.append(rss_mb(proc.pid))
                    with services.db.read() as conn:
                        left = conn.execute(
                            select(func.count()).where(
                                automation_enrollments.c.automation_id == automation_id,
                                automation_enrollments.c.status == "completed",
                            )
                        ).scalar_one()
                    if left >= due and len(samples) > args.seconds * 5:
                        break
                    time.sleep(0.2)
            print(
                f"worker RSS over {len(samples) / 5:.0f} s with {count:,} enrollments waiting, "
                f"{left:,} of {due:,} due ones completed: start {samples[0]:.0f} MB, "
                f"median {statistics.median(samples):.0f} MB, max {max(samples):.0f} MB"
            )
        finally:
            services.close()


def latency(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="hookhub-bench-automations-") as tmp,
        fresh_database(args.backend, args.postgres_url, Path(tmp), "auto_lat") as url,
    ):
        services = build_services(load_settings(database_url=url))
        try:
            migrate(services.db)
            automation_id = prefill(services, args.count, due_now=0)  # all a year away
            with worker(url, Path(tmp) / "worker.log") as proc:
                time.sleep(3)  # started and idle
                base = time.time() + 2
                due_at = {}
                with services.db.write() as conn:
                    ids = list(
                        conn.execute(
                            select(automation_enrollments.c.id)
                            .where(automation_enrollments.c.automation_id == automation_id)
                            .limit(args.due)
                        ).scalars()
                    )
                    for n, enrollment_id in enumerate(ids):
                        due_at[enrollment_id] = base + args.seconds * n / len(ids)
                    conn.execute(
                        text(
                            "UPDATE automation_enrollments SET due_at = :due, "
                            "step_started_at = :started WHERE id = :id"
                        ),
                        [{"id": i, "due": d, "started": d - WAIT} for i, d in due_at.items()],
                    )
                time.sleep(args.seconds + 5)
                assert proc.alive(), proc.log()
            with services.db.read() as conn:
                rows = conn.execute(
                    select(automation_step_log.c.enrollment_id, automation_step_log.c.at).where(
                        automation_step_log.c.step_id == "pause"
                    )
                ).all()
        finally:
            services.close()
    late = sorted(at - due_at[e] for e, at in rows if e in due_at)
    assert len(late) == len(due_at), (len(late), len(due_at))
    p = statistics.quantiles(late, n=100)
    print(
        f"{len(late)} waits due over {args.seconds} s while {args.count:,} others wait: "
        f"lateness p50 {p[49] * 1000:.0f} ms, p99 {p[98] * 1000:.0f} ms, "
        f"max {late[-1] * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--due", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--core", type=int, default=0, help="pin this process to one core")
    args = parser.parse_args()
    print_machine(machine_info(args.postgres_url if args.backend == "postgresql" else None))
    if args.memory:
        memory(args)
        return
    if args.latency:
        latency(args)
        return
    if args.core >= 0:
        os.sched_setaffinity(0, {args.core})
    print(
        f"{args.count:,} enrollments due at once, 3 steps each, batches of {args.batch}, "
        f"{args.backend}, this process on core {args.core}"
    )
    results: dict[str, list[tuple[float, float]]] = {"hookhub": [], "baseline": []}
    ratios = []
    for run in range(args.runs):
        order = ["hookhub", "baseline"] if run % 2 == 0 else ["baseline", "hookhub"]
        this = {}
        for target in order:
            wall, cpu = one(target, args)
            this[target] = (wall, cpu)
            results[target].append((wall, cpu))
            rate = args.count / wall
            extra = f" ({3 * rate:,.0f} steps/s)" if target == "hookhub" else ""
            print(
                f"  run {run + 1} {target:<9} {wall:6.2f} s  {rate:9,.0f} enrollments/s"
                f"{extra}  CPU {cpu:6.2f} s"
            )
        ratio = this["baseline"][0] / this["hookhub"][0]
        ratios.append(ratio)
        print(
            f"  run {run + 1} ratio hookhub steps/s / baseline rows/s: {3 * ratio:.2f}x "
            f"(enrollments/s: {ratio:.2f}x)"
        )
    hook = median([w for w, _ in results["hookhub"]])
    print(
        f"\nmedian: hookhub {args.count / hook:,.0f} enrollments/s = "
        f"{3 * args.count / hook:,.0f} steps/s; baseline "
        f"{args.count / median([w for w, _ in results['baseline']]):,.0f} rows/s; "
        f"ratio (steps) {3 * median(ratios):.2f}x, (enrollments) {median(ratios):.2f}x"
    )


if __name__ == "__main__":
    main()
