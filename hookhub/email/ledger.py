"""What happened to emails, applied in the caller's transaction: status, timeline, outbox.

Every change to an email after it is queued goes through :class:`EmailLedger`: the worker's
attempt outcomes, bounces and complaints (``POST /bounces``, providers' event webhooks),
tracking hits (opens, clicks, unsubscribes). It keeps the email's status and timeline
(``email_events``), emits the ``email.*`` message of the catalog through the outbox, blocks the
contact on a hard bounce or a complaint, and unsubscribes it from an unsubscribe link.

Status moves only forward: a report never turns a ``bounced`` email back into ``delivered``,
and a late ``sent`` never hides a bounce already reported. Opens and clicks change no status.
It must never commit, and never emit a message for a change it did not store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection

from hookhub.core.jsoncodec import isoformat
from hookhub.core.origin import Origin
from hookhub.crm.operations import CrmTx
from hookhub.outbound.outbox import OutboxMessage, OutboxWriter, build_message
from hookhub.records.email import Email
from hookhub.store.campaigns import CampaignStore
from hookhub.store.contacts import ContactStore
from hookhub.store.emails import EmailStore, EmailUpdate

Report = Literal["delivered", "bounced", "complained", "opened", "clicked", "unsubscribed"]
REPORTS: tuple[str, ...] = (
    "delivered",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "unsubscribed",
)
_FINAL_FAILURES = ("bounced", "failed", "skipped")
Unsubscriber = Callable[[int, dict[str, Any]], bool]
"""Unsubscribes a contact (by id), saying where from; whether it was subscribed."""


def crm_unsubscriber(crm: CrmTx) -> Unsubscriber:
    """Unsubscribe through the contacts core, so that ``contact.updated`` and
    ``contact.unsubscribed`` (naming the email) go out as for any other cause."""

    def unsubscribe(contact_id: int, source: dict[str, Any]) -> bool:
        contact = crm.contacts.get(contact_id, lock=True)
        if contact is None or contact.unsubscribed:
            return False
        crm.update_contact(contact, unsubscribed=True, unsubscribe_source=source)
        return True

    return unsubscribe


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt's outcome as the worker decided it, with what the server said."""

    email: Email
    update: EmailUpdate
    code: int | None = None
    reply: str | None = None


