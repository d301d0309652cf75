"""Email pages: the captured and sent emails (filters: status, campaign, recipient), and one
email: its facts, its events, its HTML as rendered (in a sandboxed iframe: it never runs in the
dashboard's page) and its raw MIME source (escaped text).

Reads only, through :class:`EmailService` as the API's ``/emails`` routes do (and the
dashboard's recipient query): nothing here changes anything.
"""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from hookhub.core.contacts import normalize_email
from hookhub.core.pagination import decode_cursor, encode_cursor
from hookhub.email.service import EmailService
from hookhub.errors import BadRequest, NotFound, ValidationFailed
from hookhub.records.email import STATUSES, Email
from hookhub.services import Services
from hookhub.store.dashboard_people import emails_to
from hookhub.web.people_common import (
    blocking,
    check_id,
    compact_json,
    parse_int,
    query_text,
    when,
)
from hookhub.web.render import render

router = APIRouter(include_in_schema=False)
PAGE = 50
RAW_SHOWN = 256 * 1024
"""Bytes of the MIME source shown on the page (the rest is cut, and the page says so)."""


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _emails(services: Services) -> EmailService:
    return EmailService(services.db, services.outbox, services.settings)


def _row(email: Email) -> dict[str, Any]:
    return {
        "email": email,
        "created": when(email.created_at),
        "sent": when(email.sent_at),
    }


@router.get("/emails")
async def emails_index(request: Request) -> Response:
    services = _services(request)
    params = request.query_params
    status = params.get("status") or None
    recipient = query_text(request, "to")
    errors: dict[str, str] = {}
    if status is not None and status not in STATUSES:
        errors["status"] = f"Status is one of {', '.join(STATUSES)}."
        status = None
    try:
        campaign_id = parse_int(params.get("campaign_id"), "campaign_id")
    except BadRequest:
        errors["campaign_id"] = "A campaign id is a positive whole number."
        campaign_id = None
    address = None
    if recipient:
        try:
            address = normalize_email(recipient)
        except ValidationFailed as exc:
            errors["to"] = exc.message
    cursor = params.get("cursor")

    def load() -> list[Email]:
        before = decode_cursor(cursor)
        if address is not None:
            with services.db.read() as conn:
                return emails_to(
                    conn,
                    address,
                    before_id=before,
                    limit=PAGE,
                    status=status,
                    campaign_id=campaign_id,
                )
        return _emails(services).page(
            before_id=before, limit=PAGE, status=status, campaign_id=campaign_id
        )

    items = [] if errors else await blocking(load)
    query = {
        k: v for k, v in (("status", status), ("campaign_id", campaign_id), ("to", recipient)) if v
    }
    return render(
        request,
        "emails_list.html",
        {
            "active": "emails",
            "rows": [_row(e) for e in items],
            "statuses": STATUSES,
            "filters": {"status": status or "", "campaign_id": campaign_id or "", "to": recipient},
            "query": query,
            "next_cursor": encode_cursor(items[-1].id) if len(items) == PAGE else None,
            "errors": errors,
        },
        status=422 if errors else 200,
    )


def _parts(raw: bytes) -> tuple[str | None, str | None]:
    """The HTML and text bodies of a MIME message (None where it has none)."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(message, EmailMessage):
        return None, None
    found: dict[str, str | None] = {}
    for kind in ("html", "plain"):
        part = message.get_body(preferencelist=(kind,))
        content = None
        if part is not None and part.get_content_subtype() == kind:
            try:
                content = str(part.get_content())
            except (LookupError, ValueError):
                content = None
        found[kind] = content
    return found["html"], found["plain"]


@router.get("/emails/{email_id:int}")
async def email_detail(request: Request, email_id: int) -> Response:
    check_id(email_id)
    service = _emails(_services(request))

    def load() -> tuple[Email, bytes | None]:
        email = service.get(email_id)
        try:
            raw = service.raw(email_id)
        except NotFound:
            raw = None
        return email, raw

    email, raw = await blocking(load)
    html = text = None
    if raw is not None:
        html, text = _parts(raw)
    shown = raw[:RAW_SHOWN].decode("utf-8", errors="replace") if raw is not None else None
    return render(
        request,
        "emails_detail.html",
        {
            "active": "emails",
            "email": email,
            "created": when(email.created_at),
            "sent": when(email.sent_at),
            "events": [
                {
                    "type": e.type,
                    "when": when(e.at),
                    "detail": compact_json(e.detail) if e.detail else "",
                }
                for e in email.events
            ],
            "html": html,
            "text": text,
            "raw": shown,
            "raw_cut": raw is not None and len(raw) > RAW_SHOWN,
            "raw_size": len(raw) if raw is not None else 0,
        },
    )
