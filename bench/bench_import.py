"""CSV import throughput: ``hookhub contacts import`` against a bare sqlite3 ceiling, same run.

Generates a deterministic CSV of contacts (email, FIRSTNAME, LASTNAME, AGE, CITY) and a copy in
which every CITY differs, then for each repetition times, as subprocesses pinned to one core:

- ``ceiling``: stdlib csv + sqlite3 ``executemany`` of the same rows into a one-table schema
  (email UNIQUE, attributes JSON), one transaction, WAL and synchronous=NORMAL like Hookhub;
- ``hookhub-sqlite`` and ``hookhub-postgresql``: ``hookhub contacts import`` on a fresh
  database, three times: the file (all created), the same file again (all unchanged), then the
  modified file (all updated). After each, the contacts and outbox messages stored are counted.

Every Hookhub database gets an endpoint subscribed to ``contact.*`` first (``--no-endpoint``: none),
so each import message is fanned out to a delivery as it would be in use.

The goal (issue 16): 100k contacts in at most 5 s on SQLite and 10 s on PostgreSQL, and the
re-import of the same file in at most half a fresh one.

``--compare-source DIR`` also runs each Hookhub target with the ``hookhub`` package found in DIR
(e.g. a checkout of an earlier commit), in the same runs, as ``<target>@before``; the summary
then gives this checkout's time against it, per run and then the median.

    .venv/bin/python bench/bench_import.py [--rows 100000] [--runs 3] [--compare-source DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from common import (
    DEFAULT_POSTGRES_URL,
    CpuWindow,
    database_name,
    hookhub_command,
    machine_info,
    median,
    pinned,
    postgres_reachable,
    print_machine,
    temporary_postgres_database,
)

CORE = 0
SEED = 20240601
GOAL_SECONDS = 5.0
IMPORT_TIMEOUT = 900
BEFORE = "@before"
"""Suffix of a target run with the --compare-source package."""
# fmt: off
FIRST_NAMES = (
    "Ada", "Alan", "Barbara", "Claude", "Dennis", "Donald", "Edsger", "Frances", "Grace", "Guido",
    "John", "Ken", "Leslie", "Linus", "Margaret", "Niklaus", "Radia", "Robin", "Shafi", "Tim",
)
LAST_NAMES = (
    "Lovelace", "Turing", "Liskov", "Shannon", "Ritchie", "Knuth", "Dijkstra", "Allen", "Hopper",
    "Rossum", "McCarthy", "Thompson", "Lamport", "Torvalds", "Hamilton", "Wirth", "Perlman",
    "Milner", "Goldwasser", "Berners-Lee",
)
CITIES = (
    "Amsterdam", "Berlin", "Cairo", "Dakar", "Edinburgh", "Florence", "Geneva", "Hanoi",
    "Istanbul", "Jakarta", "Kyoto", "Lima", "Madrid", "Nairobi", "Oslo", "Porto", "Quito", "Riga",
    "Santiago", "Tunis",
)
# fmt: on
REPORT_LINE = re.compile(
    # The CLI's line may wrap at the terminal's width, anywhere between words.
    r"created:\s*(\d+)\s+updated:\s*(\d+)\s+unchanged:\s*(\d+)\s+rejected:\s*(\d+)",
    re.MULTILINE,
)


@dataclass
class Step:
    target: str
    run: int
    step: str
    """``fresh``, ``same-file`` or ``updated-file`` (``fresh`` for the ceiling)."""
    seconds: float
    rows: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    contacts_stored: int
    messages_added: int
    cpu_seconds: float
    """CPU time of the importing process (user + system)."""
    postgres_cpu_seconds: float
    others_cores: float
    """Cores used meanwhile by everything else on the machine (other people's work)."""
    others_on_core: float
    """Share of the importer's core used meanwhile by other processes (PostgreSQL included)."""

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="CSV import throughput against a bare sqlite3 executemany ceiling."
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument(
        "--targets",
        default="ceiling,hookhub-sqlite,hookhub-postgresql",
        help="comma-separated subset of ceiling,hookhub-sqlite,hookhub-postgresql",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="admin URL used to create and drop the throwaway databases",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument(
        "--no-endpoint",
        action="store_true",
        help="import without an endpoint subscribed to contact.* (no deliveries fanned out)",
    )
    parser.add_argument(
        "--compare-source",
        type=Path,
        help="a directory holding another hookhub package, run as <target>@before",
    )
    # Internal: the ceiling runs in its own process, like the import it is compared with.
    parser.add_argument("--ceiling-worker", nargs=2, metavar=("CSV", "DB"), help=argparse.SUPPRESS)
    return parser.parse_args()


# -- data -----------------------------------------------------------------------------------------


def write_csvs(directory: Path, rows: int) -> tuple[Path, Path]:
    """The contacts file and a copy of it in which every row's CITY is different."""
    rng = random.Random(SEED)
    original = directory / "contacts.csv"
    updated = directory / "contacts-updated.csv"
    header = ["email", "FIRSTNAME", "LASTNAME", "AGE", "CITY"]
    with original.open("w", newline="") as f1, updated.open("w", newline="") as f2:
        w1, w2 = csv.writer(f1), csv.writer(f2)
        w1.writerow(header)
        w2.writerow(header)
        for i in range(rows):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            email = f"{first}.{last}.{i}@example.com".lower()
            age = rng.randint(18, 90)
            city = rng.randrange(len(CITIES))
            w1.writerow([email, first, last, age, CITIES[city]])
            w2.writerow([email, first, last, age, CITIES[(city + 1) % len(CITIES)]])
    return original, updated


# -- the ceiling ----------------------------------------------------------------------------------


def ceiling_worker(csv_path: Path, db_path: Path) -> None:
    """Read the CSV and insert every row with one executemany in one transaction."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
        " attributes TEXT NOT NULL, created_at TEXT NOT NULL)"
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with csv_path.open(newline="") as source:
        reader = csv.reader(source)
        header = next(reader)
        names = header[1:]

        def rows() -> Iterator[tuple[str, str, str]]:
            for record in reader:
                attributes = dict(zip(names, record[1:], strict=True))
                yield record[0].strip().lower(), json.dumps(attributes), now

        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO contacts (email, attributes, created_at) VALUES (?,?,?)", rows()
        )
        conn.execute("COMMIT")
    conn.close()


@dataclass
class Timed:
    seconds: float
    cpu_seconds: float
    postgres_cpu_seconds: float
    others_cores: float
    others_on_core: float
    stdout: str


def timed_run(
    argv: list[str], postgres_database: str | None = None, env: dict[str, str] | None = None
) -> Timed:
    """Run ``argv`` to completion; its wall time, its CPU time and what the rest used meanwhile.

    With ``postgres_database``, the CPU time of that database's backends is measured too.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    window = CpuWindow(postgres_database=postgres_database)
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=IMPORT_TIMEOUT, check=False, env=env
    )
    cpu = window.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
        )
    child = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(
        seconds=cpu.wall,
        cpu_seconds=child,
        postgres_cpu_seconds=cpu.postgres,
        others_cores=cpu.cores(cpu.machine - child - cpu.postgres),
        others_on_core=cpu.others_on_core(CORE, child),
        stdout=done.stdout,
    )


