"""Campaigns: create, edit, send, pause, resume, cancel and test them; each call one transaction.

The rules of the contract live here (which transitions make sense, what must exist and
compile); the SQL lives in :mod:`hookhub.store.campaigns`, ``campaign_emails`` and
``campaign_stats``, and the recipient snapshot is taken by
:class:`hookhub.email.campaign_loop.CampaignLoop` once a campaign is sending. Sending copies
the template's content into the campaign (a template edited later changes nothing under way).

Never raise anything but :mod:`hookhub.errors` for a client's mistake (each is a 4xx), and
never change a campaign without holding its row (``FOR UPDATE`` on PostgreSQL; SQLite's write
transactions are serialized).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from sqlalchemy import Connection

from hookhub.config import Settings
from hookhub.core.contacts import normalize_email
from hookhub.email.service import SendRequest, queue_emails
from hookhub.email.templates import EmailTemplate
from hookhub.errors import Conflict, NotFound, ValidationFailed
from hookhub.outbound.outbox import Outbox
from hookhub.records.campaign import EDITABLE, Campaign
from hookhub.records.email import Email
from hookhub.records.email_templates import StoredTemplate
from hookhub.store.campaign_emails import CampaignEmails, EmailDefaults
from hookhub.store.campaign_stats import campaign_stats
from hookhub.store.campaigns import CampaignStore
from hookhub.store.database import Database
from hookhub.store.email_templates import EmailTemplateStore

Clock = Callable[[], datetime]
CONTENT_FIELDS = ("subject", "html", "text")
CANCELLED_REASON = "campaign cancelled"


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_compiles(subject: str, html: str, text: str | None) -> None:
    """Refuse content that does not compile (``TemplateInvalid``: a 422 naming the field and
    the line), as the worker will compile it."""
    EmailTemplate.compile(subject, html, text)


def default_sender(settings: Settings) -> dict[str, Any]:
    """``HOOKHUB_EMAIL_FROM`` as ``{email, name}``."""
    name, address = parseaddr(settings.email_from)
    return {"email": address or settings.email_from, "name": name or None}


def sender_defaults(campaign: Campaign, settings: Settings) -> EmailDefaults:
    sender = campaign.sender or default_sender(settings)
    domain = str(sender["email"]).rpartition("@")[2] or "localhost"
    return EmailDefaults(sender=sender, domain=domain)


@dataclass(frozen=True, slots=True)
class Content:
    subject: str
    html: str
    text: str | None
    sender: dict[str, Any] | None
    reply_to: str | None
    tags: list[str]


class CampaignService:
    def __init__(
        self, db: Database, outbox: Outbox, settings: Settings, clock: Clock = utcnow
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.settings = settings
        self.clock = clock

    @contextlib.contextmanager
    def _write(self) -> Iterator[tuple[Connection, CampaignStore, datetime]]:
        with self.db.write() as conn:
            yield conn, CampaignStore(conn), self.clock()

    # -- reading ------------------------------------------------------------------------------

    def get(self, campaign_id: int) -> Campaign:
        with self.db.read() as conn:
            store = CampaignStore(conn)
            campaign = _require(store, campaign_id)
            campaign.stats = campaign_stats(store.conn, campaign_id)
        return campaign

    def page(self, *, before_id: int | None, limit: int) -> list[Campaign]:
        with self.db.read() as conn:
            return CampaignStore(conn).page(before_id=before_id, limit=limit)

    # -- editing ------------------------------------------------------------------------------

    def create(self, fields: dict[str, Any]) -> Campaign:
        """``fields``: name, list_ids and template_id or subject + html (+ text), and the
        optional exclude_list_ids, sender, reply_to, params, tags, track_opens, track_clicks."""
        fields = _clean(fields)
        _check_content_choice(fields, creating=True)
        with self._write() as (_conn, store, now):
            self._check_references(store, fields)
            campaign_id = store.create(fields, now)
            campaign = _require(store, campaign_id)
        campaign.stats = _no_stats()
        return campaign

    def update(self, campaign_id: int, changes: dict[str, Any]) -> Campaign:
        """PATCH: only a draft or scheduled campaign; content switches between a template
        and inline as given."""
        changes = _clean(changes)
        _check_content_choice(changes, creating=False)
        with self._write() as (_conn, store, now):
            campaign = _require(store, campaign_id, lock=True)
            if campaign.status not in EDITABLE:
                raise _state(campaign, "edited", "only a draft or scheduled campaign can change")
            if changes.get("template_id") is not None:
                changes.update(subject=None, html=None, text=None)
            elif "subject" in changes or "html" in changes or "text" in changes:
                changes["template_id"] = None
                merged = {k: changes.get(k, getattr(campaign, k)) for k in CONTENT_FIELDS}
                if not merged["subject"] or not merged["html"]:
                    raise ValidationFailed(
                        "Inline content needs both subject and html.",
                        details={"field": "subject" if not merged["subject"] else "html"},
                    )
                if campaign.template_id is not None and "text" not in changes:
                    changes["text"] = None  # the template's copied text is not this content's
                    merged["text"] = None
                check_compiles(merged["subject"], merged["html"], merged["text"])
            self._check_references(store, changes)
            if changes:
                store.update(campaign_id, changes, now)
            if campaign.status == "scheduled" and changes.get("template_id") is not None:
                self._freeze_content(store, _require(store, campaign_id), now)
            updated = _require(store, campaign_id)
            updated.stats = campaign_stats(store.conn, campaign_id)
        return updated

    def delete(self, campaign_id: int) -> None:
        with self._write() as (_conn, store, _now):
            campaign = _require(store, campaign_id, lock=True)
            if campaign.status == "sending":
                raise _state(campaign, "deleted", "pause or cancel it first")
            store.delete(campaign_id)

    # -- sending ------------------------------------------------------------------------------

    def send(self, campaign_id: int, scheduled_at: datetime | None = None) -> Campaign:
        """Start sending now, or at ``scheduled_at`` (a scheduled campaign may be given a new
        time, or be started now)."""
        with self._write() as (_conn, store, now):
            campaign = _require(store, campaign_id, lock=True)
            if campaign.status not in EDITABLE:
                raise _state(campaign, "sent", "it has already started")
            missing = store.missing_lists([*campaign.list_ids, *campaign.exclude_list_ids])
            if missing:
                raise _unknown_lists(missing)
            self._freeze_content(store, campaign, now)
            if scheduled_at is not None and scheduled_at > now:
                store.update(
                    campaign_id,
                    {"status": "scheduled", "scheduled_at": scheduled_at.timestamp()},
                    now,
                )
            else:
                store.update(
                    campaign_id,
                    {
                        "status": "sending",
                        "scheduled_at": None,
                        "started_at": now,
                        "snapshot_limit": store.newest_contact_id(),
                    },
                    now,
                )
            started = _require(store, campaign_id)
            started.stats = campaign_stats(store.conn, campaign_id)
        return started

    def pause(self, campaign_id: int) -> Campaign:
        with self._write() as (conn, store, now):
            campaign = _require(store, campaign_id, lock=True)
            if campaign.status != "sending":
                raise _state(campaign, "paused", "only a sending campaign can pause")
            store.update(campaign_id, {"status": "paused"}, now)
            CampaignEmails(conn).hold_emails(campaign_id, now.timestamp())
            return self._answer(store, campaign_id)

    def resume(self, campaign_id: int) -> Campaign:
        with self._write() as (conn, store, now):
            campaign = _require(store, campaign_id, lock=True)
            if campaign.status != "paused":
                raise _state(campaign, "resumed", "only a paused campaign can resume")
            store.update(campaign_id, {"status": "sending"}, now)
            CampaignEmails(conn).release_emails(campaign_id, now.timestamp())
            return self._answer(store, campaign_id)

    def cancel(self, campaign_id: int) -> Campaign:
        with self._write() as (conn, store, now):
            campaign = _require(store, campaign_id, lock=True)
            if campaign.status not in ("scheduled", "sending", "paused"):
                hint = "delete a draft instead" if campaign.status == "draft" else "it is over"
                raise _state(campaign, "cancelled", hint)
            store.update(
                campaign_id,
                {
                    "status": "cancelled",
                    "finished_at": now,
                    "lease_owner": None,
                    "lease_until": None,
                },
                now,
            )
            CampaignEmails(conn).skip_emails(campaign_id, CANCELLED_REASON, now.timestamp())
            return self._answer(store, campaign_id)

    def test(self, campaign_id: int, addresses: Sequence[str]) -> list[Email]:
        """Queue the campaign's email to ``addresses`` (contacts or not), as ``POST /emails``
        would with its content inline: kind ``test``, not part of the campaign (no
        ``campaign_id``: not in its stats, not its recipients). A contact's attributes
        personalise it; a blocked contact's is ``skipped``."""
        cleaned = list(dict.fromkeys(normalize_email(address) for address in addresses))
        with self._write() as (conn, store, now):
            campaign = _require(store, campaign_id)
            content = self._content(store, campaign)
            request = SendRequest(
                to=[(address, None) for address in cleaned],
                subject=content.subject,
                html=content.html,
                text=content.text,
                params=campaign.params,
                sender=content.sender,
                reply_to=content.reply_to,
                tags=content.tags,
                track_opens=campaign.track_opens,
                track_clicks=campaign.track_clicks,
                kind="test",
            )
            return queue_emails(conn, request, now, email_from=self.settings.email_from)

    # -- helpers ------------------------------------------------------------------------------

    def _answer(self, store: CampaignStore, campaign_id: int) -> Campaign:
        campaign = _require(store, campaign_id)
        campaign.stats = campaign_stats(store.conn, campaign_id)
        return campaign

    def _check_references(self, store: CampaignStore, fields: dict[str, Any]) -> None:
        """Lists and the template exist (422 naming what does not); content compiles."""
        missing = store.missing_lists(
            [*fields.get("list_ids", ()), *fields.get("exclude_list_ids", ())]
        )
        if missing:
            raise _unknown_lists(missing)
        template_id = fields.get("template_id")
        if template_id is not None:
            template = EmailTemplateStore(store.conn).get(template_id)
            if template is None:
                raise ValidationFailed(
                    f"No email template {template_id}.",
                    details={"field": "template_id", "template_id": template_id},
                )
            check_compiles(template.subject, template.html, template.text)
        elif fields.get("subject") is not None and fields.get("html") is not None:
            check_compiles(fields["subject"], fields["html"], fields.get("text"))

    def _content(self, store: CampaignStore, campaign: Campaign) -> Content:
        """What the campaign sends: its own content, else its template's as it is now."""
        template: StoredTemplate | None = None
        if campaign.template_id is not None and campaign.content() is None:
            template = EmailTemplateStore(store.conn).get(campaign.template_id)
            if template is None:
                raise ValidationFailed(
                    f"The campaign's email template {campaign.template_id} no longer exists.",
                    details={"field": "template_id", "template_id": campaign.template_id},
                )
        if template is not None:
            check_compiles(template.subject, template.html, template.text)
            return Content(
                subject=template.subject,
                html=template.html,
                text=template.text,
                sender=campaign.sender or template.sender,
                reply_to=campaign.reply_to or template.reply_to,
                tags=campaign.tags or template.tags,
            )
        assert campaign.subject is not None
        assert campaign.html is not None
        return Content(
            subject=campaign.subject,
            html=campaign.html,
            text=campaign.text,
            sender=campaign.sender,
            reply_to=campaign.reply_to,
            tags=campaign.tags,
        )

    def _freeze_content(self, store: CampaignStore, campaign: Campaign, now: datetime) -> None:
        """Copy the template's content (and sender, reply-to, tags it supplies) into the
        campaign: from now on the campaign sends what it holds."""
        if campaign.template_id is None:
            return
        campaign.subject = campaign.html = campaign.text = None  # take the template's afresh
        content = self._content(store, campaign)
        store.update(
            campaign.id,
            {
                "subject": content.subject,
                "html": content.html,
                "text": content.text,
                "sender": content.sender,
                "reply_to": content.reply_to,
                "tags": content.tags,
            },
            now,
        )


