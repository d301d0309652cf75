"""The inbound request log's write alone: ``InboundRequestStore.append`` in group commits.

What the receive path's journal does per group (``hookhub/inbound/receiver.py``), without HTTP
or the receiver: a write transaction appending G Stripe-sized entries (an 822-byte body, the
headers as logged, a unique random dedupe key each), one group after another, on a fresh
SQLite file, in this process pinned to core 0. Prints CPU and wall time per entry for each
setting given, alternating the settings from run to run; wall above CPU is time spent waiting
(a checkpoint's fsync).

    .venv/bin/python bench/bench_journal_write.py [--entries 60000] [--group 64] [--runs 3]
    .venv/bin/python bench/bench_journal_write.py --wal-autocheckpoint 1000,4000,10000
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine_info, median, print_machine

from hookhub.config import load_settings
from hookhub.core import jsoncodec
from hookhub.services import build_services
from hookhub.store.inbound import InboundRequestStore, LogEntry
from hookhub.store.migrate import migrate

HEADERS = jsoncodec.dumps(
    [
        ["host", "127.0.0.1:8000"],
        ["user-agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"],
        ["content-type", "application/json; charset=utf-8"],
        ["stripe-signature", "[redacted]"],
        ["content-length", "822"],
    ]
).decode()


def one_run(entries: int, group: int, wal_autocheckpoint: int) -> tuple[float, float]:
    """CPU and wall seconds per entry, on a fresh database."""
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-journal-") as tmp:
        settings = load_settings(
            database_url=f"sqlite:///{Path(tmp) / 'hookhub.db'}",
            sqlite_wal_autocheckpoint=wal_autocheckpoint,
        )
        services = build_services(settings)
        try:
            migrate(services.db)
            webhook, _ = services.inbound.create(
                {"name": "bench", "source": "stripe", "secret": "whsec_" + "0" * 32}
            )
            body = os.urandom(411).hex().encode()  # 822 bytes, as the Stripe bodies
            groups = [
                [
                    LogEntry(
                        webhook_id=webhook.id,
                        received_at=time.time(),
                        status="received",
                        http_status=202,
                        headers=HEADERS,
                        body=body,
                        event_type="customer.created",
                        dedupe_key="evt_" + secrets.token_urlsafe(18),
                    )
                    for _ in range(group)
                ]
                for _ in range(entries // group)
            ]
            started = time.process_time(), time.perf_counter()
            for batch in groups:
                with services.db.write() as conn:
                    InboundRequestStore(conn).append(batch)
            cpu = time.process_time() - started[0]
            wall = time.perf_counter() - started[1]
        finally:
            services.close()
    written = len(groups) * group
    return cpu / written, wall / written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=60_000)
    parser.add_argument("--group", type=int, default=64, help="entries a commit")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--wal-autocheckpoint", default="4000", help="comma-separated settings to compare"
    )
    parser.add_argument("--one-run", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    if args.one_run is not None:
        print(*one_run(args.entries, args.group, args.one_run))
        return
    print_machine(machine_info(None))
    settings = [int(value) for value in args.wal_autocheckpoint.split(",")]
    print(f"\n{args.entries:,} log entries in groups of {args.group}, fresh SQLite file, core 0\n")
    figures: dict[int, list[tuple[float, float]]] = {setting: [] for setting in settings}
    for run in range(1, args.runs + 1):
        for setting in settings if run % 2 else reversed(settings):
            argv = [sys.executable, __file__, "--entries", str(args.entries)]
            argv += ["--group", str(args.group), "--one-run", str(setting)]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=True)
            cpu, wall = (float(v) for v in done.stdout.split())
            figures[setting].append((cpu, wall))
            print(
                f"  run {run}: wal_autocheckpoint={setting:<6} {cpu * 1e6:6.1f} us CPU, "
                f"{wall * 1e6:6.1f} us wall an entry"
            )
    print(f"\nmedians of {args.runs} runs:")
    for setting, values in figures.items():
        cpu, wall = median([v[0] for v in values]), median([v[1] for v in values])
        name = f"wal_autocheckpoint={setting}"
        print(f"  {name:<25} {cpu * 1e6:6.1f} us CPU, {wall * 1e6:6.1f} us wall")


if __name__ == "__main__":
    main()