def run_ceiling(run: int, csv_path: Path, rows: int, work: Path) -> Step:
    db_path = work / f"ceiling-{run}.db"
    argv = [
        *pinned(CORE),
        sys.executable,
        __file__,
        "--ceiling-worker",
        str(csv_path),
        str(db_path),
    ]
    t = timed_run(argv)
    stored = sqlite_count(db_path, "contacts")
    for leftover in work.glob(f"ceiling-{run}.db*"):
        leftover.unlink()
    return Step(
        target="ceiling",
        run=run,
        step="fresh",
        seconds=t.seconds,
        rows=rows,
        created=stored,
        updated=0,
        unchanged=0,
        rejected=0,
        contacts_stored=stored,
        messages_added=0,
        cpu_seconds=t.cpu_seconds,
        postgres_cpu_seconds=t.postgres_cpu_seconds,
        others_cores=t.others_cores,
        others_on_core=t.others_on_core,
    )


# -- Hookhub --------------------------------------------------------------------------------------


def sqlite_count(db_path: Path, table: str) -> int:
    conn = sqlite3.connect(db_path)
    try:
        (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(count)
    finally:
        conn.close()


def postgres_count(url: str, table: str) -> int:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def hookhub(*args: str, database_url: str, source: Path | None = None) -> Timed:
    """Run a hookhub command on ``database_url``, pinned to CORE (``source``'s package if given)."""
    postgres = None if database_url.startswith("sqlite") else database_name(database_url)
    argv = [*pinned(CORE), *hookhub_command(), *args, "--database-url", database_url]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return timed_run(argv, postgres, env)


_SUBSCRIBE = """
import sys
from hookhub.config import load_settings
from hookhub.services import build_services
services = build_services(load_settings(
    database_url=sys.argv[1], allow_private_destinations="127.0.0.0/8"))
services.endpoints.create({"url": "http://127.0.0.1:9/import-bench", "events": ["contact.*"]})
services.close()
"""


def subscribe_endpoint(database_url: str, source: Path | None) -> None:
    """An endpoint subscribed to contact.*, so that every import message is fanned out to a
    delivery (nothing delivers during the import: no worker runs)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    subprocess.run(
        [sys.executable, "-c", _SUBSCRIBE, database_url], check=True, env=env, timeout=120
    )


def run_hookhub(
    target: str,
    run: int,
    database_url: str,
    files: dict[str, Path],
    rows: int,
    count: Callable[[str], int],
    source: Path | None = None,
    subscribe: bool = True,
) -> tuple[list[Step], float]:
    """The three imports on one fresh database; also answers the no-op start-up time."""
    run_it = partial(hookhub, database_url=database_url, source=source)
    run_it("migrate")
    if subscribe:
        subscribe_endpoint(database_url, source)
    startup = run_it("migrate").seconds
    steps: list[Step] = []
    messages_before = count("messages")
    for step, path in files.items():
        try:
            t = run_it("contacts", "import", str(path))
        except subprocess.TimeoutExpired:
            print(f"  {target:<19} run {run} {step:<13} timed out after {IMPORT_TIMEOUT} s")
            break
        match = REPORT_LINE.search(t.stdout)
        if match is None:
            raise RuntimeError(f"unexpected output of hookhub contacts import:\n{t.stdout}")
        created, updated, unchanged, rejected = (int(g) for g in match.groups())
        messages = count("messages")
        steps.append(
            Step(
                target=target,
                run=run,
                step=step,
                seconds=t.seconds,
                rows=rows,
                created=created,
                updated=updated,
                unchanged=unchanged,
                rejected=rejected,
                contacts_stored=count("contacts"),
                messages_added=messages - messages_before,
                cpu_seconds=t.cpu_seconds,
                postgres_cpu_seconds=t.postgres_cpu_seconds,
                others_cores=t.others_cores,
                others_on_core=t.others_on_core,
            )
        )
        messages_before = messages
    return steps, startup


# -- report ---------------------------------------------------------------------------------------


def print_step(s: Step) -> None:
    print(
        f"  {s.target:<19} run {s.run} {s.step:<13} {s.seconds:7.2f} s {s.rows_per_s:>9,.0f} rows/s"
        f" | CPU: importer {s.cpu_seconds:.2f} s, postgres {s.postgres_cpu_seconds:.2f} s,"
        f" others {s.others_cores:.2f} cores ({s.others_on_core:.2f} of core {CORE})"
        f" | created {s.created} updated {s.updated}"
        f" unchanged {s.unchanged} rejected {s.rejected} | contacts stored {s.contacts_stored},"
        f" outbox messages +{s.messages_added}",
        flush=True,
    )


def print_summary(steps: list[Step], startups: dict[str, list[float]], rows: int) -> None:
    """Medians; ratios to the ceiling are taken per run (same minutes, same noise), then median."""
    print(f"\nmedians ({rows:,} rows):")
    print(
        f"  {'target':<19} {'step':<13} {'seconds':>8} {'rows/s':>9} {'ceiling/this':>13}"
        f" {'CPU s':>7} {'pg CPU s':>9} {'CPU ceiling/this':>17} {'messages':>9}"
    )
    ceiling = {s.run: s for s in steps if s.target == "ceiling"}
    for target, step in dict.fromkeys((s.target, s.step) for s in steps):
        group = [s for s in steps if s.target == target and s.step == step]
        seconds = median([s.seconds for s in group])
        wall_ratios = [ceiling[s.run].seconds / s.seconds for s in group if s.run in ceiling]
        cpu_ratios = [
            ceiling[s.run].cpu_seconds / (s.cpu_seconds + s.postgres_cpu_seconds)
            for s in group
            if s.run in ceiling
        ]
        wall_ratio = f"{median(wall_ratios):13.3f}" if wall_ratios else f"{'-':>13}"
        cpu_ratio = f"{median(cpu_ratios):17.3f}" if cpu_ratios else f"{'-':>17}"
        print(
            f"  {target:<19} {step:<13} {seconds:8.2f} {rows / seconds:>9,.0f} {wall_ratio}"
            f" {median([s.cpu_seconds for s in group]):7.2f}"
            f" {median([s.postgres_cpu_seconds for s in group]):9.2f} {cpu_ratio}"
            f" {median([s.messages_added for s in group]):9,.0f}"
        )
    befores = {(s.target, s.step, s.run): s for s in steps if s.target.endswith(BEFORE)}
    if befores:
        print("\n  this checkout against --compare-source, same run (before's time / this time):")
    for target, step in dict.fromkeys((s.target, s.step) for s in steps):
        pairs = [
            (befores[(s.target + BEFORE, s.step, s.run)], s)
            for s in steps
            if s.target == target and s.step == step and (s.target + BEFORE, step, s.run) in befores
        ]
        if pairs:
            ratio = median([before.seconds / this.seconds for before, this in pairs])
            print(f"  {target:<19} {step:<13} {ratio:6.3f}x  ({len(pairs)} runs)")
    for target, values in startups.items():
        print(
            f"  ({target}: process start + no-op migration, included in each import: "
            f"{median(values):.2f} s)"
        )
    fresh = [s.seconds for s in steps if s.target == "hookhub-sqlite" and s.step == "fresh"]
    if fresh and rows == 100_000:
        verdict = "met" if median(fresh) <= GOAL_SECONDS else "NOT met"
        print(f"\ngoal (100k contacts in at most {GOAL_SECONDS:.0f} s on SQLite): {verdict}")


@contextmanager
def work_directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-import-") as tmp:
        yield Path(tmp)


def main() -> None:
    args = parse_args()
    if args.ceiling_worker:
        ceiling_worker(Path(args.ceiling_worker[0]), Path(args.ceiling_worker[1]))
        return
    if args.compare_source is not None:
        args.compare_source = args.compare_source.resolve()
        if not (args.compare_source / "hookhub" / "__init__.py").exists():
            sys.exit(f"no hookhub package in {args.compare_source}")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if "hookhub-postgresql" in targets:
        problem = postgres_reachable(args.postgres_url)
        if problem is not None:
            print(f"PostgreSQL at {args.postgres_url} is unreachable ({problem}); skipping it.")
            targets.remove("hookhub-postgresql")
    info = machine_info(args.postgres_url if "hookhub-postgresql" in targets else None)
    print_machine(info)
    steps: list[Step] = []
    startups: dict[str, list[float]] = {}
    started = time.monotonic()
    with work_directory() as work:
        original, updated = write_csvs(work, args.rows)
        size_mb = original.stat().st_size / 1e6
        print(
            f"\n{args.rows:,} rows, {size_mb:.1f} MB CSV (seed {SEED}); {args.runs} runs; "
            f"each importer pinned to core {CORE}\n",
            flush=True,
        )
        files = {"fresh": original, "same-file": original, "updated-file": updated}
        for run in range(1, args.runs + 1):
            if "ceiling" in targets:
                steps.append(run_ceiling(run, original, args.rows, work))
                print_step(steps[-1])
            sources: list[Path | None] = [None]
            if args.compare_source is not None:
                # Alternate who goes first, so neither always meets the warmer machine.
                sources = [None, args.compare_source] if run % 2 else [args.compare_source, None]
            for source in sources:
                suffix = "" if source is None else BEFORE
                if "hookhub-sqlite" in targets:
                    db_path = work / f"hookhub-{run}.db"
                    new, startup = run_hookhub(
                        "hookhub-sqlite" + suffix,
                        run,
                        f"sqlite:///{db_path}",
                        files,
                        args.rows,
                        partial(sqlite_count, db_path),
                        source,
                        subscribe=not args.no_endpoint,
                    )
                    startups.setdefault("hookhub-sqlite" + suffix, []).append(startup)
                    for step in new:
                        print_step(step)
                    steps.extend(new)
                    for leftover in work.glob(f"hookhub-{run}.db*"):
                        leftover.unlink()
                if "hookhub-postgresql" in targets:
                    with temporary_postgres_database(args.postgres_url, f"imp{run}") as url:
                        new, startup = run_hookhub(
                            "hookhub-postgresql" + suffix,
                            run,
                            url,
                            files,
                            args.rows,
                            partial(postgres_count, url),
                            source,
                            subscribe=not args.no_endpoint,
                        )
                    startups.setdefault("hookhub-postgresql" + suffix, []).append(startup)
                    for step in new:
                        print_step(step)
                    steps.extend(new)
    print_summary(steps, startups, args.rows)
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    if args.json:
        payload = {"machine": info, "rows": args.rows, "steps": [asdict(s) for s in steps]}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