def _require(store: CampaignStore, campaign_id: int, *, lock: bool = False) -> Campaign:
    campaign = store.get(campaign_id, lock=lock)
    if campaign is None:
        raise NotFound(f"No campaign {campaign_id}.", details={"campaign_id": campaign_id})
    return campaign


def _state(campaign: Campaign, verb: str, why: str) -> Conflict:
    return Conflict(
        f"Campaign {campaign.id} is {campaign.status} and cannot be {verb}: {why}.",
        details={"campaign_id": campaign.id, "status": campaign.status},
    )


def _unknown_lists(missing: list[int]) -> ValidationFailed:
    names = ", ".join(str(list_id) for list_id in missing)
    return ValidationFailed(
        f"No list {names}." if len(missing) == 1 else f"No lists {names}.",
        details={"field": "list_ids", "list_ids": missing},
    )


def _no_stats() -> dict[str, int]:
    from hookhub.records.campaign import STAT_NAMES

    return dict.fromkeys(STAT_NAMES, 0)


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    """Addresses normalized (422 naming the field), list ids deduplicated in order."""
    cleaned = dict(fields)
    sender = cleaned.get("sender")
    if sender is not None:
        try:
            address = normalize_email(sender.get("email"))
        except ValidationFailed as exc:
            raise ValidationFailed(exc.message, details={"field": "sender.email"}) from exc
        cleaned["sender"] = {"email": address, "name": sender.get("name") or None}
    if cleaned.get("reply_to") is not None:
        try:
            cleaned["reply_to"] = normalize_email(cleaned["reply_to"])
        except ValidationFailed as exc:
            raise ValidationFailed(exc.message, details={"field": "reply_to"}) from exc
    for name in ("list_ids", "exclude_list_ids", "tags"):
        if cleaned.get(name) is not None:
            cleaned[name] = list(dict.fromkeys(cleaned[name]))
    return cleaned


