"""Email retention on each backend: final emails older than HOOKHUB_RETENTION_EMAILS go with
their timelines, in batches; newer ones and those still to be sent stay, however old;
Idempotency-Key answers go after their 24 hours."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from hookhub import ids
from hookhub.retention import PurgeCounts, RetentionService
from hookhub.store.email_idempotency import EmailIdempotency
from hookhub.store.email_rows import NewEmail
from hookhub.store.emails import EmailStore
from hookhub.store.schema_email import email_events, email_idempotency, emails
from tests.support.delivery import tuned_services

DAY = 24 * 3600.0


def _email(created_at: datetime, status: str) -> NewEmail:
    return NewEmail(
        message_id=ids.email_message_id("mail.example.com"),
        kind="transactional",
        to_email="ada@example.com",
        sender={"email": "shop@example.com"},
        created_at=created_at,
        content={"subject": "Hi", "html": "<p>Hi</p>"},
        status=status,
    )


def test_old_final_emails_go_with_their_events_pending_and_new_stay(db_url: str) -> None:
    now = time.time()
    old = datetime.fromtimestamp(now - 10 * DAY, UTC)
    with tuned_services(db_url, retention_emails=7 * DAY, retention_batch=2) as services:
        with services.db.write() as conn:
            store = EmailStore(conn)
            gone = store.insert_many([_email(old, "skipped") for _ in range(3)])
            kept_pending = store.insert_many([_email(old, "queued")])
            kept_new = store.insert_many([_email(old + timedelta(days=9), "skipped")])
            store.add_events((email_id, "skipped", now, {"reason": "blocked"}) for email_id in gone)
            store.add_events([(kept_new[0], "skipped", now, None)])
            for key, created in (("old", now - 2 * DAY), ("new", now - 60)):
                EmailIdempotency(conn).remember_answer("1", key, "h", "{}", created)

        service = RetentionService(services.db, services.settings)
        dry = service.purge(requests=False, messages=False, dry_run=True)
        assert dry == PurgeCounts(emails=3, email_events=3, idempotency_keys=1)
        assert service.purge(requests=False, messages=False) == dry

        with services.db.read() as conn:
            left = set(conn.execute(select(emails.c.id)).scalars())
            events = conn.execute(select(func.count()).select_from(email_events)).scalar_one()
            keys = set(conn.execute(select(email_idempotency.c.key)).scalars())
        assert left == {*kept_pending, *kept_new}
        assert events == 1
        assert keys == {"new"}
        assert service.purge(requests=False, messages=False) == PurgeCounts()


def test_email_retention_zero_keeps_them_forever(db_url: str) -> None:
    old = datetime.now(UTC) - timedelta(days=3650)
    with tuned_services(db_url, retention_emails=0) as services:
        with services.db.write() as conn:
            EmailStore(conn).insert_many([_email(old, "skipped")])
        counts = RetentionService(services.db, services.settings).purge()
        assert counts.emails == 0
