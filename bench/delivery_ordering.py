"""The ``ordering`` scenario of bench_delivery.py: an ordered endpoint against an unordered one.

C contacts x M contact.updated messages each (default 10,000 x 5), written through Hookhub's
services in rounds (every contact's first message, then every contact's second, ...), to one
endpoint; ``hookhub worker`` (core 0) drains them to the fast receiver (core 1). Side by side
in the same run, on a fresh database each: the endpoint with ``ordering: "contact"`` and the
same endpoint without. Rates and the ratio ordered / unordered (goal >= 0.5). After each
ordered drain the attempts are checked: every contact's deliveries were attempted one after
the other, in the order the messages were written.

    .venv/bin/python bench/bench_delivery.py ordering --backend sqlite [--contacts 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    Server,
    free_port,
    fresh_database,
    machine_info,
    median,
    pinned,
    postgres_reachable,
    print_machine,
)
from delivery_drain import BENCH, RECEIVER_CORE, SENDER_CORE, Drain, prefill, run_hookhub_worker

ORDERED = '{"ordering": "contact"}'


def check_order(url: str) -> int:
    """Each contact's deliveries were attempted in id order, each after the one before it had
    its answer; answers how many contacts were checked (raises otherwise)."""
    from sqlalchemy import select

    from hookhub.store.database import Database
    from hookhub.store.schema import deliveries, delivery_attempts

    db = Database(url, pool_size=1)
    query = (
        select(
            deliveries.c.contact_id,
            deliveries.c.id,
            delivery_attempts.c.attempted_at,
            delivery_attempts.c.duration_ms,
        )
        .join(delivery_attempts, delivery_attempts.c.delivery_id == deliveries.c.id)
        .order_by(deliveries.c.contact_id, deliveries.c.id, delivery_attempts.c.id)
    )
    seen: dict[int, float] = {}
    try:
        with db.read() as conn:
            for contact, delivery_id, at, duration_ms in conn.execute(query):
                if contact is None:
                    raise RuntimeError(f"delivery {delivery_id} of the ordered endpoint has no key")
                answered = seen.get(contact)
                if answered is not None and at < answered - 0.001:
                    raise RuntimeError(
                        f"contact {contact}: delivery {delivery_id} was attempted at {at:.4f},"
                        f" before the one before it was answered ({answered:.4f})"
                    )
                seen[contact] = at + duration_ms / 1000
    finally:
        db.dispose()
    return len(seen)


def ordering(args: argparse.Namespace) -> None:
    backend: str = args.backend
    if backend == "postgresql" and (problem := postgres_reachable(args.postgres_url)):
        sys.exit(f"PostgreSQL is not reachable at {args.postgres_url}: {problem}")
    print_machine(machine_info(args.postgres_url))
    count = args.contacts * args.per_contact
    print(
        f"\nordering on {backend}: {args.contacts} contacts x {args.per_contact} contact.updated"
        f" (~{args.body_bytes} B) to one endpoint, ordered vs unordered, concurrency"
        f" {args.concurrency}, worker on core {SENDER_CORE}, receiver on core {RECEIVER_CORE},"
        f" {args.runs} runs\n",
        flush=True,
    )
    port = free_port()
    drains: dict[str, list[Drain]] = {"unordered": [], "ordered": []}
    contenders = list(drains)
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-ordering-") as tmp:
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
                    with fresh_database(backend, args.postgres_url, workdir, f"{who}{run}") as url:
                        options = ORDERED if who == "ordered" else None
                        secret = prefill(
                            url,
                            f"http://127.0.0.1:{port}/hook",
                            count,
                            args.body_bytes,
                            workdir / "messages.jsonl",
                            options,
                            contacts=args.contacts,
                        )
                        drain = run_hookhub_worker(
                            url,
                            port,
                            receiver.pid,
                            secret,
                            count,
                            args.concurrency,
                            workdir,
                            backend,
                        )
                        drain.who = f"{who} ({backend})"
                        checked = check_order(url) if who == "ordered" else 0
                    drains[who].append(drain)
                    print(
                        f"  run {run + 1}: {drain.who:<22} {drain.rate:8,.0f} deliveries/s"
                        f"  ({drain.delivered} in {drain.seconds:.2f} s; worker CPU"
                        f" {drain.cpu_seconds:.1f} s"
                        + (
                            f", PostgreSQL {drain.postgres_cpu_seconds:.1f} s"
                            if backend == "postgresql"
                            else ""
                        )
                        + f"; others took {drain.others_sender_core:.0%} of core {SENDER_CORE})"
                        + (f"; order checked for {checked} contacts" if checked else ""),
                        flush=True,
                    )
                ratio = drains["ordered"][-1].rate / drains["unordered"][-1].rate
                print(f"  run {run + 1}: ordered / unordered = {ratio:.2f}\n", flush=True)
    print_summary(backend, drains, args.goal)


def print_summary(backend: str, drains: dict[str, list[Drain]], goal: float) -> None:
    unordered, ordered = drains["unordered"], drains["ordered"]
    ratios = [o.rate / u.rate for o, u in zip(ordered, unordered, strict=True)]
    ratio = median(ratios)
    print(f"summary ({backend}, medians of {len(ratios)} runs):")
    for drain_list in (unordered, ordered):
        rate = median([d.rate for d in drain_list])
        cpu = median([d.cpu_seconds / d.delivered * 1e6 for d in drain_list])
        print(f"  {drain_list[0].who:<22} {rate:8,.0f} deliveries/s, worker CPU {cpu:.0f} us each")
    print(
        f"  ratio ordered / unordered {ratio:8.2f}  (per run: "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f"; goal >= {goal:.2f}: {'met' if ratio >= goal else 'MISSED'})"
    )


def add_ordering_command(commands: Any) -> None:
    od = commands.add_parser("ordering", help="an ordered endpoint vs the same unordered")
    od.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    od.add_argument("--contacts", type=int, default=10_000)
    od.add_argument("--per-contact", type=int, default=5)
    od.add_argument("--body-bytes", type=int, default=1024)
    od.add_argument("--concurrency", type=int, default=64)
    od.add_argument("--runs", type=int, default=3)
    od.add_argument("--goal", type=float, default=0.5)
    od.set_defaults(func=ordering)
