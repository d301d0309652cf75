"""The email queue and ledger: claims lease, outcomes and reports change status, timeline,
outbox and contacts exactly as docs/DESIGN.md ("Email") says, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from hookhub import ids
from hookhub.crm.operations import CrmTx
from hookhub.email.ledger import Attempt, EmailLedger, crm_unsubscriber
from hookhub.records.email import Email
from hookhub.services import Services
from hookhub.store.email_reads import EmailReads
from hookhub.store.email_rows import NewEmail
from hookhub.store.emails import EmailStore, EmailUpdate
from hookhub.store.schema import messages

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def _queue(services: Services, *addresses: str, contact: bool = True) -> list[int]:
    with services.db.write() as conn:
        crm = CrmTx(conn, services.outbox.writer(conn), NOW)
        new = []
        for address in addresses:
            contact_id = None
            if contact:
                made, _ = crm.create_contact(email=address)
                contact_id = made.id
            new.append(
                NewEmail(
                    message_id=ids.email_message_id("mail.example.com"),
                    kind="transactional",
                    to_email=address,
                    contact_id=contact_id,
                    sender={"email": "shop@example.com", "name": "Shop"},
                    created_at=NOW,
                    content={"subject": "Hello", "html": "<p>Hi</p>"},
                    tags=["order"],
                )
            )
        return EmailStore(conn).insert_many(new)


def _payloads(services: Services, event_type: str) -> list[dict[str, Any]]:
    from hookhub.core import jsoncodec

    with services.db.read() as conn:
        rows = conn.execute(select(messages.c.payload).where(messages.c.type == event_type))
        return [jsoncodec.loads(payload)["data"] for payload in rows.scalars()]


def _get(services: Services, email_id: int) -> Email:
    with services.db.read() as conn:
        email = EmailReads(conn).get(email_id)
    assert email is not None
    return email


def test_claim_leases_and_only_the_owner_records(services: Services) -> None:
    first, second = _queue(services, "ada@example.com", "bob@example.com")
    at = NOW.timestamp() + 1
    with services.db.write() as conn:
        claimed = EmailStore(conn).claim_due("w1", at, at + 60, 10)
    assert [c.email.id for c in claimed] == [first, second]
    assert all(c.raw is None for c in claimed)
    with services.db.write() as conn:  # leased: nobody else gets them before the lease ends
        assert EmailStore(conn).claim_due("w2", at + 1, at + 61, 10) == []
    with services.db.write() as conn:  # the lease passed: another worker takes them over
        taken = EmailStore(conn).claim_due("w2", at + 61, at + 121, 10)
    assert len(taken) == 2
    with services.db.write() as conn:
        ledger = EmailLedger(conn, services.outbox.writer(conn), NOW)
        update = EmailUpdate(first, "sent", "250 ok", 1, None, subject="Hello", raw=b"x", sent=True)
        assert ledger.record_attempts("w1", [Attempt(claimed[0].email, update)]) == set()
    assert _get(services, first).status == "queued"
    assert _payloads(services, "email.sent") == []


def test_outcomes_set_status_timeline_and_messages(services: Services) -> None:
    sent, deferred, bounced = _queue(services, "a@example.com", "b@example.com", "c@example.com")
    at = NOW.timestamp() + 1
    with services.db.write() as conn:
        claimed = {c.email.id: c.email for c in EmailStore(conn).claim_due("w", at, at + 60, 10)}
    attempts = [
        Attempt(
            claimed[sent],
            EmailUpdate(sent, "sent", None, 1, None, raw=b"R", sent=True),
            250,
            "250 2.0.0 queued as 1",
        ),
        Attempt(
            claimed[deferred],
            EmailUpdate(deferred, "deferred", "451 try later", 1, at + 60),
            451,
            "451 try later",
        ),
        Attempt(
            claimed[bounced],
            EmailUpdate(bounced, "bounced", "550 no such user", 1, None),
            550,
            "550 no such user",
        ),
    ]
    with services.db.write() as conn:
        ledger = EmailLedger(conn, services.outbox.writer(conn), NOW + timedelta(seconds=1))
        assert ledger.record_attempts("w", attempts) == {sent, deferred, bounced}
    assert _get(services, sent).status == "sent"
    assert _get(services, sent).sent_at is not None
    with services.db.read() as conn:
        assert EmailReads(conn).raw(sent) == b"R"
    assert _get(services, deferred).status == "deferred"
    assert [e.type for e in _get(services, bounced).events] == ["bounced"]
    assert [p["email"] for p in _payloads(services, "email.sent")] == ["a@example.com"]
    (deferral,) = _payloads(services, "email.deferred")
    assert deferral["reason"] == "451 try later"
    assert deferral["attempts"] == 1
    (bounce,) = _payloads(services, "email.bounced")
    assert bounce["bounce_type"] == "hard"
    assert bounce["tags"] == ["order"]
    with services.db.read() as conn:
        contact = CrmTx(conn, services.outbox.writer(conn), NOW).find_contact("c@example.com")
    assert contact.email_blocked is not None
    assert contact.email_blocked["reason"] == "hard_bounce"
    with services.db.write() as conn:  # the deferred one is due again when its time comes
        again = EmailStore(conn).claim_due("w", at + 61, at + 121, 10)
    assert [c.email.id for c in again] == [deferred]


def test_reports_move_status_forward_only_and_flag_first(services: Services) -> None:
    (email_id,) = _queue(services, "ada@example.com")
    email = _get(services, email_id)
    with services.db.write() as conn:
        crm = CrmTx(conn, services.outbox.writer(conn), NOW)
        ledger = EmailLedger(conn, crm.outbox, NOW, unsubscribe=crm_unsubscriber(crm))
        assert ledger.report(email, "opened", {"proxy": True})["first"] is True
        assert ledger.report(email, "opened")["first"] is False
        assert ledger.report(email, "clicked", {"url": "https://example.com/a"})["first"]
        ledger.report(email, "bounced", {"bounce_type": "hard", "reason": "mailbox full"})
        ledger.report(email, "delivered")
        ledger.report(email, "unsubscribed")
    after = _get(services, email_id)
    assert after.status == "bounced"  # a late "delivered" never hides the bounce
    assert [e.type for e in after.events] == [
        "opened",
        "opened",
        "clicked",
        "bounced",
        "delivered",
        "unsubscribed",
    ]
    opens = _payloads(services, "email.opened")
    assert sorted((o["first"], o["proxy"]) for o in opens) == [(False, False), (True, True)]
    (click,) = _payloads(services, "email.clicked")
    assert click["url"] == "https://example.com/a"
    (unsubscribed,) = _payloads(services, "contact.unsubscribed")
    assert unsubscribed["source"] == "email"
    assert unsubscribed["email_id"] == email_id


def test_complaint_blocks_the_contact_once(services: Services) -> None:
    (email_id,) = _queue(services, "ada@example.com")
    email = _get(services, email_id)
    with services.db.write() as conn:
        ledger = EmailLedger(conn, services.outbox.writer(conn), NOW)
        assert ledger.report(email, "complained")["contact_blocked"] is True
        assert ledger.report(email, "complained")["contact_blocked"] is False
    assert len(_payloads(services, "email.complained")) == 2