_NOT_NULL = (
    "name", "subject", "html", "list_ids", "exclude_list_ids", "params", "tags", "track_opens",
    "track_clicks",
)  # fmt: skip


def _check_content_choice(fields: dict[str, Any], *, creating: bool) -> None:
    """A template or inline content (subject and html), never both; no null where a value is
    needed."""
    if not creating:
        for name in _NOT_NULL:
            if name in fields and fields[name] is None:
                raise ValidationFailed(f"{name} cannot be null.", details={"field": name})
        if "template_id" in fields and fields["template_id"] is None and "html" not in fields:
            raise ValidationFailed(
                "Without a template the campaign needs its own subject and html.",
                details={"field": "template_id"},
            )
    template = fields.get("template_id") is not None
    inline = any(fields.get(name) is not None for name in CONTENT_FIELDS)
    if template and inline:
        raise ValidationFailed(
            "Give template_id or inline content (subject, html, text), not both.",
            details={"field": "template_id"},
        )
    if creating and not template:
        for name in ("subject", "html"):
            if not fields.get(name):
                raise ValidationFailed(
                    "A campaign needs template_id, or subject and html.", details={"field": name}
                )
    if creating and not fields.get("list_ids"):
        raise ValidationFailed("list_ids needs at least one list.", details={"field": "list_ids"})
