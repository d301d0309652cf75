"""The end-to-end delivery scenarios of bench_delivery.py: latency, fan-out, black hole.

Each run starts ``hookhub serve`` on a fresh SQLite file, pinned to core 0, and the load
generator (bench/delivery_load.py: API client and receivers in one process) pinned to core 1;
both are ended, and the file removed, when the run ends.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    Server,
    free_port,
    hookhub_command,
    machine_info,
    median,
    pinned,
    print_machine,
    process_cpu_seconds,
)
from delivery_support import CoreWatch, fmt_ms

SERVER_CORE = 0
LOAD_CORE = 1
BENCH = Path(__file__).resolve().parent


@dataclass
class Serve:
    base_url: str
    api_key: str
    server: Server


@contextlib.contextmanager
def serve(timeout: float | None = None) -> Iterator[Serve]:
    """``hookhub serve`` on a fresh SQLite file, pinned, with a known API key."""
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-serve-") as tmp:
        port = free_port()
        api_key = "bench_" + secrets.token_urlsafe(24)
        env = {
            "HOOKHUB_DATABASE_URL": f"sqlite:///{tmp}/hookhub.db",
            "HOOKHUB_PORT": str(port),
            "HOOKHUB_API_KEY": api_key,
            "HOOKHUB_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.0/8",
            "HOOKHUB_LOG_LEVEL": "WARNING",
        }
        if timeout is not None:
            env["HOOKHUB_DELIVERY_TIMEOUT"] = str(timeout)
        argv = [*pinned(SERVER_CORE), *hookhub_command(), "serve"]
        server = Server(
            "hookhub serve",
            argv,
            health_url=f"http://127.0.0.1:{port}/healthz",
            log_path=Path(tmp) / "serve.log",
            env=env,
        )
        with server:
            yield Serve(f"http://127.0.0.1:{port}", api_key, server)


def run_load(target: Serve, spec: dict[str, Any], bound: float) -> dict[str, Any]:
    """Run the load generator against ``target``; adds the server's CPU share to the result."""
    full = {"base_url": target.base_url, "api_key": target.api_key, **spec}
    argv = [*pinned(LOAD_CORE), sys.executable, str(BENCH / "delivery_load.py"), json.dumps(full)]
    cpu = process_cpu_seconds(target.server.pid)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cores = CoreWatch(SERVER_CORE).start(), CoreWatch(LOAD_CORE).start()
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=bound, check=False)
    elapsed = time.monotonic() - started
    server_cpu = process_cpu_seconds(target.server.pid) - cpu
    for watch in cores:
        watch.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(
            f"load generator failed:\n{done.stderr[-3000:]}\nserver log:\n{target.server.log()}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["server_cpu_share"] = server_cpu / elapsed
    created = sum(p["events"] - p["api_errors"] for p in result["phases"])
    delivered = sum(p["delivered"] for p in result["phases"])
    result["server_cpu_per_delivery"] = server_cpu / delivered if delivered else float("nan")
    result["server_cpu_per_event"] = server_cpu / created if created else float("nan")
    result["others_server_core"] = cores[0].others(server_cpu)
    result["others_load_core"] = cores[1].others(load_cpu)
    if result["bad_signatures"] or result["unknown"]:
        raise RuntimeError(f"bad deliveries: {result}")
    return result


def phase(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in result["phases"] if p["phase"] == name)


def print_phase(label: str, p: dict[str, Any], *, whole: bool = False) -> None:
    key = "all_delivered_latency" if whole else "delivery_latency"
    print(f"    {label:<34} {fmt_ms(p[key])}")
    if not p["complete"] or p["api_errors"]:
        print(
            f"      ! delivered {p['delivered']} of {p['expected']},"
            f" {p['api_errors']} API errors {p['api_statuses']}"
        )


def cpu_note(result: dict[str, Any]) -> str:
    return (
        f"hookhub serve used {result['server_cpu_share']:.0%} of core {SERVER_CORE}"
        f" (its CPU time over the run: {result['server_cpu_per_event'] * 1000:.2f} ms per contact"
        f" created, or {result['server_cpu_per_delivery'] * 1000:.2f} ms per delivery);"
        f" other processes took {result['others_server_core']:.0%} of core {SERVER_CORE}"
        f" and {result['others_load_core']:.0%} of core {LOAD_CORE}"
    )


def machine(args: argparse.Namespace) -> None:
    print_machine(machine_info(args.postgres_url))
    print()


# -- latency --------------------------------------------------------------------------------------


def latency(args: argparse.Namespace) -> None:
    machine(args)
    print(
        f"end-to-end latency: POST /api/v1/contacts at {args.rate:g}/s (open loop) for"
        f" {args.duration:g} s after {args.warmup:g} s of warm-up -> signed contact.created at"
        f" one endpoint; hookhub serve (SQLite) on core {SERVER_CORE}, load generator and"
        f" receiver on core {LOAD_CORE}; {args.runs} runs; milliseconds\n",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    for run in range(args.runs):
        with serve() as target:
            spec = {
                "healthy": 1,
                "phases": [
                    {
                        "kind": "steady",
                        "name": "warmup",
                        "rate": args.rate,
                        "duration": args.warmup,
                        "drain": 30,
                    },
                    {
                        "kind": "steady",
                        "name": "measured",
                        "rate": args.rate,
                        "duration": args.duration,
                        "drain": 30,
                    },
                ],
            }
            result = run_load(target, spec, args.duration + args.warmup + 180)
        measured = phase(result, "measured")
        runs.append(measured)
        print(f"  run {run + 1}:")
        print_phase("API call -> delivery", measured)
        print(f"    {'API call -> 201 answer':<34} {fmt_ms(measured['api_latency'])}")
        print(f"    worst send lag {measured['lag'] * 1000:.1f} ms; {cpu_note(result)}", flush=True)
    p50 = median([r["delivery_latency"]["p50"] for r in runs])
    p90 = median([r["delivery_latency"]["p90"] for r in runs])
    p99 = median([r["delivery_latency"]["p99"] for r in runs])
    worst = max(r["delivery_latency"]["max"] for r in runs)
    print(f"\nsummary (medians of {args.runs} runs; max is the worst of all runs):")
    print(
        f"  API call -> delivery  p50 {p50 * 1000:.1f}  p90 {p90 * 1000:.1f}"
        f"  p99 {p99 * 1000:.1f}  max {worst * 1000:.1f} ms"
    )
    print(
        f"  goal p50 <= 10 ms: {'met' if p50 <= 0.010 else 'MISSED'};"
        f" p99 <= 50 ms: {'met' if p99 <= 0.050 else 'MISSED'}"
    )


# -- fan-out --------------------------------------------------------------------------------------


def fanout(args: argparse.Namespace) -> None:
    machine(args)
    n = args.endpoints
    print(
        f"fan-out: one contact.created to {n} endpoints (one receiver, {n} paths); hookhub serve"
        f" (SQLite) on core {SERVER_CORE}, load generator and receiver on core {LOAD_CORE};"
        f" {args.runs} runs; milliseconds\n",
        flush=True,
    )
    # Steady rates as fractions of what the burst drained in the same run: a fixed rate would
    # overload a slow machine (then latency only measures the backlog) and idle a fast one.
    rates = [float(r) for r in args.fractions.split(",") if r]
    runs: list[dict[str, Any]] = []
    for run in range(args.runs):
        phases: list[dict[str, Any]] = [
            {"kind": "single", "name": "warmup", "count": 3, "gap": 0.2},
            {"kind": "single", "name": "single", "count": args.events, "gap": 0.3},
            {"kind": "burst", "name": "burst", "count": args.burst, "concurrency": 16},
        ]
        phases += [
            {
                "kind": "steady",
                "name": f"steady{rate:g}",
                "fraction": rate,
                "duration": args.duration,
                "drain": 30,
            }
            for rate in rates
        ]
        bound = 120 + args.events * 11 + 240 + len(rates) * (args.duration + 60)
        with serve() as target:
            result = run_load(target, {"healthy": n, "phases": phases}, bound)
        runs.append(result)
        single, burst = phase(result, "single"), phase(result, "burst")
        print(f"  run {run + 1}:")
        print_phase(f"one event: API call -> {n}th delivery", single, whole=True)
        print(
            f"    {'one event: API call -> 1st delivery':<34} "
            f"{fmt_ms(single['first_delivery_latency'])}"
        )
        print(
            f"    burst of {args.burst} events ({args.burst * n} deliveries): drained in"
            f" {burst['drain_seconds']:.2f} s = {burst['deliveries_per_s']:,.0f} deliveries/s"
            f" = {burst['events_per_s']:,.1f} events/s (created in"
            f" {burst['create_seconds']:.2f} s)"
        )
        for rate in rates:
            steady = phase(result, f"steady{rate:g}")
            label = f"steady {steady['rate']:.1f} events/s"
            print(f"    {label} ({rate:g} x what the burst drained), API call ->")
            print_phase("      each delivery", steady)
            print_phase(f"      the {n}th delivery of an event", steady, whole=True)
        print(f"    {cpu_note(result)}", flush=True)
    print(f"\nsummary (medians of {args.runs} runs):")
    whole = median([phase(r, "single")["all_delivered_latency"]["p50"] for r in runs])
    print(f"  one event -> {n}th delivery: median {whole * 1000:.1f} ms")
    drained = median([phase(r, "burst")["events_per_s"] for r in runs])
    print(
        f"  sustained (burst drain): {drained:,.1f} events/s to {n} endpoints"
        f" = {drained * n:,.0f} deliveries/s"
    )
    for rate in rates:
        p50 = median([phase(r, f"steady{rate:g}")["all_delivered_latency"]["p50"] for r in runs])
        p99 = median([phase(r, f"steady{rate:g}")["all_delivered_latency"]["p99"] for r in runs])
        kept = all(phase(r, f"steady{rate:g}")["complete"] for r in runs)
        events = median([phase(r, f"steady{rate:g}")["rate"] for r in runs])
        print(
            f"  steady {rate:g} x burst ({events:.1f} events/s): API call -> {n}th delivery"
            f" p50 {p50 * 1000:.1f}  p99 {p99 * 1000:.1f} ms"
            f" ({'kept up' if kept else 'did NOT keep up'})"
        )


# -- black hole -----------------------------------------------------------------------------------


def blackhole(args: argparse.Namespace) -> None:
    machine(args)
    n = args.endpoints
    print(
        f"black hole: {n} healthy endpoints, with and without one more that accepts connections"
        f" and never answers; contacts at {args.rate:g}/s (open loop) for {args.duration:g} s"
        f" after {args.warmup:g} s of warm-up; HOOKHUB_DELIVERY_TIMEOUT={args.timeout:g} s;"
        f" hookhub serve (SQLite) on core {SERVER_CORE}, load generator on core {LOAD_CORE};"
        f" {args.runs} runs, alternating order; healthy deliveries' latency in milliseconds\n",
        flush=True,
    )
    found: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for run in range(args.runs):
        order = (False, True) if run % 2 == 0 else (True, False)
        for with_hole in order:
            spec = {
                "healthy": n,
                "blackhole": with_hole,
                "phases": [
                    {
                        "kind": "steady",
                        "name": "warmup",
                        "rate": args.rate,
                        "duration": args.warmup,
                        "drain": 30,
                    },
                    {
                        "kind": "steady",
                        "name": "measured",
                        "rate": args.rate,
                        "duration": args.duration,
                        "drain": 30,
                    },
                ],
            }
            with serve(timeout=args.timeout) as target:
                result = run_load(target, spec, args.duration + args.warmup + 180)
            measured = phase(result, "measured")
            found[with_hole].append(measured)
            label = "with the black hole" if with_hole else "without it"
            print_phase(f"run {run + 1} {label}", measured)
            extra = (
                f"; black hole got {result['blackhole_connections']} connections"
                if with_hole
                else ""
            )
            print(f"      {cpu_note(result)}{extra}", flush=True)
    print(f"\nsummary (medians of {args.runs} runs):")
    stats = {}
    for with_hole in (False, True):
        p50 = median([r["delivery_latency"]["p50"] for r in found[with_hole]])
        p99 = median([r["delivery_latency"]["p99"] for r in found[with_hole]])
        stats[with_hole] = (p50, p99)
        label = "with the black hole" if with_hole else "without it"
        print(f"  {label:<20} healthy p50 {p50 * 1000:7.1f}  p99 {p99 * 1000:7.1f} ms")
    ratio = stats[True][1] / stats[False][1]
    pairs = [
        w["delivery_latency"]["p99"] / wo["delivery_latency"]["p99"]
        for w, wo in zip(found[True], found[False], strict=True)
    ]
    print(
        f"  healthy p99 with / without: {ratio:.2f} (per run: "
        + ", ".join(f"{r:.2f}" for r in pairs)
        + f"; goal <= 2.00: {'met' if ratio <= 2 else 'MISSED'})"
    )


# -- command line ---------------------------------------------------------------------------------


def add_scenario_commands(commands: Any) -> None:
    lat = commands.add_parser("latency", help="API call -> signed delivery, steady rate")
    lat.add_argument("--rate", type=float, default=200)
    lat.add_argument("--duration", type=float, default=30)
    lat.add_argument("--warmup", type=float, default=3)
    lat.add_argument("--runs", type=int, default=3)
    lat.set_defaults(func=latency)

    fan = commands.add_parser("fanout", help="one event to 100 endpoints")
    fan.add_argument("--endpoints", type=int, default=100)
    fan.add_argument("--events", type=int, default=20, help="single events, one at a time")
    fan.add_argument("--burst", type=int, default=200, help="events created at once")
    fan.add_argument(
        "--fractions",
        default="0.25,0.5",
        help="steady rates, as fractions of the events/s the burst drained (comma-separated)",
    )
    fan.add_argument("--duration", type=float, default=15)
    fan.add_argument("--runs", type=int, default=3)
    fan.set_defaults(func=fanout)

    hole = commands.add_parser("blackhole", help="healthy latency beside a black-holed endpoint")
    hole.add_argument("--endpoints", type=int, default=50)
    # 100 events/s to 50 endpoints is 5,000 deliveries/s: more than one core delivers (see
    # throughput), so both runs would only measure a growing backlog. Pick a rate the run
    # without the black hole sustains.
    hole.add_argument("--rate", type=float, default=4)
    hole.add_argument("--duration", type=float, default=30)
    hole.add_argument("--warmup", type=float, default=3)
    hole.add_argument("--timeout", type=float, default=15)
    hole.add_argument("--runs", type=int, default=3)
    hole.set_defaults(func=blackhole)
