"""Contact creation through the REST API against a bare Starlette handler, in the same run.

For each repetition, three servers answer ``POST /api/v1/contacts`` one after the other, each
pinned to core 0 while wrk (pinned to core 1) drives it with the same connections, duration and
warm-up, every request carrying a unique email:

- ``baseline``: bench/baseline_app.py, a Starlette route on uvicorn (uvloop, httptools) that
  parses the JSON body and answers 201 with a small JSON (no validation, no database);
- ``hookhub-sqlite``: ``hookhub serve`` on a fresh SQLite file;
- ``hookhub-postgresql``: ``hookhub serve`` on a fresh PostgreSQL database (created, then dropped).

It prints requests/s, latency percentiles and CPU use per run, the medians, and Hookhub's
throughput as a ratio of the baseline's. After each Hookhub run the server is killed with SIGKILL
and the database is read back: every email wrk saw a 201 for must be stored.

Needs wrk (Debian: ``apt-get install -y wrk``) and taskset (util-linux). Sends traffic to
127.0.0.1 only.

    .venv/bin/python bench/bench_contacts_api.py [--runs 3] [--duration 15] [--connections 64]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import (
    BENCH_DIR,
    DEFAULT_POSTGRES_URL,
    CpuWindow,
    Server,
    database_name,
    free_port,
    hookhub_command,
    machine_info,
    median,
    pinned,
    postgres_reachable,
    print_machine,
    temporary_postgres_database,
)

SERVER_CORE = 0
LOAD_CORE = 1
LUA_SCRIPT = BENCH_DIR / "create_contacts.lua"
TARGETS = ("baseline", "hookhub-sqlite", "hookhub-postgresql")


@dataclass
class Durability:
    counted_201s: int
    """201 answers counted by wrk's script."""
    acknowledged: int
    """Emails of 201 answers recorded by wrk's script (must equal counted_201s)."""
    distinct_acknowledged: int
    stored: int
    missing: int
    """Acknowledged with a 201 but not in the database: must be 0."""
    unacknowledged_stored: int
    """Stored, but the 201 never reached wrk: requests in flight when the load stopped."""

    @property
    def ok(self) -> bool:
        return (
            self.missing == 0
            and self.acknowledged == self.counted_201s
            and self.distinct_acknowledged == self.acknowledged
        )


@dataclass
class RunResult:
    target: str
    run: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    responses: int
    created: int
    non_201: int
    non_201_codes: str
    socket_errors: int
    server_cpu: float
    """Cores used by the server process during the measured window (1.0 = one core busy)."""
    server_cpu_us_per_request: float
    """Server CPU time per answered request: the cost, less sensitive to a busy machine."""
    postgres_cpu_us_per_request: float
    load_cpu: float
    postgres_cpu: float
    others_cpu: float
    """Cores used by everything else on the machine meanwhile (other people's work)."""
    others_server_core: float
    """Share of the server's core used by other processes (PostgreSQL backends included)."""
    others_load_core: float
    """Share of wrk's core used by other processes (PostgreSQL backends included)."""
    durability: Durability | None = field(default=None)
    rate: FixedRate | None = field(default=None)
    """Latency at a fixed request rate (open loop), measured after the wrk window."""


