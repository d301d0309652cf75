"""Automations run by real ``hookhub worker`` processes against a real SMTP server on loopback:
a worker killed with SIGKILL while 1,000 enrollments pass a ``send_email`` step, and two workers
sharing the enrollments on PostgreSQL.

What must hold: every enrollment ends ``completed``; each step is recorded exactly once per
enrollment (never done twice, never skipped); each contact has exactly one queued email and one
``welcomed`` event; every contact receives the email, and only the few the dead worker had in
flight at the SMTP server may receive it twice (with the same Message-ID).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from hookhub.automation.enroll import enroll
from hookhub.crm.operations import CrmTx
from hookhub.services import Services
from hookhub.store.automations import AutomationStore
from hookhub.store.contacts import ContactStore
from hookhub.store.email_templates import EmailTemplateStore
from hookhub.store.schema import contacts, custom_events
from hookhub.store.schema_automation import automation_enrollments, automation_step_log
from hookhub.store.schema_email import emails
from tests.acceptance.test_campaign_processes import received, running
from tests.conftest import API_KEY
from tests.support import processes
from tests.support.smtp import SmtpServer, running_smtp_server

pytestmark = pytest.mark.slow

CONTACTS = 1000
STEP_BATCH = 20
"""Enrollments a worker claims per transaction."""
EMAIL_BATCH = 20
"""Emails a worker claims per transaction: at most two batches are in flight at a kill."""
STEPS = ("hello", "note", "stage")


def prefill(services: Services) -> int:
    """``CONTACTS`` contacts, a template, and an automation that emails each, records an event
    and updates the contact; every contact enrolled (due now). Answers the automation's id."""
    now = datetime.now(UTC)
    with services.db.write() as conn:
        conn.execute(
            insert(contacts),
            [
                {
                    "email": f"a{n:04d}@example.com",
                    "attributes": f'{{"FIRSTNAME":"A{n}"}}',
                    "unsubscribed": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(CONTACTS)
            ],
        )
        template = EmailTemplateStore(conn).create(
            {"name": "welcome", "subject": "Welcome {{ contact.FIRSTNAME }}", "html": "<p>Hi</p>"},
            now,
        )
        automation = AutomationStore(conn).create(
            {
                "name": "Welcome",
                "trigger": {"type": "manual"},
                "reentry": "never",
                "exit_on_unsubscribe": True,
                "steps": [
                    {"id": "hello", "send_email": {"template_id": template.id}},
                    {"id": "note", "track_event": {"name": "welcomed"}},
                    {"id": "stage", "update_contact": {"attributes": {"STAGE": "'welcomed'"}}},
                ],
            },
            now,
        )
    services.automation_registry.invalidate()
    with services.db.write() as conn:
        compiled = services.automation_registry.compiled(conn, automation.id, automation.version)
        assert compiled is not None
        tx = CrmTx(conn, services.outbox.writer(conn), now)
        store = ContactStore(conn)
        for contact_id in conn.execute(select(contacts.c.id)).scalars():
            contact = store.get(contact_id)
            assert contact is not None
            entered = enroll(tx, compiled, contact, trigger_type="manual", trigger={})
            assert entered is not None
    return automation.id


def worker_env(db_url: str, server: SmtpServer) -> dict[str, str]:
    return processes.hookhub_env(
        db_url,
        HOOKHUB_API_KEY=API_KEY,
        HOOKHUB_SMTP_URL=server.url(),
        HOOKHUB_SMTP_CONNECTIONS="4",
        HOOKHUB_EMAIL_BATCH=str(EMAIL_BATCH),
        HOOKHUB_EMAIL_LEASE="3",
        HOOKHUB_AUTOMATION_BATCH=str(STEP_BATCH),
        HOOKHUB_AUTOMATION_LEASE="3",
        HOOKHUB_POLL_INTERVAL="0.2",
    )


def finished(services: Services, automation_id: int) -> int:
    with services.db.read() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    automation_enrollments.c.automation_id == automation_id,
                    automation_enrollments.c.status == "completed",
                )
            ).scalar_one()
        )


