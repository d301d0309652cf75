"""Several email workers share one queue: every email is sent once, and a stopping worker gives
back what it had claimed. Both backends (SKIP LOCKED on PostgreSQL, the write lock on SQLite).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from hookhub import ids
from hookhub.store.email_reads import EmailReads
from hookhub.store.email_rows import NewEmail
from hookhub.store.emails import EmailStore
from tests.support.delivery import tuned_services
from tests.support.email import email_worker, wait_for_status
from tests.support.smtp import running_smtp_server


def _queue(services: object, count: int, kind: str = "transactional") -> list[int]:
    now = datetime.now(UTC)
    new = [
        NewEmail(
            message_id=ids.email_message_id("example.com"),
            kind=kind,
            to_email=f"r{n}@example.com",
            sender={"email": "shop@example.com", "name": None},
            created_at=now,
            content={"subject": "Hello {{ contact.email }}", "html": "<p>Hi</p>"},
        )
        for n in range(count)
    ]
    with services.db.write() as conn:  # type: ignore[attr-defined]
        return EmailStore(conn).insert_many(new)


def test_two_workers_send_each_email_once(db_url: str) -> None:
    with running_smtp_server(delay=0.002) as smtp:
        options = {"smtp_url": smtp.url(), "email_batch": 20, "smtp_connections": 2}
        with tuned_services(db_url, **options) as services:
            email_ids = _queue(services, 300)
            with email_worker(services, "one") as first, email_worker(services, "two") as second:
                wait_for_status(services, email_ids, {"sent"}, timeout=120)
            counts = Counter(smtp.recipients())
            assert len(counts) == 300
            assert set(counts.values()) == {1}
            assert first.sent + second.sent == 300
            assert first.sent > 0
            assert second.sent > 0


def test_a_stopping_worker_gives_back_its_leases(db_url: str) -> None:
    with running_smtp_server(delay=0.05) as smtp:
        options = {"smtp_url": smtp.url(), "email_batch": 5, "smtp_connections": 1}
        with tuned_services(db_url, email_lease=600, **options) as services:
            email_ids = _queue(services, 40)
            with email_worker(services, "leaving"):
                deadline = time.monotonic() + 30
                while not smtp.messages and time.monotonic() < deadline:
                    time.sleep(0.01)
            # stopped with most emails unsent: none stays leased for the 600 s lease
            with services.db.read() as conn:
                leased = [e for e in EmailReads(conn).get_many(email_ids) if e.status == "queued"]
            assert leased, "the worker sent everything before it was stopped"
            with email_worker(services, "staying"):
                wait_for_status(services, email_ids, {"sent"}, timeout=60)
            assert Counter(smtp.recipients()).most_common(1)[0][1] == 1
