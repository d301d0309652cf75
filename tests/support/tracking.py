"""Sent emails with tracking links, for the tracking route tests: queued, claimed and recorded
as sent through the email store and ledger (the worker's path), with their links stored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from hookhub import ids
from hookhub.core import jsoncodec
from hookhub.crm.operations import CrmTx
from hookhub.email.ledger import Attempt, EmailLedger
from hookhub.email.tracking_processor import TrackingApplier
from hookhub.services import Services, build_tracking_signer
from hookhub.store.email_rows import NewEmail
from hookhub.store.emails import EmailStore, EmailUpdate
from hookhub.store.schema import messages
from hookhub.store.schema_email import campaigns

LINKS = ["https://shop.example.com/orders/1", "https://shop.example.com/help?a=1&b=2"]


def make_campaign(services: Services, name: str = "Winter sale") -> int:
    now = datetime.now(UTC)
    with services.db.write() as conn:
        row = {"name": name, "status": "sending", "created_at": now, "updated_at": now}
        return int(conn.execute(insert(campaigns).returning(campaigns.c.id), row).scalar_one())


def sent_email(
    services: Services,
    address: str = "ada@example.com",
    links: Sequence[str] = LINKS,
    *,
    contact: bool = True,
    campaign_id: int | None = None,
    sent_ago: float = 3600.0,
) -> int:
    """An email to ``address`` recorded as sent ``sent_ago`` seconds ago, holding ``links``."""
    sent_at = datetime.now(UTC) - timedelta(seconds=sent_ago)
    with services.db.write() as conn:
        crm = CrmTx(conn, services.outbox.writer(conn), sent_at)
        contact_id = None
        if contact:
            found = crm.contacts.get_by_email(address)
            contact_id = found.id if found is not None else crm.create_contact(email=address)[0].id
        new = NewEmail(
            message_id=ids.email_message_id("mail.example.com"),
            kind="campaign" if campaign_id else "transactional",
            to_email=address,
            contact_id=contact_id,
            campaign_id=campaign_id,
            sender={"email": "shop@example.com", "name": "Shop"},
            created_at=sent_at,
            content={"subject": "Your order", "html": "<p>Hi</p>"},
            tags=["order"],
        )
        (email_id,) = EmailStore(conn).insert_many([new])
    at = sent_at.timestamp()
    with services.db.write() as conn:
        (claimed,) = [c for c in EmailStore(conn).claim_due("t", at, at + 60, 100)]
        update = EmailUpdate(
            email_id,
            "sent",
            None,
            1,
            None,
            subject="Your order",
            raw=b"R",
            links=list(links),
            sent=True,
        )
        EmailLedger(conn, services.outbox.writer(conn), sent_at).record_attempts(
            "t", [Attempt(claimed.email, update, 250, "250 ok")]
        )
    return email_id


def path(services: Services, kind: str, email_id: int, link: int = 0) -> str:
    token = build_tracking_signer(services).token(kind, email_id, link)  # type: ignore[arg-type]
    return f"/t/{kind}/{token}"


def apply_all(services: Services, applier: TrackingApplier | None = None) -> TrackingApplier:
    """Apply every waiting hit, as the tracking processor does."""
    applier = applier or TrackingApplier(services.db, services.outbox)
    while applier.apply_batch():
        pass
    return applier


def payloads(services: Services, event_type: str) -> list[dict[str, Any]]:
    with services.db.read() as conn:
        rows = conn.execute(
            select(messages.c.payload)
            .where(messages.c.type == event_type)
            .order_by(messages.c.created_at, messages.c.id)
        )
        return [jsoncodec.loads(payload)["data"] for payload in rows.scalars()]