def wait_done(services: Services, server: SmtpServer, automation_id: int) -> None:
    """Until every enrollment is finished and every contact has received its email."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with services.db.read() as conn:
            active = conn.execute(
                select(func.count()).where(
                    automation_enrollments.c.automation_id == automation_id,
                    automation_enrollments.c.status == "active",
                )
            ).scalar_one()
        received = {m.recipients[0] for m in list(server.messages)}
        if active == 0 and len(received) == CONTACTS:
            return
        time.sleep(0.25)
    raise AssertionError(f"{active} enrollments still active, {len(received)} contacts emailed")


def check_exactly_once(services: Services, automation_id: int) -> None:
    with services.db.read() as conn:
        statuses = Counter(
            conn.execute(
                select(automation_enrollments.c.status).where(
                    automation_enrollments.c.automation_id == automation_id
                )
            ).scalars()
        )
        logged = Counter(
            (row.enrollment_id, row.step_id)
            for row in conn.execute(
                select(automation_step_log.c.enrollment_id, automation_step_log.c.step_id).where(
                    automation_step_log.c.automation_id == automation_id
                )
            )
        )
        queued = Counter(
            conn.execute(
                select(emails.c.contact_id).where(emails.c.automation_id == automation_id)
            ).scalars()
        )
        events = Counter(
            conn.execute(
                select(custom_events.c.contact_id).where(custom_events.c.event_name == "welcomed")
            ).scalars()
        )
    assert statuses == {"completed": CONTACTS}
    assert len(logged) == CONTACTS * len(STEPS), "every step of every enrollment was recorded"
    assert set(logged.values()) == {1}, "no step was done twice"
    assert len(queued) == CONTACTS, "every contact has an email queued"
    assert set(queued.values()) == {1}, "one email per contact"
    assert len(events) == CONTACTS, "every contact has its event"
    assert set(events.values()) == {1}, "one event per contact"


def test_a_worker_killed_while_enrollments_send_email_does_no_step_twice(
    services: Services, db_url: str, tmp_path: Path
) -> None:
    automation_id = prefill(services)
    with running_smtp_server(delay=0.003) as server, ExitStack() as stack:
        env = worker_env(db_url, server)
        first_log = stack.enter_context((tmp_path / "worker-1.log").open("ab"))
        first = processes.start(["worker"], env, first_log)
        try:
            deadline = time.monotonic() + 120
            while finished(services, automation_id) < CONTACTS // 3:
                assert time.monotonic() < deadline, "the first worker ran too few steps"
                assert first.poll() is None, (tmp_path / "worker-1.log").read_text()
                time.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            processes.stop(first)
        at_kill = len(server.messages)
        done_at_kill = finished(services, automation_id)
        assert done_at_kill < CONTACTS, "the kill came after every step: it proves nothing"
        stack.enter_context(running(["worker"], env, tmp_path / "worker-2.log"))
        wait_done(services, server, automation_id)
        counts, message_ids = received(server)
    check_exactly_once(services, automation_id)
    assert set(counts) == {f"a{n:04d}@example.com" for n in range(CONTACTS)}
    twice = {address: n for address, n in counts.items() if n > 1}
    print(
        f"killed with {done_at_kill} enrollments completed and {at_kill} emails sent; "
        f"{len(twice)} contacts got the email twice"
    )
    assert max(counts.values()) <= 2, twice
    assert len(twice) <= 2 * EMAIL_BATCH, twice  # only what the dead worker had in flight
    assert all(len(ids) == 1 for ids in message_ids.values()), "a resend is the same message"


@pytest.mark.postgres
def test_two_workers_share_the_enrollments_on_postgresql_without_doing_a_step_twice(
    services: Services, db_url: str, tmp_path: Path
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("many workers share the enrollments on PostgreSQL")
    automation_id = prefill(services)
    with running_smtp_server(delay=0.002) as server, ExitStack() as stack:
        env = worker_env(db_url, server)
        for n in (1, 2):
            stack.enter_context(running(["worker"], env, tmp_path / f"worker-{n}.log"))
        wait_done(services, server, automation_id)
        counts, _ = received(server)
    check_exactly_once(services, automation_id)
    assert set(counts) == {f"a{n:04d}@example.com" for n in range(CONTACTS)}
    assert set(counts.values()) == {1}, "nobody got the email twice"
