"""/api/v1/emails (transactional sends, the email log, raw bytes) and /api/v1/bounces.

``GET /emails/{id}/raw`` answers the exact bytes that were (or will be, on a retry) sent: an
email gets them from the worker's first render, so a queued email that has not been rendered
yet is a 404 saying so (rendering on demand would fix a Date and tracking links the worker
would then have to reuse; the worker is the one place bytes are made).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from starlette.responses import Response

from hookhub.api.deps import DEFAULT_PAGE, Cursor, Limit, ServicesDep
from hookhub.api.email_schemas import (
    BounceIn,
    BounceOut,
    EmailOut,
    EmailSend,
    EmailsQueuedOut,
    EmailSummaryOut,
)
from hookhub.api.responses import JSON
from hookhub.api.schemas import MAX_ID, PageOut, Text
from hookhub.core.pagination import decode_cursor, encode_cursor
from hookhub.email.service import EmailService, SendRequest
from hookhub.keys import hash_key
from hookhub.records.email import STATUSES
from hookhub.services import Services

router = APIRouter(tags=["emails"])
EmailId = Annotated[int, Path(ge=1, le=MAX_ID)]
StatusName = Annotated[str, Query(pattern="^(" + "|".join(STATUSES) + ")$")]


def _service(services: Services) -> EmailService:
    return EmailService(services.db, services.outbox, services.settings)


@router.post(
    "/emails",
    status_code=202,
    response_model=EmailsQueuedOut,
    responses={
        409: {"description": "The Idempotency-Key was used with a different body"},
    },
)
def send_emails(
    body: EmailSend,
    services: ServicesDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    idempotency_key: Annotated[
        Text | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="The same key within 24 hours answers the first answer again.",
        ),
    ] = None,
) -> Response:
    """Queue one email per recipient (202); blocked recipients are `skipped` with the reason."""
    request = SendRequest(
        to=[(r.email, r.name) for r in body.to],
        template_id=body.template_id,
        subject=body.subject,
        html=body.html,
        text=body.text,
        params=body.params,
        sender=body.sender.model_dump() if body.sender else None,
        reply_to=body.reply_to,
        tags=body.tags,
        headers=body.headers,
        scheduled_at=body.scheduled_at,
        track_opens=body.track_opens,
        track_clicks=body.track_clicks,
    )
    idempotency = None
    if idempotency_key is not None:
        key = (authorization or "").partition(" ")[2].strip()
        idempotency = (hash_key(key)[:64], idempotency_key)
    sent = _service(services).send(request, idempotency=idempotency)
    headers = {"Idempotent-Replayed": "true"} if sent.replayed else None
    return JSON({"data": sent.data}, status_code=202, headers=headers)


@router.get("/emails", response_model=PageOut[EmailSummaryOut])
def list_emails(
    services: ServicesDep,
    contact: Annotated[
        str | None, Query(max_length=320, description="A contact's id or email.")
    ] = None,
    campaign_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    automation_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    status: StatusName | None = None,
    tag: Annotated[Text | None, Query(max_length=64)] = None,
    limit: Limit = DEFAULT_PAGE,
    cursor: Cursor = None,
) -> Response:
    """Newest first."""
    contact_id = None
    if contact is not None:
        with services.crm.reader() as crm:
            contact_id = crm.find_contact(contact).id
    items = _service(services).page(
        before_id=decode_cursor(cursor),
        limit=limit,
        contact_id=contact_id,
        campaign_id=campaign_id,
        automation_id=automation_id,
        status=status,
        tag=tag,
    )
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    return JSON({"data": [e.to_summary() for e in items], "next_cursor": next_cursor})


@router.get("/emails/{email_id}", response_model=EmailOut)
def get_email(email_id: EmailId, services: ServicesDep) -> Response:
    return JSON(_service(services).get(email_id).to_api())


@router.get(
    "/emails/{email_id}/raw",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": {}}, "description": "The exact bytes"}},
)
def get_email_raw(email_id: EmailId, services: ServicesDep) -> Response:
    """The message exactly as sent (404 until a worker has rendered it)."""
    return Response(_service(services).raw(email_id), media_type="message/rfc822")


@router.post("/bounces", response_model=BounceOut)
def report_bounce(body: BounceIn, services: ServicesDep) -> Response:
    """A hard or soft bounce, or a complaint, by Message-ID or address (hard bounces and
    complaints block the contact)."""
    done = _service(services).bounce(
        address=body.email, message_id=body.message_id, kind=body.type, reason=body.reason
    )
    return JSON(
        {
            "type": body.type,
            "email_id": done.get("email_id"),
            "contact_blocked": bool(done.get("contact_blocked", False)),
        }
    )
