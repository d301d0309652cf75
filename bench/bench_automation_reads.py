"""The automations API's reads on a big automation: counts, enrollment pages, a journey.

Prefills a fresh database with N contacts each enrolled once in one automation (70% active
on its wait step, 20% completed, 7% removed while waiting, 3% failed; each with a step log row
and a trigger of about 200 bytes), then times, best of ``--repeat``, the service calls behind
``GET /automations/{id}`` (the counts), ``GET /automations/{id}/enrollments?status=`` and
``?contact=``, and ``GET /contacts/{ref}/automations``. The counts must read indexes only: the
run prints the query plans of the two grouped counts (SQLite: COVERING INDEX; PostgreSQL:
Index Only Scan).

    .venv/bin/python bench/bench_automation_reads.py [--enrollments 100000] [--repeat 5]
        [--backend sqlite|postgresql] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import DEFAULT_POSTGRES_URL, fresh_database, machine_info, print_machine
from sqlalchemy import insert, text

from hookhub.config import load_settings
from hookhub.services import Services, build_services
from hookhub.store.automations import AutomationStore
from hookhub.store.migrate import migrate
from hookhub.store.schema import contacts
from hookhub.store.schema_automation import automation_enrollments, automation_step_log

SECRET_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
CHUNK = 5000
STEPS = [
    {"id": "a", "track_event": {"name": "welcomed"}},
    {"id": "w", "wait": "1d"},
    {"id": "b", "track_event": {"name": "converted"}},
]
COUNT_QUERIES = (
    "SELECT status, step_id, count(*) FROM automation_enrollments"
    " WHERE automation_id = {id} GROUP BY status, step_id",
    "SELECT step_id, outcome, count(*) FROM automation_step_log"
    " WHERE automation_id = {id} GROUP BY step_id, outcome",
)


def _enrollment(automation_id: int, contact_id: int, now: float, rng: random.Random) -> Any:
    draw = rng.random()
    if draw < 0.7:
        status, step, reason = "active", "w", None
    elif draw < 0.9:
        status, step, reason = "completed", None, "completed"
    elif draw < 0.97:
        status, step, reason = "exited", "w", "removed"
    else:
        status, step, reason = "failed", "b", "failed"
    return {
        "automation_id": automation_id,
        "contact_id": contact_id,
        "status": status,
        "step_id": step,
        "matched": False,
        "due_at": now + 86400 if status == "active" else None,
        "trigger": '{"type": "manual", "data": {"note": "' + "x" * 180 + '"}}',
        "entered_at": now,
        "updated_at": now,
        "exit_reason": reason,
    }


def prefill(services: Services, count: int) -> int:
    rng = random.Random(13)
    now = datetime.now(UTC)
    with services.db.write() as conn:
        automation = AutomationStore(conn).create(
            {
                "name": "big",
                "trigger": {"type": "manual"},
                "reentry": "always",
                "exit_on_unsubscribe": True,
                "steps": STEPS,
            },
            now,
        )
        for start in range(1, count + 1, CHUNK):
            ids = range(start, min(start + CHUNK, count + 1))
            conn.execute(
                insert(contacts),
                [
                    {
                        "email": f"c{i}@example.com",
                        "attributes": "{}",
                        "unsubscribed": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids
                ],
            )
            conn.execute(
                insert(automation_enrollments),
                [_enrollment(automation.id, i, now.timestamp(), rng) for i in ids],
            )
            conn.execute(
                insert(automation_step_log),
                [
                    {
                        "enrollment_id": i,
                        "automation_id": automation.id,
                        "step_id": "a",
                        "kind": "track_event",
                        "outcome": "completed",
                        "at": now.timestamp(),
                        "detail": '{"event_id": 1}',
                    }
                    for i in ids
                ],
            )
    return automation.id


def analyze(services: Services) -> None:
    if services.db.engine.dialect.name == "postgresql":
        with services.db.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    else:
        with services.db.write() as conn:
            conn.execute(text("ANALYZE"))


def plans(services: Services, automation_id: int) -> None:
    explain = "EXPLAIN QUERY PLAN " if services.db.engine.dialect.name == "sqlite" else "EXPLAIN "
    with services.db.read() as conn:
        for query in COUNT_QUERIES:
            rows = conn.execute(text(explain + query.format(id=automation_id))).all()
            print("  plan:", " | ".join(str(row[-1]) for row in rows))


def best_ms(work: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def run(url: str, count: int, repeat: int) -> None:
    services = build_services(load_settings(database_url=url, secret_key=SECRET_KEY))
    try:
        migrate(services.db)
        automation_id = prefill(services, count)
        analyze(services)
        plans(services, automation_id)
        service = services.automations
        timings = {
            "GET /automations/{id} (counts)": lambda: service.get(automation_id),
            "GET .../enrollments?status=active": lambda: service.enrollments(
                automation_id, contact=None, status="active", after_id=None, limit=50
            ),
            "GET .../enrollments?status=failed": lambda: service.enrollments(
                automation_id, contact=None, status="failed", after_id=None, limit=50
            ),
            "GET .../enrollments?contact=": lambda: service.enrollments(
                automation_id, contact=count // 2, status=None, after_id=None, limit=50
            ),
            "GET /contacts/{ref}/automations": lambda: service.journey(
                count // 2, before_id=None, limit=50
            ),
        }
        for label, work in timings.items():
            print(f"  {label}: {best_ms(work, repeat):.1f} ms")
    finally:
        services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()
    print_machine(machine_info(args.postgres_url if args.backend == "postgresql" else None))
    print(f"{args.backend}, {args.enrollments:,} enrollments, best of {args.repeat}:")
    with (
        tempfile.TemporaryDirectory() as workdir,
        fresh_database(args.backend, args.postgres_url, Path(workdir), "automation_reads") as url,
    ):
        run(url, args.enrollments, args.repeat)


if __name__ == "__main__":
    main()
