"""Instructions per request of the receive path, counted by valgrind: a figure a busy machine
does not move.

``bench_receive_inprocess.py`` measures CPU time, which other processes on the same cores
push around by 10-40 % on a shared machine; a 5 % change drowns in it. This runs the same
in-process receive path (``bench_receive_inprocess.py --one-run``, through the HTTP protocol
by default) under ``valgrind --tool=cachegrind --cache-sim=no`` twice, with ``--small`` and
``--large`` requests, and divides the difference in instructions by the difference in
requests: start-up (imports, the app, the database) cancels out. ``PYTHONHASHSEED`` is fixed so
that set and dict orders repeat. With ``--database`` the SQLite log is written too; its group
commits run in a thread, whose interleaving valgrind decides, so that figure moves by a few
per cent from run to run, the one without does not.

Slow: each valgrind run takes about a minute of CPU on an idle core (start-up alone is about
4.7 billion instructions). Instructions are not time (a cache miss costs more than an add),
but for Python code both move together.

    .venv/bin/python bench/bench_receive_instructions.py                      # this checkout
    .venv/bin/python bench/bench_receive_instructions.py --compare-source DIR [DIR...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CHECKOUT = BENCH.parent


def instructions(source: Path, requests: int, args: argparse.Namespace) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(source)}
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    argv += [sys.executable, str(BENCH / "bench_receive_inprocess.py"), "--one-run"]
    argv += ["--requests", str(requests), "--via", args.via]
    if not args.database:
        argv.append("--no-database")
    # Not from the checkout: the current directory would come first on the module path.
    done = subprocess.run(
        argv, env=env, cwd="/", capture_output=True, text=True, timeout=3600, check=False
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=200, help="requests of the first run")
    parser.add_argument("--large", type=int, default=2200, help="requests of the second run")
    parser.add_argument("--via", choices=("protocol", "asgi"), default="protocol")
    parser.add_argument("--database", action="store_true", help="write the SQLite log too")
    parser.add_argument("--compare-source", nargs="*", default=[], type=Path)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("needs valgrind (Debian: apt-get install -y valgrind)")
    version = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout
    print(f"{version.strip()}, Python {sys.version.split()[0]}")
    what = "SQLite log written" if args.database else "log write stubbed"
    print(f"receive path via {args.via}, {what}; {args.large} - {args.small} requests\n")
    for source in [CHECKOUT, *args.compare_source]:
        small = instructions(source.resolve(), args.small, args)
        large = instructions(source.resolve(), args.large, args)
        per_request = (large - small) / (args.large - args.small)
        name = "this checkout" if source == CHECKOUT else str(source)
        print(f"  {name:<40} {per_request:>10,.0f} instructions per request", flush=True)


if __name__ == "__main__":
    main()
