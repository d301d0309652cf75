"""Configuration versions: how a process learns that another one changed what it caches.

Every change to API keys, endpoints or inbound webhooks bumps its kind's row in the same
transaction (:func:`bump`), and on PostgreSQL also sends ``NOTIFY hookhub_config, '<kind>'``,
delivered when that transaction commits. A :class:`ConfigWatcher` in each process that caches
these hears the notification (PostgreSQL) or polls the tiny version table (both backends; on
PostgreSQL only as a backstop) and calls that kind's callbacks when its version moves.

The watcher is a daemon thread: callbacks must be quick and thread-safe, and a failed poll is
logged and retried, never fatal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import StrEnum

from sqlalchemy import Connection, select, update

from hookhub.store.database import Database
from hookhub.store.notify import NotificationListener, notify
from hookhub.store.schema import config_versions

CHANNEL = "hookhub_config"
SQLITE_POLL_INTERVAL = 0.2
POSTGRES_POLL_INTERVAL = 2.0  # a backstop: NOTIFY tells at once

log = logging.getLogger("hookhub.config")


class ConfigKind(StrEnum):
    API_KEYS = "api_keys"
    ENDPOINTS = "endpoints"
    INBOUND_WEBHOOKS = "inbound_webhooks"
    AUTOMATIONS = "automations"


_BUMP = {
    kind: update(config_versions)
    .where(config_versions.c.kind == kind.value)
    .values(version=config_versions.c.version + 1)
    for kind in ConfigKind
}
_READ = select(config_versions.c.kind, config_versions.c.version)


def bump(conn: Connection, kind: ConfigKind) -> None:
    """Mark ``kind`` changed by the caller's write transaction (seen once it commits)."""
    conn.execute(_BUMP[kind])
    notify(conn, CHANNEL, kind.value)


def read_versions(conn: Connection) -> dict[str, int]:
    return {kind: int(version) for kind, version in conn.execute(_READ)}


class ConfigWatcher:
    """Calls ``on_change`` callbacks when another process (or this one) changes a kind."""

    def __init__(self, db: Database, *, poll_interval: float | None = None) -> None:
        self.db = db
        self.poll_interval = poll_interval or (
            SQLITE_POLL_INTERVAL if db.is_sqlite else POSTGRES_POLL_INTERVAL
        )
        self._callbacks: dict[str, list[Callable[[], None]]] = {kind: [] for kind in ConfigKind}
        self._known: dict[str, int] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: NotificationListener | None = None

    def on_change(self, kind: ConfigKind, callback: Callable[[], None]) -> None:
        self._callbacks[kind.value].append(callback)

    def start(self) -> None:
        if self._thread is not None:
            return
        self.poll()  # the versions this process starts from
        if not self.db.is_sqlite:
            self._listener = NotificationListener(
                self.db.url, {CHANNEL: self._heard}, on_reconnect=self.poll, name="hookhub-config"
            )
            self._listener.start()
        self._thread = threading.Thread(target=self._run, name="hookhub-config-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.stop()

    def _run(self) -> None:
        while not self._stopping.wait(self.poll_interval):
            try:
                self.poll()
            except Exception as exc:  # the database may be away: the next poll retries
                log.warning("config.poll_failed", extra={"error": type(exc).__name__})

    def _heard(self, payload: str) -> None:
        if payload in self._callbacks:
            self._fire(payload)

    def poll(self) -> None:
        """Read the versions; call the callbacks of every kind whose version moved."""
        with self.db.read() as conn:
            versions = read_versions(conn)
        with self._lock:
            known, self._known = self._known, versions
        if known is None:
            return
        for kind, version in versions.items():
            if known.get(kind) != version:
                self._fire(kind)

    def _fire(self, kind: str) -> None:
        for callback in self._callbacks.get(kind, ()):
            try:
                callback()
            except Exception:
                log.exception("config.callback_failed", extra={"kind": kind})
