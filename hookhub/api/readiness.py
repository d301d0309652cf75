"""What ``/readyz`` answers: is the database reachable and writable, are the loops running.

The database check runs in a thread under a deadline (``HOOKHUB_READINESS_TIMEOUT``), and at
most one runs at a time: a load balancer polling a hung database must not pile up threads. That
thread is its own, not the event loop's default pool: when the database is locked, every worker
loop's call waits in that pool (seven loops and six threads on two cores), and the check queued
behind them answered "no answer" instead of what it found.
Must never write to the database or show an error's full text (see ``describe_error``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hookhub.store.database import Database, DatabaseCheck
from hookhub.supervisor import Supervisor


class Readiness:
    def __init__(self, db: Database, timeout: float, supervisor: Supervisor | None = None) -> None:
        self.db = db
        self.timeout = timeout
        self.supervisor = supervisor
        self._running: asyncio.Future[DatabaseCheck] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hookhub-readiness")

    async def check_database(self) -> DatabaseCheck:
        running = self._running
        if running is None or running.done():
            loop = asyncio.get_running_loop()
            running = self._running = asyncio.ensure_future(
                loop.run_in_executor(self._thread, self.db.check_writable, self.timeout)
            )
        try:
            # A little more than the lock wait, so the check can say what it found itself.
            return await asyncio.wait_for(asyncio.shield(running), self.timeout + 1.0)
        except TimeoutError:
            error = f"TimeoutError: no answer within {self.timeout + 1.0:g} s"
            return DatabaseCheck(reachable=False, writable=False, error=error)

    async def report(self) -> tuple[bool, dict[str, Any]]:
        """Whether Hookhub is ready, and the body that says why (or why not)."""
        database = await self.check_database()
        loops = self.supervisor.health() if self.supervisor is not None else {}
        ready = database.writable and all(h.state == "running" for h in loops.values())
        body = {
            "status": "ready" if ready else "unavailable",
            "database": {
                "backend": self.db.backend,
                "reachable": database.reachable,
                "writable": database.writable,
                "error": database.error,
            },
            "loops": {name: health.as_json() for name, health in loops.items()},
        }
        return ready, body
