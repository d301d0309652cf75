"""Turns a batch of claimed emails into the exact bytes to send (or the reason not to).

An email's content is, in this order: its inline ``content`` ({subject, html, text?}), its
template (compiled once per process and template version), or its campaign's content (compiled
once per campaign). It is rendered with the contact as it is now (its attributes; only
``{email}`` when the recipient is not a contact), the email's params and its
``unsubscribe_url``; links are tracked and the open pixel added when the email says so;
campaign and automation emails carry ``List-Unsubscribe`` (RFC 8058 one-click); DKIM signs
when configured. The Message-ID is the row's, the Date the first render's: an email rendered
once is sent again byte for byte (``ClaimedEmail.raw``).

A batch costs a fixed number of queries (its contacts, the versions of its templates, and the
sources of templates or campaigns not yet compiled), whatever its size. A render that fails
fails that email, with the reason, never the batch.

This module must never write to the database, send anything, or raise for one email's fault.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from hookhub.core.tracking import TrackingSigner
from hookhub.email.dkim import DkimSigner
from hookhub.email.links import track_links
from hookhub.email.mime import Address, OutgoingMessage, build_message
from hookhub.email.templates import EmailTemplate
from hookhub.email.transport import Envelope
from hookhub.errors import HookhubError
from hookhub.records.email import Email
from hookhub.store.email_reads import Content, EmailReads, Recipient
from hookhub.store.emails import ClaimedEmail

log = logging.getLogger("hookhub.email")

UNSUBSCRIBE_KINDS = frozenset({"campaign", "automation"})
"""Kinds of email an unsubscribed contact no longer gets, and that carry List-Unsubscribe."""
_CACHED = 256
_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass(slots=True)
class Prepared:
    """One claimed email, ready: ``data`` to send, or why not (``skip`` / ``failure``)."""

    claimed: ClaimedEmail
    data: bytes | None = None
    rendered: bool = False
    """``data`` was rendered now (first attempt): store it, its subject and links."""
    subject: str | None = None
    links: list[str] | None = None
    skip: str | None = None
    failure: str | None = None

    @property
    def email(self) -> Email:
        return self.claimed.email

    def envelope(self) -> Envelope:
        assert self.data is not None
        return Envelope(
            sender=str(self.email.sender.get("email") or ""),
            recipient=self.email.to_email,
            data=self.data,
            ref=self.email.id,
        )


def parse_sender(value: str) -> dict[str, Any]:
    """``Name <addr>`` (or a bare address) as ``{email, name}``."""
    name, address = parseaddr(value)
    return {"email": address or value.strip(), "name": name or None}


def skip_reason(kind: str, recipient: Recipient | None) -> str | None:
    """Why an email of ``kind`` must not go to its contact now: blocked, or unsubscribed
    (campaign and automation email only); None when it may."""
    if recipient is None:
        return None
    if recipient.email_blocked is not None:
        return f"blocked: {recipient.email_blocked.get('reason', 'manual')}"
    if recipient.unsubscribed and kind in UNSUBSCRIBE_KINDS:
        return "unsubscribed"
    return None


class Composer:
    """Renders claimed emails; keeps compiled templates between batches (thread-safe caches)."""

    def __init__(
        self,
        *,
        base_url: str,
        signer: TrackingSigner | None,
        dkim: DkimSigner | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self.dkim = dkim
        # Compiled content by ("template", id, version), ("campaign", id) or ("inline", ...):
        # prepare() runs in one thread at a time, so a plain LRU does.
        self._cache: OrderedDict[tuple[Any, ...], EmailTemplate] = OrderedDict()
        self._campaign_params: dict[int, dict[str, Any]] = {}

    def prepare(
        self, store: EmailReads, claimed: Sequence[ClaimedEmail], now: datetime
    ) -> list[Prepared]:
        """What to do with each claimed email, in order."""
        recipients = store.recipients(
            c.email.contact_id for c in claimed if c.email.contact_id is not None
        )
        fresh = [c for c in claimed if c.raw is None]
        compiled = self._compile_sources(store, fresh)
        out: list[Prepared] = []
        for item in claimed:
            email = item.email
            recipient = recipients.get(email.contact_id) if email.contact_id else None
            prepared = Prepared(item)
            prepared.skip = skip_reason(email.kind, recipient)
            if prepared.skip is None:
                if item.raw is not None:
                    prepared.data = item.raw
                else:
                    self._render(prepared, compiled, recipient, now)
            out.append(prepared)
        return out

    # -- content ------------------------------------------------------------------------------

    def _compile_sources(
        self, store: EmailReads, fresh: Sequence[ClaimedEmail]
    ) -> dict[tuple[str, int], EmailTemplate | str]:
        """Compiled content per ("template", id) / ("campaign", id): a template or the reason
        it cannot be had. Inline content is compiled (and cached) per email."""
        found: dict[tuple[str, int], EmailTemplate | str] = {}
        template_ids = {
            c.email.template_id for c in fresh if c.email.content is None and c.email.template_id
        }
        campaign_ids = {
            c.email.campaign_id
            for c in fresh
            if c.email.content is None and not c.email.template_id and c.email.campaign_id
        }
        if template_ids:
            versions = store.template_versions(template_ids)
            missing = [
                tid
                for tid in template_ids
                if tid in versions and ("template", tid, versions[tid]) not in self._cache
            ]
            sources = store.template_sources(missing) if missing else {}
            for tid in template_ids:
                if tid not in versions:
                    found[("template", tid)] = f"template {tid} no longer exists"
                    continue
                key = ("template", tid, versions[tid])
                cached = self._cached(key)
                if cached is not None:
                    found[("template", tid)] = cached
                elif (source := sources.get(tid)) is not None:
                    found[("template", tid)] = self._remember(key, _compile(source))
                else:
                    found[("template", tid)] = f"template {tid} changed while sending"
        if campaign_ids:
            missing_campaigns = [
                cid for cid in campaign_ids if ("campaign", cid) not in self._cache
            ]
            contents = store.campaign_contents(missing_campaigns) if missing_campaigns else {}
            for cid in campaign_ids:
                cached = self._cached(("campaign", cid))
                if cached is not None:
                    found[("campaign", cid)] = cached
                elif (content := contents.get(cid)) is not None:
                    found[("campaign", cid)] = self._remember(("campaign", cid), _compile(content))
                    self._campaign_params[cid] = content.params
                else:
                    found[("campaign", cid)] = f"campaign {cid} no longer exists"
        return found

    def _cached(self, key: tuple[Any, ...]) -> EmailTemplate | None:
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
        return found

    def _remember(self, key: tuple[Any, ...], compiled: EmailTemplate | str) -> EmailTemplate | str:
        if isinstance(compiled, EmailTemplate):
            self._cache[key] = compiled
            while len(self._cache) > _CACHED:
                self._cache.popitem(last=False)
        return compiled

    def _content_of(
        self, email: Email, compiled: dict[tuple[str, int], EmailTemplate | str]
    ) -> EmailTemplate | str:
        if email.content is not None:
            content = email.content
            source = Content(
                str(content.get("subject") or ""),
                str(content.get("html") or ""),
                content.get("text"),
                0,
            )
            key = ("inline", source.subject, source.html, source.text)
            return self._cached(key) or self._remember(key, _compile(source))
        if email.template_id:
            return compiled.get(("template", email.template_id), "no template")
        if email.campaign_id:
            return compiled.get(("campaign", email.campaign_id), "no campaign content")
        return "the email has no content, template or campaign"

    # -- rendering ----------------------------------------------------------------------------

    def unsubscribe_url(self, email_id: int) -> str:
        if self.signer is None:
            return f"{self.base_url}/t/u/"
        return f"{self.base_url}/t/u/{self.signer.token('u', email_id)}"

    def _render(
        self,
        prepared: Prepared,
        compiled: dict[tuple[str, int], EmailTemplate | str],
        recipient: Recipient | None,
        now: datetime,
    ) -> None:
        email = prepared.email
        template = self._content_of(email, compiled)
        if isinstance(template, str):
            prepared.failure = template
            return
        contact: dict[str, Any]
        if recipient is not None:
            contact = {
                "id": recipient.id,
                "email": recipient.email,
                "attributes": recipient.attributes,
            }
        else:
            contact = {"email": email.to_email}
        unsubscribe = self.unsubscribe_url(email.id)
        params = email.params
        if email.campaign_id and email.content is None and not email.template_id:
            shared = self._campaign_params.get(email.campaign_id)
            if shared:
                params = {**shared, **params}
        try:
            rendered = template.render(contact=contact, params=params, unsubscribe_url=unsubscribe)
            html, links = rendered.html, None
            signer = self.signer
            if signer is not None and (email.track_clicks or email.track_opens):
                click: Callable[[int], str] | None = None
                if email.track_clicks:
                    base, eid = self.base_url, email.id

                    def click(index: int) -> str:
                        return f"{base}/t/c/{signer.token('c', eid, index)}"

                pixel = (
                    f"{self.base_url}/t/o/{signer.token('o', email.id)}"
                    if email.track_opens
                    else None
                )
                tracked = track_links(
                    html, click_url=click, open_pixel_url=pixel, unsubscribe_url=unsubscribe
                )
                html, links = tracked.html, tracked.links
            sender = email.sender
            message = OutgoingMessage(
                message_id=email.message_id,
                sender=Address(str(sender.get("email") or ""), sender.get("name") or None),
                to=Address(email.to_email, email.to_name or None),
                subject=rendered.subject,
                html=html,
                text=rendered.text,
                date=now,
                reply_to=Address(email.reply_to) if email.reply_to else None,
                headers=email.headers,
                list_unsubscribe=unsubscribe if email.kind in UNSUBSCRIBE_KINDS else None,
            )
            data = build_message(message)
            if data.count(b"\n") != data.count(b"\r\n"):
                # SMTP carries CRLF lines only: a bare LF would reach the server as CRLF, and
                # the stored bytes would no longer be the bytes sent.
                data = _BARE_LF.sub(b"\r\n", data)
            if self.dkim is not None:
                data = self.dkim.sign(data)
        except HookhubError as exc:
            prepared.failure = exc.message
            return
        except Exception as exc:  # one email's fault must never fail its batch
            log.warning(
                "email.render_failed", extra={"email_id": email.id, "error": type(exc).__name__}
            )
            prepared.failure = f"rendering failed ({type(exc).__name__})"
            return
        prepared.data = data
        prepared.rendered = True
        prepared.subject = rendered.subject
        prepared.links = links or []


def _compile(source: Content) -> EmailTemplate | str:
    try:
        return EmailTemplate.compile(source.subject, source.html, source.text)
    except HookhubError as exc:
        return exc.message