class EmailLedger:
    def __init__(
        self,
        conn: Connection,
        outbox: OutboxWriter,
        now: datetime,
        *,
        unsubscribe: Unsubscriber | None = None,
    ) -> None:
        """``unsubscribe(contact_id, source)`` unsubscribes a contact through the contacts
        core (so that ``contact.updated`` and ``contact.unsubscribed`` go out as from any
        other cause); without it, unsubscribe reports are refused."""
        self.conn = conn
        self.outbox = outbox
        self.now = now
        self.at = now.timestamp()
        self.store = EmailStore(conn)
        self.contacts = ContactStore(conn)
        self._unsubscribe = unsubscribe
        self._pending: list[OutboxMessage] | None = None
        self._campaigns: dict[int, Origin] = {}

    # -- the worker's outcomes ----------------------------------------------------------------

    def record_attempts(self, owner: str, attempts: Sequence[Attempt]) -> set[int]:
        """Store outcomes of emails ``owner`` leases, with their events and messages; the ids
        recorded (those whose lease had passed to another worker are left alone)."""
        recorded = self.store.record(owner, [a.update for a in attempts], self.at)
        events: list[tuple[int, str, float, dict[str, Any] | None]] = []
        self._pending = []  # the batch's messages, written (and fanned out) together
        for attempt in attempts:
            email, update = attempt.email, attempt.update
            if email.id not in recorded:
                continue
            email.status, email.status_reason = update.status, update.status_reason
            if update.subject is not None:
                email.subject = update.subject
            detail = _server_detail(attempt)
            if update.status == "sent":
                events.append((email.id, "sent", self.at, detail))
                self._emit("email.sent", email, {})
            elif update.status == "deferred" or (
                update.status == "queued" and update.attempt_count > 0
            ):
                next_at = update.next_attempt_at
                extra = {
                    "reason": update.status_reason or "",
                    "attempts": update.attempt_count,
                    "next_attempt_at": isoformat(datetime.fromtimestamp(next_at, UTC))
                    if next_at is not None
                    else None,
                }
                events.append((email.id, "deferred", self.at, {**detail, **extra}))
                self._emit("email.deferred", email, extra)
            elif update.status == "bounced":
                reason = update.status_reason or ""
                events.append((email.id, "bounced", self.at, {**detail, "bounce_type": "hard"}))
                self._emit("email.bounced", email, {"bounce_type": "hard", "reason": reason})
                self._block(email, "hard_bounce")
            elif update.status == "failed":
                events.append((email.id, "failed", self.at, detail))
                self._emit("email.failed", email, {"reason": update.status_reason or ""})
            elif update.status == "skipped":
                events.append((email.id, "skipped", self.at, {"reason": update.status_reason}))
        pending, self._pending = self._pending, None
        self.outbox.write(pending or [])
        self.store.add_events(events)
        return recorded

    def skip(self, emails: Sequence[Email], reason: str) -> None:
        """Record emails that will never be sent (blocked or unsubscribed recipient), as
        they are queued: their status says why, and no worker picks them up."""
        for email in emails:
            self.store.update_status(email.id, "skipped", reason, self.at)
            email.status, email.status_reason = "skipped", reason
        self.store.add_events((e.id, "skipped", self.at, {"reason": reason}) for e in emails)

    # -- reports of what happened after sending -----------------------------------------------

    def report(
        self, email: Email, kind: str, detail: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Apply one report (``REPORTS``) to ``email``; what was done, for the caller's log.

        ``detail``: for ``bounced`` ``{"bounce_type": "hard" | "soft", "reason"}``; for
        ``clicked`` ``{"url"}``; for ``opened`` and ``clicked`` ``{"proxy": bool}``;
        anything else given is kept on the timeline.
        """
        if kind not in REPORTS:
            raise ValueError(f"unknown email report {kind!r}")
        detail = dict(detail or {})
        done: dict[str, Any] = {"email_id": email.id, "report": kind}
        if kind == "delivered":
            if email.status not in _FINAL_FAILURES and email.status != "delivered":
                self._set_status(email, "delivered", None)
            self._emit("email.delivered", email, {})
        elif kind == "bounced":
            hard = detail.get("bounce_type", "hard") != "soft"
            reason = str(detail.get("reason") or ("hard bounce" if hard else "soft bounce"))
            detail["bounce_type"], detail["reason"] = ("hard" if hard else "soft"), reason
            if hard:
                self._set_status(email, "bounced", reason)
                done["contact_blocked"] = self._block(email, "hard_bounce")
            self._emit(
                "email.bounced", email, {"bounce_type": detail["bounce_type"], "reason": reason}
            )
        elif kind == "complained":
            done["contact_blocked"] = self._block(email, "complaint")
            self._emit("email.complained", email, {})
        elif kind in ("opened", "clicked"):
            first = self.store.mark_first(email.id, f"{kind}_at", self.at)
            if kind == "clicked" and email.opened_at is None:
                self.store.mark_first(email.id, "opened_at", self.at)  # a click is an open
            detail["first"], detail["proxy"] = first, bool(detail.get("proxy", False))
            extra = {"first": first, "proxy": detail["proxy"]}
            if kind == "clicked":
                extra["url"] = str(detail.get("url", ""))
            self._emit(f"email.{kind}", email, extra)
            done["first"] = first
        elif kind == "unsubscribed":
            done["unsubscribed"] = self._unsubscribe_contact(email, detail)
        self.store.add_events([(email.id, kind, self.at, detail or None)])
        return done

    # -- helpers ------------------------------------------------------------------------------

    def _set_status(self, email: Email, status: str, reason: str | None) -> None:
        self.store.update_status(email.id, status, reason, self.at)
        email.status, email.status_reason = status, reason

    def _block(self, email: Email, reason: str) -> bool:
        """Block the email's contact (unless it is already blocked); whether it was."""
        if email.contact_id is None:
            return False
        contact = self.contacts.get(email.contact_id)
        if contact is None or contact.email_blocked is not None:
            return False
        blocked = {"reason": reason, "at": isoformat(self.now)}
        self.contacts.set_email_blocked(contact.id, blocked)
        return True

    def _unsubscribe_contact(self, email: Email, detail: dict[str, Any]) -> bool:
        if email.contact_id is None or self._unsubscribe is None:
            return False
        source = {
            "source": str(detail.get("source", "email")),
            "email_id": email.id,
            "campaign_id": email.campaign_id,
            "automation_id": email.automation_id,
        }
        return bool(self._unsubscribe(email.contact_id, source))

    def _emit(self, event_type: str, email: Email, extra: dict[str, Any]) -> None:
        data = {**email.event_data(), **extra}
        # A campaign's emails' messages are the campaign's; others have the writer's origin.
        origin = None if email.campaign_id is None else self._campaign_origin(email.campaign_id)
        message = build_message(event_type, data, self.now, origin=origin)
        if self._pending is not None:  # inside record_attempts: one write for the batch
            self._pending.append(message)
        else:
            self.outbox.write([message])

    def _campaign_origin(self, campaign_id: int) -> Origin:
        origin = self._campaigns.get(campaign_id)
        if origin is None:
            campaign = CampaignStore(self.conn).get(campaign_id)
            name = None if campaign is None else campaign.name
            origin = self._campaigns[campaign_id] = Origin("campaign", campaign_id, name)
        return origin


def _server_detail(attempt: Attempt) -> dict[str, Any]:
    detail: dict[str, Any] = {"attempt": attempt.update.attempt_count}
    if attempt.code is not None:
        detail["code"] = attempt.code
    if attempt.reply:
        detail["reply"] = attempt.reply[:500]
    return detail
