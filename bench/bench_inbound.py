"""Receiving Stripe webhooks: Hookhub against a bare Starlette handler and Debian's ``webhook``.

For each repetition, these servers answer the same pre-signed Stripe ``customer.created``
requests (unique event ids and emails, bench/inbound_requests.py) one after the other, each
pinned to core 0 while wrk (pinned to core 1, bench/inbound_replay.lua) drives it with the same
connections, duration and warm-up:

- ``webhook``: Debian's ``webhook`` (Go), with a ``payload-hmac-sha256`` rule over the body
  (``X-Signature``); it stores nothing;
- ``baseline``: bench/inbound_baseline_app.py, a Starlette route on uvicorn that verifies
  ``Stripe-Signature`` and answers 200; it stores nothing;
- ``hookhub-sqlite``: ``hookhub serve`` on a fresh SQLite file;
- ``hookhub-postgresql``: ``hookhub serve`` on a fresh PostgreSQL database (created, dropped);
- ``hookhub-sqlite-split``, ``hookhub-postgresql-split`` (not run by default): ``hookhub api``
  (receiving only) under the load, then ``hookhub worker`` on the same core to drain it: the
  receive path's own ceiling, and the rules' rate on their own.

Hookhub answers 202 once a request is verified, deduplicated and durably logged; the same
process then runs the webhook's rules (upsert the contact, record the event, write outbox
messages). After the warm-up its backlog is left to drain; after the measured load the script
times how long the backlog takes to drain and checks, in the database, that every request wrk
saw a 202 for was processed. Requests/s, latency percentiles, non-2xx answers and CPU use are
printed per run, then medians and Hookhub's rate as a ratio of ``webhook``'s in the same run.

``--compare-source DIR`` adds, after each Hookhub target, the same target run with the
``hookhub`` package found in DIR (a checkout of another commit: ``git archive <rev> hookhub |
tar -x -C DIR``), named ``<target>@before``: a change measured before and after in the same
minutes.

Needs wrk and webhook (Debian: ``apt-get install -y wrk webhook``) and taskset (util-linux).
Sends traffic to 127.0.0.1 only.

    .venv/bin/python bench/bench_inbound.py [--runs 3] [--duration 15] [--connections 64]
    .venv/bin/python bench/bench_inbound.py --targets webhook,hookhub-sqlite --compare-source DIR
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import (
    BENCH_DIR,
    DEFAULT_POSTGRES_URL,
    Server,
    free_port,
    hookhub_command,
    machine_info,
    median,
    pinned,
    postgres_cpu_seconds,
    postgres_reachable,
    print_machine,
    process_cpu_seconds,
    temporary_postgres_database,
)
from inbound_backlog import (
    Processing,
    RequestLog,
    check_processing,
    read_acknowledged,
    wait_for_drain,
)
from inbound_requests import customer_created_bodies, webhook_hooks_json, write_signed_requests

SERVER_CORE = 0
LOAD_CORE = 1
LUA_SCRIPT = BENCH_DIR / "inbound_replay.lua"
TARGETS = (
    "webhook",
    "baseline",
    "hookhub-sqlite",
    "hookhub-postgresql",
    "hookhub-sqlite-split",
    "hookhub-postgresql-split",
)
DEFAULT_TARGETS = TARGETS[:4]
BEFORE = "@before"  # suffix of a target run with --compare-source's package
WARM_TAG = "warm"
RUN_TAG = "meas"


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
    ok_2xx: int
    non_2xx: int
    non_2xx_codes: str
    socket_errors: int
    wraps: int
    """Times wrk went back to the first request (for Hookhub: repeats, answered as duplicates)."""
    server_cpu: float
    """Cores used by the server process while wrk ran (1.0 = one core busy)."""
    load_cpu: float
    postgres_cpu: float
    processing: Processing | None = field(default=None)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Inbound Stripe webhooks: Hookhub against Starlette and Debian's webhook."
    )
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--duration", type=int, default=15, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (all on core 1)")
    parser.add_argument(
        "--requests",
        type=int,
        default=0,
        help="distinct requests per measured run [default: 25,000 x duration]",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=900.0,
        help="longest wait, in seconds, for Hookhub's backlog to drain after a run",
    )
    parser.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help=f"comma-separated subset of {','.join(TARGETS)} [default: the first four]",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="admin URL used to create and drop the throwaway database",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument(
        "--compare-source",
        type=Path,
        help="a directory holding another hookhub package, run as <target>@before",
    )
    args = parser.parse_args()
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if args.compare_source is not None:
        args.compare_source = args.compare_source.resolve()
        if not (args.compare_source / "hookhub" / "__init__.py").exists():
            parser.error(f"no hookhub package in {args.compare_source}")
        args.targets = [
            name
            for target in args.targets
            for name in (
                [target, f"{target}{BEFORE}"] if target.startswith("hookhub") else [target]
            )
        ]
    args.requests = args.requests or 25_000 * args.duration
    return args


def require_tools(targets: list[str]) -> None:
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if "webhook" in targets and shutil.which("webhook") is None:
        missing.append("webhook")
    if missing:
        packages = " ".join("util-linux" if t == "taskset" else t for t in missing)
        sys.exit(
            f"missing: {', '.join(missing)}. On Debian/Ubuntu: apt-get install -y {packages}\n"
            "(wrk is the load generator; webhook is the Go receiver compared against)"
        )


def tool_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name, argv in (("webhook", ["webhook", "-version"]), ("wrk", ["wrk", "-v"])):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            text = (done.stdout + done.stderr).strip().splitlines()
            versions[name] = text[0] if text else "unknown"
        except OSError:
            versions[name] = "not installed"
    return versions


# -- load generation ------------------------------------------------------------------------------


def run_wrk(
    port: int,
    path: str,
    requests_file: Path,
    args: argparse.Namespace,
    *,
    duration: int,
    ack_prefix: Path | None,
) -> tuple[dict[str, Any], float]:
    """Replay ``requests_file`` to ``path`` for ``duration`` s; the script's result, wrk's CPU."""
    argv = [
        *pinned(LOAD_CORE),
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA_SCRIPT),
        f"http://127.0.0.1:{port}",
        "--",
        str(requests_file),
        path,
        str(args.threads),
        str(ack_prefix) if ack_prefix else "",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 300, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
            return result, cpu
    raise RuntimeError(
        f"wrk printed no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    )


@dataclass
class Bodies:
    warm: list[bytes]
    measured: list[bytes]


def measure(
    server: Server,
    target: str,
    run: int,
    args: argparse.Namespace,
    *,
    path: str,
    secret: str,
    bodies: Bodies,
    work_dir: Path,
    after_warmup: Callable[[], None] | None = None,
    ack_prefix: Path | None = None,
) -> tuple[RunResult, float]:
    """Warm up, then measure; answers the result and the time the load stopped."""
    requests_file = work_dir / "requests.txt"
    write_signed_requests(requests_file, bodies.warm, secret)
    warm, _ = run_wrk(
        server_port(server), path, requests_file, args, duration=args.warmup, ack_prefix=None
    )
    if warm["ok_200"] + warm["accepted_202"] == 0:
        raise RuntimeError(
            f"{target}: no 2xx during warm-up (answers: {warm['other_codes'] or 'none'}).\n"
            f"Server log tail:\n{server.log()}"
        )
    if after_warmup is not None:
        after_warmup()
    # Signed right before the run: Stripe's timestamp must stay inside the 300 s window.
    write_signed_requests(requests_file, bodies.measured, secret)
    server_cpu0 = process_cpu_seconds(server.pid)
    pg_cpu0 = postgres_cpu_seconds() if "postgresql" in target else 0.0
    out, load_cpu = run_wrk(
        server_port(server),
        path,
        requests_file,
        args,
        duration=args.duration,
        ack_prefix=ack_prefix,
    )
    stopped_at = time.time()
    seconds = out["duration_us"] / 1e6
    result = RunResult(
        target=target,
        run=run,
        requests_per_s=out["responses"] / seconds,
        p50_ms=out["latency_p50_us"] / 1000,
        p90_ms=out["latency_p90_us"] / 1000,
        p99_ms=out["latency_p99_us"] / 1000,
        max_ms=out["latency_max_us"] / 1000,
        responses=out["responses"],
        ok_2xx=out["ok_200"] + out["accepted_202"],
        non_2xx=out["other"],
        non_2xx_codes=out["other_codes"],
        socket_errors=sum(out[k] for k in ("errors_connect", "errors_read", "errors_write")),
        wraps=out["wraps"],
        # The server idles while wrk loads its requests; CPU is charged to the measured seconds.
        server_cpu=(process_cpu_seconds(server.pid) - server_cpu0) / seconds,
        load_cpu=load_cpu / seconds,
        # Every postgres process of the machine, other users' included; exits make it jump.
        postgres_cpu=(
            max(0.0, postgres_cpu_seconds() - pg_cpu0) / seconds if "postgresql" in target else 0
        ),
    )
    if target.startswith("hookhub") and out["ok_200"]:
        result.non_2xx_codes += f" (200 duplicate: {out['ok_200']})"
    return result, stopped_at


def server_port(server: Server) -> int:
    return int(server.health_url.split(":")[2].split("/")[0])


# -- the targets ----------------------------------------------------------------------------------


def run_webhook(run: int, args: argparse.Namespace, bodies: Bodies, work_dir: Path) -> RunResult:
    secret = "whsec_" + secrets.token_hex(16)
    hooks = work_dir / "hooks.json"
    webhook_hooks_json(hooks, secret)
    port = free_port()
    server = Server(
        "webhook",
        [
            *pinned(SERVER_CORE),
            "webhook",
            "-hooks",
            str(hooks),
            "-ip",
            "127.0.0.1",
            "-port",
            str(port),
        ],
        health_url=f"http://127.0.0.1:{port}/",
        log_path=work_dir / f"webhook-{run}.log",
    )
    with server:
        result, _ = measure(
            server,
            "webhook",
            run,
            args,
            path="/hooks/stripe",
            secret=secret,
            bodies=bodies,
            work_dir=work_dir,
        )
    return result


def run_baseline(run: int, args: argparse.Namespace, bodies: Bodies, work_dir: Path) -> RunResult:
    secret = "whsec_" + secrets.token_hex(16)
    port = free_port()
    server = Server(
        "baseline",
        [
            *pinned(SERVER_CORE),
            sys.executable,
            str(BENCH_DIR / "inbound_baseline_app.py"),
            "--port",
            str(port),
            "--secret",
            secret,
        ],
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_path=work_dir / f"baseline-{run}.log",
    )
    with server:
        result, _ = measure(
            server,
            "baseline",
            run,
            args,
            path="/in/" + "b" * 27,
            secret=secret,
            bodies=bodies,
            work_dir=work_dir,
        )
    return result


def create_inbound_webhook(server: Server, api_key: str, secret: str) -> str:
    """POST /api/v1/inbound-webhooks; answers the receive path (``/in/<token>``)."""
    url = server.health_url.replace("/healthz", "/api/v1/inbound-webhooks")
    request = urllib.request.Request(
        url,
        data=json.dumps({"name": "bench", "source": "stripe", "secret": secret}).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        created = json.loads(answer.read())
    receive_url: str = created["url"]
    return "/in/" + receive_url.rsplit("/in/", 1)[1]


def run_hookhub(
    target: str,
    database_url: str,
    run: int,
    args: argparse.Namespace,
    bodies: Bodies,
    work_dir: Path,
) -> RunResult:
    """``hookhub serve``; or, for ``-split``, ``hookhub api`` with ``hookhub worker`` after it."""
    source = args.compare_source if target.endswith(BEFORE) else None
    target_env = {"PYTHONPATH": str(source)} if source else {}
    split = target.removesuffix(BEFORE).endswith("-split")
    api_key = "bench_" + secrets.token_urlsafe(24)
    secret = "whsec_" + secrets.token_hex(16)
    port = free_port()
    server = Server(
        "hookhub",
        [
            *pinned(SERVER_CORE),
            *hookhub_command(),
            "api" if split else "serve",
            "--port",
            str(port),
            "--database-url",
            database_url,
        ],
        health_url=f"http://127.0.0.1:{port}/healthz",
        log_path=work_dir / f"{target}-{run}.log",
        # No rate limit: the benchmark is one sender as fast as it can go.
        env={"HOOKHUB_API_KEY": api_key, "HOOKHUB_INBOUND_RATE_LIMIT": "0", **target_env},
    )
    log = RequestLog(database_url)
    ack_prefix = work_dir / f"acks-{target}-{run}"
    worker_log = work_dir / f"{target}-{run}-worker.log"

    def drain() -> bool:
        if not split:
            return wait_for_drain(log, args.drain_timeout)
        with worker(database_url, worker_log, source):
            return wait_for_drain(log, args.drain_timeout)

    def drain_warmup() -> None:
        if not drain():
            raise RuntimeError(f"{target}: the warm-up backlog did not drain")

    with server:
        path = create_inbound_webhook(server, api_key, secret)
        result, stopped_at = measure(
            server,
            target,
            run,
            args,
            path=path,
            secret=secret,
            bodies=bodies,
            work_dir=work_dir,
            after_warmup=drain_warmup,
            ack_prefix=ack_prefix,
        )
        drained = drain()
        result.processing = check_processing(
            log,
            tag=RUN_TAG,
            acknowledged_ids=read_acknowledged(ack_prefix),
            load_stopped_at=stopped_at,
            load_seconds=args.duration,
            drained=drained,
        )
    return result


@contextlib.contextmanager
def worker(database_url: str, log_path: Path, source: Path | None) -> Iterator[None]:
    """``hookhub worker`` pinned to the server's core, in its own session; killed on exit."""
    env = {**os.environ, "PYTHONPATH": str(source)} if source else None
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [*pinned(SERVER_CORE), *hookhub_command(), "worker", "--database-url", database_url],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def run_target(
    target: str, run: int, args: argparse.Namespace, bodies: Bodies, work_dir: Path
) -> RunResult:
    if target == "webhook":
        return run_webhook(run, args, bodies, work_dir)
    if target == "baseline":
        return run_baseline(run, args, bodies, work_dir)
    if target.startswith("hookhub-sqlite"):
        url = f"sqlite:///{work_dir / f'{target}-{run}.db'}"
        return run_hookhub(target, url, run, args, bodies, work_dir)
    with temporary_postgres_database(args.postgres_url, f"inbound{run}") as url:
        return run_hookhub(target, url, run, args, bodies, work_dir)


