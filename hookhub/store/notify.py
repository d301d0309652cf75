"""Cross-process wake-ups: PostgreSQL ``NOTIFY`` inside a transaction, ``LISTEN`` in a thread.

A writer calls :func:`notify` inside its write transaction; PostgreSQL delivers the
notification to every listener when (and only when) that transaction commits. A process that
wants to hear about it starts a :class:`NotificationListener` with a callback per channel.
SQLite has neither: :func:`notify` does nothing there and the listener never starts, so every
user of this module must keep a polling backstop (it covers PostgreSQL's gaps too: a listener
that is reconnecting hears nothing).

This is the only place that speaks ``LISTEN``/``NOTIFY``; it must never block the event loop
(the listener is a daemon thread) and never let a callback's failure stop the listening.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import weakref
from collections.abc import Callable, Mapping

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from hookhub.store.database import after_commit

log = logging.getLogger("hookhub.notify")

_CHANNEL = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
RECONNECT_DELAY = 1.0


class CommitWakers:
    """Wakes the workers of this process after a commit that gave them work, and (PostgreSQL)
    every other process's through ``NOTIFY`` on ``channel``: one per queue (emails,
    enrollments)."""

    def __init__(self, channel: str) -> None:
        self.channel = _check_channel(channel)
        self._wakers: weakref.WeakKeyDictionary[Engine, list[Callable[[], None]]] = (
            weakref.WeakKeyDictionary()
        )

    def on(self, engine: Engine, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake()`` after every commit on ``engine`` that had work for it; answers the
        function that stops it. ``wake`` runs in the committing thread: quick, thread-safe."""
        wakers = self._wakers.setdefault(engine, [])
        wakers.append(wake)

        def forget() -> None:
            with contextlib.suppress(ValueError):
                wakers.remove(wake)

        return forget

    def after_commit(self, conn: Connection) -> None:
        """Wake them once ``conn``'s transaction commits (outside ``Database.write()``, this
        process has no one to wake)."""
        notify(conn, self.channel)
        wakers = self._wakers.get(conn.engine)
        if wakers:
            with contextlib.suppress(RuntimeError):
                after_commit(conn, lambda: _wake_all(wakers))


def _wake_all(wakers: list[Callable[[], None]]) -> None:
    for wake in list(wakers):
        wake()


def _check_channel(channel: str) -> str:
    if not _CHANNEL.match(channel):
        raise ValueError(f"not a channel name: {channel!r}")
    return channel


def notify(conn: Connection, channel: str, payload: str = "") -> None:
    """Tell listeners on ``channel`` once this transaction commits (PostgreSQL; else nothing).

    PostgreSQL folds identical notifications of one transaction into one, so calling this for
    every row a transaction writes costs one delivery, not one per call.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY, {"channel": _check_channel(channel), "payload": payload})


class NotificationListener:
    """``LISTEN`` on some channels in a thread of its own; calls ``callbacks[channel](payload)``.

    Callbacks run in the listener's thread: they must be quick and thread-safe (hand work to an
    event loop with ``call_soon_threadsafe``). On a lost connection it reconnects after
    :data:`RECONNECT_DELAY`, and ``on_reconnect`` (if given) runs once it listens again, so
    that anything missed meanwhile can be re-read.
    """

    def __init__(
        self,
        url: str,
        callbacks: Mapping[str, Callable[[str], None]],
        *,
        on_reconnect: Callable[[], None] | None = None,
        name: str = "hookhub-listen",
    ) -> None:
        self._conninfo = (
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self._callbacks = {_check_channel(c): cb for c, cb in callbacks.items()}
        self._on_reconnect = on_reconnect
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.listening = threading.Event()
        """Set while a connection is listening (tests wait for it)."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end (within a second); does not wait for it."""
        self._stopping.set()

    def _run(self) -> None:
        import psycopg

        connected_before = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    for channel in self._callbacks:
                        conn.execute(f"LISTEN {channel}")
                    self.listening.set()
                    if connected_before and self._on_reconnect is not None:
                        self._call(self._on_reconnect)
                    connected_before = True
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=1.0, stop_after=1):
                            callback = self._callbacks.get(note.channel)
                            if callback is not None:
                                self._call(callback, note.payload)
            except Exception as exc:  # reconnect; the users' polling backstop covers the gap
                self.listening.clear()
                if not self._stopping.is_set():
                    log.warning("notify.listen_failed", extra={"error": type(exc).__name__})
                    self._stopping.wait(RECONNECT_DELAY)
        self.listening.clear()

    @staticmethod
    def _call(callback: Callable[..., None], *args: str) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("notify.callback_failed")
