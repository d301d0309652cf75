"""A date trigger's scan of many contacts: what one pass costs, with no index.

Prefills a fresh database with N contacts, each with a few attributes and a BIRTHDAY spread
over the year (so about N/365 have one on any day), and one enabled yearly birthday
automation. Then, on an injected clock, times three passes of ``DateTriggerScan.run_once``:

* ``first``: the day's moment has just come: scans every contact and enrols those whose
  birthday it is (one ``automation.entered`` each);
* ``rescan``: the same day after the rescan interval: scans again, enrols nobody (each entry
  is there);
* ``idle``: a pass with the day already scanned: no query at all;

and, for scale, ``bare``: ``SELECT count(*) FROM contacts WHERE attributes LIKE '...'``, the
bare scan of the same rows. Wall and CPU seconds of this process (with PostgreSQL the server's
CPU is not counted).

    .venv/bin/python bench/bench_date_scan.py [--contacts 1000000] [--runs 3]
        [--backend sqlite|postgresql] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from common import DEFAULT_POSTGRES_URL, fresh_database, machine_info, median, print_machine
from sqlalchemy import func, insert, select

from hookhub.automation.date_triggers import RESCAN, DateTriggerScan
from hookhub.clock import FakeClock
from hookhub.config import load_settings
from hookhub.core import jsoncodec
from hookhub.services import Services, build_services
from hookhub.store.automations import AutomationStore
from hookhub.store.migrate import migrate
from hookhub.store.schema import contacts
from hookhub.store.schema_automation import automation_enrollments

DAY = date(2026, 5, 3)
SECRET_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def prefill(services: Services, count: int) -> int:
    """N contacts with attributes and a birthday; how many have theirs on ``DAY``."""
    rng = random.Random(20260503)
    now = datetime.now(UTC)
    on_day = 0
    with services.db.write() as conn:
        for start in range(0, count, 10_000):
            rows = []
            for n in range(start, min(count, start + 10_000)):
                born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
                on_day += (born.month, born.day) == (DAY.month, DAY.day)
                attributes = {
                    "FIRSTNAME": f"First{n}",
                    "LASTNAME": f"Last{n}",
                    "CITY": rng.choice(["Rome", "Oslo", "Lima", "Pune"]),
                    "BIRTHDAY": born.isoformat(),
                    "PLAN": rng.choice(["free", "pro"]),
                }
                rows.append(
                    {
                        "email": f"c{n}@example.com",
                        "attributes": jsoncodec.dumps(attributes).decode(),
                        "unsubscribed": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            conn.execute(insert(contacts), rows)
    return on_day


def add_automation(services: Services) -> None:
    with services.db.write() as conn:
        AutomationStore(conn).create(
            {
                "name": "birthday",
                "trigger": {
                    "type": "date",
                    "attribute": "BIRTHDAY",
                    "offset_days": 0,
                    "at": "09:00",
                    "timezone": "UTC",
                    "yearly": True,
                },
                "reentry": "always",
                "exit_on_unsubscribe": True,
                "steps": [{"id": "pause", "wait": "1d"}],
            },
            datetime.now(UTC),
        )
    services.automation_registry.invalidate()


def timed(action: Callable[[], object]) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def one_run(backend: str, admin_url: str, workdir: Path, count: int) -> dict[str, float]:
    with fresh_database(backend, admin_url, workdir, "datescan") as url:
        settings = load_settings(database_url=url, secret_key=SECRET_KEY, log_format="text")
        services = build_services(settings)
        try:
            migrate(services.db)
            on_day = prefill(services, count)
            add_automation(services)
            moment = datetime(DAY.year, DAY.month, DAY.day, 9, tzinfo=UTC).timestamp()
            clock = FakeClock(moment + 60)
            scan = DateTriggerScan(
                services.db, services.outbox, services.automation_registry, clock
            )
            result: dict[str, float] = {}
            wall, cpu, enrolled = timed(scan.run_once)
            assert enrolled == on_day, (enrolled, on_day)
            result.update(first=wall, first_cpu=cpu, enrolled=float(on_day))
            clock.advance(RESCAN + 1)
            wall, cpu, again = timed(scan.run_once)
            assert again == 0
            result.update(rescan=wall, rescan_cpu=cpu)
            clock.advance(1)
            wall, cpu, _ = timed(scan.run_once)
            result.update(idle=wall, idle_cpu=cpu)
            pattern = f'%"BIRTHDAY":"____-{DAY.month:02d}-{DAY.day:02d}%'
            query = (
                select(func.count())
                .select_from(contacts)
                .where(contacts.c.attributes.like(pattern))
            )

            def bare() -> int:
                with services.db.read() as conn:
                    return int(conn.execute(query).scalar_one())

            wall, cpu, found = timed(bare)
            assert found == on_day
            result.update(bare=wall, bare_cpu=cpu)
            with services.db.read() as conn:
                stored = conn.execute(
                    select(func.count()).select_from(automation_enrollments)
                ).scalar_one()
            assert stored == on_day
            return result
        finally:
            services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()
    print_machine(machine_info(args.postgres_url if args.backend == "postgresql" else None))
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            result = one_run(args.backend, args.postgres_url, Path(tmp), args.contacts)
            runs.append(result)
            print(
                f"run {n + 1}: {args.contacts:,} contacts, {int(result['enrolled']):,} enrolled | "
                + " | ".join(
                    f"{k} {result[k]:.2f} s wall {result[k + '_cpu']:.2f} s cpu"
                    for k in ("first", "rescan", "idle", "bare")
                ),
                flush=True,
            )
    print(
        f"median of {args.runs} ({args.backend}): "
        + " | ".join(
            f"{k} {median([r[k] for r in runs]):.2f} s" for k in ("first", "rescan", "idle", "bare")
        )
    )


if __name__ == "__main__":
    main()
