"""Transactional email: queueing sends, reading emails back, reporting bounces.

:func:`queue_emails` queues one :class:`SendRequest` in the caller's transaction (the API
call's, an inbound rule's, the CLI's): every recipient checked first (a bad address is a 422
naming it, an unknown template a 422), then one ``emails`` row per recipient: ``queued``, or
``skipped`` with the reason when the recipient is a blocked contact. Recipients that are not
contacts are sent to as they are (no contact is created). :class:`EmailService` wraps it with
its own transaction and ``Idempotency-Key`` handling for the API, and reads emails.

What this module must never do: send anything (the worker does), or queue half of a request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from hookhub import ids
from hookhub.config import Settings
from hookhub.core import jsoncodec
from hookhub.core.contacts import normalize_email
from hookhub.email.compose import parse_sender, skip_reason
from hookhub.email.headers import custom_headers
from hookhub.email.ledger import EmailLedger, crm_unsubscriber
from hookhub.email.templates import EmailTemplate
from hookhub.errors import Conflict, NotFound, ValidationFailed
from hookhub.outbound.outbox import Outbox
from hookhub.records.email import Email
from hookhub.store.contacts import ContactStore
from hookhub.store.database import Database
from hookhub.store.email_idempotency import IDEMPOTENCY_WINDOW, EmailIdempotency
from hookhub.store.email_reads import EmailReads, Recipient
from hookhub.store.email_rows import NewEmail
from hookhub.store.emails import EmailStore

MAX_RECIPIENTS = 1000


@dataclass(slots=True)
class SendRequest:
    """One transactional send: recipients and what to send them (a template or content)."""

    to: list[tuple[str, str | None]]
    template_id: int | None = None
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    sender: dict[str, Any] | None = None
    reply_to: str | None = None
    tags: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    scheduled_at: datetime | None = None
    track_opens: bool = True
    track_clicks: bool = True
    kind: str = "transactional"
    automation_id: int | None = None

    def fingerprint(self) -> str:
        """The same request gives the same hash (an Idempotency-Key's body check)."""
        body = asdict(self)
        body["scheduled_at"] = self.scheduled_at.isoformat() if self.scheduled_at else None
        return hashlib.sha256(jsoncodec.dumps(body)).hexdigest()


def queue_emails(
    conn: Connection, request: SendRequest, now: datetime, *, email_from: str
) -> list[Email]:
    """Queue ``request`` in the transaction of ``conn``; the emails, one per recipient.
    ``email_from`` (HOOKHUB_EMAIL_FROM) is the sender when neither the request nor the
    template names one."""
    if not request.to:
        raise ValidationFailed("to needs at least one recipient.", details={"field": "to"})
    if len(request.to) > MAX_RECIPIENTS:
        raise ValidationFailed(
            f"At most {MAX_RECIPIENTS} recipients per call.", details={"field": "to"}
        )
    addresses = [_recipient(address, index) for index, (address, _) in enumerate(request.to)]
    content, template = _content(conn, request)
    sender = request.sender or (template or {}).get("sender") or parse_sender(email_from)
    _check_address(str(sender.get("email") or ""), "sender.email")
    reply_to = request.reply_to or (template or {}).get("reply_to")
    if reply_to:
        reply_to = _check_address(reply_to, "reply_to")
    try:
        custom_headers(request.headers)
    except ValidationFailed as exc:
        exc.details = {"field": "headers", **(exc.details or {})}
        raise
    tags = request.tags or (template or {}).get("tags") or []
    found = ContactStore(conn).get_many_by_email(addresses)
    domain = str(sender["email"]).rpartition("@")[2] or "localhost"
    due = request.scheduled_at.timestamp() if request.scheduled_at else None
    store = EmailStore(conn)
    new: list[NewEmail] = []
    for address, (_, name) in zip(addresses, request.to, strict=True):
        contact = found.get(address)
        status, reason = "queued", None
        if contact is not None:
            recipient = Recipient(
                contact.id, contact.email, {}, contact.unsubscribed, contact.email_blocked
            )
            reason = skip_reason(request.kind, recipient)
            status = "skipped" if reason else "queued"
        new.append(
            NewEmail(
                message_id=ids.email_message_id(domain, now.timestamp()),
                kind=request.kind,
                to_email=address,
                to_name=name,
                contact_id=contact.id if contact else None,
                sender=sender,
                reply_to=reply_to,
                template_id=request.template_id,
                automation_id=request.automation_id,
                tags=list(tags),
                params=request.params,
                content=content,
                headers=request.headers,
                track_opens=request.track_opens,
                track_clicks=request.track_clicks,
                created_at=now,
                due_at=due,
                status=status,
                status_reason=reason,
            )
        )
    email_ids = store.insert_many(new)
    at = now.timestamp()
    store.add_events(
        (eid, "skipped" if n.status == "skipped" else "queued", at, _event_detail(n))
        for eid, n in zip(email_ids, new, strict=True)
    )
    return EmailReads(conn).get_many(email_ids)


def _event_detail(new: NewEmail) -> dict[str, Any] | None:
    return {"reason": new.status_reason} if new.status_reason else None


def _recipient(address: Any, index: int) -> str:
    try:
        return _check_address(normalize_email(address), f"to[{index}].email")
    except ValidationFailed as exc:
        raise ValidationFailed(
            f"to[{index}]: {exc.message}", details={"field": f"to[{index}].email"}
        ) from exc


def _check_address(address: str, where: str) -> str:
    from hookhub.email.headers import ascii_address

    try:
        ascii_address(address)
    except ValidationFailed as exc:
        raise ValidationFailed(f"{where}: {exc.message}", details={"field": where}) from exc
    return address


def _content(
    conn: Connection, request: SendRequest
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(inline content, the template's defaults): exactly one of a template or content."""
    if request.template_id is not None:
        if request.subject is not None or request.html is not None or request.text is not None:
            raise ValidationFailed(
                "Give template_id or subject + html, not both.", details={"field": "template_id"}
            )
        defaults = EmailReads(conn).template_defaults(request.template_id)
        if defaults is None:
            raise ValidationFailed(
                f"No email template {request.template_id}.", details={"field": "template_id"}
            )
        return None, defaults
    if not request.subject or request.html is None:
        raise ValidationFailed(
            "Give template_id, or subject and html.", details={"field": "subject"}
        )
    EmailTemplate.compile(request.subject, request.html, request.text)  # 422 naming the line
    content: dict[str, Any] = {"subject": request.subject, "html": request.html}
    if request.text is not None:
        content["text"] = request.text
    return content, None


@dataclass(frozen=True, slots=True)
class Sent:
    """The answer of a send: the emails (``data``), and whether it is a replayed answer."""

    data: list[dict[str, Any]]
    replayed: bool = False


class EmailService:
    def __init__(self, db: Database, outbox: Outbox, settings: Settings) -> None:
        self.db = db
        self.outbox = outbox
        self.settings = settings

    def send(
        self,
        request: SendRequest,
        *,
        idempotency: tuple[str, str] | None = None,
        now: datetime | None = None,
    ) -> Sent:
        """Queue ``request`` in one transaction; with ``(scope, key)`` the same key within 24 h
        answers the first answer again (409 when the body differs)."""
        now = now or datetime.now(UTC)
        fingerprint = request.fingerprint() if idempotency else ""
        with self.db.write() as conn:
            answers = EmailIdempotency(conn)
            if idempotency is not None:
                replay = self._replay(answers, idempotency, fingerprint, now)
                if replay is not None:
                    return replay
            emails = queue_emails(conn, request, now, email_from=self.settings.email_from)
            data = [email.to_summary() for email in emails]
            if idempotency is not None:
                stored = answers.remember_answer(
                    *idempotency, fingerprint, jsoncodec.dumps(data).decode(), now.timestamp()
                )
                if not stored:  # another request with this key committed first
                    raise Conflict(
                        "A request with this Idempotency-Key is being handled; retry it.",
                        details={"idempotency_key": idempotency[1]},
                    )
        return Sent(data)

    @staticmethod
    def _replay(
        answers: EmailIdempotency, idempotency: tuple[str, str], fingerprint: str, now: datetime
    ) -> Sent | None:
        found = answers.idempotent_answer(*idempotency, now.timestamp() - IDEMPOTENCY_WINDOW)
        if found is None:
            return None
        stored_hash, answer = found
        if stored_hash != fingerprint:
            raise Conflict(
                "This Idempotency-Key was used with a different body in the last 24 hours.",
                details={"idempotency_key": idempotency[1]},
            )
        return Sent(jsoncodec.loads(answer), replayed=True)

    # -- reading ------------------------------------------------------------------------------

    def get(self, email_id: int) -> Email:
        with self.db.read() as conn:
            email = EmailReads(conn).get(email_id)
        if email is None:
            raise NotFound(f"No email {email_id}.", details={"email_id": email_id})
        return email

    def raw(self, email_id: int) -> bytes:
        """The exact bytes sent (404 until the email has been rendered by a worker)."""
        with self.db.read() as conn:
            store = EmailReads(conn)
            email = store.get(email_id, with_events=False)
            raw = store.raw(email_id) if email is not None else None
        if email is None:
            raise NotFound(f"No email {email_id}.", details={"email_id": email_id})
        if raw is None:
            raise NotFound(
                f"Email {email_id} has not been rendered yet ({email.status}).",
                details={"email_id": email_id, "status": email.status},
            )
        return bytes(raw)

    def page(self, *, before_id: int | None, limit: int, **filters: Any) -> list[Email]:
        with self.db.read() as conn:
            return EmailReads(conn).page(before_id=before_id, limit=limit, **filters)

    # -- bounces ------------------------------------------------------------------------------

    def bounce(
        self,
        *,
        address: str | None,
        message_id: str | None,
        kind: str,
        reason: str | None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """``POST /bounces``: a hard/soft bounce or a complaint, by Message-ID or address."""
        from hookhub.crm.operations import CrmTx

        now = now or datetime.now(UTC)
        if (address is None) == (message_id is None):
            raise ValidationFailed("Give email or message_id.", details={"field": "email"})
        with self.db.write() as conn:
            store = EmailReads(conn)
            crm = CrmTx(conn, self.outbox.writer(conn), now)
            ledger = EmailLedger(conn, crm.outbox, now, unsubscribe=crm_unsubscriber(crm))
            if message_id is not None:
                email = store.by_message_id(message_id)
                if email is None:
                    raise NotFound(
                        f"No email has Message-ID {message_id!r}.",
                        details={"message_id": message_id},
                    )
            else:
                assert address is not None
                address = normalize_email(address)
                email = store.latest_to(address)
            done: dict[str, Any] = {"type": kind, "email_id": email.id if email else None}
            if email is not None:
                detail: dict[str, Any] = {"source": "api"}
                if kind == "complaint":
                    done.update(ledger.report(email, "complained", detail))
                else:
                    detail["bounce_type"] = kind
                    if reason:
                        detail["reason"] = reason
                    done.update(ledger.report(email, "bounced", detail))
            blocked = done.get("contact_blocked", False)
            if kind in ("hard", "complaint") and address is not None and not blocked:
                done["contact_blocked"] = _block_by_address(conn, address, kind, now)
        return done


def _block_by_address(conn: Connection, address: str, kind: str, now: datetime) -> bool:
    """A hard bounce or complaint for an address: block its contact, if it has one."""
    contacts = ContactStore(conn)
    contact = contacts.get_by_email(address)
    if contact is None or contact.email_blocked is not None:
        return False
    reason = "hard_bounce" if kind == "hard" else "complaint"
    contacts.set_email_blocked(contact.id, {"reason": reason, "at": jsoncodec.isoformat(now)})
    return True


def summaries(emails: Sequence[Email]) -> list[dict[str, Any]]:
    return [email.to_summary() for email in emails]
