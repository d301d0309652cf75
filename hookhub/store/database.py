"""The database handle: one engine, short write transactions, the same API on both backends.

``Database.write()`` opens a transaction that may write. On SQLite it starts with
``BEGIN IMMEDIATE`` (so a transaction never fails half-way when it upgrades from reading to
writing) and is serialized by an in-process lock, so threads of one process queue fairly instead
of spinning in SQLite's busy handler; other processes wait on ``busy_timeout``. On PostgreSQL it is
a plain ``READ COMMITTED`` transaction.

Callbacks registered with :func:`after_commit` run once the transaction has committed (waking
delivery workers, counting metrics); they never run for a rolled-back transaction, nor when
they were registered inside a savepoint that was rolled back (``conn.begin_nested()``): what
that savepoint did never happened.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from hookhub.errors import Unavailable
from hookhub.logs import describe_error
from hookhub.store.secrets import SecretBox, attach

log = logging.getLogger(__name__)

Backend = Literal["sqlite", "postgresql"]
_AFTER_COMMIT = "hookhub.after_commit"
_SAVEPOINT_MARKS = "hookhub.savepoint_marks"
_WRITE = "hookhub_write"


@dataclass(frozen=True)
class DatabaseCheck:
    """What a readiness check found: can we connect, can we write, and if not, why."""

    reachable: bool
    writable: bool
    error: str | None


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the database being away or busy (retry later), not a bad statement.

    Connection refused or dropped (a PostgreSQL restart), ``database is locked`` (another
    process holds SQLite's write lock past the busy timeout), a full disk, an exhausted pool.
    """
    if isinstance(exc, Unavailable | sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    return False


def normalize_url(url: str) -> str:
    """Accept the public spellings (``postgresql://``, ``postgres://``) and pick our driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL; None for any other database."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return parsed.database


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        sqlite_synchronous: str = "NORMAL",
        sqlite_wal_autocheckpoint: int = 4000,
        echo: bool = False,
    ) -> None:
        self.url = normalize_url(url)
        parsed = make_url(self.url)
        self.backend: Backend = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql"
        self._write_lock: threading.Lock | None = None
        self.secrets: SecretBox | None = None
        if self.backend == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                raise ValueError("SQLite needs a file path (sqlite:///path/to/hookhub.db)")
            self.engine: Engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size * 4,
                echo=echo,
                hide_parameters=True,  # bound values are contact data and secrets: never logged
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            self._write_lock = threading.Lock()
            _configure_sqlite(self.engine, sqlite_synchronous, sqlite_wal_autocheckpoint)
        else:
            self.engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size * 2,
                pool_pre_ping=True,
                echo=echo,
                hide_parameters=True,
            )
        _scope_callbacks_to_savepoints(self.engine)

    def use_secrets(self, box: SecretBox | None) -> None:
        """Seal and open the secret columns with ``box`` (see ``hookhub.store.secrets``)."""
        self.secrets = box
        attach(self.engine, box)

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        lock = self._write_lock or contextlib.nullcontext()
        callbacks: list[Callable[[], Any]] = []
        with lock, self._connect() as conn:
            conn.info[_AFTER_COMMIT] = callbacks
            conn.info[_SAVEPOINT_MARKS] = []
            try:
                with conn.execution_options(**{_WRITE: True}).begin():
                    yield conn
            finally:
                conn.info.pop(_AFTER_COMMIT, None)
                conn.info.pop(_SAVEPOINT_MARKS, None)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("after_commit.failed")

    @contextlib.contextmanager
    def dry_run(self) -> Iterator[Connection]:
        """A write transaction that is always rolled back (previews); no callbacks run."""
        lock = self._write_lock or contextlib.nullcontext()
        with lock, self._connect() as conn:
            conn.info[_AFTER_COMMIT] = []
            conn.info[_SAVEPOINT_MARKS] = []
            transaction = conn.execution_options(**{_WRITE: True}).begin()
            try:
                yield conn
            finally:
                transaction.rollback()
                conn.info.pop(_AFTER_COMMIT, None)
                conn.info.pop(_SAVEPOINT_MARKS, None)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self._connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self.engine.connect()
        except SQLAlchemyError as exc:
            raise Unavailable("The database is unreachable.") from exc
        with conn:
            yield conn

    def ping(self) -> None:
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def check_writable(self, timeout: float) -> DatabaseCheck:
        """Whether the database answers and would take a write now, waiting at most ``timeout``
        for a lock (SQLite) or a statement (PostgreSQL). Nothing is written.

        Connecting to a server that does not answer at all can take longer: callers bound
        the whole call too (``/readyz`` runs it in a thread under a deadline).
        """
        try:
            with self._connect() as conn:
                conn.exec_driver_sql("SELECT 1").close()
                conn.rollback()
        except Exception as exc:
            return DatabaseCheck(reachable=False, writable=False, error=describe_error(exc))
        try:
            with self._connect() as conn:
                if self.is_sqlite:
                    _sqlite_try_write_lock(conn, timeout)
                else:
                    _postgres_check_writable(conn, timeout)
        except Exception as exc:
            return DatabaseCheck(reachable=True, writable=False, error=describe_error(exc))
        return DatabaseCheck(reachable=True, writable=True, error=None)

    def dispose(self) -> None:
        self.engine.dispose()


def after_commit(conn: Connection, callback: Callable[[], Any]) -> None:
    """Run ``callback`` after the write transaction ``conn`` belongs to commits."""
    callbacks: list[Callable[[], Any]] | None = conn.info.get(_AFTER_COMMIT)
    if callbacks is None:
        raise RuntimeError("after_commit() outside Database.write()")
    callbacks.append(callback)


@contextlib.contextmanager
def light_savepoint(conn: Connection, name: str = "hookhub_step") -> Iterator[None]:
    """A savepoint spoken to the driver directly, for per-item savepoints on hot paths.

    What ``conn.begin_nested()`` does, after-commit callbacks included (those registered
    inside are dropped when it rolls back), at a tenth of its cost: SQLAlchemy's nested
    transaction objects and events cost ~100 us a savepoint, which processing paid for
    every inbound request. Not nestable with itself under the same ``name``. Should the
    savepoint itself be lost (the connection broke), that is the database's failure.
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    callbacks: list[Callable[[], Any]] | None = conn.info.get(_AFTER_COMMIT)
    mark = len(callbacks) if callbacks is not None else 0
    try:
        driver.execute(f"SAVEPOINT {name}")
    except Exception as exc:
        raise Unavailable("The database is unreachable.") from exc
    try:
        yield
    except BaseException:
        try:
            driver.execute(f"ROLLBACK TO SAVEPOINT {name}")
            driver.execute(f"RELEASE SAVEPOINT {name}")
        except Exception as exc:
            raise Unavailable("The database is unreachable.") from exc
        if callbacks is not None:
            del callbacks[mark:]
        raise
    try:
        driver.execute(f"RELEASE SAVEPOINT {name}")
    except Exception as exc:
        raise Unavailable("The database is unreachable.") from exc


def _scope_callbacks_to_savepoints(engine: Engine) -> None:
    """Forget the after-commit callbacks a rolled-back savepoint registered.

    Each savepoint marks how many callbacks there were when it began; rolling it back drops
    those registered since (an attribute type cached for a definition that was undone, a
    count of messages that were never stored), releasing it keeps them.
    """

    @event.listens_for(engine, "savepoint")
    def _on_savepoint(conn: Connection, _name: str) -> None:
        callbacks = conn.info.get(_AFTER_COMMIT)
        marks = conn.info.get(_SAVEPOINT_MARKS)
        if callbacks is not None and marks is not None:
            marks.append(len(callbacks))

    @event.listens_for(engine, "rollback_savepoint")
    def _on_rollback(conn: Connection, _name: str, _context: Any) -> None:
        callbacks = conn.info.get(_AFTER_COMMIT)
        marks = conn.info.get(_SAVEPOINT_MARKS)
        if callbacks is not None and marks:
            del callbacks[marks.pop() :]

    @event.listens_for(engine, "release_savepoint")
    def _on_release(conn: Connection, _name: str, _context: Any) -> None:
        marks = conn.info.get(_SAVEPOINT_MARKS)
        if marks:
            marks.pop()


SQLITE_MMAP_BYTES = 256 * 1024 * 1024
SQLITE_BUSY_TIMEOUT_MS = 30000


def _sqlite_try_write_lock(conn: Connection, timeout: float) -> None:
    """Take SQLite's write lock (``BEGIN IMMEDIATE``) and give it back, waiting ``timeout``."""
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute(f"PRAGMA busy_timeout={max(1, int(timeout * 1000))}")
    try:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("ROLLBACK")
    finally:
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def _postgres_check_writable(conn: Connection, timeout: float) -> None:
    with conn.begin():
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
        in_recovery, read_only = conn.exec_driver_sql(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
        ).one()
    if in_recovery or read_only == "on":
        raise Unavailable("The database is read-only.")


def _configure_sqlite(engine: Engine, synchronous: str, wal_autocheckpoint: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so that BEGIN is ours to choose.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        # A checkpoint copies the WAL's pages into the database file and fsyncs both, in the
        # commit that crosses the threshold. Every 4,000 pages rather than SQLite's 1,000: a
        # page changed by several commits meanwhile (the dedupe index's are) is copied once,
        # and the commit thread waits on fsync a quarter as often (64-entry inbound groups,
        # bench/bench_journal_write.py: 33 -> 31 us of CPU and 41 -> 36 us of wall time an
        # entry; under load, 1.14x the requests acknowledged: bench/RESULTS.md).
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Read the file through a shared memory map rather than a read() call per page: the
        # default 2 MB page cache per connection is soon outgrown (draining 20,000 inbound
        # requests: 54 s -> 46 s). Address space only; the pages are the OS's page cache.
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