# -- report ---------------------------------------------------------------------------------------


def print_run(r: RunResult) -> None:
    line = (
        f"  {r.target:<19} run {r.run}: {r.requests_per_s:>8,.0f} req/s  "
        f"p50 {r.p50_ms:6.2f} ms  p90 {r.p90_ms:6.2f} ms  p99 {r.p99_ms:7.2f} ms  "
        f"max {r.max_ms:7.1f} ms | CPU server {r.server_cpu:.2f} wrk {r.load_cpu:.2f}"
    )
    if "postgresql" in r.target:
        line += f" postgres (all) {r.postgres_cpu:.2f}"
    line += f" | non-2xx {r.non_2xx}"
    if r.non_2xx or r.socket_errors or "duplicate" in r.non_2xx_codes:
        line += f" ({r.non_2xx_codes}) socket errors {r.socket_errors}"
    if r.wraps:
        line += f" | request list replayed {r.wraps}x"
    print(line, flush=True)
    p = r.processing
    if p is None:
        return
    verdict = "OK" if p.ok else "FAILED"
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(p.by_status.items()))
    print(
        f"      processing {verdict}: 202s {p.acknowledged}, of which not processed "
        f"{p.acknowledged_not_processed} (unreadable {p.acknowledged_unreadable}); "
        f"logged {p.logged} ({statuses}); contacts {p.contacts} for {p.acknowledged_emails} "
        f"acknowledged emails (missing {p.acknowledged_emails_without_contact}); "
        f"events {p.events}; outbox {p.messages} for {p.processed_total} processed in the DB",
        flush=True,
    )
    print(
        f"      backlog at stop {p.backlog_at_stop}, drained in {p.drain_seconds:.1f} s "
        f"({p.drain_rate:,.0f} req/s); processed during the load {p.processed_during_load} "
        f"({p.processing_rate_during_load:,.0f} req/s); overall {p.overall_rate:,.0f} req/s"
        + ("" if p.drained else " -- NOT DRAINED within the timeout")
        + ("; " + "; ".join(p.notes) if p.notes else ""),
        flush=True,
    )


