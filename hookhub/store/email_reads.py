"""Reading emails back: one email, a page of the log, timelines, lookups by Message-ID or
recipient, the bytes sent, and what rendering a batch needs (recipients, template and campaign
sources), one query each.

This module must never write: queueing, claiming and recording are ``emails.py``'s, the
Idempotency-Key answers ``email_idempotency.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, null, select

from hookhub.core import jsoncodec
from hookhub.records.email import Email, EmailEvent
from hookhub.store.email_rows import SUMMARY_COLUMNS, from_json, in_chunks, row_to_email
from hookhub.store.schema import contacts
from hookhub.store.schema_email import campaigns, email_events, email_templates, emails

LISTING_COLUMNS = [
    *(c for c in SUMMARY_COLUMNS if c.name != "content"),
    null().label("content"),
]


class EmailReads:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- the email log ------------------------------------------------------------------------

    def get(self, email_id: int, *, with_events: bool = True) -> Email | None:
        row = self.conn.execute(select(*SUMMARY_COLUMNS).where(emails.c.id == email_id)).first()
        if row is None:
            return None
        email = row_to_email(row)
        if with_events:
            email.events = self.events_of([email.id]).get(email.id, [])
        return email

    def get_many(self, email_ids: Sequence[int]) -> list[Email]:
        """Emails by id, in the order given (without their timelines)."""
        found: dict[int, Email] = {}
        for chunk in in_chunks(list(email_ids)):
            query = select(*SUMMARY_COLUMNS).where(emails.c.id.in_(chunk))
            found.update((row.id, row_to_email(row)) for row in self.conn.execute(query))
        return [found[i] for i in email_ids if i in found]

    def raw(self, email_id: int) -> bytes | None:
        return self.conn.execute(select(emails.c.raw).where(emails.c.id == email_id)).scalar()

    def by_message_id(self, message_id: str) -> Email | None:
        query = select(*SUMMARY_COLUMNS).where(emails.c.message_id == message_id.strip("<> "))
        row = self.conn.execute(query).first()
        return row_to_email(row) if row else None

    def latest_to(self, address: str) -> Email | None:
        """The newest email sent to ``address`` (providers' events without a Message-ID)."""
        query = (
            select(*SUMMARY_COLUMNS)
            .where(emails.c.to_email == address)
            .order_by(emails.c.id.desc())
            .limit(1)
        )
        row = self.conn.execute(query).first()
        return row_to_email(row) if row else None

    def page(
        self,
        *,
        before_id: int | None,
        limit: int,
        contact_id: int | None = None,
        campaign_id: int | None = None,
        automation_id: int | None = None,
        status: str | None = None,
        tag: str | None = None,
        kind: str | None = None,
    ) -> list[Email]:
        """Newest first; without the inline content (a page of listings never reads every
        email's HTML: ``get`` has it)."""
        query = select(*LISTING_COLUMNS).order_by(emails.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(emails.c.id < before_id)
        for column, value in (
            (emails.c.contact_id, contact_id),
            (emails.c.campaign_id, campaign_id),
            (emails.c.automation_id, automation_id),
            (emails.c.status, status),
            (emails.c.kind, kind),
        ):
            if value is not None:
                query = query.where(column == value)
        if tag is not None:
            # tags are a JSON list of strings: the quoted tag is in the text exactly then
            query = query.where(emails.c.tags.contains(jsoncodec.dumps(tag).decode()))
        return [row_to_email(row) for row in self.conn.execute(query)]

    def events_of(self, email_ids: Sequence[int]) -> dict[int, list[EmailEvent]]:
        found: dict[int, list[EmailEvent]] = {}
        for chunk in in_chunks(list(email_ids)):
            query = (
                select(email_events)
                .where(email_events.c.email_id.in_(chunk))
                .order_by(email_events.c.id)
            )
            for row in self.conn.execute(query):
                found.setdefault(row.email_id, []).append(
                    EmailEvent(row.type, row.at, from_json(row.detail, None))
                )
        return found

    # -- what rendering a batch needs, one query each -----------------------------------------

    def recipients(self, contact_ids: Iterable[int]) -> dict[int, Recipient]:
        """The contacts of a batch as they are now (attributes, unsubscribed, blocked)."""
        found: dict[int, Recipient] = {}
        columns = (
            contacts.c.id,
            contacts.c.email,
            contacts.c.attributes,
            contacts.c.unsubscribed,
            contacts.c.email_blocked,
        )
        for chunk in in_chunks(sorted(set(contact_ids))):
            for row in self.conn.execute(select(*columns).where(contacts.c.id.in_(chunk))):
                found[row.id] = Recipient(
                    row.id,
                    row.email,
                    from_json(row.attributes, {}),
                    bool(row.unsubscribed),
                    from_json(row.email_blocked, None),
                )
        return found

    def template_versions(self, template_ids: Iterable[int]) -> dict[int, int]:
        """The current version of each template that still exists."""
        wanted = sorted(set(template_ids))
        if not wanted:
            return {}
        query = select(email_templates.c.id, email_templates.c.version).where(
            email_templates.c.id.in_(wanted)
        )
        return {row.id: row.version for row in self.conn.execute(query)}

    def template_defaults(self, template_id: int) -> dict[str, Any] | None:
        """A template's sender, reply_to and tags (what an email of it defaults to); None
        when there is no such template."""
        t = email_templates.c
        query = select(t.sender, t.reply_to, t.tags).where(t.id == template_id)
        row = self.conn.execute(query).first()
        if row is None:
            return None
        return {
            "sender": from_json(row.sender, None),
            "reply_to": row.reply_to,
            "tags": from_json(row.tags, []),
        }

    def template_sources(self, template_ids: Iterable[int]) -> dict[int, Content]:
        wanted = sorted(set(template_ids))
        if not wanted:
            return {}
        t = email_templates.c
        query = select(t.id, t.version, t.subject, t.html, t.text).where(t.id.in_(wanted))
        return {
            row.id: Content(row.subject, row.html, row.text, row.version)
            for row in self.conn.execute(query)
        }

    def campaign_contents(self, campaign_ids: Iterable[int]) -> dict[int, Content]:
        """Campaigns' content (copied when sending started; it no longer changes)."""
        wanted = sorted(set(campaign_ids))
        if not wanted:
            return {}
        c = campaigns.c
        query = select(c.id, c.subject, c.html, c.text, c.params).where(c.id.in_(wanted))
        return {
            row.id: Content(
                row.subject or "", row.html or "", row.text, 0, from_json(row.params, {})
            )
            for row in self.conn.execute(query)
        }


@dataclass(frozen=True, slots=True)
class Recipient:
    """A contact as rendering and skipping need it."""

    id: int
    email: str
    attributes: dict[str, Any]
    unsubscribed: bool
    email_blocked: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Content:
    """A template's or campaign's sources (``version`` keys the compiled cache)."""

    subject: str
    html: str
    text: str | None
    version: int
    params: dict[str, Any] = field(default_factory=dict)
    """A campaign's params: every email's own params are laid over them."""
