"""Paging through a big list: ``GET /api/v1/contacts?list_id=`` at the first, middle and last page.

For each backend, a fresh database gets ``--others`` contacts that are in no list, then
``--rows`` contacts imported into one list, then ``--others`` more in no list (so the list's
members are neither the first nor the last contacts: a page query that walks the contacts
table rather than the list's own rows shows it). A ``hookhub serve`` pinned to core 0 then
answers; one client on core 1 walks every page of 100 (following ``next_cursor``), and then
asks the first, middle and last pages ``--repeat`` times each, one request at a time on a
keep-alive connection, each followed by a ``GET /healthz`` as the floor (on a busy machine any
request waits for a core). Printed: the walk's per-page latency by depth decile (p50 and max)
and, for each of the three pages, p50/p90/max in ms beside /healthz's, and the server's CPU
time per request. The goal: p50 <= 5 ms at any depth.

    .venv/bin/python bench/bench_contact_pages.py [--rows 100000] [--others 50000]
        [--targets sqlite,postgresql] [--repeat 200]

Sends traffic to 127.0.0.1 only; every database and server it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from common import (
    DEFAULT_POSTGRES_URL,
    Server,
    free_port,
    fresh_database,
    hookhub_command,
    machine_info,
    pinned,
    postgres_reachable,
    print_machine,
    process_cpu_seconds,
)

SERVER_CORE = 0
CLIENT_CORE = 1
PAGE = 100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="contacts in the list")
    parser.add_argument("--others", type=int, default=50_000, help="contacts before and after")
    parser.add_argument("--repeat", type=int, default=200, help="requests per measured page")
    parser.add_argument("--targets", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--client", nargs=4, help=argparse.SUPPRESS)  # PORT KEY LIST MODE
    return parser.parse_args()


def write_csv(path: Path, prefix: str, rows: int) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "FIRSTNAME", "LASTNAME", "CITY"])
        for i in range(rows):
            writer.writerow([f"{prefix}.{i}@pages.example", "Ada", "Lovelace", "Geneva"])


# -- the client (its own process, pinned to CLIENT_CORE) ------------------------------------------


class Client:
    def __init__(self, port: int, key: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {key}"}

    def healthz(self) -> float:
        started = time.perf_counter()
        self.conn.request("GET", "/healthz")
        answer = self.conn.getresponse()
        answer.read()
        return (time.perf_counter() - started) * 1000

    def page(self, list_id: int, cursor: str | None) -> tuple[float, dict[str, Any]]:
        query: dict[str, Any] = {"list_id": list_id, "limit": PAGE}
        if cursor is not None:
            query["cursor"] = cursor
        started = time.perf_counter()
        self.conn.request("GET", "/api/v1/contacts?" + urlencode(query), headers=self.headers)
        answer = self.conn.getresponse()
        body = answer.read()
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status != 200:
            raise RuntimeError(f"GET answered {answer.status}: {body[:300]!r}")
        return elapsed, json.loads(body)


def client_main(port: int, key: str, list_id: int, repeat: int, mode: str) -> None:
    """``walk``: every page, then the cursors of the first, middle and last full pages;
    a cursor (``-`` for none): that page ``repeat`` times, each followed by a GET /healthz
    (the floor: what any request costs on this machine at this moment)."""
    client = Client(port, key)
    if mode == "walk":
        cursors: list[str | None] = [None]
        sizes: list[int] = []
        walk: list[float] = []
        cursor: str | None = None
        while True:
            ms, body = client.page(list_id, cursor)
            walk.append(ms)
            sizes.append(len(body["data"]))
            cursor = body["next_cursor"]
            if cursor is None:
                break
            cursors.append(cursor)
        full = [c for c, n in zip(cursors, sizes, strict=True) if n]  # a last page may be empty
        picks = {"first": full[0], "middle": full[len(full) // 2], "last": full[-1]}
        print(json.dumps({"walk": walk, "seen": sum(sizes), "picks": picks}))
        return
    at = None if mode == "-" else mode
    for _ in range(5):  # warm
        client.page(list_id, at)
    pages: list[float] = []
    floor: list[float] = []
    for _ in range(repeat):
        pages.append(client.page(list_id, at)[0])
        floor.append(client.healthz())
    print(json.dumps({"page": pages, "healthz": floor}))


# -- orchestration --------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def client(port: int, key: str, list_id: int, mode: str, repeat: int) -> dict[str, Any]:
    argv = [*pinned(CLIENT_CORE), sys.executable, __file__, "--client", str(port), key]
    argv += [str(list_id), mode, "--repeat", str(repeat)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=1800)
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def run_target(backend: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    key = "bench_" + secrets.token_urlsafe(24)
    with fresh_database(backend, args.postgres_url, work, f"pages_{backend}") as url:
        subprocess.run([*hookhub_command(), "migrate", "--database-url", url], check=True)
        port = free_port()
        server = Server(
            "hookhub",
            [
                *pinned(SERVER_CORE),
                *hookhub_command(),
                "serve",
                "--port",
                str(port),
                "--database-url",
                url,
            ],
            health_url=f"http://127.0.0.1:{port}/healthz",
            log_path=work / f"serve-{backend}.log",
            env={"HOOKHUB_API_KEY": key},
        )
        with server:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(
                "POST",
                "/api/v1/lists",
                body=json.dumps({"name": "big"}),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            list_id = json.loads(conn.getresponse().read())["id"]
            started = time.monotonic()
            for name, rows, in_list in (
                ("before", args.others, False),
                ("members", args.rows, True),
                ("after", args.others, False),
            ):
                path = work / f"{name}.csv"
                write_csv(path, name, rows)
                argv = [*hookhub_command(), "contacts", "import", str(path), "--database-url", url]
                if in_list:
                    argv += ["--list", str(list_id)]
                subprocess.run(argv, check=True, capture_output=True, timeout=1800)
            print(f"  {backend}: filled in {time.monotonic() - started:.0f} s", flush=True)
            result: dict[str, Any] = client(port, key, list_id, "walk", args.repeat)
            result["pages"] = {}
            for name, cursor in result["picks"].items():
                cpu_before = process_cpu_seconds(server.pid)
                measured = client(port, key, list_id, cursor or "-", args.repeat)
                cpu = process_cpu_seconds(server.pid) - cpu_before
                measured["server_cpu_ms"] = cpu * 1000 / (2 * args.repeat + 5)
                result["pages"][name] = measured
    if result["seen"] != args.rows:
        raise RuntimeError(f"{backend}: the walk saw {result['seen']} contacts, not {args.rows}")
    return result


def report(backend: str, result: dict[str, Any]) -> None:
    walk: list[float] = result["walk"]
    print(f"\n{backend}: walked {len(walk)} pages ({result['seen']} contacts), ms per page:")
    tenth = max(1, len(walk) // 10)
    for start in range(0, len(walk), tenth):
        part = walk[start : start + tenth]
        print(
            f"  pages {start + 1:>5}-{start + len(part):<5} p50 {statistics.median(part):6.2f}"
            f"  max {max(part):7.2f}"
        )
    print(
        "  each page asked again and again, one request at a time, each followed by a GET"
        " /healthz (the floor); ms, and the server's CPU ms per request (pages and healthz"
        " together):"
    )
    for name, got in result["pages"].items():
        values, floor = got["page"], got["healthz"]
        print(
            f"  {name:<7} p50 {statistics.median(values):6.2f}  p90 {pct(values, 0.9):6.2f}"
            f"  max {max(values):7.2f} | healthz p50 {statistics.median(floor):6.2f}"
            f" p90 {pct(floor, 0.9):6.2f} | server CPU {got['server_cpu_ms']:.2f} ms/request"
        )


def main() -> None:
    args = parse_args()
    if args.client:
        port, key, list_id, mode = args.client
        client_main(int(port), key, int(list_id), args.repeat, mode)
        return
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if "postgresql" in targets and (problem := postgres_reachable(args.postgres_url)):
        print(f"PostgreSQL unreachable ({problem}); skipping it.")
        targets.remove("postgresql")
    print_machine(machine_info(args.postgres_url if "postgresql" in targets else None))
    print(
        f"\nsettings: {args.rows} contacts in the list, {args.others} before and after it, "
        f"pages of {PAGE}, {args.repeat} requests per measured page\n",
        flush=True,
    )
    results: dict[str, Any] = {}
    with work_directory() as work:
        for backend in targets:
            results[backend] = run_target(backend, args, work)
            report(backend, results[backend])
    if args.json:
        args.json.write_text(json.dumps(results))


@contextlib.contextmanager
def work_directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-pages-") as tmp:
        yield Path(tmp)


if __name__ == "__main__":
    main()
