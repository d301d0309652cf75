"""Keeps Hookhub's long-running loops alive and says how each is doing.

A loop is anything with ``async run()`` (returns when stopped) and ``stop()``; it may carry a
:class:`Heartbeat` (attribute ``heartbeat``) that it beats after every iteration and on which it
notes errors it is retrying by itself (a database outage). The :class:`Supervisor` runs every
loop as a task, restarts one that raises (after 1 s, doubling up to 30 s; back to 1 s once it ran
healthily for a minute), logs each crash with the loop's name, and answers each loop's
:class:`LoopHealth` for ``/readyz``: a loop whose heartbeat is older than ``stall_after`` seconds
is *stalled*.

What this module must never do: cancel a loop that is merely slow (a thread blocked in the
database cannot be cancelled; the lease it holds expires instead), or put an error's full text,
SQL parameters or connection strings into health answers or logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from hookhub.logs import describe_error
from hookhub.store.database import is_transient

log = logging.getLogger("hookhub.supervisor")

LoopState = Literal["running", "failing", "restarting", "stalled", "stopped"]


class Backoff:
    """Delays that start at ``first``, double up to ``most``, and start over on ``reset``."""

    def __init__(self, first: float, most: float) -> None:
        self.first = first
        self.most = most
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.most)
        return delay

    def reset(self) -> None:
        self._next = self.first


class Heartbeat:
    """What a loop tells its supervisor: when it last made progress, what it is retrying."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.at = clock()
        self.errors: dict[str, str] = {}
        """Where an error is being retried (``"claim"``, ``"record"``...) -> its description."""

    def beat(self) -> None:
        self.at = self.clock()

    def failing(self, where: str, exc: BaseException) -> None:
        """An iteration failed at ``where`` and will be retried: the loop is alive, not well."""
        self.errors[where] = describe_error(exc)
        self.beat()

    def recovered(self, where: str) -> None:
        self.errors.pop(where, None)

    def retry_later(
        self, where: str, exc: Exception, backoff: Backoff, logger: logging.Logger, event: str
    ) -> float:
        """Note that ``where`` failed and log it as ``event``: a database outage quietly (it
        is retried), anything else with its traceback (a bug); the seconds to wait first."""
        delay = backoff.next()
        self.failing(where, exc)
        if is_transient(exc):
            logger.warning(event, extra={"error": describe_error(exc), "retry_in": delay})
        else:
            logger.exception(event, extra={"retry_in": delay})
        return delay