def ratios(results: list[RunResult], target: str, reference: str) -> list[float]:
    return [
        r.requests_per_s / b.requests_per_s
        for r in results
        if r.target == target
        for b in results
        if b.target == reference and b.run == r.run and b.requests_per_s
    ]


def print_summary(results: list[RunResult], targets: list[str]) -> None:
    print("\nmedians:")
    print(
        f"  {'target':<19} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
        f" {'server CPU':>11} {'wrk CPU':>8} {'x webhook':>10} {'x baseline':>11}"
    )
    for target in targets:
        rs = [r for r in results if r.target == target]
        if not rs:
            continue
        to_webhook = ratios(results, target, "webhook")
        to_baseline = ratios(results, target, "baseline")
        print(
            f"  {target:<19} {median([r.requests_per_s for r in rs]):>9,.0f}"
            f" {median([r.p50_ms for r in rs]):>8.2f} {median([r.p99_ms for r in rs]):>8.2f}"
            f" {median([r.non_2xx for r in rs]):>8.0f}"
            f" {median([r.server_cpu for r in rs]):>11.2f}"
            f" {median([r.load_cpu for r in rs]):>8.2f}"
            f" {median(to_webhook) if to_webhook else float('nan'):>10.3f}"
            f" {median(to_baseline) if to_baseline else float('nan'):>11.3f}"
        )
    print("\nratio to webhook in the same repetition (req/s), per repetition:")
    for target in targets:
        if target == "webhook":
            continue
        values = ratios(results, target, "webhook")
        if values:
            shown = ", ".join(f"{x:.3f}" for x in values)
            print(f"  {target:<19} {shown}  (median {median(values):.3f})")
    compared = [t for t in targets if t.endswith(BEFORE)]
    if compared:
        print("\nratio to the --compare-source package in the same repetition (req/s):")
        for before in compared:
            target = before.removesuffix(BEFORE)
            values = ratios(results, target, before)
            if values:
                shown = ", ".join(f"{x:.3f}" for x in values)
                print(f"  {target:<19} {shown}  (median {median(values):.3f})")
    processed = [r for r in results if r.processing is not None]
    if processed:
        print("\nprocessing after the load (medians):")
        for target in targets:
            ps = [r.processing for r in processed if r.target == target and r.processing]
            if not ps:
                continue
            print(
                f"  {target:<19} backlog at stop {median([p.backlog_at_stop for p in ps]):,.0f}"
                f", drain {median([p.drain_seconds for p in ps]):.1f} s"
                f" at {median([p.drain_rate for p in ps]):,.0f} req/s"
                f", during load {median([p.processing_rate_during_load for p in ps]):,.0f}"
                f" req/s, overall {median([p.overall_rate for p in ps]):,.0f} req/s;"
                f" every 202 processed: {'yes' if all(p.ok for p in ps) else 'NO'}"
            )
    for target in [t for t in targets if t.startswith("hookhub") and not t.endswith(BEFORE)]:
        values = ratios(results, target, "webhook")
        if not values:
            continue
        ps = [r.processing for r in results if r.target == target and r.processing]
        met = median(values) >= 1.0 and all(p.ok for p in ps)
        print(
            f"\ngoal ({target} acknowledged rate >= 1.0x webhook, every 202 processed): "
            f"{'MET' if met else 'NOT MET'} (median ratio {median(values):.3f})"
        )


