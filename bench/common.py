"""Shared pieces of the benchmarks: machine facts, CPU pinning, servers and throwaway databases.

Everything here talks to 127.0.0.1 only, and every process or database it creates is removed by
the context manager that created it, also when a benchmark is interrupted.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Hookhub seals secrets at rest and, on PostgreSQL, refuses to start without a key: every
# process a benchmark starts (servers, workers, prefill scripts) inherits this one.
BENCH_SECRET_KEY = "YmVuY2gtb25seSBrZXksIG5ldmVyIGZvciB1c2UhISE="
os.environ.setdefault("HOOKHUB_SECRET_KEY", BENCH_SECRET_KEY)


def hookhub_command() -> list[str]:
    """The ``hookhub`` console script of the interpreter running the benchmark."""
    script = Path(sys.executable).parent / "hookhub"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "hookhub"]


def pinned(core: int | None) -> list[str]:
    """A ``taskset`` prefix that pins a command to one core (empty when pinning is impossible)."""
    if core is None or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(core)]


def pinning_note() -> str:
    if shutil.which("taskset") is None:
        return "taskset not found (Debian package util-linux): processes are NOT pinned"
    if (os.cpu_count() or 1) < 2:
        return "fewer than 2 cores: processes are NOT pinned"
    return "pinned with taskset"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- CPU accounting -------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # After the ")" closing the command name, utime and stime are the 12th and 13th fields.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def postgres_cpu_by_pid(database: str | None = None) -> dict[int, float]:
    """CPU time of the processes named ``postgres`` on this machine, by pid.

    With ``database``, only the backends connected to that database (their command line names
    it); otherwise every PostgreSQL process, other people's included.
    """
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            if database is not None:
                title = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
                if f" {database} " not in title:
                    continue
        except OSError:
            continue
        found[int(entry.name)] = process_cpu_seconds(int(entry.name))
    return found


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def postgres_cpu_seconds() -> float:
    """CPU time of the live ``postgres`` processes (backends that exited are not counted)."""
    return sum(postgres_cpu_by_pid().values())


def _busy(fields: list[str]) -> float:
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy (user, nice, system, irq, softirq) since boot, /proc/stat."""
    return _busy(Path("/proc/stat").read_text().splitlines()[0].split()[1:])


def core_busy_seconds() -> list[float]:
    """The same for each core, in core order."""
    lines = Path("/proc/stat").read_text().splitlines()
    return [
        _busy(line.split()[1:]) for line in lines if line.startswith("cpu") and line[3].isdigit()
    ]


@dataclass
class CpuUse:
    """CPU seconds spent during a window of ``wall`` seconds."""

    wall: float
    processes: float
    postgres: float
    machine: float
    per_core: list[float]
    """Busy CPU seconds of each core (everyone's)."""

    def cores(self, seconds: float) -> float:
        return seconds / self.wall if self.wall > 0 else 0.0

    def others_on_core(self, core: int, ours: float) -> float:
        """Cores' worth of ``core`` used by processes other than ours (``ours`` CPU seconds)."""
        if core >= len(self.per_core):
            return 0.0
        return self.cores(max(self.per_core[core] - ours, 0.0))


class CpuWindow:
    """Measures CPU used during a window by given processes, by PostgreSQL and by the machine.

    ``postgres_database`` names the database whose backends are counted (None: none are).
    Backends come and go (one per connection), so they are sampled every quarter second: one
    that exits loses at most its last quarter second from the count.
    """

    def __init__(self, pids: Sequence[int] = (), postgres_database: str | None = None) -> None:
        self.pids = list(pids)
        self.postgres_database = postgres_database
        self._wall = time.perf_counter()
        self._procs = sum(process_cpu_seconds(pid) for pid in self.pids)
        self._machine = machine_busy_seconds()
        self._per_core = core_busy_seconds()
        self._pg_first = self._postgres()
        self._pg_last = dict(self._pg_first)
        self._stopping = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stopping.wait(0.25):
            self._pg_last.update(self._postgres())

    def _postgres(self) -> dict[int, float]:
        if self.postgres_database is None:
            return {}
        return postgres_cpu_by_pid(self.postgres_database)

    def stop(self) -> CpuUse:
        self._stopping.set()
        self._sampler.join()
        self._pg_last.update(self._postgres())
        postgres = sum(last - self._pg_first.get(pid, 0.0) for pid, last in self._pg_last.items())
        return CpuUse(
            wall=time.perf_counter() - self._wall,
            processes=sum(process_cpu_seconds(pid) for pid in self.pids) - self._procs,
            postgres=postgres,
            machine=machine_busy_seconds() - self._machine,
            per_core=[b - a for a, b in zip(self._per_core, core_busy_seconds(), strict=True)],
        )


# -- machine facts --------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def postgres_version(url: str) -> str:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"
    except Exception as exc:  # the version is informative only
        return f"unreachable ({exc.__class__.__name__})"


def source_revision() -> str:
    """The commit measured, and whether hookhub/ had uncommitted changes (read-only git)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "hookhub"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{commit} + uncommitted changes in hookhub/" if dirty else commit


def machine_info(postgres_url: str | None) -> dict[str, str]:
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "hookhub": f"{_version('hookhub')} at {source_revision()}",
        "uvicorn/starlette/fastapi": "/".join(
            _version(d) for d in ("uvicorn", "starlette", "fastapi")
        ),
        "sqlalchemy/psycopg": "/".join(_version(d) for d in ("sqlalchemy", "psycopg")),
        "pinning": pinning_note(),
    }
    if postgres_url is not None:
        info["postgresql"] = postgres_version(postgres_url)
    return info


def print_machine(info: dict[str, str]) -> None:
    print("machine:")
    for key, value in info.items():
        print(f"  {key:<26} {value}")


# -- throwaway PostgreSQL databases ---------------------------------------------------------------


def postgres_reachable(url: str) -> str | None:
    """None when PostgreSQL answers at ``url``, otherwise why not."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[0]}"
    return None


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextlib.contextmanager
def temporary_postgres_database(admin_url: str, label: str) -> Iterator[str]:
    """Create a fresh database, yield its URL, then drop it (closing any connection left)."""
    import psycopg

    name = f"hookhub_bench_{label}_{os.getpid()}_{time.monotonic_ns() % 1_000_000}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- servers --------------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(backend: str, admin_url: str, workdir: Path, label: str) -> Iterator[str]:
    """A new, empty database for one run: a SQLite file in ``workdir``, or a PostgreSQL
    database created through ``admin_url``; removed afterwards."""
    if backend == "sqlite":
        path = workdir / f"{label}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        with temporary_postgres_database(admin_url, label) as url:
            yield url


class Proc:
    """A subprocess in its own session, ended with its process group (also on errors)."""

    def __init__(self, name: str, argv: list[str], *, log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Proc:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode

    def log(self, tail: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-tail:]
        return ""

    def __enter__(self) -> Proc:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop(signal.SIGKILL)


class Server(Proc):
    """A server :class:`Proc` that counts as started once ``health_url`` answers 200."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        health_url: str,
        log_path: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(name, argv, log_path=log_path, env=env or {})
        self.health_url = health_url

    def start(self, timeout: float = 60.0) -> Server:
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited at start; see {self.log_path}:\n{self.log()}"
                )
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {self.health_url} within {timeout:.0f} s")

    def __enter__(self) -> Server:
        return self.start()