class Loop(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class LoopHealth:
    state: LoopState
    restarts: int
    last_error: str | None
    last_progress: float | None
    """Seconds since the epoch of the loop's last heartbeat (None: it has none)."""

    def as_json(self) -> dict[str, object]:
        progress = None
        if self.last_progress is not None:
            progress = datetime.fromtimestamp(self.last_progress, UTC).isoformat(
                timespec="milliseconds"
            )
        return {
            "state": self.state,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_progress": progress,
        }


@dataclass
class _Supervised:
    name: str
    loop: Loop
    state: LoopState = "stopped"
    restarts: int = 0
    last_error: str | None = None
    task: asyncio.Task[None] | None = None
    stalled_logged: bool = False
    backoff: Backoff = field(default_factory=lambda: Backoff(1.0, 30.0))


class Supervisor:
    """Runs named loops, restarts the ones that raise, and reports their health."""

    def __init__(
        self,
        *,
        stall_after: float = 60.0,
        first_restart: float = 1.0,
        most_restart: float = 30.0,
        healthy_after: float = 60.0,
        watch_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.stall_after = stall_after
        self.first_restart = first_restart
        self.most_restart = most_restart
        self.healthy_after = healthy_after
        self.watch_every = watch_every
        self.clock = clock
        self.wall_clock = wall_clock
        self._loops: dict[str, _Supervised] = {}
        self._stopping = False
        self._stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, name: str, loop: Loop) -> None:
        if name in self._loops:
            raise ValueError(f"a loop named {name!r} is already supervised")
        self._loops[name] = _Supervised(
            name, loop, backoff=Backoff(self.first_restart, self.most_restart)
        )
        if self._tasks:  # already running: start this one too
            self._tasks.append(self._start(self._loops[name]))

    @property
    def names(self) -> list[str]:
        return list(self._loops)

    def start(self) -> None:
        """Start every loop (and the stall watch) as tasks of the running event loop."""
        self._stopping = False
        self._stopped = asyncio.Event()  # of the running event loop
        self._tasks = [self._start(entry) for entry in self._loops.values()]
        self._tasks.append(asyncio.create_task(self._watch(), name="hookhub-supervisor-watch"))

    def _start(self, entry: _Supervised) -> asyncio.Task[None]:
        task = asyncio.create_task(self._keep_running(entry), name=f"hookhub-{entry.name}")
        entry.task = task
        return task

    async def run(self) -> None:
        """Start every loop and return once all have stopped (after :meth:`stop`)."""
        self.start()
        await self.wait()

    async def wait(self) -> None:
        await asyncio.gather(*self._tasks)

    def clear(self) -> None:
        """Forget every loop (all stopped), so that a new set can be added and started."""
        if any(entry.state != "stopped" for entry in self._loops.values()):
            raise RuntimeError("clear() while loops still run")
        self._loops.clear()
        self._tasks = []

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        for entry in self._loops.values():
            entry.loop.stop()

    async def _keep_running(self, entry: _Supervised) -> None:
        while not self._stopping:
            entry.state = "running"
            started = self.clock()
            heartbeat = _heartbeat_of(entry.loop)
            if heartbeat is not None:
                heartbeat.beat()
            try:
                await entry.loop.run()
            except asyncio.CancelledError:
                entry.state = "stopped"
                raise
            except Exception as exc:
                if self.clock() - started >= self.healthy_after:
                    entry.backoff.reset()
                delay = entry.backoff.next()
                entry.last_error = describe_error(exc)
                entry.state = "restarting"
                log.error(
                    "loop.crashed",
                    exc_info=True,
                    extra={
                        "loop": entry.name,
                        "error": entry.last_error,
                        "restarts": entry.restarts,
                        "restart_in": delay,
                    },
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), delay)
                if self._stopping:
                    break
                entry.restarts += 1
                log.warning(
                    "loop.restarted", extra={"loop": entry.name, "restarts": entry.restarts}
                )
                continue
            if not self._stopping:
                # A loop that returns on its own has stopped working just as one that raised.
                entry.last_error = "the loop returned without being stopped"
                log.error("loop.returned", extra={"loop": entry.name})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), entry.backoff.next())
                if not self._stopping:
                    entry.restarts += 1
        entry.state = "stopped"

    async def _watch(self) -> None:
        """Log once when a loop stalls (and when it moves again): nothing else notices."""
        while not self._stopping:
            for name, health in self.health().items():
                entry = self._loops[name]
                if health.state == "stalled" and not entry.stalled_logged:
                    entry.stalled_logged = True
                    log.error("loop.stalled", extra={"loop": name, "stall_after": self.stall_after})
                elif health.state != "stalled" and entry.stalled_logged:
                    entry.stalled_logged = False
                    log.warning("loop.resumed", extra={"loop": name})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.watch_every)

    def health(self) -> dict[str, LoopHealth]:
        now = self.clock()
        wall_now = self.wall_clock()
        answer: dict[str, LoopHealth] = {}
        for name, entry in self._loops.items():
            heartbeat = _heartbeat_of(entry.loop)
            state: LoopState = entry.state
            last_error = entry.last_error
            progress: float | None = None
            if heartbeat is not None:
                progress = wall_now - (now - heartbeat.at)
                if state == "running":
                    if now - heartbeat.at > self.stall_after:
                        state = "stalled"
                    elif heartbeat.errors:
                        state = "failing"
                if heartbeat.errors:
                    last_error = next(iter(heartbeat.errors.values()))
            answer[name] = LoopHealth(state, entry.restarts, last_error, progress)
        return answer

    def ready(self) -> bool:
        """Every loop running, none failing, restarting, stalled or stopped."""
        return all(h.state == "running" for h in self.health().values())


def _heartbeat_of(loop: Loop) -> Heartbeat | None:
    heartbeat = getattr(loop, "heartbeat", None)
    return heartbeat if isinstance(heartbeat, Heartbeat) else None