def main() -> None:
    args = parse_args()
    require_tools(args.targets)
    if len(os.sched_getaffinity(0)) > 1 and pinned(LOAD_CORE):
        # Signing and database polling run here: keep them off the server's core.
        os.sched_setaffinity(0, {LOAD_CORE})
    postgres = [t for t in args.targets if "postgresql" in t]
    problem = None
    if postgres:
        problem = postgres_reachable(args.postgres_url)
        if problem is not None:
            print(f"PostgreSQL unreachable at {args.postgres_url} ({problem}): skipping it")
            args.targets = [t for t in args.targets if t not in postgres]
    info = {
        **machine_info(args.postgres_url if postgres and problem is None else None),
        **tool_versions(),
    }
    print_machine(info)
    print(
        f"\nsettings: {args.runs} runs x {args.duration} s (+{args.warmup} s warm-up), "
        f"{args.connections} connections, {args.threads} wrk thread(s), "
        f"{args.requests:,} distinct signed requests per measured run; "
        f"server on core {SERVER_CORE}, wrk on core {LOAD_CORE}\n",
        flush=True,
    )
    started = time.monotonic()
    bodies = Bodies(
        warm=customer_created_bodies(WARM_TAG, max(25_000 * args.warmup, 1000)),
        measured=customer_created_bodies(RUN_TAG, args.requests),
    )
    print(
        f"made {len(bodies.measured):,} bodies of ~{len(bodies.measured[0])} bytes "
        f"in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-inbound-") as tmp:
        work_dir = Path(tmp)
        for run in range(1, args.runs + 1):
            for target in args.targets:
                result = run_target(target, run, args, bodies, work_dir)
                results.append(result)
                print_run(result)
    print_summary(results, args.targets)
    if args.json:
        args.json.write_text(
            json.dumps({"machine": info, "results": [asdict(r) for r in results]}, indent=2)
        )


if __name__ == "__main__":
    main()
