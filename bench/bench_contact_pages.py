"""Paging through a big list: ``GET /api/v1/contacts?list_id=`` at the first, middle and last page.

For each backend, a fresh database gets ``--others`` contacts that are in no list, then
``--rows`` contacts imported into one list, then ``--others`` more in no list (so the list's
members are neither the first nor the last contacts: a page query that walks the contacts
table rather than the list's own rows shows it). A ``hookhub serve`` pinned to core 0 then
answers; one client on core 1 walks every page of 100 (following ``next_cursor``), and then
asks the first, middle and last pages ``--repeat`` times each, one request at a time on a
keep-alive connection. Printed: the walk's per-page latency by depth decile (p50 and max) and,
for each of the three pages, p50/p90/max in ms. The goal: p50 <= 5 ms at any depth.

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
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)  # internal: PORT KEY LIST
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


def client_main(port: int, key: str, list_id: int, repeat: int) -> None:
    client = Client(port, key)
    cursors: list[str | None] = [None]
    sizes: list[int] = []
    walk: list[float] = []
    seen = 0
    cursor: str | None = None
    while True:
        ms, body = client.page(list_id, cursor)
        walk.append(ms)
        seen += len(body["data"])
        sizes.append(len(body["data"]))
        cursor = body["next_cursor"]
        if cursor is None:
            break
        cursors.append(cursor)
    full = [c for c, n in zip(cursors, sizes, strict=True) if n]  # a last page may be empty
    picks = {"first": full[0], "middle": full[len(full) // 2], "last": full[-1]}
    pages: dict[str, list[float]] = {}
    for name, at in picks.items():
        for _ in range(5):  # warm
            client.page(list_id, at)
        pages[name] = [client.page(list_id, at)[0] for _ in range(repeat)]
    print(json.dumps({"walk": walk, "seen": seen, "pages": pages}))


# -- orchestration --------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


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
            done = subprocess.run(
                [
                    *pinned(CLIENT_CORE),
                    sys.executable,
                    __file__,
                    "--client",
                    str(port),
                    key,
                    str(list_id),
                    "--repeat",
                    str(args.repeat),
                ],
                check=True,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
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
    print(f"  the {len(result['pages']['first'])} requests of each page, ms:")
    for name, values in result["pages"].items():
        print(
            f"  {name:<7} p50 {statistics.median(values):6.2f}  p90 {pct(values, 0.9):6.2f}"
            f"  max {max(values):7.2f}"
        )


def main() -> None:
    args = parse_args()
    if args.client:
        port, key, list_id = args.client
        client_main(int(port), key, int(list_id), args.repeat)
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
