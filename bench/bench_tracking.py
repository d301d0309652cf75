"""Tracking hits: open-pixel and click GETs, Hookhub against Debian's ``webhook``, side by side.

For each repetition and each kind of hit (``open``: ``GET /t/o/{token}``; ``click``:
``GET /t/c/{token}``), these servers answer the same number of distinct paths, one after the
other, each pinned to core 0 while wrk (pinned to core 1, bench/tracking_replay.lua) drives it
with the same connections, duration and warm-up:

- ``webhook``: Debian's ``webhook`` (Go), the baseline of bench_inbound.py: a GET rule matching a
  query parameter, answering 200 (open) or a 302 with a Location (click); it stores nothing;
- ``hookhub-sqlite``, ``hookhub-postgresql``: ``hookhub serve`` on a fresh database holding
  ``--emails`` sent emails of three links each (inserted before the server starts taking hits).
  Each hit is answered once it is durable in ``tracking_hits``; the same process then applies
  hits (``email.opened``/``email.clicked`` on the outbox, the timeline, ``first``/``proxy``).

After each Hookhub run the script waits for the hits to be applied and checks, in the database,
that every acknowledged hit (200 or 302 counted by wrk, warm-up included) became an email event
and an outbox message, and that no hit is left: at most ``connections`` per wrk run may have been
recorded without wrk counting its answer (in flight when wrk stopped). Requests/s, latency
percentiles, non-2xx/3xx answers and server CPU are printed per run, then medians and Hookhub's
rate as a ratio of ``webhook``'s in the same run.

With ``--emails`` at or under the receiver's cache (10,000), clicks are answered from memory
after the warm-up; above it, a click whose email was pushed out reads its links first.

Needs wrk and webhook (Debian: ``apt-get install -y wrk webhook``) and taskset (util-linux).
Sends traffic to 127.0.0.1 only.

    .venv/bin/python bench/bench_tracking.py [--runs 3] [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import (
    BENCH_DIR,
    BENCH_SECRET_KEY,
    DEFAULT_POSTGRES_URL,
    Server,
    free_port,
    fresh_database,
    hookhub_command,
    machine_info,
    median,
    pinned,
    print_machine,
    process_cpu_seconds,
)

SERVER_CORE, LOAD_CORE = 0, 1
LUA_SCRIPT = BENCH_DIR / "tracking_replay.lua"
TARGETS = ("webhook", "hookhub-sqlite", "hookhub-postgresql")
KINDS = ("open", "click")
LINKS = 3


@dataclass
class RunResult:
    target: str
    kind: str
    run: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    acked: int
    other: int
    other_codes: str
    socket_errors: int
    server_cpu: float
    check: str = ""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--emails", type=int, default=10_000, help="sent emails to hit")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    args.targets = [t for t in args.targets.split(",") if t]
    args.kinds = [k for k in args.kinds.split(",") if k]
    return args


def run_wrk(port: int, paths: Path, args: argparse.Namespace, duration: int) -> dict[str, Any]:
    argv = [
        *pinned(LOAD_CORE),
        "wrk",
        "-t1",
        f"-c{args.connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA_SCRIPT),
        f"http://127.0.0.1:{port}",
        "--",
        str(paths),
        "1",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
            return result
    raise RuntimeError(f"wrk printed no result ({done.returncode}):\n{done.stdout}{done.stderr}")


def measure(
    server: Server, target: str, kind: str, run: int, paths: Path, args: argparse.Namespace
) -> tuple[RunResult, int]:
    """Warm up, then measure; the result and every acknowledged hit (warm-up included)."""
    port = int(server.health_url.split(":")[2].split("/")[0])
    warm = run_wrk(port, paths, args, args.warmup)
    if warm["acked"] == 0:
        raise RuntimeError(
            f"{target}: nothing acknowledged in the warm-up ({warm})\n{server.log()}"
        )
    cpu0 = process_cpu_seconds(server.pid)
    out = run_wrk(port, paths, args, args.duration)
    seconds = out["duration_us"] / 1e6
    result = RunResult(
        target=target,
        kind=kind,
        run=run,
        requests_per_s=out["acked"] / seconds,
        p50_ms=out["latency_p50_us"] / 1000,
        p99_ms=out["latency_p99_us"] / 1000,
        acked=out["acked"],
        other=out["other"],
        other_codes=out["other_codes"],
        socket_errors=out["socket_errors"],
        server_cpu=(process_cpu_seconds(server.pid) - cpu0) / seconds,
    )
    return result, warm["acked"] + out["acked"]


# -- the targets ------------------------------------------------------------------------------


def run_webhook(kind: str, run: int, args: argparse.Namespace, work: Path) -> RunResult:
    hook: dict[str, Any] = {
        "id": kind,
        "execute-command": "",
        "http-methods": ["GET"],
        "trigger-rule": {
            "match": {
                "type": "regex",
                "regex": "^[A-Za-z0-9_-]{20,40}$",
                "parameter": {"source": "url", "name": "t"},
            }
        },
    }
    if kind == "click":
        hook["success-http-response-code"] = 302
        hook["response-headers"] = [{"name": "Location", "value": "https://example.com/p/1"}]
    hooks = work / "hooks.json"
    hooks.write_text(json.dumps([hook]))
    paths = work / f"webhook-{kind}.txt"
    paths.write_text(
        "".join(f"/hooks/{kind}?t=tok{n:08d}AAAAAAAAAAAAAA\n" for n in range(args.emails))
    )
    port = free_port()
    argv = [
        *pinned(SERVER_CORE),
        "webhook",
        "-hooks",
        str(hooks),
        "-ip",
        "127.0.0.1",
        "-port",
        str(port),
    ]
    server = Server(
        "webhook",
        argv,
        health_url=f"http://127.0.0.1:{port}/",
        log_path=work / f"webhook-{kind}-{run}.log",
    )
    with server:
        result, _ = measure(server, "webhook", kind, run, paths, args)
    return result


def prefill(database_url: str, count: int) -> None:
    """``count`` sent emails of three links each (ids 1..count)."""
    from sqlalchemy import insert

    from hookhub.core import jsoncodec
    from hookhub.store.database import Database
    from hookhub.store.migrate import migrate
    from hookhub.store.schema_email import emails

    db = Database(database_url)
    try:
        migrate(db)
        sent = datetime.now(UTC).replace(year=2025)
        rows = [
            {
                "message_id": f"bench-{n}@bench.example",
                "kind": "campaign",
                "to_email": f"reader{n}@example.com",
                "sender": '{"email":"shop@example.com"}',
                "subject": "Sale",
                "tags": "[]",
                "params": "{}",
                "headers": "{}",
                "status": "sent",
                "links": jsoncodec.dumps(
                    [f"https://shop.example.com/p/{n}/{i}" for i in range(LINKS)]
                ).decode(),
                "attempt_count": 1,
                "created_at": sent,
                "sent_at": sent,
                "updated_at": sent.timestamp(),
            }
            for n in range(1, count + 1)
        ]
        with db.write() as conn:
            for start in range(0, len(rows), 2000):
                conn.execute(insert(emails), rows[start : start + 2000])
    finally:
        db.dispose()


def hookhub_paths(kind: str, count: int, path: Path) -> None:
    from hookhub.core.crypto import Keyring, parse_key
    from hookhub.core.tracking import tracking_signer

    signer = tracking_signer(Keyring(parse_key(BENCH_SECRET_KEY)))
    with path.open("w") as out:
        for n in range(1, count + 1):
            if kind == "open":
                out.write(f"/t/o/{signer.token('o', n)}\n")
            else:
                out.write(f"/t/c/{signer.token('c', n, n % LINKS)}\n")


def check_applied(database_url: str, acked: int, args: argparse.Namespace) -> tuple[bool, str]:
    """Wait for every hit to be applied; whether each acknowledged one became its event."""
    from sqlalchemy import func, select

    from hookhub.store.database import Database
    from hookhub.store.schema import messages
    from hookhub.store.schema_email import email_events, tracking_hits

    db = Database(database_url)
    started = time.monotonic()
    try:
        while True:
            with db.read() as conn:
                left = conn.execute(select(func.count()).select_from(tracking_hits)).scalar_one()
            if left == 0 or time.monotonic() - started > args.drain_timeout:
                break
            time.sleep(0.5)
        drained = time.monotonic() - started
        with db.read() as conn:
            events = conn.execute(
                select(func.count()).where(email_events.c.type.in_(("opened", "clicked")))
            ).scalar_one()
            sent = conn.execute(
                select(func.count()).where(messages.c.type.in_(("email.opened", "email.clicked")))
            ).scalar_one()
    finally:
        db.dispose()
    in_flight = 2 * args.connections  # warm-up and measured run: answers wrk never counted
    ok = left == 0 and events == sent and acked <= events <= acked + in_flight
    verdict = "OK" if ok else "FAILED"
    return ok, (
        f"applied {verdict}: acknowledged {acked}, events {events}, messages {sent}, "
        f"hits left {left}, drained in {drained:.1f} s after the load"
    )


def run_hookhub(
    target: str, kind: str, run: int, args: argparse.Namespace, work: Path
) -> RunResult:
    backend = target.removeprefix("hookhub-")
    with fresh_database(backend, args.postgres_url, work, f"tracking_{kind}_{run}") as url:
        prefill(url, args.emails)
        paths = work / f"hookhub-{kind}.txt"
        hookhub_paths(kind, args.emails, paths)
        port = free_port()
        argv = [
            *pinned(SERVER_CORE),
            *hookhub_command(),
            "serve",
            "--port",
            str(port),
            "--database-url",
            url,
        ]
        server = Server(
            target,
            argv,
            health_url=f"http://127.0.0.1:{port}/healthz",
            log_path=work / f"{target}-{kind}-{run}.log",
            env={"HOOKHUB_API_KEY": "bench_" + "k" * 32},
        )
        with server:
            result, acked = measure(server, target, kind, run, paths, args)
            ok, result.check = check_applied(url, acked, args)
        if not ok:
            print(f"  {target} {kind}: {result.check}\n{server.log()}", file=sys.stderr)
    return result


# -- report -----------------------------------------------------------------------------------


def print_run(r: RunResult) -> None:
    line = (
        f"  {r.kind:<5} {r.target:<19} run {r.run}: {r.requests_per_s:>8,.0f} hits/s  "
        f"p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:7.2f} ms | CPU server {r.server_cpu:.2f}"
        f" | other {r.other}"
    )
    if r.other or r.socket_errors:
        line += f" ({r.other_codes}) socket errors {r.socket_errors}"
    print(line, flush=True)
    if r.check:
        print(f"      {r.check}", flush=True)


def main() -> None:
    args = parse_args()
    missing = [t for t in ("wrk", "webhook", "taskset") if shutil.which(t) is None]
    if missing:
        sys.exit(f"missing: {', '.join(missing)}. On Debian: apt-get install -y wrk webhook")
    info = machine_info(args.postgres_url if "hookhub-postgresql" in args.targets else None)
    print_machine(info)
    print(
        f"runs {args.runs}, {args.duration} s (+{args.warmup} s warm-up), "
        f"{args.connections} connections, {args.emails} emails",
        flush=True,
    )
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    results: list[RunResult] = []
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench_tracking_") as tmp:
        work = Path(tmp)
        for run in range(1, args.runs + 1):
            for kind in args.kinds:
                for target in args.targets:
                    if target == "webhook":
                        result = run_webhook(kind, run, args, work)
                    else:
                        result = run_hookhub(target, kind, run, args, work)
                    print_run(result)
                    results.append(result)
    print("\nmedians (hits/s) and ratio to webhook in the same runs:")
    for kind in args.kinds:
        base = {
            r.run: r.requests_per_s for r in results if r.kind == kind and r.target == "webhook"
        }
        for target in args.targets:
            mine = [r for r in results if r.kind == kind and r.target == target]
            line = f"  {kind:<5} {target:<19} {median([r.requests_per_s for r in mine]):>8,.0f}"
            if target != "webhook" and base:
                ratios = [r.requests_per_s / base[r.run] for r in mine if r.run in base]
                line += f"  ratio {median(ratios):.2f}x ({', '.join(f'{x:.2f}' for x in ratios)})"
                line += "  all applied" if all("OK" in r.check for r in mine) else "  NOT APPLIED"
            print(line, flush=True)
    if args.json:
        args.json.write_text(
            json.dumps({"machine": info, "results": [r.__dict__ for r in results]}, indent=2)
        )


if __name__ == "__main__":
    main()
