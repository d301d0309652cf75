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
- ``ordering``: 10,000 contacts x 5 contact.updated to one endpoint with ``ordering: "contact"``
  against the same endpoint without, side by side (bench/delivery_ordering.py).
- ``blackhole``: 50 healthy endpoints with and without one black-holed endpoint (it accepts the
  connection and never answers), same steady rate: the healthy deliveries' latency compared.

Traffic goes to 127.0.0.1 only; every process is ended and every database removed at the end.

    .venv/bin/python bench/bench_delivery.py throughput --backend sqlite [--messages 20000]
    .venv/bin/python bench/bench_delivery.py throughput --backend postgresql
    .venv/bin/python bench/bench_delivery.py throughput --compare-source /path/to/other/checkout
    .venv/bin/python bench/bench_delivery.py latency [--rate 200 --duration 30]
    .venv/bin/python bench/bench_delivery.py ordering --backend sqlite [--contacts 10000]
    .venv/bin/python bench/bench_delivery.py fanout
    .venv/bin/python bench/bench_delivery.py blackhole [--rate 4 --duration 30 --timeout 15]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import (
    DEFAULT_POSTGRES_URL,
    Server,
    free_port,
    fresh_database,
    machine_info,
    median,
    pinned,
    postgres_reachable,
    print_machine,
)
from delivery_drain import (
    BENCH,
    RECEIVER_CORE,
    SENDER_CORE,
    Drain,
    prefill,
    prefill_with,
    run_bare_sender,
    run_hookhub_worker,
)
from delivery_ordering import add_ordering_command
from delivery_scenarios import add_scenario_commands

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
    add_ordering_command(commands)
    add_scenario_commands(commands)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
