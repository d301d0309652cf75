"""Email worker helpers for tests: run a real worker in a thread, wait for emails' statuses.

    with email_worker(services) as worker:     # HOOKHUB_SMTP_URL from services.settings
        ... queue emails ...
        wait_for_status(services, ids, {"sent"})

The worker runs on its own event loop in a thread, so synchronous tests (the API's TestClient)
and the SMTP server's thread all run at once, as in ``hookhub serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Collection, Iterator
from typing import Any

from hookhub.email.worker import EmailWorker
from hookhub.records.email import Email
from hookhub.services import Services, build_email_worker
from hookhub.store.email_reads import EmailReads


@contextlib.contextmanager
def email_worker(services: Services, worker_id: str | None = None) -> Iterator[EmailWorker]:
    worker = build_email_worker(services)
    if worker_id is not None:
        worker.worker_id = worker_id
    started = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            task = asyncio.create_task(worker.run())
            started.set()
            try:
                await task
            finally:
                await worker.transport.aclose()
                await asyncio.sleep(0.05)  # connections aborted just now finish closing

        try:
            loop.run_until_complete(main())
        except BaseException as exc:
            failure.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="test-email-worker", daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield worker
    finally:
        if not loop.is_closed():
            loop.call_soon_threadsafe(worker.stop)
        thread.join(60)
        assert not thread.is_alive(), "the email worker did not stop"
        if failure:
            raise failure[0]


def emails_of(services: Services, ids: Collection[int]) -> list[Email]:
    with services.db.read() as conn:
        store = EmailReads(conn)
        return [e for e in (store.get(i) for i in ids) if e is not None]


def wait_for_status(
    services: Services, ids: Collection[int], statuses: Collection[str], timeout: float = 30.0
) -> list[Email]:
    """Wait until every email of ``ids`` is in one of ``statuses``; they, by id."""
    deadline = time.monotonic() + timeout
    while True:
        found = emails_of(services, ids)
        if len(found) == len(ids) and all(e.status in statuses for e in found):
            return sorted(found, key=lambda e: e.id)
        if time.monotonic() > deadline:
            seen = {e.id: (e.status, e.status_reason) for e in found}
            raise AssertionError(f"emails not {sorted(statuses)} in time: {seen}")
        time.sleep(0.02)


def raw_of(services: Services, email_id: int) -> bytes | None:
    with services.db.read() as conn:
        raw: Any = EmailReads(conn).raw(email_id)
    return bytes(raw) if raw is not None else None


def create_template(
    services: Services, subject: str, html: str, text: str | None = None, name: str = "t"
) -> int:
    """An email template row, as the templates API stores one."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from hookhub.store.schema_email import email_templates

    now = datetime.now(UTC)
    with services.db.write() as conn:
        statement = insert(email_templates).returning(email_templates.c.id)
        values = {
            "name": name,
            "subject": subject,
            "html": html,
            "text": text,
            "tags": "[]",
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        return int(conn.execute(statement, values).scalar_one())