@dataclass
class FixedRate:
    rate: float
    """Requests per second asked for."""
    sent: int
    ok: int
    """Answers 201."""
    p50_ms: float
    p99_ms: float
    max_ms: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Contacts API throughput and latency against a bare Starlette baseline."
    )
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--duration", type=int, default=15, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help=f"comma-separated subset of {','.join(TARGETS)}",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="admin URL used to create and drop the throwaway database",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument(
        "--rate",
        type=float,
        default=200.0,
        help="after each wrk window, send this many requests/s at a fixed pace (0: skip)",
    )
    parser.add_argument("--rate-duration", type=int, default=10, help="seconds at --rate")
    parser.add_argument("--rate-client", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return args


def require_tools() -> None:
    if shutil.which("wrk") is None:
        sys.exit(
            "wrk is not installed. On Debian/Ubuntu: apt-get install -y wrk\n"
            "(it is the load generator; this benchmark needs it)"
        )


# -- load generation ------------------------------------------------------------------------------


def run_wrk(
    url: str,
    *,
    tag: str,
    api_key: str,
    duration: int,
    connections: int,
    ack_prefix: Path | None,
) -> tuple[dict[str, Any], float]:
    """Drive ``url`` with wrk for ``duration`` seconds; the script's result and wrk's CPU time."""
    argv = [
        *pinned(LOAD_CORE),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        tag,
        api_key,
        str(ack_prefix) if ack_prefix else "",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
            return result, cpu
    raise RuntimeError(
        f"wrk printed no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    )


def measure(
    server: Server,
    target: str,
    run: int,
    args: argparse.Namespace,
    *,
    api_key: str,
    work_dir: Path,
    postgres_database: str | None = None,
) -> tuple[RunResult, str, Path]:
    """Warm up, then measure; answers the result, the run's email tag and its ack-file prefix."""
    url = server.health_url.replace("/healthz", "/api/v1/contacts")
    slug = target.replace("hookhub-", "")
    warm, _ = run_wrk(
        url,
        tag=f"warm-{run}-{slug}",
        api_key=api_key,
        duration=args.warmup,
        connections=args.connections,
        ack_prefix=None,
    )
    if warm["created"] == 0:
        raise RuntimeError(
            f"{target}: no 201 during warm-up (answers: {warm['other_codes'] or 'none'}).\n"
            f"Server log tail:\n{server.log()}"
        )
    tag = f"run-{run}-{slug}"
    ack_prefix = work_dir / f"acks-{tag}"
    window = CpuWindow([server.pid], postgres_database)
    out, load_cpu = run_wrk(
        url,
        tag=tag,
        api_key=api_key,
        duration=args.duration,
        connections=args.connections,
        ack_prefix=ack_prefix,
    )
    cpu = window.stop()
    seconds = out["duration_us"] / 1e6
    responses = max(out["requests"], 1)
    result = RunResult(
        target=target,
        run=run,
        requests_per_s=out["requests"] / seconds,
        p50_ms=out["latency_p50_us"] / 1000,
        p90_ms=out["latency_p90_us"] / 1000,
        p99_ms=out["latency_p99_us"] / 1000,
        max_ms=out["latency_max_us"] / 1000,
        responses=out["requests"],
        created=out["created"],
        non_201=out["other"],
        non_201_codes=out["other_codes"],
        socket_errors=sum(out[k] for k in ("errors_connect", "errors_read", "errors_write")),
        server_cpu=cpu.cores(cpu.processes),
        server_cpu_us_per_request=cpu.processes / responses * 1e6,
        postgres_cpu_us_per_request=cpu.postgres / responses * 1e6,
        load_cpu=load_cpu / cpu.wall,
        postgres_cpu=cpu.cores(cpu.postgres),
        others_cpu=cpu.cores(cpu.machine - cpu.processes - cpu.postgres - load_cpu),
        others_server_core=cpu.others_on_core(SERVER_CORE, cpu.processes),
        others_load_core=cpu.others_on_core(LOAD_CORE, load_cpu),
    )
    if args.rate > 0:
        result.rate = fixed_rate(url, api_key, f"rate-{run}-{slug}", args.rate, args.rate_duration)
    return result, tag, ack_prefix


def fixed_rate(url: str, api_key: str, tag: str, rate: float, duration: int) -> FixedRate:
    """Run the open-loop client (this script, ``--rate-client``) pinned to the load core."""
    argv = [
        *pinned(LOAD_CORE),
        sys.executable,
        __file__,
        "--rate-client",
        url,
        api_key or "-",
        tag,
        str(rate),
        str(duration),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True)
    return FixedRate(**json.loads(done.stdout.strip().splitlines()[-1]))


def rate_client(url: str, api_key: str, tag: str, rate: float, duration: int) -> None:
    """Send ``rate`` creates a second for ``duration`` seconds, each at its scheduled time on
    whichever keep-alive connection is free (a new one if none is), and time each from its
    scheduled time to its answer, so that a slow answer delays no later request's clock (no
    coordinated omission). Prints one JSON line."""
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    auth = f"Authorization: Bearer {api_key}\r\n" if api_key != "-" else ""

    async def exchange(
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> int:
        reader, writer = conn
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        return status

    async def one(
        idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], seq: int
    ) -> tuple[float, int]:
        body = (
            f'{{"email":"{tag}-{seq}@bench.example",'
            f'"attributes":{{"FIRSTNAME":"Ada","LASTNAME":"Lovelace","AGE":{seq % 90}}}}}'
        ).encode()
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        conn = idle.pop() if idle else await asyncio.open_connection(host, port)
        try:
            status = await exchange(conn, request)
        except (asyncio.IncompleteReadError, ConnectionError):
            # The server closed a connection that sat idle past its keep-alive: the request
            # was not read (no answer began); send it on a new one, its clock still running.
            conn[1].close()
            conn = await asyncio.open_connection(host, port)
            status = await exchange(conn, request)
        idle.append(conn)
        return time.perf_counter(), status

    async def main() -> None:
        idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        tasks = []
        start = time.perf_counter() + 0.2
        total = int(rate * duration)
        for seq in range(total):
            due = start + seq / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append((due, asyncio.ensure_future(one(idle, seq))))
        latencies: list[float] = []
        ok = 0
        for due, task in tasks:
            finished, status = await task
            latencies.append((finished - due) * 1000)
            ok += status == 201
        latencies.sort()
        print(
            json.dumps(
                {
                    "rate": rate,
                    "sent": total,
                    "ok": ok,
                    "p50_ms": latencies[len(latencies) // 2],
                    "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
                    "max_ms": latencies[-1],
                }
            )
        )

    asyncio.run(main())


def acknowledged_emails(ack_prefix: Path) -> list[str]:
    emails: list[str] = []
    for path in sorted(ack_prefix.parent.glob(ack_prefix.name + "-*.txt")):
        emails.extend(line for line in path.read_text().splitlines() if line)
    return emails


def check_durability(counted_201s: int, acked: list[str], stored: set[str]) -> Durability:
    acked_set = set(acked)
    return Durability(
        counted_201s=counted_201s,
        acknowledged=len(acked),
        distinct_acknowledged=len(acked_set),
        stored=len(stored),
        missing=len(acked_set - stored),
        unacknowledged_stored=len(stored - acked_set),
    )


def stored_emails_sqlite(path: Path, tag: str) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT email FROM contacts WHERE email LIKE ?", (tag + "-%",))
        return {row[0] for row in rows}
    finally:
        conn.close()


def stored_emails_postgres(url: str, tag: str) -> set[str]:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute("SELECT email FROM contacts WHERE email LIKE %s", (tag + "-%",))
        return {row[0] for row in rows}


# -- the three targets ----------------------------------------------------------------------------


def hookhub_server(database_url: str, api_key: str, log_path: Path) -> Server:
    port = free_port()
    return Server(
        "hookhub",
        [
            *pinned(SERVER_CORE),
            *hookhub_command(),
            "serve",
            "--port",
            str(port),
            "--database-url",
            database_url,
        ],
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_path=log_path,
        env={"HOOKHUB_API_KEY": api_key},
    )


def run_baseline(run: int, args: argparse.Namespace, work_dir: Path) -> RunResult:
    port = free_port()
    server = Server(
        "baseline",
        [
            *pinned(SERVER_CORE),
            sys.executable,
            str(BENCH_DIR / "baseline_app.py"),
            "--port",
            str(port),
        ],
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_path=work_dir / f"baseline-{run}.log",
    )
    with server:
        result, _tag, _acks = measure(server, "baseline", run, args, api_key="", work_dir=work_dir)
    return result


def run_hookhub_sqlite(run: int, args: argparse.Namespace, work_dir: Path) -> RunResult:
    db_path = work_dir / f"hookhub-{run}.db"
    api_key = "bench_" + secrets.token_urlsafe(24)
    server = hookhub_server(f"sqlite:///{db_path}", api_key, work_dir / f"hookhub-sqlite-{run}.log")
    with server:
        result, tag, acks = measure(
            server, "hookhub-sqlite", run, args, api_key=api_key, work_dir=work_dir
        )
        server.stop(signal.SIGKILL)  # a crash, not a clean shutdown: committed must mean stored
    result.durability = check_durability(
        result.created, acknowledged_emails(acks), stored_emails_sqlite(db_path, tag)
    )
    return result


def run_hookhub_postgres(run: int, args: argparse.Namespace, work_dir: Path) -> RunResult:
    api_key = "bench_" + secrets.token_urlsafe(24)
    with temporary_postgres_database(args.postgres_url, f"api{run}") as url:
        server = hookhub_server(url, api_key, work_dir / f"hookhub-postgresql-{run}.log")
        with server:
            result, tag, acks = measure(
                server,
                "hookhub-postgresql",
                run,
                args,
                api_key=api_key,
                work_dir=work_dir,
                postgres_database=database_name(url),
            )
            server.stop(signal.SIGKILL)
        result.durability = check_durability(
            result.created, acknowledged_emails(acks), stored_emails_postgres(url, tag)
        )
    return result


# -- report ---------------------------------------------------------------------------------------


def print_run(r: RunResult) -> None:
    line = (
        f"  {r.target:<19} run {r.run}: {r.requests_per_s:>8,.0f} req/s  "
        f"p50 {r.p50_ms:6.2f} ms  p90 {r.p90_ms:6.2f} ms  p99 {r.p99_ms:7.2f} ms  "
        f"max {r.max_ms:7.1f} ms | server {r.server_cpu_us_per_request:,.0f} us CPU/request"
        f" | cores used: server {r.server_cpu:.2f} wrk {r.load_cpu:.2f}"
        f" postgres {r.postgres_cpu:.2f} others {r.others_cpu:.2f}"
        f" (of core {SERVER_CORE}: {r.others_server_core:.2f}, of core {LOAD_CORE}:"
        f" {r.others_load_core:.2f})"
    )
    if r.non_201 or r.socket_errors:
        line += f" | non-201: {r.non_201} ({r.non_201_codes}) socket errors: {r.socket_errors}"
    print(line, flush=True)
    if r.rate is not None:
        print(
            f"      at a fixed {r.rate.rate:.0f} req/s for {r.rate.sent} requests: p50"
            f" {r.rate.p50_ms:.2f} ms, p99 {r.rate.p99_ms:.2f} ms, max {r.rate.max_ms:.1f} ms"
            f" ({r.rate.ok} answered 201)",
            flush=True,
        )
    d = r.durability
    if d is not None:
        verdict = "OK" if d.ok else "FAILED"
        print(
            f"      durability {verdict}: 201s {d.counted_201s} (emails recorded "
            f"{d.acknowledged}, distinct {d.distinct_acknowledged}), stored {d.stored}, "
            f"acknowledged but missing "
            f"{d.missing}, stored without a 201 reaching wrk (in flight at the stop) "
            f"{d.unacknowledged_stored}",
            flush=True,
        )


def _same_run_ratios(
    results: list[RunResult], target: str, value: Callable[[RunResult, RunResult], float]
) -> list[float]:
    base = {r.run: r for r in results if r.target == "baseline"}
    return [value(r, base[r.run]) for r in results if r.target == target and r.run in base]


def print_summary(results: list[RunResult], targets: list[str]) -> None:
    print("\nmedians:")
    print(
        f"  {'target':<19} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
        f" {'server us CPU/req':>18} {'postgres us CPU/req':>20} {'others cores':>13}"
    )
    for target in targets:
        rs = [r for r in results if r.target == target]
        if not rs:
            continue

        def m(value: Callable[[RunResult], float], rs: list[RunResult] = rs) -> float:
            return median([value(r) for r in rs])

        print(
            f"  {target:<19} {m(lambda r: r.requests_per_s):>9,.0f} {m(lambda r: r.p50_ms):>8.2f}"
            f" {m(lambda r: r.p90_ms):>8.2f} {m(lambda r: r.p99_ms):>8.2f}"
            f" {m(lambda r: r.server_cpu_us_per_request):>18,.0f}"
            f" {m(lambda r: r.postgres_cpu_us_per_request):>20,.0f}"
            f" {m(lambda r: r.others_cpu):>13.2f}"
        )
    if any(r.target == "baseline" for r in results):
        print("\nHookhub against the baseline of the same repetition (per run, then median):")
        for target in targets:
            if target == "baseline":
                continue
            throughput = _same_run_ratios(
                results, target, lambda r, b: r.requests_per_s / b.requests_per_s
            )
            cost = _same_run_ratios(
                results,
                target,
                lambda r, b: r.server_cpu_us_per_request / b.server_cpu_us_per_request,
            )
            if throughput:
                print(
                    f"  {target:<19} req/s ratio "
                    + ", ".join(f"{x:.3f}" for x in throughput)
                    + f" (median {median(throughput):.3f});"
                    f" server CPU per request x{median(cost):.1f} the baseline's"
                )
    rated = [r for r in results if r.rate is not None]
    if rated:
        print("\nat a fixed rate (open loop, after each wrk window; medians of the runs):")
        for target in targets:
            fixed = [r.rate for r in rated if r.target == target and r.rate is not None]
            if fixed:
                print(
                    f"  {target:<19} {fixed[0].rate:.0f} req/s: p50"
                    f" {median([x.p50_ms for x in fixed]):.2f} ms, p99"
                    f" {median([x.p99_ms for x in fixed]):.2f} ms (runs: "
                    + ", ".join(f"{x.p99_ms:.1f}" for x in fixed)
                    + f"), max {max(x.max_ms for x in fixed):.1f} ms"
                )
    checked = [r for r in results if r.durability is not None]
    if checked:
        failed = [r for r in checked if r.durability is not None and not r.durability.ok]
        print(
            f"\ndurability: {len(checked) - len(failed)}/{len(checked)} Hookhub runs stored every "
            "acknowledged contact (server killed with SIGKILL, database read back)"
        )


@contextlib.contextmanager
def work_directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-api-") as tmp:
        yield Path(tmp)


def main() -> None:
    args = parse_args()
    if args.rate_client:
        url, key, tag, rate, duration = args.rate_client
        rate_client(url, key, tag, float(rate), int(duration))
        return
    require_tools()
    targets: list[str] = list(args.targets)
    if "hookhub-postgresql" in targets:
        problem = postgres_reachable(args.postgres_url)
        if problem is not None:
            print(f"PostgreSQL at {args.postgres_url} is unreachable ({problem}); skipping it.")
            targets.remove("hookhub-postgresql")
    info = machine_info(args.postgres_url if "hookhub-postgresql" in targets else None)
    info["wrk"] = subprocess.run(
        ["wrk", "-v"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    print_machine(info)
    per_run = args.warmup + args.duration + 5
    print(
        f"\nsettings: {args.runs} runs x {len(targets)} targets, {args.connections} connections, "
        f"{args.warmup} s warm-up + {args.duration} s measured each (about "
        f"{args.runs * len(targets) * per_run / 60:.1f} min); server on core {SERVER_CORE}, "
        f"wrk (1 thread) on core {LOAD_CORE}\n",
        flush=True,
    )
    runners = {
        "baseline": run_baseline,
        "hookhub-sqlite": run_hookhub_sqlite,
        "hookhub-postgresql": run_hookhub_postgres,
    }
    results: list[RunResult] = []
    started = time.monotonic()
    with work_directory() as work_dir:
        for run in range(1, args.runs + 1):
            for target in targets:
                result = runners[target](run, args, work_dir)
                results.append(result)
                print_run(result)
    print_summary(results, targets)
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps({"machine": info, "results": [asdict(r) for r in results]}, indent=2)
        )
    if any(r.durability is not None and not r.durability.ok for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
